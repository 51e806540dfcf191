//! The dm-thin pool's metadata superblock (block 0 of the `_tmeta` LV) and the
//! checksum every persistent-data block carries.
//!
//! Layout: `struct thin_disk_superblock` in the kernel's
//! `drivers/md/dm-thin-metadata.c` (thin-provisioning-tools `src/thin/superblock.rs`
//! reads the same): csum u32 @0, flags u32 @4, blocknr u64 @8, uuid: 16 bytes @16,
//! magic u64 @32, version u32 @40, time u32 @44, trans_id u64 @48, held_root u64 @56
//! (the metadata snapshot), data_space_map_root (128 bytes) @64, metadata_space_map_root (128 bytes)
//! @192, data_mapping_root u64 @320, device_details_root u64 @328, data_block_size u32
//! @336 (sectors), metadata_block_size u32 @340 (sectors), metadata_nr_blocks u64 @344.

use super::space_map::SmRoot;

/// Metadata block size: persistent-data always uses 4096-byte blocks
/// (`THIN_METADATA_BLOCK_SIZE` in dm-thin-metadata.h).
pub const BLOCK_SIZE: usize = 4096;
/// `THIN_SUPERBLOCK_MAGIC` (dm-thin-metadata.c).
pub const THIN_SUPERBLOCK_MAGIC: u64 = 27_022_010;
/// `SUPERBLOCK_CSUM_XOR` (dm-thin-metadata.c).
pub const SUPERBLOCK_CSUM_XOR: u32 = 160_774;
/// Largest data block the kernel accepts: `DATA_DEV_BLOCK_SIZE_MAX_SECTORS` (1 GiB).
pub const MAX_DATA_BLOCK_SECTORS: u32 = 2_097_152;

/// CRC-32C (Castagnoli, reflected 0x82F63B78) table, built at compile time (the
/// loop indices are constants below 256, so the casts and indexing cannot fail).
#[allow(
    clippy::as_conversions,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
const CRC32C_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// `dm_bm_checksum(data, len, xor)` of `drivers/md/persistent-data/dm-block-manager.c`:
/// the kernel's `crc32c(~0, data)` (no final inversion) XOR a per-block-type salt.
pub fn dm_checksum(data: &[u8], xor: u32) -> u32 {
    let mut crc = u32::MAX;
    for &b in data {
        let idx = usize::try_from((crc ^ u32::from(b)) & 0xff).unwrap_or(0);
        crc = (crc >> 8) ^ CRC32C_TABLE.get(idx).copied().unwrap_or(0);
    }
    crc ^ xor
}

/// Verifies the checksum in the first 4 bytes of a metadata block against the
/// rest of it. Returns (stored, computed) on a mismatch.
pub fn verify_block(block: &[u8], xor: u32) -> Result<(), (u32, u32)> {
    let stored = le32(block, 0);
    let computed = dm_checksum(block.get(4..).unwrap_or_default(), xor);
    if stored == computed {
        Ok(())
    } else {
        Err((stored, computed))
    }
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at.saturating_add(4))
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0)
}

pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at.saturating_add(8))
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// The pool superblock, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Superblock {
    /// `flags` (bit 0: needs_check).
    pub flags: u32,
    /// On-disk format version (1 or 2).
    pub version: u32,
    /// The pool's current time stamp (snapshots taken so far).
    pub time: u32,
    /// Transaction id lvm2 compares with the VG text's `transaction_id`.
    pub transaction_id: u64,
    /// Block of the metadata snapshot's superblock copy, 0 when none.
    pub metadata_snap: u64,
    /// The data device's space map root.
    pub data_sm: SmRoot,
    /// The metadata device's own space map root.
    pub metadata_sm: SmRoot,
    /// Root of the two-level mapping btree (device id -> device tree).
    pub data_mapping_root: u64,
    /// Root of the device details btree.
    pub device_details_root: u64,
    /// Data block size in 512-byte sectors.
    pub data_block_size: u32,
    /// Metadata blocks in the metadata device.
    pub metadata_nr_blocks: u64,
}

/// Parses and checks block 0 of a thin pool metadata device.
pub fn parse_superblock(b: &[u8]) -> Result<Superblock, String> {
    if b.len() < BLOCK_SIZE {
        return Err(format!("superblock: {} bytes, need {BLOCK_SIZE}", b.len()));
    }
    let magic = le64(b, 32);
    if magic != THIN_SUPERBLOCK_MAGIC {
        return Err(format!(
            "superblock: magic {magic} at byte 32, expected {THIN_SUPERBLOCK_MAGIC}"
        ));
    }
    if let Err((stored, computed)) =
        verify_block(b.get(..BLOCK_SIZE).unwrap_or(b), SUPERBLOCK_CSUM_XOR)
    {
        return Err(format!(
            "superblock: checksum {stored:#010x} at byte 0, computed {computed:#010x}"
        ));
    }
    let blocknr = le64(b, 8);
    if blocknr != 0 {
        return Err(format!(
            "superblock: blocknr {blocknr} at byte 8, expected 0"
        ));
    }
    let version = le32(b, 40);
    if !(1..=2).contains(&version) {
        return Err(format!("superblock: unknown version {version} at byte 40"));
    }
    let data_block_size = le32(b, 336);
    if data_block_size == 0 || data_block_size > MAX_DATA_BLOCK_SECTORS {
        return Err(format!(
            "superblock: data_block_size {data_block_size} sectors at byte 336 out of range"
        ));
    }
    let mbs = le32(b, 340);
    if mbs != 8 {
        return Err(format!(
            "superblock: metadata_block_size {mbs} sectors at byte 340, expected 8"
        ));
    }
    Ok(Superblock {
        flags: le32(b, 4),
        version,
        time: le32(b, 44),
        transaction_id: le64(b, 48),
        metadata_snap: le64(b, 56),
        data_sm: SmRoot::parse(b.get(64..192).unwrap_or_default()),
        metadata_sm: SmRoot::parse(b.get(192..320).unwrap_or_default()),
        data_mapping_root: le64(b, 320),
        device_details_root: le64(b, 328),
        data_block_size,
        metadata_nr_blocks: le64(b, 344),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The CRC-32C check value of "123456789" is 0xe3069283 (with the final
        // inversion, which dm_bm_checksum leaves out).
        assert_eq!(dm_checksum(b"123456789", 0), !0xe306_9283);
    }

    #[test]
    fn short_or_wrong_superblocks_are_refused() {
        assert!(parse_superblock(&[0u8; 100]).is_err());
        let e = parse_superblock(&[0u8; 4096]).unwrap_err();
        assert!(e.contains("magic"), "{e}");
    }
}
