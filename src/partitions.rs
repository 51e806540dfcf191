//! Partition tables: MBR (primary, extended and logical, via mbrman) and GPT (via
//! the gpt crate, which falls back to the backup header when the primary is bad).
//!
//! Everything read here is validated against the disk size before use: a partition
//! that starts or ends past the end of the disk is reported, not offered.

use crate::io::Cursor;
use bytesource::ByteSource;
use serde::Serialize;

/// Which table a disk carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// No partition table: the whole disk is one volume.
    None,
    /// DOS/MBR table.
    Mbr,
    /// GUID partition table.
    Gpt,
}

/// One partition, in bytes from the start of the disk.
#[derive(Clone, Debug, Serialize)]
pub struct Partition {
    /// The number the guest kernel gives it (1-4 primary, 5+ logical; GPT index).
    pub number: u32,
    /// Byte offset on the disk.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
    /// Type as text: `0x8e (Linux LVM)` or a GPT type name/GUID.
    pub type_name: String,
    /// MBR type byte (0 for GPT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mbr_type: Option<u8>,
    /// Extended partition container (holds logical partitions, not a volume).
    pub extended: bool,
    /// Bootable flag (MBR) or legacy-BIOS-bootable attribute (GPT).
    pub bootable: bool,
    /// GPT partition name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpt_name: Option<String>,
    /// GPT partition GUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_uuid: Option<String>,
}

/// A disk's partition table as read.
#[derive(Clone, Debug, Serialize)]
pub struct Table {
    /// Kind of table.
    pub kind: TableKind,
    /// Its partitions (extended containers included, marked).
    pub partitions: Vec<Partition>,
    /// Problems found along the way.
    pub warnings: Vec<String>,
}

const SECTOR: u64 = 512;
/// Budget of reads for one table: 4 primary + a long but finite EBR chain.
const MAX_TABLE_READS: u32 = 4096;

fn mbr_type_name(t: u8) -> &'static str {
    match t {
        0x05 | 0x0f | 0x85 => "Extended",
        0x07 => "HPFS/NTFS/exFAT",
        0x0b | 0x0c => "W95 FAT32",
        0x06 | 0x0e => "FAT16",
        0x01 => "FAT12",
        0x82 => "Linux swap",
        0x83 => "Linux",
        0x8e => "Linux LVM",
        0xfd => "Linux raid autodetect",
        0xee => "GPT protective",
        0xef => "EFI System",
        _ => "unknown",
    }
}

fn gpt_type_name(t: &gpt::partition_types::Type) -> String {
    use gpt::partition_types as pt;
    let known = [
        (pt::LINUX_FS, "Linux filesystem"),
        (pt::LINUX_LVM, "Linux LVM"),
        (pt::LINUX_SWAP, "Linux swap"),
        (pt::LINUX_RAID, "Linux RAID"),
        (pt::LINUX_HOME, "Linux /home"),
        (pt::EFI, "EFI System"),
        (pt::BIOS, "BIOS boot"),
        (pt::BASIC, "Microsoft basic data"),
        (pt::MICROSOFT_RESERVED, "Microsoft reserved"),
        (pt::LINUX_ROOT_X64, "Linux root (x86-64)"),
    ];
    known
        .iter()
        .find(|(k, _)| k.guid == t.guid)
        .map(|(_, n)| (*n).to_string())
        .unwrap_or_else(|| t.guid.to_string())
}

