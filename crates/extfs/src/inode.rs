//! Inodes (Documentation/filesystems/ext4/inodes.rst).

use std::fmt;
use std::sync::Arc;

use crate::bytes::{lo_hi, Fields};
use crate::error::Error;
use crate::{FileType, Inode, Timestamp};
use bytesource::field;

// i_flags (inodes.rst, "i_flags").
pub(crate) const EXT4_ENCRYPT_FL: u32 = 0x800;
pub(crate) const EXT4_HUGE_FILE_FL: u32 = 0x40000;
pub(crate) const EXT4_EXTENTS_FL: u32 = 0x80000;
pub(crate) const EXT4_INLINE_DATA_FL: u32 = 0x1000_0000;

/// Size of the original ext2 inode; fields past it exist only when `i_extra_isize` covers them.
pub(crate) const EXT2_GOOD_OLD_INODE_SIZE: usize = 128;
/// Offset and size of `i_block` (60 bytes: 15 block pointers or an extent root).
pub(crate) const I_BLOCK_OFFSET: usize = 0x28;
pub(crate) const I_BLOCK_SIZE: usize = 60;
/// Offsets of the two halves of the inode checksum.
pub(crate) const I_CHECKSUM_LO: usize = 0x7C;
pub(crate) const I_CHECKSUM_HI: usize = 0x82;

/// The raw on-disk inode bytes, kept so later reads (extent root, inline data,
/// in-inode xattrs) need no second device read. Debug prints only the length.
#[derive(Clone)]
pub(crate) struct RawInode(pub(crate) Arc<[u8]>);

impl fmt::Debug for RawInode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawInode({} bytes)", self.0.len())
    }
}

/// Maps the type bits of `i_mode` to a [`FileType`].
pub(crate) fn file_type_from_mode(mode: u16) -> FileType {
    match mode & 0xF000 {
        0x1000 => FileType::Fifo,
        0x2000 => FileType::CharDevice,
        0x4000 => FileType::Directory,
        0x6000 => FileType::BlockDevice,
        0x8000 => FileType::Regular,
        0xA000 => FileType::Symlink,
        0xC000 => FileType::Socket,
        _ => FileType::Unknown,
    }
}

/// `i_extra_isize`, or 0 for 128-byte inodes.
pub(crate) fn extra_isize(raw: &[u8]) -> usize {
    // An inode too short to hold `i_extra_isize` (0x80..0x82) has no extra area:
    // 0 is the field's meaning there, not a stand-in for a missing value.
    if raw.len() > EXT2_GOOD_OLD_INODE_SIZE {
        field::le_u16(raw, 0x80).map_or(0, usize::from)
    } else {
        0
    }
}

/// Whether the extra area holds a field ending at `end` (offset from inode start).
fn has_extra(raw: &[u8], end: usize) -> bool {
    let extra = extra_isize(raw);
    EXT2_GOOD_OLD_INODE_SIZE
        .checked_add(extra)
        .is_some_and(|limit| end <= limit && limit <= raw.len())
}

fn timestamp(
    f: Fields<'_>,
    raw: &[u8],
    secs_off: usize,
    extra_off: usize,
) -> Result<Timestamp, Error> {
    // The base is a signed 32-bit count; the low 2 bits of the extra field add
    // epochs of 2^32 seconds and the upper 30 bits are nanoseconds (inodes.rst,
    // "Inode Timestamps").
    let base = i64::from(i32::from_le_bytes(f.array(secs_off)?));
    if has_extra(raw, extra_off.saturating_add(4)) {
        let extra = f.le32(extra_off)?;
        let epoch = i64::from(extra & 0x3);
        let nanos = (extra >> 2).min(999_999_999);
        Ok(Timestamp {
            secs: base.saturating_add(epoch << 32),
            nanos,
        })
    } else {
        Ok(Timestamp {
            secs: base,
            nanos: 0,
        })
    }
}

/// Builds the public [`Inode`] from the raw bytes (already read whole). A
/// field outside `raw` (shorter than the 128-byte ext2 inode) is an error naming
/// the inode and the field's offset.
pub(crate) fn parse(
    ino: u32,
    raw: Arc<[u8]>,
    huge_file: bool,
    block_size: u32,
) -> Result<Inode, Error> {
    parse_fields(ino, raw, huge_file, block_size).map_err(|e| Error::inode(ino, e.to_string()))
}

