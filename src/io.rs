//! Host-side I/O helpers for the front ends: page-aligned buffers and the
//! destination directory and staged files that copy-out writes through.

use rustix::fs::{self, AtFlags, Mode, OFlags};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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

    /// Bytes reserved for a [`AlignedBuf::returned`] buffer, at least: above glibc's
    /// `DEFAULT_MMAP_THRESHOLD_MAX` (32 MiB on 64-bit systems), so that it is always
    /// a mapping of its own, unmapped when dropped.
    const RETURNED_RESERVE: usize = 33 << 20;

    /// A buffer of `len` bytes.
    pub fn new(len: usize) -> Self {
        Self::with_reserve(len, len.saturating_add(Self::PAGE))
    }

    /// A buffer of `len` bytes whose memory goes back to the system when it is
    /// dropped, for a buffer needed for a while and then not again soon (one large
    /// file's copy). Its reservation is at least [`Self::RETURNED_RESERVE`] bytes of
    /// address space, of which only the pages used become memory: glibc maps a
    /// block that large on its own, zeroed by the kernel (no `memset`), and
    /// unmaps it when freed. A block of up to 32 MiB would also be unmapped, but
    /// freeing it raises glibc's mmap threshold to its size and the trim
    /// threshold to twice that (mallopt(3), `M_MMAP_THRESHOLD`: "blocks larger
    /// than the current threshold and less than or equal to
    /// DEFAULT_MMAP_THRESHOLD_MAX are freed"), after which each of the up to
    /// sixteen malloc arenas of a far copy keeps that much free memory.
    pub fn returned(len: usize) -> Self {
        Self::with_reserve(
            len,
            len.saturating_add(Self::PAGE).max(Self::RETURNED_RESERVE),
        )
    }

    fn with_reserve(len: usize, reserve: usize) -> Self {
        let raw = vec![0u8; reserve];
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

/// A destination directory, held open so that the files created in it are named
/// relative to it: one path component to resolve per file instead of the whole path
/// (path walking was a sixth of `cp`'s time on a 50,000-file tree).
pub struct DestDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl DestDir {
    /// Opens `path` (a directory) as a handle; nothing is read or written.
    pub fn open(path: &Path) -> io::Result<Self> {
        let fd = fs::openat(
            fs::CWD,
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The directory's path, for messages and the named fallback.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A file being written that appears under its final name only when complete.
///
/// Where the filesystem supports it (ext4, xfs, btrfs, tmpfs), the data goes into an
/// unnamed `O_TMPFILE` inode that is linked into place at the end: no temporary name
/// is ever visible, nothing is left behind if the process dies, and the directory is
/// changed once instead of three times (create, then rename away and in), which is
/// what file creation costs on a slow disk. Elsewhere (NFS, FUSE, ...) a named
/// temporary file beside the destination is renamed into place.
pub enum StagedFile {
    Unnamed(std::fs::File),
    /// The named fallback, listed in [`crate::output`]'s registry of live temporary
    /// files while it exists (a signal removes it).
    Named(tempfile::NamedTempFile, crate::output::LiveTemp),
}

/// How an O_TMPFILE inode gets its name: `linkat(fd, "", AT_EMPTY_PATH)` where the
/// kernel allows it to the opener (Linux 6.10 and later, or with
/// CAP_DAC_READ_SEARCH), else through `/proc/self/fd/N` (open(2), O_TMPFILE).
static EMPTY_PATH_LINK_FAILS: AtomicBool = AtomicBool::new(false);

impl StagedFile {
    /// A new, empty file to be placed in `dir` later; `hint` names the temporary
    /// file where one is needed. `mode` is the creation mode, which the kernel
    /// reduces by the umask (open(2)): `cp` passes 0o600 and sets the source's
    /// mode later, the single-file outputs 0o666 so that they come out as any
    /// other program's output would.
    pub fn new_in(dir: &DestDir, hint: &OsStr, mode: u32) -> io::Result<Self> {
        Self::new_in_modes(dir, hint, mode, mode)
    }

    /// [`StagedFile::new_in`] with one creation mode for the unnamed file and
    /// another for the named fallback: an unnamed file can be created with its
    /// final mode at once (no other process can open it before it is linked), a
    /// named temporary file only owner-only.
    pub fn new_in_modes(
        dir: &DestDir,
        hint: &OsStr,
        unnamed_mode: u32,
        mode: u32,
    ) -> io::Result<Self> {
        let unnamed = fs::openat(
            &dir.fd,
            ".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(unnamed_mode),
        );
        match unnamed {
            Ok(fd) => Ok(StagedFile::Unnamed(std::fs::File::from(fd))),
            Err(_) => {
                use std::os::unix::fs::PermissionsExt;
                let t = tempfile::Builder::new()
                    .prefix(&format!(
                        ".{}.",
                        hint.to_string_lossy().chars().take(100).collect::<String>()
                    ))
                    .suffix(crate::output::PARTIAL_SUFFIX)
                    .permissions(std::fs::Permissions::from_mode(mode))
                    .tempfile_in(&dir.path)?;
                let live = crate::output::LiveTemp::new(t.path());
                Ok(StagedFile::Named(t, live))
            }
        }
    }

    /// Whether this is an unnamed (`O_TMPFILE`) file.
    pub fn is_unnamed(&self) -> bool {
        matches!(self, StagedFile::Unnamed(_))
    }

    /// The open file, for writing data and setting its metadata.
    pub fn file(&self) -> &std::fs::File {
        match self {
            StagedFile::Unnamed(file) => file,
            StagedFile::Named(t, _) => t.as_file(),
        }
    }

    /// Gives the finished file its final `name` in `dir` (the directory given to
    /// [`StagedFile::new_in`]). An existing `name` is an error unless `replace`.
    pub fn place(self, dir: &DestDir, name: &OsStr, replace: bool) -> io::Result<()> {
        let file = match self {
            StagedFile::Named(t, live) => {
                let dst = dir.path.join(name);
                let r = if replace {
                    t.persist(dst).map(drop).map_err(|e| e.error)
                } else {
                    t.persist_noclobber(dst).map(drop).map_err(|e| e.error)
                };
                // Placed, or (on error) removed by tempfile's drop: no longer live.
                drop(live);
                return r;
            }
            StagedFile::Unnamed(file) => file,
        };
        let link = |to: &OsStr| -> io::Result<()> {
            if !EMPTY_PATH_LINK_FAILS.load(Ordering::Relaxed) {
                match fs::linkat(&file, "", &dir.fd, to, AtFlags::EMPTY_PATH) {
                    Ok(()) => return Ok(()),
                    Err(e) if e == rustix::io::Errno::EXIST => return Err(e.into()),
                    Err(_) => EMPTY_PATH_LINK_FAILS.store(true, Ordering::Relaxed),
                }
            }
            let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
            fs::linkat(
                fs::CWD,
                proc_path.as_str(),
                &dir.fd,
                to,
                AtFlags::SYMLINK_FOLLOW,
            )
            .map_err(io::Error::from)
        };
        match link(name) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && replace => {
                // Link under a fresh temporary name, then rename over the old file;
                // the temporary name is removed again if the rename fails.
                let tmp = tempfile::Builder::new()
                    .prefix(".vmdkrecover-")
                    .suffix(crate::output::PARTIAL_SUFFIX)
                    .make_in(&dir.path, |p| link(p.file_name().unwrap_or_default()))?
                    .into_temp_path();
                let tmp_name = tmp.file_name().unwrap_or_default();
                fs::renameat(&dir.fd, tmp_name, &dir.fd, name)?;
                tmp.keep().map(drop).map_err(|e| e.error)
            }
            r => r,
        }
    }
}

/// The process's umask, read once from `/proc/self/status` ("Umask:", Linux 4.7
/// and later; `umask(2)` can only read it by setting it, which would race with
/// other threads creating files); None where it cannot be read.
pub fn umask() -> Option<u32> {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
        u32::from_str_radix(line.trim(), 8).ok()
    })
}

/// Whether `dir` has no default POSIX ACL (the `system.posix_acl_default`
/// attribute, acl(5)): files created in it then get exactly their creation mode
/// less the umask (open(2)), not that mode masked by the ACL. False where it cannot
/// be told (an error other than "no such attribute" or "not supported").
pub fn no_default_acl(dir: &Path) -> bool {
    match xattr::get(dir, "system.posix_acl_default") {
        Ok(None) => true,
        Ok(Some(_)) => false,
        Err(e) => e.raw_os_error().is_some_and(|n| {
            n == rustix::io::Errno::NODATA.raw_os_error()
                || n == rustix::io::Errno::OPNOTSUPP.raw_os_error()
        }),
    }
}
