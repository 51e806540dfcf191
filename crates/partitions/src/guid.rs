//! GUIDs as the GPT stores them, and the names of the common partition types.
//!
//! On disk a GUID is 16 bytes whose first three fields (4, 2 and 2 bytes) are
//! little-endian and whose last 8 bytes are in order (UEFI spec 2.x, appendix A
//! "GUID and Time Formats"); the text form is the usual 8-4-4-4-12 hex.

use std::fmt;

/// A GUID in its on-disk byte order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The all-zero GUID: an unused GPT entry has it as its type.
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }

    /// The GUID in text order (the bytes of the 8-4-4-4-12 form, big-endian).
    fn text_bytes(&self) -> [u8; 16] {
        let b = self.0;
        [
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13],
            b[14], b[15],
        ]
    }
}

impl fmt::Display for Guid {
    /// Lowercase 8-4-4-4-12, as blkid prints PARTUUID.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.text_bytes().iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Common GPT partition types (lowercase text form) and the names util-linux's
/// libfdisk gives them (its table in `include/pt-gpt-partnames.h`, as printed by
/// `sfdisk --label gpt -T`; the test `type_names_match_sfdisk` checks every row
/// against that output).
const GPT_TYPES: &[(&str, &str)] = &[
    ("c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "EFI System"),
    ("21686148-6449-6e6f-744e-656564454649", "BIOS boot"),
    ("e3c9e316-0b5c-4db8-817d-f92df00215ae", "Microsoft reserved"),
    (
        "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",
        "Microsoft basic data",
    ),
    (
        "de94bba4-06d1-4d40-a16a-bfd50179d6ac",
        "Windows recovery environment",
    ),
    ("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", "Linux swap"),
    ("0fc63daf-8483-4772-8e79-3d69d8477de4", "Linux filesystem"),
    ("3b8f8425-20e0-4f3b-907f-1a25a76f98e8", "Linux server data"),
    ("44479540-f297-41b2-9af7-d131d5f0458a", "Linux root (x86)"),
    (
        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
        "Linux root (x86-64)",
    ),
    (
        "b921b045-1df0-41c3-af44-4c6f280d3fae",
        "Linux root (ARM-64)",
    ),
    ("8da63339-0007-60c0-c436-083ac8230908", "Linux reserved"),
    ("933ac7e1-2eb4-4f13-b844-0e14e2aef915", "Linux home"),
    ("a19d880f-05fc-4d3b-a006-743f0f84911e", "Linux RAID"),
    ("e6d6d379-f507-44c2-a23c-238f2a3df928", "Linux LVM"),
    (
        "4d21b016-b534-45c2-a9fb-5c16e091fd2d",
        "Linux variable data",
    ),
    (
        "bc13c2ff-59e6-4262-a352-b275fd6f7172",
        "Linux extended boot",
    ),
    ("aa31e02a-400f-11db-9590-000c2911d1b8", "VMware VMFS"),
    ("9d275380-40ad-11db-bf97-000c2911d1b8", "VMware Diagnostic"),
    ("381cfccc-7288-11e0-92ee-000c2911d0b2", "VMware Virtual SAN"),
    ("9198effc-31c0-11db-8f78-000c2911d1b8", "VMware Reserved"),
    ("516e7cba-6ecf-11d6-8ff8-00022d09712b", "FreeBSD ZFS"),
    ("7c3457ef-0000-11aa-aa11-00306543ecac", "Apple APFS"),
];

/// The name of a GPT partition type, when it is one of the common ones.
pub fn gpt_type_name(t: &Guid) -> Option<&'static str> {
    let text = t.to_string();
    GPT_TYPES
        .iter()
        .find(|(g, _)| *g == text)
        .map(|(_, name)| *name)
}

/// The name of an MBR partition type byte (libfdisk's names, `sfdisk --label dos
/// -T`; checked by the same test), for the types found on Linux and Windows disks.
pub fn mbr_type_name(t: u8) -> &'static str {
    match t {
        0x01 => "FAT12",
        0x04 => "FAT16 <32M",
        0x05 => "Extended",
        0x06 => "FAT16",
        0x07 => "HPFS/NTFS/exFAT",
        0x0b => "W95 FAT32",
        0x0c => "W95 FAT32 (LBA)",
        0x0e => "W95 FAT16 (LBA)",
        0x0f => "W95 Ext'd (LBA)",
        0x27 => "Hidden NTFS WinRE",
        0x82 => "Linux swap / Solaris",
        0x83 => "Linux",
        0x85 => "Linux extended",
        0x8e => "Linux LVM",
        0xa5 => "FreeBSD",
        0xee => "GPT",
        0xef => "EFI (FAT-12/16/32)",
        0xfb => "VMware VMFS",
        0xfc => "VMware VMKCORE",
        0xfd => "Linux raid autodetect",
        _ => "unknown",
    }
}

/// Every GPT type [`gpt_type_name`] knows: (lowercase GUID text, name).
pub fn known_gpt_types() -> &'static [(&'static str, &'static str)] {
    GPT_TYPES
}

#[cfg(test)]
mod tests {
    use super::*;

    /// UEFI spec appendix A's example: the EFI System Partition type
    /// C12A7328-F81F-11D2-BA4B-00A0C93EC93B is stored as
    /// 28 73 2A C1 1F F8 D2 11 BA 4B 00 A0 C9 3E C9 3B.
    #[test]
    fn mixed_endian_text_form() {
        let g = Guid([
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b,
        ]);
        assert_eq!(g.to_string(), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
        assert_eq!(gpt_type_name(&g), Some("EFI System"));
    }
}
