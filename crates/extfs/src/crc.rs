//! CRC32C (Castagnoli), as used by ext4 `metadata_csum` and jbd2 `csum_v2`/`csum_v3`.
//!
//! The kernel's `ext4_chksum()` / `jbd2_chksum()` call `crc32c(seed, data)` with no
//! final inversion, so [`crc32c`] here is the raw register update; the seed for a
//! fresh checksum is `!0` (Documentation/filesystems/ext4/checksums.rst).

/// CRC-32C in the form ext4 and jbd2 use it: reflected, no final xor, so a
/// result is the raw register and can seed the next call. `init` is the register
/// `!0` (the `crc` crate states `init` unreflected; `!0` is the same either way).
const CRC32C_RAW: crc::Algorithm<u32> = crc::Algorithm {
    width: 32,
    poly: 0x1edc_6f41,
    init: 0xffff_ffff,
    refin: true,
    refout: true,
    xorout: 0,
    // !0xE3069283, the inverted CRC-32C check value of "123456789".
    check: 0x1cf9_6d7c,
    residue: 0,
};

/// The `crc` crate's slice-by-16 table for [`CRC32C_RAW`].
static CRC32C: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&CRC32C_RAW);

/// Feeds `data` into the raw CRC32C register `crc` (no pre- or post-inversion):
/// the kernel's `crc32c(crc, data)`.
pub(crate) fn crc32c(crc: u32, data: &[u8]) -> u32 {
    // The crate takes an initial value in unreflected form and reflects it into
    // its register (`init()` in crc's crc32.rs); `crc` here is already a register.
    let mut d = CRC32C.digest_with_initial(crc.reverse_bits());
    d.update(data);
    d.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_check_value() {
        // The CRC-32C check value of "123456789" is 0xE3069283 (with inversions).
        assert_eq!(!crc32c(!0, b"123456789"), 0xE306_9283);
    }

    /// The bitwise register update (Documentation/filesystems/ext4/checksums.rst's
    /// crc32c, one bit at a time) as an independent check of seeding and chaining.
    fn bitwise(mut crc: u32, data: &[u8]) -> u32 {
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    #[test]
    fn arbitrary_seed_and_chaining() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 + 7) as u8).collect();
        for seed in [0u32, !0, 0x1234_5678, 0xdead_beef] {
            assert_eq!(crc32c(seed, &data), bitwise(seed, &data));
        }
        let (a, b) = data.split_at(1234);
        assert_eq!(crc32c(crc32c(!0, a), b), crc32c(!0, &data));
    }
}