/// Reads the partition table of `disk` (named `disk_name` in messages).
pub fn read_table(disk_name: &str, disk: &dyn ByteSource) -> Table {
    let mut warnings = Vec::new();
    let mut sector0 = [0u8; 512];
    if disk.len() < SECTOR || disk.read_at(0, &mut sector0).is_err() {
        return Table {
            kind: TableKind::None,
            partitions: vec![],
            warnings,
        };
    }
    if sector0[510..512] != [0x55, 0xaa] {
        // No MBR signature; a GPT disk always has a protective MBR, but a damaged
        // one may still carry a valid GPT header. Only look when a header signature
        // is there: a whole-disk PV or filesystem is not a damaged GPT.
        let Some(sector) = gpt_sector_size(disk) else {
            return Table {
                kind: TableKind::None,
                partitions: vec![],
                warnings,
            };
        };
        if let Some(t) = read_gpt(disk_name, disk, sector, &mut warnings) {
            warnings.push(format!(
                "{disk_name}: no MBR signature; using the GPT found anyway"
            ));
            return Table {
                kind: TableKind::Gpt,
                partitions: t,
                warnings,
            };
        }
        return Table {
            kind: TableKind::None,
            partitions: vec![],
            warnings,
        };
    }
    // A boot sector of a filesystem (FAT, NTFS, ext boot block with 55aa) is not a
    // table: entries must look sane, otherwise treat the disk as a whole volume.
    let entries: Vec<&[u8]> = (0..4)
        .filter_map(|i| sector0.get(446 + i * 16..462 + i * 16))
        .collect();
    let any_gpt = entries.iter().any(|e| e.get(4) == Some(&0xee));
    if any_gpt {
        let sector = gpt_sector_size(disk).unwrap_or(SECTOR);
        if let Some(parts) = read_gpt(disk_name, disk, sector, &mut warnings) {
            return Table {
                kind: TableKind::Gpt,
                partitions: parts,
                warnings,
            };
        }
        warnings.push(format!(
            "{disk_name}: protective MBR but no readable GPT header (primary or backup)"
        ));
        return Table {
            kind: TableKind::Mbr,
            partitions: vec![],
            warnings,
        };
    }
    let plausible = entries
        .iter()
        .all(|e| matches!(e.first(), Some(0x00) | Some(0x80)));
    if !plausible {
        return Table {
            kind: TableKind::None,
            partitions: vec![],
            warnings,
        };
    }
    // mbrman unwraps an empty range when every used entry starts at sector 0
    // (`find_alignment`, found by the partition_table fuzz target): such a table
    // describes nothing readable, so it is refused before mbrman sees it.
    let used_starts: Vec<u32> = entries
        .iter()
        .filter(|e| e.get(4).is_some_and(|t| *t != 0))
        .filter_map(|e| e.get(8..12).and_then(|b| b.try_into().ok()))
        .map(u32::from_le_bytes)
        .collect();
    if !used_starts.is_empty() && used_starts.iter().all(|s| *s == 0) {
        warnings.push(format!(
            "{disk_name}: MBR: every partition entry starts at sector 0; not a usable table"
        ));
        return Table {
            kind: TableKind::None,
            partitions: vec![],
            warnings,
        };
    }
    match read_mbr(disk_name, disk, &mut warnings) {
        Some(parts) => Table {
            kind: TableKind::Mbr,
            partitions: parts,
            warnings,
        },
        None => Table {
            kind: TableKind::None,
            partitions: vec![],
            warnings,
        },
    }
}

fn checked_range(
    disk_name: &str,
    disk_len: u64,
    number: u32,
    first_sector: u64,
    sectors: u64,
    sector_size: u64,
    warnings: &mut Vec<String>,
) -> Option<(u64, u64)> {
    let start = first_sector.checked_mul(sector_size);
    let size = sectors.checked_mul(sector_size);
    match (start, size) {
        (Some(s), Some(z)) if s.checked_add(z).is_some_and(|e| e <= disk_len) => Some((s, z)),
        _ => {
            warnings.push(format!(
                "{disk_name}{number}: partition (start sector {first_sector}, {sectors} sectors) runs past the end of the disk ({disk_len} bytes); skipped"
            ));
            None
        }
    }
}

fn read_mbr(
    disk_name: &str,
    disk: &dyn ByteSource,
    warnings: &mut Vec<String>,
) -> Option<Vec<Partition>> {
    let mut cursor = Cursor::new(disk, MAX_TABLE_READS);
    // mbrman does its own u32 arithmetic on EBR offsets; a hostile chain must not
    // take the process down with it, so a panic inside it becomes a warning.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        mbrman::MBR::read_from(&mut cursor, 512)
    }));
    let mbr = match parsed {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            warnings.push(format!("{disk_name}: MBR: {e}"));
            return None;
        }
        Err(_) => {
            warnings.push(format!(
                "{disk_name}: MBR: malformed extended partition chain"
            ));
            return None;
        }
    };
    let mut parts = Vec::new();
    for (i, p) in mbr.header.iter() {
        if !p.is_used() {
            continue;
        }
        let number = u32::try_from(i).unwrap_or(0);
        let Some((start, size)) = checked_range(
            disk_name,
            disk.len(),
            number,
            u64::from(p.starting_lba),
            u64::from(p.sectors),
            SECTOR,
            warnings,
        ) else {
            continue;
        };
        parts.push(Partition {
            number,
            start,
            size,
            type_name: format!("0x{:02x} ({})", p.sys, mbr_type_name(p.sys)),
            mbr_type: Some(p.sys),
            extended: matches!(p.sys, 0x05 | 0x0f | 0x85),
            bootable: p.is_active(),
            gpt_name: None,
            part_uuid: None,
        });
    }
    for (i, l) in mbr.logical_partitions.iter().enumerate() {
        let p = &l.partition;
        let number = u32::try_from(i)
            .ok()
            .and_then(|i| i.checked_add(5))
            .unwrap_or(u32::MAX);
        if !p.is_used() {
            continue;
        }
        let Some((start, size)) = checked_range(
            disk_name,
            disk.len(),
            number,
            u64::from(p.starting_lba),
            u64::from(p.sectors),
            SECTOR,
            warnings,
        ) else {
            continue;
        };
        parts.push(Partition {
            number,
            start,
            size,
            type_name: format!("0x{:02x} ({})", p.sys, mbr_type_name(p.sys)),
            mbr_type: Some(p.sys),
            extended: false,
            bootable: p.is_active(),
            gpt_name: None,
            part_uuid: None,
        });
    }
    Some(parts)
}

