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
use bytesource::field;

/// Metadata block size: persistent-data always uses 4096-byte blocks
/// (`THIN_METADATA_BLOCK_SIZE` in dm-thin-metadata.h).
pub const BLOCK_SIZE: usize = 4096;
/// `THIN_SUPERBLOCK_MAGIC` (dm-thin-metadata.c).
pub const THIN_SUPERBLOCK_MAGIC: u64 = 27_022_010;
/// `SUPERBLOCK_CSUM_XOR` (dm-thin-metadata.c).
pub const SUPERBLOCK_CSUM_XOR: u32 = 160_774;
/// Largest data block the kernel accepts: `DATA_DEV_BLOCK_SIZE_MAX_SECTORS` (1 GiB).
pub const MAX_DATA_BLOCK_SECTORS: u32 = 2_097_152;

/// CRC-32C through the `crc` crate's slice-by-16 table (CRC_32_ISCSI: init and
/// final xor `0xffffffff`).
static CRC32C: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// `dm_bm_checksum(data, len, xor)` of `drivers/md/persistent-data/dm-block-manager.c`:
/// the kernel's `crc32c(~0, data)` (no final inversion) XOR a per-block-type salt.
pub fn dm_checksum(data: &[u8], xor: u32) -> u32 {
    // Undo CRC_32_ISCSI's final inversion: the kernel's value is the raw register.
    !CRC32C.checksum(data) ^ xor
}

/// Verifies the checksum in the first 4 bytes of a metadata block against the
/// rest of it. Returns (stored, computed) on a mismatch.
pub fn verify_block(block: &[u8], xor: u32) -> Result<(), (u32, u32)> {
    // A block too short for its checksum field cannot match.
    let Some(stored) = field::le_u32(block, 0) else {
        return Err((0, dm_checksum(block, xor)));
    };
    let computed = dm_checksum(block.get(4..).unwrap_or_default(), xor);
    if stored == computed {
        Ok(())
    } else {
        Err((stored, computed))
    }
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
    // Every field below lies in the first 352 bytes of the BLOCK_SIZE checked above.
    let short = |at: usize| format!("superblock: field at byte {at} outside the block");
    let le32 = |at: usize| field::le_u32(b, at).ok_or_else(|| short(at));
    let le64 = |at: usize| field::le_u64(b, at).ok_or_else(|| short(at));
    let magic = le64(32)?;
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
    let blocknr = le64(8)?;
    if blocknr != 0 {
        return Err(format!(
            "superblock: blocknr {blocknr} at byte 8, expected 0"
        ));
    }
    let version = le32(40)?;
    if !(1..=2).contains(&version) {
        return Err(format!("superblock: unknown version {version} at byte 40"));
    }
    let data_block_size = le32(336)?;
    if data_block_size == 0 || data_block_size > MAX_DATA_BLOCK_SECTORS {
        return Err(format!(
            "superblock: data_block_size {data_block_size} sectors at byte 336 out of range"
        ));
    }
    let mbs = le32(340)?;
    if mbs != 8 {
        return Err(format!(
            "superblock: metadata_block_size {mbs} sectors at byte 340, expected 8"
        ));
    }
    Ok(Superblock {
        flags: le32(4)?,
        version,
        time: le32(44)?,
        transaction_id: le64(48)?,
        metadata_snap: le64(56)?,
        data_sm: SmRoot::parse(b.get(64..192).unwrap_or_default()).ok_or_else(|| short(64))?,
        metadata_sm: SmRoot::parse(b.get(192..320).unwrap_or_default())
            .ok_or_else(|| short(192))?,
        data_mapping_root: le64(320)?,
        device_details_root: le64(328)?,
        data_block_size,
        metadata_nr_blocks: le64(344)?,
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
