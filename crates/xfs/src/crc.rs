//! CRC32C (Castagnoli), as XFS V5 metadata uses it.
//!
//! fs/xfs/libxfs/xfs_cksum.h: `xfs_start_cksum_safe()` runs `crc32c(~0, ...)` over
//! the whole buffer with the 4-byte checksum field taken as zero, and
//! `xfs_end_cksum()` stores `~cpu_to_le32(crc)`: the one little-endian field in
//! otherwise big-endian structures. The arithmetic is the `crc` crate's.

/// CRC-32C as the kernel's `crc32c(~0, ...)` followed by `~` computes it: the
/// `crc` crate's CRC_32_ISCSI (init and final xor `0xffffffff`, reflected), with
/// its slice-by-16 table.
static CRC32C: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// A fresh CRC32C computation; `finalize()` gives the value XFS stores.
pub(crate) fn digest() -> crc::Digest<'static, u32, crc::Table<16>> {
    CRC32C.digest()
}

/// True when the little-endian CRC32C at `off` in `buf` matches the rest of `buf`
/// (xfs_verify_cksum()). A buffer too short to hold the field does not match.
pub(crate) fn verify(buf: &[u8], off: usize) -> bool {
    let Some(end) = off.checked_add(4) else {
        return false;
    };
    let (Some(head), Some(field), Some(tail)) = (buf.get(..off), buf.get(off..end), buf.get(end..))
    else {
        return false;
    };
    let mut crc = digest();
    crc.update(head);
    crc.update(&[0u8; 4]);
    crc.update(tail);
    let stored = field.first_chunk::<4>().map(|a| u32::from_le_bytes(*a));
    stored == Some(crc.finalize())
}

/// The XFS checksum of `buf` with the 4-byte CRC field at `crc_off` taken as zero
/// (`xfs_start_cksum_update` + `xfs_end_cksum`, libxfs/xfs_cksum.h): the value that is
/// stored little-endian at `crc_off`.
pub(crate) fn xfs_cksum(buf: &[u8], crc_off: usize) -> u32 {
    let head = buf.get(..crc_off).unwrap_or(buf);
    let mut crc = digest();
    crc.update(head);
    if buf.len() >= crc_off.saturating_add(4) {
        crc.update(&[0u8; 4]);
        crc.update(buf.get(crc_off.saturating_add(4)..).unwrap_or_default());
    }
    crc.finalize()
}

/// Recomputes the XFS checksum of `buf` and stores it at `crc_off` (`xfs_update_cksum`).
pub(crate) fn xfs_update_cksum(buf: &mut [u8], crc_off: usize) {
    let crc = xfs_cksum(buf, crc_off);
    if let Some(f) = buf.get_mut(crc_off..crc_off.saturating_add(4)) {
        f.copy_from_slice(&crc.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_check_value() {
        // The CRC-32C check value of "123456789" is 0xE3069283 (with inversions).
        assert_eq!(CRC32C.checksum(b"123456789"), 0xE306_9283);
    }
}
