//! The few primary-superblock fields that replay needs beyond [`super::LogGeometry`]:
//! inode size and alignment (inode items, icreate), AG geometry (icreate daddrs) and
//! the metadata UUID (the v5 buffer LSN check). Offsets are those of `struct xfs_dsb`
//! (libxfs/xfs_format.h), all big-endian. The reader crate has the full superblock;
//! this is kept private to the log module on purpose.

use bytesource::ByteSource;
use fsapi::Error;

/// `XFS_SB_MAGIC` "XFSB".
const XFS_SB_MAGIC: u32 = 0x5846_5342;
/// `XFS_SB_FEAT_INCOMPAT_META_UUID`.
const INCOMPAT_META_UUID: u32 = 1 << 2;

#[derive(Clone, Debug)]
pub(crate) struct SbInfo {
    pub blocksize: u32,
    pub agblocks: u32,
    pub agcount: u32,
    pub sectsize: u16,
    pub agblklog: u8,
    pub inodesize: u16,
    pub inodelog: u8,
    pub inopblog: u8,
    pub inoalignmt: u32,
    /// `sb_meta_uuid` when META_UUID is set, else `sb_uuid`: what v5 metadata carries.
    pub meta_uuid: [u8; 16],
}

pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(off..off.saturating_add(2)) {
        a.copy_from_slice(s);
    }
    u16::from_be_bytes(a)
}
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(off..off.saturating_add(4)) {
        a.copy_from_slice(s);
    }
    u32::from_be_bytes(a)
}
pub(crate) fn be64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(off..off.saturating_add(8)) {
        a.copy_from_slice(s);
    }
    u64::from_be_bytes(a)
}
pub(crate) fn le16(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(off..off.saturating_add(2)) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}
pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(off..off.saturating_add(4)) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}
pub(crate) fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(off..off.saturating_add(8)) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}
pub(crate) fn uuid_at(b: &[u8], off: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    if let Some(s) = b.get(off..off.saturating_add(16)) {
        a.copy_from_slice(s);
    }
    a
}

pub(crate) fn read_sb(dev: &dyn ByteSource, is_v5: bool) -> Result<SbInfo, Error> {
    let mut b = [0u8; 512];
    dev.read_at(0, &mut b)
        .map_err(|e| Error::io("log: superblock", 0, e))?;
    if be32(&b, 0) != XFS_SB_MAGIC {
        return Err(Error::corrupt_at("log: superblock", 0, "bad magic"));
    }
    let incompat = if is_v5 { be32(&b, 216) } else { 0 };
    let meta_uuid = if incompat & INCOMPAT_META_UUID != 0 {
        uuid_at(&b, 248)
    } else {
        uuid_at(&b, 32)
    };
    let sb = SbInfo {
        blocksize: be32(&b, 4),
        agblocks: be32(&b, 84),
        agcount: be32(&b, 88),
        sectsize: be16(&b, 102),
        agblklog: b.get(124).copied().unwrap_or(0),
        inodesize: be16(&b, 104),
        inodelog: b.get(122).copied().unwrap_or(0),
        inopblog: b.get(123).copied().unwrap_or(0),
        inoalignmt: be32(&b, 180),
        meta_uuid,
    };
    // xfs_validate_sb_common's ranges for the fields used here.
    let isz_ok = (256..=2048).contains(&sb.inodesize)
        && sb.inodesize.is_power_of_two()
        && 1u32.checked_shl(u32::from(sb.inodelog)) == Some(u32::from(sb.inodesize));
    if !isz_ok
        || !(512..=65536).contains(&sb.blocksize)
        || !sb.blocksize.is_power_of_two()
        || sb.agblocks == 0
        || sb.agblklog > 31
        || sb.inopblog > 8
    {
        return Err(Error::corrupt_at(
            "log: superblock",
            0,
            "block, AG or inode geometry out of range",
        ));
    }
    Ok(sb)
}
