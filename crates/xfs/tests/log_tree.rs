//! The whole tree of each dirty-log fixture, read through the reader, against the
//! kernel: with replay it must equal the manifest of a copy the kernel recovered
//! (`<name>.kernel.tsv`), without replay the manifest of `mount -o ro,norecovery`
//! (`<name>.norecovery.tsv`). Both manifests were written by
//! scripts/fixtures/xfs-log.sh from the kernel's mounts (path, type, mode, uid,
//! gid, size, sha256 of files or symlink target).

use bytesource::{MemSource, SharedSource};
use fsapi::{FileType, Filesystem as _, OpenOptions};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn image(name: &str) -> SharedSource {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(data(&format!("{name}.img.gz"))).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    Arc::new(MemSource::new(out))
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

/// The same columns as the script's `manifest`, sorted by path.
fn our_manifest(fs: &xfs::Filesystem) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), fs.root())];
    while let Some((path, ino)) = stack.pop() {
        for e in fs.read_dir(ino).unwrap() {
            let p = if path.is_empty() {
                String::from_utf8_lossy(&e.name).into_owned()
            } else {
                format!("{path}/{}", String::from_utf8_lossy(&e.name))
            };
            let m = fs.metadata(e.ino).unwrap();
            let last = match m.file_type {
                FileType::Regular => {
                    let mut buf = vec![0u8; usize::try_from(m.size).unwrap()];
                    let n = fs.read_at(e.ino, 0, &mut buf).unwrap();
                    assert_eq!(n, buf.len(), "{p}: short read");
                    Sha256::digest(&buf)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect()
                }
                FileType::Symlink => {
                    String::from_utf8_lossy(&fs.read_link(e.ino).unwrap()).into_owned()
                }
                _ => String::new(),
            };
            // find's %s for a directory is its on-disk size, which the script records.
            out.push(format!(
                "{p}\t{}\t{:o}\t{}\t{}\t{}\t{last}",
                kind(m.file_type),
                m.mode & 0o7777,
                m.uid,
                m.gid,
                m.size
            ));
            if m.file_type == FileType::Directory {
                stack.push((p, e.ino));
            }
        }
    }
    out.sort();
    out
}

fn expected(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(data(name)).unwrap();
    let mut v: Vec<String> = text.lines().map(str::to_string).collect();
    v.sort();
    v
}

fn check(name: &str) {
    let replayed = xfs::Filesystem::open(image(name), &OpenOptions::with_replay(true)).unwrap();
    let info = replayed.info();
    assert!(
        info.needs_recovery && info.journal_replayed,
        "{name}: {info:?}"
    );
    assert_eq!(
        our_manifest(&replayed),
        expected(&format!("{name}.kernel.tsv")),
        "{name}: replayed tree differs from the kernel's recovery"
    );
    let raw = xfs::Filesystem::open(image(name), &OpenOptions::with_replay(false)).unwrap();
    assert!(raw.info().needs_recovery);
    assert_eq!(
        our_manifest(&raw),
        expected(&format!("{name}.norecovery.tsv")),
        "{name}: --no-journal tree differs from mount -o ro,norecovery"
    );
}

#[test]
fn v5_tree_equals_kernel_recovery() {
    check("log-v5");
}

#[test]
fn v5_wrapped_log_tree_equals_kernel_recovery() {
    check("log-v5-wrap");
}

#[test]
fn v5_4k_sectors_tree_equals_kernel_recovery() {
    check("log-v5-4ksect");
}

#[test]
fn v5_log_stripe_unit_tree_equals_kernel_recovery() {
    check("log-v5-lsunit");
}

#[test]
fn unfinished_intent_tree_equals_kernel_recovery() {
    check("log-intent");
}
