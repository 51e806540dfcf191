//! Hostile input: small images built here to the published layouts (VMware "Virtual
//! Disk Format 5.0" sparse header; qemu `block/vmdk.c` for COWD and SESparse), then
//! damaged field by field. Every case must end in a clear error or correct bytes,
//! never a panic, a hang or a huge allocation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use bytesource::{ByteSource, MemSource, SharedSource};
use std::io::Write;
use std::sync::Arc;
use vmdk::Disk;

const S: usize = 512;

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn open(b: &[u8]) -> Result<Disk, vmdk::Error> {
    let src: SharedSource = Arc::new(MemSource::new(b.to_vec()));
    Disk::from_source(src)
}

fn read_all(d: &Disk) -> std::io::Result<Vec<u8>> {
    let mut v = vec![0u8; usize::try_from(d.len()).unwrap()];
    d.read_at(0, &mut v)?;
    Ok(v)
}

/// Content of virtual grain `g` (4 KiB grains).
fn grain_data(g: usize) -> Vec<u8> {
    (0..4096).map(|i| (g * 7 + i / 512) as u8 ^ 0x5a).collect()
}

/// A hosted sparse image: 64 grains of 8 sectors, 16 GTEs per table (4 tables).
/// Sector 0 header, 1 redundant GD, 2-5 redundant GTs, 6 GD, 7-10 GTs, 11.. grains.
/// Grains listed in `allocated` are stored in that order; grain 5 is marked zeroed (1).
struct Sparse {
    bytes: Vec<u8>,
}

impl Sparse {
    fn new(allocated: &[usize], compressed: bool) -> Sparse {
        let mut b = vec![0u8; 11 * S];
        b[0..4].copy_from_slice(b"KDMV");
        put32(&mut b, 4, 1);
        let flags = 3 | 4 | if compressed { (1 << 16) | (1 << 17) } else { 0 };
        put32(&mut b, 8, flags);
        put64(&mut b, 12, 64 * 8); // capacity
        put64(&mut b, 20, 8); // grain
        put32(&mut b, 44, 16); // GTEs per GT
        put64(&mut b, 48, 1); // rgd
        put64(&mut b, 56, 6); // gd
        put64(&mut b, 64, 11); // overhead
        b[73..77].copy_from_slice(b"\n \r\n");
        b[77] = u8::from(compressed);
        for t in 0..4 {
            put32(&mut b, S + 4 * t, 2 + t as u32);
            put32(&mut b, 6 * S + 4 * t, 7 + t as u32);
        }
        let gte = |b: &mut Vec<u8>, g: usize, v: u32| {
            put32(b, (2 + g / 16) * S + 4 * (g % 16), v);
            put32(b, (7 + g / 16) * S + 4 * (g % 16), v);
        };
        gte(&mut b, 5, 1);
        for &g in allocated {
            let sector = (b.len() / S) as u32;
            gte(&mut b, g, sector);
            if compressed {
                let mut z =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                z.write_all(&grain_data(g)).unwrap();
                let z = z.finish().unwrap();
                let mut m = vec![0u8; 12];
                put64(&mut m, 0, (g * 8) as u64);
                put32(&mut m, 8, z.len() as u32);
                m.extend(z);
                m.resize(m.len().div_ceil(S) * S, 0);
                b.extend(m);
            } else {
                b.extend(grain_data(g));
            }
        }
        Sparse { bytes: b }
    }

    fn expected(allocated: &[usize]) -> Vec<u8> {
        let mut v = vec![0u8; 64 * 4096];
        for &g in allocated {
            if g != 5 {
                v[g * 4096..(g + 1) * 4096].copy_from_slice(&grain_data(g));
            }
        }
        v
    }
}

const ALLOC: &[usize] = &[0, 1, 2, 17, 16, 40, 63];

#[test]
fn built_sparse_reads_back() {
    for compressed in [false, true] {
        let s = Sparse::new(ALLOC, compressed);
        let d = open(&s.bytes).unwrap();
        assert_eq!(
            read_all(&d).unwrap(),
            Sparse::expected(ALLOC),
            "{compressed}"
        );
        let runs = d.allocation(0, d.len()).unwrap();
        assert!(
            runs.contains(&(5 * 4096, 4096, vmdk::Allocation::Zero)),
            "{runs:?}"
        );
    }
}

