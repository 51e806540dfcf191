//! The one filesystem interface every vmdkrecover front end uses.
//!
//! A filesystem reader (ext2/3/4 in `extfs`, XFS in `xfs`) opens a
//! [`bytesource::ByteSource`] and implements [`Filesystem`]: lookup by path and by
//! inode number, directory listing, metadata, extended attributes, file contents
//! (positional, never short except at end of file), the file's runs (data at a
//! device offset, hole, unwritten) for sparse-aware coalesced copying, and a
//! summary with the filesystem's state. Commands (`ls`, `cp`, `tar`, `mount`,
//! `info`, ...) and the guest tree see only this crate's types, so a new
//! filesystem plugs in without touching a command.
//!
//! What this crate does not do: probe or open anything (each reader does that
//! itself), write, or cache. It is object-safe: front ends hold an
//! `Arc<dyn Filesystem>`.

#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// An inode number. ext numbers fit in 32 bits, XFS numbers need 64.
pub type Ino = u64;

/// Options every reader's `open` takes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Replay a journal or log that needs recovery, in memory, as the kernel does
    /// at mount (`false` is `mount -o ro,noload` / `ro,norecovery`).
    pub replay_journal: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            replay_journal: true,
        }
    }
}

impl OpenOptions {
    /// Options with replay switched on or off.
    pub fn with_replay(replay_journal: bool) -> Self {
        OpenOptions { replay_journal }
    }
}

/// The type of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Regular file.
    Regular,
    /// Directory.
    Directory,
    /// Symbolic link.
    Symlink,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// Unknown or not recorded.
    Unknown,
}

impl FileType {
    /// The type encoded in the `S_IFMT` bits of a Unix mode.
    pub fn from_mode(mode: u32) -> FileType {
        match mode & 0o170000 {
            0o100000 => FileType::Regular,
            0o040000 => FileType::Directory,
            0o120000 => FileType::Symlink,
            0o020000 => FileType::CharDevice,
            0o060000 => FileType::BlockDevice,
            0o010000 => FileType::Fifo,
            0o140000 => FileType::Socket,
            _ => FileType::Unknown,
        }
    }

    /// The Linux `DT_*`/ftype code used by ext and XFS directory entries
    /// (1 regular, 2 directory, 3 char, 4 block, 5 fifo, 6 socket, 7 symlink).
    pub fn from_dirent_code(code: u8) -> FileType {
        match code {
            1 => FileType::Regular,
            2 => FileType::Directory,
            3 => FileType::CharDevice,
            4 => FileType::BlockDevice,
            5 => FileType::Fifo,
            6 => FileType::Socket,
            7 => FileType::Symlink,
            _ => FileType::Unknown,
        }
    }
}

/// A timestamp: seconds since the epoch (may be negative) and nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Seconds since 1970-01-01 UTC.
    pub secs: i64,
    /// Nanoseconds, below 10^9.
    pub nanos: u32,
}

/// An inode's metadata, as `stat` would show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Inode number.
    pub ino: Ino,
    /// Full mode, type bits included (`st_mode`).
    pub mode: u32,
    /// Type from the mode bits.
    pub file_type: FileType,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Hard link count.
    pub nlink: u32,
    /// Access time.
    pub atime: Timestamp,
    /// Modification time.
    pub mtime: Timestamp,
    /// Change time.
    pub ctime: Timestamp,
    /// Creation time, where the filesystem records it.
    pub crtime: Option<Timestamp>,
    /// The filesystem's inode flags (ext `i_flags`, XFS `di_flags | di_flags2 << 16`).
    pub flags: u64,
    /// (major, minor) for device inodes.
    pub rdev: Option<(u32, u32)>,
    /// Inode generation number.
    pub generation: u32,
    /// Allocated 512-byte sectors, as `stat`'s `st_blocks`.
    pub blocks: u64,
}

impl Metadata {
    /// Permission bits (mode without the type).
    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Name bytes (not necessarily UTF-8); never empty, never `.` or `..`.
    pub name: Vec<u8>,
    /// Inode number.
    pub ino: Ino,
    /// Type from the entry, or [`FileType::Unknown`] when the entry does not record
    /// it (XFS without ftype, ext2 without filetype): ask [`Filesystem::metadata`].
    pub file_type: FileType,
}

