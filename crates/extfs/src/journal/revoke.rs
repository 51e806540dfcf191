//! Revoke blocks: filesystem blocks whose earlier logged copies must not be
//! replayed (journal.rst, "Revocation Block"; fs/jbd2/recovery.c `scan_revoke_records`).

use crate::bytes::{be32, lo_hi, usize_from};

use super::superblock::JournalSuper;
use super::HEADER;

/// The block numbers a revoke block lists. `r_count` (bytes used, header
/// included) is capped by the block (less its checksum tail), so one block yields
/// at most `block size / 4` records.
pub(super) fn records(jsb: &JournalSuper, buf: &[u8]) -> Vec<u64> {
    let r_count = usize_from(be32(buf, HEADER));
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
        out.push(if jsb.is_64bit {
            lo_hi(be32(buf, off.saturating_add(4)), be32(buf, off))
        } else {
            u64::from(be32(buf, off))
        });
        off = off.saturating_add(rec);
    }
    out
}
