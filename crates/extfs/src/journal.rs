//! In-memory replay of the jbd2 journal (Documentation/filesystems/ext4/journal.rst,
//! and the kernel's fs/jbd2/recovery.c, whose passes this follows).
//!
//! Nothing is written: replay produces a map "filesystem block -> newest
//! committed copy in the journal" that [`crate::Filesystem`] consults on every
//! read. Only transactions with a commit block count; a revoke record in
//! transaction T cancels copies of that block in transactions up to T; escaped
//! blocks get their magic restored; 32- and 64-bit block tags and the
//! `csum_v2`/`csum_v3` tag formats are read; the scan stops at the first block
//! that is not the next expected journal block or fails its checksum, and never
//! goes around the log more than once.

use std::collections::{BTreeMap, HashMap};

use crate::bytes::{be16, be32, lo_hi, usize_from};
use crate::crc::crc32c;
use crate::inode::{EXT4_EXTENTS_FL, I_BLOCK_OFFSET};
use crate::{Error, FileRun, FileType, Filesystem, Inode};

/// `h_magic` of every journal metadata block (journal.rst).
const JBD2_MAGIC_NUMBER: u32 = 0xC03B_3998;
// h_blocktype values.
const JBD2_DESCRIPTOR_BLOCK: u32 = 1;
const JBD2_COMMIT_BLOCK: u32 = 2;
const JBD2_SUPERBLOCK_V1: u32 = 3;
const JBD2_SUPERBLOCK_V2: u32 = 4;
const JBD2_REVOKE_BLOCK: u32 = 5;
// Feature bits (journal.rst, "Journal superblock").
const JBD2_FEATURE_COMPAT_CHECKSUM: u32 = 0x1;
const JBD2_FEATURE_INCOMPAT_REVOKE: u32 = 0x1;
const JBD2_FEATURE_INCOMPAT_64BIT: u32 = 0x2;
const JBD2_FEATURE_INCOMPAT_ASYNC_COMMIT: u32 = 0x4;
const JBD2_FEATURE_INCOMPAT_CSUM_V2: u32 = 0x8;
const JBD2_FEATURE_INCOMPAT_CSUM_V3: u32 = 0x10;
const JBD2_FEATURE_INCOMPAT_FAST_COMMIT: u32 = 0x20;
const JBD2_KNOWN_INCOMPAT: u32 = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20;
/// Default fast-commit area size when `s_num_fc_blks` is 0 (`JBD2_DEFAULT_FAST_COMMIT_BLOCKS`).
const JBD2_DEFAULT_FAST_COMMIT_BLOCKS: u32 = 256;
// Tag flags.
const JBD2_FLAG_ESCAPE: u32 = 0x1;
const JBD2_FLAG_SAME_UUID: u32 = 0x2;
const JBD2_FLAG_LAST_TAG: u32 = 0x8;
/// Size of the common block header (magic, type, sequence).
const HEADER: usize = 12;
/// Most tags plus revoke records kept (bounds memory on a hostile journal).
const MAX_RECORDS: usize = 4 << 20;

/// Where the replayed copy of a filesystem block is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Redirect {
    /// Device byte offset of the journal block holding the copy.
    phys: u64,
    /// The copy began with the journal magic, which was zeroed when logged.
    escaped: bool,
}

/// Result of a replay.
pub(crate) struct Replay {
    pub overlay: BTreeMap<u64, Redirect>,
    pub transactions: u64,
}

/// Reads `part.len()` bytes at `in_blk` of a replayed block.
pub(crate) fn read_redirect(
    fs: &Filesystem,
    r: &Redirect,
    in_blk: u64,
    part: &mut [u8],
) -> Result<(), Error> {
    let off = r
        .phys
        .checked_add(in_blk)
        .ok_or_else(|| Error::corrupt("journal", "replayed block offset overflows"))?;
    fs.read_raw(off, part)?;
    if r.escaped && in_blk < 4 {
        let magic = JBD2_MAGIC_NUMBER.to_be_bytes();
        let start = usize::try_from(in_blk).unwrap_or(0);
        for (dst, src) in part.iter_mut().zip(magic.iter().skip(start)) {
            *dst = *src;
        }
    }
    Ok(())
}