/// A piece of a file, in file order; together the runs cover `[0, size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRun {
    /// `len` bytes at file offset `offset` are stored at device byte offset
    /// `physical` (read them with [`Filesystem::read_device_at`]).
    Data {
        /// File offset.
        offset: u64,
        /// Length in bytes.
        len: u64,
        /// Device byte offset.
        physical: u64,
    },
    /// `len` bytes at `offset` are not allocated and read as zeros.
    Hole {
        /// File offset.
        offset: u64,
        /// Length in bytes.
        len: u64,
    },
    /// `len` bytes at `offset` are allocated but unwritten (preallocated); they read
    /// as zeros whatever the disk holds there.
    Unwritten {
        /// File offset.
        offset: u64,
        /// Length in bytes.
        len: u64,
    },
}

impl FileRun {
    /// File offset of the run.
    pub fn offset(&self) -> u64 {
        match *self {
            FileRun::Data { offset, .. }
            | FileRun::Hole { offset, .. }
            | FileRun::Unwritten { offset, .. } => offset,
        }
    }
    /// Length of the run in bytes.
    pub fn len(&self) -> u64 {
        match *self {
            FileRun::Data { len, .. }
            | FileRun::Hole { len, .. }
            | FileRun::Unwritten { len, .. } => len,
        }
    }
    /// True for a run of no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// True when the run reads as zeros without touching the disk.
    pub fn is_zero(&self) -> bool {
        !matches!(self, FileRun::Data { .. })
    }
}

/// An extended attribute in the generic Linux form: the full name with its
/// namespace prefix (`user.`, `trusted.`, `security.`, `system.posix_acl_access`),
/// and the value as `getxattr(2)` returns it (POSIX ACLs in the version-2 generic
/// `posix_acl_xattr` format, whatever the on-disk form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xattr {
    /// Full name with prefix.
    pub name: Vec<u8>,
    /// Value.
    pub value: Vec<u8>,
}

/// A filesystem's summary, for `info` and for `LABEL=`/`UUID=` resolution.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct FsInfo {
    /// "ext2", "ext3", "ext4", "xfs".
    pub kind: String,
    /// Volume label (may be empty).
    pub label: String,
    /// Filesystem UUID, 8-4-4-4-12 lowercase.
    pub uuid: String,
    /// Block size in bytes.
    pub block_size: u32,
    /// Blocks in the filesystem.
    pub blocks: u64,
    /// Free blocks, as the superblock counts them.
    pub free_blocks: u64,
    /// Inodes (allocated inodes for filesystems that allocate them dynamically).
    pub inodes: u64,
    /// Free inodes, as the superblock counts them.
    pub free_inodes: u64,
    /// Feature names as the filesystem's own tools print them.
    pub features: Vec<String>,
    /// The journal or log needed recovery when opened (before any replay).
    pub needs_recovery: bool,
    /// The journal or log was replayed in memory.
    pub journal_replayed: bool,
    /// The filesystem says it was cleanly unmounted.
    pub clean: bool,
    /// Where it was last mounted, where the filesystem records it.
    pub last_mounted: Option<String>,
    /// Further facts worth showing in `info`, as (name, value) pairs.
    pub details: Vec<(String, String)>,
}

impl FsInfo {
    /// A summary with `kind` set and everything else empty.
    pub fn new(kind: impl Into<String>) -> Self {
        FsInfo {
            kind: kind.into(),
            ..FsInfo::default()
        }
    }
}

/// What can go wrong reading a filesystem. Every variant names the object it is
/// about; `Corrupt` and `Io` carry the byte position on the device where known.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A path component does not exist.
    #[error("{path}: not found")]
    NotFound {
        /// The path up to and including the missing component.
        path: String,
    },
    /// A path component that must be a directory is not one.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path up to and including the offending component.
        path: String,
    },
    /// Resolving a path followed more than 40 symbolic links.
    #[error("{path}: too many levels of symbolic links")]
    SymlinkLoop {
        /// The path being resolved.
        path: String,
    },
    /// An operation was asked of an inode of the wrong type (`read_link` on a file,
    /// `read_dir` on a symlink).
    #[error("inode {ino}: {detail}")]
    WrongType {
        /// The inode number.
        ino: Ino,
        /// What was expected.
        detail: String,
    },
    /// The device could not be read.
    #[error("{object}: I/O error at byte {offset}: {source}")]
    Io {
        /// What was being read ("inode 12", "directory block 40", "superblock").
        object: String,
        /// Device byte offset of the failed read.
        offset: u64,
        /// The error from the layer below.
        source: io::Error,
    },
    /// On-disk data is inconsistent.
    #[error("{object}: {detail}{}", at_suffix(*.offset))]
    Corrupt {
        /// Which structure ("superblock", "inode 12", "AG 3 AGI").
        object: String,
        /// Device byte offset of the structure, where known.
        offset: Option<u64>,
        /// What is wrong with it.
        detail: String,
    },
    /// The filesystem or object uses a feature this reader does not read.
    #[error("{object}: unsupported: {detail}")]
    Unsupported {
        /// Which structure.
        object: String,
        /// Which feature.
        detail: String,
    },
}

