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
//!
//! Memory is bounded by the journal, not by what its blocks claim: a transaction
//! has at most one tag per log block, the overlay keeps one entry per
//! filesystem block (the newest copy: revokes and newer copies are applied as
//! each transaction commits, which is what the kernel's revoke pass followed by
//! its replay pass amounts to), and the log is the journal inode's mapped blocks,
//! which [`crate::Filesystem::file_runs`] caps by the filesystem size.
//!
//! One file per on-disk structure: [`superblock`], [`descriptor`] (block tags),
//! [`revoke`], [`commit`] (checksums), and [`replay`] (the scan).

mod commit;
mod descriptor;
mod replay;
mod revoke;
mod superblock;

use std::collections::BTreeMap;

use crate::inode::{EXT4_EXTENTS_FL, I_BLOCK_OFFSET};
use crate::superblock::BlockSize;
use crate::{Error, FileRun, FileType, Filesystem, Inode};

/// `h_magic` of every journal metadata block (journal.rst).
pub(super) const JBD2_MAGIC_NUMBER: u32 = 0xC03B_3998;
/// Size of the common block header (magic, type, sequence).
const HEADER: usize = 12;

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
    block_size: BlockSize,
}

impl JournalMap {
    fn phys(&self, jblk: u64) -> Result<u64, Error> {
        let off = jblk
            .checked_mul(self.block_size.as_u64())
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

    /// Journal blocks that have a device location.
    fn mapped_blocks(&self) -> u64 {
        let bytes = self
            .runs
            .iter()
            .fold(0u64, |acc, &(_, l, _)| acc.saturating_add(l));
        self.block_size.div(bytes)
    }

    fn read(&self, fs: &Filesystem, jblk: u64, buf: &mut [u8]) -> Result<(), Error> {
        let p = self.phys(jblk)?;
        fs.read_raw(p, buf)
    }
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
        block_size: fs.sb.block_size,
    };
    let mut sbuf = vec![0u8; fs.sb.block_size.as_usize()];
    map.read(fs, 0, &mut sbuf)?;
    let inode_blocks = fs.sb.block_size.div(jinode.size);
    let jsb = superblock::parse(fs, &sbuf, inode_blocks.min(map.mapped_blocks()))?;
    if jsb.start == 0 {
        // Clean journal: nothing to replay.
        return Ok(Replay {
            overlay: BTreeMap::new(),
            transactions: 0,
        });
    }
    replay::scan(fs, &jsb, &map)
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
    // `raw` is inode_size (>= 128, checked by the superblock) bytes, so this parses.
    let inode = crate::inode::parse(
        fs.sb.s_journal_inum,
        raw.into(),
        false,
        fs.sb.block_size.get(),
    )
    .ok()?;
    (inode.size > 0).then_some(inode)
}
