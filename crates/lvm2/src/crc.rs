//! lvm2's checksum, `calc_crc()` in lvm2's `lib/misc/crc.c`.
//!
//! It is the reflected CRC-32 polynomial (0xedb88320) without the usual pre- and
//! post-inversion, started from [`INITIAL_CRC`] (`INITIAL_CRC` in
//! `lib/format_text/layout.h`). The label, the metadata area header and the
//! metadata text all use it.

/// `INITIAL_CRC` from lvm2's `lib/format_text/layout.h`.
pub const INITIAL_CRC: u32 = 0xf597_a6cf;

/// lvm2's form of CRC-32: the IEEE polynomial reflected, no final xor, started
/// from [`INITIAL_CRC`]. The `crc` crate states `init` unreflected.
const LVM2_CRC: crc::Algorithm<u32> = crc::Algorithm {
    width: 32,
    poly: 0x04c1_1db7,
    init: INITIAL_CRC.reverse_bits(),
    refin: true,
    refout: true,
    xorout: 0,
    // Not a catalogued algorithm; the crate does not read `check` or `residue`.
    check: 0,
    residue: 0,
};

/// The `crc` crate's slice-by-16 table for [`LVM2_CRC`].
static CRC: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&LVM2_CRC);

/// Continues an lvm2 checksum over `data`, starting from `crc` (pass
/// [`INITIAL_CRC`] for a fresh one).
pub fn calc_crc(crc: u32, data: &[u8]) -> u32 {
    // `crc` is a register value; the crate reflects what it is given (`init()` in
    // crc's crc32.rs), so hand it the unreflected form.
    let mut d = CRC.digest_with_initial(crc.reverse_bits());
    d.update(data);
    d.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nibble-table loop exactly as lvm2 writes it, as an independent check.
    fn lvm2_nibble_crc(initial: u32, buf: &[u8]) -> u32 {
        const CRCTAB: [u32; 16] = [
            0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4, 0x4db26158,
            0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c, 0x9b64c2b0, 0x86d3d2d4,
            0xa00ae278, 0xbdbdf21c,
        ];
        let mut crc = initial;
        for &b in buf {
            crc ^= u32::from(b);
            crc = (crc >> 4) ^ CRCTAB[(crc & 0xf) as usize];
            crc = (crc >> 4) ^ CRCTAB[(crc & 0xf) as usize];
        }
        crc
    }

    #[test]
    fn matches_lvm2_nibble_loop() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(
            calc_crc(INITIAL_CRC, &data),
            lvm2_nibble_crc(INITIAL_CRC, &data)
        );
        let (a, b) = data.split_at(333);
        assert_eq!(
            calc_crc(calc_crc(INITIAL_CRC, a), b),
            calc_crc(INITIAL_CRC, &data)
        );
    }
}
