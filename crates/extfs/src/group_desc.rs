//! Block group descriptors (Documentation/filesystems/ext4/group_descr.rst) and
//! where they live: right after the superblock, or with `meta_bg` in the first
//! blocks of each meta group (Documentation/filesystems/ext4/blockgroup.rst).

use crate::bytes::{lo_hi, usize_from};
use crate::crc::crc32c;
use crate::superblock::{Superblock, INCOMPAT_META_BG, RO_COMPAT_GDT_CSUM, SUPERBLOCK_OFFSET};
use bytesource::field;

/// `bg_flags`: inode table and bitmap not initialized (group_descr.rst).
pub(crate) const EXT4_BG_INODE_UNINIT: u16 = 0x1;

/// Offset of `bg_checksum` in a descriptor.
const BG_CHECKSUM_OFFSET: usize = 0x1E;

/// The fields of one group descriptor this reader uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupDesc {
    pub bg_inode_table: u64,
    pub bg_flags: u16,
}

/// Where the descriptor of `group` is: (filesystem block, byte offset in block).
pub(crate) fn location(sb: &Superblock, group: u32) -> Option<(u64, usize)> {
    let desc_size = u32::from(sb.desc_size);
    let per_block = sb.block_size.get().checked_div(desc_size)?;
    let index_in_block = group.checked_rem(per_block)?;
    let gdt_block = group.checked_div(per_block)?;
    let offset = usize_from(index_in_block.checked_mul(desc_size)?);
    let meta_bg = sb.has_incompat(INCOMPAT_META_BG);
    if !meta_bg || gdt_block < sb.s_first_meta_bg {
        // Contiguous table in the block after the superblock's block (block 2
        // with 1 KiB blocks, else block 1; the kernel's descriptor_loc(), which
        // does not use s_first_data_block: bigalloc with 1 KiB blocks has it 0).
        let sb_block = sb.block_size.div(SUPERBLOCK_OFFSET);
        let block = sb_block.checked_add(1)?.checked_add(u64::from(gdt_block))?;
        return Some((block, offset));
    }
    // meta_bg: the descriptor block of meta group N sits in the first group of
    // that meta group, after the superblock backup if the group has one (the
    // kernel's descriptor_loc()).
    let first_group = gdt_block.checked_mul(per_block)?;
    let mut has_super = u64::from(sb.group_has_super(first_group));
    if sb.block_size.get() == 1024 && gdt_block == 0 && sb.s_first_data_block == 0 {
        has_super = has_super.checked_add(1)?;
    }
    let block = sb.group_first_block(first_group).checked_add(has_super)?;
    Some((block, offset))
}

/// Where the first backup copy of `group`'s descriptor is, for filesystems
/// without `meta_bg`: right after the superblock backup of the first backup
/// group (group 1, or `s_backup_bgs[0]` with `sparse_super2`).
pub(crate) fn backup_location(sb: &Superblock, group: u32) -> Option<(u64, usize)> {
    if sb.has_incompat(INCOMPAT_META_BG) {
        return None;
    }
    let backup_group = if sb.has_compat(crate::superblock::COMPAT_SPARSE_SUPER2) {
        sb.s_backup_bgs[0]
    } else {
        1
    };
    if backup_group == 0 || backup_group >= sb.groups_count || !sb.group_has_super(backup_group) {
        return None;
    }
    let (primary_block, offset) = location(sb, group)?;
    let sb_block = sb.block_size.div(SUPERBLOCK_OFFSET);
    let index = primary_block.checked_sub(sb_block.checked_add(1)?)?;
    let block = sb
        .group_first_block(backup_group)
        .checked_add(1)?
        .checked_add(index)?;
    Some((block, offset))
}

/// Parses the descriptor at `offset` of `block_data`; returns it and whether its
/// checksum (metadata_csum crc32c or uninit_bg crc16) is bad.
pub(crate) fn parse(
    sb: &Superblock,
    group: u32,
    block_data: &[u8],
    offset: usize,
) -> Option<(GroupDesc, bool)> {
    let size = usize::from(sb.desc_size);
    let d = field::slice_at(block_data, offset, size)?;
    let wide = size >= 64;
    // `bg_inode_table_hi` exists only in 64-byte and larger descriptors.
    let hi = if wide { field::le_u32(d, 0x28)? } else { 0 };
    let gd = GroupDesc {
        bg_inode_table: lo_hi(field::le_u32(d, 0x8)?, hi),
        bg_flags: field::le_u16(d, 0x12)?,
    };
    let stored = field::le_u16(d, BG_CHECKSUM_OFFSET)?;
    let bad = if sb.metadata_csum() {
        // crc32c(seed, group number, descriptor with bg_checksum as zero) & 0xFFFF.
        let mut crc = crc32c(sb.csum_seed, &group.to_le_bytes());
        crc = crc32c(crc, d.get(..BG_CHECKSUM_OFFSET).unwrap_or_default());
        crc = crc32c(crc, &[0, 0]);
        crc = crc32c(crc, d.get(BG_CHECKSUM_OFFSET + 2..).unwrap_or_default());
        (crc & 0xFFFF) != u32::from(stored)
    } else if sb.has_ro_compat(RO_COMPAT_GDT_CSUM) {
        let mut crc = crc16(!0, &sb.s_uuid);
        crc = crc16(crc, &group.to_le_bytes());
        crc = crc16(crc, d.get(..BG_CHECKSUM_OFFSET).unwrap_or_default());
        if wide {
            crc = crc16(crc, d.get(BG_CHECKSUM_OFFSET + 2..).unwrap_or_default());
        }
        crc != stored
    } else {
        false
    };
    Some((gd, bad))
}

/// CRC16 (ANSI, reflected polynomial 0xA001) as e2fsprogs' `ext2fs_crc16`.
fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}
