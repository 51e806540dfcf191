//! The few primary-superblock fields that replay needs beyond [`super::LogGeometry`]:
//! inode size and alignment (inode items, icreate), AG geometry (icreate daddrs) and
//! the metadata UUID (the v5 buffer LSN check). Offsets are those of `struct xfs_dsb`
//! (libxfs/xfs_format.h), all big-endian. The reader crate has the full superblock;
//! this is kept private to the log module on purpose.

use bytesource::{field, ByteSource};
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

pub(crate) fn read_sb(dev: &dyn ByteSource, is_v5: bool) -> Result<SbInfo, Error> {
    let mut b = [0u8; 512];
    dev.read_at(0, &mut b)
        .map_err(|e| Error::io("log: superblock", 0, e))?;
    // Every field read here lies in the 512 bytes just read (the largest,
    // sb_meta_uuid, ends at byte 264), so a `None` would name a wrong offset.
    let outside = |at: usize| {
        Error::corrupt_at(
            "log: superblock",
            0,
            format!("field at byte {at} outside the sector"),
        )
    };
    let f32 = |at: usize| field::be_u32(&b, at).ok_or_else(|| outside(at));
    let f16 = |at: usize| field::be_u16(&b, at).ok_or_else(|| outside(at));
    let f8 = |at: usize| field::u8_at(&b, at).ok_or_else(|| outside(at));
    if f32(0)? != XFS_SB_MAGIC {
        return Err(Error::corrupt_at("log: superblock", 0, "bad magic"));
    }
    let incompat = if is_v5 { f32(216)? } else { 0 };
    let uuid_off = if incompat & INCOMPAT_META_UUID != 0 {
        248
    } else {
        32
    };
    let meta_uuid = field::array_at::<16>(&b, uuid_off).ok_or_else(|| outside(uuid_off))?;
    let sb = SbInfo {
        blocksize: f32(4)?,
        agblocks: f32(84)?,
        agcount: f32(88)?,
        sectsize: f16(102)?,
        agblklog: f8(124)?,
        inodesize: f16(104)?,
        inodelog: f8(122)?,
        inopblog: f8(123)?,
        inoalignmt: f32(180)?,
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
