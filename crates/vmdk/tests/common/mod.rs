//! Helpers shared by the integration tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use bytesource::ByteSource;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// A required input (corpus image, tool) is missing: with
/// VMDKRECOVER_SKIP_MISSING=1 prints a loud SKIPPED line and returns (the caller
/// then returns); otherwise the test fails, so a green run never hides that it
/// compared nothing.
pub fn missing(what: &str) {
    if std::env::var("VMDKRECOVER_SKIP_MISSING").as_deref() == Ok("1") {
        eprintln!("\n*** SKIPPED: {what} ***\n");
        return;
    }
    panic!("{what} (set VMDKRECOVER_SKIP_MISSING=1 to skip)");
}

/// The public sample corpus beside the project (`../shared/corpus`). Missing, it
/// fails the test unless VMDKRECOVER_SKIP_MISSING=1 (then `None`, after a loud
/// SKIPPED line).
pub fn corpus() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus"
    ));
    if p.is_dir() {
        Some(p)
    } else {
        missing(&format!("../shared/corpus not found ({})", p.display()));
        None
    }
}

/// sha256 (hex) of every byte of `src`, read in `chunk`-byte pieces.
pub fn sha_of(src: &dyn ByteSource, chunk: usize) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; chunk];
    let mut pos = 0u64;
    let len = src.len();
    while pos < len {
        let n = usize::try_from((len - pos).min(chunk as u64)).unwrap();
        src.read_at(pos, &mut buf[..n]).unwrap();
        h.update(&buf[..n]);
        pos += n as u64;
    }
    hex(&h.finalize())
}

pub fn sha_bytes(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Decompresses a `.gz` file into `dir`, returning the new path.
pub fn gunzip(src: &std::path::Path, dir: &std::path::Path, name: &str) -> PathBuf {
    let f = std::fs::File::open(src).unwrap();
    let mut d = flate2::read::GzDecoder::new(f);
    let out = dir.join(name);
    let mut o = std::fs::File::create(&out).unwrap();
    std::io::copy(&mut d, &mut o).unwrap();
    out
}

/// Decompresses a `.bz2` file into `dir`.
pub fn bunzip(src: &std::path::Path, dir: &std::path::Path, name: &str) -> PathBuf {
    let f = std::fs::File::open(src).unwrap();
    let mut d = bzip2::read::BzDecoder::new(f);
    let out = dir.join(name);
    let mut o = std::fs::File::create(&out).unwrap();
    std::io::copy(&mut d, &mut o).unwrap();
    out
}

pub const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");

/// The recorded oracle checksums: (sha256, name).
pub fn expected() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(format!("{TESTDATA}/expected.sha256")).unwrap();
    text.lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(s, n)| (s.to_string(), n.to_string()))
        .collect()
}

/// The recorded checksum for `name`.
pub fn expected_for(name: &str) -> String {
    expected()
        .into_iter()
        .find(|(_, n)| n == name)
        .unwrap_or_else(|| panic!("no checksum recorded for {name}"))
        .0
}

/// Gunzips every committed fixture into a fresh temp dir.
pub fn fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(TESTDATA).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if let Some(stem) = name.strip_suffix(".gz") {
            gunzip(&p, dir.path(), stem);
        }
    }
    dir
}
