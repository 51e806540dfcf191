//! The GUID Partition Table (UEFI spec 2.x, chapter 5.3 "GUID Partition Table
//! (GPT) Disk Layout").
//!
//! The primary header is at LBA 1 and its entry array normally at LBA 2; the
//! backup header is at the last LBA with its array just before it. A header is
//! valid when its signature, size (92 bytes up to one sector), CRC32 (over
//! `HeaderSize` bytes with the CRC field zeroed), `MyLBA` and usable range are
//! right; its entry array must fit where it lies (between the header and the
//! usable area for the primary, between the usable area and the header for the
//! backup) and match its own CRC32. A damaged primary falls back to the backup.
//!
//! Entry sizes are 128 × 2^n bytes (5.3.3: "SizeOfPartitionEntry ... 128*(2^n)");
//! only the first 128 bytes of each entry are defined. The entry count is checked
//! against the room it claims and capped at [`crate::MAX_GPT_ENTRIES`] before any
//! array is allocated.

use crate::crc32::Crc32;
use crate::guid::{gpt_type_name, Guid};
use crate::{place, Error, GptFault, Partition, Warning, MAX_GPT_ENTRIES};
use bytesource::field::{array_at, le_u16, le_u32, le_u64};
use bytesource::ByteSource;

/// `EFI PART`, the header signature (5.3.2, Table "GPT Header").
pub const SIGNATURE: &[u8; 8] = b"EFI PART";
/// Smallest legal `HeaderSize` (the defined fields).
const MIN_HEADER: u32 = 92;
/// Byte offset of `HeaderCRC32` in the header.
const CRC_FIELD: usize = 16;
/// Bytes of an entry that the spec defines (the rest of a larger entry is reserved).
const ENTRY_DEFINED: usize = 128;
/// Most bytes of one entry array read: 16 MiB, 128 times the usual 128 × 128 bytes.
const MAX_ARRAY_BYTES: u64 = 16 << 20;
/// Legacy BIOS bootable attribute (bit 2, 5.3.3 "Defined GPT Partition Entry -
/// Attributes").
const ATTR_LEGACY_BOOTABLE: u64 = 1 << 2;

/// Which copy a header is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Primary,
    Backup,
}

/// The fields of a header this reader uses.
#[derive(Clone, Debug)]
pub(crate) struct Header {
    /// Byte offset of the header on the disk.
    pub offset: u64,
    role: Role,
    my_lba: u64,
    first_usable: u64,
    last_usable: u64,
    pub alternate_lba: u64,
    pub disk_guid: Guid,
    pub entries_lba: u64,
    pub count: u32,
    pub entry_size: u32,
    pub entries_crc: u32,
}

/// A GPT as read: the copy in use, its entry array, and whether it is the backup.
pub(crate) struct Gpt {
    pub header: Header,
    pub array: Vec<u8>,
    pub backup_used: bool,
}

/// The logical sector size: 512 or 4096, by where `EFI PART` is at LBA 1, or
/// (primary gone) at the last LBA. `None`: no GPT header signature anywhere.
pub(crate) fn sector_size(disk: &dyn ByteSource) -> Option<u64> {
    let found = |off: u64| {
        let mut sig = [0u8; 8];
        disk.read_at(off, &mut sig).is_ok() && &sig == SIGNATURE
    };
    let last = |ss: u64| {
        disk.len()
            .checked_div(ss)
            .and_then(|n| n.checked_sub(1))
            .filter(|&l| l >= 1)
            .and_then(|l| l.checked_mul(ss))
    };
    [512u64, 4096]
        .into_iter()
        .find(|&ss| found(ss))
        .or_else(|| {
            [512u64, 4096]
                .into_iter()
                .find(|&ss| last(ss).is_some_and(found))
        })
}

/// Reads the GPT with sector size `ss`: the primary, else the backup.
pub(crate) fn read(
    disk: &dyn ByteSource,
    ss: u64,
    warnings: &mut Vec<Warning>,
) -> Result<Gpt, Error> {
    let last_lba = disk.len().checked_div(ss).unwrap_or(0).saturating_sub(1);
    match load(disk, ss, 1, Role::Primary) {
        Ok((header, array)) => {
            // The primary is used; still say when the backup is unusable (the
            // disk was grown or truncated, or the backup is damaged).
            let backup_lba = if header.alternate_lba == 0 {
                last_lba
            } else {
                header.alternate_lba
            };
            if let Err(fault) = load(disk, ss, backup_lba, Role::Backup) {
                warnings.push(Warning::GptBackupDamaged { fault });
            }
            Ok(Gpt {
                header,
                array,
                backup_used: false,
            })
        }
        Err(primary) => match load(disk, ss, last_lba, Role::Backup) {
            Ok((header, array)) => {
                warnings.push(Warning::GptPrimaryDamaged {
                    fault: primary,
                    backup_offset: header.offset,
                });
                Ok(Gpt {
                    header,
                    array,
                    backup_used: true,
                })
            }
            Err(backup) => Err(Error::Gpt { primary, backup }),
        },
    }
}

