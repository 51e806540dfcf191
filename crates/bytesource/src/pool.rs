//! A persistent, bounded pool of reader threads, shared by the whole process.
//!
//! Where reads are far away (NFS, FUSE: a round trip per request), the layers keep
//! several requests in flight. Spawning a thread per request costs a `clone3`, a
//! stack `mmap` and its `munmap` each time; the pool starts its threads once, as
//! they are first needed, and keeps them for the process. Its users: extfs's
//! inode-table read-ahead and xfs's inode-cluster read-ahead, whose jobs read into
//! buffers of their own that go straight into the block cache (a copy of
//! /usr/share behind 1 ms: 1,893 threads started to about 1,245). Split reads of
//! one caller's buffer ([`crate::FileSource`]) keep scoped threads: a pool thread
//! cannot borrow that buffer, and reading into one of its own and copying it over
//! cost more CPU and memory than the threads it saved.
//!
//! [`run_all`] runs a batch of jobs: the calling thread takes jobs of its own batch
//! too, and waits only for jobs other threads have already taken (so a job may
//! itself call [`run_all`] without deadlocking the pool, and a batch finishes even
//! when every pool thread is busy). Jobs own what they touch (`'static`: an
//! `Arc`'d file, an owned buffer), since a pool thread outlives the caller's stack
//! frame; results come back in the order of the jobs.
//!
//! Bounds: at most [`MAX_THREADS`] pool threads in the process, each with a small
//! stack ([`STACK`]); a batch's jobs are queued (never more threads than that).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

/// Most pool threads in the process: enough for the read-ahead batches of several
/// callers at once (extfs keeps 8 windows in flight per batch), with room for
/// nested batches; more threads than that would only add memory.
pub const MAX_THREADS: usize = 32;
/// Stack of a pool thread: jobs are reads and copies, with no deep recursion.
const STACK: usize = 256 << 10;

/// A job of a batch, as the pool threads see it.
trait Batch: Send + Sync {
    /// Runs one job not yet taken; false when all are taken.
    fn run_one(&self) -> bool;
}

/// A unit of work: owns what it needs.
pub type Job<T> = Box<dyn FnOnce() -> T + Send + 'static>;

struct Jobs<T> {
    /// Jobs not yet taken, with their index.
    todo: Mutex<VecDeque<(usize, Job<T>)>>,
    /// Results by index (`None` for a job that panicked) and jobs not finished.
    done: Mutex<(Vec<Option<T>>, usize)>,
    finished: Condvar,
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    // A job that panicked is caught (see `run_one`); the state stays usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T: Send + 'static> Batch for Jobs<T> {
    fn run_one(&self) -> bool {
        let Some((i, job)) = lock(&self.todo).pop_front() else {
            return false;
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).ok();
        let mut done = lock(&self.done);
        if let Some(slot) = done.0.get_mut(i) {
            *slot = r;
        }
        done.1 = done.1.saturating_sub(1);
        if done.1 == 0 {
            self.finished.notify_all();
        }
        true
    }
}

struct State {
    /// Batches with jobs not yet taken, oldest first.
    queue: VecDeque<Arc<dyn Batch>>,
    /// Pool threads started, and those waiting for work.
    threads: usize,
    idle: usize,
    /// Wake-ups sent and not yet taken by a waiting thread (a condition variable
    /// may wake a thread spuriously: only a taken wake-up makes it busy).
    wakeups: usize,
}

struct Pool {
    state: Mutex<State>,
    work: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            threads: 0,
            idle: 0,
            wakeups: 0,
        }),
        work: Condvar::new(),
    })
}

/// Threads the pool has started so far (for diagnostics and tests).
pub fn threads_started() -> usize {
    lock(&pool().state).threads
}

