//! Robustness over the public sample corpus (../shared/corpus): e2fsprogs'
//! regression images (mostly deliberately corrupt), ext4-view's, util-linux's
//! blkid images and dfvfs'. Every image is opened, walked and every file read
//! with bounds; nothing may panic. A tally is printed. Where a source states
//! the truth (util-linux's blkid expectations), `info()` is compared with it.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use common::*;
use extfs::Filesystem;

fn images(root: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(root.join("e2fsprogs/tests")) {
        for e in rd.flatten() {
            if let Some(p) = e2fsprogs_image(&e.path()) {
                v.push(p);
            }
        }
    }
    for (dir, suffix) in [
        ("ext4-view-rs/test_data", ".bin.zst"),
        ("util-linux/tests/ts/blkid/images-fs", ".img.xz"),
    ] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir)) {
            for e in rd.flatten() {
                if e.path().to_string_lossy().ends_with(suffix) {
                    v.push(e.path());
                }
            }
        }
    }
    let dfvfs = root.join("dfvfs/history-89103e38/test_data/ext2.raw.gz");
    if dfvfs.exists() {
        v.push(dfvfs);
    }
    v.sort();
    v
}

/// First few words of an error, to group refusals in the tally.
fn category(msg: &str) -> String {
    let mut s: String = msg.split(':').take(2).collect::<Vec<_>>().join(":");
    s = s
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect();
    s.chars().take(70).collect()
}

#[test]
fn corpus_never_panics() {
    let root = corpus_dir();
    if !root.is_dir() {
        common::missing(&format!("../shared/corpus not found ({})", root.display()));
        return;
    }
    let list = images(&root);
    assert!(!list.is_empty(), "corpus present but no ext images found");
    let mut opened = 0;
    let mut clean = 0;
    let mut with_errors = 0;
    let mut not_ext = 0;
    let mut refused: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut panics = Vec::new();
    let mut replayed = 0;
    for p in &list {
        let label = p.strip_prefix(&root).unwrap_or(p).display().to_string();
        let Ok(bytes) = load_image(p) else {
            refused
                .entry("cannot decompress".into())
                .or_default()
                .push(label);
            continue;
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            let src: bytesource::SharedSource =
                std::sync::Arc::new(bytesource::MemSource::new(bytes));
            if !Filesystem::probe(&*src) {
                return Err("no ext magic".to_string());
            }
            let fs =
                Filesystem::open(src, &extfs::OpenOptions::default()).map_err(|e| e.to_string())?;
            let walk = walk_bounded(&fs);
            Ok((fs.info().journal_replayed, walk))
        }));
        match result {
            Err(_) => panics.push(label),
            Ok(Err(e)) if e == "no ext magic" => not_ext += 1,
            Ok(Err(e)) => refused.entry(category(&e)).or_default().push(label),
            Ok(Ok((rep, walk))) => {
                opened += 1;
                if rep {
                    replayed += 1;
                }
                if walk.errors.is_empty() {
                    clean += 1;
                } else {
                    with_errors += 1;
                    if std::env::var_os("EXTFS_CORPUS_VERBOSE").is_some() {
                        eprintln!(
                            "{label}: {} errors, first: {}",
                            walk.errors.len(),
                            walk.errors[0]
                        );
                    }
                }
            }
        }
    }
    eprintln!("\n=== extfs corpus tally ({} images) ===", list.len());
    eprintln!("opened: {opened} (journal replayed in {replayed})");
    eprintln!("  walked cleanly: {clean}");
    eprintln!("  walked with per-object errors: {with_errors}");
    eprintln!("not ext (no magic): {not_ext}");
    let nref: usize = refused.values().map(Vec::len).sum();
    eprintln!("refused at open: {nref}");
    for (cat, v) in &refused {
        eprintln!("  {:3} {cat}   e.g. {}", v.len(), v[0]);
    }
    eprintln!("panicked: {}", panics.len());
    assert!(panics.is_empty(), "panics on: {panics:?}");
    assert!(opened > list.len() / 2, "too few images opened: {opened}");
}

/// util-linux's expected blkid output is an independent statement of label,
/// uuid, type and block size.
#[test]
fn util_linux_blkid_expectations() {
    let root = corpus_dir().join("util-linux/tests");
    if !root.is_dir() {
        common::missing(&format!("../shared/corpus not found ({})", root.display()));
        return;
    }
    for kind in ["ext2", "ext3", "ext4"] {
        let expect =
            std::fs::read_to_string(root.join(format!("expected/blkid/low-probe-{kind}"))).unwrap();
        let get = |k: &str| {
            expect
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_default()
                .to_string()
        };
        let bytes = load_image(&root.join(format!("ts/blkid/images-fs/{kind}.img.xz"))).unwrap();
        let fs = match open_mem(bytes, true) {
            Ok(fs) => fs,
            Err(e) => panic!("{kind}: {e}"),
        };
        let info = fs.info();
        assert_eq!(info.kind, get("ID_FS_TYPE"), "{kind}");
        assert_eq!(info.label, get("ID_FS_LABEL"), "{kind}");
        assert_eq!(info.uuid, get("ID_FS_UUID"), "{kind}");
        assert_eq!(
            info.block_size.to_string(),
            get("ID_FS_BLOCK_SIZE"),
            "{kind}"
        );
    }
    // The external journal device is refused clearly.
    let bytes = load_image(&root.join("ts/blkid/images-fs/jbd.img.xz")).unwrap();
    let err = open_mem(bytes, true).unwrap_err();
    assert!(err.to_string().contains("journal"), "{err}");
}