/// Reads and checks the header at `lba` and its entry array.
fn load(
    disk: &dyn ByteSource,
    ss: u64,
    lba: u64,
    role: Role,
) -> Result<(Header, Vec<u8>), GptFault> {
    let offset = lba
        .checked_mul(ss)
        .filter(|o| o.checked_add(ss).is_some_and(|end| end <= disk.len()))
        .ok_or(GptFault::BeyondDisk {
            offset: lba.saturating_mul(ss),
        })?;
    let mut sector = vec![0u8; usize::try_from(ss).unwrap_or(512)];
    disk.read_at(offset, &mut sector)
        .map_err(|e| GptFault::Unreadable {
            offset,
            error: e.to_string(),
        })?;
    let header = parse_header(&sector, offset, lba, ss, role)?;
    check_array_room(&header, ss, disk.len())?;
    let array = read_array(disk, &header, ss)?;
    Ok((header, array))
}

/// Checks the header fields that do not need the disk.
fn parse_header(b: &[u8], offset: u64, lba: u64, ss: u64, role: Role) -> Result<Header, GptFault> {
    if b.get(..8) != Some(&SIGNATURE[..]) {
        return Err(GptFault::NoSignature { offset });
    }
    // A field outside `b` (a buffer shorter than the 92 defined bytes) is a header
    // too small to hold it.
    let short = || GptFault::HeaderSize {
        offset,
        size: u32::try_from(b.len()).unwrap_or(u32::MAX),
    };
    let u32f = |off: usize| le_u32(b, off).ok_or_else(short);
    let u64f = |off: usize| le_u64(b, off).ok_or_else(short);
    let size = u32f(12)?;
    let hdr = usize::try_from(size)
        .ok()
        .filter(|_| size >= MIN_HEADER && u64::from(size) <= ss)
        .and_then(|n| b.get(..n))
        .ok_or(GptFault::HeaderSize { offset, size })?;
    let stored = u32f(CRC_FIELD)?;
    let mut crc = Crc32::default();
    crc.update(hdr.get(..CRC_FIELD).unwrap_or_default());
    crc.update(&[0; 4]);
    crc.update(hdr.get(CRC_FIELD + 4..).unwrap_or_default());
    let computed = crc.finish();
    if stored != computed {
        return Err(GptFault::HeaderCrc {
            offset,
            stored,
            computed,
        });
    }
    let my_lba = u64f(24)?;
    if my_lba != lba {
        return Err(GptFault::WrongLba {
            offset,
            my_lba,
            expected: lba,
        });
    }
    let first = u64f(40)?;
    let last = u64f(48)?;
    let sane = first <= last
        && match role {
            Role::Primary => first > my_lba,
            Role::Backup => last < my_lba,
        };
    if !sane {
        return Err(GptFault::UsableRange {
            offset,
            first,
            last,
        });
    }
    let entry_size = u32f(84)?;
    if entry_size < 128 || !entry_size.is_power_of_two() {
        // 128 × 2^n is exactly a power of two that is at least 128.
        return Err(GptFault::EntrySize {
            offset,
            size: entry_size,
        });
    }
    let header = Header {
        offset,
        role,
        my_lba,
        first_usable: first,
        last_usable: last,
        alternate_lba: u64f(32)?,
        disk_guid: Guid(array_at(b, 56).ok_or_else(short)?),
        entries_lba: u64f(72)?,
        count: u32f(80)?,
        entry_size,
        entries_crc: u32f(88)?,
    };
    Ok(header)
}

