//! The table-driven reflected CRC-32 the checksum-recomputing targets share,
//! written out here rather than taken from the crates under test (so a target
//! checks the readers against an independent computation). No pre- or
//! post-inversion: each target applies its format's seed and inversion.

// Each target uses one of the two tables.
#![allow(dead_code)]

/// The byte table of a reflected CRC-32 with polynomial `poly` (reversed form).
pub const fn table(poly: u32) -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { poly ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// CRC32C (Castagnoli, 0x1EDC6F41 reversed): ext4, jbd2, XFS.
pub const CASTAGNOLI: [u32; 256] = table(0x82f6_3b78);
/// CRC-32 (IEEE 802.3, 0x04C11DB7 reversed): lvm2's calc_crc, the GPT.
pub const IEEE: [u32; 256] = table(0xedb8_8320);

/// The register after `data`, starting from `crc`.
pub fn update(table: &[u32; 256], crc: u32, data: &[u8]) -> u32 {
    data.iter().fold(crc, |c, &b| {
        table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}
