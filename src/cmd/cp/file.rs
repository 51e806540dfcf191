//! Copying regular files' data: each file is staged ([`crate::io::StagedFile`]),
//! written as large positional reads of its data runs (holes and unwritten extents
//! stay holes), given its metadata and only then its name. A read that fails with
//! EIO or ETIMEDOUT (a flaky NFS or SAN under the image) has already been tried
//! again `--retries` times at the bottom of the stack ([`bytesource::retry`], so
//! metadata reads get the same) before the file is reported. With `--salvage` a
//! range that still cannot be read is left as a hole (zeros), named on stderr and in
//! the `--json` summary, and the file is placed as `NAME.partial` (unless
//! `--salvage-in-place`) so that it is never mistaken for a good copy.
//! Where the disk is far away, a batch's small files have their data read ahead
//! first, in parallel coalesced requests ([`Copier::prefetch_small_files`]).

use super::walk::{Copier, FileJob};
use anyhow::{anyhow, bail, Context, Result};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Size of the copy buffer, and of each data read and write once the disk has
/// turned out to be far away (NFS, FUSE): several MiB in flight per file.
pub(super) const CHUNK: usize = 8 << 20;
/// Size of each read and write while the disk is local: 1 MiB stays in the CPU's
/// caches between the read and the write (8 MiB made a page-cache copy 1.8x slower).
const LOCAL_CHUNK: usize = 1 << 20;

/// With `--salvage`, a chunk that cannot be read is read again in pieces of this
/// size (a sector, the smallest unit any layer below maps), so that only the
/// unreadable blocks are lost.
const SALVAGE_PIECE: usize = 512;

/// Files at most this large have their data read ahead by [`Copier::prefetch_small_files`]
/// (larger ones are read in split, parallel requests of their own).
const SMALL_FILE: u64 = 128 << 10;
/// Largest read-ahead request: under [`bytesource::PARALLEL_MIN`], so that it is one
/// buffered `pread` and its pages stay in the host page cache for the copy's reads
/// (split reads of a far file go `O_DIRECT`, past the page cache).
const WINDOW: u64 = 192 << 10;
/// Ranges this close together on the device are read in one request (the bytes
/// between them are read too, and dropped).
const GAP: u64 = 64 << 10;
/// Read-ahead requests in flight per batch (each copying thread runs its own).
const WINDOWS_IN_FLIGHT: usize = 16;
/// Most bytes one batch reads ahead.
const BATCH_BYTES: u64 = 8 << 20;

/// `VMDKRECOVER_DATA_READAHEAD=0` turns the small files' read-ahead off (for A/B
/// measurements).
fn data_read_ahead() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("VMDKRECOVER_DATA_READAHEAD").map_or(true, |v| v != "0"))
}

