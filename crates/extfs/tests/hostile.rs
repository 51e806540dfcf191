//! Hostile images crafted from the committed mke2fs fixtures: each test damages
//! one structure the way a reported problem did, and checks that the reader
//! answers with an error or a warning naming the object, with results bounded by
//! what the filesystem can hold, without panics or runaway time and memory.
//!
//! Oracles: the fixture's source listing (tests/data/*.tsv.gz, written from a
//! kernel mount by scripts/fixtures/extfs.sh) says which names and sizes exist;
//! debugfs (e2fsprogs) on the crafted image, where it is on PATH, says what the
//! reference tool still lists. Our own code is used only to find where to
//! damage (block numbers), never for an expected value.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use extfs::{FileRun, Filesystem};

fn fixture(name: &str) -> Vec<u8> {
    load_image(&data_dir().join(format!("{name}.img.gz"))).unwrap()
}

/// Names under `dir/` (direct children) in the fixture's kernel listing.
fn listed_children(name: &str, dir: &str) -> BTreeSet<Vec<u8>> {
    let m = read_manifest(&data_dir().join(format!("{name}.tsv.gz")));
    let prefix = format!("{dir}/").into_bytes();
    m.keys()
        .filter_map(|p| p.strip_prefix(prefix.as_slice()))
        .filter(|rest| !rest.contains(&b'/'))
        .map(<[u8]>::to_vec)
        .collect()
}

fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Device byte offset of the first data block of `path` (a directory or file).
fn first_block_offset(fs: &Filesystem, path: &str) -> u64 {
    let ino = fs.lookup(path.as_bytes()).unwrap();
    let inode = fs.inode(ino).unwrap();
    match fs.file_runs(&inode).unwrap().first() {
        Some(FileRun::Data { physical, .. }) => *physical,
        other => panic!("{path}: first run {other:?}"),
    }
}

/// (byte offset in block, rec_len, name) of each entry, following rec_len.
fn block_entries(block: &[u8]) -> Vec<(usize, usize, Vec<u8>)> {
    let mut v = Vec::new();
    let mut pos = 0;
    while pos + 8 <= block.len() {
        let rec_len = le16(block, pos + 4) as usize;
        let name_len = block[pos + 6] as usize;
        if le32(block, pos) != 0 {
            v.push((pos, rec_len, block[pos + 8..pos + 8 + name_len].to_vec()));
        }
        if rec_len == 0 {
            break;
        }
        pos += rec_len;
    }
    v
}

