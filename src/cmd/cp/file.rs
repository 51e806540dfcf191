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
//! first, in parallel coalesced requests ([`super::prefetch`]).

use super::walk::{Copier, FileJob};
use anyhow::{anyhow, bail, Context, Result};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Size of the copy buffer, and of each data read and write once the disk has
/// turned out to be far away (NFS, FUSE): several MiB in flight per file.
pub(super) const CHUNK: usize = 8 << 20;
/// Files at least this large are copied with their reads and writes overlapped
/// ([`Copier::copy_runs_pipelined`]); below, the second thread costs more than it
/// saves.
const PIPELINE_MIN: u64 = 4 << 20;
/// Size of each read and write while the disk is local: 1 MiB stays in the CPU's
/// caches between the read and the write (8 MiB made a page-cache copy 1.8x slower).
const LOCAL_CHUNK: usize = 1 << 20;

/// Largest single write into the destination. A buffered write of N bytes makes
/// the kernel allocate page-cache folios of up to N bytes (`generic_perform_write`
/// asks for a folio of the write's length; ext4 and XFS take large folios, tmpfs
/// by default not). On this VM (virtio-balloon free page reporting: freed blocks
/// of 128 KiB and more go back to the host) a 1 MiB folio is mostly memory the host
/// must fault in again on first touch: writing the 1 GiB file onto ext4 in 1 MiB
/// writes took a median of 1.45 s against 0.60 s in 256 KiB pieces and 0.86 s for
/// the kernel's `cp` (128 KiB writes; 12 interleaved runs each, after a sync;
/// `perf` put 80% of the time in `copy_folio_from_iter_atomic`, the
/// `kmem:mm_page_alloc` trace showed order-8 folios for 1 MiB writes, order-5 for
/// 128 KiB). How large the gap is depends on what was freed just before: runs of
/// one command back to back (hyperfine) showed `dd`'s 1 MiB writes as fast as
/// `cp`'s. Into tmpfs the size made no difference.
const WRITE_PIECE: usize = 256 << 10;

/// With `--salvage`, a chunk that cannot be read is read again in pieces of this
/// size (a sector, the smallest unit any layer below maps), so that only the
/// unreadable blocks are lost.
const SALVAGE_PIECE: usize = 512;

/// Writes `data` at `pos` in `out` in pieces of at most [`WRITE_PIECE`] bytes
/// (`VMDKRECOVER_WRITE_PIECE` bytes, for A/B measurements).
fn write_pieces(out: &std::fs::File, data: &[u8], pos: u64) -> std::io::Result<()> {
    static PIECE: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let piece = super::env_number(&PIECE, "VMDKRECOVER_WRITE_PIECE")
        .filter(|&n| n > 0)
        .unwrap_or(WRITE_PIECE);
    let mut at = pos;
    for p in data.chunks(piece) {
        out.write_all_at(p, at)?;
        at += p.len() as u64;
    }
    Ok(())
}

/// Files larger than this get a buffer of their own where the disk is far away
/// (see [`Copier::copy_file`]): the buffer of the copying threads added then.
const FAR_OWN_MIN: u64 = super::walk::FAR_COPIER_BUF as u64;

/// [`FAR_OWN_MIN`], or `VMDKRECOVER_FAR_OWN_MIN` bytes (for A/B measurements;
/// `u64::MAX`: never).
fn far_own_min() -> u64 {
    static MIN: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    super::env_number(&MIN, "VMDKRECOVER_FAR_OWN_MIN").unwrap_or(FAR_OWN_MIN)
}

/// Bytes of a far file's own buffer while another file holds a [`CHUNK`]-sized one.
const SECOND_OWN: usize = CHUNK / 4;

/// Whether a file's own buffer of [`CHUNK`] bytes is out (see [`own_len`]).
static FULL_OWN_OUT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A file's hold on the one [`CHUNK`]-sized own buffer, given back when dropped.
struct FullOwn;

impl Drop for FullOwn {
    fn drop(&mut self) {
        FULL_OWN_OUT.store(false, Ordering::Release);
    }
}

