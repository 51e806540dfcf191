//! Checksums of commit, descriptor, revoke and logged blocks under
//! `csum_v2`/`csum_v3` (journal.rst, "Checksums"; fs/jbd2/recovery.c).

use crate::crc::crc32c;
use bytesource::field;

use super::descriptor::Tag;
use super::superblock::JournalSuper;

/// Offset of `h_chksum[0]` in a commit block (`struct commit_header`).
const COMMIT_CSUM: usize = 16;

/// A commit block's checksum: crc32c(seed, block with h_chksum[0] zeroed).
pub(super) fn commit_ok(jsb: &JournalSuper, buf: &[u8]) -> bool {
    // A block too short to hold h_chksum[0] cannot carry a good checksum.
    let Some(want) = field::be_u32(buf, COMMIT_CSUM) else {
        return false;
    };
    let mut copy = buf.to_vec();
    if let Some(s) = copy.get_mut(COMMIT_CSUM..COMMIT_CSUM.saturating_add(4)) {
        s.fill(0);
    }
    crc32c(jsb.csum_seed, &copy) == want
}

/// A descriptor or revoke block's tail checksum (`jbd2_journal_block_tail`).
pub(super) fn tail_ok(jsb: &JournalSuper, buf: &[u8]) -> bool {
    let Some(tail) = buf.len().checked_sub(4) else {
        return false;
    };
    // tail = len - 4, so the 4 bytes are inside `buf`.
    let Some(want) = field::be_u32(buf, tail) else {
        return false;
    };
    let mut copy = buf.to_vec();
    if let Some(s) = copy.get_mut(tail..) {
        s.fill(0);
    }
    crc32c(jsb.csum_seed, &copy) == want
}

/// A logged block's checksum against its tag: crc32c(seed, sequence, block);
/// v2 tags keep the low 16 bits.
pub(super) fn data_ok(jsb: &JournalSuper, seq: u32, tag: &Tag, data: &[u8]) -> bool {
    let c = crc32c(crc32c(jsb.csum_seed, &seq.to_be_bytes()), data);
    if jsb.csum_v3 {
        c == tag.checksum
    } else {
        (c & 0xFFFF) == tag.checksum
    }
}
