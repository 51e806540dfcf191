//! The buffers that stored compressed grains are read into before they are
//! inflated ([`crate::grain`]'s grouped reads of stream-optimized grains): a
//! process-wide pool of [`GROUP_BUFFERS`] equal buffers, reused, never more handed
//! out at once.
//!
//! Not an on-disk concept, but where memory of a far stream copy went. Each grouped
//! read allocated a buffer of its own (up to 12 MiB for a far copy's 8 MiB reads)
//! and freed it. Freeing an mmapped block raises glibc's mmap threshold to its size
//! (up to 32 MiB) and the trim threshold to twice that (mallopt(3),
//! `M_MMAP_THRESHOLD`, dynamic threshold), after which every one of the up to 16
//! per-thread arenas of a far copy (about 30 threads) keeps that much free memory
//! unreturned. Copying `/usr/share` out of a stream-optimized disk over nbdfuse:
//! 80-95 MiB RSS at the peak, of which malloc_trim(0) called at the peak (gdb)
//! released 24 MiB; malloc_stats showed 45 MiB of arena memory with 12 MiB in use.
//! Large group buffers are now allocated once, kept and never freed while the
//! process reads, so they no longer raise the thresholds; smaller groups (at most
//! [`SMALL_GROUP`], e.g. a small file's read-ahead window) keep their own short
//! buffer, whose size raises them little.

use std::sync::{Condvar, Mutex, MutexGuard};

/// Most stored bytes one grouped read covers (see `grain::GROUP_BYTES`): a far
/// copy's 4 MiB read of grains that barely compress, with room to spare (2 MiB
/// groups made its reads of a 1 GiB file a third slower, one request after
/// another).
pub(crate) const GROUP_BYTES: u64 = 6 * 1024 * 1024;
/// Groups of at most this many stored bytes read into a buffer of their own.
pub(crate) const SMALL_GROUP: usize = 256 * 1024;
/// Pages around a group: its bytes rounded out to pages at both ends (two pages),
/// and a page of slack to align the start (`O_DIRECT` reads).
const SLACK: usize = 3 * 4096;
/// Bytes of each buffer: a whole group and its slack.
pub(crate) const BUF_BYTES: usize = const_add(usize_of(GROUP_BYTES), SLACK);
/// Buffers handed out at once; a thread that wants one more waits for one back.
/// Two: the two copying threads of a far copy that have 8 MiB buffers (measured:
/// four, with sixteen small ones besides, held more than they saved).
pub(crate) const GROUP_BUFFERS: usize = 2;
/// Most bytes the pool ever holds, for the whole process (about 12 MiB, only the
/// pages a group has used resident).
pub const POOL_BYTES: u64 = u64_of(const_mul(GROUP_BUFFERS, BUF_BYTES));

// The sizes above are derived at compile time: in a constant, a conversion that
// loses bits or an overflow below stops the build instead of wrapping.

/// `n` as a `usize`, checked.
#[allow(clippy::as_conversions, clippy::cast_possible_truncation)]
const fn usize_of(n: u64) -> usize {
    let m = n as usize;
    assert!(m as u64 == n, "size does not fit in usize");
    m
}

/// `n` as a `u64`, checked.
#[allow(clippy::as_conversions)]
const fn u64_of(n: usize) -> u64 {
    let m = n as u64;
    assert!(m as usize == n, "size does not fit in u64");
    m
}

/// `a + b`, checked.
const fn const_add(a: usize, b: usize) -> usize {
    match a.checked_add(b) {
        Some(n) => n,
        None => panic!("size overflows usize"),
    }
}

/// `a * b`, checked.
const fn const_mul(a: usize, b: usize) -> usize {
    match a.checked_mul(b) {
        Some(n) => n,
        None => panic!("size overflows usize"),
    }
}

struct State {
    /// Buffers given back, ready for the next taker.
    free: Vec<Vec<u8>>,
    /// Buffers handed out now.
    out: usize,
}

/// Equal buffers of `bytes` bytes, at most `count` out at once.
pub(crate) struct Pool {
    state: Mutex<State>,
    back: Condvar,
    count: usize,
    bytes: usize,
}

impl Pool {
    const fn new(count: usize, bytes: usize) -> Self {
        Self {
            state: Mutex::new(State {
                free: Vec::new(),
                out: 0,
            }),
            back: Condvar::new(),
            count,
            bytes,
        }
    }

