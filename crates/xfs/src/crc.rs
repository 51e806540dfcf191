//! CRC32C (Castagnoli), as XFS V5 metadata uses it.
//!
//! fs/xfs/libxfs/xfs_cksum.h: `xfs_start_cksum_safe()` runs `crc32c(~0, ...)` over
//! the whole buffer with the 4-byte checksum field taken as zero, and
//! `xfs_end_cksum()` stores `~cpu_to_le32(crc)`: the one little-endian field in
//! otherwise big-endian structures. The table approach is the one of
//! crates/extfs/src/crc.rs.

const POLY: u32 = 0x82F6_3B78;

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0u32;
    while i < 256 {
        let mut crc = i;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            #[allow(clippy::arithmetic_side_effects)]
            {
                k += 1; // k < 8
            }
        }
        // Const context (no TryFrom): i < 256 by the loop condition.
        #[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
        {
            table[i as usize] = crc;
            i += 1;
        }
    }
    table
}

static TABLE: [u32; 256] = make_table();

/// Feeds `data` into the raw CRC32C register `crc` (no pre- or post-inversion).
pub(crate) fn crc32c(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        let low = u8::try_from(crc & 0xFF).unwrap_or(0);
        let idx = usize::from(low ^ b);
        crc = TABLE.get(idx).copied().unwrap_or(0) ^ (crc >> 8);
    }
    crc
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
    let mut crc = crc32c(!0, head);
    crc = crc32c(crc, &[0u8; 4]);
    crc = crc32c(crc, tail);
    let stored = field
        .first_chunk::<4>()
        .map_or(0, |a| u32::from_le_bytes(*a));
    stored == !crc
}

/// The XFS checksum of `buf` with the 4-byte CRC field at `crc_off` taken as zero
/// (`xfs_start_cksum_update` + `xfs_end_cksum`, libxfs/xfs_cksum.h): the value that is
/// stored little-endian at `crc_off`.
pub(crate) fn xfs_cksum(buf: &[u8], crc_off: usize) -> u32 {
    let head = buf.get(..crc_off).unwrap_or(buf);
    let mut crc = crc32c(!0, head);
    if buf.len() >= crc_off.saturating_add(4) {
        crc = crc32c(crc, &[0u8; 4]);
        crc = crc32c(
            crc,
            buf.get(crc_off.saturating_add(4)..).unwrap_or_default(),
        );
    }
    !crc
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
        assert_eq!(!crc32c(!0, b"123456789"), 0xE306_9283);
    }
}
