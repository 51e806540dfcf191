//! Applying committed transactions to the overlay, in two passes like the kernel
//! (xlog_recover_commit_trans, fs/xfs/xfs_log_recover.c): pass 1 builds the table of
//! cancelled buffers, pass 2 replays every item in log order, skipping cancelled
//! buffers and, on v5, objects already newer on disk than the transaction.
//!
//! Item replay follows fs/xfs/xfs_buf_item_recover.c (buffers, inode buffers, the
//! v5 LSN check `xlog_recover_get_buf_lsn`, and the write verifiers that restamp the
//! LSN and CRC of replayed v5 metadata), fs/xfs/xfs_inode_item_recover.c (inode
//! cores via `xfs_log_dinode_to_disk`, forks, `xfs_bmbt_to_bmdr`) and
//! fs/xfs/xfs_icreate_item.c with libxfs `xfs_ialloc_inode_init` (inode chunks).

use std::collections::{BTreeMap, HashMap};

use bytesource::field;

use super::items::{self, BufItem, IcreateItem, InodeItem, Item};
use super::overlay::{Overlay, BBSIZE};
use super::sb::SbInfo;
use super::transaction::Transaction;
use crate::crc::xfs_update_cksum;

/// `XFS_DINODE_MAGIC` "IN".
const XFS_DINODE_MAGIC: u16 = 0x494e;
/// `DI_MAX_FLUSH`.
const DI_MAX_FLUSH: u16 = 0xffff;
/// `NULLAGINO`.
const NULLAGINO: u32 = 0xffff_ffff;
/// Offset of `di_next_unlinked` and `di_crc` in `struct xfs_dinode`.
const DI_NEXT_UNLINKED: usize = 96;
const DI_CRC: usize = 100;
/// `XFS_DIFLAG2_BIGTIME`, `XFS_DIFLAG2_NREXT64`, `XFS_DIFLAG2_METADIR`.
const DIFLAG2_BIGTIME: u64 = 1 << 3;
const DIFLAG2_NREXT64: u64 = 1 << 4;
const DIFLAG2_METADIR: u64 = 1 << 5;
/// `XFS_DINODE_FMT_*`.
const FMT_LOCAL: u8 = 1;
const FMT_EXTENTS: u8 = 2;
const FMT_BTREE: u8 = 3;
/// `XFS_INODE_BIG_CLUSTER_SIZE`.
const INODE_BIG_CLUSTER_SIZE: u32 = 8192;

// Buffer log format types (enum xfs_blft).
const BLFT_BTREE: u16 = 4;
const BLFT_AGF: u16 = 5;
const BLFT_AGFL: u16 = 6;
const BLFT_AGI: u16 = 7;
const BLFT_SYMLINK: u16 = 9;
const BLFT_DIR_BLOCK: u16 = 10;
const BLFT_DIR_DATA: u16 = 11;
const BLFT_DIR_FREE: u16 = 12;
const BLFT_DIR_LEAF1: u16 = 13;
const BLFT_DIR_LEAFN: u16 = 14;
const BLFT_DA_NODE: u16 = 15;
const BLFT_ATTR_LEAF: u16 = 16;
const BLFT_ATTR_RMT: u16 = 17;
const BLFT_SB: u16 = 18;

// Metadata magic numbers (libxfs/xfs_format.h, xfs_da_format.h).
const ABTB_CRC: u32 = 0x4142_3342;
const ABTC_CRC: u32 = 0x4142_3343;
const ABTB: u32 = 0x4142_5442;
const ABTC: u32 = 0x4142_5443;
const RMAP_CRC: u32 = 0x524d_4233;
const REFC_CRC: u32 = 0x5233_4643;
const IBT_CRC: u32 = 0x4941_4233;
const IBT: u32 = 0x4941_4254;
const FIBT_CRC: u32 = 0x4649_4233;
const BMAP_CRC: u32 = 0x424d_4133;
const BMAP: u32 = 0x424d_4150;
const AGF: u32 = 0x5841_4746;
const AGFL: u32 = 0x5841_464c;
const AGI: u32 = 0x5841_4749;
const SYMLINK: u32 = 0x5853_4c4d;
const DIR3_BLOCK: u32 = 0x5844_4233;
const DIR3_DATA: u32 = 0x5844_4433;
const DIR3_FREE: u32 = 0x5844_4633;
const ATTR3_RMT: u32 = 0x5841_524d;
const SB: u32 = 0x5846_5342;
const DIR3_LEAF1: u16 = 0x3df1;
const DIR3_LEAFN: u16 = 0x3dff;
const DA3_NODE: u16 = 0x3ebe;
const ATTR3_LEAF: u16 = 0x3bee;

/// Counts of what replay did, for [`super::Recovery::summary`].
#[derive(Default, Debug)]
pub(crate) struct Stats {
    pub transactions: u64,
    /// Sum of the transaction headers' item counts.
    pub header_items: u64,
    pub items: BTreeMap<&'static str, u64>,
    pub bufs_replayed: u64,
    pub bufs_cancelled: u64,
    pub bufs_newer_on_disk: u64,
    pub inodes_replayed: u64,
    pub inodes_cancelled: u64,
    pub inodes_newer_on_disk: u64,
    pub icreates: u64,
    pub skipped_quota: u64,
}