fn at_suffix(offset: Option<u64>) -> String {
    match offset {
        Some(o) => format!(" (at byte {o})"),
        None => String::new(),
    }
}

impl Error {
    /// A [`Error::Corrupt`] without a known position.
    pub fn corrupt(object: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            object: object.into(),
            offset: None,
            detail: detail.into(),
        }
    }
    /// A [`Error::Corrupt`] at a device byte offset.
    pub fn corrupt_at(object: impl Into<String>, offset: u64, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            object: object.into(),
            offset: Some(offset),
            detail: detail.into(),
        }
    }
    /// A [`Error::Unsupported`].
    pub fn unsupported(object: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Unsupported {
            object: object.into(),
            detail: detail.into(),
        }
    }
    /// A [`Error::Io`].
    pub fn io(object: impl Into<String>, offset: u64, source: io::Error) -> Self {
        Error::Io {
            object: object.into(),
            offset,
            source,
        }
    }
    /// True for errors that say the path or inode is absent or of the wrong kind
    /// (as opposed to damage or I/O failure).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Symlinks followed while resolving one path (the kernel's MAXSYMLINKS).
pub const MAX_SYMLINK_HOPS: u32 = 40;

/// A read-only filesystem. Every method takes `&self` and may be called from any
/// number of threads at once.
pub trait Filesystem: Send + Sync + fmt::Debug {
    /// Summary of the superblock and the state found at open.
    fn info(&self) -> FsInfo;

    /// Problems seen so far (checksum mismatches, skipped entries, replay notes),
    /// each once. Readers append as they find them, so a caller that walks the tree
    /// and then calls this sees what the walk ran into.
    fn warnings(&self) -> Vec<String>;

    /// How many distinct warnings have been raised so far (including any not kept).
    fn warning_count(&self) -> u64;

    /// The root directory's inode number.
    fn root(&self) -> Ino;

    /// Metadata of inode `ino`.
    fn metadata(&self, ino: Ino) -> Result<Metadata>;

    /// Entries of directory `ino`, without `.` and `..`, in on-disk order.
    fn read_dir(&self, ino: Ino) -> Result<Vec<DirEntry>>;

    /// The target of symlink `ino`, verbatim.
    fn read_link(&self, ino: Ino) -> Result<Vec<u8>>;

    /// Reads file `ino` at `offset` into `buf`. Fills `buf` completely unless the
    /// file ends first; returns the number of bytes read (0 at or past the end).
    fn read_at(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize>;

    /// The runs of file `ino` in order, covering `[0, size)`; adjacent runs of the
    /// same kind that are contiguous on the device are merged.
    fn file_runs(&self, ino: Ino) -> Result<Vec<FileRun>>;

    /// Extended attributes of inode `ino`, in the generic Linux form.
    fn xattrs(&self, ino: Ino) -> Result<Vec<Xattr>>;

    /// Reads the device as this filesystem sees it (with any replayed journal or log
    /// blocks in place): what [`FileRun::Data`]'s `physical` offsets point into.
    fn read_device_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// Where the `len` device bytes at `physical`, inside a [`FileRun::Data`] run of
    /// file `ino` ([`Filesystem::file_runs`]), lie unchanged in one local host file
    /// ([`bytesource::ByteSource::host_range`] of the device), so that a copy of them
    /// can be left to the kernel. The answer may cover fewer bytes than asked (the
    /// next ones lie elsewhere). `None`, the default, where a replayed journal or log
    /// block covers them, where they lie past the end of the filesystem, or where the
    /// reader cannot say: the bytes are then read with [`Filesystem::read_at`], which
    /// returns the same bytes either way.
    fn data_host_range(
        &self,
        ino: Ino,
        physical: u64,
        len: u64,
    ) -> Option<bytesource::HostRange<'_>> {
        let _ = (ino, physical, len);
        None
    }

