//! The one interface every vmdkrecover layer speaks: a positional-read byte source.
//!
//! A virtual disk, a partition, an LVM logical volume and a file inside a filesystem
//! are all "N bytes you can read at any offset". [`ByteSource::read_at`] takes `&self`
//! (pread semantics, no shared cursor), so any number of threads can read any layer
//! at once, and it never returns a short read: a request is either filled completely
//! or fails. A layer splits a request only where the layer below has a boundary
//! (an extent, a grain, a stripe), so a large read stays a few large reads all the
//! way down.
//!
//! This crate holds the trait and the small adapters that every layer needs
//! ([`FileSource`], [`MemSource`], [`Window`], [`Counting`]); it knows nothing about
//! any on-disk format. Every input file is opened through [`open_input`] (via
//! [`FileSource::open`] or [`read_small_file`]), which refuses FIFOs and devices that
//! would hang or never end. [`field`] holds the little- and big-endian field readers
//! the format crates share. [`ByteSource::host_range`] lets a caller look through
//! the layers that leave bytes unchanged, down to the host file that holds them.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub mod field;
pub mod pool;
pub mod retry;

/// A fixed-length sequence of bytes readable at any offset, from any thread.
pub trait ByteSource: Send + Sync {
    /// Length in bytes.
    fn len(&self) -> u64;

    /// True when the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fill all of `buf` with the bytes starting at `offset`.
    ///
    /// Never a short read: a range that runs past [`ByteSource::len`] is an
    /// [`io::ErrorKind::UnexpectedEof`] error, and so is a backing file that turns out
    /// shorter than it promised.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Where the `len` bytes at `offset` lie, unchanged, in one local host file:
    /// that file, the offset there, and how many of the bytes from there on are
    /// contiguous in it (at least 1, at most `len`). `None` when a layer changes
    /// the bytes on the way (compression, copy-on-write snapshots, a replayed
    /// journal), when the file is far away (its reads are better split and kept in
    /// flight, [`FileSource::is_far`]), or when the layer does not say; that is
    /// the default, so a layer that does not implement this is never looked through.
    ///
    /// Why: a caller that copies the bytes into another file can then hand the
    /// copy to the kernel (`copy_file_range`, `sendfile`), one copy from the page
    /// cache to the destination instead of two through a buffer.
    fn host_range(&self, offset: u64, len: u64) -> Option<HostRange<'_>> {
        let _ = (offset, len);
        None
    }
}

/// Bytes of a source found verbatim in a host file ([`ByteSource::host_range`]).
#[derive(Clone, Copy, Debug)]
pub struct HostRange<'a> {
    /// The host file, opened read-only.
    pub file: &'a File,
    /// Where the bytes start in it.
    pub offset: u64,
    /// How many bytes from there are the source's (never more than were asked).
    pub len: u64,
}

/// A shared, type-erased byte source: what layers hand to each other.
pub type SharedSource = Arc<dyn ByteSource>;

impl<T: ByteSource + ?Sized> ByteSource for Arc<T> {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
    }
    fn host_range(&self, offset: u64, len: u64) -> Option<HostRange<'_>> {
        (**self).host_range(offset, len)
    }
}

impl<T: ByteSource + ?Sized> ByteSource for &T {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
    }
    fn host_range(&self, offset: u64, len: u64) -> Option<HostRange<'_>> {
        (**self).host_range(offset, len)
    }
}

impl<T: ByteSource + ?Sized> ByteSource for Box<T> {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
    }
    fn host_range(&self, offset: u64, len: u64) -> Option<HostRange<'_>> {
        (**self).host_range(offset, len)
    }
}

/// Checks that `len` bytes at `offset` lie inside a source of `total` bytes.
///
/// Every implementation calls this first, so the error for an out-of-range read reads
/// the same everywhere.
pub fn check_range(
    what: &dyn std::fmt::Display,
    total: u64,
    offset: u64,
    len: usize,
) -> io::Result<()> {
    let len = u64::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "read too large"))?;
    match offset.checked_add(len) {
        Some(end) if end <= total => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{what}: read of {len} bytes at offset {offset} runs past the end ({total} bytes)"
            ),
        )),
    }
}

/// `O_NONBLOCK` on Linux (`include/uapi/asm-generic/fcntl.h`, `00004000`): opening a
/// FIFO read-only with it returns at once instead of waiting for a writer, so the type
/// check below can refuse the FIFO rather than hang. It does nothing to regular files
/// and block devices (reads of those never return `EAGAIN`), so it is left set.
const O_NONBLOCK: i32 = 0o4000;