impl Copier<'_> {
    /// Where the disk is far away (NFS, FUSE: a round trip per request), reads the
    /// data of the batch's small files ahead, before they are copied: their ranges on
    /// the device, sorted, nearby ones coalesced into requests of at most [`WINDOW`]
    /// bytes, [`WINDOWS_IN_FLIGHT`] at a time, at most [`BATCH_BYTES`] in all. The
    /// bytes land in the host page cache (buffered reads) and are dropped here; the
    /// copy then reads them as usual, from memory. Files that one directory holds
    /// were mostly allocated together, so a batch of a few hundred small files costs
    /// a few dozen parallel requests instead of one serial round trip each. Nothing
    /// here affects what is copied: errors are ignored (the copy's own read reports
    /// them) and so is whatever the range read holds.
    fn prefetch_small_files(&self, batch: &[FileJob]) {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        let mut total = 0u64;
        for job in batch {
            let size = job.inode.size;
            if size == 0 || size > SMALL_FILE {
                continue;
            }
            let Ok(runs) = self.fs.file_runs(job.inode.ino) else {
                continue;
            };
            for run in runs {
                if let fsapi::FileRun::Data { len, physical, .. } = run {
                    let len = len.min(size);
                    if len == 0 || total.saturating_add(len) > BATCH_BYTES {
                        continue;
                    }
                    total = total.saturating_add(len);
                    ranges.push((physical, physical.saturating_add(len)));
                }
            }
        }
        if ranges.len() < 2 {
            return;
        }
        ranges.sort_unstable();
        let mut windows: Vec<(u64, u64)> = Vec::new();
        for (start, end) in ranges {
            match windows.last_mut() {
                Some(w)
                    if start <= w.1.saturating_add(GAP)
                        && end.max(w.1).saturating_sub(w.0) <= WINDOW =>
                {
                    w.1 = w.1.max(end);
                }
                _ => windows.push((start, end.min(start.saturating_add(WINDOW)))),
            }
        }
        let next = AtomicUsize::new(0);
        let threads = WINDOWS_IN_FLIGHT.min(windows.len());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let mut buf = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(start, end)) = windows.get(i) else {
                            break;
                        };
                        let len = usize::try_from(end.saturating_sub(start)).unwrap_or(0);
                        buf.resize(len, 0u8);
                        let _ = self.fs.read_device_at(start, &mut buf);
                    }
                });
            }
        });
    }

    /// Copies one directory's batch of files, named relative to that directory.
    pub(super) fn copy_batch(&self, batch: &[FileJob], buf: &mut [u8]) {
        let Some(parent) = batch.first().and_then(|j| j.dst.parent()) else {
            return;
        };
        let dir = match crate::io::DestDir::open(parent) {
            Ok(d) => d,
            Err(e) => {
                for job in batch {
                    self.fail(&job.src, &anyhow!("{}: {e}", parent.display()));
                }
                return;
            }
        };
        if bytesource::far_reads_seen() && data_read_ahead() {
            self.prefetch_small_files(batch);
        }
        for job in batch {
            match self.copy_file(job, &dir, buf) {
                Ok(true) => {
                    self.stats.files.fetch_add(1, Ordering::Relaxed);
                    self.made(&job.src, &job.dst);
                }
                Ok(false) => {}
                Err(e) => self.fail(&job.src, &e),
            }
            self.progress.file_done();
        }
    }

    /// Copies one regular file into `dir`, the directory of `job.dst`; false when
    /// `-n` skipped it because the name exists.
    fn copy_file(&self, job: &FileJob, dir: &crate::io::DestDir, buf: &mut [u8]) -> Result<bool> {
        let name = job
            .dst
            .file_name()
            .ok_or_else(|| anyhow!("{}: no file name", job.dst.display()))?;
        // Created owner-only; the source's mode is set before it gets its name.
        let staged = crate::io::StagedFile::new_in(dir, name, 0o600)
            .with_context(|| format!("{}: cannot create a temporary file", dir.path().display()))?;
        let out = staged.file();
        let size = job.inode.size;
        let mut written_to = 0u64;
        // Unreadable ranges (offset, length) with --salvage.
        let mut bad: Vec<(u64, u64)> = Vec::new();
        let runs = match self
            .fs
            .file_runs(job.inode.ino)
            .map_err(anyhow::Error::from)
        {
            Ok(r) => r,
            // The block map itself is damaged: read the whole file block by block
            // (what reads is kept, what fails becomes a hole).
            Err(e) if self.opts.salvage => {
                self.progress.eprintln(&format!(
                    "vmdkrecover: warning: {}: {e:#}; salvaging the whole file",
                    self.shown(&job.src)
                ));
                vec![fsapi::FileRun::Data {
                    offset: 0,
                    len: size,
                    physical: 0,
                }]
            }
            Err(e) => return Err(e),
        };
        for run in runs {
            // Holes and unwritten (preallocated) runs read as zeros: both stay holes.
            let fsapi::FileRun::Data { offset, len, .. } = run else {
                continue;
            };
            let end = offset.saturating_add(len).min(size);
            let mut pos = offset;
            while pos < end {
                let step = if bytesource::far_reads_seen() {
                    CHUNK
                } else {
                    LOCAL_CHUNK
                };
                let want = usize::try_from(end - pos)
                    .unwrap_or(usize::MAX)
                    .min(buf.len())
                    .min(step);
                let chunk = &mut buf[..want];
                let n = match self
                    .fs
                    .read_at(job.inode.ino, pos, chunk)
                    .map_err(anyhow::Error::from)
                {
                    Ok(n) => n,
                    Err(e) if self.opts.salvage => {
                        self.salvage_chunk(job, pos, chunk, out, &mut bad, &e)?;
                        pos += want as u64;
                        written_to = pos;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if n == 0 {
                    bail!("unexpected end of file data at offset {pos} of {size}");
                }
                let data = &chunk[..n];
                // A block that reads as zeros inside a data run (preallocated space
                // the guest never wrote) stays data: cp keeps what the fs says.
                out.write_all_at(data, pos)
                    .with_context(|| format!("{}: write failed", job.dst.display()))?;
                pos += n as u64;
                written_to = pos;
                self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
                self.progress.bytes(n as u64);
            }
        }
        // Trailing hole (and files that are all hole): the size alone makes it.
        if written_to < size {
            out.set_len(size)?;
        }
        self.finish_file(&job.inode, out, &job.dst)?;
        let partial_name;
        let (name, shown_dst) = if bad.is_empty() || self.opts.salvage_in_place {
            (name, job.dst.clone())
        } else {
            let mut n = name.to_os_string();
            n.push(".partial");
            partial_name = n;
            (
                partial_name.as_os_str(),
                job.dst.with_file_name(&partial_name),
            )
        };
        if !bad.is_empty() {
            let lost: u64 = bad.iter().map(|r| r.1).sum();
            let ranges: Vec<String> = bad
                .iter()
                .map(|(o, l)| format!("{o}-{}", o.saturating_add(*l)))
                .collect();
            self.progress.eprintln(&format!(
                "vmdkrecover: {}: {lost} unreadable bytes left as zeros (byte ranges {}); written as {}",
                self.shown(&job.src),
                ranges.join(", "),
                shown_dst.display()
            ));
            self.failures.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut s) = self.salvaged.lock() {
                s.push((shown_dst.display().to_string(), bad));
            }
        }
        match staged.place(dir, name, self.opts.force) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && self.opts.no_clobber => {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(crate::output::placement_error(&shown_dst, &e)),
        }
    }

    /// `--salvage`: reads a chunk that failed in [`SALVAGE_PIECE`]s, writing what
    /// can be read and leaving the rest as a hole, noted in `bad`.
    fn salvage_chunk(
        &self,
        job: &FileJob,
        start: u64,
        chunk: &mut [u8],
        out: &std::fs::File,
        bad: &mut Vec<(u64, u64)>,
        first: &anyhow::Error,
    ) -> Result<()> {
        self.progress.eprintln(&format!(
            "vmdkrecover: warning: {}: read at offset {start} failed ({first:#}); salvaging",
            self.shown(&job.src)
        ));
        let mut at = 0usize;
        while at < chunk.len() {
            let len = SALVAGE_PIECE.min(chunk.len() - at);
            let pos = start + at as u64;
            let piece = &mut chunk[at..at + len];
            match self.fs.read_at(job.inode.ino, pos, piece) {
                Ok(n) if n > 0 => {
                    out.write_all_at(&piece[..n], pos)
                        .with_context(|| format!("{}: write failed", job.dst.display()))?;
                    self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
                _ => match bad.last_mut() {
                    Some((o, l)) if *o + *l == pos => *l += len as u64,
                    _ => bad.push((pos, len as u64)),
                },
            }
            self.progress.bytes(len as u64);
            at += len;
        }
        Ok(())
    }
}
