//! Shared helpers for the extfs integration tests: decompression, manifests
//! written by scripts/fixtures/extfs.sh from kernel mounts, and a full walk.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytesource::{MemSource, SharedSource};
use extfs::{FileType, Filesystem, OpenOptions};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// A required input (corpus image, tool) is missing: with
/// VMDKRECOVER_SKIP_MISSING=1 prints a loud SKIPPED line and returns (the caller
/// then returns); otherwise the test fails, so a green run never hides that it
/// compared nothing.
#[allow(dead_code)] // not every test file has an optional input
pub fn missing(what: &str) {
    if std::env::var("VMDKRECOVER_SKIP_MISSING").as_deref() == Ok("1") {
        eprintln!("\n*** SKIPPED: {what} ***\n");
        return;
    }
    panic!("{what} (set VMDKRECOVER_SKIP_MISSING=1 to skip)");
}

pub fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus"
    ))
}

/// Reads a file, decompressing by extension (.gz, .zst, .xz); None if it is not
/// one we can decode.
pub fn load_image(path: &Path) -> std::io::Result<Vec<u8>> {
    let raw = std::fs::read(path)?;
    let name = path.to_string_lossy();
    let mut out = Vec::new();
    if name.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out)?;
    } else if name.ends_with(".zst") {
        let mut d = ruzstd::decoding::StreamingDecoder::new(&raw[..])
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        d.read_to_end(&mut out)?;
    } else if name.ends_with(".bz2") {
        bzip2::read::MultiBzDecoder::new(&raw[..]).read_to_end(&mut out)?;
    } else if name.ends_with(".xz") {
        lzma_rs::xz_decompress(&mut &raw[..], &mut out)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    } else {
        out = raw;
    }
    Ok(out)
}

/// The image file of an e2fsprogs regression test directory, if it has one we
/// can read (image.gz, image.bz2 or a bare image; tar archives are skipped).
pub fn e2fsprogs_image(test_dir: &Path) -> Option<PathBuf> {
    ["image.gz", "image.bz2", "image"]
        .iter()
        .map(|n| test_dir.join(n))
        .find(|p| p.is_file())
}

pub fn open_mem(bytes: Vec<u8>, replay: bool) -> Result<Filesystem, extfs::Error> {
    let src: SharedSource = Arc::new(MemSource::new(bytes));
    Filesystem::open(
        src,
        &OpenOptions {
            replay_journal: replay,
        },
    )
}

/// One manifest row (the kernel's view of a file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub kind: char,
    pub mode: u32,
    pub size: u64,
    pub sha256: String,
    pub target: Vec<u8>,
    pub mtime: (i64, u32),
    pub ino: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: Option<(u32, u32)>,
}

pub fn read_manifest(path: &Path) -> BTreeMap<Vec<u8>, Row> {
    let text = load_image(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut map = BTreeMap::new();
    for line in text.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        let f: Vec<&[u8]> = line.split(|&c| c == b'\t').collect();
        assert_eq!(
            f.len(),
            13,
            "manifest line {:?}",
            String::from_utf8_lossy(line)
        );
        let s = |i: usize| String::from_utf8_lossy(f[i]).into_owned();
        let rdev = if f[12] == b"-" {
            None
        } else {
            let t = s(12);
            let (a, b) = t.split_once(':').unwrap();
            Some((a.parse().unwrap(), b.parse().unwrap()))
        };
        map.insert(
            f[0].to_vec(),
            Row {
                kind: s(1).chars().next().unwrap(),
                mode: u32::from_str_radix(&s(2), 8).unwrap(),
                size: s(3).parse().unwrap(),
                sha256: s(4),
                target: if f[1] == b"l" {
                    f[5].to_vec()
                } else {
                    Vec::new()
                },
                mtime: (s(6).parse().unwrap(), s(7).parse().unwrap()),
                ino: s(8).parse().unwrap(),
                nlink: s(9).parse().unwrap(),
                uid: s(10).parse().unwrap(),
                gid: s(11).parse().unwrap(),
                rdev,
            },
        );
    }
    map
}

pub fn kind_char(t: FileType) -> char {
    match t {
        FileType::Regular => 'f',
        FileType::Directory => 'd',
        FileType::Symlink => 'l',
        FileType::CharDevice => 'c',
        FileType::BlockDevice => 'b',
        FileType::Fifo => 'p',
        FileType::Socket => 's',
        FileType::Unknown => '?',
    }
}