#[test]
fn damaged_primary_gd_falls_back_to_redundant() {
    let mut s = Sparse::new(ALLOC, false);
    put32(&mut s.bytes, 6 * S + 4, 0x00ff_ffff); // GT 1 past EOF
    let d = open(&s.bytes).unwrap();
    assert_eq!(read_all(&d).unwrap(), Sparse::expected(ALLOC));
    let w = d.warnings().join("\n");
    assert!(w.contains("redundant grain directory"), "{w}");
    // Both damaged: a clear error naming the table.
    put32(&mut s.bytes, S + 4, 0x00ff_ffff);
    let e = open(&s.bytes).unwrap_err().to_string();
    assert!(e.contains("grain directory entry 1"), "{e}");
    // GD offset itself past the end.
    let mut s = Sparse::new(ALLOC, false);
    put64(&mut s.bytes, 56, 1 << 40);
    put64(&mut s.bytes, 48, 0);
    let e = open(&s.bytes).unwrap_err().to_string();
    assert!(e.contains("past the end"), "{e}");
}

#[test]
fn bad_grain_sizes_and_table_sizes() {
    for grain in [0u64, 3, 1 << 40, u64::MAX] {
        let mut s = Sparse::new(ALLOC, false);
        put64(&mut s.bytes, 20, grain);
        let e = open(&s.bytes).unwrap_err().to_string();
        assert!(e.contains("grain size"), "{grain}: {e}");
    }
    for gtes in [0u32, 1 << 30, u32::MAX] {
        let mut s = Sparse::new(ALLOC, false);
        put32(&mut s.bytes, 44, gtes);
        let e = open(&s.bytes).unwrap_err().to_string();
        assert!(e.contains("grain table entries"), "{gtes}: {e}");
    }
}

#[test]
fn huge_capacity_is_refused_without_allocating() {
    for cap in [u64::MAX, u64::MAX / 512, 1 << 50] {
        let mut s = Sparse::new(ALLOC, false);
        put64(&mut s.bytes, 12, cap);
        assert!(open(&s.bytes).is_err(), "{cap}");
    }
}

#[test]
fn gte_past_eof_fails_the_read_only() {
    let mut s = Sparse::new(ALLOC, false);
    put32(&mut s.bytes, 7 * S + 4 * 2, 0x7fff_0000); // grain 2 far away
    let d = open(&s.bytes).unwrap();
    let mut b = vec![0u8; 4096];
    d.read_at(0, &mut b).unwrap();
    let e = d.read_at(2 * 4096, &mut b).unwrap_err().to_string();
    assert!(e.contains("past the end"), "{e}");
}

#[test]
fn bad_versions_and_compression() {
    let mut s = Sparse::new(ALLOC, false);
    put32(&mut s.bytes, 4, 4);
    assert!(open(&s.bytes)
        .unwrap_err()
        .to_string()
        .contains("version 4"));
    let mut s = Sparse::new(ALLOC, false);
    s.bytes[77] = 9;
    assert!(open(&s.bytes)
        .unwrap_err()
        .to_string()
        .contains("compression"));
}

#[test]
fn damaged_compressed_grains() {
    let s = Sparse::new(ALLOC, true);
    let first = 11 * S; // grain 0's marker
                        // Marker size 0, size larger than two grains, garbage zlib data.
    for (at, val) in [(first + 8, 0u32), (first + 8, 1 << 20)] {
        let mut b = s.bytes.clone();
        put32(&mut b, at, val);
        let d = open(&b).unwrap();
        let e = read_all(&d).unwrap_err().to_string();
        assert!(e.contains("grain marker"), "{e}");
    }
    let mut b = s.bytes.clone();
    b[first + 12..first + 40].fill(0xff);
    let d = open(&b).unwrap();
    assert!(read_all(&d)
        .unwrap_err()
        .to_string()
        .contains("does not inflate"));
    // A grain that inflates to more than the grain size.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&vec![7u8; 1 << 20]).unwrap();
    let z = z.finish().unwrap();
    let mut b = s.bytes.clone();
    put32(&mut b, first + 8, z.len() as u32);
    b.splice(first + 12..first + 12, z);
    let d = open(&b).unwrap();
    assert!(read_all(&d)
        .unwrap_err()
        .to_string()
        .contains("more than the grain size"));
}