pub(crate) struct Replayer<'a> {
    pub ov: &'a mut Overlay,
    pub sb: &'a SbInfo,
    pub is_v5: bool,
    cancels: HashMap<(u64, u16), u32>,
    intents: BTreeMap<(u16, u64), u64>,
    pub stats: Stats,
    pub warnings: Vec<String>,
}

fn corrupt<T>(what: String) -> Result<T, String> {
    Err(what)
}

impl<'a> Replayer<'a> {
    pub(crate) fn new(ov: &'a mut Overlay, sb: &'a SbInfo, is_v5: bool) -> Self {
        Replayer {
            ov,
            sb,
            is_v5,
            cancels: HashMap::new(),
            intents: BTreeMap::new(),
            stats: Stats::default(),
            warnings: Vec::new(),
        }
    }

    /// Pass 1 (xlog_recover_buf_commit_pass1): count the cancel records of each
    /// buffer (xlog_add_buffer_cancelled).
    pub(crate) fn pass1(&mut self, trans: &[(Transaction, Vec<(u16, Item)>)]) {
        for (_, items) in trans {
            for (_, it) in items {
                if let Item::Buf(b) = it {
                    if b.flags & items::XFS_BLF_CANCEL != 0 {
                        let c = self.cancels.entry((b.blkno, b.len_bb)).or_insert(0);
                        *c = c.saturating_add(1);
                    }
                }
            }
        }
    }

    /// xlog_is_buffer_cancelled.
    fn is_cancelled(&self, blkno: u64, len: u16) -> bool {
        self.cancels.get(&(blkno, len)).is_some_and(|&c| c > 0)
    }