pub fn sha256_file(fs: &Filesystem, inode: &extfs::Inode) -> Result<String, extfs::Error> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let n = fs.read_at(inode, off, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok(hex(&h.finalize()))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Walks the whole tree with extfs and builds rows like the manifest's.
pub fn walk(fs: &Filesystem) -> BTreeMap<Vec<u8>, Row> {
    let mut out = BTreeMap::new();
    let root = fs.inode(fs.root()).unwrap();
    walk_dir(fs, &root, Vec::new(), &mut out, 0, None);
    out
}

/// Like [`walk`], but directories extfs refuses (encrypted) are listed in
/// `refused` instead of failing the walk.
pub fn walk_tolerant(fs: &Filesystem, refused: &mut Vec<Vec<u8>>) -> BTreeMap<Vec<u8>, Row> {
    let mut out = BTreeMap::new();
    let root = fs.inode(fs.root()).unwrap();
    walk_dir(fs, &root, Vec::new(), &mut out, 0, Some(refused));
    out
}

fn walk_dir(
    fs: &Filesystem,
    dir: &extfs::Inode,
    prefix: Vec<u8>,
    out: &mut BTreeMap<Vec<u8>, Row>,
    depth: u32,
    mut refused: Option<&mut Vec<Vec<u8>>>,
) {
    assert!(depth < 64, "directory tree too deep");
    let entries = match (fs.read_dir(dir), refused.as_deref_mut()) {
        (Ok(e), _) => e,
        (Err(extfs::Error::Unsupported { .. }), Some(r)) => {
            r.push(prefix);
            return;
        }
        (Err(e), _) => panic!("{}: {e}", String::from_utf8_lossy(&prefix)),
    };
    for e in entries {
        let mut path = prefix.clone();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&e.name);
        if path == b"lost+found" {
            continue;
        }
        let ino = fs.inode(e.ino).unwrap();
        assert_eq!(
            kind_char(e.file_type),
            kind_char(ino.file_type),
            "dirent type of {:?}",
            String::from_utf8_lossy(&path)
        );
        let sha256 = if ino.file_type == FileType::Regular {
            match (sha256_file(fs, &ino), refused.is_some()) {
                (Ok(h), _) => h,
                (Err(e @ extfs::Error::Unsupported { .. }), true) => format!("unsupported: {e}"),
                (Err(e), _) => panic!("{}: {e}", String::from_utf8_lossy(&path)),
            }
        } else {
            "-".into()
        };
        let target = if ino.file_type == FileType::Symlink {
            match (fs.read_link(&ino), refused.is_some()) {
                (Ok(t), _) => t,
                (Err(e @ extfs::Error::Unsupported { .. }), true) => {
                    format!("unsupported: {e}").into_bytes()
                }
                (Err(e), _) => panic!("{}: {e}", String::from_utf8_lossy(&path)),
            }
        } else {
            Vec::new()
        };
        out.insert(
            path.clone(),
            Row {
                kind: kind_char(ino.file_type),
                mode: u32::from(ino.mode & 0o7777),
                size: ino.size,
                sha256,
                target,
                mtime: (ino.mtime.secs, ino.mtime.nanos),
                ino: ino.ino,
                nlink: ino.nlink,
                uid: ino.uid,
                gid: ino.gid,
                rdev: ino.rdev,
            },
        );
        if ino.file_type == FileType::Directory {
            walk_dir(fs, &ino, path, out, depth + 1, refused.as_deref_mut());
        }
    }
}

/// Compares two trees and returns human-readable differences.
pub fn diff(expected: &BTreeMap<Vec<u8>, Row>, got: &BTreeMap<Vec<u8>, Row>) -> Vec<String> {
    let mut d = Vec::new();
    for (p, e) in expected {
        let ps = String::from_utf8_lossy(p);
        match got.get(p) {
            None => d.push(format!("missing: {ps}")),
            Some(g) if g != e => d.push(format!("differs: {ps}\n  want {e:?}\n  got  {g:?}")),
            _ => {}
        }
    }
    for p in got.keys() {
        if !expected.contains_key(p) {
            d.push(format!("unexpected: {}", String::from_utf8_lossy(p)));
        }
    }
    d
}

// ---- bounded walk for hostile images (corpus, mutation tests) ----

const MAX_ENTRIES: usize = 200_000;
const MAX_DEPTH: usize = 64;
const MAX_READ: u64 = 64 << 20;
const TIME_BUDGET: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Walk {
    pub entries: usize,
    pub errors: Vec<String>,
    pub bytes: u64,
}

pub fn walk_bounded(fs: &Filesystem) -> Walk {
    let start = Instant::now();
    let mut w = Walk::default();
    let mut stack = vec![(fs.root(), 0usize)];
    let mut seen = std::collections::HashSet::new();
    let mut buf = vec![0u8; 1 << 20];
    while let Some((ino, depth)) = stack.pop() {
        if w.entries > MAX_ENTRIES || start.elapsed() > TIME_BUDGET {
            w.errors.push("walk bound reached".into());
            break;
        }
        if !seen.insert(ino) {
            continue;
        }
        let dir = match fs.inode(ino) {
            Ok(d) => d,
            Err(e) => {
                w.errors.push(e.to_string());
                continue;
            }
        };
        let entries = match fs.read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                w.errors.push(e.to_string());
                continue;
            }
        };
        for e in entries {
            w.entries += 1;
            let inode = match fs.inode(e.ino) {
                Ok(i) => i,
                Err(err) => {
                    w.errors.push(err.to_string());
                    continue;
                }
            };
            let _ = fs
                .xattrs(&inode)
                .map_err(|err| w.errors.push(err.to_string()));
            match inode.file_type {
                FileType::Directory if depth < MAX_DEPTH => stack.push((e.ino, depth + 1)),
                FileType::Symlink => {
                    let _ = fs
                        .read_link(&inode)
                        .map_err(|err| w.errors.push(err.to_string()));
                }
                FileType::Regular => {
                    let _ = fs
                        .file_runs(&inode)
                        .map_err(|err| w.errors.push(err.to_string()));
                    let mut off = 0u64;
                    while off < inode.size.min(MAX_READ) {
                        match fs.read_at(&inode, off, &mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                off += n as u64;
                                w.bytes += n as u64;
                            }
                            Err(err) => {
                                w.errors.push(err.to_string());
                                break;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    w
}