/// The length of a far file's own buffer: its size in whole pages, or [`CHUNK`]
/// for a file copied overlapped (split in two halves), at most [`CHUNK`]. Only one
/// file at a time has more than [`SECOND_OWN`] bytes (with the hold returned): two
/// large files copied at once (the package lists at the end of /usr/share) held
/// two 8 MiB buffers and two 6 MiB grain-group buffers at the peak of LT3.
fn own_len(size: u64, pipeline_min: u64) -> (usize, Option<FullOwn>) {
    let want = if size >= pipeline_min {
        CHUNK
    } else {
        usize::try_from(size.div_ceil(4096).saturating_mul(4096))
            .unwrap_or(CHUNK)
            .min(CHUNK)
    };
    if want <= SECOND_OWN {
        return (want, None);
    }
    match FULL_OWN_OUT.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed) {
        Ok(_) => (want, Some(FullOwn)),
        Err(_) => (SECOND_OWN, None),
    }
}

/// [`PIPELINE_MIN`], or `VMDKRECOVER_PIPELINE_MIN` bytes (for A/B measurements, and
/// for the checks that send small files through the overlapped copy).
fn pipeline_min() -> u64 {
    static MIN: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    super::env_number(&MIN, "VMDKRECOVER_PIPELINE_MIN").unwrap_or(PIPELINE_MIN)
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
        self.prefetch_small_files(batch, buf);
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
        // Created owner-only, and the source's mode set before it gets its name;
        // or, where that comes out the same, unnamed with the source's mode.
        let early = self.creation_mode(job);
        let staged = crate::io::StagedFile::new_in_modes(dir, name, early.unwrap_or(0o600), 0o600)
            .with_context(|| format!("{}: cannot create a temporary file", dir.path().display()))?;
        let mode_set = early.is_some() && staged.is_unnamed();
        let out = staged.file();
        let size = job.inode.size;
        // Unreadable ranges (offset, length) with --salvage.
        let mut bad: Vec<(u64, u64)> = Vec::new();
        // Whether the runs are the filesystem's (not made up below for --salvage).
        let mut mapped = true;
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
                mapped = false;
                vec![fsapi::FileRun::Data {
                    offset: 0,
                    len: size,
                    physical: 0,
                }]
            }
            Err(e) => return Err(e),
        };
        // Far away, a file larger than a far copying thread's buffer is read in
        // large requests (split into parallel pieces below) into a buffer of its
        // own, given back once the file is copied: the copying threads' buffers
        // kept the pages of the largest file each had copied (two 8 MiB buffers
        // resident at the peak of a far copy of /usr/share, LT3), while most of
        // the time they copy small files.
        // One file at a time has a CHUNK-sized one; a large file copied meanwhile
        // gets a smaller one (its reads take turns with the first file's anyway).
        let mut own;
        let _full;
        let buf: &mut [u8] = if size > far_own_min() && bytesource::far_reads_seen() {
            let (len, full) = own_len(size, pipeline_min());
            _full = full;
            own = crate::io::AlignedBuf::returned(len);
            &mut own
        } else {
            buf
        };
        let written_to = if size >= pipeline_min() {
            self.copy_runs_pipelined(job, &runs, out, buf, &mut bad)?
        } else {
            let kernel = if mapped {
                self.kernel_copy_for(job, &runs)
            } else {
                None
            };
            self.copy_runs(job, &runs, out, buf, &mut bad, kernel)?
        };
        // Trailing hole (and files that are all hole): the size alone makes it.
        if written_to < size {
            out.set_len(size)?;
        }
        self.finish_file(&job.inode, out, &job.dst, mode_set)?;
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

    /// The mode to create `job`'s unnamed staged file with where that alone gives
    /// the copy its final mode, saving an `fchmod` per file: the source's mode
    /// has no set-id or sticky bits (an owner change with `-a` would clear set-id
    /// bits, and the kernel may drop set-group-id at creation), the umask clears
    /// none of its bits, and no default ACL applies (open(2), acl(5)): the file is
    /// in a directory this copy made ([`FileJob::fresh_dir`]), under a destination
    /// without one ([`Copier::no_default_acl`]).
    fn creation_mode(&self, job: &FileJob) -> Option<u32> {
        let mode = job.inode.mode & 0o7777;
        let umask = crate::io::umask()?;
        (job.fresh_dir
            && self.no_default_acl.load(Ordering::Relaxed)
            && mode & 0o7000 == 0
            && mode & umask == 0)
            .then_some(mode)
    }

    /// Copies the data runs of `job`'s file into `out`, one chunk after another:
    /// read, then write; or, with `kernel`, by the kernel from the host file
    /// ([`Copier::kernel_copy`]) wherever it can. Returns the end of the last byte
    /// written.
    fn copy_runs(
        &self,
        job: &FileJob,
        runs: &[fsapi::FileRun],
        out: &std::fs::File,
        buf: &mut [u8],
        bad: &mut Vec<(u64, u64)>,
        mut kernel: Option<KernelCopy>,
    ) -> Result<u64> {
        let size = job.inode.size;
        let mut written_to = 0u64;
        for chunk in Chunks::new(runs, size, buf.len()) {
            let Chunk {
                mut pos,
                len: mut want,
                physical,
            } = chunk?;
            if let Some(k) = kernel.as_mut() {
                // What the kernel copied is done; the rest (if any) is read here.
                let n = self.kernel_copy(job, pos, physical, want, out, k);
                if n > 0 {
                    self.count_written(n);
                    written_to = pos + n as u64;
                }
                pos += n as u64;
                want -= n;
                if want == 0 {
                    continue;
                }
            }
            let data = &mut buf[..want];
            match self.read_chunk(job, pos, data, out, bad)? {
                Some(n) => {
                    write_pieces(out, &data[..n], pos)
                        .with_context(|| format!("{}: write failed", job.dst.display()))?;
                    self.count_written(n);
                    written_to = pos + n as u64;
                }
                None => written_to = pos + want as u64,
            }
        }
        Ok(written_to)
    }

    /// [`Copier::copy_runs`] for a large file, with the reads and the writes
    /// overlapped: this thread reads the next chunk while a second one writes the
    /// last (two buffers, handed back and forth through channels). Both copies
    /// (from the page cache or the network into the buffer, from the buffer into
    /// the destination's page cache) then run at once on two cores instead of one
    /// after the other, as `dd` and the kernel's `cp` do them. Two threads that
    /// each read and write their own chunks were tried (stop 20): they took twice
    /// the system time (the writes contend for the destination inode's lock) and
    /// were not faster, into tmpfs or onto ext4.
    fn copy_runs_pipelined(
        &self,
        job: &FileJob,
        runs: &[fsapi::FileRun],
        out: &std::fs::File,
        buf: &mut [u8],
        bad: &mut Vec<(u64, u64)>,
    ) -> Result<u64> {
        // A copying thread's large buffer (CHUNK) is split in two for the overlap
        // instead of taking a second one of the same size: a spare of 8 MiB per
        // copying thread, kept for the whole copy, was the largest resident
        // block of a far tree copy (BENCHMARKS.md, issue 13: /proc/PID/smaps at
        // the peak of LT3 showed three 8 MiB buffers fully touched). Reads of
        // 4 MiB are still split into parallel requests below. So is a far file's
        // own buffer (copy_file), at least SECOND_OWN bytes.
        if buf.len() >= SECOND_OWN {
            let (a, b) = buf.split_at_mut(buf.len() / 2 / 4096 * 4096);
            return self.pipeline(job, runs, out, [a, b], bad);
        }
        SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            let spare = match &mut *spare {
                Some(b) if b.len() == buf.len() => b,
                other => other.insert(crate::io::AlignedBuf::new(buf.len())),
            };
            self.pipeline(job, runs, out, [buf, &mut spare[..]], bad)
        })
    }

    /// The overlap of [`Copier::copy_runs_pipelined`]: this thread reads the next
    /// chunk while a second one writes the last (the two buffers handed back and
    /// forth through channels).
    fn pipeline(
        &self,
        job: &FileJob,
        runs: &[fsapi::FileRun],
        out: &std::fs::File,
        bufs: [&mut [u8]; 2],
        bad: &mut Vec<(u64, u64)>,
    ) -> Result<u64> {
        let size = job.inode.size;
        let len = bufs[0].len().min(bufs[1].len());
        std::thread::scope(|scope| {
            // Full buffers to the writer: (buffer, offset, bytes to write).
            let (to_writer, writes) = std::sync::mpsc::sync_channel::<(&mut [u8], u64, usize)>(1);
            // Empty buffers back, with the outcome of their write.
            let (give_back, returned) = std::sync::mpsc::sync_channel::<(&mut [u8], Result<()>)>(2);
            let writer = scope.spawn(move || {
                for (b, pos, n) in writes {
                    let r = write_pieces(out, &b[..n], pos)
                        .with_context(|| format!("{}: write failed", job.dst.display()));
                    if r.is_ok() {
                        self.count_written(n);
                    }
                    if give_back.send((b, r)).is_err() {
                        break;
                    }
                }
            });
            let mut free: Vec<&mut [u8]> = bufs.into_iter().collect();
            let mut written_to = 0u64;
            let mut result = Ok(());
            for chunk in Chunks::new(runs, size, len) {
                let b = match free.pop() {
                    Some(b) => b,
                    None => match returned.recv() {
                        Ok((b, Ok(()))) => b,
                        Ok((_, Err(e))) => {
                            result = Err(e);
                            break;
                        }
                        Err(_) => {
                            result =
                                Err(anyhow!("{}: the writing thread stopped", job.dst.display()));
                            break;
                        }
                    },
                };
                let (pos, want) = match chunk {
                    Ok(c) => (c.pos, c.len),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                };
                let data = &mut b[..want];
                match self.read_chunk(job, pos, data, out, bad) {
                    Ok(Some(n)) => {
                        written_to = pos + n as u64;
                        if to_writer.send((b, pos, n)).is_err() {
                            result =
                                Err(anyhow!("{}: the writing thread stopped", job.dst.display()));
                            break;
                        }
                    }
                    Ok(None) => {
                        written_to = pos + want as u64;
                        free.push(b);
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            drop(to_writer);
            // The writes still in flight: their outcome decides too.
            for (_, r) in returned.iter() {
                if result.is_ok() {
                    result = r;
                }
            }
            if writer.join().is_err() && result.is_ok() {
                result = Err(anyhow!(
                    "{}: the writing thread panicked",
                    job.dst.display()
                ));
            }
            result.map(|()| written_to)
        })
    }

    /// Whether `job`'s data can be copied by the kernel: the disk is local, the
    /// switch is not off, and the first data run lies in a host file
    /// ([`fsapi::Filesystem::data_host_range`]: flat extents, uncompressed grains,
    /// partitions, linear LVs, no replayed journal over it).
    ///
    /// Only files under [`PIPELINE_MIN`] ask: the kernel's copy costs about as much
    /// CPU as a read and a write (it splices page by page), so for a large file
    /// the overlapped copy on two threads finishes first (the 1 GiB file onto the
    /// disk: a median of 387 ms against 502 ms, same system time); for a small one
    /// it saves a system call and a pass through the buffer.
    fn kernel_copy_for(&self, job: &FileJob, runs: &[fsapi::FileRun]) -> Option<KernelCopy> {
        if !kernel_copy_enabled() || bytesource::far_reads_seen() {
            return None;
        }
        let first = Chunks::new(runs, job.inode.size, usize::MAX).next()?.ok()?;
        let len = u64::try_from(first.len).ok()?;
        self.fs
            .data_host_range(job.inode.ino, first.physical, len)
            .map(|_| {
                if COPY_FILE_RANGE_REFUSED.load(Ordering::Relaxed) {
                    // A file just created: its position is 0 (one lseek per file
                    // fewer; every other write is positional).
                    KernelCopy::Sendfile { at: 0 }
                } else {
                    KernelCopy::CopyFileRange
                }
            })
    }

    /// Copies up to `want` bytes of `job`'s file from `pos` (device offset
    /// `physical`) into `out` at `pos`, by the kernel, straight from the host file
    /// that holds them: `copy_file_range` (a reflink or a server-side copy where
    /// the filesystems offer one, else one in-kernel copy), or `sendfile` where the
    /// two files are on different filesystems that cannot do that (EXDEV). One copy
    /// of the bytes instead of two (into the buffer, out of it).
    ///
    /// Returns how many bytes were copied, from the start; the caller reads the
    /// rest the usual way. Any failure (a read error of the host file, a full
    /// destination, a range the layers do not look through) ends the kernel's part
    /// for this file, so that the usual path meets it again and reports it with
    /// its retries, `--salvage` and messages.
    fn kernel_copy(
        &self,
        job: &FileJob,
        pos: u64,
        physical: u64,
        want: usize,
        out: &std::fs::File,
        how: &mut KernelCopy,
    ) -> usize {
        let mut done = 0usize;
        let was = *how;
        while done < want && *how != KernelCopy::Off {
            let Some(range) = self.fs.data_host_range(
                job.inode.ino,
                physical.wrapping_add(done as u64),
                (want - done) as u64,
            ) else {
                *how = KernelCopy::Off;
                break;
            };
            let mut from = range.offset;
            let mut to = pos + done as u64;
            let n = usize::try_from(range.len)
                .unwrap_or(usize::MAX)
                .min(want - done);
            let r = match how {
                KernelCopy::CopyFileRange => {
                    rustix::fs::copy_file_range(range.file, Some(&mut from), out, Some(&mut to), n)
                }
                // sendfile writes at the destination's file position: set it
                // where it is not there yet (nothing else uses it: every other
                // write is positional).
                KernelCopy::Sendfile { at } if *at == to => {
                    rustix::fs::sendfile(out, range.file, Some(&mut from), n)
                }
                _ => rustix::fs::seek(out, rustix::fs::SeekFrom::Start(to))
                    .and_then(|_| rustix::fs::sendfile(out, range.file, Some(&mut from), n)),
            };
            match r {
                // Zero: the host file ended early; the usual read says so.
                Ok(0) => *how = KernelCopy::Off,
                Ok(k) => {
                    let k = k.min(n);
                    done += k;
                    if let KernelCopy::Sendfile { at } = how {
                        *at = to + k as u64;
                    }
                }
                Err(e)
                    if *how == KernelCopy::CopyFileRange
                        && matches!(
                            e,
                            rustix::io::Errno::XDEV
                                | rustix::io::Errno::INVAL
                                | rustix::io::Errno::OPNOTSUPP
                                | rustix::io::Errno::NOSYS
                        ) =>
                {
                    // Remembered for the files after this one (one destination,
                    // one pair of filesystems, in all but odd cases; sendfile
                    // serves any pair).
                    COPY_FILE_RANGE_REFUSED.store(true, Ordering::Relaxed);
                    *how = KernelCopy::Sendfile { at: u64::MAX }
                }
                Err(_) => *how = KernelCopy::Off,
            }
        }
        KERNEL_COPIED.fetch_add(done as u64, Ordering::Relaxed);
        if was != KernelCopy::Off && *how == KernelCopy::Off {
            KERNEL_GAVE_UP.fetch_add(1, Ordering::Relaxed);
        }
        done
    }

    /// Reads the chunk of `job`'s file at `pos` into `data`, whole: `Some` of its
    /// length, or `None` when a read failed and `--salvage` wrote what could be read
    /// ([`Copier::salvage_chunk`]).
    fn read_chunk(
        &self,
        job: &FileJob,
        pos: u64,
        data: &mut [u8],
        out: &std::fs::File,
        bad: &mut Vec<(u64, u64)>,
    ) -> Result<Option<usize>> {
        let mut got = 0usize;
        while got < data.len() {
            let at = pos + got as u64;
            match self
                .fs
                .read_at(job.inode.ino, at, &mut data[got..])
                .map_err(anyhow::Error::from)
            {
                Ok(0) => bail!(
                    "unexpected end of file data at offset {at} of {}",
                    job.inode.size
                ),
                // A block that reads as zeros inside a data run (preallocated space
                // the guest never wrote) stays data: cp keeps what the fs says.
                Ok(n) => got += n,
                Err(e) if self.opts.salvage => {
                    self.salvage_chunk(job, pos, data, out, bad, &e)?;
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Some(got))
    }

    fn count_written(&self, n: usize) {
        self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.progress.bytes(n as u64);
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

/// How [`Copier::kernel_copy`] copies the rest of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KernelCopy {
    CopyFileRange,
    /// `copy_file_range` refused the pair of files (EXDEV and the like); `at` is
    /// where the destination's file position is known to be (`u64::MAX`: unknown).
    Sendfile {
        at: u64,
    },
    /// The kernel's part failed once: the usual path copies the rest.
    Off,
}

/// Bytes [`Copier::kernel_copy`] copied, and the files whose copy it had to leave
/// to the usual path part-way (for `VMDKRECOVER_IO_STATS`).
static KERNEL_COPIED: AtomicU64 = AtomicU64::new(0);
static KERNEL_GAVE_UP: AtomicU64 = AtomicU64::new(0);
/// Set once `copy_file_range` refused a pair of files: later files go straight to
/// `sendfile` instead of asking again, one failing call per file.
static COPY_FILE_RANGE_REFUSED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// (bytes copied by the kernel, files it gave up on part-way) in this process.
pub fn kernel_copy_stats() -> (u64, u64) {
    (
        KERNEL_COPIED.load(Ordering::Relaxed),
        KERNEL_GAVE_UP.load(Ordering::Relaxed),
    )
}

/// `VMDKRECOVER_KERNEL_COPY=0` turns the kernel's copy off (for A/B measurements,
/// and for the checks that send every byte through the usual read path).
fn kernel_copy_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    super::env_switch(&ON, "VMDKRECOVER_KERNEL_COPY")
}

thread_local! {
    /// Each copying thread's second buffer for [`Copier::copy_runs_pipelined`]
    /// (kept, so its pages are faulted in once per thread, not once per file).
    /// Only an extra copying thread of a far copy (its buffer is smaller than
    /// [`CHUNK`]) copying a large file while the disk no longer counts as far takes
    /// one: far away, a large file has a buffer of its own ([`Copier::copy_file`]),
    /// split in two. Every copying thread of a local copy has a [`CHUNK`] buffer and
    /// splits it.
    static SPARE: std::cell::RefCell<Option<crate::io::AlignedBuf>> =
        const { std::cell::RefCell::new(None) };
}

/// The chunks (offset in the file, length) a copy reads: each data run of the
/// file, up to its size, cut into pieces of at most the buffer's length and of
/// [`CHUNK`] bytes once the disk is far away, [`LOCAL_CHUNK`] while it is local.
/// Holes and unwritten (preallocated) runs read as zeros: both stay holes.
struct Chunks<'a> {
    runs: std::slice::Iter<'a, fsapi::FileRun>,
    size: u64,
    buf_len: usize,
    /// The rest of the current run: (next offset, end, device offset of the run's
    /// first byte minus its file offset).
    current: Option<(u64, u64, u64)>,
}

/// One piece of a copy: `len` bytes at `pos` in the file, at `physical` on the
/// filesystem's device (meaningless when the runs were made up for `--salvage`).
#[derive(Clone, Copy, Debug)]
struct Chunk {
    pos: u64,
    len: usize,
    physical: u64,
}

impl<'a> Chunks<'a> {
    fn new(runs: &'a [fsapi::FileRun], size: u64, buf_len: usize) -> Self {
        Self {
            runs: runs.iter(),
            size,
            buf_len,
            current: None,
        }
    }
}

impl Iterator for Chunks<'_> {
    type Item = Result<Chunk>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((pos, end, base)) = self.current {
                if pos < end {
                    let step = if bytesource::far_reads_seen() {
                        CHUNK
                    } else {
                        LOCAL_CHUNK
                    };
                    let want = usize::try_from(end - pos)
                        .unwrap_or(usize::MAX)
                        .min(self.buf_len)
                        .min(step);
                    if want == 0 {
                        return Some(Err(anyhow!("no copy buffer")));
                    }
                    self.current = Some((pos + want as u64, end, base));
                    return Some(Ok(Chunk {
                        pos,
                        len: want,
                        physical: base.wrapping_add(pos),
                    }));
                }
            }
            match self.runs.next()? {
                fsapi::FileRun::Data {
                    offset,
                    len,
                    physical,
                } => {
                    // Wrapping: only differences of it are meaningful.
                    let base = physical.wrapping_sub(*offset);
                    self.current =
                        Some((*offset, offset.saturating_add(*len).min(self.size), base));
                }
                _ => self.current = None,
            }
        }
    }
}
