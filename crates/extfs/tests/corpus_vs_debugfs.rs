//! Differential walk over the corpus against debugfs: for every corpus image
//! that `e2fsck -fn` calls clean (and that is not encrypted), `debugfs -R
//! "rdump / DIR"` extracts the tree and extfs must show the same names, kinds,
//! file sizes, contents and symlink targets.
//!
//! Needs e2fsck and debugfs on PATH and ../shared/corpus; otherwise it says so
//! loudly and passes.

mod common;

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use sha2::{Digest, Sha256};

/// (kind, size for files, sha256, target) per relative path.
type View = BTreeMap<Vec<u8>, (char, u64, String, Vec<u8>)>;

fn host_tree(root: &Path) -> View {
    let mut out = View::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let rel_child = rel.join(e.file_name());
            let key = rel_child.as_os_str().as_bytes().to_vec();
            if key == b"lost+found" {
                continue;
            }
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            let ft = md.file_type();
            if ft.is_dir() {
                out.insert(key, ('d', 0, "-".into(), Vec::new()));
                stack.push(rel_child);
            } else if ft.is_symlink() {
                let t = std::fs::read_link(e.path()).unwrap();
                out.insert(key, ('l', 0, "-".into(), t.as_os_str().as_bytes().to_vec()));
            } else if ft.is_file() {
                let d = std::fs::read(e.path()).unwrap();
                out.insert(key, ('f', md.len(), hex(&Sha256::digest(&d)), Vec::new()));
            }
        }
    }
    out
}

fn ours(fs: &extfs::Filesystem) -> View {
    walk(fs)
        .into_iter()
        .filter(|(_, r)| "fdl".contains(r.kind))
        .map(|(p, r)| {
            let size = if r.kind == 'f' { r.size } else { 0 };
            (p, (r.kind, size, r.sha256, r.target))
        })
        .collect()
}

/// Inline-data files that `debugfs rdump` writes whole (all 60 bytes of `i_block`)
/// although `i_size` is smaller; the kernel and extfs return `i_size` bytes.
const DEBUGFS_RDUMP_IGNORES_I_SIZE: &[(&str, &str)] = &[("d_inline_dump", "shortfile")];

/// Replaces the rdump view of `path` by its first `Size:` bytes, the size
/// `debugfs -R "stat PATH"` itself reports.
fn truncate_to_debugfs_size(want: &mut View, img: &Path, out: &Path, path: &str) {
    let stat = Command::new("debugfs")
        .arg("-R")
        .arg(format!("stat /{path}"))
        .arg(img)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&stat.stdout);
    let size: usize = text
        .split("Size: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Size: in debugfs stat of {path}: {text}"));
    let data = std::fs::read(out.join(path)).unwrap();
    let data = &data[..size.min(data.len())];
    want.insert(
        path.as_bytes().to_vec(),
        (
            'f',
            data.len() as u64,
            hex(&Sha256::digest(data)),
            Vec::new(),
        ),
    );
}

fn tools_available() -> bool {
    Command::new("e2fsck").arg("-V").output().is_ok()
        && Command::new("debugfs").arg("-V").output().is_ok()
}

