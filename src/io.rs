//! Adapters between our positional [`ByteSource`] and the `Read + Seek` world that
//! the partition-table crates (mbrman, gpt) expect.

use bytesource::ByteSource;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Size of the block a [`Cursor`] reads and keeps: the table parsers read their
/// structures a byte or a field at a time, which must not become one `pread` each.
const BLOCK: u64 = 4096;

/// A read-only, buffered cursor over a byte source, with a budget on the number of
/// blocks read so that a hostile partition table (an EBR chain thousands of links
/// long) cannot keep a parser busy: once the budget is spent every read fails.
pub struct Cursor<'a> {
    source: &'a dyn ByteSource,
    pos: u64,
    reads_left: u32,
    /// (block-aligned offset, bytes) of the last block read.
    block: Option<(u64, Vec<u8>)>,
}

impl std::fmt::Debug for Cursor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor").field("pos", &self.pos).finish()
    }
}

impl<'a> Cursor<'a> {
    /// A cursor at offset 0 that allows `max_reads` reads.
    pub fn new(source: &'a dyn ByteSource, max_reads: u32) -> Self {
        Self {
            source,
            pos: 0,
            reads_left: max_reads,
            block: None,
        }
    }
}

impl Read for Cursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.source.len() || buf.is_empty() {
            return Ok(0);
        }
        let base = self.pos - self.pos % BLOCK;
        if self.block.as_ref().map(|(b, _)| *b) != Some(base) {
            self.reads_left = self.reads_left.checked_sub(1).ok_or_else(|| {
                io::Error::other("partition table: too many reads (looping or absurdly long chain)")
            })?;
            let n = (self.source.len() - base).min(BLOCK) as usize;
            let mut data = vec![0u8; n];
            self.source.read_at(base, &mut data)?;
            self.block = Some((base, data));
        }
        let Some((_, data)) = &self.block else {
            return Ok(0);
        };
        let from = (self.pos - base) as usize;
        let avail = data.get(from..).unwrap_or_default();
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Cursor<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.source.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}

/// The gpt crate wants a writable device even when opened read-only; every write
/// fails, so the source can never be modified through this path (rule 1).
impl Write for Cursor<'_> {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "vmdkrecover never writes to its input",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A zeroed I/O buffer that starts on a page boundary. The kernel copies between
/// the page cache and a page-aligned user buffer about twice as fast as with one
/// that straddles pages: perf showed `copy_folio_from_iter_atomic` taking most of
/// `cp` of a 1 GiB file, and aligning the buffer halved its time (BENCHMARKS.md, J2).
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    const PAGE: usize = 4096;

    /// A buffer of `len` bytes.
    pub fn new(len: usize) -> Self {
        let raw = vec![0u8; len.saturating_add(Self::PAGE)];
        let start = raw.as_ptr().align_offset(Self::PAGE).min(Self::PAGE);
        Self { raw, start, len }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// A file being written that appears under its final name only when complete.
///
/// Where the filesystem supports it (ext4, xfs, btrfs, tmpfs), the data goes into an
/// unnamed `O_TMPFILE` inode that is linked into place at the end: no temporary name
/// is ever visible, nothing is left behind if the process dies, and the directory is
/// touched once instead of three times (create, rename away, rename in), which is
/// what file creation costs on a slow disk. Elsewhere (NFS, FUSE, ...) a named
/// temporary file beside the destination is renamed into place.
pub enum StagedFile {
    Unnamed {
        file: std::fs::File,
        dir: std::path::PathBuf,
    },
    Named(tempfile::NamedTempFile),
}

impl StagedFile {
    /// A new, empty file to be placed in `dir` later; `hint` names the temporary
    /// file where one is needed.
    pub fn new_in(dir: &std::path::Path, hint: &str) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        // Naming an O_TMPFILE inode goes through /proc (see `place`).
        static PROC_FD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let unnamed_ok = *PROC_FD.get_or_init(|| std::path::Path::new("/proc/self/fd").is_dir());
        let unnamed = if unnamed_ok {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_TMPFILE)
                .open(dir)
        } else {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        };
        match unnamed {
            Ok(file) => Ok(StagedFile::Unnamed {
                file,
                dir: dir.to_path_buf(),
            }),
            Err(_) => tempfile::Builder::new()
                .prefix(&format!(".{}.", hint.chars().take(100).collect::<String>()))
                .suffix(".vmdkrecover-partial")
                .tempfile_in(dir)
                .map(StagedFile::Named),
        }
    }

    /// The open file, for writing data and setting its metadata.
    pub fn file(&self) -> &std::fs::File {
        match self {
            StagedFile::Unnamed { file, .. } => file,
            StagedFile::Named(t) => t.as_file(),
        }
    }

    /// Gives the finished file its final name `dst` (in the directory given to
    /// [`StagedFile::new_in`]). An existing `dst` is an error unless `replace`.
    pub fn place(self, dst: &std::path::Path, replace: bool) -> io::Result<()> {
        match self {
            StagedFile::Named(t) => {
                if replace {
                    t.persist(dst).map(drop).map_err(|e| e.error)
                } else {
                    t.persist_noclobber(dst).map(drop).map_err(|e| e.error)
                }
            }
            StagedFile::Unnamed { file, dir } => {
                use nix::fcntl::AtFlags;
                use nix::unistd::linkat;
                use std::os::fd::AsRawFd;
                // linkat of /proc/self/fd/N is how an O_TMPFILE inode gets a name
                // without privileges (open(2), O_TMPFILE); it fails if dst exists.
                let proc_path =
                    std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
                let link = |to: &std::path::Path| {
                    linkat(
                        None,
                        proc_path.as_path(),
                        None,
                        to,
                        AtFlags::AT_SYMLINK_FOLLOW,
                    )
                    .map_err(io::Error::from)
                };
                match link(dst) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && replace => {
                        // Link under a fresh temporary name, then rename over dst.
                        let tmp = tempfile::Builder::new()
                            .prefix(".vmdkrecover-")
                            .suffix(".partial")
                            .make_in(&dir, |p| link(p))?;
                        // Removed again on drop if the rename fails.
                        let tmp = tmp.into_temp_path();
                        std::fs::rename(&tmp, dst)?;
                        tmp.keep().map(drop).map_err(|e| e.error)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}
