//! Reading small files' data ahead of their copy, where the disk is far away.
//!
//! A copying thread about to copy a batch of files ([`super::walk::BATCH`], one
//! directory's) first has the data of its small files read ahead
//! ([`Copier::prefetch_small_files`]): their ranges on the device, sorted, nearby ones
//! coalesced into requests ("windows") of at most [`WINDOW`] bytes, at most
//! [`BATCH_BYTES`] in all. The windows are read by a pool of [`WORKERS`] threads
//! ([`Pool`]), made once per copy when the disk turns out to be far and joined at
//! its end, with the copying thread reading its own batch's windows too, until all
//! of them are read; then it copies the batch as usual, from the host page cache.
//!
//! Each window is under [`bytesource::PARALLEL_MIN`], so that it is one buffered
//! `pread` whose pages stay in the host page cache for the copy's own reads (split
//! reads of a far file go `O_DIRECT`, past the page cache). Nothing here affects what
//! is copied: errors are ignored (the copy's own read reports them) and so is
//! whatever a window holds.
//!
//! The scanners ([`super::ahead`]) use the pool the same way for the blocks of the
//! directories they read next ([`Copier::prefetch_dirs`]).
//!
//! Memory is bounded: a buffer of at most [`WINDOW`] bytes per reading thread, and the
//! windows of the batches being copied and directories being read (one batch per
//! copying thread, one directory per scanner).

use super::walk::{Copier, FileJob};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Files at most this large have their data read ahead (larger ones are read in
/// split, parallel requests of their own).
const SMALL_FILE: u64 = 128 << 10;
/// Largest read-ahead request: under [`bytesource::PARALLEL_MIN`] (see the module doc).
const WINDOW: u64 = 192 << 10;
/// Ranges this close together on the device are read in one request (the bytes
/// between them are read too, and dropped).
const GAP: u64 = 64 << 10;
/// Reading threads of the pool (shared by all copying threads; each copying thread
/// also reads its own batch's windows).
pub(super) const WORKERS: usize = 8;
/// Most bytes one batch reads ahead.
const BATCH_BYTES: u64 = 8 << 20;
/// Most bytes of directory blocks one directory's subdirectories read ahead.
const DIR_BYTES: u64 = 2 << 20;

/// `VMDKRECOVER_DATA_READAHEAD=0` turns the small files' read-ahead off (for A/B
/// measurements).
pub(super) fn data_read_ahead() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    super::env_switch(&ON, "VMDKRECOVER_DATA_READAHEAD")
}

/// One batch's windows (device byte ranges), read by whoever takes the next one.
struct Job {
    windows: Vec<(u64, u64)>,
    /// Index of the next window to take.
    next: AtomicUsize,
    /// Windows not yet read (taken or not); the copying thread waits for 0.
    left: Mutex<usize>,
    all_read: Condvar,
}

impl Job {
    /// Takes the next window, if any is left.
    fn take(&self) -> Option<(u64, u64)> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.windows.get(i).copied()
    }

    fn read_one(&self) {
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.all_read.notify_all();
        }
    }
}

/// The pool of reading threads, with the batches waiting for them.
#[derive(Default)]
pub(super) struct Pool {
    state: Mutex<State>,
    work: Condvar,
}