/// What kind of file this is, in words, when it is not one a disk can live in.
fn unusable_kind(ft: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() || ft.is_block_device() {
        None
    } else if ft.is_fifo() {
        Some("a FIFO")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_dir() {
        Some("a directory")
    } else if ft.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// Opens `path` read-only and non-blocking, and refuses anything that is not a regular
/// file or a block device: the one place every input file is opened, so a FIFO, a
/// character device (`/dev/zero`) or a directory is an error naming the file instead
/// of a hang or an endless read.
pub fn open_input(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    // Read-only, no locking: the input may sit in a storage snapshot (rule 1).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if let Some(kind) = unusable_kind(&meta.file_type()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name}: is {kind}, not a disk file"),
        ));
    }
    Ok(file)
}

/// Reads a small text input (a descriptor, a `.vmx`, an LVM metadata backup) whole,
/// opened like [`FileSource::open`] and refused when larger than `cap` bytes, so
/// neither a FIFO nor `/dev/zero` nor a huge file can hang or exhaust memory.
pub fn read_small_file(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let src = FileSource::open(path)?;
    if src.len() > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: {} bytes is more than the {cap} bytes such a file can be",
                path.display(),
                src.len()
            ),
        ));
    }
    let n = usize::try_from(src.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
    let mut buf = vec![0u8; n];
    src.read_at(0, &mut buf)?;
    Ok(buf)
}

/// Raises the soft limit on open files to the hard limit (best effort): a disk split
/// into a thousand extent files needs a thousand descriptors.
pub fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
}

/// [`FileSource`]s alive in the process (each holds one descriptor).
static LIVE_FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many [`FileSource`]s (open descriptors) the process holds now: a caller that
/// opens many files turns further ones into [`PooledFile`]s past a budget.
pub fn open_files() -> usize {
    LIVE_FILES.load(Ordering::Relaxed)
}

/// The soft limit on open files, when there is one.
pub fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// [`open_input`], then the length (asked of the device itself for a block device,
/// whose metadata says 0) and the (device, inode) pair.
fn open_measured(path: &Path) -> io::Result<(File, u64, (u64, u64))> {
    use std::os::unix::fs::MetadataExt;
    let file = open_input(path)?;
    let meta = file.metadata()?;
    let len = if meta.file_type().is_file() {
        meta.len()
    } else {
        use std::io::Seek;
        let mut f = &file;
        f.seek(io::SeekFrom::End(0))?
    };
    Ok((file, len, (meta.dev(), meta.ino())))
}

/// A file on the host, opened read-only.
///
/// Large reads of a file that turns out to be far away (NFS, a FUSE file) are split
/// into pieces read at once by several threads, so several requests are in flight
/// instead of one round trip after another (see [`FileSource::read_at`]).
#[derive(Debug)]
pub struct FileSource {
    file: File,
    len: u64,
    path: PathBuf,
    id: (u64, u64),
    /// Large reads of this file have been slow: split them.
    far: std::sync::atomic::AtomicBool,
    /// Consecutive slow large reads so far.
    slow_streak: std::sync::atomic::AtomicU32,
    /// The same file opened again with `O_DIRECT`, for the split reads once far
    /// (`None`: not possible here). See [`FileSource::direct_for`].
    direct: std::sync::OnceLock<Option<File>>,
    /// Cleared when an `O_DIRECT` read failed: split reads use `file` again.
    direct_ok: std::sync::atomic::AtomicBool,
}

/// `O_DIRECT` (Linux include/uapi/asm-generic/fcntl.h; arm and arm64 define their
/// own value in arch/arm*/include/uapi/asm/fcntl.h).
#[cfg(all(target_os = "linux", any(target_arch = "x86", target_arch = "x86_64")))]
const O_DIRECT: Option<i32> = Some(0o40000);
#[cfg(all(target_os = "linux", any(target_arch = "arm", target_arch = "aarch64")))]
const O_DIRECT: Option<i32> = Some(0o200000);
#[cfg(not(all(
    target_os = "linux",
    any(
        target_arch = "x86",
        target_arch = "x86_64",
        target_arch = "arm",
        target_arch = "aarch64"
    )
)))]
const O_DIRECT: Option<i32> = None;

/// Alignment of offset, length and buffer for an `O_DIRECT` read (the page size;
/// the strictest that block devices and network filesystems ask).
const DIRECT_ALIGN: usize = 4096;

