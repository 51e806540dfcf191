//! Copying regular files' data: each file is staged ([`crate::io::StagedFile`]),
//! written as large positional reads of its data runs (holes and unwritten extents
//! stay holes), given its metadata and only then its name. A read that fails with
//! EIO or ETIMEDOUT (a flaky NFS or SAN under the image) is tried again `--retries`
//! times with exponential backoff before the file is reported.

use super::walk::{Copier, FileJob};
use anyhow::{anyhow, bail, Context, Result};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Size of each data read and write.
pub(super) const CHUNK: usize = 1 << 20;

/// First backoff of a retried read; doubled each time, at most [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// True for the errors a retry may cure: EIO and ETIMEDOUT from the host.
fn transient(e: &fsapi::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(libc_eio) if libc_eio == 5 || libc_eio == 110)
                || io.kind() == std::io::ErrorKind::TimedOut
            {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

impl Copier<'_> {
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

    /// A positional read with `--retries` further attempts on transient errors.
    fn read_retrying(&self, ino: u64, pos: u64, buf: &mut [u8]) -> Result<usize> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0u32;
        loop {
            match self.fs.read_at(ino, pos, buf) {
                Ok(n) => return Ok(n),
                Err(e) if attempt < self.opts.retries && transient(&e) => {
                    attempt = attempt.saturating_add(1);
                    self.progress.eprintln(&format!(
                        "vmdkrecover: warning: read at offset {pos} failed ({e}); retry {attempt} of {} in {backoff:?}",
                        self.opts.retries
                    ));
                    std::thread::sleep(backoff);
                    backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e.into()),
            }
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
        for run in self.fs.file_runs(job.inode.ino)? {
            // Holes and unwritten (preallocated) runs read as zeros: both stay holes.
            let fsapi::FileRun::Data { offset, len, .. } = run else {
                continue;
            };
            let end = offset.saturating_add(len).min(size);
            let mut pos = offset;
            while pos < end {
                let want = usize::try_from(end - pos)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                let chunk = &mut buf[..want];
                let n = self.read_retrying(job.inode.ino, pos, chunk)?;
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
        match staged.place(dir, name, self.opts.force) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && self.opts.no_clobber => {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(crate::output::placement_error(&job.dst, &e)),
        }
    }
}
