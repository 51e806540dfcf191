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
    let inodes_count = fs.info().inodes_count;
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