/// Cheap deterministic fuzzing: truncations and byte flips never panic.
#[test]
fn truncations_and_flips_never_panic() {
    let images = [
        Sparse::new(ALLOC, false).bytes,
        Sparse::new(ALLOC, true).bytes,
        cowd_image(),
        sesparse_image(false),
    ];
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for img in &images {
        for cut in (0..img.len()).step_by(97) {
            if let Ok(d) = open(&img[..cut]) {
                let _ = read_all(&d);
            }
        }
        for _ in 0..400 {
            let mut b = img.clone();
            for _ in 0..4 {
                let at = (next() % 1024.min(b.len() as u64)) as usize;
                b[at] = next() as u8;
            }
            if let Ok(d) = open(&b) {
                if d.len() <= 4 << 20 {
                    let _ = read_all(&d);
                }
                let _ = d.allocation(0, d.len());
            }
        }
    }
}

/// A COWD file: 1024 sectors, 2-sector grains, one 4096-entry table (qemu
/// `VMDK3Header`: magic, version, flags, numSectors, grainSize, gdOffset,
/// numGDEntries, freeSector).
fn cowd_image() -> Vec<u8> {
    let mut b = vec![0u8; 4 * S];
    b[0..4].copy_from_slice(b"COWD");
    put32(&mut b, 4, 1);
    put32(&mut b, 8, 3);
    put32(&mut b, 12, 1024);
    put32(&mut b, 16, 2);
    put32(&mut b, 20, 1);
    put32(&mut b, 24, 1);
    put32(&mut b, S, 2); // GD[0] -> GT at sector 2
    b.resize(2 * S + 4096 * 4, 0);
    for (g, fill) in [(0usize, 0xa0u8), (3, 0xa3), (511, 0xff)] {
        let sector = (b.len() / S) as u32;
        put32(&mut b, 2 * S + 4 * g, sector);
        b.extend(vec![fill; 2 * S]);
    }
    let free = (b.len() / S) as u32;
    put32(&mut b, 28, free);
    b
}

#[test]
fn cowd_reads_and_refuses_damage() {
    let img = cowd_image();
    let d = open(&img).unwrap();
    assert_eq!(d.len(), 1024 * 512);
    let all = read_all(&d).unwrap();
    assert!(all[..1024].iter().all(|&x| x == 0xa0));
    assert!(all[1024..3 * 1024].iter().all(|&x| x == 0));
    assert!(all[3 * 1024..4 * 1024].iter().all(|&x| x == 0xa3));
    assert!(all[511 * 1024..].iter().all(|&x| x == 0xff));
    let mut b = img.clone();
    put32(&mut b, 16, 0);
    assert!(open(&b).unwrap_err().to_string().contains("grain size"));
    let mut b = img.clone();
    put32(&mut b, 20, 0x00ff_ffff);
    assert!(open(&b).unwrap_err().to_string().contains("past the end"));
    let mut b = img.clone();
    put32(&mut b, S, 0x00ff_ffff);
    assert!(open(&b).unwrap_err().to_string().contains("past the end"));
    let mut b = img.clone();
    put32(&mut b, 4, 2);
    assert!(open(&b).unwrap_err().to_string().contains("version"));
    // numGDEntries absurd: only what the capacity needs is read.
    let mut b = img;
    put32(&mut b, 24, u32::MAX);
    assert!(open(&b).is_ok());
}

