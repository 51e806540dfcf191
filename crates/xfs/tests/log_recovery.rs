//! Log recovery against real dirty logs.
//!
//! Oracles (never our own code): `xfs_logprint -t` output recorded by
//! scripts/fixtures/xfs-log.sh (head and tail), and the kernel's own recovery of a
//! copy of each image (the sha256 of every sector outside the log that the kernel's
//! replay changed); for the corpus images, the head and tail given in
//! /work/shared/corpus/README.md.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytesource::{ByteSource, MemSource, SharedSource};
use sha2::{Digest, Sha256};
use xfs::log::{recover, LogGeometry};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn corpus(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus").join(rel);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("VMDKRECOVER_SKIP_MISSING").as_deref() == Ok("1") {
        eprintln!("SKIPPED: corpus file {} is missing", p.display());
        return None;
    }
    panic!("corpus file {} is missing (set VMDKRECOVER_SKIP_MISSING=1 to skip)", p.display());
}

fn gunzip(p: &Path) -> Vec<u8> {
    let f = std::fs::File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(f).read_to_end(&mut out).unwrap();
    out
}

fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes(b[o..o + 2].try_into().unwrap())
}
fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().unwrap())
}
fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(b[o..o + 8].try_into().unwrap())
}

/// The log geometry from the primary superblock (struct xfs_dsb, xfs_format.h),
/// computed here independently of the reader crate.
fn geometry(img: &[u8]) -> LogGeometry {
    assert_eq!(&img[0..4], b"XFSB");
    let blocksize = be32(img, 4);
    let logstart = be64(img, 48);
    let agblocks = be32(img, 84);
    let logblocks = be32(img, 96);
    let versionnum = be16(img, 100);
    let agblklog = img[124];
    let logsectsize = be16(img, 194);
    let logsunit = be32(img, 196);
    let ag = logstart >> agblklog;
    let agbno = logstart & ((1u64 << agblklog) - 1);
    LogGeometry {
        log_start_daddr: (ag * u64::from(agblocks) + agbno) * u64::from(blocksize / 512),
        log_blocks: logblocks,
        block_size: blocksize,
        log_sector_size: if logsectsize == 0 { 512 } else { u32::from(logsectsize) },
        version: if versionnum & 0x0400 != 0 { 2 } else { 1 },
        log_stripe_unit: logsunit,
        is_v5: versionnum & 0xf == 5,
        uuid: img[32..48].try_into().unwrap(),
    }
}

/// "log tail: T head: H state: <S>" from xfs_logprint -t.
fn logprint_head_tail(text: &str) -> (u64, u64, bool) {
    let line = text.lines().find(|l| l.contains("log tail:")).expect("log tail line");
    let w: Vec<&str> = line.split_whitespace().collect();
    let tail = w[w.iter().position(|&x| x == "tail:").unwrap() + 1].parse().unwrap();
    let head = w[w.iter().position(|&x| x == "head:").unwrap() + 1].parse().unwrap();
    (head, tail, line.contains("DIRTY"))
}

fn sector_digests(p: &Path) -> HashMap<u64, String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| {
            let (s, h) = l.split_once(' ').unwrap();
            (s.parse().unwrap(), h.to_string())
        })
        .collect()
}