fn parse_fields(
    ino: u32,
    raw: Arc<[u8]>,
    huge_file: bool,
    block_size: u32,
) -> Result<Inode, Error> {
    let r: &[u8] = &raw;
    let f = Fields::new(r, "raw bytes");
    let mode = f.le16(0x0)?;
    let file_type = file_type_from_mode(mode);
    let flags = f.le32(0x20)?;
    let uid = u32::from(f.le16(0x2)?) | (u32::from(f.le16(0x78)?) << 16);
    let gid = u32::from(f.le16(0x18)?) | (u32::from(f.le16(0x7A)?) << 16);
    let size = lo_hi(f.le32(0x4)?, f.le32(0x6C)?);
    let blocks_lo = f.le32(0x1C)?;
    let blocks_hi = if huge_file { f.le16(0x74)? } else { 0 };
    let raw_blocks = lo_hi(blocks_lo, u32::from(blocks_hi));
    let blocks = if huge_file && flags & EXT4_HUGE_FILE_FL != 0 {
        // Counted in filesystem blocks instead of 512-byte sectors.
        raw_blocks.saturating_mul(u64::from(block_size / 512))
    } else {
        raw_blocks
    };
    let crtime = if has_extra(r, 0x94) {
        Some(timestamp(f, r, 0x90, 0x94)?)
    } else {
        None
    };
    let rdev = match file_type {
        FileType::CharDevice | FileType::BlockDevice => Some(decode_rdev(f)?),
        _ => None,
    };
    // i_file_acl_lo and l_i_file_acl_high (osd2).
    let file_acl = lo_hi(f.le32(0x68)?, u32::from(f.le16(0x76)?));
    Ok(Inode {
        ino,
        mode,
        file_type,
        uid,
        gid,
        size,
        nlink: u32::from(f.le16(0x1A)?),
        atime: timestamp(f, r, 0x8, 0x8C)?,
        mtime: timestamp(f, r, 0x10, 0x88)?,
        ctime: timestamp(f, r, 0xC, 0x84)?,
        crtime,
        flags,
        rdev,
        generation: f.le32(0x64)?,
        blocks,
        file_acl,
        raw: RawInode(raw),
    })
}

/// Device numbers: the old 16-bit encoding in `i_block[0]`, or the new 32-bit one
/// in `i_block[1]` (the kernel's `old_decode_dev` / `new_decode_dev`).
fn decode_rdev(f: Fields<'_>) -> Result<(u32, u32), Error> {
    let old = f.le32(I_BLOCK_OFFSET)?;
    if old != 0 {
        Ok(((old >> 8) & 0xFF, old & 0xFF))
    } else {
        let new = f.le32(I_BLOCK_OFFSET + 4)?;
        Ok((
            (new & 0xF_FF00) >> 8,
            (new & 0xFF) | ((new >> 12) & 0xF_FF00),
        ))
    }
}

impl Inode {
    /// The 60 bytes of `i_block`.
    pub(crate) fn i_block(&self) -> &[u8] {
        // `parse` read i_block's neighbours on both sides (0x20 and 0x64), so a
        // parsed inode's bytes hold 0x28..0x64 whole: the fallback is unreachable.
        field::slice_at(&self.raw.0, I_BLOCK_OFFSET, I_BLOCK_SIZE).unwrap_or_default()
    }

    /// The raw on-disk bytes.
    pub(crate) fn raw(&self) -> &[u8] {
        &self.raw.0
    }

    /// `i_file_acl` (the xattr block), with the high 16 bits.
    pub(crate) fn file_acl(&self) -> u64 {
        self.file_acl
    }

    pub(crate) fn has_flag(&self, f: u32) -> bool {
        self.flags & f != 0
    }
}

// ---- size limits --------------------------------------------------------------

/// `MAX_LFS_FILESIZE` on 64-bit kernels (include/linux/fs.h): `LLONG_MAX`.
const MAX_LFS_FILESIZE: u64 = i64::MAX.unsigned_abs();

/// `ext4_max_size` (fs/ext4/super.c): the largest size of an extent-mapped file.
/// Extents start at a 32-bit logical block, and without `huge_file` `i_blocks`
/// counts at most 2^32 - 1 sectors.
pub(crate) fn max_size_extents(blkbits: u32, huge_file: bool) -> u64 {
    let mut upper = MAX_LFS_FILESIZE;
    if !huge_file {
        upper = ((1u64 << 32).saturating_sub(1) >> blkbits.saturating_sub(9)) << blkbits;
    }
    let res = (1u64 << 32).saturating_sub(1) << blkbits;
    res.min(upper)
}

