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
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus")
        .join(rel);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("VMDKRECOVER_SKIP_MISSING").as_deref() == Ok("1") {
        eprintln!("SKIPPED: corpus file {} is missing", p.display());
        return None;
    }
    panic!(
        "corpus file {} is missing (set VMDKRECOVER_SKIP_MISSING=1 to skip)",
        p.display()
    );
}

fn gunzip(p: &Path) -> Vec<u8> {
    let f = std::fs::File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut out)
        .unwrap();
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
        log_sector_size: if logsectsize == 0 {
            512
        } else {
            u32::from(logsectsize)
        },
        version: if versionnum & 0x0400 != 0 { 2 } else { 1 },
        log_stripe_unit: logsunit,
        is_v5: versionnum & 0xf == 5,
        uuid: img[32..48].try_into().unwrap(),
    }
}

/// "log tail: T head: H state: <S>" from xfs_logprint -t.
fn logprint_head_tail(text: &str) -> (u64, u64, bool) {
    let line = text
        .lines()
        .find(|l| l.contains("log tail:"))
        .expect("log tail line");
    let w: Vec<&str> = line.split_whitespace().collect();
    let tail = w[w.iter().position(|&x| x == "tail:").unwrap() + 1]
        .parse()
        .unwrap();
    let head = w[w.iter().position(|&x| x == "head:").unwrap() + 1]
        .parse()
        .unwrap();
    (head, tail, line.contains("DIRTY"))
}

/// What `xfs_logprint -t` lists: the number of committed transactions, the sum
/// of their headers' #items, and the items by type ("BUF:", "INO:", ... at the
/// start of a line), in our summary's names.
fn logprint_items(text: &str) -> (u64, u64, Vec<(String, u64)>) {
    let mut trans = 0;
    let mut header_items = 0;
    let mut by: std::collections::BTreeMap<String, u64> = Default::default();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("TRANS:") {
            trans += 1;
            let n = rest
                .split_whitespace()
                .find_map(|w| w.strip_prefix("#items:"))
                .unwrap();
            header_items += n.parse::<u64>().unwrap();
            continue;
        }
        let name = match l.split(':').next().unwrap_or("") {
            "BUF" => "buffer",
            "INO" => "inode",
            "ICR" => "icreate",
            "EFI" => "EFI",
            "EFD" => "EFD",
            "RUI" => "RUI",
            "RUD" => "RUD",
            "CUI" => "CUI",
            "CUD" => "CUD",
            "BUI" => "BUI",
            "BUD" => "BUD",
            "DQUOT" => "dquot",
            _ => continue,
        };
        *by.entry(name.to_string()).or_default() += 1;
    }
    (trans, header_items, by.into_iter().collect())
}

