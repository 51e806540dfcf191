//! Journal replay against e2fsprogs and the kernel.
//!
//! scripts/fixtures/extfs.sh logs changes into the journal with debugfs (jo/jw/jc)
//! without writing them home, plus a revoked and an uncommitted transaction.
//! Expected states: `<name>.replayed.tsv.gz` (kernel mount after `e2fsck -fy`),
//! `<name>.kernel.tsv.gz` (the kernel's own replay) and `<name>.noload.tsv.gz`
//! (`mount -o ro,noload`).

mod common;

use common::*;

fn check(name: &str) {
    let dir = data_dir();
    let img = load_image(&dir.join(format!("{name}.img.gz"))).unwrap();

    let fs = open_mem(img.clone(), true).unwrap();
    let info = fs.info();
    assert!(info.needs_recovery, "{name}: needs_recovery");
    assert!(info.journal_replayed, "{name}: replayed");
    let warnings = fs.warnings();
    assert!(
        warnings.iter().any(|w| w.contains("replayed")),
        "{name}: {warnings:?}"
    );
    let got = walk(&fs);
    for oracle in ["kernel", "replayed"] {
        let want = read_manifest(&dir.join(format!("{name}.{oracle}.tsv.gz")));
        let d = diff(&want, &got);
        assert!(d.is_empty(), "{name} vs {oracle}: {}", d.join("\n"));
    }
    // The change only in the journal is visible.
    assert!(fs.lookup(b"/new-in-journal.txt").is_ok());
    assert!(fs.lookup(b"/journal-dir/inner.txt").is_ok());

    let fs = open_mem(img, false).unwrap();
    assert!(fs.info().needs_recovery);
    assert!(!fs.info().journal_replayed);
    let want = read_manifest(&dir.join(format!("{name}.noload.tsv.gz")));
    let d = diff(&want, &walk(&fs));
    assert!(d.is_empty(), "{name} vs noload: {}", d.join("\n"));
    assert!(matches!(
        fs.lookup(b"/new-in-journal.txt"),
        Err(extfs::Error::NotFound { .. })
    ));
}

#[test]
fn journal_ext4_csum_v3_64bit() {
    check("journal-ext4");
}

#[test]
fn journal_ext3_1k_32bit() {
    check("journal-ext3");
}
