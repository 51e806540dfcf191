//! Descriptor blocks: the tags naming the filesystem block of each journal block
//! that follows (journal.rst, "Descriptor Block"; fs/jbd2/recovery.c).

use crate::bytes::lo_hi;
use bytesource::field;

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

/// `(t_blocknr, t_flags, t_blocknr_high or 0, t_checksum)` of the tag at `off`
/// (`journal_block_tag3_t` under csum_v3, else `journal_block_tag_t`, whose
/// t_blocknr_high exists only with 64bit).
fn tag_fields(jsb: &JournalSuper, buf: &[u8], off: usize) -> Option<(u32, u32, u32, u32)> {
    let at = |d: usize| off.checked_add(d);
    let blocknr = field::be_u32(buf, off)?;
    let hi = |o: usize| -> Option<u32> {
        if jsb.is_64bit {
            field::be_u32(buf, at(o)?)
        } else {
            Some(0)
        }
    };
    if jsb.csum_v3 {
        Some((
            blocknr,
            field::be_u32(buf, at(4)?)?,
            hi(8)?,
            field::be_u32(buf, at(12)?)?,
        ))
    } else {
        Some((
            blocknr,
            u32::from(field::be_u16(buf, at(6)?)?),
            hi(8)?,
            u32::from(field::be_u16(buf, at(4)?)?),
        ))
    }
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
        // off + tag_bytes <= end <= buf.len() (the loop condition), and every
        // field read below lies within the tag's tag_bytes, so `None` (the loop
        // ending) is never reached.
        let Some((blocknr, flags, hi, checksum)) = tag_fields(jsb, buf, off) else {
            break;
        };
        let fs_block = lo_hi(blocknr, hi);
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