    /// xlog_put_buffer_cancelled: a cancel record met again in pass 2 drops one
    /// reference; buffers logged after the last cancel are replayed again.
    fn put_cancelled(&mut self, blkno: u64, len: u16) -> bool {
        match self.cancels.get_mut(&(blkno, len)) {
            Some(c) => {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    self.cancels.remove(&(blkno, len));
                }
                true
            }
            None => false,
        }
    }

    /// Pass 2 of one transaction, items in the kernel's order
    /// (xlog_recover_reorder_trans): buffers, then inodes and other items, then
    /// inode buffers, then cancel records.
    pub(crate) fn pass2(&mut self, t: &Transaction, items: &[(u16, Item)]) -> Result<(), String> {
        self.stats.transactions = self.stats.transactions.saturating_add(1);
        self.stats.header_items = self
            .stats
            .header_items
            .saturating_add(u64::from(t.header_items));
        let mut bufs = Vec::new();
        let mut others = Vec::new();
        let mut inode_bufs = Vec::new();
        let mut cancels = Vec::new();
        for (kind, it) in items {
            let n = self.stats.items.entry(items::type_name(*kind)).or_insert(0);
            *n = n.saturating_add(1);
            match it {
                Item::Buf(b) if b.flags & items::XFS_BLF_CANCEL != 0 => cancels.insert(0, it),
                Item::Buf(b) if b.flags & items::XFS_BLF_INODE_BUF != 0 => inode_bufs.insert(0, it),
                Item::Buf(_) => bufs.push(it),
                _ => others.push(it),
            }
        }
        for it in bufs
            .into_iter()
            .chain(others)
            .chain(inode_bufs)
            .chain(cancels)
        {
            match it {
                Item::Buf(b) => self.buf(b, t.lsn)?,
                Item::Inode(i) => self.inode(i, t.lsn)?,
                Item::Icreate(c) => self.icreate(c)?,
                Item::Dquot | Item::QuotaOff => {
                    // Dquots are replayed only when quotas are enabled at mount
                    // (xlog_recover_dquot_commit_pass2 checks mp->m_qflags); a
                    // read-only reader has no quota mount options.
                    self.stats.skipped_quota = self.stats.skipped_quota.saturating_add(1);
                }
                Item::Intent { kind, id } => {
                    self.intents.insert((*kind, *id), t.lsn);
                }
                Item::Done { kind, id } => {
                    self.intents.remove(&(items::done_to_intent(*kind), *id));
                }
            }
        }
        Ok(())
    }

    /// Intents logged without their done item: the kernel finishes them at mount
    /// (xlog_recover_process_intents); we only report them.
    pub(crate) fn unfinished_intents(&self) -> Vec<String> {
        self.intents
            .iter()
            .map(|(&(kind, id), &lsn)| {
                format!(
                    "log: unfinished {} id {id:#x} logged at LSN {}/{}: the kernel would finish it at mount; its effect is not replayed",
                    items::intent_name(kind),
                    lsn >> 32,
                    lsn & 0xffff_ffff
                )
            })
            .collect()
    }

    fn read_buf(&self, daddr: u64, nbb: u64, what: &str) -> Result<Vec<u8>, String> {
        let len = nbb
            .checked_mul(512)
            .filter(|&l| l > 0 && l <= 1 << 20)
            .ok_or_else(|| format!("{what} at daddr {daddr}: bad length of {nbb} sectors"))?;
        let off = daddr
            .checked_mul(512)
            .ok_or_else(|| format!("{what}: daddr {daddr} overflows"))?;
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        self.ov
            .read(off, &mut buf)
            .map_err(|e| format!("{what} at daddr {daddr}: {e}"))?;
        Ok(buf)
    }

    /// Writes back the sectors of `buf` that differ from what the overlay holds.
    fn write_buf(&mut self, daddr: u64, buf: &[u8], what: &str) -> Result<(), String> {
        let old = self.read_buf(daddr, u64::try_from(buf.len() / BBSIZE).unwrap_or(0), what)?;
        for (i, (new, was)) in buf.chunks(BBSIZE).zip(old.chunks(BBSIZE)).enumerate() {
            if new != was {
                let off = daddr
                    .saturating_add(u64::try_from(i).unwrap_or(0))
                    .saturating_mul(512);
                self.ov
                    .write(off, new)
                    .map_err(|e| format!("log: {what} at daddr {daddr}: {e}"))?;
            }
        }
        Ok(())
    }

    /// xlog_recover_get_buf_lsn: the LSN of the object now in the buffer, `None`
    /// when it has none we trust (replay it).
    fn buf_lsn(&self, b: &[u8]) -> Option<u64> {
        if !self.is_v5 {
            return None;
        }
        // A field outside the buffer means there is no LSN to trust: replay it.
        let be64 = |off: usize| field::be_u64(b, off);
        let (lsn, uuid_off) = match field::be_u32(b, 0)? {
            ABTB_CRC | ABTC_CRC | ABTB | ABTC | RMAP_CRC | REFC_CRC | IBT_CRC | IBT => {
                (be64(24)?, 32)
            }
            BMAP_CRC | BMAP => (be64(32)?, 40),
            AGF => (be64(208)?, 64),
            AGFL => (be64(24)?, 8),
            AGI => (be64(320)?, 296),
            SYMLINK => (be64(48)?, 16),
            DIR3_BLOCK | DIR3_DATA | DIR3_FREE => (be64(16)?, 24),
            ATTR3_RMT => return None,
            SB => {
                // The superblock's metadata UUID field depends on META_UUID; the
                // reader's sb_meta_uuid is compared against the matching field.
                let f = if field::array_at::<16>(b, 248) == Some(self.sb.meta_uuid) {
                    248
                } else {
                    32
                };
                (be64(240)?, f)
            }
            _ => match field::be_u16(b, 8)? {
                DIR3_LEAF1 | DIR3_LEAFN | DA3_NODE => (be64(24)?, 32),
                _ => return None,
            },
        };
        if field::array_at::<16>(b, uuid_off)? != self.sb.meta_uuid {
            return None;
        }
        Some(lsn)
    }

    /// The v5 write verifiers of the buffer types recovery attaches
    /// (xlog_recover_validate_buf_type): stamp the transaction's LSN and recompute
    /// the CRC, as the kernel does when it writes the replayed buffer back.
    /// Inode, dquot and realtime buffers are written unchanged (their verifiers
    /// only verify); remote attribute blocks get per-block CRCs and no LSN.
    fn stamp(&self, buf: &mut [u8], blft: u16, lsn: u64) {
        if !self.is_v5 {
            return;
        }
        // Recovered buffers are whole sectors (512 bytes); one shorter than the
        // magic numbers has no verifier to run.
        let (Some(magic), Some(da)) = (field::be_u32(buf, 0), field::be_u16(buf, 8)) else {
            return;
        };
        let (lsn_off, crc_off): (usize, usize) = match blft {
            BLFT_BTREE => match magic {
                ABTB_CRC | ABTC_CRC | IBT_CRC | FIBT_CRC | RMAP_CRC | REFC_CRC => (24, 52),
                BMAP_CRC => (32, 64),
                _ => return,
            },
            BLFT_AGF if magic == AGF => (208, 216),
            BLFT_AGFL if magic == AGFL => (24, 32),
            BLFT_AGI if magic == AGI => (320, 312),
            BLFT_SYMLINK if magic == SYMLINK => (48, 12),
            BLFT_DIR_BLOCK if magic == DIR3_BLOCK => (16, 4),
            BLFT_DIR_DATA if magic == DIR3_DATA => (16, 4),
            BLFT_DIR_FREE if magic == DIR3_FREE => (16, 4),
            BLFT_DIR_LEAF1 if da == DIR3_LEAF1 => (24, 12),
            BLFT_DIR_LEAFN if da == DIR3_LEAFN => (24, 12),
            BLFT_DA_NODE if da == DA3_NODE => (24, 12),
            BLFT_ATTR_LEAF if da == ATTR3_LEAF => (24, 12),
            BLFT_SB if magic == SB => (240, 224),
            BLFT_ATTR_RMT if magic == ATTR3_RMT => {
                let bs = usize::try_from(self.sb.blocksize).unwrap_or(4096);
                for blk in buf.chunks_mut(bs) {
                    if field::be_u32(blk, 0) == Some(ATTR3_RMT) {
                        xfs_update_cksum(blk, 12);
                    }
                }
                return;
            }
            _ => return,
        };
        if let Some(f) = buf.get_mut(lsn_off..lsn_off.saturating_add(8)) {
            f.copy_from_slice(&lsn.to_be_bytes());
        }
        xfs_update_cksum(buf, crc_off);
    }

    /// xlog_recover_buf_commit_pass2.
    fn buf(&mut self, b: &BufItem, lsn: u64) -> Result<(), String> {
        if b.flags & items::XFS_BLF_CANCEL != 0 {
            if self.put_cancelled(b.blkno, b.len_bb) {
                self.stats.bufs_cancelled = self.stats.bufs_cancelled.saturating_add(1);
                return Ok(());
            }
        } else if self.is_cancelled(b.blkno, b.len_bb) {
            self.stats.bufs_cancelled = self.stats.bufs_cancelled.saturating_add(1);
            return Ok(());
        }
        let what = format!("log: buffer item for daddr {}", b.blkno);
        let mut buf = self.read_buf(b.blkno, u64::from(b.len_bb), &what)?;
        if let Some(disk_lsn) = self.buf_lsn(&buf) {
            if disk_lsn != 0 && disk_lsn != u64::MAX && disk_lsn >= lsn {
                self.stats.bufs_newer_on_disk = self.stats.bufs_newer_on_disk.saturating_add(1);
                return Ok(());
            }
        }
        if b.flags & items::XFS_BLF_INODE_BUF != 0 {
            self.inode_buffer(b, &mut buf, &what)?;
        } else if b.flags & items::XFS_BLF_DQUOT_BUFS != 0 {
            self.stats.skipped_quota = self.stats.skipped_quota.saturating_add(1);
            return Ok(());
        } else {
            self.reg_buffer(b, &mut buf, &what)?;
            self.stamp(&mut buf, b.blft(), lsn);
        }
        self.stats.bufs_replayed = self.stats.bufs_replayed.saturating_add(1);
        self.write_buf(b.blkno, &buf, &what)
    }

    /// The runs of set bits in the dirty map: (first chunk, chunks).
    fn runs(map: &[u32]) -> Vec<(usize, usize)> {
        let nbits = map.len().saturating_mul(32);
        let bit = |i: usize| map.get(i / 32).is_some_and(|w| w >> (i % 32) & 1 != 0);
        let mut out = Vec::new();
        let mut i = 0;
        while i < nbits {
            if bit(i) {
                let s = i;
                while i < nbits && bit(i) {
                    i = i.saturating_add(1);
                }
                out.push((s, i.saturating_sub(s)));
            } else {
                i = i.saturating_add(1);
            }
        }
        out
    }

    /// xlog_recover_do_reg_buffer: copy each logged region over its chunks.
    fn reg_buffer(&self, b: &BufItem, buf: &mut [u8], what: &str) -> Result<(), String> {
        let mut ri = 0usize;
        for (start, n) in Self::runs(&b.map) {
            // A contiguous dirty range can come in several regions (split at page
            // boundaries): consume regions until the run is covered.
            let mut bit = start;
            let end = start.saturating_add(n);
            while bit < end {
                let region = b.regions.get(ri).ok_or_else(|| {
                    format!(
                        "{what}: dirty map needs more regions than the item's {}",
                        b.regions.len()
                    )
                })?;
                let chunks = (end.saturating_sub(bit)).min(region.len() / items::XFS_BLF_CHUNK);
                if chunks == 0 {
                    return corrupt(format!(
                        "{what}: region {} is shorter than one chunk",
                        ri.saturating_add(1)
                    ));
                }
                let off = bit.saturating_mul(items::XFS_BLF_CHUNK);
                let len = chunks.saturating_mul(items::XFS_BLF_CHUNK);
                let blen = buf.len();
                let dst = buf.get_mut(off..off.saturating_add(len)).ok_or_else(|| {
                    format!("{what}: region at byte {off} runs past the {blen}-byte buffer")
                })?;
                dst.copy_from_slice(region.get(..len).unwrap_or_default());
                bit = bit.saturating_add(chunks);
                ri = ri.saturating_add(1);
            }
        }
        Ok(())
    }

    /// xlog_recover_do_inode_buffer: only the di_next_unlinked fields of an inode
    /// buffer are replayed from it; each changed inode gets its CRC recomputed.
    fn inode_buffer(&self, b: &BufItem, buf: &mut [u8], what: &str) -> Result<(), String> {
        let isize = usize::from(self.sb.inodesize);
        let runs = Self::runs(&b.map);
        let ninodes = buf.len().checked_div(isize).unwrap_or(0);
        for i in 0..ninodes {
            let field = i.saturating_mul(isize).saturating_add(DI_NEXT_UNLINKED);
            // Find the logged run (and its region) covering the field.
            let mut ri = 0usize;
            let mut found = None;
            for &(s, n) in &runs {
                let ro = s.saturating_mul(items::XFS_BLF_CHUNK);
                let rl = n.saturating_mul(items::XFS_BLF_CHUNK);
                if field >= ro && field < ro.saturating_add(rl) {
                    found = Some((ri, ro));
                    break;
                }
                ri = ri.saturating_add(1);
            }
            let Some((ri, ro)) = found else { continue };
            let region = b
                .regions
                .get(ri)
                .ok_or_else(|| format!("{what}: inode buffer region {ri} missing"))?;
            let at = field.saturating_sub(ro);
            let val = region
                .get(at..at.saturating_add(4))
                .ok_or_else(|| format!("{what}: inode buffer region {ri} too short"))?;
            if val == [0u8; 4] {
                return corrupt(format!(
                    "{what}: bad inode buffer log record: di_next_unlinked of 0"
                ));
            }
            if let Some(d) = buf.get_mut(field..field.saturating_add(4)) {
                d.copy_from_slice(val);
            }
            if self.is_v5 {
                let s = i.saturating_mul(isize);
                if let Some(dip) = buf.get_mut(s..s.saturating_add(isize)) {
                    if dip.get(4).copied().unwrap_or(0) >= 3 {
                        xfs_update_cksum(dip, DI_CRC);
                    }
                }
            }
        }
        Ok(())
    }

    /// xlog_recover_inode_commit_pass2.
    fn inode(&mut self, it: &InodeItem, lsn: u64) -> Result<(), String> {
        let len16 = u16::try_from(it.len_bb).unwrap_or(u16::MAX);
        if self.is_cancelled(it.blkno, len16) {
            self.stats.inodes_cancelled = self.stats.inodes_cancelled.saturating_add(1);
            return Ok(());
        }
        let what = format!("log: inode {} item (daddr {})", it.ino, it.blkno);
        let mut buf = self.read_buf(it.blkno, u64::from(it.len_bb), &what)?;
        let isize = usize::from(self.sb.inodesize);
        let boff = usize::try_from(it.boffset).unwrap_or(usize::MAX);
        let dip = buf
            .get_mut(boff..boff.saturating_add(isize))
            .ok_or_else(|| format!("{what}: inode offset {boff} is outside the buffer"))?;
        // dip is exactly one inode (>= 256 bytes, sb.rs) and ld is checked to hold
        // the whole log dinode below before any of its fields is read; a field
        // outside either is named by its byte position all the same.
        let dfield = |name: &str, off: usize, v: Option<u16>| {
            v.ok_or_else(|| format!("{what}: {name} at byte {off} is outside the inode"))
        };
        if dfield("di_magic", 0, field::be_u16(dip, 0))? != XFS_DINODE_MAGIC {
            return corrupt(format!("{what}: bad inode magic number on disk"));
        }
        if it.fields & items::XFS_ILOG_CORE == 0 {
            return corrupt(format!("{what}: item without an inode core"));
        }
        let mut ld = it.regions.first().cloned().unwrap_or_default();
        let version = field::u8_at(&ld, 4)
            .ok_or_else(|| format!("{what}: bad log dinode size {}", ld.len()))?;
        let core_max = if self.is_v5 { 176 } else { 96 };
        let core_min = if version >= 3 { 176 } else { 96 };
        if ld.len() > core_max || ld.len() < core_min {
            return corrupt(format!("{what}: bad log dinode size {}", ld.len()));
        }
        let lfield = |off: usize| {
            format!(
                "{what}: log dinode field at byte {off} is outside the {}-byte record",
                ld.len()
            )
        };
        let l16 = |off: usize| field::le_u16(&ld, off).ok_or_else(|| lfield(off));
        let l32 = |off: usize| field::le_u32(&ld, off).ok_or_else(|| lfield(off));
        let l64 = |off: usize| field::le_u64(&ld, off).ok_or_else(|| lfield(off));
        if l16(0)? != XFS_DINODE_MAGIC {
            return corrupt(format!("{what}: bad inode log record (log dinode magic)"));
        }
        if dip.get(4).copied().unwrap_or(0) >= 3 {
            let dl = field::be_u64(dip, 112)
                .ok_or_else(|| format!("{what}: di_lsn at byte 112 is outside the inode"))?;
            if dl != 0 && dl != u64::MAX && dl > lsn {
                self.stats.inodes_newer_on_disk = self.stats.inodes_newer_on_disk.saturating_add(1);
                return Ok(());
            }
        }
        if !self.is_v5 {
            let logged = l16(30)?;
            let ondisk = dfield("di_flushiter", 30, field::be_u16(dip, 30))?;
            if logged < ondisk && !(ondisk == DI_MAX_FLUSH && logged < (DI_MAX_FLUSH >> 1)) {
                self.stats.inodes_newer_on_disk = self.stats.inodes_newer_on_disk.saturating_add(1);
                return Ok(());
            }
        }
        let mode = l16(2)?;
        // ld.len() >= 96 (checked above): byte 5 is inside.
        let format = ld.get(5).copied().unwrap_or(0);
        let ifmt = mode & 0o170000;
        if ifmt == 0o100000 && format != FMT_EXTENTS && format != FMT_BTREE {
            return corrupt(format!(
                "{what}: bad data fork format {format} for a regular file"
            ));
        }
        if ifmt == 0o040000 && format != FMT_EXTENTS && format != FMT_BTREE && format != FMT_LOCAL {
            return corrupt(format!(
                "{what}: bad data fork format {format} for a directory"
            ));
        }
        let flags2 = if version >= 3 { l64(120)? } else { 0 };
        let (nextents, anextents) = if flags2 & DIFLAG2_NREXT64 != 0 {
            if l16(80)? != 0 {
                return corrupt(format!("{what}: bad large extent count padding"));
            }
            (l64(24)?, u64::from(l32(76)?))
        } else {
            if version == 3 && l64(24)? != 0 {
                return corrupt(format!("{what}: bad di_v3_pad"));
            }
            (u64::from(l32(76)?), u64::from(l16(80)?))
        };
        if nextents.saturating_add(anextents) > l64(64)? {
            return corrupt(format!("{what}: bad extent counts"));
        }
        // Reset the flush iteration count (after the reads above, which see the
        // logged value as the kernel's do).
        if let Some(f) = ld.get_mut(30..32) {
            f.copy_from_slice(&[0, 0]);
        }
        // ld.len() >= 96 (checked above): byte 82 is inside.
        let forkoff = ld.get(82).copied().unwrap_or(0);
        if usize::from(forkoff) > isize {
            return corrupt(format!("{what}: bad fork offset {forkoff}"));
        }

        log_dinode_to_disk(&ld, dip, lsn).map_err(|e| format!("{what}: {e}"))?;

        let dcore = if version >= 3 { 176 } else { 100 };
        let litino = isize.saturating_sub(dcore);
        let fo = usize::from(dip.get(82).copied().unwrap_or(0)).saturating_mul(8);
        let dsize = if fo != 0 { fo } else { litino };
        let asize = litino.saturating_sub(fo);
        if it.fields & items::XFS_ILOG_DEV != 0 {
            if let Some(d) = dip.get_mut(dcore..dcore.saturating_add(4)) {
                d.copy_from_slice(&it.rdev.to_be_bytes());
            }
        }
        let mut next = 1usize;
        if it.size > 2 {
            if it.fields & items::XFS_ILOG_DFORK != 0 {
                let src = it
                    .regions
                    .get(next)
                    .ok_or_else(|| format!("{what}: data fork region missing"))?;
                next = 2;
                match it.fields & items::XFS_ILOG_DFORK {
                    items::XFS_ILOG_DDATA | items::XFS_ILOG_DEXT => {
                        let dst = dip
                            .get_mut(dcore..dcore.saturating_add(src.len()))
                            .filter(|_| src.len() <= litino)
                            .ok_or_else(|| {
                                format!(
                                    "{what}: data fork region of {} bytes does not fit",
                                    src.len()
                                )
                            })?;
                        dst.copy_from_slice(src);
                    }
                    items::XFS_ILOG_DBROOT => {
                        let dst = dip
                            .get_mut(dcore..dcore.saturating_add(dsize))
                            .ok_or_else(|| format!("{what}: data fork outside the inode"))?;
                        bmbt_to_bmdr(src, dst, self.is_v5).map_err(|e| format!("{what}: {e}"))?;
                    }
                    _ => return corrupt(format!("{what}: several data fork formats logged")),
                }
            }
            if it.fields & items::XFS_ILOG_AFORK != 0 {
                let src = it
                    .regions
                    .get(next)
                    .ok_or_else(|| format!("{what}: attr fork region missing"))?;
                let a0 = dcore.saturating_add(fo);
                match it.fields & items::XFS_ILOG_AFORK {
                    items::XFS_ILOG_ADATA | items::XFS_ILOG_AEXT => {
                        let dst = dip
                            .get_mut(a0..a0.saturating_add(src.len()))
                            .filter(|_| src.len() <= asize)
                            .ok_or_else(|| {
                                format!(
                                    "{what}: attr fork region of {} bytes does not fit",
                                    src.len()
                                )
                            })?;
                        dst.copy_from_slice(src);
                    }
                    items::XFS_ILOG_ABROOT => {
                        let dst = dip
                            .get_mut(a0..a0.saturating_add(asize))
                            .ok_or_else(|| format!("{what}: attr fork outside the inode"))?;
                        bmbt_to_bmdr(src, dst, self.is_v5).map_err(|e| format!("{what}: {e}"))?;
                    }
                    _ => return corrupt(format!("{what}: invalid attr fork flags")),
                }
            }
        }
        // xfs_dinode_calc_crc
        if self.is_v5 && dip.get(4).copied().unwrap_or(0) >= 3 {
            xfs_update_cksum(dip, DI_CRC);
        }
        if it.fields & items::XFS_ILOG_OWNERS != 0 && field::be_u16(dip, 2).is_some_and(|m| m != 0)
        {
            // xfs_recover_inode_owner_change rewrites the owner field of every bmbt
            // block of the fork (after an extent swap); not done here.
            self.warnings.push(format!(
                "{what}: the bmbt owner change of an extent swap is not replayed (block owners may name the other inode)"
            ));
        }
        self.stats.inodes_replayed = self.stats.inodes_replayed.saturating_add(1);
        self.write_buf(it.blkno, &buf, &what)
    }

    /// xlog_recover_icreate_commit_pass2 + xfs_ialloc_inode_init.
    // dip is exactly one inode (>= 256 bytes): the constant indexes are in range.
    #[allow(clippy::indexing_slicing)]
    fn icreate(&mut self, c: &IcreateItem) -> Result<(), String> {
        let sb = self.sb;
        let what = format!("log: icreate item (AG {} block {})", c.ag, c.agbno);
        if c.isize != u32::from(sb.inodesize) {
            return corrupt(format!("{what}: bad inode size {}", c.isize));
        }
        if c.count == 0 || c.length == 0 || c.length > 256 {
            return corrupt(format!(
                "{what}: bad count {} or length {}",
                c.count, c.length
            ));
        }
        if c.agbno
            .checked_add(c.length)
            .is_none_or(|e| e > sb.agblocks)
        {
            return corrupt(format!("{what}: chunk runs past the AG"));
        }
        if Some(u64::from(c.count)) != u64::from(c.length).checked_shl(u32::from(sb.inopblog)) {
            return corrupt(format!(
                "{what}: {} inodes do not fill {} blocks",
                c.count, c.length
            ));
        }
        // Inode cluster geometry (xfs_ialloc_setup_geometry).
        let mut raw = INODE_BIG_CLUSTER_SIZE;
        if self.is_v5 {
            let new = raw.saturating_mul(u32::from(sb.inodesize) / 256);
            if sb.inoalignmt >= new.checked_div(sb.blocksize).unwrap_or(0) {
                raw = new;
            }
        }
        let bpc = if raw > sb.blocksize {
            raw.checked_div(sb.blocksize).unwrap_or(1)
        } else {
            1
        };
        let nbufs = c.length.checked_div(bpc).unwrap_or(0);
        let bb_per_block = u64::from(sb.blocksize / 512);
        let bb_per_cluster = u64::from(bpc).saturating_mul(bb_per_block);
        let daddr_of = |agbno: u32| -> u64 {
            (u64::from(c.ag)
                .saturating_mul(u64::from(sb.agblocks))
                .saturating_add(u64::from(agbno)))
            .saturating_mul(bb_per_block)
        };
        let bb16 = u16::try_from(bb_per_cluster).unwrap_or(u16::MAX);
        let cancelled = (0..nbufs)
            .filter(|j| {
                self.is_cancelled(
                    daddr_of(c.agbno.saturating_add(j.saturating_mul(bpc))),
                    bb16,
                )
            })
            .count();
        if cancelled > 0 {
            if u32::try_from(cancelled).unwrap_or(0) != nbufs {
                self.warnings.push(format!(
                    "{what}: only some inode cluster buffers are cancelled; skipped"
                ));
            }
            return Ok(());
        }
        let isize = usize::from(sb.inodesize);
        let ipc = usize::try_from(
            u64::from(bpc)
                .saturating_mul(u64::from(sb.blocksize))
                .checked_div(u64::from(sb.inodesize))
                .unwrap_or(0),
        )
        .unwrap_or(0);
        // XFS_AGINO_TO_INO(agno, XFS_AGB_TO_AGINO(agbno)); agblklog <= 31 and
        // inopblog <= 8 (checked in sb), so the shifts stay below 64.
        let ag_shift = u32::from(sb.agblklog).saturating_add(u32::from(sb.inopblog));
        let mut ino = u64::from(c.ag).checked_shl(ag_shift).unwrap_or(0)
            | u64::from(c.agbno)
                .checked_shl(u32::from(sb.inopblog))
                .unwrap_or(0);
        for j in 0..nbufs {
            let daddr = daddr_of(c.agbno.saturating_add(j.saturating_mul(bpc)));
            let mut buf =
                vec![0u8; usize::try_from(bb_per_cluster.saturating_mul(512)).unwrap_or(0)];
            for i in 0..ipc {
                let s = i.saturating_mul(isize);
                let Some(dip) = buf.get_mut(s..s.saturating_add(isize)) else {
                    break;
                };
                dip[0..2].copy_from_slice(&XFS_DINODE_MAGIC.to_be_bytes());
                dip[4] = if self.is_v5 { 3 } else { 2 };
                dip[92..96].copy_from_slice(&c.gen.to_be_bytes());
                dip[96..100].copy_from_slice(&NULLAGINO.to_be_bytes());
                if self.is_v5 {
                    dip[152..160].copy_from_slice(&ino.to_be_bytes());
                    dip[160..176].copy_from_slice(&sb.meta_uuid);
                    xfs_update_cksum(dip, DI_CRC);
                }
                ino = ino.saturating_add(1);
            }
            self.write_buf(daddr, &buf, &what)?;
        }
        self.stats.icreates = self.stats.icreates.saturating_add(1);
        Ok(())
    }
}