fn names(fs: &Filesystem, path: &str) -> BTreeSet<Vec<u8>> {
    let ino = fs.lookup(path.as_bytes()).unwrap();
    let dir = fs.inode(ino).unwrap();
    fs.read_dir(&dir)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

/// Whether a missing tool may skip a test (VMDKRECOVER_SKIP_MISSING=1).
fn skip_missing(what: &str) -> bool {
    if std::env::var("VMDKRECOVER_SKIP_MISSING").as_deref() == Ok("1") {
        eprintln!("\n*** SKIPPED: {what} ***\n");
        return true;
    }
    panic!("{what} (set VMDKRECOVER_SKIP_MISSING=1 to skip)");
}

/// Names `debugfs -R "ls -p DIR"` lists on `img` (None when debugfs is missing).
fn debugfs_ls(img: &[u8], dir: &str, tag: &str) -> Option<BTreeSet<Vec<u8>>> {
    Command::new("debugfs").arg("-V").output().ok()?;
    let path: PathBuf =
        std::env::temp_dir().join(format!("extfs-hostile-{}-{tag}.img", std::process::id()));
    std::fs::write(&path, img).unwrap();
    let out = Command::new("debugfs")
        .args(["-R", &format!("ls -p {dir}")])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    // Lines look like "/ino/mode/uid/gid/name/size/".
    let mut set = BTreeSet::new();
    for line in out.stdout.split(|&c| c == b'\n') {
        let f: Vec<&[u8]> = line.split(|&c| c == b'/').collect();
        if f.len() >= 7 && f[5] != b"." && f[5] != b".." && !f[5].is_empty() {
            set.insert(f[5].to_vec());
        }
    }
    Some(set)
}

// ---- directories ------------------------------------------------------------

/// Damages the rec_len of one entry of dir3000's first block of ext2-1k and checks
/// that the rest of the block is salvaged: every other listed name is still there,
/// nothing outside the listing appears, and the damage is reported by inode,
/// block and byte offset.
fn damaged_rec_len(rec_len: u16) {
    let name = "ext2-1k";
    let mut img = fixture(name);
    let fs = open_mem(img.clone(), false).unwrap();
    let dir_ino = fs.lookup(b"/dir3000").unwrap();
    let off = first_block_offset(&fs, "/dir3000") as usize;
    drop(fs);
    let bs = 1024;
    let entries = block_entries(&img[off..off + bs]);
    assert!(entries.len() > 12, "{} entries", entries.len());
    // The 6th entry ("." and ".." are the first two).
    let (pos, _, victim) = entries[5].clone();
    put16(&mut img, off + pos + 4, rec_len);

    let fs = open_mem(img.clone(), false).unwrap();
    let got = names(&fs, "/dir3000");
    let listed = listed_children(name, "dir3000");
    assert_eq!(listed.len(), 3000);
    let missing: Vec<_> = listed
        .iter()
        .filter(|n| **n != victim && !got.contains(*n))
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert!(missing.is_empty(), "rec_len {rec_len}: lost {missing:?}");
    let extra: Vec<_> = got.difference(&listed).collect();
    assert!(extra.is_empty(), "rec_len {rec_len}: invented {extra:?}");
    // Each salvaged entry names the inode the kernel listing gives for it.
    let rows = read_manifest(&data_dir().join(format!("{name}.tsv.gz")));
    let dir = fs.inode(dir_ino).unwrap();
    for e in fs.read_dir(&dir).unwrap() {
        let mut path = b"dir3000/".to_vec();
        path.extend_from_slice(&e.name);
        assert_eq!(rows[&path].ino, e.ino, "{}", String::from_utf8_lossy(&path));
    }
    let w = fs.warnings().join("\n");
    let want = format!(
        "inode {dir_ino}: directory block 0 (block {}): entry at byte {pos}",
        off / bs
    );
    assert!(
        w.contains(&want),
        "rec_len {rec_len}: warnings lack {want:?}:\n{w}"
    );

    // debugfs, the reference reader, lists no name we lose.
    match debugfs_ls(&img, "/dir3000", &format!("rec-len-{rec_len}")) {
        Some(theirs) => {
            let lost: Vec<_> = theirs.difference(&got).collect();
            assert!(lost.is_empty(), "debugfs lists {lost:?} that we do not");
            assert!(!theirs.is_empty());
        }
        None => {
            skip_missing("debugfs not on PATH");
        }
    }
}

#[test]
fn dir_rec_len_zero_is_salvaged() {
    damaged_rec_len(0);
}

#[test]
fn dir_rec_len_fffc_is_salvaged() {
    damaged_rec_len(0xFFFC);
}

#[test]
fn dir_rec_len_9_is_salvaged() {
    damaged_rec_len(9);
}

/// An entry whose name_len runs past its rec_len is skipped; the chain goes on.
#[test]
fn dir_name_len_too_long_skips_one_entry() {
    let name = "ext2-1k";
    let mut img = fixture(name);
    let fs = open_mem(img.clone(), false).unwrap();
    let off = first_block_offset(&fs, "/dir3000") as usize;
    drop(fs);
    let entries = block_entries(&img[off..off + 1024]);
    let (pos, _, victim) = entries[7].clone();
    img[off + pos + 6] = 250;
    let fs = open_mem(img, false).unwrap();
    let got = names(&fs, "/dir3000");
    let listed = listed_children(name, "dir3000");
    let mut want = listed.clone();
    want.remove(&victim);
    assert_eq!(got, want);
    let w = fs.warnings().join("\n");
    assert!(
        w.contains(&format!(
            "entry at byte {pos}: rec_len is too small for name_len"
        )),
        "{w}"
    );
}

/// Inode numbers past s_inodes_count, "." and ".." out of place and empty names
/// are skipped with a warning; the other entries stay.
#[test]
fn dir_bad_inode_numbers_and_dot_names() {
    let name = "ext2-1k";
    let mut img = fixture(name);
    let fs = open_mem(img.clone(), false).unwrap();
    let off = first_block_offset(&fs, "/dir3000") as usize;
    let inodes_count = u32::try_from(fs.info().inodes).unwrap();
    drop(fs);
    let entries = block_entries(&img[off..off + 1024]);
    let (p1, _, v1) = entries[3].clone();
    let (p2, _, v2) = entries[4].clone();
    let (p3, _, v3) = entries[6].clone();
    put32(&mut img, off + p1, inodes_count + 1);
    // Rename entry 4 to "." and entry 6 to "" (name_len 0).
    img[off + p2 + 6] = 1;
    img[off + p2 + 8] = b'.';
    img[off + p3 + 6] = 0;
    let fs = open_mem(img, false).unwrap();
    let got = names(&fs, "/dir3000");
    let mut want = listed_children(name, "dir3000");
    for v in [&v1, &v2, &v3] {
        want.remove(v);
    }
    assert_eq!(got, want);
    let w = fs.warnings().join("\n");
    assert!(
        w.contains(&format!(
            "entry at byte {p1}: names inode {}",
            inodes_count + 1
        )),
        "{w}"
    );
    assert!(w.contains(&format!("entry at byte {p2}: \".\"")), "{w}");
    assert!(
        w.contains(&format!("entry at byte {p3}: empty name")),
        "{w}"
    );
}

// ---- inodes: where they are, for crafting ------------------------------------

/// Device byte offset of inode `ino` (superblock + group descriptor table, as
/// Documentation/filesystems/ext4/ describes them; not for meta_bg images).
fn inode_offset(img: &[u8], ino: u32) -> usize {
    let sb = &img[1024..2048];
    let bs = 1024usize << le32(sb, 0x18);
    let first_data = le32(sb, 0x14) as usize;
    let ipg = le32(sb, 0x28);
    let isz = le16(sb, 0x58) as usize;
    let is64 = le32(sb, 0x60) & 0x80 != 0;
    let dsz = if is64 { le16(sb, 0xFE) as usize } else { 32 };
    let group = ((ino - 1) / ipg) as usize;
    let index = ((ino - 1) % ipg) as usize;
    let gd = (first_data + 1) * bs + group * dsz;
    let mut table = le32(img, gd + 8) as u64;
    if dsz >= 64 {
        table |= (le32(img, gd + 0x28) as u64) << 32;
    }
    table as usize * bs + index * isz
}

fn set_size(img: &mut [u8], ino_off: usize, size: u64) {
    put32(img, ino_off + 4, size as u32);
    put32(img, ino_off + 0x6C, (size >> 32) as u32);
}

/// Writes an extent root (depth 0) with `extents` (logical, len, physical).
fn set_extent_root(img: &mut [u8], ino_off: usize, extents: &[(u32, u16, u32)]) {
    let b = ino_off + 0x28;
    img[b..b + 60].fill(0);
    put16(img, b, 0xF30A);
    put16(img, b + 2, extents.len() as u16);
    put16(img, b + 4, 4);
    for (i, &(lblk, len, phys)) in extents.iter().enumerate() {
        let e = b + 12 * (i + 1);
        put32(img, e, lblk);
        put16(img, e + 4, len);
        put32(img, e + 8, phys);
    }
}

fn sum_runs(runs: &[FileRun]) -> (u64, u64) {
    let (mut data, mut hole) = (0, 0);
    for r in runs {
        match *r {
            FileRun::Data { len, .. } => data += len,
            FileRun::Hole { len, .. } | FileRun::Unwritten { len, .. } => hole += len,
        }
    }
    (data, hole)
}

// ---- aliased and overlapping mappings -----------------------------------------

/// Four extents of one file all map the same 4000 blocks: 62.5 MiB of "data" on a
/// 24 MiB filesystem. file_runs and read_at refuse the file, naming the inode.
#[test]
fn aliased_extents_are_refused() {
    let mut img = fixture("ext4");
    let fs = open_mem(img.clone(), false).unwrap();
    let ino = fs.lookup(b"/big/lines-3m.txt").unwrap();
    let fs_bytes = fs.info().blocks * u64::from(fs.info().block_size);
    drop(fs);
    let at = inode_offset(&img, ino);
    set_extent_root(
        &mut img,
        at,
        &[
            (0, 4000, 1000),
            (4000, 4000, 1000),
            (8000, 4000, 1000),
            (12000, 4000, 1000),
        ],
    );
    set_size(&mut img, at, 16000 * 4096);
    assert!(16000 * 4096 > fs_bytes);
    let fs = open_mem(img, false).unwrap();
    let inode = fs.inode(ino).unwrap();
    let start = Instant::now();
    let e = fs.file_runs(&inode).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("inode {ino}: ")) && e.contains("mapped more than once"),
        "{e}"
    );
    let mut buf = vec![0u8; 1 << 20];
    let e = fs.read_at(&inode, 0, &mut buf).unwrap_err().to_string();
    assert!(e.contains(&format!("inode {ino}")), "{e}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// ext2 block map: a double-indirect block whose 256 pointers all name one
/// indirect block whose 256 pointers all name one data block: 64 Mi of mapped
/// 1 KiB blocks on a 24 MiB filesystem.
#[test]
fn aliased_indirect_blocks_are_refused() {
    let mut img = fixture("ext2-1k");
    let fs = open_mem(img.clone(), false).unwrap();
    let victim = fs.lookup(b"/big/random-8k.bin").unwrap();
    // Scratch blocks to hold the crafted pointer blocks: the data of another file.
    let p0 = (first_block_offset(&fs, "/big/lines-3m.txt") / 1024) as u32;
    drop(fs);
    let (dind, ind, data) = (p0, p0 + 1, p0 + 2);
    for i in 0..256 {
        put32(&mut img, dind as usize * 1024 + 4 * i, ind);
        put32(&mut img, ind as usize * 1024 + 4 * i, data);
    }
    let at = inode_offset(&img, victim);
    put32(&mut img, at + 0x28 + 12 * 4, ind);
    put32(&mut img, at + 0x28 + 13 * 4, dind);
    set_size(&mut img, at, (12 + 256 + 65536) * 1024);
    let fs = open_mem(img, false).unwrap();
    let inode = fs.inode(victim).unwrap();
    let start = Instant::now();
    let e = fs.file_runs(&inode).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("inode {victim}: ")) && e.contains("mapped more than once"),
        "{e}"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// Two extents overlap in logical space: a warning names the inode, the later
/// extent wins where they overlap, and the runs cover exactly i_size.
#[test]
fn overlapping_extents_warn() {
    let mut img = fixture("ext4");
    let fs = open_mem(img.clone(), false).unwrap();
    let ino = fs.lookup(b"/big/random-8k.bin").unwrap();
    let p = (first_block_offset(&fs, "/big/random-8k.bin") / 4096) as u32;
    drop(fs);
    let at = inode_offset(&img, ino);
    set_extent_root(&mut img, at, &[(0, 2, p), (1, 2, p + 5)]);
    set_size(&mut img, at, 3 * 4096);
    let fs = open_mem(img, false).unwrap();
    let inode = fs.inode(ino).unwrap();
    let runs = fs.file_runs(&inode).unwrap();
    assert_eq!(sum_runs(&runs), (3 * 4096, 0), "{runs:?}");
    let w = fs.warnings().join("\n");
    assert!(
        w.contains(&format!(
            "inode {ino}: extent root: extent at logical block 0 runs to 2"
        )),
        "{w}"
    );
}

// ---- sizes ---------------------------------------------------------------------

/// An inline-data file whose i_size says 1 TiB: the inline bytes are data, the
/// rest a hole (the kernel reads zeros past the inline data), so a copy keeps
/// the hole instead of writing 1 TiB of zeros.
#[test]
fn inline_file_with_huge_size_is_data_then_hole() {
    let name = "ext4-inline";
    let mut img = fixture(name);
    let path = "deep/a/b/c/file.txt";
    let row = read_manifest(&data_dir().join(format!("{name}.tsv.gz")))[path.as_bytes()].clone();
    let fs = open_mem(img.clone(), false).unwrap();
    let ino = fs.lookup(format!("/{path}").as_bytes()).unwrap();
    let at = inode_offset(&img, ino);
    assert_ne!(
        fs.inode(ino).unwrap().flags & 0x1000_0000,
        0,
        "{path} is not inline"
    );
    drop(fs);
    set_size(&mut img, at, 1 << 40);
    let fs = open_mem(img, false).unwrap();
    let inode = fs.inode(ino).unwrap();
    let runs = fs.file_runs(&inode).unwrap();
    match runs[..] {
        [FileRun::Data { offset: 0, len, .. }, FileRun::Hole { offset, len: hole }] => {
            // i_block holds 60 bytes; this small file has no system.data overflow.
            assert!(len >= row.size && len <= 60, "{runs:?}");
            assert_eq!(offset, len);
            assert_eq!(len + hole, 1 << 40);
        }
        _ => panic!("{runs:?}"),
    }
    let mut head = vec![0u8; row.size as usize];
    fs.read_at(&inode, 0, &mut head).unwrap();
    use sha2::Digest;
    assert_eq!(hex(&sha2::Sha256::digest(&head)), row.sha256);
    let mut far = vec![1u8; 4096];
    assert_eq!(
        fs.read_at(&inode, (1 << 40) - 4096, &mut far).unwrap(),
        4096
    );
    assert!(far.iter().all(|&b| b == 0));
    // Not a warning: mke2fs -d itself writes sparse files as inline inodes with a
    // large i_size (sparse/all-hole in this fixture, which the kernel reads as
    // 300 KiB of zeros per the fixture's listing).
}

/// i_size 2^63 - 1 on an empty file: beyond the largest file ext4 can address
/// (16 TiB with 4 KiB blocks, Documentation/filesystems/ext4/overview.rst), so
/// reading it is an error naming the inode instead of an endless stream of zeros.
#[test]
fn size_beyond_the_format_limit_is_refused() {
    for name in ["ext4", "ext2-1k"] {
        let mut img = fixture(name);
        let fs = open_mem(img.clone(), false).unwrap();
        let ino = fs.lookup(b"/empty-file").unwrap();
        drop(fs);
        let at = inode_offset(&img, ino);
        set_size(&mut img, at, i64::MAX as u64);
        let fs = open_mem(img, false).unwrap();
        let inode = fs.inode(ino).unwrap();
        let e = fs.file_runs(&inode).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("inode {ino}: i_size 9223372036854775807 exceeds")),
            "{name}: {e}"
        );
        let mut buf = [0u8; 16];
        assert!(fs.read_at(&inode, 0, &mut buf).is_err());
        // 16 TiB minus one block is still a (sparse) file ext4 can hold.
        if name == "ext4" {
            let mut img = fixture(name);
            set_size(&mut img, at, (1 << 44) - 4096);
            let fs = open_mem(img, false).unwrap();
            let inode = fs.inode(ino).unwrap();
            let runs = fs.file_runs(&inode).unwrap();
            assert_eq!(sum_runs(&runs), (0, (1 << 44) - 4096));
        }
    }
}

