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
//! any on-disk format.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
}

impl<T: ByteSource + ?Sized> ByteSource for &T {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
    }
}

impl<T: ByteSource + ?Sized> ByteSource for Box<T> {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
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

/// A file on the host, opened read-only.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    len: u64,
    path: PathBuf,
}

impl FileSource {
    /// Opens `path` read-only and records its current length.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        // Read-only, no locking: the input may sit in a storage snapshot (rule 1).
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let len = if meta.file_type().is_file() {
            meta.len()
        } else {
            // Block devices report 0 in metadata; ask the device itself.
            use std::io::Seek;
            let mut f = &file;
            f.seek(io::SeekFrom::End(0))?
        };
        Ok(Self {
            file,
            len,
            path: path.to_path_buf(),
        })
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

impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(&self.path.display(), self.len, offset, buf.len())?;
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: file is shorter than expected (read at offset {offset})",
                        self.path.display()
                    ),
                )
            } else {
                io::Error::new(e.kind(), format!("{}: {e}", self.path.display()))
            }
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
    fn check_range_rejects_overflow() {
        assert!(check_range(&"x", 100, u64::MAX, 2).is_err());
        assert!(check_range(&"x", 100, 98, 2).is_ok());
        assert!(check_range(&"x", 100, 99, 2).is_err());
    }
}
