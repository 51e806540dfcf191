//! Structure-aware GPT fuzzing: the input chooses the header fields (sector size,
//! entry size and count, entry array and usable LBAs, alternate LBA), the entry
//! bytes, a backup copy and a hybrid MBR entry; the harness lays them out to the
//! UEFI layout and recomputes the header and entry-array CRC32s, so the reader
//! gets past its checksums into the field checks and the entry parsing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partitions::crc32::crc32;

const CTL: usize = 40;

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn put(disk: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(dst) = disk.get_mut(off..off.saturating_add(bytes.len())) {
        dst.copy_from_slice(bytes);
    }
}

/// A header (92 bytes, CRC filled in) for the given fields.
#[allow(clippy::too_many_arguments)]
fn header(
    my: u64,
    alt: u64,
    first: u64,
    last: u64,
    guid: &[u8],
    lba: u64,
    count: u32,
    esize: u32,
    ecrc: u32,
) -> Vec<u8> {
    let mut h = Vec::with_capacity(92);
    h.extend_from_slice(b"EFI PART");
    h.extend_from_slice(&0x0001_0000u32.to_le_bytes());
    h.extend_from_slice(&92u32.to_le_bytes());
    h.extend_from_slice(&[0; 8]); // CRC, reserved
    for v in [my, alt, first, last] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h.extend_from_slice(&guid[..16]);
    h.extend_from_slice(&lba.to_le_bytes());
    h.extend_from_slice(&count.to_le_bytes());
    h.extend_from_slice(&esize.to_le_bytes());
    h.extend_from_slice(&ecrc.to_le_bytes());
    let c = crc32(&h);
    h[16..20].copy_from_slice(&c.to_le_bytes());
    h
}

/// CRC of `count * esize` bytes at `off`, as far as the disk holds them.
fn array_crc(disk: &[u8], off: usize, count: u32, esize: u32) -> u32 {
    let len = (count as usize).saturating_mul(esize as usize);
    disk.get(off..off.saturating_add(len))
        .map(crc32)
        .unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < CTL {
        return;
    }
    let (ctl, entries) = data.split_at(CTL);
    let ss: usize = if ctl[0] & 1 == 0 { 512 } else { 4096 };
    let sectors = 40 + usize::from(ctl[1] % 64);
    let last_lba = (sectors - 1) as u64;
    let mut disk = vec![0u8; ss * sectors];
    // Protective MBR, plus a hybrid entry when asked.
    let mut mbr = [0u8; 512];
    mbr[446 + 4] = 0xee;
    mbr[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    mbr[446 + 12..446 + 16].copy_from_slice(&(last_lba as u32).to_le_bytes());
    if ctl[2] & 1 != 0 {
        mbr[462 + 4] = 0x83;
        mbr[462 + 8..462 + 16].copy_from_slice(&ctl[32..40]);
    }
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    put(&mut disk, 0, &mbr);
    let esize = match ctl[3] % 5 {
        0 | 1 => 128,
        2 => 256,
        3 => 512,
        _ => u32_at(ctl, 4),
    };
    let count = if ctl[8] & 0x80 == 0 {
        u32::from(ctl[9])
    } else {
        u32_at(ctl, 10)
    };
    let lba = if ctl[14] & 1 == 0 {
        2
    } else {
        u64::from(ctl[15])
    };
    // Mostly small; sometimes any u64 (a usable area far past the disk).
    let first = if ctl[39] & 1 == 0 {
        u64::from(ctl[16])
    } else {
        u64::from_le_bytes(ctl[24..32].try_into().unwrap_or_default())
    };
    let last = last_lba.saturating_sub(u64::from(ctl[17]));
    let alt = if ctl[18] & 1 == 0 {
        last_lba
    } else {
        u64::from(ctl[19])
    };
    put(&mut disk, lba as usize * ss, entries);
    let ecrc = array_crc(&disk, lba as usize * ss, count, esize);
    let guid = &ctl[20..36];
    put(
        &mut disk,
        ss,
        &header(1, alt, first, last, guid, lba, count, esize, ecrc),
    );
    if ctl[36] & 1 != 0 {
        // Backup: the same array just before the last LBA, and its header.
        let len = (count as usize)
            .saturating_mul(esize as usize)
            .min(entries.len());
        let blba = last_lba.saturating_sub(len.div_ceil(ss) as u64);
        put(&mut disk, blba as usize * ss, &entries[..len]);
        let bcrc = array_crc(&disk, blba as usize * ss, count, esize);
        let h = header(last_lba, 1, first, last, guid, blba, count, esize, bcrc);
        put(&mut disk, last_lba as usize * ss, &h);
    }
    if ctl[37] & 1 != 0 {
        // Damage the primary so the backup path runs.
        let i = ss + usize::from(ctl[38] % 92);
        disk[i] ^= 0xff;
    }
    let src = bytesource::MemSource::new(disk);
    if let Ok(Some(t)) = partitions::detect(&src) {
        for w in &t.warnings {
            let _ = w.to_string();
        }
    }
});