/// A directory whose four extents all map the same 31 blocks: each block is read
/// once (warning), so the listing is the 3000 names of the source tree, not 12000.
#[test]
fn aliased_directory_blocks_are_read_once() {
    let name = "ext4";
    let mut img = fixture(name);
    let fs = open_mem(img.clone(), false).unwrap();
    let ino = fs.lookup(b"/dir3000").unwrap();
    let inode = fs.inode(ino).unwrap();
    let runs = fs.file_runs(&inode).unwrap();
    assert_eq!(runs.len(), 1, "dir3000 is not one extent: {runs:?}");
    let p = (first_block_offset(&fs, "/dir3000") / 4096) as u32;
    let n = (inode.size / 4096) as u16;
    drop(fs);
    let at = inode_offset(&img, ino);
    let n32 = u32::from(n);
    set_extent_root(
        &mut img,
        at,
        &[(0, n, p), (n32, n, p), (2 * n32, n, p), (3 * n32, n, p)],
    );
    set_size(&mut img, at, 4 * u64::from(n) * 4096);
    let fs = open_mem(img, false).unwrap();
    let got = names(&fs, "/dir3000");
    assert_eq!(got, listed_children(name, "dir3000"));
    let dir = fs.inode(ino).unwrap();
    assert_eq!(fs.read_dir(&dir).unwrap().len(), 3000);
    let w = fs.warnings().join("\n");
    assert!(
        w.contains(&format!(
            "inode {ino}: directory block {n} (block {p}) is mapped a second time"
        )),
        "{w}"
    );
}

