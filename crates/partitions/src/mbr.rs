//! The MBR in sector 0: four 16-byte partition entries at byte 446 and the
//! 0x55AA signature at byte 510 (the layout every DOS-label reader uses; see the
//! kernel's `block/partitions/msdos.c` and `include/linux/msdos_partition.h`).
//! The same sector layout is reused by each EBR of an extended partition
//! ([`crate::ebr`]).

use crate::{ebr, place, Error, Partition, Warning, MBR_SECTOR};
use bytesource::field;
use bytesource::ByteSource;

/// Byte offset of the first partition entry.
const ENTRIES: usize = 446;
/// Size of one entry.
const ENTRY_LEN: usize = 16;

/// One 16-byte entry: boot indicator, (CHS ignored), type, first LBA, sector count.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Entry {
    /// 0x80 = active/bootable, 0x00 = not; anything else is not a partition entry.
    pub boot: u8,
    /// Partition type byte (system id).
    pub kind: u8,
    /// First sector (relative: to the disk in the MBR, see [`crate::ebr`] for EBRs).
    pub start: u32,
    /// Number of sectors.
    pub sectors: u32,
}

impl Entry {
    /// Used entry: a type and a size (the kernel skips entries of size 0).
    pub fn used(&self) -> bool {
        self.kind != 0 && self.sectors != 0
    }

    /// DOS (0x05), W95 LBA (0x0f) and Linux (0x85) extended partitions.
    pub fn is_extended(&self) -> bool {
        matches!(self.kind, 0x05 | 0x0f | 0x85)
    }
}

/// True when the sector ends with 0x55AA.
pub(crate) fn has_signature(sector: &[u8]) -> bool {
    sector.get(510..512) == Some(&[0x55, 0xaa][..])
}

/// The four entries of an MBR or EBR sector.
pub(crate) fn entries(sector: &[u8]) -> [Entry; 4] {
    let mut out = [Entry::default(); 4];
    for (i, e) in out.iter_mut().enumerate() {
        let Some(off) = i
            .checked_mul(ENTRY_LEN)
            .and_then(|o| o.checked_add(ENTRIES))
        else {
            continue;
        };
        // Callers pass a whole 512-byte sector, so every entry lies inside it; one
        // that did not would stay unused.
        let Some(raw) = field::array_at::<ENTRY_LEN>(sector, off) else {
            continue;
        };
        // raw is ENTRY_LEN (16) bytes: the fields at 8 and 12 are always inside.
        *e = Entry {
            boot: raw[0],
            kind: raw[4],
            start: field::le_u32(&raw, 8).unwrap_or(0),
            sectors: field::le_u32(&raw, 12).unwrap_or(0),
        };
    }
    out
}

/// What sector 0 holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sector0 {
    /// No 0x55AA: no MBR (a GPT may still be there).
    NoSignature,
    /// A 0xEE entry: GPT; `others` counts the other used entries (hybrid when > 0).
    Protective { others: usize },
    /// Signature but entries that cannot be a table (boot flags other than
    /// 0x00/0x80: a filesystem boot sector, FAT/NTFS/ext boot block).
    NotATable,
    /// A DOS partition table.
    Dos,
}

/// Classifies sector 0.
pub(crate) fn classify(sector: &[u8]) -> Sector0 {
    if !has_signature(sector) {
        return Sector0::NoSignature;
    }
    let e = entries(sector);
    if e.iter().any(|e| e.kind == 0xee) {
        let others = e.iter().filter(|e| e.used() && e.kind != 0xee).count();
        return Sector0::Protective { others };
    }
    if !e.iter().all(|e| matches!(e.boot, 0x00 | 0x80)) {
        return Sector0::NotATable;
    }
    Sector0::Dos
}

/// The partitions of a DOS table: primaries 1-4 in entry order, then the logical
/// partitions (5, 6, ...) of the first extended partition.
pub(crate) fn read(
    disk: &dyn ByteSource,
    sector: &[u8],
    warnings: &mut Vec<Warning>,
) -> Result<Vec<Partition>, Error> {
    let e = entries(sector);
    // A table whose every used entry starts at sector 0 overlaps itself and
    // describes nothing readable (found by the partition_table fuzz target).
    let types_set: Vec<&Entry> = e.iter().filter(|e| e.kind != 0).collect();
    if !types_set.is_empty() && types_set.iter().all(|e| e.start == 0) {
        return Err(Error::MbrAllAtSectorZero);
    }
    let disk_len = disk.len();
    let mut parts = Vec::new();
    let mut extended: Option<Entry> = None;
    for (number, entry) in (1u32..).zip(e.iter()) {
        if !entry.used() {
            continue;
        }
        if entry.is_extended() {
            if extended.is_some() {
                warnings.push(Warning::ExtraExtended { number });
            } else {
                extended = Some(*entry);
            }
        }
        parts.push(from_entry(number, entry, 0, disk_len, warnings));
    }
    if let Some(ext) = extended {
        parts.extend(ebr::walk(disk, &ext, warnings));
    }
    Ok(parts)
}

/// A partition from an entry whose start is relative to sector `base`.
pub(crate) fn from_entry(
    number: u32,
    entry: &Entry,
    base: u64,
    disk_len: u64,
    warnings: &mut Vec<Warning>,
) -> Partition {
    let first = base.saturating_add(u64::from(entry.start));
    let sectors = u64::from(entry.sectors);
    let mut p = place(number, first, sectors, MBR_SECTOR, disk_len, warnings);
    p.type_name = format!(
        "0x{:02x} ({})",
        entry.kind,
        crate::guid::mbr_type_name(entry.kind)
    );
    p.mbr_type = Some(entry.kind);
    p.extended = entry.is_extended();
    p.bootable = entry.boot == 0x80;
    p
}
