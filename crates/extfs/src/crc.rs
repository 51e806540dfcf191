//! CRC32C (Castagnoli), as used by ext4 `metadata_csum` and jbd2 `csum_v2`/`csum_v3`.
//!
//! The kernel's `ext4_chksum()` / `jbd2_chksum()` call `crc32c(seed, data)` with no
//! final inversion, so [`crc32c`] here is the raw register update; the seed for a
//! fresh checksum is `!0` (Documentation/filesystems/ext4/checksums.rst).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_check_value() {
        // The CRC-32C check value of "123456789" is 0xE3069283 (with inversions).
        assert_eq!(!crc32c(!0, b"123456789"), 0xE306_9283);
    }
}