#[test]
fn clean_corpus_images_match_debugfs() {
    let root = corpus_dir();
    if !root.is_dir() || !tools_available() {
        common::missing("needs ../shared/corpus and e2fsck/debugfs on PATH");
        return;
    }
    let mut images: Vec<(String, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(root.join("e2fsprogs/tests"))
        .unwrap()
        .flatten()
    {
        if let Some(p) = e2fsprogs_image(&e.path()) {
            images.push((e.file_name().to_string_lossy().into_owned(), p));
        }
    }
    for p in [
        "ext4-view-rs/test_data/test_disk_ext2.bin.zst",
        "ext4-view-rs/test_data/test_disk_ext3.bin.zst",
    ] {
        images.push((p.to_string(), root.join(p)));
    }
    images.push((
        "util-linux ext3".into(),
        root.join("util-linux/tests/ts/blkid/images-fs/ext3.img.xz"),
    ));
    images.push((
        "dfvfs ext2".into(),
        root.join("dfvfs/history-89103e38/test_data/ext2.raw.gz"),
    ));
    images.sort();
    let tmp = std::env::temp_dir().join(format!("extfs-debugfs-{}", std::process::id()));
    let mut compared = Vec::new();
    let mut failures = Vec::new();
    for (label, path) in images {
        let Ok(bytes) = load_image(&path) else {
            continue;
        };
        let Ok(fs) = open_mem(bytes.clone(), true) else {
            continue;
        };
        let info = fs.info();
        if info.needs_recovery || info.features.iter().any(|f| f == "encrypt") {
            continue;
        }
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        let img = tmp.join("image");
        std::fs::write(&img, &bytes).unwrap();
        let clean = Command::new("timeout")
            .args(["-k", "5", "20", "e2fsck", "-fn"])
            .arg(&img)
            .output()
            .map(|o| o.status.success());
        if clean.ok() != Some(true) {
            continue;
        }
        let out = tmp.join("out");
        std::fs::create_dir_all(&out).unwrap();
        // A bound on the oracle too: e2fsck and debugfs can spin on a damaged image
        // (and e2fsck can sit on SIGTERM, hence `-k`: SIGKILL 5 s later).
        let status = Command::new("timeout")
            .args(["-k", "5", "120", "debugfs", "-R"])
            .arg(format!("rdump / {}", out.display()))
            .arg(&img)
            .output()
            .unwrap();
        if !status.status.success() {
            continue;
        }
        let mut want = host_tree(&out);
        for (quirk_image, path) in DEBUGFS_RDUMP_IGNORES_I_SIZE {
            if label == *quirk_image {
                truncate_to_debugfs_size(&mut want, &img, &out, path);
            }
        }
        let got = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ours(&fs))) {
            Ok(g) => g,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "walk failed".into());
                failures.push(format!("{label}: extfs walk failed: {msg}"));
                continue;
            }
        };
        let mut d = Vec::new();
        for (p, w) in &want {
            match got.get(p) {
                None => d.push(format!("missing {}", String::from_utf8_lossy(p))),
                Some(g) if g != w => d.push(format!(
                    "{}: debugfs {w:?} extfs {g:?}",
                    String::from_utf8_lossy(p)
                )),
                _ => {}
            }
        }
        for p in got.keys() {
            if !want.contains_key(p) {
                d.push(format!("extra {}", String::from_utf8_lossy(p)));
            }
        }
        if d.is_empty() {
            compared.push(format!("{label} ({} paths)", want.len()));
        } else {
            failures.push(format!("{label}: {}", d[..d.len().min(5)].join("; ")));
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!("agree with debugfs rdump: {}", compared.join(", "));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        compared.len() >= 5,
        "only {} images compared",
        compared.len()
    );
}

/// `f_zero_super` has its primary superblock zeroed; e2fsck falls back to the first
/// backup ("Superblock invalid, trying backup blocks"). extfs must do the same and
/// show what `debugfs -s 8193 -b 1024` (debugfs told where the backup is) shows.
#[test]
fn zeroed_primary_superblock_reads_like_debugfs_on_the_backup() {
    let path = corpus_dir().join("e2fsprogs/tests/f_zero_super/image.gz");
    if !path.is_file() || !tools_available() {
        common::missing("needs ../shared/corpus and debugfs on PATH");
        return;
    }
    let bytes = load_image(&path).unwrap();
    assert!(
        !bytes[1024..2048].iter().any(|b| *b != 0),
        "the primary superblock is expected to be zeroed"
    );
    let fs = open_mem(bytes.clone(), true).expect("opens from the backup superblock");
    let warnings = fs.warnings().join("\n");
    assert!(
        warnings.contains("backup superblock at block 8193"),
        "{warnings}"
    );
    let tmp = std::env::temp_dir().join(format!("extfs-zero-super-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("out")).unwrap();
    let img = tmp.join("image");
    std::fs::write(&img, &bytes).unwrap();
    let status = Command::new("timeout")
        .args([
            "-k", "5", "120", "debugfs", "-s", "8193", "-b", "1024", "-R",
        ])
        .arg(format!("rdump / {}", tmp.join("out").display()))
        .arg(&img)
        .output()
        .unwrap();
    assert!(status.status.success());
    let want = host_tree(&tmp.join("out"));
    let got = ours(&fs);
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(
        want.len() >= 5,
        "debugfs extracted only {} paths",
        want.len()
    );
    assert_eq!(got, want);
}
