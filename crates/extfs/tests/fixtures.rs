//! Walks every fixture built by scripts/fixtures/extfs.sh and compares with the
//! manifest the script wrote from a kernel mount of the same image.

mod common;

use common::*;

const IMAGES: &[&str] = &[
    "ext2-1k",
    "ext3-128",
    "ext4",
    "ext4-64bit-csum",
    "ext4-inline",
    "ext4-bigalloc",
    "ext4-meta-bg",
];

fn check_image(name: &str) {
    let dir = data_dir();
    let bytes = load_image(&dir.join(format!("{name}.img.gz"))).unwrap();
    let fs = open_mem(bytes, true).unwrap();
    let expected = read_manifest(&dir.join(format!("{name}.tsv.gz")));
    let got = walk(&fs);
    let d = diff(&expected, &got);
    assert!(
        d.is_empty(),
        "{name}: {} differences:\n{}",
        d.len(),
        d.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    let w = fs.warnings();
    assert!(w.is_empty(), "{name}: unexpected warnings: {w:?}");
}

#[test]
fn ext2_1k() {
    check_image("ext2-1k");
}
#[test]
fn ext3_128() {
    check_image("ext3-128");
}
#[test]
fn ext4() {
    check_image("ext4");
}
#[test]
fn ext4_64bit_csum() {
    check_image("ext4-64bit-csum");
}
#[test]
fn ext4_inline() {
    check_image("ext4-inline");
}
#[test]
fn ext4_bigalloc() {
    check_image("ext4-bigalloc");
}
#[test]
fn ext4_meta_bg() {
    check_image("ext4-meta-bg");
}

#[test]
fn all_images_listed() {
    for name in IMAGES {
        assert!(
            data_dir().join(format!("{name}.img.gz")).exists(),
            "{name} missing"
        );
    }
}

/// 64 KiB blocks (rec_len 65536 encodings): the oracle is debugfs `rdump`,
/// which keeps kind, permission bits (not setuid/sticky), size, contents and
/// symlink targets.
#[test]
fn ext4_64k_blocks_vs_debugfs_rdump() {
    let dir = data_dir();
    let bytes = load_image(&dir.join("ext4-64k.img.gz")).unwrap();
    let fs = open_mem(bytes, true).unwrap();
    assert_eq!(fs.info().block_size, 65536);
    let got = walk(&fs);
    let want = read_manifest(&dir.join("ext4-64k.rdump.tsv.gz"));
    assert!(want.len() > 3000, "{} rows", want.len());
    let mut diffs = Vec::new();
    for (p, w) in &want {
        let ps = String::from_utf8_lossy(p);
        let Some(g) = got.get(p) else {
            diffs.push(format!("missing {ps}"));
            continue;
        };
        let same = g.kind == w.kind
            && g.sha256 == w.sha256
            && g.target == w.target
            && (w.kind != 'f' || g.size == w.size)
            && (w.kind == 'l' || g.mode & 0o777 == w.mode & 0o777);
        if !same {
            diffs.push(format!("{ps}: want {w:?}\n  got {g:?}"));
        }
    }
    // rdump skips device nodes, fifos and sockets; everything else must be there.
    for (p, g) in &got {
        if !want.contains_key(p) && "fdl".contains(g.kind) {
            diffs.push(format!("extra {}", String::from_utf8_lossy(p)));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
