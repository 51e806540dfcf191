//! Differential walk against the ext4-view crate (an independent reader): names,
//! types, sizes, modes, owners, mtimes, contents and symlink targets must agree
//! on every fixture and on ext4-view's own test images that it can load.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use sha2::{Digest, Sha256};

/// ext4-view's view of one file: (kind, mode, size, sha256, target, mtime).
type ViewRow = (char, u16, u64, String, Vec<u8>, (i64, u32), u32, u32);

fn view_walk(fs: &ext4_view::Ext4) -> BTreeMap<Vec<u8>, ViewRow> {
    let mut out = BTreeMap::new();
    let mut stack = vec![ext4_view::PathBuf::new("/")];
    while let Some(dir) = stack.pop() {
        let rd = match fs.read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                // Encrypted directories and the like: recorded, not walked.
                out.insert(
                    dir.as_ref().to_vec(),
                    ('!', 0, 0, e.to_string(), Vec::new(), (0, 0), 0, 0),
                );
                continue;
            }
        };
        for entry in rd {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if name.as_ref() == b"." || name.as_ref() == b".." {
                continue;
            }
            let path = entry.path();
            let rel = path.as_ref()[1..].to_vec();
            if rel == b"lost+found" {
                continue;
            }
            let md = match fs.symlink_metadata(&path) {
                Ok(md) => md,
                Err(e) => {
                    // e.g. timestamps ext4-view rejects: recorded, not compared.
                    out.insert(rel, ('!', 0, 0, e.to_string(), Vec::new(), (0, 0), 0, 0));
                    continue;
                }
            };
            let ft = md.file_type();
            let kind = if ft.is_dir() {
                'd'
            } else if ft.is_symlink() {
                'l'
            } else if ft.is_regular_file() {
                'f'
            } else if ft.is_char_dev() {
                'c'
            } else if ft.is_block_dev() {
                'b'
            } else if ft.is_fifo() {
                'p'
            } else if ft.is_socket() {
                's'
            } else {
                '?'
            };
            let sha = if kind == 'f' {
                match fs.read(&path) {
                    Ok(d) => hex(&Sha256::digest(&d)),
                    Err(e) => format!("error: {e}"),
                }
            } else {
                "-".into()
            };
            let target = if kind == 'l' {
                match fs.read_link(&path) {
                    Ok(t) => t.as_ref().to_vec(),
                    Err(e) => format!("error: {e}").into_bytes(),
                }
            } else {
                Vec::new()
            };
            let m = md.modified();
            out.insert(
                rel,
                (
                    kind,
                    md.mode() & 0o7777,
                    md.len(),
                    sha,
                    target,
                    (m.seconds(), m.nanoseconds()),
                    md.uid(),
                    md.gid(),
                ),
            );
            if kind == 'd' {
                stack.push(path);
            }
        }
    }
    out
}

fn ours(fs: &extfs::Filesystem, refused: &mut Vec<Vec<u8>>) -> BTreeMap<Vec<u8>, ViewRow> {
    walk_tolerant(fs, refused)
        .into_iter()
        .map(|(p, r)| {
            (
                p,
                (
                    r.kind,
                    r.mode as u16,
                    r.size,
                    r.sha256,
                    r.target,
                    r.mtime,
                    r.uid,
                    r.gid,
                ),
            )
        })
        .collect()
}

