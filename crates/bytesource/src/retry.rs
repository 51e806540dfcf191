//! Retries of host reads that fail transiently (a flaky NFS server, a SAN path
//! failing over, a FUSE server that times out): the command line's `--retries N`.
//!
//! The retry lives at the bottom of the stack, in [`crate::FileSource`] and
//! [`crate::PooledFile`], so every read any layer makes (a grain table, an LVM
//! metadata area, a superblock, an inode table, a directory block, file data) gets
//! it, not only the file data a front end reads itself. The count is process-wide
//! ([`set_retries`], 0 by default: a failing read fails at once, as before). Each
//! further attempt waits [`FIRST_BACKOFF`], doubling up to [`MAX_BACKOFF`]. Only
//! errors a retry may cure are retried: EIO, ETIMEDOUT, EAGAIN and EINTR
//! (`errno(3)`); a read past the end of a file, a permission error and the like
//! fail at once. A read that succeeds after retries is silent; one that still fails
//! says how many attempts were made.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Backoff before the first retry; doubled for each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Linux errno values (asm-generic/errno-base.h, errno.h) a retry may cure.
const EINTR: i32 = 4;
const EIO: i32 = 5;
const EAGAIN: i32 = 11;
const ETIMEDOUT: i32 = 110;

static RETRIES: AtomicU32 = AtomicU32::new(0);

/// Sets how many more times a transiently failing host read is tried (the
/// command line's `--retries`).
pub fn set_retries(n: u32) {
    RETRIES.store(n, Ordering::Relaxed);
}

/// The current retry count.
pub fn retries() -> u32 {
    RETRIES.load(Ordering::Relaxed)
}

/// A host error together with the path it concerns, keeping the original error
/// (and its errno) as its source so that [`is_transient`] still sees it.
#[derive(Debug)]
pub(crate) struct PathError {
    pub(crate) path: String,
    pub(crate) source: io::Error,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.source)
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A read that still failed after `attempts` attempts.
#[derive(Debug)]
struct Exhausted {
    attempts: u64,
    source: io::Error,
}

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (after {} attempts)", self.source, self.attempts)
    }
}

impl std::error::Error for Exhausted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// True for an error a later attempt may not repeat: EIO, ETIMEDOUT, EAGAIN or
/// EINTR from the host, looked for through this module's wrappers.
pub fn is_transient(e: &io::Error) -> bool {
    let mut cur = e;
    // Bounded: each step goes one wrapper down; a handful at most.
    for _ in 0..8 {
        if let Some(code) = cur.raw_os_error() {
            return matches!(code, EINTR | EIO | EAGAIN | ETIMEDOUT);
        }
        if matches!(
            cur.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ) {
            return true;
        }
        let inner = cur.get_ref().and_then(|i| {
            i.downcast_ref::<PathError>()
                .map(|p| &p.source)
                .or_else(|| i.downcast_ref::<Exhausted>().map(|x| &x.source))
                .or_else(|| i.downcast_ref::<io::Error>())
        });
        match inner {
            Some(i) => cur = i,
            None => return false,
        }
    }
    false
}

/// Runs `read` once, and up to [`retries`] more times while it fails transiently,
/// sleeping between attempts.
pub fn with_retries(mut read: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    let max = retries();
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0u32;
    loop {
        match read() {
            Ok(()) => return Ok(()),
            Err(e) if attempt < max && is_transient(&e) => {
                attempt = attempt.saturating_add(1);
                std::thread::sleep(backoff);
                backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
            }
            Err(e) if attempt > 0 => {
                return Err(io::Error::new(
                    e.kind(),
                    Exhausted {
                        attempts: u64::from(attempt).saturating_add(1),
                        source: e,
                    },
                ))
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ByteSource, MemSource};
    use std::sync::atomic::AtomicU64;
    use std::sync::Mutex;

    /// The retry count is process-wide: tests that set it run one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    /// A source whose first `fail` reads fail with `errno`.
    struct Flaky {
        inner: MemSource,
        fail: u64,
        errno: i32,
        reads: AtomicU64,
    }

    impl ByteSource for Flaky {
        fn len(&self) -> u64 {
            self.inner.len()
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            with_retries(|| {
                let n = self.reads.fetch_add(1, Ordering::Relaxed);
                if n < self.fail {
                    // Wrapped as FileSource wraps host errors.
                    return Err(io::Error::other(PathError {
                        path: "flaky.img".into(),
                        source: io::Error::from_raw_os_error(self.errno),
                    }));
                }
                self.inner.read_at(offset, buf)
            })
        }
    }

    fn flaky(fail: u64, errno: i32) -> Flaky {
        Flaky {
            inner: MemSource::new((0u8..=255).collect::<Vec<u8>>()),
            fail,
            errno,
            reads: AtomicU64::new(0),
        }
    }

    #[test]
    fn succeeds_after_k_failures_within_the_count() {
        let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        set_retries(3);
        let s = flaky(3, EIO);
        let mut b = [0u8; 4];
        s.read_at(10, &mut b).unwrap();
        assert_eq!(b, [10, 11, 12, 13]);
        assert_eq!(s.reads.load(Ordering::Relaxed), 4);
        set_retries(0);
    }

    #[test]
    fn fails_after_the_last_retry_naming_the_attempts() {
        let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        set_retries(2);
        let s = flaky(5, ETIMEDOUT);
        let mut b = [0u8; 4];
        let e = s.read_at(0, &mut b).unwrap_err();
        assert_eq!(s.reads.load(Ordering::Relaxed), 3);
        let text = e.to_string();
        assert!(text.contains("after 3 attempts"), "{text}");
        assert!(text.contains("flaky.img"), "{text}");
        // Still recognisably transient to a caller above.
        assert!(is_transient(&e));
        set_retries(0);
    }

    #[test]
    fn no_retries_by_default_and_none_for_permanent_errors() {
        let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        set_retries(0);
        let s = flaky(1, EIO);
        let mut b = [0u8; 1];
        let e = s.read_at(0, &mut b).unwrap_err();
        assert_eq!(s.reads.load(Ordering::Relaxed), 1);
        assert!(!e.to_string().contains("attempts"));

        set_retries(5);
        let s = flaky(1, 13); // EACCES: a retry cannot cure it.
        assert!(s.read_at(0, &mut b).is_err());
        assert_eq!(s.reads.load(Ordering::Relaxed), 1);
        // Out of range: refused at once, not retried.
        let s = flaky(0, EIO);
        let mut big = [0u8; 300];
        assert!(s.read_at(0, &mut big).is_err());
        assert_eq!(s.reads.load(Ordering::Relaxed), 1);
        set_retries(0);
    }
}