/// One log timestamp to disk (xfs_log_dinode_to_disk_ts): a bigtime stamp is a
/// host-order u64; a legacy one is two host-order i32 (seconds, nanoseconds).
fn ts_to_disk(ld: &LogDinode<'_>, off: usize, bigtime: bool) -> Result<[u8; 8], String> {
    let mut out = [0u8; 8];
    if bigtime {
        out = ld.u64(off)?.to_be_bytes();
    } else {
        let (s, ns) = out.split_at_mut(4);
        s.copy_from_slice(&ld.u32(off)?.to_be_bytes());
        ns.copy_from_slice(&ld.u32(off.saturating_add(4))?.to_be_bytes());
    }
    Ok(out)
}

/// The logged inode core (`struct xfs_log_dinode`, host order: little-endian
/// as our logs are written on x86), read field by field; a field outside the
/// record is an error naming its byte position.
struct LogDinode<'a>(&'a [u8]);

impl LogDinode<'_> {
    fn outside(&self, off: usize) -> String {
        format!(
            "log dinode field at byte {off} is outside the {}-byte record",
            self.0.len()
        )
    }
    fn u8(&self, off: usize) -> Result<u8, String> {
        field::u8_at(self.0, off).ok_or_else(|| self.outside(off))
    }
    fn u16(&self, off: usize) -> Result<u16, String> {
        field::le_u16(self.0, off).ok_or_else(|| self.outside(off))
    }
    fn u32(&self, off: usize) -> Result<u32, String> {
        field::le_u32(self.0, off).ok_or_else(|| self.outside(off))
    }
    fn u64(&self, off: usize) -> Result<u64, String> {
        field::le_u64(self.0, off).ok_or_else(|| self.outside(off))
    }
}