/// Compares, returning Ok(false) when ext4-view refuses the image.
fn compare(label: &str, bytes: Vec<u8>) -> bool {
    let view = match ext4_view::Ext4::load(Box::new(bytes.clone())) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{label}: ext4-view refuses the image ({e}); not compared");
            return false;
        }
    };
    let want = view_walk(&view);
    let fs = open_mem(bytes, true).unwrap();
    let mut refused = Vec::new();
    let got = ours(&fs, &mut refused);
    let mut diffs = Vec::new();
    let mut skipped = 0;
    for (p, w) in &want {
        let under_ours_refused = refused
            .iter()
            .any(|r| p.starts_with(r) && p.len() > r.len());
        if under_ours_refused {
            skipped += 1;
            continue;
        }
        if w.0 == '!' {
            eprintln!(
                "{label}: ext4-view cannot read {} ({}); not compared",
                String::from_utf8_lossy(p),
                w.3
            );
            continue;
        }
        if w.3.starts_with("error: ") {
            let g = got.get(p).map(|g| g.3.clone()).unwrap_or_default();
            if w.3.contains("encrypted") {
                // Encrypted contents: extfs must refuse too.
                if !g.starts_with("unsupported: ") {
                    diffs.push(format!(
                        "{}: ext4-view {} but extfs read it",
                        String::from_utf8_lossy(p),
                        w.3
                    ));
                }
            } else {
                // ext4-view's own limitation (e.g. holes in indirect-mapped files):
                // the kernel manifests in fixtures.rs are the oracle there.
                eprintln!(
                    "{label}: ext4-view cannot read {} ({}); not compared",
                    String::from_utf8_lossy(p),
                    w.3
                );
            }
            continue;
        }
        match got.get(p) {
            None => diffs.push(format!("missing {}", String::from_utf8_lossy(p))),
            Some(g) if g != w => diffs.push(format!(
                "{}: ext4-view {w:?}\n  extfs {g:?}",
                String::from_utf8_lossy(p)
            )),
            _ => {}
        }
    }
    for p in got.keys() {
        let under_refused = want
            .iter()
            .any(|(wp, w)| w.0 == '!' && p.starts_with(wp.strip_prefix(b"/").unwrap_or(wp)));
        if !want.contains_key(p) && !under_refused {
            diffs.push(format!("extra {}", String::from_utf8_lossy(p)));
        }
    }
    assert!(diffs.is_empty(), "{label}: {}", diffs.join("\n"));
    eprintln!(
        "{label}: {} paths agree with ext4-view ({skipped} under directories extfs refuses: {:?})",
        want.len() - skipped,
        refused
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect::<Vec<_>>()
    );
    true
}

#[test]
fn fixtures_agree_with_ext4_view() {
    let mut compared = 0;
    for name in [
        "ext2-1k",
        "ext3-128",
        "ext4",
        "ext4-64bit-csum",
        "ext4-inline",
        "ext4-bigalloc",
        "ext4-meta-bg",
        "journal-ext4",
        "journal-ext3",
    ] {
        let bytes = load_image(&data_dir().join(format!("{name}.img.gz"))).unwrap();
        if compare(name, bytes) {
            compared += 1;
        }
    }
    assert!(compared >= 4, "only {compared} fixtures could be compared");
}

#[test]
fn ext4_view_test_images_agree() {
    let dir = corpus_dir().join("ext4-view-rs/test_data");
    if !dir.is_dir() {
        common::missing(&format!("../shared/corpus not found ({})", dir.display()));
        return;
    }
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if !p.to_string_lossy().ends_with(".bin.zst") {
            continue;
        }
        let bytes = load_image(&p).unwrap();
        let label = p.file_name().unwrap().to_string_lossy().into_owned();
        if compare(&label, bytes) {
            n += 1;
        }
    }
    assert!(n >= 3, "compared {n} ext4-view images");
    let _ = Path::new("");
}

#[test]
fn journal_image_shows_replayed_state() {
    let p = corpus_dir().join("ext4-view-rs/test_data/test_disk_4k_block_journal.bin.zst");
    if !p.exists() {
        common::missing(&format!("../shared/corpus not found ({})", p.display()));
        return;
    }
    let bytes = load_image(&p).unwrap();
    let fs = open_mem(bytes.clone(), true).unwrap();
    assert!(fs.info().needs_recovery);
    assert!(fs.info().journal_replayed, "{:?}", fs.warnings());
    // The replayed walk equals ext4-view's (which replays too) ...
    assert!(compare("test_disk_4k_block_journal", bytes.clone()));
    // ... and differs from the unreplayed one.
    let raw = open_mem(bytes, false).unwrap();
    assert_ne!(
        ours(&raw, &mut Vec::new()),
        ours(&fs, &mut Vec::new()),
        "replay changed nothing"
    );
}
