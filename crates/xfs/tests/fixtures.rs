//! The fixtures built by scripts/fixtures/xfs.sh: every object of every image is
//! compared with the oracle the script recorded (a kernel mount for V5, the
//! source tree for V4, `getfattr` for xattrs, SEEK_DATA/SEEK_HOLE for runs, and
//! xfs_db for inode numbers, fork formats and the superblock).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use std::collections::BTreeMap;

use common::{data_dir, load_image, need, open_bytes, sha256_of, walk};
use fsapi::{FileRun, FileType, Filesystem as _};

fn text(name: &str) -> Option<String> {
    let p = need(data_dir().join(name))?;
    Some(String::from_utf8(load_image(&p)).unwrap())
}

fn kind(t: FileType) -> &'static str {
    match t {
        FileType::Regular => "f",
        FileType::Directory => "d",
        FileType::Symlink => "l",
        FileType::CharDevice => "c",
        FileType::BlockDevice => "b",
        FileType::Fifo => "p",
        FileType::Socket => "s",
        FileType::Unknown => "?",
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// `getfattr -d -m - -e hex` output: path -> sorted (name, value).
type AttrList = Vec<(Vec<u8>, Vec<u8>)>;

fn parse_getfattr(t: &str) -> BTreeMap<Vec<u8>, AttrList> {
    let mut out: BTreeMap<Vec<u8>, AttrList> = BTreeMap::new();
    let mut cur = Vec::new();
    for line in t.lines() {
        if let Some(p) = line.strip_prefix("# file: ") {
            cur = format!("/{p}").into_bytes();
        } else if let Some((n, v)) = line.split_once('=') {
            let v = v
                .strip_prefix("0x")
                .map(unhex)
                .unwrap_or_else(|| v.trim_matches('"').as_bytes().to_vec());
            out.entry(cur.clone())
                .or_default()
                .push((n.as_bytes().to_vec(), v));
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

fn sb_field(sb: &str, key: &str) -> String {
    sb.lines()
        .find_map(|l| {
            l.split_once(" = ")
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
        .unwrap_or_else(|| panic!("xfs_db sb: no {key}"))
}

/// Kernel data ranges from lseek vs our runs: our Data runs lie inside them, and
/// they lie inside our Data + Unwritten runs (the kernel may report an unwritten
/// extent as data).
fn check_seek(path: &str, runs: &[FileRun], kernel: &[(u64, u64)]) {
    let inside =
        |lo: u64, hi: u64, set: &[(u64, u64)]| set.iter().any(|&(a, b)| a <= lo && hi <= b);
    let ours: Vec<(u64, u64)> = runs
        .iter()
        .filter(|r| !matches!(r, FileRun::Hole { .. }))
        .map(|r| (r.offset(), r.offset() + r.len()))
        .collect();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (a, b) in ours {
        match merged.last_mut() {
            Some(l) if l.1 == a => l.1 = b,
            _ => merged.push((a, b)),
        }
    }
    for r in runs {
        if let FileRun::Data { offset, len, .. } = *r {
            assert!(
                inside(offset, offset + len, kernel),
                "{path}: data run {r:?} is a hole to the kernel {kernel:?}"
            );
        }
    }
    for &(a, b) in kernel {
        assert!(
            inside(a, b, &merged),
            "{path}: kernel data {a}-{b} not allocated in {runs:?}"
        );
    }
}

fn check_image(name: &str, kernel_oracle: bool) {
    let Some(img) = need(data_dir().join(format!("{name}.img.zst"))) else {
        return;
    };
    let fs = open_bytes(load_image(&img), true).unwrap();
    let manifest = text(&format!("{name}.tsv.zst")).unwrap();
    let sb = text(&format!("{name}.sb.txt")).unwrap();
    let info = fs.info();
    assert_eq!(info.label, name);
    assert_eq!(info.uuid, sb_field(&sb, "uuid"));
    assert_eq!(info.blocks.to_string(), sb_field(&sb, "dblocks"));
    assert_eq!(info.block_size.to_string(), sb_field(&sb, "blocksize"));
    assert!(info.clean && !info.needs_recovery);
    let tree = walk(&fs);
    let ftype = info.features.iter().any(|f| f == "ftype");
    let mut seen = 0usize;
    for line in manifest.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 13, "{line}");
        let path = f[0];
        let ino = if path == "/" {
            fs.root()
        } else {
            tree.get(path.as_bytes())
                .unwrap_or_else(|| panic!("{name}: {path} missing"))
                .0
        };
        seen += 1;
        let m = fs.metadata(ino).unwrap();
        assert_eq!(kind(m.file_type), f[1], "{name}: {path} type");
        assert_eq!(format!("{:o}", m.mode), f[2], "{name}: {path} mode");
        assert_eq!(
            (m.uid.to_string(), m.gid.to_string()),
            (f[3].into(), f[4].into()),
            "{name}: {path} owner"
        );
        if f[1] != "d" || kernel_oracle {
            assert_eq!(m.size.to_string(), f[5], "{name}: {path} size");
        }
        if f[6] != "-" {
            assert_eq!(
                (m.mtime.secs.to_string(), m.mtime.nanos.to_string()),
                (f[6].into(), f[7].into()),
                "{name}: {path} mtime"
            );
            assert_eq!(m.nlink.to_string(), f[8], "{name}: {path} nlink");
            assert_eq!(ino.to_string(), f[9], "{name}: {path} ino");
        }
        let rdev = m.rdev.map_or("-".to_string(), |(a, b)| format!("{a}:{b}"));
        assert_eq!(rdev, f[10], "{name}: {path} rdev");
        if f[1] == "l" {
            assert_eq!(
                fs.read_link(ino).unwrap(),
                unhex(f[11]),
                "{name}: {path} target"
            );
        }
        if f[1] == "f" {
            if m.size > 64 << 20 {
                // Do not hash a huge file by reading: it must be one hole.
                assert_eq!(
                    fs.file_runs(ino).unwrap(),
                    vec![FileRun::Hole {
                        offset: 0,
                        len: m.size
                    }]
                );
            } else {
                assert_eq!(
                    sha256_of(&fs, ino).unwrap(),
                    f[12],
                    "{name}: {path} content"
                );
            }
        }
    }
    assert_eq!(
        seen,
        tree.len() + 1,
        "{name}: the walk found objects the oracle does not list"
    );
    // Directory entry types (each directory listed once).
    let mut lists: BTreeMap<u64, Vec<fsapi::DirEntry>> = BTreeMap::new();
    for (path, (ino, t)) in &tree {
        let parent = &path[..path.iter().rposition(|&c| c == b'/').unwrap()];
        let pino = if parent.is_empty() {
            fs.root()
        } else {
            tree[parent].0
        };
        let list = lists
            .entry(pino)
            .or_insert_with(|| fs.read_dir(pino).unwrap());
        let leaf = &path[parent.len() + 1..];
        let e = list.iter().find(|e| e.name == leaf).unwrap();
        assert_eq!(e.ino, *ino);
        if ftype {
            assert_eq!(e.file_type, *t, "{name}: {}", String::from_utf8_lossy(path));
        } else {
            assert_eq!(e.file_type, FileType::Unknown);
        }
    }
    check_seek_file(&fs, name, &tree);
    check_forms(&fs, name);
    if kernel_oracle {
        check_xattrs(&fs, name, &tree);
    }
    assert!(fs.warnings().is_empty(), "{name}: {:?}", fs.warnings());
}

fn check_seek_file(fs: &xfs::Filesystem, name: &str, tree: &BTreeMap<Vec<u8>, (u64, FileType)>) {
    let seek = text(&format!("{name}.seek.tsv.zst")).unwrap();
    for line in seek.lines() {
        let (path, ranges) = line.split_once('\t').unwrap();
        let kernel: Vec<(u64, u64)> = ranges
            .split_whitespace()
            .map(|r| {
                let (a, b) = r.split_once('-').unwrap();
                (a.parse().unwrap(), b.parse().unwrap())
            })
            .collect();
        let ino = tree[path.as_bytes()].0;
        check_seek(path, &fs.file_runs(ino).unwrap(), &kernel);
    }
}

/// xfs_db's inode numbers and fork formats: our lookup reaches the same inode,
/// and the fixture really holds each form (so the tests above covered it).
fn check_forms(fs: &xfs::Filesystem, name: &str) {
    let forms = text(&format!("{name}.forms.tsv.zst")).unwrap();
    let mut dir_forms = Vec::new();
    for line in forms.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            common::lookup(fs, f[0]).to_string(),
            f[1],
            "{name}: {} inode",
            f[0]
        );
        if let Some(d) = f[0].strip_prefix("/dirs/") {
            assert_eq!(d, f[2], "{name}: xfs_db form");
            dir_forms.push(f[2].to_string());
        }
    }
    for want in ["sf", "block", "leaf", "node"] {
        assert!(
            dir_forms.iter().any(|d| d == want),
            "{name}: no {want} directory"
        );
    }
    if name.starts_with("v5") {
        let has = |p: &str, col: usize, v: &str| {
            forms.lines().any(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                f[0] == p && f[col] == v
            })
        };
        assert!(
            has("/files/btree", 2, "btree") && has("/files/extents", 2, "extents"),
            "{name}"
        );
        assert!(
            has("/xattrs/sf", 3, "local") && has("/xattrs/node", 3, "extents"),
            "{name}"
        );
    }
}

fn check_xattrs(fs: &xfs::Filesystem, name: &str, tree: &BTreeMap<Vec<u8>, (u64, FileType)>) {
    let want = parse_getfattr(&text(&format!("{name}.xattrs.txt.zst")).unwrap());
    let mut with = 0;
    for (path, (ino, _)) in tree {
        let mut got: Vec<(Vec<u8>, Vec<u8>)> = fs
            .xattrs(*ino)
            .unwrap()
            .into_iter()
            .map(|x| (x.name, x.value))
            .collect();
        got.sort();
        let expect = want.get(path).cloned().unwrap_or_default();
        assert_eq!(
            got,
            expect,
            "{name}: {} xattrs",
            String::from_utf8_lossy(path)
        );
        with += usize::from(!got.is_empty());
    }
    assert_eq!(
        with,
        want.len(),
        "{name}: getfattr lists objects the walk did not reach"
    );
}

#[test]
fn v5_rhel9_defaults_4k() {
    check_image("v5", true);
}

#[test]
fn v5_1k_blocks() {
    check_image("v5_1k", true);
}

#[test]
fn v5_64k_directory_blocks() {
    check_image("v5_dir64k", true);
}

#[test]
fn v4_from_proto() {
    check_image("v4", false);
}

#[test]
fn v4_without_ftype() {
    check_image("v4_noftype", false);
}

#[test]
fn v5_nrext64_rmapbt() {
    check_image("v5_nrext64", true);
    let Some(p) = need(data_dir().join("v5_nrext64.img.zst")) else {
        return;
    };
    let fs = open_bytes(load_image(&p), false).unwrap();
    let f = fs.info().features;
    assert!(
        f.iter().any(|x| x == "nrext64") && f.iter().any(|x| x == "rmapbt"),
        "{f:?}"
    );
}