/// An SESparse file: 2048 sectors of 8-sector grains, 64-sector tables (4096 entries).
fn sesparse_image(big: bool) -> Vec<u8> {
    let mut b = vec![0u8; 4 * S];
    put64(&mut b, 0, 0xcafe_babe);
    put64(&mut b, 8, 0x2_0000_0001);
    put64(&mut b, 16, 2048);
    put64(&mut b, 24, 8);
    put64(&mut b, 32, 64);
    put64(&mut b, 80, 1); // volatile header
    put64(&mut b, 88, 1);
    put64(&mut b, 128, 2); // GD at sector 2, 1 sector
    put64(&mut b, 136, 1);
    put64(&mut b, 144, 3); // tables from sector 3
    put64(&mut b, 152, 64);
    put64(&mut b, 192, 67); // grains from sector 67
    put64(&mut b, S, 0xcafe_cafe);
    put64(&mut b, 2 * S, 0x1000_0000_0000_0000); // GD[0] -> table 0
    b.resize(67 * S, 0);
    let gt = 3 * S;
    // grain 0 -> grain #1, grain 1 -> zero, grain 2 -> grain #0, grain 200 -> #4097
    put64(&mut b, gt, 0x3001_0000_0000_0000);
    put64(&mut b, gt + 8, 0x2000_0000_0000_0000);
    put64(&mut b, gt + 16, 0x3000_0000_0000_0000);
    // grain number = bits 48..59 | bits 0..47 << 12 (qemu get_cluster_offset)
    let g = |n: usize| 67 * S + n * 4096;
    if big {
        put64(&mut b, gt + 200 * 8, 0x3001_0000_0000_0001);
        b.resize(g(4098), 0);
        b[g(4097)..g(4098)].fill(0x41);
    } else {
        b.resize(g(2), 0);
    }
    b[g(0)..g(1)].fill(0x20);
    b[g(1)..g(2)].fill(0x21);
    b
}

#[test]
fn sesparse_reads_and_refuses_damage() {
    let img = sesparse_image(true);
    let d = open(&img).unwrap();
    let all = read_all(&d).unwrap();
    assert!(all[..4096].iter().all(|&x| x == 0x21));
    assert!(all[4096..8192].iter().all(|&x| x == 0));
    assert!(all[8192..12288].iter().all(|&x| x == 0x20));
    assert!(all[200 * 4096..201 * 4096].iter().all(|&x| x == 0x41));
    assert!(all[12288..200 * 4096].iter().all(|&x| x == 0));
    let mut b = img.clone();
    put64(&mut b, 2 * S, 0x2000_0000_0000_0000);
    assert!(open(&b)
        .unwrap_err()
        .to_string()
        .contains("grain directory entry 0"));
    let mut b = img.clone();
    put64(&mut b, 3 * S, 0x5000_0000_0000_0000);
    let d = open(&b).unwrap();
    assert!(read_all(&d)
        .unwrap_err()
        .to_string()
        .contains("unknown entry type"));
    let mut b = img.clone();
    put64(&mut b, 8, 1);
    assert!(open(&b).unwrap_err().to_string().contains("version"));
    let mut b = img;
    put64(&mut b, S + 24, 1); // journal needs replay: read with a warning
    let d = open(&b).unwrap();
    assert!(d.warnings().join(" ").contains("journal"));
}

#[test]
fn huge_text_descriptor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.vmdk");
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(b"# Disk DescriptorFile\nversion=1\n").unwrap();
    f.set_len(64 << 20).unwrap();
    let e = Disk::open(&p).unwrap_err().to_string();
    assert!(
        e.starts_with("big.vmdk: starts like a text descriptor"),
        "{e}"
    );
}

#[test]
fn rdm_and_unknown_extents_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rdm.vmdk");
    std::fs::write(dir.path().join("rdm-rdmp.vmdk"), b"").unwrap();
    std::fs::write(
        &p,
        "# Disk DescriptorFile\nversion=1\ncreateType=\"vmfsPassthroughRawDeviceMap\"\nRW 2048 VMFSRDM \"rdm-rdmp.vmdk\"\n",
    )
    .unwrap();
    let e = Disk::open(&p).unwrap_err().to_string();
    assert!(e.contains("raw device mapping"), "{e}");
    std::fs::write(
        &p,
        "# Disk DescriptorFile\nversion=1\n\nRW 10 BOGUS \"x\"\n",
    )
    .unwrap();
    let e = Disk::open(&p).unwrap_err().to_string();
    assert_eq!(e, "rdm.vmdk: descriptor line 4: unknown extent type BOGUS");
}
