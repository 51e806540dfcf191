//! The ext2/3/4 superblock (Documentation/filesystems/ext4/super.rst).
//!
//! Always 1024 bytes at byte offset 1024 of the volume. Parsing validates every
//! field later code relies on (block size, group sizes, inode size, descriptor
//! size), so the rest of the crate can use them without re-checking.

use crate::bytes::{cstr, lo_hi, Fields};
use crate::crc::crc32c;
use crate::Error;
use std::num::{NonZeroU32, NonZeroU64};

/// A filesystem block size, validated once where the superblock is parsed:
/// a power of two from 1 KiB to 64 KiB (super.rst: block size =
/// 2 ^ (10 + s_log_block_size), and the kernel refuses s_log_block_size above
/// EXT4_MAX_BLOCK_LOG_SIZE - 10 = 6). Being non-zero, it divides without a
/// fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockSize(NonZeroU32);

impl BlockSize {
    /// `1024 << log` for `log` in 0..=6, else `None`.
    pub fn from_log(log: u32) -> Option<Self> {
        if log > 6 {
            return None;
        }
        NonZeroU32::new(1024u32.checked_shl(log)?).map(Self)
    }

    pub fn get(self) -> u32 {
        self.0.get()
    }

    pub fn as_u64(self) -> u64 {
        u64::from(self.0.get())
    }

    pub fn as_usize(self) -> usize {
        crate::bytes::usize_from(self.0.get())
    }

    /// `x / block size`: which block byte `x` is in.
    pub fn div(self, x: u64) -> u64 {
        x / NonZeroU64::from(self.0)
    }

    /// `x % block size`: where in its block byte `x` is.
    pub fn rem(self, x: u64) -> u64 {
        x % NonZeroU64::from(self.0)
    }
}

impl std::fmt::Display for BlockSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Byte offset of the superblock on the volume.
pub(crate) const SUPERBLOCK_OFFSET: u64 = 1024;
/// Size of the superblock.
pub(crate) const SUPERBLOCK_SIZE: usize = 1024;
/// `s_magic` (super.rst).
pub(crate) const EXT4_SUPER_MAGIC: u16 = 0xEF53;
/// Offset of `s_magic` within the superblock.
pub(crate) const S_MAGIC_OFFSET: usize = 0x38;

// Feature bits (super.rst, "s_feature_compat" etc.), with the names e2fsprogs prints.
pub(crate) const COMPAT_HAS_JOURNAL: u32 = 0x4;
pub(crate) const INCOMPAT_COMPRESSION: u32 = 0x1;
pub(crate) const INCOMPAT_FILETYPE: u32 = 0x2;
pub(crate) const INCOMPAT_RECOVER: u32 = 0x4;
pub(crate) const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
pub(crate) const INCOMPAT_META_BG: u32 = 0x10;
pub(crate) const INCOMPAT_64BIT: u32 = 0x80;
pub(crate) const INCOMPAT_CSUM_SEED: u32 = 0x2000;
pub(crate) const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
pub(crate) const RO_COMPAT_LARGE_FILE: u32 = 0x2;
pub(crate) const RO_COMPAT_BTREE_DIR: u32 = 0x4;
pub(crate) const RO_COMPAT_HUGE_FILE: u32 = 0x8;
pub(crate) const RO_COMPAT_GDT_CSUM: u32 = 0x10;
pub(crate) const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
pub(crate) const RO_COMPAT_ORPHAN_PRESENT: u32 = 0x10000;
pub(crate) const COMPAT_SPARSE_SUPER2: u32 = 0x200;

const COMPAT_NAMES: &[(u32, &str)] = &[
    (0x1, "dir_prealloc"),
    (0x2, "imagic_inodes"),
    (0x4, "has_journal"),
    (0x8, "ext_attr"),
    (0x10, "resize_inode"),
    (0x20, "dir_index"),
    (0x40, "lazy_bg"),
    (0x80, "snapshot_bitmap"),
    (0x200, "sparse_super2"),
    (0x400, "fast_commit"),
    (0x800, "stable_inodes"),
    (0x1000, "orphan_file"),
];
const INCOMPAT_NAMES: &[(u32, &str)] = &[
    (0x1, "compression"),
    (0x2, "filetype"),
    (0x4, "needs_recovery"),
    (0x8, "journal_dev"),
    (0x10, "meta_bg"),
    (0x40, "extent"),
    (0x80, "64bit"),
    (0x100, "mmp"),
    (0x200, "flex_bg"),
    (0x400, "ea_inode"),
    (0x1000, "dirdata"),
    (0x2000, "metadata_csum_seed"),
    (0x4000, "large_dir"),
    (0x8000, "inline_data"),
    (0x10000, "encrypt"),
    (0x20000, "casefold"),
];
const RO_COMPAT_NAMES: &[(u32, &str)] = &[
    (0x1, "sparse_super"),
    (0x2, "large_file"),
    (0x4, "btree_dir"),
    (0x8, "huge_file"),
    (0x10, "uninit_bg"),
    (0x20, "dir_nlink"),
    (0x40, "extra_isize"),
    (0x80, "snapshot"),
    (0x100, "quota"),
    (0x200, "bigalloc"),
    (0x400, "metadata_csum"),
    (0x800, "replica"),
    (0x1000, "read-only"),
    (0x2000, "project"),
    (0x4000, "shared_blocks"),
    (0x8000, "verity"),
    (0x10000, "orphan_present"),
];
/// Incompatible features this reader understands (others are reported as a warning).
const INCOMPAT_KNOWN: u32 = 0x2
    | 0x4
    | 0x10
    | 0x40
    | 0x80
    | 0x100
    | 0x200
    | 0x400
    | 0x1000
    | 0x2000
    | 0x4000
    | 0x8000
    | 0x10000
    | 0x20000;