    /// The list this reader records its warnings in, for a caller that reads on
    /// worker threads ahead of its own order and wants the warnings raised in the
    /// order it would have raised them itself: it wraps each read in
    /// [`Warnings::deferred`] and hands the messages back with
    /// [`Warnings::commit`] when it gets there (or never, for work it drops).
    /// `None` (the default) for a reader that keeps its warnings elsewhere; such a
    /// caller then reads in its own order.
    fn warning_list(&self) -> Option<&Warnings> {
        None
    }

    /// Resolves an absolute path (bytes, `/`-separated) to an inode number.
    /// Intermediate symlinks are followed inside this filesystem (at most
    /// [`MAX_SYMLINK_HOPS`]); the last component is not. `..` at the root stays at
    /// the root.
    fn lookup(&self, path: &[u8]) -> Result<Ino> {
        lookup_path(self, path)
    }
}

/// Splits a path into components, dropping empty ones and `.`.
pub fn split_path(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&c| c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .collect()
}

/// The generic path walk behind [`Filesystem::lookup`]: `read_dir` at each level,
/// symlinks in the middle followed, `..` resolved through the directories walked.
pub fn lookup_path<F: Filesystem + ?Sized>(fs: &F, path: &[u8]) -> Result<Ino> {
    let shown = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    let mut todo: Vec<Vec<u8>> = split_path(path).into_iter().rev().collect();
    // The directories walked, root first, so ".." can go back without trusting
    // on-disk ".." entries.
    let mut stack: Vec<Ino> = vec![fs.root()];
    let mut walked: Vec<u8> = Vec::new();
    let mut hops: u32 = 0;
    while let Some(name) = todo.pop() {
        let cur = stack.last().copied().unwrap_or_else(|| fs.root());
        walked.push(b'/');
        walked.extend_from_slice(&name);
        if name == b".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let dir = fs.metadata(cur)?;
        if dir.file_type != FileType::Directory {
            return Err(Error::NotADirectory {
                path: shown(&walked),
            });
        }
        let entries = fs.read_dir(cur)?;
        let Some(entry) = entries.into_iter().find(|e| e.name == name) else {
            return Err(Error::NotFound {
                path: shown(&walked),
            });
        };
        if todo.is_empty() {
            return Ok(entry.ino);
        }
        let node = fs.metadata(entry.ino)?;
        if node.file_type == FileType::Symlink {
            hops = hops.saturating_add(1);
            if hops > MAX_SYMLINK_HOPS {
                return Err(Error::SymlinkLoop { path: shown(path) });
            }
            let target = fs.read_link(entry.ino)?;
            if target.first() == Some(&b'/') {
                stack.truncate(1);
            }
            for c in split_path(&target).into_iter().rev() {
                todo.push(c);
            }
            continue;
        }
        stack.push(entry.ino);
    }
    Ok(stack.last().copied().unwrap_or_else(|| fs.root()))
}

/// Most warnings a [`Warnings`] keeps; later ones are counted, not stored.
pub const MAX_WARNINGS: usize = 500;

/// A thread-safe, deduplicating, bounded list of warnings, for readers to embed.
#[derive(Debug)]
pub struct Warnings {
    inner: Mutex<WarningsInner>,
    /// Tells this list from others in [`Warnings::deferred`]'s thread-local record.
    id: u64,
}

