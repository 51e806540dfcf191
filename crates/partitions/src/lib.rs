//! A read-only partition-table reader for disk images that may be hostile.
//!
//! What is read:
//! - the MBR in sector 0: four primary entries (type, bootable flag, start,
//!   length), told apart from a filesystem boot sector by its boot flags — `mbr`;
//! - the extended partition's EBR chain: logical partitions 5, 6, … in chain
//!   order, walked with a cap of [`MAX_LOGICAL`] partitions and a visited set, so
//!   a loop or a bad EBR stops the chain with a warning and keeps the primaries
//!   and the logical partitions found before it — `ebr`;
//! - the GPT (UEFI spec 2.x, 5.3): the primary header at LBA 1, its CRC32 and the
//!   entry array's CRC32, any legal entry size (128 × 2^n), the entry count checked
//!   against the room it claims; the backup at the last LBA when the primary
//!   header or its entries are damaged (with a warning naming which); partition
//!   names (UTF-16LE), type GUIDs with names for the common types, unique GUIDs
//!   (PARTUUID) and attributes — `gpt`, [`guid`];
//! - protective (0xEE) and hybrid MBRs (the GPT wins; a hybrid is reported, and
//!   its MBR entries are used only when neither GPT copy is usable);
//! - 512- and 4096-byte logical sectors for GPT, from where `EFI PART` is found.
//!
//! Every partition is checked against the disk size: one that runs past the end
//! is kept in the list with [`Partition::readable`] = false and a warning.
//!
//! What is not read: MBRs with 4096-byte sectors (MBR sectors are taken as 512
//! bytes), CHS addresses (LBA fields only), BSD disklabels, Solaris/Minix
//! subpartitions, Apple partition maps, LDM (Windows dynamic disks), and the
//! logical partitions of a second extended partition (reported). Nothing is ever
//! written.
//!
//! Every byte is hostile: arithmetic is checked or saturating, slices are read
//! with `get`, the EBR walk is bounded, and the GPT entry array is never
//! allocated from an unchecked count (at most [`MAX_GPT_ENTRIES`] entries, and only
//! as many as fit where the header says they are).

#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

pub mod crc32;
mod ebr;
mod error;
mod gpt;
pub mod guid;
mod mbr;

use bytesource::ByteSource;
pub use error::{EbrFault, Error, GptFault, Warning};
pub use guid::Guid;

/// Most logical partitions read from one EBR chain.
pub const MAX_LOGICAL: usize = 128;
/// Most GPT entries accepted (sgdisk's default is 128; 16384 leaves ample room).
pub const MAX_GPT_ENTRIES: u32 = 16384;
/// The sector size of an MBR and its EBRs.
pub const MBR_SECTOR: u64 = 512;

/// Which table a disk carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// No partition table: the whole disk is one volume.
    None,
    /// DOS/MBR table.
    Mbr,
    /// GUID partition table.
    Gpt,
}

impl TableKind {
    /// `none`, `mbr` or `gpt`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Mbr => "mbr",
            Self::Gpt => "gpt",
        }
    }
}

/// One partition, in bytes from the start of the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Partition {
    /// The number the guest kernel gives it: 1-4 primary, 5+ logical; GPT slot + 1.
    pub number: u32,
    /// Byte offset on the disk.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
    /// First sector, in the table's logical sectors ([`Table::sector_size`]).
    pub first_sector: u64,
    /// Length in the table's logical sectors.
    pub sectors: u64,
    /// Type as text: `0x8e (Linux LVM)`, or a GPT type name or its GUID.
    pub type_name: String,
    /// MBR type byte (`None` for GPT).
    pub mbr_type: Option<u8>,
    /// GPT partition type GUID.
    pub type_guid: Option<Guid>,
    /// Extended partition container (holds logical partitions, not a volume).
    pub extended: bool,
    /// MBR active flag (0x80), or the GPT legacy-BIOS-bootable attribute (bit 2).
    pub bootable: bool,
    /// GPT partition name.
    pub gpt_name: Option<String>,
    /// GPT unique partition GUID (PARTUUID).
    pub part_uuid: Option<Guid>,
    /// GPT attribute bits (0 for MBR).
    pub attributes: u64,
    /// False when the partition runs past the end of the disk (see [`Warning::PastEnd`]).
    pub readable: bool,
}

/// A disk's partition table as read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Table {
    /// Kind of table.
    pub kind: TableKind,
    /// Logical sector size the table uses (512, or 4096 for a 4Kn GPT).
    pub sector_size: u64,
    /// Its partitions (extended containers included, marked).
    pub partitions: Vec<Partition>,
    /// Problems found along the way.
    pub warnings: Vec<Warning>,
    /// The MBR is hybrid (0xEE plus other entries).
    pub hybrid: bool,
    /// GPT disk GUID.
    pub disk_guid: Option<Guid>,
    /// The GPT backup header was used because the primary is damaged.
    pub gpt_backup_used: bool,
}

impl Table {
    /// The whole-disk case: no table.
    pub fn whole_disk() -> Table {
        Table::new(TableKind::None, MBR_SECTOR)
    }