/// Files of the process currently marked far away.
static FAR_FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// True while some input file is marked far away (its large reads are slower than
/// local storage): callers then issue larger reads, to keep more in flight.
pub fn far_reads_seen() -> bool {
    FAR_FILES.load(Ordering::Relaxed) > 0
}

/// Input files marked far away when opened, by their filesystem type.
static FAR_BY_FILESYSTEM: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Times an input file was marked far away by the speed of its large reads.
static FAR_BY_TIMING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How often, in this process so far, an input file was marked far away: (when
/// opened, by its filesystem type; later, by the speed of its reads). For
/// diagnostics (`VMDKRECOVER_IO_STATS`) and the scripts that check the decision.
pub fn far_marks() -> (usize, usize) {
    (
        FAR_BY_FILESYSTEM.load(Ordering::Relaxed),
        FAR_BY_TIMING.load(Ordering::Relaxed),
    )
}

/// Set once [`SLOW_STREAK`] reads of input files in a row took longer than
/// [`SLOW_READ`].
static SLOW_READ_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Reads of input files in a row (over all threads and files) slower than
/// [`SLOW_READ`].
static SLOW_READS: Streak = Streak::new();

/// A read slower than this is not served by the page cache or a local SSD (a page
/// cache hit costs microseconds, a local SSD about 100 µs; NFS and FUSE round trips
/// 300 µs and more).
const SLOW_READ: std::time::Duration = std::time::Duration::from_micros(250);

/// Counts events in a row: [`Streak::note`] says when `SLOW_STREAK` have come with
/// no other in between.
struct Streak(std::sync::atomic::AtomicU32);

impl Streak {
    const fn new() -> Self {
        Self(std::sync::atomic::AtomicU32::new(0))
    }

    /// Notes one event (`slow`) or the end of a streak (`!slow`); true when this
    /// event made the streak [`SLOW_STREAK`] long or longer.
    fn note(&self, slow: bool) -> bool {
        if slow {
            self.0.fetch_add(1, Ordering::Relaxed).saturating_add(1) >= SLOW_STREAK
        } else {
            self.0.store(0, Ordering::Relaxed);
            false
        }
    }
}

/// Notes how long one read of an input file took (see [`parallel_reads_pay`]).
/// One slow read is not enough: on a loaded machine (two cores shared by a build
/// and the copy) a page-cache read of a local file is now and then descheduled for
/// a millisecond, which turned a local copy's prefetch threads on for the rest of
/// the run. A cold disk or a far file is slow read after read: its first reads
/// (superblock, group descriptors, inode tables) are misses in a row.
fn note_read_time(started: std::time::Instant) {
    if SLOW_READS.note(started.elapsed() > SLOW_READ) {
        SLOW_READ_SEEN.store(true, Ordering::Relaxed);
    }
}

/// True when reading several pieces at once (prefetch threads) is worth its cost:
/// some input file is far away, or [`SLOW_STREAK`] input reads in a row have been
/// slow (a cold disk). Where every read so far came
/// from the page cache, starting threads costs more than the reads they overlap,
/// so callers read on demand instead.
pub fn parallel_reads_pay() -> bool {
    far_reads_seen() || SLOW_READ_SEEN.load(Ordering::Relaxed)
}

/// Consecutive slow large reads that mark a file far away, and consecutive slow
/// reads that make [`parallel_reads_pay`]: one slow read (a page reclaim, a cold
/// block of a local disk, a thread descheduled on a loaded machine) is not enough.
const SLOW_STREAK: u32 = 3;

/// Reads of at least this many bytes may be split into pieces read in parallel.
pub const PARALLEL_MIN: usize = 256 << 10;
/// Smallest piece of a split read (a multiple of the page size, so pieces of an
/// aligned buffer stay aligned).
const PIECE_MIN: usize = 128 << 10;
/// A large read that moves less than a byte per this many picoseconds (about
/// 250 MB/s) marks the file as far away. The page cache, a local SSD and a local
/// virtual disk are an order of magnitude faster; an NFS or FUSE round trip per
/// request is slower.
const FAR_PS_PER_BYTE: u128 = 4_000;

/// `statfs(2)` magic numbers (`f_type`) of filesystems where every read that misses
/// the client's cache is a network round trip (Linux include/uapi/linux/magic.h,
/// fs/smb/client/cifsglob.h, fs/ceph/super.h): NFS, SMB/CIFS (both dialect magics),
/// Ceph, 9p, AFS (kAFS and OpenAFS), Coda, Lustre, GPFS (coreutils' stat.c lists the
/// last two), and FUSE (sshfs,
/// s3fs, rclone, nbdfuse; also the rare local FUSE filesystem such as ntfs-3g, where
/// split parallel reads cost little).
const FAR_FILESYSTEMS: [u64; 12] = [
    0x6969,      // NFS_SUPER_MAGIC
    0x517B,      // SMB_SUPER_MAGIC (smbfs)
    0xFF53_4D42, // CIFS_SUPER_MAGIC
    0xFE53_4D42, // SMB2_SUPER_MAGIC
    0x00C3_6400, // CEPH_SUPER_MAGIC
    0x0102_1997, // V9FS_MAGIC
    0x6B41_4653, // AFS_FS_MAGIC (kAFS)
    0x5346_414F, // AFS_SUPER_MAGIC (OpenAFS)
    0x7375_7245, // CODA_SUPER_MAGIC
    0x0BD0_0BD0, // LL_SUPER_MAGIC (Lustre)
    0x4750_4653, // GPFS_SUPER_MAGIC
    0x6573_5546, // FUSE_SUPER_MAGIC (fuse and fuseblk)
];

/// True when `file` lives on one of [`FAR_FILESYSTEMS`]: it is marked far away from
/// its first read, instead of after [`SLOW_STREAK`] slow large reads. Why: at a
/// fast filer's latency (0.2 ms) the kernel's readahead moves about 300 MB/s, faster
/// than the [`FAR_PS_PER_BYTE`] rate that marks a file far, so the timing alone kept
/// such a file's reads serial (the XFS 1 GiB copy ran at 1.18x dd's time).
/// `VMDKRECOVER_FAR_BY_FS=0` leaves the decision to the timing alone (for A/B
/// measurements).
fn far_by_filesystem(file: &File) -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*ON.get_or_init(|| std::env::var("VMDKRECOVER_FAR_BY_FS").map_or(true, |v| v != "0")) {
        return false;
    }
    match rustix::fs::fstatfs(file) {
        // `f_type` is a signed word whose width depends on the architecture; the
        // magic numbers are 32-bit.
        #[allow(clippy::cast_sign_loss, clippy::unnecessary_cast)]
        Ok(st) => FAR_FILESYSTEMS.contains(&((st.f_type as u64) & 0xFFFF_FFFF)),
        Err(_) => false,
    }
}