    /// The pool's state; a panic elsewhere while it was held leaves it consistent
    /// (every change is one field at a time), so a poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The buffers of grouped reads (groups of up to [`GROUP_BYTES`]).
pub(crate) static LARGE: Pool = Pool::new(GROUP_BUFFERS, BUF_BYTES);

/// A buffer from a pool, given back when dropped.
pub(crate) struct GroupBuf {
    pool: &'static Pool,
    buf: Vec<u8>,
}

impl GroupBuf {
    /// A buffer from `pool`: a kept one, a new one while fewer than its count are
    /// out, else (`wait`) the next one given back, or (without `wait`) `None`.
    pub(crate) fn take(pool: &'static Pool, wait: bool) -> Option<Self> {
        let mut s = pool.lock();
        while s.out >= pool.count {
            if !wait {
                return None;
            }
            s = pool.back.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.out = s.out.saturating_add(1);
        let kept = s.free.pop();
        drop(s);
        Some(Self {
            pool,
            buf: kept.unwrap_or_else(|| vec![0u8; pool.bytes]),
        })
    }

    /// A pooled buffer for a group of `len` bytes (page-rounded), waiting for one;
    /// `None` for a small group, or one larger than a buffer holds: the caller
    /// reads those into a buffer of its own.
    pub(crate) fn for_group(len: usize) -> Option<Self> {
        if len <= SMALL_GROUP.saturating_add(2 * 4096) {
            None
        } else if len <= BUF_BYTES.saturating_sub(4096) {
            Self::take(&LARGE, true)
        } else {
            None
        }
    }

    /// `len` bytes of the buffer starting on a page boundary (as the byte source's
    /// `O_DIRECT` reads want), when they fit.
    pub(crate) fn aligned(&mut self, len: usize) -> Option<&mut [u8]> {
        let skip = self.buf.as_ptr().align_offset(4096).min(4096);
        self.buf.get_mut(skip..skip.checked_add(len)?)
    }
}

impl Drop for GroupBuf {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut s = self.pool.lock();
        s.out = s.out.saturating_sub(1);
        if s.free.len() < self.pool.count && buf.len() == self.pool.bytes {
            s.free.push(buf);
        }
        drop(s);
        self.pool.back.notify_one();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::as_conversions, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn derived_sizes_are_the_documented_ones() {
        // 6 MiB groups and three pages of slack per buffer, two buffers.
        assert_eq!(BUF_BYTES, 6 * 1024 * 1024 + 3 * 4096);
        assert_eq!(POOL_BYTES, 2 * (6 * 1024 * 1024 + 3 * 4096));
    }

    #[test]
    fn buffers_are_reused_and_at_most_count_are_out() {
        // A pool of its own: the statics are shared with the other tests.
        static P: Pool = Pool::new(2, 3 * 4096);
        let mut a = GroupBuf::take(&P, true).unwrap();
        let addr = a.buf.as_ptr() as usize;
        let p = a.aligned(2 * 4096).unwrap();
        assert_eq!(p.as_ptr() as usize % 4096, 0);
        assert!(a.aligned(3 * 4096 + 1).is_none());
        drop(a);
        let b = GroupBuf::take(&P, false).unwrap();
        assert_eq!(
            b.buf.as_ptr() as usize,
            addr,
            "the buffer given back is reused"
        );
        let c = GroupBuf::take(&P, false).unwrap();
        assert!(GroupBuf::take(&P, false).is_none(), "at most two out");
        // A waiting taker gets the next buffer given back.
        std::thread::scope(|s| {
            let t = s.spawn(|| GroupBuf::take(&P, true).map(|b| b.buf.len()));
            drop(b);
            assert_eq!(t.join().unwrap(), Some(3 * 4096));
        });
        drop(c);
        assert_eq!(P.lock().out, 0);
        assert_eq!(P.lock().free.len(), 2);
    }

    #[test]
    fn groups_take_the_buffer_class_that_holds_them() {
        assert!(GroupBuf::for_group(SMALL_GROUP + 2 * 4096).is_none());
        assert_eq!(
            GroupBuf::for_group(GROUP_BYTES as usize + 2 * 4096).map(|b| b.buf.len()),
            Some(BUF_BYTES)
        );
        assert!(GroupBuf::for_group(BUF_BYTES).is_none());
    }
}
