//! Thin LVs, thin snapshots and classic snapshots through the front end: `export`
//! of each LV equals the image that scripts/fixtures/lvm2-thin.sh assembled with an
//! independent script from thin_dump's XML and lvm2's reports (checked there with
//! e2fsck and a kernel mount), and `info --json` reports the pools as lvm2 and
//! thin_dump do (crates/lvm2/tests/data/*/lvs.txt, thin_dump-p1.xml).

mod common;
use common::*;
use std::io::Read;
use std::path::{Path, PathBuf};

fn unpack(rel: &str, dir: &Path) -> PathBuf {
    let src = root().join("crates/lvm2/tests/data").join(rel);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&src).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    let p = dir.join(rel.replace('/', "-").trim_end_matches(".gz"));
    std::fs::write(&p, out).unwrap();
    p
}

fn expected(rel: &str) -> Vec<(String, u64, String)> {
    std::fs::read_to_string(root().join("crates/lvm2/tests/data").join(rel))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].parse().unwrap(), f[2].to_string())
        })
        .collect()
}

fn check_exports(pv: &Path, vg: &str, list: &[(String, u64, String)], dir: &Path) {
    for (lv, size, sha) in list {
        let out = dir.join(format!("{lv}.raw"));
        run_ok(&[
            "export",
            pv.to_str().unwrap(),
            &format!("{vg}/{lv}"),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(std::fs::metadata(&out).unwrap().len(), *size, "{lv} size");
        assert_eq!(&sha256_file(&out), sha, "{vg}/{lv} bytes");
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn thin_lvs_and_thin_snapshot_export_as_assembled_from_thin_dump() {
    let dir = tempfile::tempdir().unwrap();
    let pv = unpack("thin/pv1.img.gz", dir.path());
    check_exports(&pv, "vg_thin", &expected("thin/expected.txt"), dir.path());
}

#[test]
fn classic_snapshot_exports_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let pv = unpack("snapshot/pv1.img.gz", dir.path());
    let out = run(&["info", "--json", pv.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vg = v["volume_groups"][0]["name"].as_str().unwrap().to_string();
    // lvm2's own report names the same VG.
    let lvs =
        std::fs::read_to_string(root().join("crates/lvm2/tests/data/snapshot/lvs.txt")).unwrap();
    let vgs =
        std::fs::read_to_string(root().join("crates/lvm2/tests/data/snapshot/pvs.txt")).unwrap();
    assert!(
        lvs.contains(&vg) || vgs.contains(&vg),
        "{vg} not in lvm2's reports"
    );
    check_exports(&pv, &vg, &expected("snapshot/expected.txt"), dir.path());
}

#[test]
fn info_reports_thin_pools_as_thin_dump_does() {
    let dir = tempfile::tempdir().unwrap();
    let pv = unpack("thin/pv1.img.gz", dir.path());
    let out = run(&["info", "--json", pv.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lvs = v["volume_groups"][0]["lvs"].as_array().unwrap();
    let role = |name: &str| {
        lvs.iter()
            .find(|l| l["name"] == name)
            .map(|l| l["role"].clone())
            .unwrap()
    };
    // thin_dump-p1.xml: <device dev_id="1" mapped_blocks="11" ...>, dev 2 maps 10,
    // dev 3 maps 3000; data_block_size 128 sectors (64 KiB).
    let xml = std::fs::read_to_string(root().join("crates/lvm2/tests/data/thin/thin_dump-p1.xml"))
        .unwrap();
    for (lv, dev) in [("thin1", 1), ("snap1", 2), ("big", 3)] {
        let r = role(lv);
        assert_eq!(r["kind"], "thin");
        assert_eq!(r["device_id"], dev);
        let tag = format!("dev_id=\"{dev}\" mapped_blocks=\"{}\"", r["mapped_blocks"]);
        assert!(xml.contains(&tag), "{lv}: {tag} not in thin_dump's XML");
    }
    assert_eq!(role("snap1")["origin"], "thin1");
    let p1 = role("p1");
    assert_eq!(p1["kind"], "thin_pool");
    assert_eq!(p1["chunk_size"], 65536);
    assert!(xml.contains("data_block_size=\"128\""));
}
