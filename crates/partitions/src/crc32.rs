//! CRC-32 as the GPT uses it: the IEEE 802.3 polynomial, reflected (0xedb88320),
//! initial value and final XOR 0xffffffff (UEFI spec 2.x, 5.3.2 "GPT Header":
//! HeaderCRC32 and PartitionEntryArrayCRC32 use the standard CRC32).

/// The `crc` crate's slice-by-16 table for CRC-32/ISO-HDLC (the CRC catalogue's
/// name for this CRC: poly 0x04c11db7 reflected, init and xorout 0xffffffff).
static CRC: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);

/// Incremental CRC-32: feed bytes with [`Crc32::update`], read [`Crc32::finish`].
#[derive(Clone)]
pub struct Crc32(crc::Digest<'static, u32, crc::Table<16>>);

impl Default for Crc32 {
    fn default() -> Self {
        Self(CRC.digest())
    }
}

impl std::fmt::Debug for Crc32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Crc32")
            .field(&self.0.clone().finalize())
            .finish()
    }
}

impl Crc32 {
    /// Adds `data` to the checksum.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The checksum of everything fed so far.
    pub fn finish(self) -> u32 {
        self.0.finalize()
    }
}

/// CRC-32 of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    CRC.checksum(data)
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