/// A validated superblock.
#[derive(Clone, Debug)]
pub(crate) struct Superblock {
    pub s_inodes_count: u32,
    pub s_blocks_count: u64,
    pub s_free_blocks_count: u64,
    pub s_free_inodes_count: u32,
    pub s_first_data_block: u32,
    pub block_size: BlockSize,
    pub s_blocks_per_group: u32,
    pub s_inodes_per_group: u32,
    pub s_mtime: i64,
    pub s_wtime: i64,
    pub s_state: u16,
    pub inode_size: u16,
    pub s_feature_compat: u32,
    pub s_feature_incompat: u32,
    pub s_feature_ro_compat: u32,
    pub s_uuid: [u8; 16],
    pub s_volume_name: String,
    pub s_last_mounted: String,
    pub s_journal_uuid: [u8; 16],
    pub s_journal_inum: u32,
    /// `s_jnl_backup_type`: 1 (`EXT3_JNL_BACKUP_BLOCKS`) when `s_jnl_blocks` holds
    /// a copy of the journal inode's `i_block`, `i_size_high` and `i_size`.
    pub s_jnl_backup_type: u8,
    pub s_jnl_blocks: [u32; 17],
    pub s_journal_dev: u32,
    pub s_last_orphan: u32,
    pub desc_size: u16,
    pub s_first_meta_bg: u32,
    pub s_backup_bgs: [u32; 2],
    /// Seed for all metadata checksums (`s_checksum_seed` or crc32c of the uuid).
    pub csum_seed: u32,
    /// Number of block groups.
    pub groups_count: u32,
    /// Set when `s_checksum` did not match (metadata_csum only).
    pub checksum_bad: Option<(u32, u32)>,
}