/// xfs_log_dinode_to_disk: the host-order logged core into the big-endian
/// on-disk inode. `di_next_unlinked` is not part of the logged core and stays as
/// the disk has it; `di_lsn` becomes the transaction's LSN.
// ld.len() >= 96 (>= 176 for v3) and dip.len() >= 256 (the inode size), checked by
// the caller before this is called; every dip index below is a constant under 176.
// The reads of ld go through LogDinode all the same.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
fn log_dinode_to_disk(raw: &[u8], dip: &mut [u8], lsn: u64) -> Result<(), String> {
    let ld = LogDinode(raw);
    let version = ld.u8(4)?;
    let flags2 = if version >= 3 { ld.u64(120)? } else { 0 };
    let bigtime = version >= 3 && flags2 & DIFLAG2_BIGTIME != 0;
    let p16 = |d: &mut [u8], o: usize, v: u16| d[o..o + 2].copy_from_slice(&v.to_be_bytes());
    let p32 = |d: &mut [u8], o: usize, v: u32| d[o..o + 4].copy_from_slice(&v.to_be_bytes());
    let p64 = |d: &mut [u8], o: usize, v: u64| d[o..o + 8].copy_from_slice(&v.to_be_bytes());
    p16(dip, 0, ld.u16(0)?);
    p16(dip, 2, ld.u16(2)?);
    dip[4] = version;
    dip[5] = ld.u8(5)?;
    // di_onlink (v1 link count), now di_metatype for metadir inodes.
    let meta = if version >= 3 && flags2 & DIFLAG2_METADIR != 0 {
        ld.u16(6)?
    } else {
        0
    };
    p16(dip, 6, meta);
    p32(dip, 8, ld.u32(8)?);
    p32(dip, 12, ld.u32(12)?);
    p32(dip, 16, ld.u32(16)?);
    p16(dip, 20, ld.u16(20)?);
    p16(dip, 22, ld.u16(22)?);
    for o in [32usize, 40, 48] {
        let t = ts_to_disk(&ld, o, bigtime)?;
        dip[o..o + 8].copy_from_slice(&t);
    }
    p64(dip, 56, ld.u64(56)?);
    p64(dip, 64, ld.u64(64)?);
    p32(dip, 72, ld.u32(72)?);
    dip[82] = ld.u8(82)?;
    dip[83] = ld.u8(83)?;
    p32(dip, 84, ld.u32(84)?);
    p16(dip, 88, ld.u16(88)?);
    p16(dip, 90, ld.u16(90)?);
    p32(dip, 92, ld.u32(92)?);
    if version == 3 {
        p64(dip, 104, ld.u64(104)?);
        let t = ts_to_disk(&ld, 144, bigtime)?;
        dip[144..152].copy_from_slice(&t);
        p64(dip, 120, flags2);
        p32(dip, 128, ld.u32(128)?);
        p64(dip, 152, ld.u64(152)?);
        p64(dip, 112, lsn);
        dip[132..144].fill(0);
        let uuid = field::slice_at(raw, 160, 16).ok_or_else(|| ld.outside(160))?;
        dip[160..176].copy_from_slice(uuid);
        p64(dip, 24, 0);
    } else {
        p16(dip, 30, ld.u16(30)?);
        dip[24..30].fill(0);
    }
    if version >= 3 && flags2 & DIFLAG2_NREXT64 != 0 {
        p64(dip, 24, ld.u64(24)?);
        p32(dip, 76, ld.u32(76)?);
        p16(dip, 80, ld.u16(80)?);
    } else {
        p32(dip, 76, ld.u32(76)?);
        p16(dip, 80, ld.u16(80)?);
    }
    Ok(())
}