#[derive(Default)]
struct State {
    /// Batches with windows not yet taken, oldest first.
    jobs: VecDeque<Arc<Job>>,
    /// Reading threads running.
    workers: usize,
    /// The copy is over: the reading threads stop.
    closed: bool,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking thread ends the copy anyway; the state stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the reading threads in `scope` (once; later calls do nothing).
    pub fn start<'s>(
        &'s self,
        copier: &'s Copier<'_>,
        scope: &'s std::thread::Scope<'s, '_>,
        n: usize,
    ) {
        {
            let mut st = self.lock();
            if st.workers > 0 || st.closed || n == 0 {
                return;
            }
            st.workers = n;
        }
        for _ in 0..n {
            scope.spawn(move || self.worker(copier));
        }
    }

    /// Whether reading threads are running.
    fn running(&self) -> bool {
        let st = self.lock();
        st.workers > 0 && !st.closed
    }

    /// The copy is over: the reading threads stop once the batches queued are read.
    pub fn close(&self) {
        self.lock().closed = true;
        self.work.notify_all();
    }

    /// A reading thread: the windows of the oldest batch with any left, until the
    /// pool is closed.
    fn worker(&self, copier: &Copier<'_>) {
        // One window's buffer, allocated once: grown window by window it was
        // reallocated up to twice the window's size.
        let mut buf = vec![0u8; usize::try_from(WINDOW).unwrap_or(0)];
        loop {
            let job = {
                let mut st = self.lock();
                loop {
                    if let Some(job) = st.jobs.front() {
                        break job.clone();
                    }
                    if st.closed {
                        return;
                    }
                    st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            };
            match job.take() {
                Some(w) => {
                    copier.read_window(w, &mut buf);
                    job.read_one();
                }
                // All taken: off the queue (if still at its front).
                None => {
                    let mut st = self.lock();
                    if st.jobs.front().is_some_and(|j| Arc::ptr_eq(j, &job)) {
                        st.jobs.pop_front();
                    }
                }
            }
        }
    }

    /// Reads `windows` with the pool's help (this thread's share into `buf`, cut
    /// to the window), returning once all are read.
    fn read_all(&self, copier: &Copier<'_>, windows: Vec<(u64, u64)>, buf: &mut [u8]) {
        let n = windows.len();
        let job = Arc::new(Job {
            windows,
            next: AtomicUsize::new(0),
            left: Mutex::new(n),
            all_read: Condvar::new(),
        });
        if n > 1 {
            self.lock().jobs.push_back(job.clone());
            // As many readers as windows beyond the one this thread takes.
            for _ in 1..n.min(WORKERS.saturating_add(1)) {
                self.work.notify_one();
            }
        }
        while let Some(w) = job.take() {
            copier.read_window(w, buf);
            job.read_one();
        }
        // All taken: off the queue, then wait for those other threads are reading.
        if n > 1 {
            let mut st = self.lock();
            if let Some(i) = st.jobs.iter().position(|j| Arc::ptr_eq(j, &job)) {
                st.jobs.remove(i);
            }
        }
        let mut left = job.left.lock().unwrap_or_else(|e| e.into_inner());
        while *left > 0 {
            left = job.all_read.wait(left).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Appends the device ranges of a file's data `runs` to `ranges`, each cut to
/// `size` bytes (a run may reach past the end of the file, into its last block),
/// skipping those that would take `total` past `cap` (so that later, smaller ones
/// still fit).
fn gather(
    runs: &[fsapi::FileRun],
    size: u64,
    cap: u64,
    total: &mut u64,
    ranges: &mut Vec<(u64, u64)>,
) {
    for run in runs {
        if let fsapi::FileRun::Data { len, physical, .. } = *run {
            let len = len.min(size);
            if len == 0 || total.saturating_add(len) > cap {
                continue;
            }
            *total = total.saturating_add(len);
            ranges.push((physical, physical.saturating_add(len)));
        }
    }
}

/// Sorts `ranges` (device byte ranges, `start..end`) and merges them into windows
/// `(start, end, ranges in it)`: a range starting at most [`GAP`] bytes after the
/// window's end joins it while the window stays at most [`WINDOW`] bytes; a range
/// longer than [`WINDOW`] is cut to it (the rest is left to the copy's own read).
fn coalesce(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64, usize)> {
    ranges.sort_unstable();
    let mut windows: Vec<(u64, u64, usize)> = Vec::new();
    for (start, end) in ranges {
        match windows.last_mut() {
            Some(w)
                if start <= w.1.saturating_add(GAP)
                    && end.max(w.1).saturating_sub(w.0) <= WINDOW =>
            {
                w.1 = w.1.max(end);
                w.2 = w.2.saturating_add(1);
            }
            _ => windows.push((start, end.min(start.saturating_add(WINDOW)), 1)),
        }
    }
    windows
}

impl Copier<'_> {
    /// Where the disk is far away and the pool is running, reads the data of the
    /// batch's small files ahead, before they are copied (see the module doc). Files
    /// that one directory holds were mostly allocated together, so a batch of a few
    /// dozen small files costs a few parallel requests instead of one serial round
    /// trip each.
    /// `buf` is the copying thread's buffer (at least [`WINDOW`] bytes), for the
    /// windows it reads itself.
    pub(super) fn prefetch_small_files(&self, batch: &[FileJob], buf: &mut [u8]) {
        if !bytesource::far_reads_seen() || !data_read_ahead() || !self.prefetch.running() {
            return;
        }
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
            gather(&runs, size, BATCH_BYTES, &mut total, &mut ranges);
        }
        if ranges.len() < 2 {
            return;
        }
        let windows = coalesce(ranges).into_iter().map(|w| (w.0, w.1)).collect();
        self.prefetch.read_all(self, windows, buf);
    }

    /// Where the disk is far away and the pool is running, reads the blocks of the
    /// directories `dirs` (a directory's subdirectories, which the scanners read
    /// next) ahead where that saves requests: windows holding blocks of several of
    /// them, or several blocks of one. Directories made together have their blocks
    /// close together, so a directory of a dozen subdirectories costs a few requests
    /// instead of one each; the scanners then find the blocks in the host page
    /// cache. Called by a scanner before it hands the parent over, so that these
    /// reads are in flight before the subdirectories' own.
    ///
    /// The warnings the block maps raise here are dropped, not deferred: this read
    /// is not one the walk makes. Each directory's own read (`read_dir`, which maps
    /// its blocks itself) raises its own, in the walk's order, as without this.
    pub(super) fn prefetch_dirs(&self, dirs: &[u64]) {
        if dirs.len() < 2 || !data_read_ahead() || !self.prefetch.running() {
            return;
        }
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        let mut total = 0u64;
        for &ino in dirs {
            let runs = match self.fs.warning_list() {
                Some(w) => w.deferred(|| self.fs.file_runs(ino)).0,
                None => self.fs.file_runs(ino),
            };
            let Ok(runs) = runs else { continue };
            gather(&runs, u64::MAX, DIR_BYTES, &mut total, &mut ranges);
        }
        // A window of one range saves nothing: its directory's own read does it.
        let windows: Vec<(u64, u64)> = coalesce(ranges)
            .into_iter()
            .filter(|w| w.2 > 1)
            .map(|w| (w.0, w.1))
            .collect();
        if windows.is_empty() {
            return;
        }
        // The scanner's own buffer, kept for its next directories.
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with(|b| {
            let mut buf = b.borrow_mut();
            buf.resize(usize::try_from(WINDOW).unwrap_or(0), 0);
            self.prefetch.read_all(self, windows, &mut buf);
        });
    }

    /// Reads one window (at most [`WINDOW`] bytes) into `buf` (reused) and drops it:
    /// its pages stay in the host page cache.
    fn read_window(&self, (start, end): (u64, u64), buf: &mut [u8]) {
        let len = usize::try_from(end.saturating_sub(start)).unwrap_or(0);
        if let Some(b) = buf.get_mut(..len) {
            let _ = self.fs.read_device_at(start, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1 << 10;

    #[test]
    fn coalesce_merges_near_ranges_up_to_a_window() {
        // Unsorted on purpose; GAP = 64 KiB, WINDOW = 192 KiB.
        let ranges = vec![
            (1000 * K, 1004 * K), // alone: the next starts 96 KiB after its end
            (0, 4 * K),
            (68 * K, 72 * K),     // 64 KiB after the first: joins it
            (72 * K, 80 * K),     // adjacent: joins
            (100 * K, 196 * K),   // would make the window 196 KiB: a new one
            (2000 * K, 2400 * K), // longer than a window: cut to 192 KiB
            (1100 * K, 1101 * K),
        ];
        assert_eq!(
            coalesce(ranges),
            vec![
                (0, 80 * K, 3),
                (100 * K, 196 * K, 1),
                (1000 * K, 1004 * K, 1),
                (1100 * K, 1101 * K, 1),
                (2000 * K, 2192 * K, 1),
            ]
        );
    }

    #[test]
    fn coalesce_keeps_overlaps_and_empty_input() {
        assert_eq!(coalesce(Vec::new()), Vec::new());
        // Overlapping and contained ranges (e.g. two files sharing a block).
        let ranges = vec![(10 * K, 20 * K), (12 * K, 14 * K), (15 * K, 30 * K)];
        assert_eq!(coalesce(ranges), vec![(10 * K, 30 * K, 3)]);
    }

    #[test]
    fn gather_cuts_runs_to_the_size_and_caps_the_total() {
        let runs = [
            fsapi::FileRun::Data {
                offset: 0,
                len: 8 * K,
                physical: 100 * K,
            },
            fsapi::FileRun::Hole {
                offset: 8 * K,
                len: 4 * K,
            },
            fsapi::FileRun::Data {
                offset: 12 * K,
                len: 8 * K,
                physical: 300 * K,
            },
        ];
        let (mut total, mut ranges) = (0, Vec::new());
        gather(&runs, 6 * K, 12 * K, &mut total, &mut ranges);
        assert_eq!(ranges, vec![(100 * K, 106 * K), (300 * K, 306 * K)]);
        // 12 KiB gathered: 4 more fit under a 16 KiB cap, then nothing does.
        gather(&runs[..1], 4 * K, 16 * K, &mut total, &mut ranges);
        assert_eq!(total, 16 * K);
        gather(&runs, u64::MAX, 16 * K, &mut total, &mut ranges);
        assert_eq!(ranges.len(), 3);
    }
}
