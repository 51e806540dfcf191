//! Descriptor blocks: the tags naming the filesystem block of each journal block
//! that follows (journal.rst, "Descriptor Block"; fs/jbd2/recovery.c).

use crate::bytes::{be16, be32, lo_hi};

use super::superblock::JournalSuper;
use super::HEADER;

// Tag flags.
const JBD2_FLAG_ESCAPE: u32 = 0x1;
const JBD2_FLAG_SAME_UUID: u32 = 0x2;
const JBD2_FLAG_LAST_TAG: u32 = 0x8;
/// The UUID that follows a tag without `JBD2_FLAG_SAME_UUID`.
const UUID_LEN: usize = 16;

/// One logged block: the journal block `jblk` holds the new copy of `fs_block`.
pub(super) struct Tag {
    pub fs_block: u64,
    pub jblk: u64,
    pub escaped: bool,
    /// crc32c (v3) or its low 16 bits (v2) of the logged block.
    pub checksum: u32,
}

/// The tags of the descriptor block `buf` at journal block `blk`, with the
/// journal blocks they describe (the ones after it, wrapping at the log end).
/// At most one tag per tag slot of the block, so a descriptor yields fewer tags
/// than `block size / 8`.
pub(super) fn tags(jsb: &JournalSuper, buf: &[u8], blk: u64) -> Vec<Tag> {
    let end = if jsb.has_csum() {
        buf.len().saturating_sub(4) // jbd2_journal_block_tail
    } else {
        buf.len()
    };
    let tag_bytes = jsb.tag_bytes();
    let mut out = Vec::new();
    let mut off = HEADER;
    let mut data_blk = blk;
    while off.checked_add(tag_bytes).is_some_and(|e| e <= end) {
        let blocknr = be32(buf, off);
        let (flags, hi, checksum) = if jsb.csum_v3 {
            (
                be32(buf, off.saturating_add(4)),
                be32(buf, off.saturating_add(8)),
                be32(buf, off.saturating_add(12)),
            )
        } else {
            (
                u32::from(be16(buf, off.saturating_add(6))),
                be32(buf, off.saturating_add(8)),
                u32::from(be16(buf, off.saturating_add(4))),
            )
        };
        let fs_block = lo_hi(blocknr, if jsb.is_64bit { hi } else { 0 });
        data_blk = jsb.wrap(data_blk.saturating_add(1));
        out.push(Tag {
            fs_block,
            jblk: data_blk,
            escaped: flags & JBD2_FLAG_ESCAPE != 0,
            checksum,
        });
        off = off.saturating_add(tag_bytes);
        if flags & JBD2_FLAG_SAME_UUID == 0 {
            off = off.saturating_add(UUID_LEN);
        }
        if flags & JBD2_FLAG_LAST_TAG != 0 {
            break;
        }
    }
    out
}