impl Pool {
    /// A pool thread: jobs of the oldest batch with any left, for ever.
    fn worker(&'static self) {
        loop {
            let batch = {
                let mut st = lock(&self.state);
                loop {
                    if let Some(b) = st.queue.front() {
                        break b.clone();
                    }
                    st.idle = st.idle.saturating_add(1);
                    while st.wakeups == 0 {
                        st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    st.wakeups = st.wakeups.saturating_sub(1);
                    st.idle = st.idle.saturating_sub(1);
                }
            };
            if !batch.run_one() {
                // All taken: off the queue (if still at its front).
                let mut st = lock(&self.state);
                if st.queue.front().is_some_and(|b| Arc::ptr_eq(b, &batch)) {
                    st.queue.pop_front();
                }
            }
        }
    }

    /// Queues `batch` and wakes (or starts) up to `helpers` threads for it.
    fn submit(&'static self, batch: Arc<dyn Batch>, helpers: usize) {
        let mut st = lock(&self.state);
        st.queue.push_back(batch);
        let wake = helpers.min(st.idle.saturating_sub(st.wakeups));
        st.wakeups = st.wakeups.saturating_add(wake);
        for _ in 0..wake {
            self.work.notify_one();
        }
        let mut start = helpers
            .saturating_sub(wake)
            .min(MAX_THREADS.saturating_sub(st.threads));
        while start > 0 {
            let spawned = std::thread::Builder::new()
                .name("vmdkrecover-reader".into())
                .stack_size(STACK)
                .spawn(move || self.worker());
            if spawned.is_err() {
                // Out of threads: the caller reads its batch itself.
                break;
            }
            st.threads = st.threads.saturating_add(1);
            start = start.saturating_sub(1);
        }
    }
}

/// Runs `jobs` on the pool's threads and this one, returning each job's result in
/// the order given (`None` for a job that panicked). Returns once all have run.
pub fn run_all<T: Send + 'static>(jobs: Vec<Job<T>>) -> Vec<Option<T>> {
    let n = jobs.len();
    if n <= 1 {
        return jobs
            .into_iter()
            .map(|j| std::panic::catch_unwind(std::panic::AssertUnwindSafe(j)).ok())
            .collect();
    }
    let batch = Arc::new(Jobs {
        todo: Mutex::new(jobs.into_iter().enumerate().collect()),
        done: Mutex::new(((0..n).map(|_| None).collect(), n)),
        finished: Condvar::new(),
    });
    let p = pool();
    let shared: Arc<dyn Batch> = batch.clone();
    // One job is this thread's.
    p.submit(shared.clone(), n.saturating_sub(1));
    while batch.run_one() {}
    {
        let mut st = lock(&p.state);
        if let Some(i) = st.queue.iter().position(|b| Arc::ptr_eq(b, &shared)) {
            st.queue.remove(i);
        }
    }
    let mut done = lock(&batch.done);
    while done.1 > 0 {
        done = batch.finished.wait(done).unwrap_or_else(|e| e.into_inner());
    }
    std::mem::take(&mut done.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn results_come_back_in_order_and_threads_are_reused() {
        for round in 0..50usize {
            let jobs: Vec<Job<usize>> = (0..8usize)
                .map(|i| Box::new(move || i * round) as Job<usize>)
                .collect();
            let r = run_all(jobs);
            assert_eq!(r, (0..8).map(|i| Some(i * round)).collect::<Vec<_>>());
        }
        // 50 batches of 8 jobs: far fewer threads than jobs.
        assert!(threads_started() <= MAX_THREADS);
    }

    #[test]
    fn jobs_run_at_once_and_nested_batches_finish() {
        // Each job waits until all 8 have started: they only finish if they run at
        // the same time (7 pool threads and the caller).
        let started = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<Job<usize>> = (0..8usize)
            .map(|_| {
                let started = started.clone();
                Box::new(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    let t = std::time::Instant::now();
                    while started.load(Ordering::SeqCst) < 8
                        && t.elapsed() < std::time::Duration::from_secs(20)
                    {
                        std::thread::yield_now();
                    }
                    // A nested batch from inside a job.
                    let inner: Vec<Job<usize>> = (0..4usize)
                        .map(|k| Box::new(move || k) as Job<usize>)
                        .collect();
                    run_all(inner).into_iter().flatten().sum::<usize>()
                }) as Job<usize>
            })
            .collect();
        let r = run_all(jobs);
        assert_eq!(started.load(Ordering::SeqCst), 8);
        assert_eq!(r, vec![Some(6); 8]);
    }

    #[test]
    fn a_panicking_job_is_none_and_the_pool_goes_on() {
        let jobs: Vec<Job<u8>> = vec![
            Box::new(|| 1),
            Box::new(|| panic!("a job panics")),
            Box::new(|| 3),
        ];
        assert_eq!(run_all(jobs), vec![Some(1), None, Some(3)]);
        let jobs: Vec<Job<u8>> = vec![Box::new(|| 4), Box::new(|| 5)];
        assert_eq!(run_all(jobs), vec![Some(4), Some(5)]);
    }
}
