//! Shared helpers for the xfs integration tests: decompression, corpus paths
//! (missing inputs fail unless VMDKRECOVER_SKIP_MISSING=1), and a full walk.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytesource::{MemSource, SharedSource};
use fsapi::{FileType, Filesystem as _, Ino, OpenOptions};
use sha2::{Digest, Sha256};

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

pub fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus"
    ))
}

/// The path of a required input, or None (with a loud SKIPPED line) when it is
/// missing and VMDKRECOVER_SKIP_MISSING=1; panics when missing otherwise.
pub fn need(path: PathBuf) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("VMDKRECOVER_SKIP_MISSING").as_deref() == Ok("1") {
        eprintln!("SKIPPED: {} is missing", path.display());
        return None;
    }
    panic!(
        "{} is missing (set VMDKRECOVER_SKIP_MISSING=1 to skip)",
        path.display()
    );
}

pub fn corpus(rel: &str) -> Option<PathBuf> {
    need(corpus_dir().join(rel))
}

/// Reads a file, decompressing by extension (.gz, .zst, .xz).
pub fn load_image(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.to_string_lossy();
    let mut out = Vec::new();
    if name.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
    } else if name.ends_with(".zst") {
        let mut d = ruzstd::decoding::StreamingDecoder::new(&raw[..]).unwrap();
        d.read_to_end(&mut out).unwrap();
    } else if name.ends_with(".xz") {
        lzma_rs::xz_decompress(&mut &raw[..], &mut out).unwrap();
    } else {
        out = raw;
    }
    out
}

pub fn source(bytes: Vec<u8>) -> SharedSource {
    Arc::new(MemSource::new(bytes))
}

pub fn open_bytes(bytes: Vec<u8>, replay: bool) -> Result<xfs::Filesystem, fsapi::Error> {
    xfs::Filesystem::open(source(bytes), &OpenOptions::with_replay(replay))
}

pub fn open(path: &Path) -> xfs::Filesystem {
    open_bytes(load_image(path), false).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn sha256_of(fs: &xfs::Filesystem, ino: Ino) -> Result<String, fsapi::Error> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let n = fs.read_at(ino, off, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok(hex(&h.finalize()))
}

pub fn read_all(fs: &xfs::Filesystem, ino: Ino) -> Vec<u8> {
    let size = fs.metadata(ino).unwrap().size as usize;
    let mut buf = vec![0u8; size];
    let n = fs.read_at(ino, 0, &mut buf).unwrap();
    assert_eq!(n, size);
    buf
}

/// Every path below the root (no `.`/`..`) with its inode and entry type.
pub fn walk(fs: &xfs::Filesystem) -> BTreeMap<Vec<u8>, (Ino, FileType)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(fs.root(), Vec::<u8>::new(), 0u32)];
    while let Some((ino, prefix, depth)) = stack.pop() {
        assert!(depth < 64, "tree too deep");
        for e in fs
            .read_dir(ino)
            .unwrap_or_else(|err| panic!("{}: {err}", String::from_utf8_lossy(&prefix)))
        {
            let mut p = prefix.clone();
            p.push(b'/');
            p.extend_from_slice(&e.name);
            let t = if e.file_type == FileType::Unknown {
                fs.metadata(e.ino).unwrap().file_type
            } else {
                e.file_type
            };
            if t == FileType::Directory {
                stack.push((e.ino, p.clone(), depth + 1));
            }
            out.insert(p, (e.ino, t));
        }
    }
    out
}

pub fn lookup(fs: &xfs::Filesystem, path: &str) -> Ino {
    fs.lookup(path.as_bytes())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn count(fs: &xfs::Filesystem, path: &str) -> usize {
    fs.read_dir(lookup(fs, path)).unwrap().len()
}