/// Maps journal blocks to device byte offsets through the journal inode's runs.
struct JournalMap {
    runs: Vec<(u64, u64, u64)>, // (file offset, len, physical) in bytes
    block_size: u64,
}

impl JournalMap {
    fn phys(&self, jblk: u64) -> Result<u64, Error> {
        let off = jblk
            .checked_mul(self.block_size)
            .ok_or_else(|| Error::corrupt("journal", "block number overflows"))?;
        let idx = self.runs.partition_point(|&(o, _, _)| o <= off);
        let run = idx.checked_sub(1).and_then(|i| self.runs.get(i));
        match run {
            Some(&(o, l, p)) if off < o.saturating_add(l) => {
                Ok(p.saturating_add(off.saturating_sub(o)))
            }
            _ => Err(Error::corrupt(
                "journal",
                format!("journal block {jblk} is a hole in the journal inode"),
            )),
        }
    }
}

struct Tag {
    fs_block: u64,
    jblk: u64,
    escaped: bool,
    checksum: u32,
}

/// Replays the internal journal of `fs` (whose overlay is still empty).
pub(crate) fn replay(fs: &Filesystem) -> Result<Replay, Error> {
    let jino = fs.sb.s_journal_inum;
    let jinode = match fs.inode(jino) {
        Ok(i) if i.file_type == FileType::Regular && i.size > 0 => i,
        other => {
            let why = match other {
                Ok(i) => format!("is a {:?} of {} bytes", i.file_type, i.size),
                Err(e) => e.to_string(),
            };
            // e2fsck falls back to the copy of the journal inode's block map kept
            // in the superblock (s_jnl_blocks); so do we.
            match backup_inode(fs) {
                Some(i) => {
                    fs.warn(format!(
                        "journal: inode {jino} unusable ({why}); using the superblock's backup of its block map"
                    ));
                    i
                }
                None => {
                    return Err(Error::corrupt(
                        "journal",
                        format!("journal inode {jino}: {why} (and no superblock backup)"),
                    ))
                }
            }
        }
    };
    let runs = fs
        .file_runs(&jinode)
        .map_err(|e| Error::corrupt("journal", format!("journal inode {jino}: {e}")))?;
    let bs = u64::from(fs.sb.block_size);
    let map = JournalMap {
        runs: runs
            .iter()
            .filter_map(|r| match *r {
                FileRun::Data {
                    offset,
                    len,
                    physical,
                } => Some((offset, len, physical)),
                FileRun::Hole { .. } | FileRun::Unwritten { .. } => None,
            })
            .collect(),
        block_size: bs,
    };
    let bsz = usize_from(fs.sb.block_size);
    let read_jblock = |jblk: u64, buf: &mut [u8]| -> Result<(), Error> {
        let p = map.phys(jblk)?;
        fs.read_raw(p, buf)
    };
    let mut sbuf = vec![0u8; bsz];
    read_jblock(0, &mut sbuf)?;
    let jsb = |d: String| Error::corrupt("journal superblock", d);
    let magic = be32(&sbuf, 0);
    if magic != JBD2_MAGIC_NUMBER {
        return Err(jsb(format!("bad magic {magic:#010x}")));
    }
    let blocktype = be32(&sbuf, 4);
    if blocktype != JBD2_SUPERBLOCK_V1 && blocktype != JBD2_SUPERBLOCK_V2 {
        return Err(jsb(format!("block type {blocktype} is not a superblock")));
    }
    let s_blocksize = be32(&sbuf, 0xC);
    if s_blocksize != fs.sb.block_size {
        return Err(jsb(format!(
            "journal block size {s_blocksize} differs from the filesystem's {}",
            fs.sb.block_size
        )));
    }
    let s_maxlen = be32(&sbuf, 0x10);
    let s_first = be32(&sbuf, 0x14);
    let s_sequence = be32(&sbuf, 0x18);
    let s_start = be32(&sbuf, 0x1C);
    let v2 = blocktype == JBD2_SUPERBLOCK_V2;
    let compat = if v2 { be32(&sbuf, 0x24) } else { 0 };
    let incompat = if v2 { be32(&sbuf, 0x28) } else { 0 };
    if incompat & !JBD2_KNOWN_INCOMPAT != 0 {
        return Err(Error::unsupported(
            "journal superblock",
            format!(
                "unknown incompatible features {:#x}",
                incompat & !JBD2_KNOWN_INCOMPAT
            ),
        ));
    }
    let csum_v2 = incompat & JBD2_FEATURE_INCOMPAT_CSUM_V2 != 0;
    let csum_v3 = incompat & JBD2_FEATURE_INCOMPAT_CSUM_V3 != 0;
    let has_csum = csum_v2 || csum_v3;
    let is_64bit = incompat & JBD2_FEATURE_INCOMPAT_64BIT != 0;
    let revoke_feature = incompat & JBD2_FEATURE_INCOMPAT_REVOKE != 0;
    let _ = (
        compat & JBD2_FEATURE_COMPAT_CHECKSUM,
        JBD2_FEATURE_INCOMPAT_ASYNC_COMMIT,
    );
    let j_csum_seed = crc32c(!0, sbuf.get(0x30..0x40).unwrap_or_default());
    if has_csum {
        let want = be32(&sbuf, 0xFC);
        let mut copy = sbuf.get(..1024).unwrap_or_default().to_vec();
        if let Some(s) = copy.get_mut(0xFC..0x100) {
            s.fill(0);
        }
        let got = crc32c(!0, &copy);
        if want != got {
            // The kernel refuses to load such a journal and e2fsck discards it.
            return Err(jsb(format!(
                "checksum mismatch (stored {want:#010x}, computed {got:#010x})"
            )));
        }
    }
    let inode_blocks = jinode.size.checked_div(bs).unwrap_or(0);
    if u64::from(s_maxlen) > inode_blocks {
        return Err(jsb(format!(
            "s_maxlen {s_maxlen} exceeds the journal inode's {inode_blocks} blocks"
        )));
    }
    // With fast commits the log ends before the fast-commit area.
    let last = if incompat & JBD2_FEATURE_INCOMPAT_FAST_COMMIT != 0 {
        let fc = if v2 { be32(&sbuf, 0x54) } else { 0 };
        let fc = if fc == 0 {
            JBD2_DEFAULT_FAST_COMMIT_BLOCKS
        } else {
            fc
        };
        fs.warn("journal: fast-commit area present; fast commits are not replayed".into());
        s_maxlen.saturating_sub(fc)
    } else {
        s_maxlen
    };
    if s_first == 0 || s_first >= last {
        return Err(jsb(format!("s_first {s_first} is outside 1..{last}")));
    }
    if s_start == 0 {
        // Clean journal: nothing to replay.
        return Ok(Replay {
            overlay: BTreeMap::new(),
            transactions: 0,
        });
    }
    if s_start < s_first || s_start >= last {
        return Err(jsb(format!(
            "s_start {s_start} is outside {s_first}..{last}"
        )));
    }
    let first = u64::from(s_first);
    let last = u64::from(last);
    let log_len = last.saturating_sub(first);
    let wrap = |b: u64| {
        if b >= last {
            b.saturating_sub(last).saturating_add(first)
        } else {
            b
        }
    };

    let tag_bytes: usize = if csum_v3 {
        16
    } else {
        let mut sz = 12usize;
        if csum_v2 {
            sz = 14;
        }
        if is_64bit {
            sz
        } else {
            sz.saturating_sub(4)
        }
    };

    let mut blk = u64::from(s_start);
    let mut seq = s_sequence;
    let mut scanned: u64 = 0;
    let mut transactions: u64 = 0;
    let mut records: usize = 0;
    let mut pending_tags: Vec<Tag> = Vec::new();
    let mut pending_revokes: Vec<u64> = Vec::new();
    let mut committed: Vec<(u32, Tag)> = Vec::new();
    let mut revoked: HashMap<u64, u32> = HashMap::new();
    let mut buf = vec![0u8; bsz];
    let block_csum_ok = |b: &[u8]| -> bool {
        // Descriptor and revoke blocks end with a 4-byte checksum tail.
        let Some(tail) = b.len().checked_sub(4) else {
            return false;
        };
        let want = be32(b, tail);
        let mut copy = b.to_vec();
        if let Some(s) = copy.get_mut(tail..) {
            s.fill(0);
        }
        crc32c(j_csum_seed, &copy) == want
    };
    let stop = |why: String| {
        fs.warn(format!("journal: replay stopped: {why}"));
    };

    'scan: while scanned < log_len {
        if read_jblock(blk, &mut buf).is_err() {
            stop(format!("journal block {blk} cannot be read"));
            break;
        }
        if be32(&buf, 0) != JBD2_MAGIC_NUMBER || be32(&buf, 8) != seq {
            break; // the normal end of the log
        }
        let htype = be32(&buf, 4);
        match htype {
            JBD2_DESCRIPTOR_BLOCK => {
                if has_csum && !block_csum_ok(&buf) {
                    stop(format!(
                        "descriptor block {blk} (transaction {seq}) checksum mismatch"
                    ));
                    break;
                }
                let end = if has_csum { bsz.saturating_sub(4) } else { bsz };
                let mut off = HEADER;
                let mut data_blk = blk;
                let mut consumed: u64 = 1;
                while off.checked_add(tag_bytes).is_some_and(|e| e <= end) {
                    let blocknr = be32(&buf, off);
                    let (flags, hi, checksum) = if csum_v3 {
                        (
                            be32(&buf, off.saturating_add(4)),
                            be32(&buf, off.saturating_add(8)),
                            be32(&buf, off.saturating_add(12)),
                        )
                    } else {
                        (
                            u32::from(be16(&buf, off.saturating_add(6))),
                            be32(&buf, off.saturating_add(8)),
                            u32::from(be16(&buf, off.saturating_add(4))),
                        )
                    };
                    let fs_block = lo_hi(blocknr, if is_64bit { hi } else { 0 });
                    data_blk = wrap(data_blk.saturating_add(1));
                    consumed = consumed.saturating_add(1);
                    pending_tags.push(Tag {
                        fs_block,
                        jblk: data_blk,
                        escaped: flags & JBD2_FLAG_ESCAPE != 0,
                        checksum,
                    });
                    records = records.saturating_add(1);
                    off = off.saturating_add(tag_bytes);
                    if flags & JBD2_FLAG_SAME_UUID == 0 {
                        off = off.saturating_add(16);
                    }
                    if flags & JBD2_FLAG_LAST_TAG != 0 {
                        break;
                    }
                }
                scanned = scanned.saturating_add(consumed);
                blk = wrap(blk.saturating_add(consumed));
            }
            JBD2_COMMIT_BLOCK => {
                if has_csum {
                    let want = be32(&buf, 16);
                    let mut copy = buf.clone();
                    if let Some(s) = copy.get_mut(16..20) {
                        s.fill(0);
                    }
                    let got = crc32c(j_csum_seed, &copy);
                    if want != got {
                        stop(format!(
                            "commit block {blk} (transaction {seq}) checksum mismatch; transaction dropped"
                        ));
                        break;
                    }
                }
                // Verify data block checksums now that the transaction counts.
                let mut dbuf = vec![0u8; bsz];
                for tag in pending_tags.drain(..) {
                    if has_csum {
                        if read_jblock(tag.jblk, &mut dbuf).is_err() {
                            stop(format!("journal block {} cannot be read", tag.jblk));
                            break 'scan;
                        }
                        let c = crc32c(crc32c(j_csum_seed, &seq.to_be_bytes()), &dbuf);
                        let ok = if csum_v3 {
                            c == tag.checksum
                        } else {
                            (c & 0xFFFF) == tag.checksum
                        };
                        if !ok {
                            fs.warn(format!(
                                "journal: block {} of transaction {seq} (for filesystem block {}) fails its checksum; skipped",
                                tag.jblk, tag.fs_block
                            ));
                            continue;
                        }
                    }
                    committed.push((seq, tag));
                }
                for b in pending_revokes.drain(..) {
                    let e = revoked.entry(b).or_insert(seq);
                    if tid_gt(seq, *e) {
                        *e = seq;
                    }
                }
                transactions = transactions.saturating_add(1);
                seq = seq.wrapping_add(1);
                scanned = scanned.saturating_add(1);
                blk = wrap(blk.saturating_add(1));
            }
            JBD2_REVOKE_BLOCK => {
                if has_csum && !block_csum_ok(&buf) {
                    stop(format!(
                        "revoke block {blk} (transaction {seq}) checksum mismatch"
                    ));
                    break;
                }
                if !revoke_feature {
                    fs.warn(format!(
                        "journal: revoke block {blk} without the revoke feature"
                    ));
                }
                let r_count = usize_from(be32(&buf, HEADER));
                let limit = r_count.min(if has_csum { bsz.saturating_sub(4) } else { bsz });
                let rec = if is_64bit { 8 } else { 4 };
                let mut off = HEADER.saturating_add(4);
                while off.checked_add(rec).is_some_and(|e| e <= limit) {
                    let b = if is_64bit {
                        lo_hi(be32(&buf, off.saturating_add(4)), be32(&buf, off))
                    } else {
                        u64::from(be32(&buf, off))
                    };
                    pending_revokes.push(b);
                    records = records.saturating_add(1);
                    off = off.saturating_add(rec);
                }
                scanned = scanned.saturating_add(1);
                blk = wrap(blk.saturating_add(1));
            }
            other => {
                stop(format!("journal block {blk} has unknown type {other}"));
                break;
            }
        }
        if records > MAX_RECORDS {
            stop(format!("more than {MAX_RECORDS} tags and revoke records"));
            break;
        }
    }
    if !pending_tags.is_empty() {
        fs.warn(format!(
            "journal: transaction {seq} has no commit block; its {} blocks are not replayed",
            pending_tags.len()
        ));
    }

    let mut overlay = BTreeMap::new();
    for (tseq, tag) in committed {
        if let Some(&rseq) = revoked.get(&tag.fs_block) {
            if !tid_gt(tseq, rseq) {
                continue; // revoked by this or a later transaction
            }
        }
        if tag.fs_block >= fs.sb.s_blocks_count {
            fs.warn(format!(
                "journal: transaction {tseq} logs block {}, beyond the filesystem; skipped",
                tag.fs_block
            ));
            continue;
        }
        let phys = map.phys(tag.jblk)?;
        overlay.insert(
            tag.fs_block,
            Redirect {
                phys,
                escaped: tag.escaped,
            },
        );
    }
    Ok(Replay {
        overlay,
        transactions,
    })
}