impl Superblock {
    /// Parses and validates the 1024 superblock bytes.
    pub(crate) fn parse(b: &[u8]) -> Result<Superblock, Error> {
        let sb = |d: String| Error::corrupt_at("superblock", SUPERBLOCK_OFFSET, d);
        if b.len() < SUPERBLOCK_SIZE {
            return Err(sb(format!("only {} bytes", b.len())));
        }
        let f = Fields::new(b, "superblock");
        let magic = f.le16(S_MAGIC_OFFSET)?;
        if magic != EXT4_SUPER_MAGIC {
            return Err(sb(format!(
                "bad magic {magic:#06x} (not an ext2/3/4 filesystem)"
            )));
        }
        let s_feature_compat = f.le32(0x5C)?;
        let s_feature_incompat = f.le32(0x60)?;
        let s_feature_ro_compat = f.le32(0x64)?;
        let is_64bit = s_feature_incompat & INCOMPAT_64BIT != 0;
        if s_feature_incompat & INCOMPAT_JOURNAL_DEV != 0 {
            return Err(Error::unsupported(
                "superblock",
                "this is an external journal device, not a filesystem",
            ));
        }
        if s_feature_incompat & INCOMPAT_COMPRESSION != 0 {
            return Err(Error::unsupported(
                "superblock",
                "the compression feature (never merged into Linux)",
            ));
        }
        let s_log_block_size = f.le32(0x18)?;
        // 1 KiB .. 64 KiB blocks (super.rst: block size = 2 ^ (10 + s_log_block_size)).
        let Some(bsize) = BlockSize::from_log(s_log_block_size) else {
            return Err(sb(format!(
                "s_log_block_size {s_log_block_size} gives a block size above 64 KiB"
            )));
        };
        let block_size = bsize.get();
        let s_blocks_count = lo_hi(f.le32(0x4)?, if is_64bit { f.le32(0x150)? } else { 0 });
        let s_free_blocks_count = lo_hi(f.le32(0xC)?, if is_64bit { f.le32(0x158)? } else { 0 });
        let s_first_data_block = f.le32(0x14)?;
        let s_blocks_per_group = f.le32(0x20)?;
        let s_inodes_per_group = f.le32(0x28)?;
        let s_inodes_count = f.le32(0x0)?;
        if s_blocks_per_group == 0 {
            return Err(sb("s_blocks_per_group is 0".into()));
        }
        if s_inodes_per_group == 0 || s_inodes_per_group > block_size.saturating_mul(8) {
            return Err(sb(format!(
                "s_inodes_per_group {s_inodes_per_group} is not in 1..={}",
                block_size.saturating_mul(8)
            )));
        }
        if u64::from(s_first_data_block) >= s_blocks_count {
            return Err(sb(format!(
                "s_first_data_block {s_first_data_block} is not below s_blocks_count {s_blocks_count}"
            )));
        }
        let data_blocks = s_blocks_count.saturating_sub(u64::from(s_first_data_block));
        let groups = data_blocks.div_ceil(u64::from(s_blocks_per_group));
        let groups_count = u32::try_from(groups)
            .map_err(|_| sb(format!("{groups} block groups is more than 2^32")))?;
        let s_rev_level = f.le32(0x4C)?;
        // Revision 0 has fixed 128-byte inodes.
        let inode_size = if s_rev_level == 0 {
            128u16
        } else {
            f.le16(0x58)?
        };
        if inode_size < 128 || !inode_size.is_power_of_two() || u32::from(inode_size) > block_size {
            return Err(sb(format!(
                "s_inode_size {inode_size} is not a power of two between 128 and the block size"
            )));
        }
        let desc_size = if is_64bit {
            let d = f.le16(0xFE)?;
            // The kernel requires 64..=1024 and a power of two when 64bit is set.
            if !(64..=1024).contains(&d) || !d.is_power_of_two() || u32::from(d) > block_size {
                return Err(sb(format!(
                    "s_desc_size {d} is not a power of two in 64..=1024"
                )));
            }
            d
        } else {
            32
        };
        let s_uuid: [u8; 16] = f.array(0x68)?;
        let s_journal_uuid: [u8; 16] = f.array(0xD0)?;
        let metadata_csum = s_feature_ro_compat & RO_COMPAT_METADATA_CSUM != 0;
        let csum_seed = if s_feature_incompat & INCOMPAT_CSUM_SEED != 0 {
            f.le32(0x270)?
        } else {
            crc32c(!0, &s_uuid)
        };
        let checksum_bad = if metadata_csum {
            let want = f.le32(0x3FC)?;
            let got = crc32c(!0, f.slice(0, 0x3FC)?);
            (want != got).then_some((want, got))
        } else {
            None
        };
        // Superblock times are unsigned 32-bit with an 8-bit high part (super.rst).
        let time = |lo: usize, hi: usize| -> Result<i64, Error> {
            Ok(i64::from(f.le32(lo)?) | (i64::from(f.u8(hi)?) << 32))
        };
        let mut s_jnl_blocks = [0u32; 17];
        for (i, slot) in (0usize..).zip(s_jnl_blocks.iter_mut()) {
            *slot = f.le32(0x10C_usize.saturating_add(i.saturating_mul(4)))?;
        }
        Ok(Superblock {
            s_inodes_count,
            s_blocks_count,
            s_free_blocks_count,
            s_free_inodes_count: f.le32(0x10)?,
            s_first_data_block,
            block_size: bsize,
            s_blocks_per_group,
            s_inodes_per_group,
            s_mtime: time(0x2C, 0x275)?,
            s_wtime: time(0x30, 0x274)?,
            s_state: f.le16(0x3A)?,
            inode_size,
            s_feature_compat,
            s_feature_incompat,
            s_feature_ro_compat,
            s_uuid,
            s_volume_name: cstr(f.slice(0x78, 16)?),
            s_last_mounted: cstr(f.slice(0x88, 64)?),
            s_journal_uuid,
            s_journal_inum: f.le32(0xE0)?,
            s_jnl_backup_type: f.u8(0xFD)?,
            s_jnl_blocks,
            s_journal_dev: f.le32(0xE4)?,
            s_last_orphan: f.le32(0xE8)?,
            desc_size,
            s_first_meta_bg: f.le32(0x104)?,
            s_backup_bgs: [f.le32(0x24C)?, f.le32(0x250)?],
            csum_seed,
            groups_count,
            checksum_bad,
        })
    }

