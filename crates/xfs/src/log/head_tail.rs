//! Finding the head (where the next record would be written) and the tail (the
//! oldest record whose changes may not be on disk) of the log ring.
//!
//! A faithful transcription of `xlog_find_zeroed`, `xlog_find_cycle_start`,
//! `xlog_find_verify_cycle`, `xlog_find_verify_log_record`, `xlog_find_head` and
//! `xlog_find_tail` (xfsprogs libxlog/xfs_log_recover.c, which mirrors
//! fs/xfs/xfs_log_recover.c), in our own code. `xfs_logprint` uses the same
//! functions, so its "log tail: T head: H" is the oracle for these numbers.
//!
//! Arithmetic here is on block numbers below the ring size, which `recover` caps at
//! 2^22 blocks (2 GiB), and on record lengths already validated to at most 256 KiB,
//! so i64 arithmetic cannot overflow.
#![allow(clippy::arithmetic_side_effects)]

use fsapi::Error;

use super::record::{LogRing, RecHeader, XLOG_HEADER_CYCLE_SIZE, XLOG_HEADER_MAGIC};

/// `XLOG_UNMOUNT_TRANS`.
pub(crate) const XLOG_UNMOUNT_TRANS: u8 = 0x20;

fn corrupt(detail: impl Into<String>) -> Error {
    Error::corrupt("log", detail)
}

/// `XLOG_TOTAL_REC_SHIFT`: blocks the in-core log can have in flight.
fn total_rec_bbs(ring: &LogRing<'_>) -> i64 {
    if ring.logv2 {
        8 * (256 * 1024 / 512)
    } else {
        8 * (32 * 1024 / 512)
    }
}

/// `XLOG_REC_SHIFT`: blocks of the largest record.
fn rec_bbs(ring: &LogRing<'_>) -> i64 {
    if ring.logv2 {
        256 * 1024 / 512
    } else {
        32 * 1024 / 512
    }
}

fn cycle(ring: &LogRing<'_>, blk: i64) -> Result<u32, Error> {
    ring.cycle(u64::try_from(blk).map_err(|_| corrupt(format!("negative log block {blk}")))?)
}

/// Binary search for the first block of `cycle` between `first` and `last`.
fn find_cycle_start(ring: &LogRing<'_>, mut first: i64, last: i64, cyc: u32) -> Result<i64, Error> {
    let mut end = last;
    let mut mid = (first + end) / 2;
    // At most log2(ring) + 1 steps; bounded explicitly all the same.
    let mut steps = 0u32;
    while mid != first && mid != end {
        steps += 1;
        if steps > 64 {
            return Err(corrupt("binary search for the head did not converge"));
        }
        if cycle(ring, mid)? == cyc {
            end = mid;
        } else {
            first = mid;
        }
        mid = (first + end) / 2;
    }
    Ok(end)
}

/// The first block in `[start, start+n)` stamped with `stop`, if any.
fn find_verify_cycle(
    ring: &LogRing<'_>,
    start: i64,
    n: i64,
    stop: u32,
) -> Result<Option<i64>, Error> {
    if n <= 0 {
        return Ok(None);
    }
    let (Ok(s), Ok(len)) = (u64::try_from(start), u64::try_from(n)) else {
        return Err(corrupt(format!("negative log block {start}")));
    };
    ring.prefetch(s, len);
    Ok(ring
        .find_cycle(s, len, stop)?
        .map(|b| i64::try_from(b).unwrap_or(i64::MAX)))
}

/// Backs `last` up over a partially written record (xlog_find_verify_log_record).
/// `Ok(None)` is the C code's -1: no header between `start` (0) and `last`.
fn find_verify_log_record(
    ring: &LogRing<'_>,
    start: i64,
    last: i64,
    extra: i64,
) -> Result<Option<i64>, Error> {
    let mut i = last - 1;
    let mut found: Option<(i64, Vec<u8>)> = None;
    while i >= 0 {
        if i < start {
            return Err(corrupt(format!(
                "log inconsistent: no record header between log blocks {start} and {last}"
            )));
        }
        // Only the header found is read whole (see `LogRing`'s windows).
        let blk = u64::try_from(i).unwrap_or(0);
        if ring.first_word(blk)? == XLOG_HEADER_MAGIC {
            found = Some((i, ring.block(blk)?));
            break;
        }
        i -= 1;
    }
    let Some((i, b)) = found else {
        return Ok(None);
    };
    let h = RecHeader::parse(&b).ok_or_else(|| corrupt("record header cut short"))?;
    // xlog_header_check_mount: a record of another filesystem is not our log.
    if h.uuid != ring.uuid && h.uuid != [0u8; 16] {
        return Err(corrupt(format!(
            "record at log block {i} belongs to another filesystem (UUID mismatch)"
        )));
    }
    let xhdrs = if ring.logv2 {
        i64::from(h.size.div_ceil(XLOG_HEADER_CYCLE_SIZE))
    } else {
        1
    };
    let want = i64::from(h.len.min(256 * 1024).div_ceil(512)) + xhdrs;
    Ok(Some(if last - i + extra != want { i } else { last }))
}

