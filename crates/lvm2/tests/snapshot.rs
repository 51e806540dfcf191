//! A classic snapshot (`scripts/fixtures/lvm2-thin.sh`, section snapshot). The VG
//! text (origin, COW LVs, `snapshot` segments) was validated and written by lvm2's
//! `vgcfgrestore`; `lvs.txt` is lvm2's report. The COW store was written by the
//! script from dm-snap-persistent.c's layout and read back by a second,
//! independent reassembly in the script, whose result equals the ext4 image the
//! snapshot was taken of (e2fsck and a kernel mount accepted it); `expected.txt`
//! holds the sha256 of the origin and of that snapshot image.

use bytesource::{ByteSource, MemSource, SharedSource, Window};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

fn data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/snapshot"))
}

fn pv() -> SharedSource {
    let raw = std::fs::read(data_dir().join("pv1.img.gz")).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .unwrap();
    Arc::new(MemSource::new(out))
}

fn report(file: &str) -> HashMap<String, Vec<String>> {
    std::fs::read_to_string(data_dir().join(file))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<String> = l.split('|').map(str::to_string).collect();
            (f[0].trim_matches(|c| c == '[' || c == ']').to_string(), f)
        })
        .collect()
}

fn sha256_of(src: &dyn ByteSource) -> String {
    let mut buf = vec![0u8; src.len() as usize];
    src.read_at(0, &mut buf).unwrap();
    Sha256::digest(&buf)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn snapshot_reads_as_it_was_and_origin_as_it_is() {
    let src = pv();
    let scan = lvm2::scan(&[lvm2::Device {
        name: "pv1".into(),
        source: src.clone(),
    }]);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    let vg = scan.vg("vg_snap").unwrap();
    let lvs = report("lvs.txt");
    let expected = std::fs::read_to_string(data_dir().join("expected.txt")).unwrap();
    for l in expected.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let lv = vg.open_lv(f[0]).unwrap();
        assert_eq!(lv.len().to_string(), f[1], "{}", f[0]);
        assert_eq!(sha256_of(&lv), f[2], "{}", f[0]);
    }
    // The hidden snapshotN LV reads the same as its COW LV's name.
    let a = vg.open_lv("snap").unwrap();
    let b = vg.open_lv("snapshot0").unwrap();
    assert_eq!(sha256_of(&a), sha256_of(&b));
    // What lvs lists: snap (not snapshot0), its origin and chunk size.
    assert!(vg.lv("snap").unwrap().visible);
    assert!(!vg.lv("snapshot0").unwrap().visible);
    assert!(!lvs.contains_key("snapshot0"));
    match &vg.lv("snap").unwrap().role {
        lvm2::LvRole::SnapshotCow {
            origin,
            chunk_size,
            snapshot_size,
            ..
        } => {
            assert_eq!(origin, &lvs["snap"][12]);
            assert_eq!(chunk_size.to_string(), lvs["snap"][11]);
            assert_eq!(*snapshot_size, vg.lv("orig").unwrap().size);
        }
        r => panic!("{r:?}"),
    }
    match &vg.lv("orig").unwrap().role {
        lvm2::LvRole::Origin { snapshots } => {
            let mut s = snapshots.clone();
            s.sort();
            assert_eq!(s, ["snap", "snapbad"]);
        }
        r => panic!("{r:?}"),
    }
    // lvs' size for a snapshot is its COW's.
    assert_eq!(vg.lv("snap").unwrap().size.to_string(), lvs["snap"][8]);
}

#[test]
fn invalid_snapshot_is_an_error_naming_it() {
    let scan = lvm2::scan(&[lvm2::Device {
        name: "pv1".into(),
        source: pv(),
    }]);
    let vg = scan.vg("vg_snap").unwrap();
    let e = vg.open_lv("snapbad").unwrap_err().to_string();
    assert!(
        e.contains("vg_snap/snapbad") && e.contains("invalid"),
        "{e}"
    );
}

/// The store itself, read from the COW LV's bytes at the PE range lvs reports:
/// the script wrote 324 exceptions over 2 areas (`exceptions.txt`).
#[test]
fn exception_store_spans_two_areas() {
    let src = pv();
    let lvs = report("lvs.txt");
    let pvs = report("pvs.txt");
    let pe_start: u64 = pvs["pv1"][2].parse().unwrap();
    let ext: u64 = pvs["pv1"][6].parse().unwrap();
    let first: u64 = lvs["snap"][6]
        .split(':')
        .nth(1)
        .unwrap()
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let size: u64 = lvs["snap"][8].parse().unwrap();
    let cow = Window::new(src, pe_start + first * ext, size).unwrap();
    let (store, warnings) = lvm2::snapshot::ExceptionStore::read(&cow, 4096).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let text = std::fs::read_to_string(data_dir().join("exceptions.txt")).unwrap();
    assert_eq!(
        text.trim(),
        format!("{} exceptions in {} areas", store.len(), store.areas)
    );
    assert_eq!(store.chunk_bytes, 4096);
}
