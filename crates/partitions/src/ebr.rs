//! The chain of Extended Boot Records inside an extended partition.
//!
//! Each EBR is an MBR-shaped sector: its first data entry is one logical
//! partition, with a start relative to that EBR; its first extended entry links
//! to the next EBR, with a start relative to the beginning of the extended
//! partition (kernel `block/partitions/msdos.c`, `parse_extended()`; libfdisk
//! `dos.c`, `read_extended()`, which also ignores extra data and link entries).
//!
//! The walk is bounded: at most [`crate::MAX_LOGICAL`] logical partitions and
//! [`MAX_EBRS`] EBRs, and an EBR already visited ends it (a loop). A bad EBR ends
//! the chain with a warning; everything found before it is kept.

use crate::mbr::{self, Entry};
use crate::{EbrFault, Partition, Warning, MAX_LOGICAL, MBR_SECTOR};
use bytesource::ByteSource;
use std::collections::BTreeSet;

/// EBRs read at most for one chain (EBRs without a data entry count too).
pub const MAX_EBRS: usize = 1024;

/// Reads the logical partitions of extended partition `ext` (numbered from 5).
pub(crate) fn walk(
    disk: &dyn ByteSource,
    ext: &Entry,
    warnings: &mut Vec<Warning>,
) -> Vec<Partition> {
    let disk_len = disk.len();
    let ext_start = u64::from(ext.start);
    let ext_end = ext_start.saturating_add(u64::from(ext.sectors));
    let mut visited = BTreeSet::new();
    let mut out: Vec<Partition> = Vec::new();
    let mut ebr_lba = ext_start;
    let stop = |offset: u64, found: usize, fault: EbrFault, w: &mut Vec<Warning>| {
        w.push(Warning::EbrChain {
            offset,
            found,
            fault,
        });
    };
    loop {
        let offset = ebr_lba.saturating_mul(MBR_SECTOR);
        if !visited.insert(ebr_lba) {
            stop(offset, out.len(), EbrFault::Loop, warnings);
            break;
        }
        if visited.len() > MAX_EBRS || out.len() >= MAX_LOGICAL {
            stop(offset, out.len(), EbrFault::TooMany, warnings);
            break;
        }
        let inside_disk = offset
            .checked_add(MBR_SECTOR)
            .is_some_and(|end| end <= disk_len);
        if ebr_lba < ext_start || ebr_lba >= ext_end || !inside_disk {
            stop(offset, out.len(), EbrFault::Outside, warnings);
            break;
        }
        let mut sector = [0u8; 512];
        if let Err(e) = disk.read_at(offset, &mut sector) {
            stop(
                offset,
                out.len(),
                EbrFault::Unreadable(e.to_string()),
                warnings,
            );
            break;
        }
        if !mbr::has_signature(&sector) {
            stop(offset, out.len(), EbrFault::NoSignature, warnings);
            break;
        }
        let (data, link) = data_and_link(&sector, offset, warnings);
        if let Some(d) = data {
            let number = u32::try_from(out.len())
                .ok()
                .and_then(|n| n.checked_add(5))
                .unwrap_or(u32::MAX);
            out.push(mbr::from_entry(number, &d, ebr_lba, disk_len, warnings));
        }
        match link {
            Some(l) => ebr_lba = ext_start.saturating_add(u64::from(l.start)),
            None => break,
        }
    }
    out
}

/// The first data entry and the first link entry of an EBR; extras are reported.
fn data_and_link(
    sector: &[u8],
    offset: u64,
    warnings: &mut Vec<Warning>,
) -> (Option<Entry>, Option<Entry>) {
    let mut data = None;
    let mut link = None;
    let mut extra = false;
    for e in mbr::entries(sector).into_iter().filter(Entry::used) {
        let slot = if e.is_extended() {
            &mut link
        } else {
            &mut data
        };
        if slot.is_some() {
            extra = true;
        } else {
            *slot = Some(e);
        }
    }
    if extra {
        warnings.push(Warning::EbrExtraEntry { offset });
    }
    (data, link)
}