/// xlog_find_zeroed: `Some(blk)` when the log is (partly) unwritten, blk being the
/// first block never written.
fn find_zeroed(ring: &LogRing<'_>, bbs: i64) -> Result<Option<i64>, Error> {
    let first_cycle = cycle(ring, 0)?;
    if first_cycle == 0 {
        return Ok(Some(0));
    }
    let last_cycle = cycle(ring, bbs - 1)?;
    if last_cycle != 0 {
        return Ok(None);
    }
    if first_cycle != 1 {
        return Err(corrupt(
            "log inconsistent or not a log (last block cycle 0, first block cycle not 1)",
        ));
    }
    let mut last = find_cycle_start(ring, 0, bbs - 1, 0)?;
    let mut scan = total_rec_bbs(ring);
    if last < scan {
        scan = last;
    }
    let start = last - scan;
    if let Some(n) = find_verify_cycle(ring, start, scan, 0)? {
        last = n;
    }
    match find_verify_log_record(ring, start, last, 0)? {
        Some(l) => Ok(Some(l)),
        None => Err(corrupt(
            "log inconsistent: no record header before the unwritten part",
        )),
    }
}

/// xlog_find_head: the block after the last completely written record.
pub(crate) fn find_head(ring: &LogRing<'_>) -> Result<u64, Error> {
    let bbs = i64::try_from(ring.bbs).map_err(|_| corrupt("log too large"))?;
    if bbs < 2 {
        return Err(corrupt("log of fewer than 2 blocks"));
    }
    if let Some(z) = find_zeroed(ring, bbs)? {
        return Ok(u64::try_from(z).unwrap_or(0));
    }
    let first_half = cycle(ring, 0)?;
    let last_half = cycle(ring, bbs - 1)?;
    let mut head;
    let stop;
    if first_half == last_half {
        head = bbs;
        stop = last_half.wrapping_sub(1);
    } else {
        stop = last_half;
        head = find_cycle_start(ring, 0, bbs - 1, last_half)?;
    }

    let scan = total_rec_bbs(ring);
    let mut validated = false;
    if head >= scan {
        let start = head - scan;
        if let Some(n) = find_verify_cycle(ring, start, scan, stop)? {
            head = n;
        }
    } else {
        let start = bbs - (scan - head);
        let start = start.max(0);
        let n = (bbs - start).min(scan - head);
        if let Some(n) = find_verify_cycle(ring, start, n, stop.wrapping_sub(1))? {
            head = n;
            validated = true;
        }
        if !validated {
            if let Some(n) = find_verify_cycle(ring, 0, head, stop)? {
                head = n;
            }
        }
    }

    // validate_head: do not leave head in the middle of a record.
    let scan = rec_bbs(ring);
    if head >= scan {
        let start = head - scan;
        match find_verify_log_record(ring, start, head, 0)? {
            Some(h) => head = h,
            None => return Err(corrupt("failed to find the log head: no record header")),
        }
    } else {
        match find_verify_log_record(ring, 0, head, 0)? {
            Some(h) => head = h,
            None => {
                let start = (bbs - (scan - head)).max(0);
                match find_verify_log_record(ring, start, bbs, head)? {
                    Some(n) => {
                        if n != bbs {
                            head = n;
                        }
                    }
                    None => return Err(corrupt("failed to find the log head: no record header")),
                }
            }
        }
    }
    Ok(if head == bbs {
        0
    } else {
        u64::try_from(head).unwrap_or(0)
    })
}

/// What xlog_find_tail found.
pub(crate) struct HeadTail {
    pub head: u64,
    pub tail: u64,
    /// A clean unmount record sits just before the head.
    pub clean: bool,
    /// The log was never written (all zero).
    pub empty: bool,
}

/// xlog_find_tail: the head, then the tail from the last record's `h_tail_lsn`, and
/// whether that last record is an unmount record (a clean log).
pub(crate) fn find_tail(ring: &LogRing<'_>) -> Result<HeadTail, Error> {
    let head = find_head(ring)?;
    let bbs = ring.bbs;
    if head == 0 && ring.cycle(0)? == 0 {
        return Ok(HeadTail {
            head: 0,
            tail: 0,
            clean: true,
            empty: true,
        });
    }
    // Search backwards for the last record header, wrapping once.
    let mut found = None;
    for i in (0..head).rev() {
        if ring.first_word(i)? == XLOG_HEADER_MAGIC {
            found = Some(i);
            break;
        }
    }
    if found.is_none() {
        for i in (head..bbs).rev() {
            if ring.first_word(i)? == XLOG_HEADER_MAGIC {
                found = Some(i);
                break;
            }
        }
    }
    let Some(i) = found else {
        return Err(corrupt(
            "couldn't find a record header (sync record) before the head",
        ));
    };
    let b = ring.block(i)?;
    let h = RecHeader::parse(&b).ok_or_else(|| corrupt("record header cut short"))?;
    let mut tail = super::record::lsn_block(h.tail_lsn);
    if tail >= bbs {
        return Err(corrupt(format!(
            "record at log block {i}: tail LSN block {tail} is outside the log"
        )));
    }
    let hblks = h.hblks(ring.logv2);
    let after = (i + hblks + u64::from(h.len.min(256 * 1024).div_ceil(512))) % bbs;
    let mut clean = false;
    if head == after && h.num_logops == 1 {
        let ob = ring.block((i + hblks) % bbs)?;
        let flags = ob.get(9).copied().unwrap_or(0);
        if flags & XLOG_UNMOUNT_TRANS != 0 {
            tail = after;
            clean = true;
        }
    }
    Ok(HeadTail {
        head,
        tail,
        clean: clean || head == tail,
        empty: false,
    })
}