// ---- journal -------------------------------------------------------------------

fn put_be32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// journal-ext3 (1 KiB blocks, no journal checksums, so damage needs no
/// checksum fix-up): the device offsets of the journal inode and of its data
/// (journal block -> device byte offset, the inode's own map as debugfs
/// `stat <8>` shows it: 12 direct, IND, DIND).
struct Journal3 {
    img: Vec<u8>,
    inode_off: usize,
    jsb_off: usize,
}

fn journal_ext3() -> Journal3 {
    let img = fixture("journal-ext3");
    let fs = open_mem(img.clone(), false).unwrap();
    let j = fs.inode(8).unwrap();
    let jsb_off = match fs.file_runs(&j).unwrap()[0] {
        FileRun::Data { physical, .. } => physical as usize,
        ref r => panic!("{r:?}"),
    };
    drop(fs);
    let inode_off = inode_offset(&img, 8);
    Journal3 {
        img,
        inode_off,
        jsb_off,
    }
}

/// With nothing replayed, the tree is what the kernel shows with `-o noload`.
fn assert_unreplayed(img: Vec<u8>, warning: &str) {
    let start = Instant::now();
    let fs = open_mem(img, true).unwrap();
    assert!(fs.replayed_blocks().is_empty());
    let w = fs.warnings().join("\n");
    assert!(w.contains(warning), "warnings lack {warning:?}:\n{w}");
    let want = read_manifest(&data_dir().join("journal-ext3.noload.tsv.gz"));
    let d = diff(&want, &walk(&fs));
    assert!(d.is_empty(), "vs noload: {}", d.join("\n"));
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn journal_superblock_s_maxlen_beyond_the_inode() {
    let mut j = journal_ext3();
    put_be32(&mut j.img, j.jsb_off + 0x10, 5000);
    assert_unreplayed(
        j.img,
        "journal superblock: s_maxlen 5000 exceeds the 1024 blocks the journal inode maps",
    );
}

#[test]
fn journal_superblock_s_first_zero() {
    let mut j = journal_ext3();
    put_be32(&mut j.img, j.jsb_off + 0x14, 0);
    assert_unreplayed(j.img, "journal superblock: s_first 0 is outside 1..1024");
}

#[test]
fn journal_superblock_s_start_beyond_s_maxlen() {
    let mut j = journal_ext3();
    put_be32(&mut j.img, j.jsb_off + 0x1C, 2000);
    assert_unreplayed(j.img, "journal superblock: s_start 2000 is outside 1..1024");
}

/// Every journal block after the superblock maps to the first descriptor block
/// (direct pointers, the indirect block and the double-indirect block all alias
/// it): the descriptor repeats through the whole log. Tags stay bounded by the
/// log length, no transaction commits, nothing is replayed.
#[test]
fn journal_aliased_to_one_descriptor_replays_nothing() {
    let mut j = journal_ext3();
    let b = j.inode_off + 0x28;
    let desc = le32(&j.img, b + 4); // journal block 1: the first descriptor
    for i in 1..12 {
        put32(&mut j.img, b + 4 * i, desc);
    }
    let ind = le32(&j.img, b + 48) as usize;
    let dind = le32(&j.img, b + 52) as usize;
    for i in 0..256 {
        put32(&mut j.img, ind * 1024 + 4 * i, desc);
        put32(&mut j.img, dind * 1024 + 4 * i, ind as u32);
    }
    assert_unreplayed(j.img, "journal: transaction 4 has no commit block");
}

/// The same aliasing with i_size and s_maxlen claiming 64 MiB of journal on a
/// 24 MiB filesystem: the journal inode itself is refused, naming the journal.
#[test]
fn journal_inode_mapping_more_than_the_filesystem_is_refused() {
    let mut j = journal_ext3();
    let b = j.inode_off + 0x28;
    let desc = le32(&j.img, b + 4);
    for i in 1..12 {
        put32(&mut j.img, b + 4 * i, desc);
    }
    let ind = le32(&j.img, b + 48) as usize;
    let dind = le32(&j.img, b + 52) as usize;
    for i in 0..256 {
        put32(&mut j.img, ind * 1024 + 4 * i, desc);
        put32(&mut j.img, dind * 1024 + 4 * i, ind as u32);
    }
    let blocks: u32 = 12 + 256 + 65536;
    set_size(&mut j.img, j.inode_off, u64::from(blocks) * 1024);
    put_be32(&mut j.img, j.jsb_off + 0x10, blocks);
    assert_unreplayed(
        j.img,
        "journal needs recovery but could not be replayed: journal: journal inode 8: inode 8: maps more than the filesystem's",
    );
}

/// A log rewritten as 341 committed transactions that all log the same
/// filesystem block (descriptor, data, commit; the jbd2 format of journal.rst):
/// the overlay keeps one entry, the newest copy.
#[test]
fn journal_overlay_keeps_one_entry_per_block() {
    let mut j = journal_ext3();
    let fs = open_mem(j.img.clone(), false).unwrap();
    let jruns = fs.file_runs(&fs.inode(8).unwrap()).unwrap();
    let target = first_block_offset(&fs, "/big/lines-3m.txt") / 1024;
    drop(fs);
    let phys = |jblk: u64| -> usize {
        let off = jblk * 1024;
        for r in &jruns {
            if let FileRun::Data {
                offset,
                len,
                physical,
            } = *r
            {
                if off >= offset && off < offset + len {
                    return (physical + off - offset) as usize;
                }
            }
        }
        panic!("journal block {jblk} unmapped");
    };
    let header = |img: &mut Vec<u8>, at: usize, kind: u32, seq: u32| {
        img[at..at + 1024].fill(0);
        put_be32(img, at, 0xC03B_3998);
        put_be32(img, at + 4, kind);
        put_be32(img, at + 8, seq);
    };
    let mut seq = 4u32; // s_sequence of the fixture, s_start 1
    let mut jblk = 1u64;
    let mut last_fill = 0u8;
    while jblk + 3 <= 1024 {
        let d = phys(jblk);
        header(&mut j.img, d, 1, seq);
        put_be32(&mut j.img, d + 12, target as u32);
        j.img[d + 18..d + 20].copy_from_slice(&0x000Au16.to_be_bytes()); // SAME_UUID | LAST_TAG
        let data = phys(jblk + 1);
        last_fill = (seq % 251) as u8 + 1;
        j.img[data..data + 1024].fill(last_fill);
        header(&mut j.img, phys(jblk + 2), 2, seq);
        seq += 1;
        jblk += 3;
    }
    let transactions = seq - 4;
    assert_eq!(transactions, 341);
    let fs = open_mem(j.img, true).unwrap();
    assert_eq!(fs.replayed_blocks(), vec![target]);
    let mut block = vec![0u8; 1024];
    fs.read_device_at(target * 1024, &mut block).unwrap();
    assert!(block.iter().all(|&b| b == last_fill));
    let w = fs.warnings().join("\n");
    assert!(
        w.contains(&format!("replayed {transactions} transactions (1 blocks)")),
        "{w}"
    );
}

// ---- xattrs --------------------------------------------------------------------

/// ext2-1k's xattr/file has user.small, user.empty, trusted.t and user.big (700
/// bytes) (the fixture's getfattr dump, ext2-1k.xattrs). Returns the image, the
/// inode, the xattr block's device offset and the absolute device offset of each
/// entry by name (in the inode body or the block; format of attributes.rst).
/// (name, absolute device offset) of each xattr entry.
type Entries = Vec<(Vec<u8>, usize)>;

fn xattr_entries() -> (Vec<u8>, u32, usize, Entries) {
    let img = fixture("ext2-1k");
    let fs = open_mem(img.clone(), false).unwrap();
    let ino = fs.lookup(b"/xattr/file").unwrap();
    drop(fs);
    let ioff = inode_offset(&img, ino);
    let mut entries = Vec::new();
    let mut scan = |start: usize| {
        let mut pos = start;
        while le32(&img, pos) != 0 {
            let name_len = img[pos] as usize;
            entries.push((img[pos + 16..pos + 16 + name_len].to_vec(), pos));
            pos += (16 + name_len + 3) & !3;
        }
        pos
    };
    let ibody = ioff + 128 + le16(&img, ioff + 0x80) as usize;
    assert_eq!(le32(&img, ibody), 0xEA02_0000);
    scan(ibody + 4);
    let at = le32(&img, ioff + 0x68) as usize * 1024;
    assert_eq!(le32(&img, at), 0xEA02_0000);
    scan(at + 32);
    (img, ino, at, entries)
}

fn entry(entries: &[(Vec<u8>, usize)], name: &[u8]) -> usize {
    entries.iter().find(|(n, _)| n == name).unwrap().1
}

/// A value size of 4 GiB in the xattr block: nothing that large is allocated;
/// the entry is skipped with a warning naming the inode and the block, the other
/// attributes stay.
#[test]
fn xattr_value_size_past_the_block_is_skipped() {
    let (mut img, ino, at, entries) = xattr_entries();
    let big = entry(&entries, b"big");
    put32(&mut img, big + 8, 0xFFFF_FFF0);
    let fs = open_mem(img, false).unwrap();
    let x = fs.xattrs(&fs.inode(ino).unwrap()).unwrap();
    let names: BTreeSet<Vec<u8>> = x.into_iter().map(|a| a.name).collect();
    let want: BTreeSet<Vec<u8>> = [&b"user.small"[..], b"user.empty", b"trusted.t"]
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(names, want);
    let w = fs.warnings().join("\n");
    assert!(
        w.contains(&format!(
            "inode {ino}: xattr block {}: entry at 32",
            at / 1024
        )),
        "{w}"
    );
}

/// A second block entry pointing at user.big's 700 bytes: more value bytes than
/// the 1 KiB block holds. user.big is kept, the copy skipped with a warning.
#[test]
fn xattr_values_sharing_bytes_are_bounded() {
    let (mut img, ino, at, entries) = xattr_entries();
    let big = entry(&entries, b"big");
    let len = (16 + 3 + 3) & !3;
    let next = big + len;
    assert_eq!(le32(&img, next), 0, "user.big is not the last block entry");
    img.copy_within(big..big + len, next);
    img[next + 16..next + 19].copy_from_slice(b"bog");
    put32(&mut img, next + len, 0);
    let fs = open_mem(img, false).unwrap();
    let x = fs.xattrs(&fs.inode(ino).unwrap()).unwrap();
    assert!(x
        .iter()
        .any(|a| a.name == b"user.big" && a.value == vec![b'v'; 700]));
    assert!(!x.iter().any(|a| a.name == b"user.bog"));
    let w = fs.warnings().join("\n");
    assert!(
        w.contains(&format!(
            "inode {ino}: xattr block {}: entry at {}",
            at / 1024,
            next - at
        )),
        "{w}"
    );
}

/// An EA-inode value naming the owner itself is refused (no loop); one naming a
/// plain file is read (with warnings), and only up to that file's size.
#[test]
fn xattr_ea_inode_values_are_checked() {
    let (mut img, ino, _, entries) = xattr_entries();
    let small = entry(&entries, b"small");
    put32(&mut img, small + 4, ino);
    let fs = open_mem(img.clone(), false).unwrap();
    let e = fs.xattrs(&fs.inode(ino).unwrap()).unwrap_err().to_string();
    assert!(e.contains("the inode itself"), "{e}");
    // deep/a/b/c/file.txt holds "deep file\n" (10 bytes); the entry says 5.
    let other = fs.lookup(b"/deep/a/b/c/file.txt").unwrap();
    drop(fs);
    put32(&mut img, small + 4, other);
    let fs = open_mem(img.clone(), false).unwrap();
    let x = fs.xattrs(&fs.inode(ino).unwrap()).unwrap();
    let v = &x.iter().find(|a| a.name == b"user.small").unwrap().value;
    assert_eq!(v, b"deep ");
    let w = fs.warnings().join("\n");
    assert!(
        w.contains("without the ea_inode feature") && w.contains("lacks EXT4_EA_INODE_FL"),
        "{w}"
    );
    drop(fs);
    put32(&mut img, small + 8, 60000);
    let fs = open_mem(img, false).unwrap();
    let e = fs.xattrs(&fs.inode(ino).unwrap()).unwrap_err().to_string();
    assert!(e.contains("which holds only 10"), "{e}");
}

/// A depth-1 extent tree whose two index entries both start at logical block 0
/// (the second leaf maps other blocks): a warning names the inode and both leaf
/// blocks, and the file still reads with the size the listing gives.
#[test]
fn duplicate_extent_index_entries_warn() {
    let name = "ext4";
    let mut img = fixture(name);
    let row =
        read_manifest(&data_dir().join(format!("{name}.tsv.gz")))[&b"big/lines-3m.txt"[..]].clone();
    let fs = open_mem(img.clone(), false).unwrap();
    let ino = fs.lookup(b"/big/lines-3m.txt").unwrap();
    let runs = fs.file_runs(&fs.inode(ino).unwrap()).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let p = (first_block_offset(&fs, "/big/lines-3m.txt") / 4096) as u32;
    // Scratch blocks for the two leaves: the data of big/random-8k.bin.
    let s = (first_block_offset(&fs, "/big/random-8k.bin") / 4096) as u32;
    drop(fs);
    let n = row.size.div_ceil(4096) as u16;
    for (leaf, phys) in [(s, p), (s + 1, p + 1)] {
        let at = leaf as usize * 4096;
        img[at..at + 4096].fill(0);
        put16(&mut img, at, 0xF30A);
        put16(&mut img, at + 2, 1);
        put16(&mut img, at + 4, 340);
        put32(&mut img, at + 12, 0);
        put16(&mut img, at + 16, n);
        put32(&mut img, at + 20, phys);
    }
    let at = inode_offset(&img, ino) + 0x28;
    img[at..at + 60].fill(0);
    put16(&mut img, at, 0xF30A);
    put16(&mut img, at + 2, 2);
    put16(&mut img, at + 4, 4);
    put16(&mut img, at + 6, 1);
    put32(&mut img, at + 12 + 4, s);
    put32(&mut img, at + 24 + 4, s + 1);
    let fs = open_mem(img, false).unwrap();
    let inode = fs.inode(ino).unwrap();
    let runs = fs.file_runs(&inode).unwrap();
    assert_eq!(sum_runs(&runs), (row.size, 0));
    let w = fs.warnings().join("\n");
    let want = format!(
        "inode {ino}: extent root: index entries to blocks {s} and {} both start at logical block 0",
        s + 1
    );
    assert!(w.contains(&want), "{w}");
}

// ---- no false alarms -------------------------------------------------------------

/// Warnings that say a structure is damaged (not checksums or journal state).
const DAMAGE: &[&str] = &[
    "overlapping extents",
    "claimed twice",
    "mapped a second time",
    ": entry at byte ",
    "both start at logical block",
    "values add up",
    "exceeds the largest file",
    "maps more than the filesystem",
];

/// Over the e2fsprogs regression images of the corpus: every image on which
/// this reader reports damage is one `e2fsck -fn` also finds errors on. The
/// oracle is e2fsck; the corpus README lists the images.
#[test]
fn damage_warnings_only_where_e2fsck_finds_errors() {
    let tests = corpus_dir().join("e2fsprogs/tests");
    if !tests.is_dir() {
        skip_missing("../shared/corpus/e2fsprogs is missing");
        return;
    }
    if Command::new("e2fsck").arg("-V").output().is_err() {
        skip_missing("e2fsck not on PATH");
        return;
    }
    let tmp = std::env::temp_dir().join(format!("extfs-hostile-{}-e2fsck.img", std::process::id()));
    let (mut flagged, mut false_alarms) = (Vec::new(), Vec::new());
    let mut dirs: Vec<_> = std::fs::read_dir(&tests)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let Some(p) = e2fsprogs_image(&dir) else {
            continue;
        };
        let Ok(bytes) = load_image(&p) else { continue };
        let Ok(fs) = open_mem(bytes.clone(), true) else {
            continue;
        };
        let _ = walk_bounded(&fs);
        let w: Vec<String> = fs
            .warnings()
            .into_iter()
            .filter(|w| DAMAGE.iter().any(|m| w.contains(m)))
            .collect();
        if w.is_empty() {
            continue;
        }
        std::fs::write(&tmp, &bytes).unwrap();
        let clean = Command::new("timeout")
            .args(["-k", "5", "60", "e2fsck", "-fn"])
            .arg(&tmp)
            .output()
            .unwrap()
            .status
            .success();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if clean {
            false_alarms.push(format!("{name}: {:?}", &w[..w.len().min(3)]));
        }
        flagged.push(name);
    }
    let _ = std::fs::remove_file(&tmp);
    eprintln!(
        "damage reported on {} images: {}",
        flagged.len(),
        flagged.join(" ")
    );
    assert!(flagged.len() >= 10, "only {flagged:?}");
    assert!(
        false_alarms.is_empty(),
        "e2fsck calls these clean: {false_alarms:#?}"
    );
}

