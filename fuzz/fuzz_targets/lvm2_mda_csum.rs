//! Structure-aware PV fuzzing: the input is a PV image (seeded from the lvm2
//! fixtures, `scripts/fuzz.sh`); after libFuzzer mutates it, the harness
//! recomputes every checksum lvm2 would have written, so the reader gets past its
//! gates into the header fields, the ring and the metadata text:
//!
//! - the text checksum of each `raw_locn` (lvm2 `calc_crc` over the text, wrapping
//!   around the ring: `lib/format_text/format-text.c`, `_vg_read_raw_area`);
//! - the metadata area header checksum (`calc_crc` over bytes 4..512,
//!   `lib/format_text/layout.h` `struct mda_header`);
//! - the label checksum (`calc_crc` over bytes 20..512 of the label sector,
//!   `lib/label/label.h` `struct label_header`).
//!
//! The CRC is written out here (lvm2's table-driven CRC-32, initial 0xf597a6cf, no
//! final inversion, `lib/misc/crc.c`), not taken from the crate under test.
#![no_main]

#[path = "common/reflected_crc.rs"]
mod reflected_crc;

use bytesource::{ByteSource, MemSource, SharedSource};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

const INITIAL_CRC: u32 = 0xf597_a6cf;
const SECTOR: usize = 512;
const MDA_HEADER_SIZE: u64 = 512;

fn calc_crc(crc: u32, data: &[u8]) -> u32 {
    reflected_crc::update(&reflected_crc::IEEE, crc, data)
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?))
}

/// The metadata areas the PV header lists: (offset, size) pairs after the data
/// area list, each list ending with a zero entry (`struct pv_header`).
fn metadata_areas(img: &[u8], pvh: usize) -> Vec<(u64, u64)> {
    let mut at = pvh + 32 + 8; // pv_uuid, device_size
    let mut lists = [Vec::new(), Vec::new()];
    for list in &mut lists {
        for _ in 0..8 {
            let (Some(o), Some(s)) = (u64_at(img, at), u64_at(img, at + 8)) else {
                return Vec::new();
            };
            at += 16;
            if o == 0 && s == 0 {
                break;
            }
            list.push((o, s));
        }
    }
    let [_, mdas] = lists;
    mdas
}

/// Recomputes one area's text checksums, then its header checksum.
fn fix_mda(img: &mut [u8], mda_off: u64) {
    let Ok(h) = usize::try_from(mda_off) else {
        return;
    };
    let Some(hdr) = img.get(h..h.saturating_add(SECTOR)).map(<[u8]>::to_vec) else {
        return;
    };
    let (Some(start), Some(size)) = (u64_at(&hdr, 24), u64_at(&hdr, 32)) else {
        return;
    };
    for slot in 0..2 {
        let rl = 40 + slot * 24;
        let (Some(off), Some(len)) = (u64_at(&hdr, rl), u64_at(&hdr, rl + 8)) else {
            return;
        };
        if len == 0 || len > 1 << 20 || off < MDA_HEADER_SIZE || off >= size {
            continue;
        }
        // First piece up to the end of the ring, the rest just after the header.
        let first = (size - off).min(len);
        let mut text = Vec::new();
        let pieces = [
            (start.saturating_add(off), first),
            (start.saturating_add(MDA_HEADER_SIZE), len - first),
        ];
        for (at, n) in pieces {
            let (Ok(a), Ok(n)) = (usize::try_from(at), usize::try_from(n)) else {
                return;
            };
            match img.get(a..a.saturating_add(n)) {
                Some(p) => text.extend_from_slice(p),
                None => return,
            }
        }
        let crc = calc_crc(INITIAL_CRC, &text);
        img[h + rl + 16..h + rl + 20].copy_from_slice(&crc.to_le_bytes());
    }
    let crc = calc_crc(INITIAL_CRC, &img[h + 4..h + SECTOR]);
    img[h..h + 4].copy_from_slice(&crc.to_le_bytes());
}

fn fix(img: &mut [u8]) {
    for sector in 0..4usize {
        let s = sector * SECTOR;
        let Some(lab) = img.get(s..s + SECTOR) else {
            return;
        };
        if &lab[..8] != b"LABELONE" {
            continue;
        }
        let Some(xl) = u32_at(lab, 20) else { return };
        let xl = xl as usize;
        if xl >= SECTOR {
            return;
        }
        for (off, _) in metadata_areas(img, s + xl).into_iter().take(2) {
            fix_mda(img, off);
        }
        let crc = calc_crc(INITIAL_CRC, &img[s + 20..s + SECTOR]);
        img[s + 16..s + 20].copy_from_slice(&crc.to_le_bytes());
        return;
    }
}

fuzz_target!(|data: &[u8]| {
    let mut img = data.to_vec();
    // FUZZ_CSUM_DEBUG=1: say how many bytes fix() changed (0 on an unmutated seed
    // shows the harness computes the checksums as the real tools wrote them).
    let unchanged = std::env::var_os("FUZZ_CSUM_DEBUG").map(|_| img.clone());
    fix(&mut img);
    if let Some(unchanged) = &unchanged {
        let n = img.iter().zip(unchanged).filter(|(a, b)| a != b).count();
        eprintln!("fix() changed {n} bytes");
    }
    let source: SharedSource = Arc::new(MemSource::new(img));
    let scan = lvm2::scan(&[lvm2::Device {
        name: "fuzz".to_string(),
        source,
    }]);
    for w in scan.warnings.iter().chain(&scan.errors) {
        let _ = w.len();
    }
    for vg in &scan.vgs {
        for info in vg.lvs() {
            if let Ok(lv) = vg.open_lv(&info.name) {
                let mut buf = vec![0u8; 4096.min(lv.len()) as usize];
                let _ = lv.read_at(0, &mut buf);
                let _ = lv.read_at(lv.len().saturating_sub(buf.len() as u64), &mut buf);
            }
        }
    }
});