    fn new(kind: TableKind, sector_size: u64) -> Table {
        Table {
            kind,
            sector_size,
            partitions: Vec::new(),
            warnings: Vec::new(),
            hybrid: false,
            disk_guid: None,
            gpt_backup_used: false,
        }
    }
}

/// Reads the partition table of `disk`. `Ok(None)`: no table (the whole disk is
/// one volume). `Err`: a table is there but nothing of it can be used.
pub fn detect(disk: &dyn ByteSource) -> Result<Option<Table>, Error> {
    if disk.len() < MBR_SECTOR {
        return Ok(None);
    }
    let mut sector0 = [0u8; 512];
    if let Err(e) = disk.read_at(0, &mut sector0) {
        // A bad sector 0 (or, where the disk is read in pages, one near it) loses
        // the MBR, but a GPT's backup at the last LBA may still be whole: use it
        // when a header signature is found, as for a missing protective MBR.
        let error = e.to_string();
        let Some(ss) = gpt::sector_size(disk) else {
            return Err(Error::Io { offset: 0, error });
        };
        let mut t = read_gpt(disk, ss)?;
        t.warnings.insert(0, Warning::MbrUnreadable { error });
        return Ok(Some(t));
    }
    match mbr::classify(&sector0) {
        mbr::Sector0::NoSignature => {
            // A GPT disk always has a protective MBR, but a damaged one may still
            // carry a GPT. Only look when a header signature is there: a
            // whole-disk PV or filesystem is not a damaged GPT.
            let Some(ss) = gpt::sector_size(disk) else {
                return Ok(None);
            };
            let mut t = read_gpt(disk, ss)?;
            t.warnings.insert(0, Warning::NoProtectiveMbr);
            Ok(Some(t))
        }
        mbr::Sector0::NotATable => Ok(None),
        mbr::Sector0::Protective { others } => {
            let ss = gpt::sector_size(disk).unwrap_or(MBR_SECTOR);
            match read_gpt(disk, ss) {
                Ok(mut t) => {
                    if others > 0 {
                        t.hybrid = true;
                        t.warnings.insert(0, Warning::HybridMbr { others });
                    }
                    Ok(Some(t))
                }
                Err(e) if others > 0 => {
                    let mut t = read_mbr(disk, &sector0)?;
                    t.hybrid = true;
                    t.warnings.insert(0, Warning::GptUnusableUsingMbr(e));
                    // The 0xEE entry itself is not a volume.
                    t.partitions.retain(|p| p.mbr_type != Some(0xee));
                    Ok(Some(t))
                }
                Err(e) => Err(e),
            }
        }
        mbr::Sector0::Dos => read_mbr(disk, &sector0).map(Some),
    }
}

/// Like [`detect`], but never fails: no table, or an unusable one, is the whole
/// disk (an unusable one with a [`Warning::Unreadable`]). What front ends use.
pub fn read_table(disk: &dyn ByteSource) -> Table {
    match detect(disk) {
        Ok(Some(t)) => t,
        Ok(None) => Table::whole_disk(),
        Err(e) => {
            let mut t = Table::whole_disk();
            t.warnings.push(Warning::Unreadable(e));
            t
        }
    }
}

fn read_mbr(disk: &dyn ByteSource, sector0: &[u8]) -> Result<Table, Error> {
    let mut t = Table::new(TableKind::Mbr, MBR_SECTOR);
    t.partitions = mbr::read(disk, sector0, &mut t.warnings)?;
    Ok(t)
}

fn read_gpt(disk: &dyn ByteSource, ss: u64) -> Result<Table, Error> {
    let mut t = Table::new(TableKind::Gpt, ss);
    let g = gpt::read(disk, ss, &mut t.warnings)?;
    t.partitions = gpt::partitions(&g, ss, disk.len(), &mut t.warnings);
    t.disk_guid = Some(g.header.disk_guid);
    t.gpt_backup_used = g.backup_used;
    Ok(t)
}

/// A partition at `first` for `sectors` sectors of `ss` bytes, checked against
/// the disk size: past the end it is kept, marked unreadable, with a warning.
pub(crate) fn place(
    number: u32,
    first: u64,
    sectors: u64,
    ss: u64,
    disk_len: u64,
    warnings: &mut Vec<Warning>,
) -> Partition {
    let start = first.checked_mul(ss);
    let size = sectors.checked_mul(ss);
    let end = start.zip(size).and_then(|(s, z)| s.checked_add(z));
    let readable = end.is_some_and(|e| e <= disk_len);
    let start = start.unwrap_or(u64::MAX);
    if !readable {
        warnings.push(Warning::PastEnd {
            number,
            start,
            end: end.unwrap_or(u64::MAX),
            disk_len,
        });
    }
    Partition {
        number,
        start,
        size: size.unwrap_or(u64::MAX),
        first_sector: first,
        sectors,
        type_name: String::new(),
        mbr_type: None,
        type_guid: None,
        extended: false,
        bootable: false,
        gpt_name: None,
        part_uuid: None,
        attributes: 0,
        readable,
    }
}