/// e2fsck's own expected output for the e2fsprogs regression images
/// (`tests/f_*/expect.1`) names each corrupted directory entry as "Directory
/// inode N, block #B, offset O: directory corrupted". Each of those this reader
/// must report too, by the same inode, logical block and byte offset.
#[test]
fn damaged_directory_entries_match_e2fsck_expectations() {
    let tests = corpus_dir().join("e2fsprogs/tests");
    if !tests.is_dir() {
        skip_missing("../shared/corpus/e2fsprogs is missing");
        return;
    }
    let (mut matched, mut missed) = (Vec::new(), Vec::new());
    let mut dirs: Vec<_> = std::fs::read_dir(&tests)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let Ok(expect) = std::fs::read_to_string(dir.join("expect.1")) else {
            continue;
        };
        let want: Vec<(u32, u64, u64)> = expect
            .lines()
            .filter_map(|l| {
                let rest = l
                    .strip_prefix("Directory inode ")?
                    .strip_suffix(": directory corrupted")?;
                let (ino, rest) = rest.split_once(", block #")?;
                let (blk, off) = rest.split_once(", offset ")?;
                Some((ino.parse().ok()?, blk.parse().ok()?, off.parse().ok()?))
            })
            .collect();
        if want.is_empty() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Some(p) = e2fsprogs_image(&dir) else {
            continue;
        };
        let Ok(bytes) = load_image(&p) else { continue };
        let Ok(fs) = open_mem(bytes, true) else {
            missed.push(format!("{name}: does not open"));
            continue;
        };
        let _ = walk_bounded(&fs);
        let w = fs.warnings();
        for (ino, blk, off) in want {
            let a = format!("inode {ino}: directory block {blk} (");
            let b = format!("): entry at byte {off}: ");
            if w.iter().any(|l| l.starts_with(&a) && l.contains(&b)) {
                matched.push(format!("{name} {ino}/{blk}/{off}"));
            } else {
                missed.push(format!("{name}: inode {ino} block {blk} offset {off}"));
            }
        }
    }
    eprintln!(
        "matched e2fsck: {}\nmissed: {missed:#?}",
        matched.join(", ")
    );
    // 22 of the 30 match. Known misses: directories this reader does not treat as
    // such or does not reach (mode 0 in f_inlinedata_repair; lost+found behind a
    // damaged root in f_resize_inode_meta_bg; unwritten extents read as holes in
    // f_uninit_dir), a block mapped twice and read once (f_dupfsblks), and an
    // offset e2fsck finds only after its own repair moved entries (f_salvage_dir).
    assert!(matched.len() >= 22, "{matched:?}\nmissed {missed:?}");
}