/// `EXT3_JNL_BACKUP_BLOCKS` (super.rst, `s_jnl_backup_type`).
const EXT3_JNL_BACKUP_BLOCKS: u8 = 1;
/// `eh_magic` of an extent header, to tell an extent root in the backup.
const EXT4_EXT_MAGIC: u16 = 0xF30A;

/// A journal inode rebuilt from `s_jnl_blocks` (15 words of `i_block`, then
/// `i_size_high`, then `i_size`).
fn backup_inode(fs: &Filesystem) -> Option<Inode> {
    if fs.sb.s_jnl_backup_type != EXT3_JNL_BACKUP_BLOCKS {
        return None;
    }
    let words = &fs.sb.s_jnl_blocks;
    let mut raw = vec![0u8; usize::from(fs.sb.inode_size)];
    let put = |raw: &mut Vec<u8>, off: usize, v: &[u8]| {
        if let Some(d) = off
            .checked_add(v.len())
            .and_then(|end| raw.get_mut(off..end))
        {
            d.copy_from_slice(v);
        }
    };
    put(&mut raw, 0, &0x8180u16.to_le_bytes()); // S_IFREG | 0600
    put(&mut raw, 0x1A, &1u16.to_le_bytes()); // i_links_count
    for (i, w) in words.iter().take(15).enumerate() {
        put(
            &mut raw,
            I_BLOCK_OFFSET.saturating_add(i.saturating_mul(4)),
            &w.to_le_bytes(),
        );
    }
    let size_hi = words.get(15).copied().unwrap_or(0);
    let size_lo = words.get(16).copied().unwrap_or(0);
    put(&mut raw, 0x4, &size_lo.to_le_bytes());
    put(&mut raw, 0x6C, &size_hi.to_le_bytes());
    let first = words.first().copied().unwrap_or(0).to_le_bytes();
    if u16::from_le_bytes([first[0], first[1]]) == EXT4_EXT_MAGIC {
        put(&mut raw, 0x20, &EXT4_EXTENTS_FL.to_le_bytes());
    }
    let inode = crate::inode::parse(fs.sb.s_journal_inum, raw.into(), false, fs.sb.block_size);
    (inode.size > 0).then_some(inode)
}

/// `tid_gt` from include/linux/jbd2.h: sequence comparison with wrap-around.
fn tid_gt(x: u32, y: u32) -> bool {
    let diff = x.wrapping_sub(y);
    diff != 0 && diff < 0x8000_0000
}