/// `ext4_max_bitmap_size` (fs/ext4/super.c): the largest size of a file mapped by
/// direct and indirect blocks, such that data plus indirect blocks fit in the
/// 32-bit (or, with `huge_file`, 48-bit) block count.
pub(crate) fn max_size_bitmap(blkbits: u32, huge_file: bool) -> u64 {
    const NDIR: u64 = 12;
    let ppb: u64 = 1u64 << blkbits.saturating_sub(2);
    let mut upper: u64 = if huge_file {
        (1u64 << 48).saturating_sub(1)
    } else {
        (1u64 << 32).saturating_sub(1) >> blkbits.saturating_sub(9)
    };
    let ppb2 = ppb.saturating_mul(ppb);
    let tree = NDIR
        .saturating_add(ppb)
        .saturating_add(ppb2)
        .saturating_add(ppb2.saturating_mul(ppb));
    let meta_full = 1u64
        .saturating_add(1)
        .saturating_add(ppb)
        .saturating_add(1)
        .saturating_add(ppb)
        .saturating_add(ppb2);
    let blocks = if tree.saturating_add(meta_full) <= upper {
        tree
    } else {
        let res = upper;
        upper = upper.saturating_sub(NDIR).saturating_sub(ppb);
        let mut meta: u64 = 1;
        if upper < ppb2 {
            meta = meta.saturating_add(1).saturating_add(upper.div_ceil(ppb));
        } else {
            meta = meta.saturating_add(1).saturating_add(ppb);
            upper = upper.saturating_sub(ppb2);
            meta = meta
                .saturating_add(1)
                .saturating_add(upper.div_ceil(ppb))
                .saturating_add(upper.div_ceil(ppb2));
        }
        res.saturating_sub(meta)
    };
    blocks
        .checked_shl(blkbits)
        .filter(|&b| b >> blkbits == blocks)
        .unwrap_or(MAX_LFS_FILESIZE)
        .min(MAX_LFS_FILESIZE)
}

/// The largest `i_size` this filesystem allows `inode`: `s_maxbytes` for extent
/// and inline files, `s_bitmap_maxbytes` for block-mapped ones, as the kernel
/// picks them (`ext4_get_maxbytes`, fs/ext4/ext4.h... and file.c).
pub(crate) fn max_size(block_size: u32, huge_file: bool, inode: &Inode) -> u64 {
    let blkbits = block_size.trailing_zeros();
    if inode.has_flag(EXT4_EXTENTS_FL) || inode.has_flag(EXT4_INLINE_DATA_FL) {
        max_size_extents(blkbits, huge_file)
    } else {
        max_size_bitmap(blkbits, huge_file)
    }
}

/// Warns when two data runs of one file share device bytes: e2fsck's
/// "multiply-claimed blocks" (pass 1B). The data is still readable, once per
/// offset, so this is a warning; [`crate::Filesystem::file_runs`] already refuses
/// a file whose runs add up to more than the filesystem.
///
/// With the `shared_blocks` feature (deduplicated images, e2fsdroid) sharing is
/// allowed and e2fsck calls such a filesystem clean (its f_unshare_blocks tests),
/// so nothing is said.
pub(crate) fn warn_shared_blocks(fs: &crate::Filesystem, inode: &Inode, runs: &[crate::FileRun]) {
    // EXT4_FEATURE_RO_COMPAT_SHARED_BLOCKS (fs/ext4/ext4.h).
    const RO_COMPAT_SHARED_BLOCKS: u32 = 0x4000;
    if fs.sb.has_ro_compat(RO_COMPAT_SHARED_BLOCKS) {
        return;
    }
    let mut data: Vec<(u64, u64, u64)> = runs
        .iter()
        .filter_map(|r| match *r {
            crate::FileRun::Data {
                offset,
                len,
                physical,
            } => Some((physical, len, offset)),
            crate::FileRun::Hole { .. } | crate::FileRun::Unwritten { .. } => None,
        })
        .collect();
    data.sort_unstable();
    for w in data.windows(2) {
        if let [(p1, l1, o1), (p2, _, o2)] = *w {
            if p1.saturating_add(l1) > p2 {
                fs.warn(format!(
                    "inode {}: file offsets {o1} and {o2} map the same device bytes (at byte {p2}): blocks claimed twice",
                    inode.ino
                ));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limits of Documentation/filesystems/ext4/overview.rst ("Blocks", the
    /// 32-bit table): extent files 16 TiB with 4 KiB blocks (less one block, as
    /// the kernel lowers it), block-mapped files "16GiB" with 1 KiB blocks.
    #[test]
    fn documented_limits() {
        // Extents, huge_file: (2^32 - 1) blocks.
        assert_eq!(max_size_extents(12, true), ((1u64 << 32) - 1) << 12);
        assert_eq!(max_size_extents(10, true), ((1u64 << 32) - 1) << 10);
        let m = max_size_bitmap(10, true);
        assert!((16u64 << 30..16u64 << 30 | 1 << 27).contains(&m), "{m}");
        // 4 KiB blocks without huge_file: i_blocks caps at 2^32 sectors, ~2 TiB.
        let m = max_size_bitmap(12, false);
        assert!(m < 2 << 40 && m > (2 << 40) - (8 << 30), "{m}");
    }
}