/// Pieces in flight for one split read: `VMDKRECOVER_IO_DEPTH` (1 turns splitting
/// off), default 8.
fn io_depth() -> usize {
    static DEPTH: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *DEPTH.get_or_init(|| {
        std::env::var("VMDKRECOVER_IO_DEPTH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(8usize)
            .clamp(1, 64)
    })
}

/// Reads `buf` at `offset` from `file` in up to `depth` pieces at once, one thread
/// each (the first on the caller's thread). Every piece must fill completely.
///
/// Scoped threads, not the [`pool`]: a pool thread cannot borrow `buf`, so it would
/// read into a buffer of its own and copy it over. Tried: copying the 1 GiB file
/// behind 1 ms per request took 0.07-0.10 s of user time against 0.02 s and 7 MB
/// more peak RSS, at the same wall time; the threads it saves (about 1,200 for
/// the copy of /usr/share) were not measurable in its CPU or wall time.
fn read_pieces(file: &File, offset: u64, buf: &mut [u8], depth: usize) -> io::Result<()> {
    let piece = buf
        .len()
        .div_ceil(depth.max(1))
        .next_multiple_of(PIECE_MIN)
        .max(PIECE_MIN);
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        let mut first: Option<(&mut [u8], u64)> = None;
        let mut at = offset;
        for p in buf.chunks_mut(piece) {
            let here = at;
            at = at.saturating_add(p.len() as u64);
            if first.is_none() {
                first = Some((p, here));
            } else {
                handles.push(scope.spawn(move || file.read_exact_at(p, here)));
            }
        }
        let mut result = first.map_or(Ok(()), |(p, here)| file.read_exact_at(p, here));
        for h in handles {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a reader thread panicked")));
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

impl FileSource {
    /// Opens `path` read-only (see [`open_input`]: FIFOs, character devices and
    /// directories are refused) and records its current length.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let (file, len, id) = open_measured(path)?;
        LIVE_FILES.fetch_add(1, Ordering::Relaxed);
        let far = far_by_filesystem(&file);
        if far {
            FAR_FILES.fetch_add(1, Ordering::Relaxed);
            FAR_BY_FILESYSTEM.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Self {
            file,
            len,
            path: path.to_path_buf(),
            id,
            far: std::sync::atomic::AtomicBool::new(far),
            slow_streak: std::sync::atomic::AtomicU32::new(0),
            direct: std::sync::OnceLock::new(),
            direct_ok: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// The `O_DIRECT` handle for a split read of `buf` at `offset`, when offset,
    /// length and buffer are page-aligned and the file could be opened so.
    ///
    /// Why: a buffered read of a FUSE or NFS file goes through the page cache's
    /// readahead, a few requests of at most 128 KiB in flight whatever the number of
    /// reader threads; a direct read is cut into requests that are all sent at
    /// once (FUSE async direct I/O, the NFS client's rsize RPCs). Behind 1 ms per
    /// request, `dd bs=8M iflag=direct` moved 256 MiB in 0.42 s, buffered 2.7 s.
    fn direct_for(&self, offset: u64, buf: &[u8]) -> Option<&File> {
        if !self.direct_ok.load(Ordering::Relaxed)
            || offset % DIRECT_ALIGN as u64 != 0
            || buf.len() % DIRECT_ALIGN != 0
            || (buf.as_ptr() as usize) % DIRECT_ALIGN != 0
        {
            return None;
        }
        self.direct
            .get_or_init(|| {
                use std::os::unix::fs::OpenOptionsExt;
                let flags = O_DIRECT?;
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(flags)
                    .open(&self.path)
                    .ok()?;
                // The same file still (not replaced under the path since open)?
                use std::os::unix::fs::MetadataExt;
                let m = f.metadata().ok()?;
                ((m.dev(), m.ino()) == self.id).then_some(f)
            })
            .as_ref()
    }

    /// The (device, inode) pair of the open file: two paths naming one file give the
    /// same pair, so callers can open each file once.
    pub fn id(&self) -> (u64, u64) {
        self.id
    }

    /// The path this source was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying file (for callers that want `copy_file_range` and the like).
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        LIVE_FILES.fetch_sub(1, Ordering::Relaxed);
        if self.far.load(Ordering::Relaxed) {
            FAR_FILES.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The error for a failed positional read of `path`: a short file says so.
fn read_error(path: &Path, offset: u64, e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{}: file is shorter than expected (read at offset {offset})",
                path.display()
            ),
        )
    } else {
        // The host error stays the source, so its errno still decides a retry.
        io::Error::new(
            e.kind(),
            retry::PathError {
                path: path.display().to_string(),
                source: e,
            },
        )
    }
}

impl FileSource {
    /// True once large reads of this file have been slow (it is far away).
    pub fn is_far(&self) -> bool {
        self.far.load(Ordering::Relaxed)
    }
}

impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    /// One read, tried again on transient errors ([`retry`], `--retries`).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        retry::with_retries(|| self.read_once(offset, buf))
    }
    /// The file itself, while it is local: `[offset, offset+len)` must lie inside it.
    fn host_range(&self, offset: u64, len: u64) -> Option<HostRange<'_>> {
        let end = offset.checked_add(len)?;
        (len > 0 && end <= self.len && !self.is_far()).then_some(HostRange {
            file: &self.file,
            offset,
            len,
        })
    }
}

impl FileSource {
    /// Reads below [`PARALLEL_MIN`] bytes, and every read of a file that has been
    /// fast, are one `pread`. Three large reads in a row that were slow mark the
    /// file as far away; from then on large reads are split into up to `VMDKRECOVER_IO_DEPTH`
    /// pieces read at once, which hides the per-request latency of NFS or FUSE the
    /// way several readers would. A split read that is fast again clears the mark.
    fn read_once(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(&self.path.display(), self.len, offset, buf.len())?;
        let depth = io_depth();
        if buf.len() < PARALLEL_MIN || depth < 2 {
            let started = std::time::Instant::now();
            let r = self
                .file
                .read_exact_at(buf, offset)
                .map_err(|e| read_error(&self.path, offset, e));
            note_read_time(started);
            return r;
        }
        let far = self.far.load(Ordering::Relaxed);
        let started = std::time::Instant::now();
        let mut direct = false;
        let result = if far {
            match self.direct_for(offset, buf) {
                Some(d) => match read_pieces(d, offset, buf, depth) {
                    Ok(()) => {
                        direct = true;
                        Ok(())
                    }
                    Err(_) => {
                        // E.g. EINVAL from a filesystem that refuses O_DIRECT.
                        self.direct_ok.store(false, Ordering::Relaxed);
                        read_pieces(&self.file, offset, buf, depth)
                    }
                },
                None => read_pieces(&self.file, offset, buf, depth),
            }
        } else {
            self.file.read_exact_at(buf, offset)
        };
        let ps_per_byte = started
            .elapsed()
            .as_nanos()
            .saturating_mul(1000)
            .checked_div(buf.len() as u128)
            .unwrap_or(0);
        if !far {
            if ps_per_byte > FAR_PS_PER_BYTE {
                let streak = self.slow_streak.fetch_add(1, Ordering::Relaxed);
                if streak.saturating_add(1) >= SLOW_STREAK
                    && !self.far.swap(true, Ordering::Relaxed)
                {
                    FAR_FILES.fetch_add(1, Ordering::Relaxed);
                    FAR_BY_TIMING.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                self.slow_streak.store(0, Ordering::Relaxed);
            }
        } else if ps_per_byte.saturating_mul(if direct { 8 } else { 2 }) < FAR_PS_PER_BYTE {
            // Direct reads of a far file are fast by design: only page-cache speed
            // (over 2 GB/s) says the file is local after all.
            self.slow_streak.store(0, Ordering::Relaxed);
            if self.far.swap(false, Ordering::Relaxed) {
                FAR_FILES.fetch_sub(1, Ordering::Relaxed);
            }
        }
        result.map_err(|e| read_error(&self.path, offset, e))
    }
}

/// Most descriptors kept open at once by all [`PooledFile`]s of the process together
/// (fewer under a low open-file limit: a quarter of it, at least 4).
pub const POOL_FILES: usize = 64;

fn pool_size() -> usize {
    let quarter = open_file_limit()
        .map(|l| usize::try_from(l / 4).unwrap_or(usize::MAX))
        .unwrap_or(usize::MAX);
    quarter.clamp(4, POOL_FILES)
}

/// The open descriptors of [`PooledFile`]s: (key, last use, file), least recently
/// used closed first.
struct Pool {
    tick: u64,
    open: Vec<(u64, u64, Arc<File>)>,
}

static POOL: std::sync::Mutex<Pool> = std::sync::Mutex::new(Pool {
    tick: 0,
    open: Vec::new(),
});
static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

/// A file that holds no descriptor of its own: it is reopened (and checked to be the
/// same file, by device, inode and size) when read, and at most [`POOL_FILES`] such
/// files are open at once. For disks split into more pieces than the open-file limit
/// allows (a 2 TiB twoGbMaxExtentSparse disk has 1024).
#[derive(Debug)]
pub struct PooledFile {
    key: u64,
    path: PathBuf,
    len: u64,
    id: (u64, u64),
    /// Taken for far away when it was opened, by its filesystem type (NFS, FUSE...):
    /// its large reads are split and kept in flight, as [`FileSource`]'s are.
    far: bool,
}

impl From<FileSource> for PooledFile {
    /// Closes `src`'s descriptor; the file is reopened on demand.
    fn from(mut src: FileSource) -> Self {
        let far = src.is_far();
        if far {
            // `src` gives its count back when it is dropped below.
            FAR_FILES.fetch_add(1, Ordering::Relaxed);
        }
        Self {
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            path: std::mem::take(&mut src.path),
            len: src.len,
            id: src.id,
            far,
        }
    }
}

impl PooledFile {
    fn file(&self) -> io::Result<Arc<File>> {
        // Opening under the lock keeps the pool at its size; opens are rare.
        let mut pool = POOL
            .lock()
            .map_err(|_| io::Error::other("file pool poisoned"))?;
        pool.tick = pool.tick.wrapping_add(1);
        let tick = pool.tick;
        if let Some(e) = pool.open.iter_mut().find(|e| e.0 == self.key) {
            e.1 = tick;
            return Ok(e.2.clone());
        }
        let (file, len, id) = open_measured(&self.path)?;
        if id != self.id || len != self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: the file changed since it was opened (another file or size now)",
                    self.path.display()
                ),
            ));
        }
        while pool.open.len() >= pool_size() {
            let Some(i) = pool
                .open
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.1)
                .map(|(i, _)| i)
            else {
                break;
            };
            pool.open.swap_remove(i);
        }
        let f = Arc::new(file);
        pool.open.push((self.key, tick, f.clone()));
        Ok(f)
    }
}