fn run_fixture(name: &str) {
    let d = data_dir();
    let img = gunzip(&d.join(format!("{name}.img.gz")));
    let geom = geometry(&img);
    let logprint = std::fs::read_to_string(d.join(format!("{name}.logprint.txt"))).unwrap();
    let (head, tail, dirty) = logprint_head_tail(&logprint);
    assert!(dirty, "{name}: xfs_logprint says the log is dirty");
    let dev: SharedSource = Arc::new(MemSource::new(img.clone()));
    let rec = recover(dev, &geom).unwrap();
    eprintln!("{name}: {rec:?}");
    assert!(rec.was_dirty, "{name}: dirty");
    assert_eq!((rec.head_block, rec.tail_block), (head, tail), "{name}: head/tail as xfs_logprint");

    let kernel = sector_digests(&d.join(format!("{name}.kernel-sectors.txt")));
    let log_lo = geom.log_start_daddr;
    let log_hi = log_lo + u64::from(geom.log_blocks) * u64::from(geom.block_size) / 512;
    let mut matched = 0;
    let mut mismatched = Vec::new();
    for &s in &rec.changed_sectors {
        assert!(!(log_lo..log_hi).contains(&s), "{name}: replay changed log sector {s}");
        let mut b = [0u8; 512];
        rec.device.read_at(s * 512, &mut b).unwrap();
        let ours = hex(&Sha256::digest(b));
        match kernel.get(&s) {
            Some(k) if *k == ours => matched += 1,
            _ => mismatched.push(s),
        }
    }
    let missed: Vec<u64> = kernel.keys().copied().filter(|s| !rec.changed_sectors.contains(s)).collect();
    eprintln!(
        "{name}: {} sectors changed by us, {matched} equal to the kernel's, mismatched {:?}; kernel-only sectors {}: {:?}",
        rec.changed_sectors.len(),
        mismatched,
        missed.len(),
        &missed[..missed.len().min(40)]
    );
    // Sectors nobody changed read as before.
    let unchanged: Vec<u64> = (0..(img.len() as u64 / 512))
        .filter(|s| !rec.changed_sectors.contains(s))
        .step_by(97)
        .collect();
    for s in unchanged {
        let mut b = [0u8; 512];
        rec.device.read_at(s * 512, &mut b).unwrap();
        assert_eq!(&b[..], &img[s as usize * 512..s as usize * 512 + 512]);
    }
    assert!(mismatched.is_empty(), "{name}: sectors differing from the kernel's recovery: {mismatched:?}");
    assert!(matched > 0);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn fixture_v5() {
    run_fixture("log-v5");
}

#[test]
fn fixture_v5_wrap() {
    run_fixture("log-v5-wrap");
}

#[test]
fn fixture_v5_4k_sectors() {
    run_fixture("log-v5-4ksect");
}

fn corpus_case(rel: &str, head: u64, tail: u64) -> Option<xfs::log::Recovery> {
    let p = corpus(rel)?;
    let img = gunzip(&p);
    let geom = geometry(&img);
    let dev: SharedSource = Arc::new(MemSource::new(img));
    let rec = recover(dev, &geom).unwrap();
    eprintln!("{rel}: {rec:?}");
    assert!(rec.was_dirty);
    assert_eq!((rec.head_block, rec.tail_block), (head, tail));
    Some(rec)
}

#[test]
fn corpus_symlink_test3_dirty() {
    // README: xfs_logprint tail 2, head 14, 57 items.
    if let Some(rec) = corpus_case("dissect.xfs/history-962ea73/tests/data/xfs_symlink_test3.bin.gz", 14, 2) {
        let items: u64 = rec
            .summary
            .iter()
            .find(|l| l.starts_with("log: items:"))
            .map(|l| {
                l.trim_start_matches("log: items:")
                    .split(',')
                    .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                    .sum()
            })
            .unwrap();
        assert_eq!(items, 57, "{:?}", rec.summary);
    }
}

#[test]
fn corpus_symlink_long_dirty() {
    // README: dirty, tail 159 head 170; replay removes `.file.ext.swp`.
    corpus_case("dissect.xfs/tests/_data/xfs_symlink_long.bin.gz", 170, 159);
}

#[test]
fn corpus_clean_log() {
    // README: xfs.bin.gz has a clean log.
    if let Some(p) = corpus("dissect.xfs/tests/_data/xfs.bin.gz") {
        let img = gunzip(&p);
        let geom = geometry(&img);
        let dev: SharedSource = Arc::new(MemSource::new(img));
        let rec = recover(dev.clone(), &geom).unwrap();
        assert!(!rec.was_dirty);
        assert!(rec.changed_sectors.is_empty());
        assert_eq!(rec.head_block, rec.tail_block);
    }
}
