//! Hand-built hostile tables. Each image is built here to the DOS/UEFI layout,
//! and the expected result follows from how it was built (what the entries say),
//! not from this crate.

use bytesource::MemSource;
use partitions::{EbrFault, Error, GptFault, TableKind, Warning, MAX_LOGICAL};

/// A disk of `sectors` 512-byte sectors with the given MBR entries
/// (type, start sector, sectors) and the 0x55AA signature.
fn mbr_disk(entries: &[(u8, u32, u32)], sectors: usize) -> Vec<u8> {
    let mut d = vec![0u8; sectors * 512];
    put_entries(&mut d, 0, entries);
    d
}

fn put_entries(d: &mut [u8], sector: usize, entries: &[(u8, u32, u32)]) {
    let base = sector * 512;
    for (i, (kind, start, len)) in entries.iter().enumerate() {
        let e = base + 446 + i * 16;
        d[e + 4] = *kind;
        d[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
        d[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
    }
    d[base + 510] = 0x55;
    d[base + 511] = 0xaa;
}

/// Regression (partition_table fuzz target, found against mbrman): every used
/// entry at sector 0 describes nothing readable.
#[test]
fn entries_all_at_sector_zero_are_refused_without_a_panic() {
    let disk = MemSource::new(mbr_disk(&[(0x83, 0, 100), (0x8e, 0, 50)], 256));
    assert_eq!(partitions::detect(&disk), Err(Error::MbrAllAtSectorZero));
    let t = partitions::read_table(&disk);
    assert_eq!(t.kind, TableKind::None);
    assert!(t.partitions.is_empty());
    assert!(
        t.warnings
            .iter()
            .any(|w| w.to_string().contains("starts at sector 0")),
        "{:?}",
        t.warnings
    );
}

#[test]
fn primary_partitions_are_read_in_bytes() {
    let disk = MemSource::new(mbr_disk(&[(0x83, 2, 10), (0x8e, 12, 100)], 256));
    let t = partitions::detect(&disk).unwrap().unwrap();
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

#[test]
fn no_table_is_the_whole_disk() {
    for d in [vec![], vec![0u8; 100], vec![0u8; 4096]] {
        assert_eq!(partitions::detect(&MemSource::new(d)), Ok(None));
    }
    // A boot sector with 0x55AA whose "entries" have boot flags other than 0/0x80
    // (a FAT/NTFS boot sector) is not a table.
    let mut d = mbr_disk(&[(0x83, 2, 10)], 64);
    d[446] = 0x33;
    assert_eq!(partitions::detect(&MemSource::new(d)), Ok(None));
}

/// An extended partition at sector 64 with `n` EBRs, each holding one logical
/// partition of 1 sector right after it, linked in order.
fn long_chain(n: u32) -> Vec<u8> {
    let ext_start = 64u32;
    let ext_len = 2 * n + 8;
    let mut d = mbr_disk(
        &[(0x05, ext_start, ext_len)],
        (ext_start + ext_len) as usize,
    );
    for i in 0..n {
        let ebr = ext_start + 2 * i;
        let mut entries = vec![(0x83, 1, 1)];
        if i + 1 < n {
            entries.push((0x05, 2 * (i + 1), 2));
        }
        put_entries(&mut d, ebr as usize, &entries);
    }
    d
}

#[test]
fn ebr_chain_is_capped() {
    let t = partitions::detect(&MemSource::new(long_chain(300)))
        .unwrap()
        .unwrap();
    let logical = t.partitions.iter().filter(|p| p.number >= 5).count();
    assert_eq!(logical, MAX_LOGICAL);
    assert_eq!(t.partitions.last().unwrap().number, 4 + MAX_LOGICAL as u32);
    assert!(t.warnings.iter().any(|w| matches!(
        w,
        Warning::EbrChain {
            fault: EbrFault::TooMany,
            ..
        }
    )));
    // A chain of 100 is read whole, without warnings.
    let t = partitions::detect(&MemSource::new(long_chain(100)))
        .unwrap()
        .unwrap();
    assert_eq!(t.partitions.len(), 1 + 100);
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}

#[test]
fn ebr_without_signature_stops_the_chain_keeping_earlier_logicals() {
    let mut d = long_chain(5);
    // Third EBR (sector 64 + 4): signature wiped.
    d[(68 * 512) + 510] = 0;
    let t = partitions::detect(&MemSource::new(d)).unwrap().unwrap();
    let numbers: Vec<u32> = t.partitions.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [1, 5, 6]);
    assert!(t.warnings.contains(&Warning::EbrChain {
        offset: 68 * 512,
        found: 2,
        fault: EbrFault::NoSignature
    }));
}

/// CRC-32 from flate2 (zlib's), independent of this crate's.
fn crc(b: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(b);
    c.sum()
}

/// A 512-byte-sector GPT header at `lba` (UEFI 5.3.2) with its CRC.
#[allow(clippy::too_many_arguments)]
fn gpt_header(
    lba: u64,
    alt: u64,
    first: u64,
    last: u64,
    entries: u64,
    count: u32,
    esize: u32,
    ecrc: u32,
) -> [u8; 92] {
    let mut h = [0u8; 92];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&lba.to_le_bytes());
    h[32..40].copy_from_slice(&alt.to_le_bytes());
    h[40..48].copy_from_slice(&first.to_le_bytes());
    h[48..56].copy_from_slice(&last.to_le_bytes());
    h[72..80].copy_from_slice(&entries.to_le_bytes());
    h[80..84].copy_from_slice(&count.to_le_bytes());
    h[84..88].copy_from_slice(&esize.to_le_bytes());
    h[88..92].copy_from_slice(&ecrc.to_le_bytes());
    let c = crc(&h);
    h[16..20].copy_from_slice(&c.to_le_bytes());
    h
}

#[test]
fn huge_entry_count_without_a_backup_is_an_error_not_an_allocation() {
    let mut d = mbr_disk(&[(0xee, 1, 2047)], 2048);
    let h = gpt_header(1, 2047, 34, 2014, 2, 0x8000_0000, 128, 0);
    d[512..604].copy_from_slice(&h);
    let got = partitions::detect(&MemSource::new(d));
    match got {
        Err(Error::Gpt {
            primary: GptFault::EntryArray { count, fits, .. },
            backup: GptFault::NoSignature { offset },
        }) => {
            assert_eq!(count, 0x8000_0000);
            assert_eq!(fits, 128); // 32 sectors of room / 128 bytes
            assert_eq!(offset, 2047 * 512);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn entry_sizes_that_are_not_128_times_a_power_of_two_are_refused() {
    for esize in [0u32, 64, 129, 384, 1000] {
        let mut d = mbr_disk(&[(0xee, 1, 2047)], 2048);
        let h = gpt_header(1, 2047, 34, 2014, 2, 4, esize, 0);
        d[512..604].copy_from_slice(&h);
        match partitions::detect(&MemSource::new(d)) {
            Err(Error::Gpt {
                primary: GptFault::EntrySize { size, .. },
                ..
            }) => assert_eq!(size, esize),
            other => panic!("{esize}: {other:?}"),
        }
    }
}

#[test]
fn gpt_entry_past_the_disk_and_inverted_entry() {
    let mut d = mbr_disk(&[(0xee, 1, 2047)], 2048);
    let mut array = vec![0u8; 4 * 128];
    let linux = [
        0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d,
        0xe4,
    ];
    // Entry 0: LBA 100..=5000, past the 2048-sector disk. Entry 1: last < first.
    for (i, (first, last)) in [(100u64, 5000u64), (300, 200)].iter().enumerate() {
        let e = &mut array[i * 128..];
        e[0..16].copy_from_slice(&linux);
        e[16] = i as u8 + 1;
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
    }
    d[1024..1024 + array.len()].copy_from_slice(&array);
    let h = gpt_header(1, 2047, 34, 2014, 2, 4, 128, crc(&array));
    d[512..604].copy_from_slice(&h);
    let t = partitions::detect(&MemSource::new(d)).unwrap().unwrap();
    assert_eq!(t.partitions.len(), 1);
    let p = &t.partitions[0];
    assert_eq!(
        (p.number, p.start, p.size, p.readable),
        (1, 51200, 4901 * 512, false)
    );
    assert!(t.warnings.contains(&Warning::PastEnd {
        number: 1,
        start: 51200,
        end: 5001 * 512,
        disk_len: 2048 * 512
    }));
    assert!(t.warnings.contains(&Warning::GptEntryInverted {
        number: 2,
        offset: 1024 + 128
    }));
}

/// A valid-CRC header whose usable area starts at LBA 2^40 and whose entries are
/// 1 MiB each: 16384 of them would "fit" before that LBA (16 GiB). The room is
/// what lies inside the 1 MiB disk, so the array is refused without allocating.
#[test]
fn entry_array_room_is_bounded_by_the_disk() {
    let mut d = mbr_disk(&[(0xee, 1, 2047)], 2048);
    let h = gpt_header(1, 2047, 1 << 40, 1 << 41, 2, 16384, 1 << 20, 0);
    d[512..604].copy_from_slice(&h);
    match partitions::detect(&MemSource::new(d)) {
        Err(Error::Gpt {
            primary: GptFault::EntryArray { count, fits, .. },
            ..
        }) => {
            assert_eq!(count, 16384);
            // 2046 sectors after LBA 2 inside the disk: 1 MiB - 1 KiB, no 1 MiB entry.
            assert_eq!(fits, 0);
        }
        other => panic!("{other:?}"),
    }
}