impl Default for Warnings {
    fn default() -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Warnings {
            inner: Mutex::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

thread_local! {
    /// While [`Warnings::deferred`] runs on this thread: the list's id and the
    /// messages pushed to it, in order (innermost deferral last).
    static DEFERRED: RefCell<Vec<(u64, Vec<String>)>> = const { RefCell::new(Vec::new()) };
}

#[derive(Debug, Default)]
struct WarningsInner {
    list: Vec<String>,
    seen: HashSet<String>,
    dropped: u64,
}

impl Warnings {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `msg` unless it was recorded before (inside [`Warnings::deferred`]
    /// on this thread: keeps it aside for [`Warnings::commit`]).
    pub fn push(&self, msg: impl Into<String>) {
        let msg = msg.into();
        let msg = match DEFERRED.with(|d| {
            let mut d = d.borrow_mut();
            match d.iter_mut().rev().find(|(id, _)| *id == self.id) {
                Some((_, kept)) => {
                    // Bounded like the list itself: a deferral that raised more
                    // than the list keeps could never show them all.
                    if kept.len() < MAX_WARNINGS.saturating_mul(2) {
                        kept.push(msg);
                    }
                    None
                }
                None => Some(msg),
            }
        }) {
            Some(m) => m,
            None => return,
        };
        let Ok(mut w) = self.inner.lock() else {
            return;
        };
        if w.seen.contains(&msg) {
            return;
        }
        if w.list.len() >= MAX_WARNINGS {
            w.dropped = w.dropped.saturating_add(1);
            return;
        }
        w.seen.insert(msg.clone());
        w.list.push(msg);
    }

    /// Runs `f` with the warnings it pushes to this list on this thread kept
    /// aside instead of recorded, and returns them in the order they were pushed
    /// (duplicates included): a caller that ran `f` ahead of its turn on a worker
    /// thread records them with [`Warnings::commit`] when their turn comes, so the
    /// list's order, deduplication and bound are those of reading in turn.
    /// Warnings pushed by threads `f` starts are recorded at once, as usual.
    pub fn deferred<T>(&self, f: impl FnOnce() -> T) -> (T, Vec<String>) {
        DEFERRED.with(|d| d.borrow_mut().push((self.id, Vec::new())));
        // Taken off again even if `f` panics, so that the thread's later pushes
        // are recorded.
        struct Pop;
        impl Drop for Pop {
            fn drop(&mut self) {
                let _ = DEFERRED.try_with(|d| d.borrow_mut().pop());
            }
        }
        let pop = Pop;
        let out = f();
        let kept = DEFERRED
            .with(|d| d.borrow_mut().last_mut().map(|(_, k)| std::mem::take(k)))
            .unwrap_or_default();
        drop(pop);
        (out, kept)
    }

    /// Records warnings kept aside by [`Warnings::deferred`], in order, as
    /// [`Warnings::push`] would have.
    pub fn commit(&self, msgs: impl IntoIterator<Item = String>) {
        for m in msgs {
            self.push(m);
        }
    }

    /// The warnings kept, plus a line counting those dropped.
    pub fn list(&self) -> Vec<String> {
        let Ok(w) = self.inner.lock() else {
            return Vec::new();
        };
        let mut v = w.list.clone();
        if w.dropped > 0 {
            v.push(format!("{} further warnings not shown", w.dropped));
        }
        v
    }

    /// Distinct warnings raised, including dropped ones.
    pub fn count(&self) -> u64 {
        let Ok(w) = self.inner.lock() else {
            return 0;
        };
        u64::try_from(w.list.len())
            .unwrap_or(u64::MAX)
            .saturating_add(w.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_type_from_mode_and_dirent() {
        assert_eq!(FileType::from_mode(0o100644), FileType::Regular);
        assert_eq!(FileType::from_mode(0o120777), FileType::Symlink);
        assert_eq!(FileType::from_mode(0o140000), FileType::Socket);
        assert_eq!(FileType::from_dirent_code(7), FileType::Symlink);
        assert_eq!(FileType::from_dirent_code(0), FileType::Unknown);
    }

    #[test]
    fn split_path_drops_empty_and_dot() {
        assert_eq!(split_path(b"//a/./b/"), vec![b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn warnings_dedupe_and_count() {
        let w = Warnings::new();
        w.push("a");
        w.push("a");
        w.push("b");
        assert_eq!(w.count(), 2);
        assert_eq!(w.list(), vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn deferred_warnings_wait_for_commit() {
        let w = Warnings::new();
        let other = Warnings::new();
        w.push("first");
        let ((), kept) = w.deferred(|| {
            w.push("later");
            w.push("first");
            other.push("elsewhere");
        });
        // Kept aside, duplicates included; another list records at once.
        assert_eq!(kept, vec!["later".to_string(), "first".to_string()]);
        assert_eq!(w.list(), vec!["first".to_string()]);
        assert_eq!(other.list(), vec!["elsewhere".to_string()]);
        // Another thread's pushes are not deferred.
        let ((), none) = w.deferred(|| {
            std::thread::scope(|s| {
                s.spawn(|| w.push("thread"));
            })
        });
        assert!(none.is_empty());
        w.commit(kept);
        assert_eq!(
            w.list(),
            vec![
                "first".to_string(),
                "thread".to_string(),
                "later".to_string()
            ]
        );
        w.push("after");
        assert_eq!(w.count(), 4);
    }
}