impl Drop for PooledFile {
    fn drop(&mut self) {
        if self.far {
            FAR_FILES.fetch_sub(1, Ordering::Relaxed);
        }
        if let Ok(mut pool) = POOL.lock() {
            pool.open.retain(|e| e.0 != self.key);
        }
    }
}

impl ByteSource for PooledFile {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(&self.path.display(), self.len, offset, buf.len())?;
        retry::with_retries(|| {
            let started = std::time::Instant::now();
            let file = self.file()?;
            let depth = io_depth();
            let r = if self.far && buf.len() >= PARALLEL_MIN && depth >= 2 {
                read_pieces(&file, offset, buf, depth)
            } else {
                file.read_exact_at(buf, offset)
            }
            .map_err(|e| read_error(&self.path, offset, e));
            note_read_time(started);
            r
        })
    }
}

/// Bytes held in memory (tests, fuzzing, small decoded images).
#[derive(Debug, Clone, Default)]
pub struct MemSource {
    data: Arc<[u8]>,
}

impl MemSource {
    /// Wraps a buffer.
    pub fn new(data: impl Into<Arc<[u8]>>) -> Self {
        Self { data: data.into() }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

impl ByteSource for MemSource {
    fn len(&self) -> u64 {
        // A slice length always fits in u64 on supported targets.
        u64::try_from(self.data.len()).unwrap_or(u64::MAX)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(&"memory", self.len(), offset, buf.len())?;
        let start =
            usize::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let end = start
            .checked_add(buf.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let src = self
            .data
            .get(start..end)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A byte range of another source: a partition of a disk, an LV segment on a PV.
#[derive(Clone)]
pub struct Window {
    inner: SharedSource,
    start: u64,
    len: u64,
}

impl Window {
    /// The `len` bytes of `inner` starting at `start`; fails if they do not all exist.
    pub fn new(inner: SharedSource, start: u64, len: u64) -> io::Result<Self> {
        match start.checked_add(len) {
            Some(end) if end <= inner.len() => Ok(Self { inner, start, len }),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "range of {len} bytes at offset {start} runs past the end of the underlying source ({} bytes)",
                    inner.len()
                ),
            )),
        }
    }

    /// Where this window starts in the source below.
    pub fn start(&self) -> u64 {
        self.start
    }
}

impl ByteSource for Window {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(&"window", self.len, offset, buf.len())?;
        // Cannot overflow: offset + buf.len() <= len and start + len <= inner.len().
        let below = self
            .start
            .checked_add(offset)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        self.inner.read_at(below, buf)
    }
    fn host_range(&self, offset: u64, len: u64) -> Option<HostRange<'_>> {
        if offset.checked_add(len)? > self.len {
            return None;
        }
        let below = self.start.checked_add(offset)?;
        self.inner.host_range(below, len)
    }
}

