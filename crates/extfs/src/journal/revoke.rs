//! Revoke blocks: filesystem blocks whose earlier logged copies must not be
//! replayed (journal.rst, "Revocation Block"; fs/jbd2/recovery.c `scan_revoke_records`).

use crate::bytes::{lo_hi, usize_from};
use bytesource::field;

use super::superblock::JournalSuper;
use super::HEADER;

/// The block numbers a revoke block lists. `r_count` (bytes used, header
/// included) is capped by the block (less its checksum tail), so one block yields
/// at most `block size / 4` records.
pub(super) fn records(jsb: &JournalSuper, buf: &[u8]) -> Vec<u64> {
    // A block too short for r_count (journal blocks are >= 1024 bytes, checked
    // with the journal superblock) lists nothing.
    let Some(r_count) = field::be_u32(buf, HEADER).map(usize_from) else {
        return Vec::new();
    };
    let room = if jsb.has_csum() {
        buf.len().saturating_sub(4)
    } else {
        buf.len()
    };
    let limit = r_count.min(room);
    let rec: usize = if jsb.is_64bit { 8 } else { 4 };
    let mut out = Vec::new();
    let mut off = HEADER.saturating_add(4);
    while off.checked_add(rec).is_some_and(|e| e <= limit) {
        // off + rec <= limit <= buf.len() (the loop condition): the record is
        // inside the block, so the `None` arm is never taken.
        let record = if jsb.is_64bit {
            field::be_u32(buf, off)
                .zip(field::be_u32(buf, off.saturating_add(4)))
                .map(|(hi, lo)| lo_hi(lo, hi))
        } else {
            field::be_u32(buf, off).map(u64::from)
        };
        let Some(record) = record else {
            break;
        };
        out.push(record);
        off = off.saturating_add(rec);
    }
    out
}
