//! Typed errors and warnings. Every one names the structure and its byte
//! position on the disk, so a report can say exactly what was damaged where.

use std::fmt;

/// Why one copy of the GPT (primary or backup) cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GptFault {
    /// The header would lie past the end of the disk (a truncated image).
    BeyondDisk {
        /// Byte offset where the header should be.
        offset: u64,
    },
    /// Reading the header or the entry array failed.
    Unreadable {
        /// Byte offset of the failed read.
        offset: u64,
        /// The I/O error's text.
        error: String,
    },
    /// No `EFI PART` signature.
    NoSignature {
        /// Byte offset of the header.
        offset: u64,
    },
    /// `HeaderSize` is below 92 bytes or above the sector size.
    HeaderSize {
        /// Byte offset of the header.
        offset: u64,
        /// The size it claims.
        size: u32,
    },
    /// `HeaderCRC32` does not match.
    HeaderCrc {
        /// Byte offset of the header.
        offset: u64,
        /// Stored checksum.
        stored: u32,
        /// Checksum of the bytes on disk.
        computed: u32,
    },
    /// `MyLBA` is not where the header was found.
    WrongLba {
        /// Byte offset of the header.
        offset: u64,
        /// What the header claims.
        my_lba: u64,
        /// Where it was read from.
        expected: u64,
    },
    /// `FirstUsableLBA` > `LastUsableLBA`, or the usable range overlaps the header.
    UsableRange {
        /// Byte offset of the header.
        offset: u64,
        /// FirstUsableLBA.
        first: u64,
        /// LastUsableLBA.
        last: u64,
    },
    /// `SizeOfPartitionEntry` is not 128 × 2^n.
    EntrySize {
        /// Byte offset of the header.
        offset: u64,
        /// The size it claims.
        size: u32,
    },
    /// The entry array does not fit where it must (between the header and the
    /// usable area, inside the disk, within the crate's cap).
    EntryArray {
        /// Byte offset of the header.
        offset: u64,
        /// PartitionEntryLBA.
        entries_lba: u64,
        /// NumberOfPartitionEntries.
        count: u32,
        /// How many entries of that size fit there.
        fits: u64,
    },
    /// `PartitionEntryArrayCRC32` does not match.
    EntriesCrc {
        /// Byte offset of the entry array.
        offset: u64,
        /// Stored checksum.
        stored: u32,
        /// Checksum of the bytes on disk.
        computed: u32,
    },
}

impl fmt::Display for GptFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BeyondDisk { offset } => {
                write!(f, "header at byte {offset} lies past the end of the disk")
            }
            Self::Unreadable { offset, error } => write!(f, "read at byte {offset}: {error}"),
            Self::NoSignature { offset } => write!(f, "no \"EFI PART\" signature at byte {offset}"),
            Self::HeaderSize { offset, size } => {
                write!(f, "header at byte {offset}: header size {size} is not 92..=sector size")
            }
            Self::HeaderCrc {
                offset,
                stored,
                computed,
            } => write!(
                f,
                "header at byte {offset}: CRC32 {stored:#010x} stored, {computed:#010x} computed"
            ),
            Self::WrongLba {
                offset,
                my_lba,
                expected,
            } => write!(
                f,
                "header at byte {offset}: says it is at LBA {my_lba}, was read from LBA {expected}"
            ),
            Self::UsableRange {
                offset,
                first,
                last,
            } => write!(
                f,
                "header at byte {offset}: usable LBAs {first}..={last} are impossible"
            ),
            Self::EntrySize { offset, size } => write!(
                f,
                "header at byte {offset}: partition entry size {size} is not 128 x 2^n"
            ),
            Self::EntryArray {
                offset,
                entries_lba,
                count,
                fits,
            } => write!(
                f,
                "header at byte {offset}: {count} partition entries at LBA {entries_lba} do not fit (room for {fits})"
            ),
            Self::EntriesCrc {
                offset,
                stored,
                computed,
            } => write!(
                f,
                "partition entry array at byte {offset}: CRC32 {stored:#010x} stored, {computed:#010x} computed"
            ),
        }
    }
}

/// Why a disk's partition table cannot be read at all.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Reading the MBR sector failed.
    Io {
        /// Byte offset of the failed read.
        offset: u64,
        /// The I/O error's text.
        error: String,
    },
    /// The MBR describes nothing usable (every used entry starts at sector 0).
    MbrAllAtSectorZero,
    /// A GPT is present (protective MBR or header signature) but neither copy is usable.
    Gpt {
        /// What is wrong with the primary copy.
        primary: GptFault,
        /// What is wrong with the backup copy.
        backup: GptFault,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { offset, error } => {
                write!(f, "partition table: read at byte {offset}: {error}")
            }
            Self::MbrAllAtSectorZero => write!(
                f,
                "MBR at byte 0: every partition entry starts at sector 0; not a usable table"
            ),
            Self::Gpt { primary, backup } => write!(
                f,
                "GPT: neither copy is usable: primary: {primary}; backup: {backup}"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Why the walk of an extended partition's EBR chain stopped early.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EbrFault {
    /// This EBR was already visited: the chain loops.
    Loop,
    /// More logical partitions than the cap ([`crate::MAX_LOGICAL`]).
    TooMany,
    /// The EBR lies outside the disk or outside its extended partition.
    Outside,
    /// No 0x55AA signature.
    NoSignature,
    /// Reading the EBR failed.
    Unreadable(String),
}

impl fmt::Display for EbrFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Loop => write!(f, "the chain links back to an EBR already read (a loop)"),
            Self::TooMany => write!(f, "more than {} logical partitions", crate::MAX_LOGICAL),
            Self::Outside => write!(f, "the EBR lies outside the extended partition or the disk"),
            Self::NoSignature => write!(f, "no 0x55AA signature"),
            Self::Unreadable(e) => write!(f, "{e}"),
        }
    }
}