    pub(crate) fn has_incompat(&self, f: u32) -> bool {
        self.s_feature_incompat & f != 0
    }
    pub(crate) fn has_ro_compat(&self, f: u32) -> bool {
        self.s_feature_ro_compat & f != 0
    }
    pub(crate) fn has_compat(&self, f: u32) -> bool {
        self.s_feature_compat & f != 0
    }
    pub(crate) fn metadata_csum(&self) -> bool {
        self.has_ro_compat(RO_COMPAT_METADATA_CSUM)
    }

    /// Incompatible feature bits this reader does not know.
    pub(crate) fn unknown_incompat(&self) -> u32 {
        self.s_feature_incompat & !INCOMPAT_KNOWN
    }

    /// Feature names as e2fsprogs prints them (unknown bits as `FEATURE_C12` etc.).
    pub(crate) fn feature_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (bits, names, letter) in [
            (self.s_feature_compat, COMPAT_NAMES, 'C'),
            (self.s_feature_incompat, INCOMPAT_NAMES, 'I'),
            (self.s_feature_ro_compat, RO_COMPAT_NAMES, 'R'),
        ] {
            for bit in 0..32u32 {
                let mask = 1u32 << bit;
                if bits & mask == 0 {
                    continue;
                }
                match names.iter().find(|(m, _)| *m == mask) {
                    Some((_, n)) => out.push((*n).to_string()),
                    None => out.push(format!("FEATURE_{letter}{bit}")),
                }
            }
        }
        out
    }

    /// "ext2", "ext3" or "ext4", decided the way blkid does: any feature beyond
    /// what ext3 knows makes it ext4; otherwise a journal makes it ext3.
    pub(crate) fn kind(&self) -> &'static str {
        let ext3_incompat = INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG;
        let ext3_ro = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_BTREE_DIR;
        if self.s_feature_incompat & !ext3_incompat != 0 || self.s_feature_ro_compat & !ext3_ro != 0
        {
            "ext4"
        } else if self.has_compat(COMPAT_HAS_JOURNAL) {
            "ext3"
        } else {
            "ext2"
        }
    }

    /// The uuid as 8-4-4-4-12 lowercase hex.
    pub(crate) fn uuid_string(&self) -> String {
        format_uuid(&self.s_uuid)
    }

    /// Does block group `group` hold a superblock backup (and so a GDT copy)?
    pub(crate) fn group_has_super(&self, group: u32) -> bool {
        if self.has_compat(COMPAT_SPARSE_SUPER2) {
            return group == 0 || group == self.s_backup_bgs[0] || group == self.s_backup_bgs[1];
        }
        if group <= 1 || !self.has_ro_compat(RO_COMPAT_SPARSE_SUPER) {
            return true;
        }
        if group % 2 == 0 {
            return false;
        }
        [3u32, 5, 7].iter().any(|&base| is_power_of(group, base))
    }

    /// First block of block group `group`.
    pub(crate) fn group_first_block(&self, group: u32) -> u64 {
        u64::from(group)
            .saturating_mul(u64::from(self.s_blocks_per_group))
            .saturating_add(u64::from(self.s_first_data_block))
    }

    /// Whether blocks hold `huge_file` counts.
    pub(crate) fn huge_file(&self) -> bool {
        self.has_ro_compat(RO_COMPAT_HUGE_FILE)
    }

    /// Largest valid inode number.
    pub(crate) fn max_ino(&self) -> u32 {
        let by_groups =
            u64::from(self.groups_count).saturating_mul(u64::from(self.s_inodes_per_group));
        let by_groups = u32::try_from(by_groups).unwrap_or(u32::MAX);
        self.s_inodes_count.min(by_groups)
    }
}

fn is_power_of(mut n: u32, base: u32) -> bool {
    if n == 0 {
        return false;
    }
    // Each step divides n by base >= 2, so this ends within 32 steps.
    // (checked_rem is Some, so base != 0 and checked_div is Some too.)
    while n.checked_rem(base) == Some(0) {
        n = n.checked_div(base).unwrap_or(0);
    }
    n == 1
}

/// Formats 16 bytes as an 8-4-4-4-12 lowercase uuid.
pub(crate) fn format_uuid(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::BlockSize;

    /// super.rst: block size = 2 ^ (10 + s_log_block_size); the kernel's
    /// EXT4_MAX_BLOCK_LOG_SIZE is 16 (64 KiB).
    #[test]
    fn block_size_range() {
        assert_eq!(BlockSize::from_log(0).map(BlockSize::get), Some(1024));
        assert_eq!(BlockSize::from_log(2).map(BlockSize::get), Some(4096));
        assert_eq!(BlockSize::from_log(6).map(BlockSize::get), Some(65536));
        assert_eq!(BlockSize::from_log(7), None);
        assert_eq!(BlockSize::from_log(u32::MAX), None);
        let bs = BlockSize::from_log(2).unwrap();
        assert_eq!((bs.div(8191), bs.rem(8191)), (1, 4095));
    }
}