/// xfs_bmbt_to_bmdr: the logged in-core bmbt root (a long-format btree block
/// header, 72 bytes on v5 and 24 on v4, then keys and pointers spaced for the
/// in-core size) into the on-disk fork root (`xfs_bmdr_block`: level, numrecs,
/// then keys and pointers spaced for the fork size). Keys and pointers are 8
/// bytes, big-endian already.
// Every range below is within the lengths checked at the top.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
fn bmbt_to_bmdr(src: &[u8], dst: &mut [u8], crc: bool) -> Result<(), String> {
    let hdr = if crc { 72 } else { 24 };
    if src.len() < hdr || dst.len() < 4 {
        return Err("bmbt root region too short".into());
    }
    // src.len() >= hdr >= 24 (checked above), so both fields are inside.
    let hdr16 = |off: usize| {
        field::be_u16(src, off)
            .ok_or_else(|| format!("bmbt root field at byte {off} is outside the region"))
    };
    let level = hdr16(4)?;
    let numrecs = usize::from(hdr16(6)?);
    let rmax = (src.len() - hdr) / 16;
    let dmax = (dst.len() - 4) / 16;
    if numrecs > rmax || numrecs > dmax {
        return Err(format!("bmbt root has {numrecs} records, more than fit"));
    }
    dst[0..2].copy_from_slice(&level.to_be_bytes());
    dst[2..4].copy_from_slice(&(numrecs as u16).to_be_bytes());
    let keys = numrecs * 8;
    dst[4..4 + keys].copy_from_slice(&src[hdr..hdr + keys]);
    let fp = hdr + rmax * 8;
    let tp = 4 + dmax * 8;
    dst[tp..tp + keys].copy_from_slice(&src[fp..fp + keys]);
    Ok(())
}