/// The entry array must lie after the primary header and end before the usable
/// area (primary), or start after the usable area and end before the header
/// (backup), inside the disk; at most [`MAX_GPT_ENTRIES`] entries and
/// [`MAX_ARRAY_BYTES`] bytes. Checked before allocating.
fn check_array_room(h: &Header, ss: u64, disk_len: u64) -> Result<(), GptFault> {
    let (lo, hi) = match h.role {
        Role::Primary => (h.my_lba.saturating_add(1), h.first_usable),
        Role::Backup => (h.last_usable.saturating_add(1), h.my_lba),
    };
    let disk_sectors = disk_len.checked_div(ss).unwrap_or(0);
    let hi = hi.min(disk_sectors);
    let room = if h.entries_lba >= lo && h.entries_lba < hi {
        hi.saturating_sub(h.entries_lba)
            .saturating_mul(ss)
            .min(MAX_ARRAY_BYTES)
    } else {
        0
    };
    let fits = room.checked_div(u64::from(h.entry_size)).unwrap_or(0);
    if u64::from(h.count) > fits || h.count > MAX_GPT_ENTRIES {
        return Err(GptFault::EntryArray {
            offset: h.offset,
            entries_lba: h.entries_lba,
            count: h.count,
            fits: fits.min(u64::from(MAX_GPT_ENTRIES)),
        });
    }
    Ok(())
}

/// Reads the entry array (size already bounded) and checks its CRC32.
fn read_array(disk: &dyn ByteSource, h: &Header, ss: u64) -> Result<Vec<u8>, GptFault> {
    let bytes = u64::from(h.count).saturating_mul(u64::from(h.entry_size));
    let offset = h.entries_lba.saturating_mul(ss);
    let fault = |error: String| GptFault::Unreadable { offset, error };
    let len = usize::try_from(bytes).map_err(|e| fault(e.to_string()))?;
    let mut array = vec![0u8; len];
    disk.read_at(offset, &mut array)
        .map_err(|e| fault(e.to_string()))?;
    let computed = crate::crc32::crc32(&array);
    if computed != h.entries_crc {
        return Err(GptFault::EntriesCrc {
            offset,
            stored: h.entries_crc,
            computed,
        });
    }
    Ok(array)
}

/// The used entries of the array as partitions, numbered by slot (slot i is
/// partition i+1, as the kernel's `efi.c` numbers them).
pub(crate) fn partitions(
    g: &Gpt,
    ss: u64,
    disk_len: u64,
    warnings: &mut Vec<Warning>,
) -> Vec<Partition> {
    let size = usize::try_from(g.header.entry_size).unwrap_or(ENTRY_DEFINED);
    let mut out = Vec::new();
    for ((i, e), number) in g.array.chunks_exact(size).enumerate().zip(1u32..) {
        // Each chunk is a whole entry of at least ENTRY_DEFINED (128) bytes (the
        // entry size was checked by `parse_header`), so every field below is
        // inside it; an entry that were not would be skipped like an unused one.
        let Some(f) = entry_fields(e) else {
            continue;
        };
        let type_guid = f.type_guid;
        if type_guid.is_nil() {
            continue;
        }
        let entry_offset = u64::try_from(i)
            .ok()
            .and_then(|i| i.checked_mul(u64::from(g.header.entry_size)))
            .and_then(|o| o.checked_add(g.header.entries_lba.checked_mul(ss)?))
            .unwrap_or(u64::MAX);
        let first = f.first;
        let last = f.last;
        let Some(sectors) = last.checked_sub(first).and_then(|s| s.checked_add(1)) else {
            warnings.push(Warning::GptEntryInverted {
                number,
                offset: entry_offset,
            });
            continue;
        };
        let attributes = f.attributes;
        let mut p = place(number, first, sectors, ss, disk_len, warnings);
        p.type_name = gpt_type_name(&type_guid)
            .map(str::to_string)
            .unwrap_or_else(|| type_guid.to_string());
        p.type_guid = Some(type_guid);
        p.part_uuid = Some(f.uuid);
        p.attributes = attributes;
        p.bootable = attributes & ATTR_LEGACY_BOOTABLE != 0;
        p.gpt_name =
            Some(name(e.get(56..ENTRY_DEFINED).unwrap_or_default())).filter(|n| !n.is_empty());
        out.push(p);
    }
    out
}

/// The defined fields of one partition entry (5.3.3, "GPT Partition Entry").
struct EntryFields {
    type_guid: Guid,
    uuid: Guid,
    first: u64,
    last: u64,
    attributes: u64,
}

fn entry_fields(e: &[u8]) -> Option<EntryFields> {
    Some(EntryFields {
        type_guid: Guid(array_at(e, 0)?),
        uuid: Guid(array_at(e, 16)?),
        first: le_u64(e, 32)?,
        last: le_u64(e, 40)?,
        attributes: le_u64(e, 48)?,
    })
}

/// A partition name: UTF-16LE up to the first NUL (36 code units at most);
/// unpaired surrogates become U+FFFD.
fn name(raw: &[u8]) -> String {
    let units = raw
        .chunks_exact(2)
        // chunks_exact(2): the u16 is always there.
        .map(|c| le_u16(c, 0).unwrap_or(0))
        .take_while(|&u| u != 0);
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}