/// The logical sector size of a GPT disk: where the header signature `EFI PART`
/// is found at LBA 1 (or, when the primary header is gone, at the last LBA), for
/// 512-byte and then 4096-byte sectors (UEFI spec, "GPT Header"). `None`: no GPT.
fn gpt_sector_size(disk: &dyn ByteSource) -> Option<u64> {
    const SIGNATURE: &[u8; 8] = b"EFI PART";
    let found = |off: u64| {
        let mut sig = [0u8; 8];
        disk.read_at(off, &mut sig).is_ok() && &sig == SIGNATURE
    };
    let last = |sector: u64| {
        let n = disk.len() / sector;
        n.checked_sub(1).filter(|&l| l >= 1).map(|l| l * sector)
    };
    [SECTOR, 4096]
        .into_iter()
        .find(|&sector| found(sector))
        .or_else(|| {
            [SECTOR, 4096]
                .into_iter()
                .find(|&sector| last(sector).is_some_and(found))
        })
}

fn read_gpt(
    disk_name: &str,
    disk: &dyn ByteSource,
    sector: u64,
    warnings: &mut Vec<String>,
) -> Option<Vec<Partition>> {
    let cursor = Cursor::new(disk, MAX_TABLE_READS);
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        gpt::GptConfig::new()
            .writable(false)
            .logical_block_size(if sector == 4096 {
                gpt::disk::LogicalBlockSize::Lb4096
            } else {
                gpt::disk::LogicalBlockSize::Lb512
            })
            .open_from_device(cursor)
    }));
    let gdisk = match parsed {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            warnings.push(format!("{disk_name}: GPT: {e}"));
            return None;
        }
        Err(_) => {
            warnings.push(format!(
                "{disk_name}: GPT: malformed header or partition array"
            ));
            return None;
        }
    };
    if gdisk.primary_header().is_err() {
        warnings.push(format!(
            "{disk_name}: GPT primary header is damaged; using the backup header"
        ));
    }
    let mut parts = Vec::new();
    for (idx, p) in gdisk.partitions() {
        if p.part_type_guid.guid.is_nil() {
            continue;
        }
        let sectors = p
            .last_lba
            .checked_sub(p.first_lba)
            .and_then(|s| s.checked_add(1));
        let Some(sectors) = sectors else {
            warnings.push(format!(
                "{disk_name}{idx}: GPT entry ends before it starts; skipped"
            ));
            continue;
        };
        let Some((start, size)) = checked_range(
            disk_name,
            disk.len(),
            *idx,
            p.first_lba,
            sectors,
            sector,
            warnings,
        ) else {
            continue;
        };
        parts.push(Partition {
            number: *idx,
            start,
            size,
            type_name: gpt_type_name(&p.part_type_guid),
            mbr_type: None,
            extended: false,
            bootable: p.flags & 4 != 0,
            gpt_name: Some(p.name.clone()).filter(|n| !n.is_empty()),
            part_uuid: Some(p.part_guid.to_string()),
        });
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytesource::MemSource;

    /// A disk image with the given primary entries (type, start sector, sectors).
    fn mbr_disk(entries: &[(u8, u32, u32)], sectors: usize) -> MemSource {
        let mut d = vec![0u8; sectors * 512];
        for (i, (kind, start, len)) in entries.iter().enumerate() {
            let e = 446 + i * 16;
            d[e + 4] = *kind;
            d[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
            d[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
        }
        d[510] = 0x55;
        d[511] = 0xaa;
        MemSource::new(d)
    }

    /// Regression (partition_table fuzz target): every used entry at sector 0 made
    /// mbrman unwrap an empty range.
    #[test]
    fn entries_all_at_sector_zero_are_refused_without_a_panic() {
        let disk = mbr_disk(&[(0x83, 0, 100), (0x8e, 0, 50)], 256);
        let t = read_table("sda", &disk);
        assert!(t.partitions.is_empty());
        assert!(
            t.warnings.iter().any(|w| w.contains("starts at sector 0")),
            "{:?}",
            t.warnings
        );
    }

    #[test]
    fn primary_partitions_are_read_in_bytes() {
        let disk = mbr_disk(&[(0x83, 2, 10), (0x8e, 12, 100)], 256);
        let t = read_table("sda", &disk);
        let got: Vec<_> = t
            .partitions
            .iter()
            .map(|p| (p.number, p.start, p.size, p.mbr_type))
            .collect();
        assert_eq!(
            got,
            [(1, 1024, 5120, Some(0x83)), (2, 6144, 51200, Some(0x8e))]
        );
    }
}
