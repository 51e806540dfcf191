//! CRC32C (Castagnoli), as used by XFS v5 metadata and log records (libxfs/xfs_cksum.h).
//!
//! `xfs_start_cksum_*` feeds `crc32c(XFS_CRC_SEED = ~0, data)` and `xfs_end_cksum` stores
//! the inverted register little-endian; [`crc32c`] here is the raw register update, and
//! [`xfs_cksum`] does the seed, the zeroed CRC field and the final inversion.

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