/// Our summary's "log: items: buffer 6, inode 15" and header count lines.
fn our_items(rec: &xfs::log::Recovery) -> (u64, u64, Vec<(String, u64)>) {
    let line = |p: &str| {
        rec.summary
            .iter()
            .find(|l| l.starts_with(p))
            .cloned()
            .unwrap_or_default()
    };
    let trans = line("log: ")
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    let hdr = line("log: transaction headers count")
        .split_whitespace()
        .nth(4)
        .unwrap()
        .parse()
        .unwrap();
    let items = line("log: items:");
    let mut by: Vec<(String, u64)> = items
        .trim_start_matches("log: items:")
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p.trim().rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    by.sort();
    (trans, hdr, by)
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
    assert_eq!(
        (rec.head_block, rec.tail_block),
        (head, tail),
        "{name}: head/tail as xfs_logprint"
    );
    assert_eq!(
        our_items(&rec),
        logprint_items(&logprint),
        "{name}: transactions and items as xfs_logprint -t lists them"
    );

    let kernel = sector_digests(&d.join(format!("{name}.kernel-sectors.txt")));
    let log_lo = geom.log_start_daddr;
    let log_hi = log_lo + u64::from(geom.log_blocks) * u64::from(geom.block_size) / 512;
    let mut matched = 0;
    let mut mismatched = Vec::new();
    for &s in &rec.changed_sectors {
        assert!(
            !(log_lo..log_hi).contains(&s),
            "{name}: replay changed log sector {s}"
        );
        if s == 0 {
            continue; // the superblock is compared field by field below
        }
        let mut b = [0u8; 512];
        rec.device.read_at(s * 512, &mut b).unwrap();
        let ours = hex(&Sha256::digest(b));
        match kernel.get(&s) {
            Some(k) if *k == ours => matched += 1,
            _ => mismatched.push(s),
        }
    }
    // The kernel rewrites the superblock at mount and unmount: the lazy counters
    // (sb_icount, sb_ifree, sb_fdblocks, sb_frextents at 128..160) are recomputed from
    // the AGs, and sb_crc (224) and sb_lsn (240) follow. Every other byte must be what
    // the kernel's recovery left.
    let ksb = std::fs::read(d.join(format!("{name}.kernel-sb.bin"))).unwrap();
    let mut osb = [0u8; 512];
    rec.device.read_at(0, &mut osb).unwrap();
    let skip =
        |i: usize| (128..160).contains(&i) || (224..228).contains(&i) || (240..248).contains(&i);
    let sb_diff: Vec<usize> = (0..512).filter(|&i| !skip(i) && osb[i] != ksb[i]).collect();
    assert!(
        sb_diff.is_empty(),
        "{name}: superblock bytes differing from the kernel's: {sb_diff:?}"
    );
    let missed: Vec<u64> = kernel
        .keys()
        .copied()
        .filter(|s| !rec.changed_sectors.contains(s))
        .collect();
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
    // The kernel, after replay, frees the inodes left on the AGI unlinked lists
    // (deleted while open: xlog_recover_process_iunlinks), which runs new
    // transactions; we do not, and say so in a warning. The only sectors allowed to
    // differ are the ones that processing touches: inodes with no links left, the
    // AGI with a non-empty unlinked bucket, and inode btree blocks.
    let isize = be16(&img, 104) as usize;
    let intents = rec
        .warnings
        .iter()
        .any(|w| w.contains("unfinished extent-free intent (EFI)"));
    let unexplained: Vec<u64> = mismatched
        .iter()
        .copied()
        .filter(|&s| {
            let mut b = [0u8; 512];
            rec.device.read_at(s * 512, &mut b).unwrap();
            let unlinked_inode = b
                .chunks(isize.min(512))
                .any(|d| &d[0..2] == b"IN" && be32(d, 16) == 0 && be16(d, 2) != 0);
            let agi = &b[0..4] == b"XAGI" && (0..64).any(|i| be32(&b, 40 + 4 * i) != u32::MAX);
            let inobt = &b[0..4] == b"IAB3" || &b[0..4] == b"FIB3";
            // Unfinished extent-free intents, which the kernel finishes at mount
            // (xlog_recover_process_intents) and we report: the blocks that work
            // touches are the AGF and AGFL, the free-space and reverse-mapping
            // btrees, and the bmbt blocks of the file being freed.
            let intent_work = intents
                && [&b"XAGF"[..], b"XAFL", b"AB3B", b"AB3C", b"RMB3", b"BMA3"].contains(&&b[0..4]);
            !(unlinked_inode || agi || inobt || intent_work)
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "{name}: sectors differing from the kernel's recovery: {unexplained:?}"
    );
    if !mismatched.is_empty() {
        assert!(
            rec.warnings
                .iter()
                .any(|w| w.contains("unlinked inode list")),
            "{name}: unlinked inodes reported: {:?}",
            rec.warnings
        );
    }
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

#[test]
fn fixture_v5_log_stripe_unit_legacy_timestamps_nrext64() {
    run_fixture("log-v5-lsunit");
}

/// A file of about 5000 extents removed just before the crash: the log holds
/// extent-free intents (EFIs) without their done items and the inode on the AGI
/// unlinked list (xfs_logprint shows the EFI; the kernel finishes both at mount).
#[test]
fn fixture_unfinished_extent_free_intent() {
    run_fixture("log-intent");
    let d = data_dir();
    let logprint = std::fs::read_to_string(d.join("log-intent.logprint.txt")).unwrap();
    let efis = logprint.matches("EFI:  #regs").count();
    assert!(efis > 0, "xfs_logprint lists an EFI");
    let img = gunzip(&d.join("log-intent.img.gz"));
    let geom = geometry(&img);
    let rec = recover(Arc::new(MemSource::new(img)), &geom).unwrap();
    let ours = rec
        .warnings
        .iter()
        .filter(|w| w.contains("unfinished extent-free intent (EFI)"))
        .count();
    assert_eq!(
        ours, efis,
        "one warning per unfinished EFI: {:?}",
        rec.warnings
    );
}

fn corpus_case(
    rel: &str,
    listing: &str,
    head: u64,
    tail: u64,
) -> Option<(xfs::log::Recovery, Vec<u8>)> {
    let p = corpus(rel)?;
    let img = gunzip(&p);
    let geom = geometry(&img);
    let dev: SharedSource = Arc::new(MemSource::new(img.clone()));
    let rec = recover(dev, &geom).unwrap();
    eprintln!("{rel}: {rec:?}");
    assert!(rec.was_dirty);
    assert_eq!(
        (rec.head_block, rec.tail_block),
        (head, tail),
        "{rel}: head/tail as the corpus README says"
    );
    let lp = std::fs::read_to_string(data_dir().join(listing)).unwrap();
    assert_eq!(logprint_head_tail(&lp), (head, tail, true));
    assert_eq!(
        our_items(&rec),
        logprint_items(&lp),
        "{rel}: transactions and items as xfs_logprint -t lists them"
    );
    Some((rec, img))
}

#[test]
fn corpus_symlink_test3_dirty() {
    // README: xfs_logprint tail 2, head 14, 57 items (the transaction header's count).
    if let Some((rec, _)) = corpus_case(
        "dissect.xfs/history-962ea73/tests/data/xfs_symlink_test3.bin.gz",
        "log-corpus-symlink-test3.logprint.txt",
        14,
        2,
    ) {
        assert_eq!(our_items(&rec).1, 57, "{:?}", rec.summary);
        assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
    }
}

/// The names in a shortform directory inode (xfs_dir2_sf_hdr + entries with
/// ftype, libxfs/xfs_da_format.h), read from the device at the inode's place.
fn shortform_names(dev: &dyn ByteSource, sb: &[u8], ino: u64) -> Vec<Vec<u8>> {
    let isize = be16(sb, 104) as u64;
    let inopblog = sb[123] as u32;
    let agblklog = sb[124] as u32;
    let bsize = be32(sb, 4) as u64;
    let agblocks = be32(sb, 84) as u64;
    let agno = ino >> (agblklog + inopblog);
    let agino = ino & ((1 << (agblklog + inopblog)) - 1);
    let off =
        (agno * agblocks + (agino >> inopblog)) * bsize + (agino & ((1 << inopblog) - 1)) * isize;
    let mut d = vec![0u8; isize as usize];
    dev.read_at(off, &mut d).unwrap();
    assert_eq!(&d[0..2], b"IN");
    assert_eq!(d[5], 1, "local format");
    let size = be64(&d, 56) as usize;
    let sf = &d[176..176 + size];
    let (count, i8) = (sf[0] as usize, sf[1]);
    let inosz = if i8 != 0 { 8 } else { 4 };
    let mut p = 2 + inosz;
    let mut out = Vec::new();
    for _ in 0..count {
        let nl = sf[p] as usize;
        out.push(sf[p + 3..p + 3 + nl].to_vec());
        p += 3 + nl + 1 + inosz;
    }
    out
}

#[test]
fn corpus_symlink_long_dirty() {
    // README: dirty, tail 159 head 170; after the kernel's replay `.file.ext.swp` is
    // gone, while the unreplayed directory still lists it.
    if let Some((rec, img)) = corpus_case(
        "dissect.xfs/tests/_data/xfs_symlink_long.bin.gz",
        "log-corpus-symlink-long.logprint.txt",
        170,
        159,
    ) {
        // Inode 11086 is /path/to/dir/with (xfs_db -r -c 'path /path/to/dir/with').
        let swp = b".file.ext.swp".to_vec();
        let before = shortform_names(&MemSource::new(img.clone()), &img, 11086);
        assert!(
            before.contains(&swp),
            "unreplayed directory lists the swap file: {before:?}"
        );
        let after = shortform_names(&*rec.device, &img, 11086);
        assert!(
            !after.contains(&swp),
            "replayed directory no longer lists it: {after:?}"
        );
        assert_eq!(after, vec![b"file.ext".to_vec()]);
    }
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

fn unzstd(p: &Path) -> Vec<u8> {
    let f = std::fs::File::open(p).unwrap();
    let mut out = Vec::new();
    ruzstd::decoding::StreamingDecoder::new(f)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn clean_zst(rel: &str, listing: &str) {
    let Some(p) = corpus(rel) else { return };
    let img = unzstd(&p);
    let geom = geometry(&img);
    let dev: SharedSource = Arc::new(MemSource::new(img));
    let rec = recover(dev, &geom).unwrap();
    let lp = std::fs::read_to_string(data_dir().join(listing)).unwrap();
    let (head, tail, dirty) = logprint_head_tail(&lp);
    assert!(!dirty && lp.contains("<CLEAN>"));
    assert!(!rec.was_dirty, "{rel}: {rec:?}");
    assert_eq!(
        (rec.head_block, rec.tail_block),
        (head, tail),
        "{rel}: head/tail as xfs_logprint"
    );
    assert!(rec.changed_sectors.is_empty());
}

#[test]
fn corpus_clean_v4_512_byte_blocks() {
    // README: xfsv4.img.zst is V4 with 512-byte blocks, clean.
    clean_zst(
        "xfuse/resources/xfsv4.img.zst",
        "log-corpus-xfsv4.logprint.txt",
    );
}

#[test]
fn corpus_clean_4k_sectors() {
    // README: xfs_4kn.img.zst is V5 with 4 KiB sectors (logsectsize 4096), clean.
    clean_zst(
        "xfuse/resources/xfs_4kn.img.zst",
        "log-corpus-4kn.logprint.txt",
    );
}

fn fixture_image(name: &str) -> (Vec<u8>, LogGeometry) {
    let img = gunzip(&data_dir().join(format!("{name}.img.gz")));
    let geom = geometry(&img);
    (img, geom)
}

#[test]
fn damaged_record_stops_replay_with_a_warning() {
    // One flipped byte in the first record's data (the tail is at log block 47 as
    // xfs_logprint says): its CRC no longer matches, so nothing after it may be
    // replayed (the kernel refuses to mount a v5 log with a bad record that is not
    // a torn write at the head).
    let (mut img, geom) = fixture_image("log-v5");
    let lp = std::fs::read_to_string(data_dir().join("log-v5.logprint.txt")).unwrap();
    let (_, tail, _) = logprint_head_tail(&lp);
    let at = (geom.log_start_daddr + tail + 3) as usize * 512 + 100;
    img[at] ^= 0x40;
    let dev: SharedSource = Arc::new(MemSource::new(img));
    let rec = recover(dev, &geom).unwrap();
    assert!(rec.was_dirty);
    assert!(
        rec.warnings
            .iter()
            .any(|w| w.contains("bad CRC") && w.contains(&format!("log block {tail}"))),
        "{:?}",
        rec.warnings
    );
    assert!(
        rec.changed_sectors.is_empty(),
        "nothing replayed past a bad record"
    );
}

#[test]
fn garbage_log_is_an_error() {
    let (mut img, geom) = fixture_image("log-v5");
    let start = geom.log_start_daddr as usize * 512;
    let len = geom.log_blocks as usize * geom.block_size as usize;
    for (i, b) in img[start..start + len].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31) ^ 0xab;
    }
    let dev: SharedSource = Arc::new(MemSource::new(img));
    let err = recover(dev, &geom).unwrap_err();
    assert!(err.to_string().starts_with("log"), "{err}");
}

#[test]
fn log_outside_the_device_is_an_error() {
    let (img, mut geom) = fixture_image("log-v5");
    geom.log_start_daddr = img.len() as u64 / 512 - 8;
    let dev: SharedSource = Arc::new(MemSource::new(img));
    let err = recover(dev, &geom).unwrap_err();
    assert!(err.to_string().contains("runs past the end"), "{err}");
}