/// Counts the calls and bytes that pass through a source (for `--stats` and tests
/// that check a command reads only the metadata it needs).
pub struct Counting<S> {
    inner: S,
    reads: AtomicU64,
    bytes: AtomicU64,
}

impl<S: ByteSource> Counting<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            reads: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }
    /// Number of `read_at` calls so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
    /// Number of bytes requested so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl<S: ByteSource> ByteSource for Counting<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(
            u64::try_from(buf.len()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.inner.read_at(offset, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_reads_inside_and_refuses_outside() {
        let mem: SharedSource = Arc::new(MemSource::new((0u8..=255).collect::<Vec<u8>>()));
        let w = Window::new(mem.clone(), 10, 20).unwrap();
        let mut buf = [0u8; 4];
        w.read_at(16, &mut buf).unwrap();
        assert_eq!(buf, [26, 27, 28, 29]);
        assert_eq!(
            w.read_at(17, &mut buf).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert!(Window::new(mem, 250, 7).is_err());
    }

    #[test]
    fn fifo_and_char_devices_are_refused_at_once() {
        let dir = std::env::temp_dir().join(format!("bytesource-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("vm-flat.vmdk");
        let _ = std::fs::remove_file(&fifo);
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let f2 = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(FileSource::open(&f2).map(|_| ()).map_err(|e| e.to_string()));
        });
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("opening a FIFO hangs");
        assert_eq!(r.unwrap_err(), "vm-flat.vmdk: is a FIFO, not a disk file");
        let e = read_small_file(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert_eq!(
            e.to_string(),
            "zero: is a character device, not a disk file"
        );
        let e = FileSource::open(&dir).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        std::fs::remove_file(&fifo).unwrap();
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn read_small_file_caps_the_size() {
        let p = std::env::temp_dir().join(format!("bytesource-small-{}", std::process::id()));
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_small_file(&p, 10).unwrap(), b"0123456789");
        let e = read_small_file(&p, 9).unwrap_err();
        assert!(e.to_string().contains("more than the 9 bytes"), "{e}");
        let a = FileSource::open(&p).unwrap();
        let b = FileSource::open(&p).unwrap();
        assert_eq!(a.id(), b.id());
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn pooled_files_read_with_few_descriptors_and_notice_replacement() {
        let dir = std::env::temp_dir().join(format!("bytesource-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut files = Vec::new();
        for i in 0..(POOL_FILES * 2) {
            let p = dir.join(format!("f{i}"));
            std::fs::write(&p, [i as u8; 100]).unwrap();
            files.push(PooledFile::from(FileSource::open(&p).unwrap()));
        }
        for round in 0..2 {
            for (i, f) in files.iter().enumerate() {
                let mut b = [0u8; 10];
                f.read_at(90, &mut b).unwrap();
                assert_eq!(b, [i as u8; 10], "round {round} file {i}");
            }
        }
        assert!(POOL.lock().unwrap().open.len() <= POOL_FILES);
        // A file replaced by another (new inode) after it was opened is refused.
        let last = dir.join(format!("f{}", POOL_FILES * 2 - 1));
        let first = files.remove(0);
        drop(first);
        std::fs::remove_file(&last).unwrap();
        std::fs::write(&last, [0u8; 100]).unwrap();
        // Push it out of the pool, then read it again.
        for f in files.iter().take(POOL_FILES) {
            f.read_at(0, &mut [0u8; 1]).unwrap();
        }
        let e = files.last().unwrap().read_at(0, &mut [0u8; 1]).unwrap_err();
        assert!(e.to_string().contains("changed since it was opened"), "{e}");
        drop(files);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_streak_needs_slow_reads_in_a_row() {
        let s = Streak::new();
        // One hiccup between fast reads, then two: no streak.
        assert!(!s.note(false));
        assert!(!s.note(true));
        assert!(!s.note(false));
        assert!(!s.note(true));
        assert!(!s.note(true));
        assert!(!s.note(false));
        // SLOW_STREAK (3) in a row: the third says so, and so do later ones.
        assert!(!s.note(true));
        assert!(!s.note(true));
        assert!(s.note(true));
        assert!(s.note(true));
        assert!(!s.note(false));
    }

    #[test]
    fn check_range_rejects_overflow() {
        assert!(check_range(&"x", 100, u64::MAX, 2).is_err());
        assert!(check_range(&"x", 100, 98, 2).is_ok());
        assert!(check_range(&"x", 100, 99, 2).is_err());
    }

    #[test]
    fn split_reads_equal_one_read() {
        let dir = tempfile_dir();
        let p = dir.join("split.bin");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let src = FileSource::open(&p).unwrap();
        for (off, len) in [
            (0usize, 3_000_000usize),
            (12345, 1_000_001),
            (4096, PARALLEL_MIN),
        ] {
            let mut a = vec![0u8; len];
            read_pieces(&src.file, off as u64, &mut a, 8).unwrap();
            assert_eq!(a, data[off..off + len]);
        }
        // Past the end: an error, never a short read.
        let mut b = vec![0u8; 1 << 20];
        assert!(read_pieces(&src.file, 2_500_000, &mut b, 8).is_err());
        src.far.store(true, Ordering::Relaxed);
        FAR_FILES.fetch_add(1, Ordering::Relaxed);
        let mut c = vec![0u8; 2_000_000];
        src.read_at(100, &mut c).unwrap();
        assert_eq!(c, data[100..2_000_100]);
        // Page-aligned offset, length and buffer: the O_DIRECT handle where the
        // filesystem allows it (else the buffered one); the same bytes either way.
        let mut backing = vec![0u8; (1 << 20) + DIRECT_ALIGN];
        let skip = backing.as_ptr().align_offset(DIRECT_ALIGN);
        let d = &mut backing[skip..skip + (1 << 20)];
        src.read_at(8192, d).unwrap();
        assert_eq!(d, &data[8192..8192 + (1 << 20)]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("bytesource-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
