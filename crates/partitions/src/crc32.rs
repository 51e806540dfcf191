//! CRC-32 as the GPT uses it: the IEEE 802.3 polynomial, reflected (0xedb88320),
//! initial value and final XOR 0xffffffff (UEFI spec 2.x, 5.3.2 "GPT Header":
//! HeaderCRC32 and PartitionEntryArrayCRC32 use the standard CRC32).

// Evaluated at compile time; the counters stay below 256.
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)]
const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i: u32 = 0;
    while i < 256 {
        let mut c = i;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i as usize] = c;
        i += 1;
    }
    table
}

static TABLE: [u32; 256] = make_table();

/// Incremental CRC-32: feed bytes with [`Crc32::update`], read [`Crc32::finish`].
#[derive(Clone, Copy, Debug)]
pub struct Crc32(u32);

impl Default for Crc32 {
    fn default() -> Self {
        Self(0xffff_ffff)
    }
}

impl Crc32 {
    /// Adds `data` to the checksum.
    pub fn update(&mut self, data: &[u8]) {
        let mut c = self.0;
        for &b in data {
            let idx = usize::from((c.to_le_bytes()[0]) ^ b);
            c = TABLE.get(idx).copied().unwrap_or(0) ^ (c >> 8);
        }
        self.0 = c;
    }

    /// The checksum of everything fed so far.
    pub fn finish(self) -> u32 {
        self.0 ^ 0xffff_ffff
    }
}

/// CRC-32 of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = Crc32::default();
    c.update(data);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard check value for "123456789" (the CRC catalogue's CRC-32/ISO-HDLC
    /// entry, check = 0xcbf43926).
    #[test]
    fn check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        let mut c = Crc32::default();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.finish(), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }
}
