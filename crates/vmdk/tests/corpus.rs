//! The public sample corpus (`../shared/corpus`), compared with `qemu-img convert -O raw`
//! checksums taken once with qemu-img 10.0.2 (recorded by `scripts/fixtures/vmdk.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
use bytesource::ByteSource;
use common::*;
use vmdk::{Allocation, Disk};

fn check(rel: &str) {
    let Some(c) = corpus() else { return };
    let sha = expected_for(&format!("corpus:{rel}"));
    let d = Disk::open(&c.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    // Odd chunk size: reads straddle grains and extents.
    assert_eq!(sha_of(&d, 1 << 20), sha, "{rel} (1 MiB reads)");
    assert_eq!(sha_of(&d, 12_345), sha, "{rel} (odd reads)");
}

#[test]
fn vmdkrs_variants_equal_qemu() {
    for f in [
        "monolithicSparse.vmdk",
        "streamOptimized.vmdk",
        "twoGbMaxExtentSparse.vmdk",
        "monolithicFlat.vmdk",
        "twoGbMaxExtentFlat.vmdk",
    ] {
        check(&format!("vmdk-rs/data/{f}"));
    }
    check("vmdk-rs/data/streamOptimizedWithMarkers.vmdk");
}

#[test]
fn vmfs_thick_equals_qemu_and_flat_file() {
    check("vmdk-rs/data/vmfs_thick.vmdk");
    // The -flat file given directly is a raw disk with the same bytes.
    let Some(c) = corpus() else { return };
    let d = Disk::open(&c.join("vmdk-rs/data/vmfs_thick-flat.vmdk")).unwrap();
    assert_eq!(d.info().format, "raw");
    assert_eq!(
        sha_of(&d, 65536),
        expected_for("corpus:vmdk-rs/data/vmfs_thick.vmdk")
    );
}

#[test]
fn missing_delta_is_a_clean_error() {
    let Some(c) = corpus() else { return };
    let e = Disk::open(&c.join("vmdk-rs/data/vmfs_thick-000001.vmdk"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("vmfs_thick-000001-delta.vmdk"), "{e}");
    assert!(e.contains("not found"), "{e}");
    assert!(e.contains("looked in"), "{e}");
}

#[test]
fn small_qemu_made_samples() {
    check("dfvfs/test_data/ext2.vmdk");
    check("go-vmdk-parser/pkg/virtualization/vmdk/testdata/vmdk-monolith.img");
    check("go-vmdk-parser/pkg/virtualization/vmdk/testdata/vmdk-streamoptimized.img");
    check("vmdk-forensic/core/tests/data/compressed_stream_opt.vmdk");
    check("dfvfs/history-a1e113a0/test_data/image.vmdk");
}

#[test]
fn dfvfs_ext2_equals_splitraw() {
    let Some(c) = corpus() else { return };
    let d = Disk::open(&c.join("dfvfs/test_data/ext2.vmdk")).unwrap();
    let mut raw = std::fs::read(c.join("dfvfs/test_data/ext2.splitraw.000")).unwrap_or_default();
    raw.extend(std::fs::read(c.join("dfvfs/test_data/ext2.splitraw.001")).unwrap_or_default());
    if raw.is_empty() {
        missing("dfvfs/test_data/ext2.splitraw.* not in the corpus");
        return;
    }
    assert_eq!(sha_of(&d, 65536), sha_bytes(&raw));
}

#[test]
fn iotest_version3_pattern() {
    let Some(c) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = bunzip(
        &c.join("qemu/tests/qemu-iotests/sample_images/iotest-version3.vmdk.bz2"),
        dir.path(),
        "iotest-version3.vmdk",
    );
    let d = Disk::open(&p).unwrap();
    assert_eq!(d.len(), 16 << 30);
    let mut buf = vec![0u8; 2048];
    for i in 0u64..100 {
        let at = i * 655_360 + i * 512;
        d.read_at(at - 512.min(at), &mut buf).unwrap();
        let v = 0x30 + (i % 10) as u8;
        let lead = 512.min(at) as usize;
        assert!(buf[lead..lead + 512].iter().all(|&b| b == v), "pattern {i}");
        assert!(buf[lead + 512..].iter().all(|&b| b == 0), "zeros after {i}");
    }
    // Almost all of the 16 GiB is unallocated: allocation() skips it cheaply.
    let runs = d.allocation(0, d.len()).unwrap();
    let data: u64 = runs
        .iter()
        .filter(|r| r.2 == Allocation::Data)
        .map(|r| r.1)
        .sum();
    assert!(data > 0 && data < 100 << 20, "{data}");
}

/// The VMware-made stream keeps its grain directory in the footer (`GD_AT_END`). Cut
/// short, or with the directory damaged, the map is rebuilt from the grain markers.
#[test]
fn iotest_version3_without_footer_is_rebuilt() {
    let Some(c) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = bunzip(
        &c.join("qemu/tests/qemu-iotests/sample_images/iotest-version3.vmdk.bz2"),
        dir.path(),
        "v3.vmdk",
    );
    let full = std::fs::read(&p).unwrap();
    let pattern_ok = |d: &Disk, i: u64| {
        let mut b = vec![0u8; 512];
        d.read_at(i * 655_360 + i * 512, &mut b).unwrap();
        b.iter().all(|&x| x == 0x30 + (i % 10) as u8)
    };
    // Footer damaged: every grain is still found.
    let mut b = full.clone();
    let n = b.len();
    b[n - 1024..n - 1020].copy_from_slice(b"XXXX");
    std::fs::write(&p, &b).unwrap();
    let d = Disk::open(&p).unwrap();
    assert!(
        d.warnings().join(" ").contains("rebuilt the grain map"),
        "{:?}",
        d.warnings()
    );
    assert!((0..100).all(|i| pattern_ok(&d, i)));
    // Cut in half: the first patterns read, nothing later is invented.
    std::fs::write(&p, &full[..full.len() / 2]).unwrap();
    let d = Disk::open(&p).unwrap();
    let w = d.warnings().join(" ");
    assert!(
        w.contains("rebuilt the grain map") && w.contains("stopped"),
        "{w}"
    );
    let good = (0..100).take_while(|&i| pattern_ok(&d, i)).count();
    assert!(good >= 20, "{good}");
    // Every grain found in the cut file is a grain of the whole file, same bytes.
    let whole_path = dir.path().join("whole.vmdk");
    std::fs::write(&whole_path, &full).unwrap();
    let whole = Disk::open(&whole_path).unwrap();
    let whole_runs = whole.allocation(0, whole.len()).unwrap();
    for (off, len, a) in d.allocation(0, d.len()).unwrap() {
        if a == Allocation::Data {
            assert!(
                whole_runs
                    .iter()
                    .any(|r| r.2 == Allocation::Data && r.0 <= off && off + len <= r.0 + r.1),
                "{off} {len}"
            );
            let mut x = vec![0u8; len as usize];
            let mut y = vec![0u8; len as usize];
            d.read_at(off, &mut x).unwrap();
            whole.read_at(off, &mut y).unwrap();
            assert!(x == y, "{off}");
        }
    }
}

#[test]
fn afl9_fails_cleanly() {
    let Some(c) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = bunzip(
        &c.join("qemu/tests/qemu-iotests/sample_images/afl9.vmdk.bz2"),
        dir.path(),
        "afl9.vmdk",
    );
    let e = Disk::open(&p).unwrap_err().to_string();
    assert!(e.starts_with("afl9.vmdk: "), "{e}");
}

/// `vmdk-invalid.img` is the go-vmdk-parser stream-optimized sample with its embedded
/// descriptor blanked and 349 bytes cut off the end. qemu refuses it ("File
/// truncated"); we open it with warnings, since the grain data that is left is intact.
#[test]
fn vmdk_invalid_opens_with_warnings() {
    let Some(c) = corpus() else { return };
    let d = Disk::open(&c.join("go-vmdk-parser/pkg/virtualization/vmdk/testdata/vmdk-invalid.img"))
        .unwrap();
    let w = d.warnings().join("\n");
    assert!(w.contains("truncated"), "{w}");
    assert!(w.contains("embedded descriptor is empty"), "{w}");
    let good = Disk::open(
        &c.join("go-vmdk-parser/pkg/virtualization/vmdk/testdata/vmdk-streamoptimized.img"),
    )
    .unwrap();
    assert_eq!(sha_of(&d, 4096), sha_of(&good, 4096));
}

#[test]
fn sesparse_reads_as_a() {
    let Some(c) = corpus() else { return };
    let Some(gz) = std::fs::read_dir(c.join("dissect.hypervisor"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("tests/data/sesparse.vmdk.gz"))
        .find(|p| p.exists())
    else {
        missing("dissect.hypervisor/*/tests/data/sesparse.vmdk.gz not in the corpus");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = gunzip(&gz, dir.path(), "sesparse.vmdk");
    let d = Disk::open(&p).unwrap();
    assert_eq!(d.info().format, "seSparse");
    let mut buf = vec![0u8; 16 << 20];
    d.read_at(0, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == b'a'));
    // qemu-img convert of the same file through a SESPARSE descriptor.
    assert_eq!(
        sha_of(&d, 1 << 20),
        expected_for("corpus:dissect.hypervisor/sesparse.vmdk.gz")
    );
}

/// vmdk-forensic's 16-extent twoGbMaxExtentSparse descriptor, without its extents.
#[test]
fn ms3_win_descriptor_parses_and_names_the_missing_extent() {
    let Some(c) = corpus() else { return };
    let p = c.join("vmdk-forensic/core/tests/data/ms3-win.vmdk");
    let d = vmdk::descriptor::parse(&std::fs::read_to_string(&p).unwrap()).unwrap();
    assert_eq!(d.extents.len(), 16);
    assert_eq!(d.total_sectors(), Some(15 * 8_323_072 + 983_040));
    assert_eq!(d.cid, Some(0x216b_c064));
    assert_eq!(d.get("ddb.virtualHWVersion"), Some("13"));
    let e = Disk::open(&p).unwrap_err().to_string();
    assert!(
        e.starts_with("ms3-win.vmdk: extent file disk-s001.vmdk not found (looked in "),
        "{e}"
    );
}

/// libyal's descriptor fragments.
#[test]
fn libvmdk_descriptor_fragments() {
    let Some(c) = corpus() else { return };
    let text = std::fs::read_to_string(c.join("libvmdk/tests/data/descriptor_file.1")).unwrap();
    let d = vmdk::descriptor::parse(&text).unwrap();
    assert_eq!(d.create_type.as_deref(), Some("monolithicSparse"));
    assert_eq!(d.get("encoding"), Some("windows-1252"));
    assert_eq!(d.get("isNativeSnapshot"), Some("no"));
    assert_eq!(d.extents[0].sectors, 16_777_216);
    assert_eq!(d.extents[0].file.as_deref(), Some("test1.vmdk"));
    let text = std::fs::read_to_string(c.join("libvmdk/tests/data/extent_values.1")).unwrap();
    let d = vmdk::descriptor::parse(&text).unwrap();
    assert_eq!(d.extents[0].kind, "SPARSE");
}
