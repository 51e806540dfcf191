//! extfs's fixtures (crates/extfs/tests/, made by scripts/fixtures/extfs*.sh from
//! kernel mounts) used as raw disks by the binary: what the kernel saw is the oracle.

mod common;
use common::*;
use std::io::Read;
use std::os::unix::fs::MetadataExt;

fn gunzip(path: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Warnings that describe the state found at open (here: a journal that needs
/// recovery, replayed in memory) are printed with the volume name but do not change
/// the exit status. The image is extfs's journal fixture (scripts/fixtures/extfs.sh:
/// debugfs logged `/new-in-journal.txt` into the journal only), used as a raw disk;
/// the kernel's own replay lists that file (journal-ext3.kernel.tsv.gz).
#[test]
fn warnings_at_open_do_not_fail_the_command() {
    let data = root().join("crates/extfs/tests/data");
    let img = gunzip(&data.join("journal-ext3.img.gz"));
    let kernel = String::from_utf8(gunzip(&data.join("journal-ext3.kernel.tsv.gz"))).unwrap();
    assert!(
        kernel.contains("new-in-journal.txt"),
        "oracle lists the file"
    );
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("journal.img");
    std::fs::write(&raw, img).unwrap();
    let out = run_ok(&["ls", "-R", raw.to_str().unwrap(), "sda:/"]);
    let err = stderr(&out);
    assert!(
        err.contains("vmdkrecover: sda: warning: journal needs recovery"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == "new-in-journal.txt"));
}

/// Preallocated (unwritten) extents read as zeros and are copied as holes: the
/// copy has the kernel's bytes (sha256sum through the mount) but not its blocks.
#[test]
fn cp_keeps_unwritten_extents_as_holes() {
    let src = root().join("crates/extfs/tests/unwritten");
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("unwritten.img");
    std::fs::write(&raw, gunzip(&src.join("unwritten.img.gz"))).unwrap();
    let sums = std::fs::read_to_string(src.join("sha256.txt")).unwrap();
    let dest = dir.path().join("out");
    std::fs::create_dir(&dest).unwrap();
    for name in ["all-unwritten", "mixed"] {
        run_ok(&[
            "cp",
            raw.to_str().unwrap(),
            &format!("sda:/{name}"),
            dest.to_str().unwrap(),
        ]);
        let copy = dest.join(name);
        let want = sums
            .lines()
            .find_map(|l| l.strip_suffix(&format!("  {name}")))
            .unwrap();
        assert_eq!(sha256_file(&copy), want, "{name}");
        let m = std::fs::metadata(&copy).unwrap();
        assert!(
            m.blocks() * 512 < m.len() / 2,
            "{name}: unwritten space was filled in ({} blocks)",
            m.blocks()
        );
    }
}