/// Something wrong that did not stop the table from being read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// A partition runs past the end of the disk; it is listed with
    /// [`crate::Partition::readable`] = false.
    PastEnd {
        /// Partition number.
        number: u32,
        /// Its first byte.
        start: u64,
        /// One past its last byte (saturated when it overflows).
        end: u64,
        /// The disk's size in bytes.
        disk_len: u64,
    },
    /// The EBR chain stopped early; the partitions found before are kept.
    EbrChain {
        /// Byte offset of the EBR (or of the link that points to it).
        offset: u64,
        /// Logical partitions found before it.
        found: usize,
        /// Why.
        fault: EbrFault,
    },
    /// An EBR holds more than one data entry or link; extras are ignored (as libfdisk does).
    EbrExtraEntry {
        /// Byte offset of the EBR.
        offset: u64,
    },
    /// More than one extended partition in the MBR: only the first is followed.
    ExtraExtended {
        /// The number of the ignored one.
        number: u32,
    },
    /// The primary GPT is damaged; the backup at `backup_offset` is used.
    GptPrimaryDamaged {
        /// What is wrong with the primary.
        fault: GptFault,
        /// Byte offset of the backup header in use.
        backup_offset: u64,
    },
    /// The primary GPT is used, but the backup is missing or damaged.
    GptBackupDamaged {
        /// What is wrong with the backup.
        fault: GptFault,
    },
    /// A GPT was found although sector 0 holds no MBR signature.
    NoProtectiveMbr,
    /// Sector 0 could not be read; the GPT found elsewhere (at LBA 1 or the last
    /// LBA) is used.
    MbrUnreadable {
        /// The I/O error's text.
        error: String,
    },
    /// A hybrid MBR: besides the 0xEE entry it lists other partitions; the GPT is used.
    HybridMbr {
        /// How many non-0xEE entries the MBR has.
        others: usize,
    },
    /// Neither GPT copy is usable, so the hybrid MBR's own entries are used.
    GptUnusableUsingMbr(Error),
    /// A GPT entry ends before it starts; it is left out.
    GptEntryInverted {
        /// Partition number.
        number: u32,
        /// Byte offset of the entry.
        offset: u64,
    },
    /// The table could not be read; the disk is treated as a whole volume.
    Unreadable(Error),
}

impl Warning {
    /// True when the disk failed to read somewhere the table lies (a bad sector
    /// under the primary or backup GPT, an EBR, or the MBR): the table may still
    /// be whole thanks to the other copy, but a front end reports and counts it.
    pub fn is_read_error(&self) -> bool {
        match self {
            Self::GptPrimaryDamaged { fault, .. } | Self::GptBackupDamaged { fault } => {
                matches!(fault, GptFault::Unreadable { .. })
            }
            Self::EbrChain { fault, .. } => matches!(fault, EbrFault::Unreadable(_)),
            Self::MbrUnreadable { .. } => true,
            Self::Unreadable(e) | Self::GptUnusableUsingMbr(e) => e.is_read_error(),
            _ => false,
        }
    }
}

impl Error {
    /// True when a read of the disk failed (see [`Warning::is_read_error`]).
    pub fn is_read_error(&self) -> bool {
        match self {
            Self::Io { .. } => true,
            Self::Gpt { primary, backup } => {
                matches!(primary, GptFault::Unreadable { .. })
                    || matches!(backup, GptFault::Unreadable { .. })
            }
            _ => false,
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PastEnd {
                number,
                start,
                end,
                disk_len,
            } => write!(
                f,
                "partition {number} (bytes {start}..{end}) runs past the end of the disk ({disk_len} bytes); unreadable"
            ),
            Self::EbrChain {
                offset,
                found,
                fault,
            } => write!(
                f,
                "MBR: extended partition chain stopped at the EBR at byte {offset} after {found} logical partitions: {fault}"
            ),
            Self::EbrExtraEntry { offset } => write!(
                f,
                "MBR: the EBR at byte {offset} has extra entries; ignored"
            ),
            Self::ExtraExtended { number } => write!(
                f,
                "MBR: partition {number} is a second extended partition; its logical partitions are not read"
            ),
            Self::GptPrimaryDamaged {
                fault: fault @ GptFault::Unreadable { .. },
                backup_offset,
            } => write!(
                f,
                "GPT: the primary is unreadable ({fault}); using the backup header at byte {backup_offset}"
            ),
            Self::GptPrimaryDamaged {
                fault,
                backup_offset,
            } => write!(
                f,
                "GPT: the primary is damaged ({fault}); using the backup header at byte {backup_offset}"
            ),
            Self::GptBackupDamaged { fault } => {
                write!(f, "GPT: the backup is missing or damaged ({fault})")
            }
            Self::NoProtectiveMbr => {
                write!(f, "no MBR signature in sector 0; using the GPT found anyway")
            }
            Self::MbrUnreadable { error } => write!(
                f,
                "MBR: sector 0 (byte 0) cannot be read ({error}); using the GPT found anyway"
            ),
            Self::HybridMbr { others } => write!(
                f,
                "hybrid MBR ({others} entries besides the GPT protective one); the GPT is used"
            ),
            Self::GptUnusableUsingMbr(e) => {
                write!(f, "{e}; using the hybrid MBR's own entries instead")
            }
            Self::GptEntryInverted { number, offset } => write!(
                f,
                "GPT: partition {number} (entry at byte {offset}) ends before it starts; left out"
            ),
            Self::Unreadable(e) => write!(f, "{e}; treating the disk as one volume"),
        }
    }
}
