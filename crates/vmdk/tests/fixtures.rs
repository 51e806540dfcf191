//! The committed fixtures (built by `scripts/fixtures/vmdk.sh` with qemu-img/qemu-io),
//! compared with the bytes `qemu-img convert -O raw` read from them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
use bytesource::ByteSource;
use common::*;
use vmdk::{Allocation, Disk, OpenOptions};

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn every_fixture_matches_its_oracle() {
    let dir = fixtures();
    let mut n = 0;
    for (sha, name) in expected() {
        if name.starts_with("corpus:") {
            continue;
        }
        let d = Disk::open(&dir.path().join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sha_of(&d, 1 << 20), sha, "{name} (1 MiB reads)");
        assert_eq!(sha_of(&d, 3_000), sha, "{name} (3000-byte reads)");
        n += 1;
    }
    assert!(n >= 10, "only {n} fixtures");
}

#[test]
fn info_reports_formats_and_extents() {
    let dir = fixtures();
    let p = dir.path();
    let fmt = |n: &str| Disk::open(&p.join(n)).unwrap().info().format;
    assert_eq!(fmt("base.img"), "raw");
    assert_eq!(fmt("msparse.vmdk"), "monolithicSparse");
    assert_eq!(fmt("mflat.vmdk"), "monolithicFlat");
    assert_eq!(fmt("split-sparse.vmdk"), "twoGbMaxExtentSparse");
    assert_eq!(fmt("split-flat.vmdk"), "twoGbMaxExtentFlat");
    assert_eq!(fmt("stream.vmdk"), "streamOptimized");
    // A -flat file opened directly is a raw disk.
    assert_eq!(fmt("mflat-flat.vmdk"), "raw");

    let zf = Disk::open(&p.join("zeroflat.vmdk")).unwrap().info();
    let kinds: Vec<_> = zf
        .extents
        .iter()
        .map(|e| {
            (
                e.access.as_str(),
                e.kind.as_str(),
                e.sectors,
                e.offset_sectors,
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("RW", "FLAT", 2048, 16),
            ("RW", "ZERO", 1024, 0),
            ("RDONLY", "VMFS", 2048, 0),
            ("NOACCESS", "FLAT", 8, 0)
        ]
    );
    assert_eq!(zf.size, (2048 + 1024 + 2048 + 8) * 512);
    assert_eq!(zf.extents[1].file, None);
    assert_eq!(
        zf.extents[2].file.as_deref(),
        Some(p.join("zf-é-b.bin").as_path())
    );
    assert_eq!(zf.cid, Some(0x12345678));
}

#[test]
fn chain_reads_through_parents() {
    let dir = fixtures();
    let d = Disk::open(&dir.path().join("chain-grandchild.vmdk")).unwrap();
    let info = d.info();
    let child = info.parent.as_ref().unwrap();
    let base = child.parent.as_ref().unwrap();
    assert!(base.parent.is_none());
    assert_eq!(base.path, dir.path().join("chain-base.vmdk"));
    assert_eq!(info.parent_cid, child.cid);
    assert!(d.warnings().is_empty(), "{:?}", d.warnings());
    let mut b = [0u8; 16];
    d.read_at(1040 << 10, &mut b).unwrap();
    assert_eq!(b, [0xef; 16]);
    d.read_at((1 << 20) + 100, &mut b).unwrap();
    assert_eq!(b, [0xab; 16]);
    d.read_at(4000 << 10, &mut b).unwrap();
    assert_eq!(b, [0xcd; 16]);
    d.read_at(512 * 7, &mut b).unwrap();
    assert_eq!(&b, b"base sector 0000");
    // Allocation looks through the chain: data where any layer has it.
    let runs = d.allocation(0, d.len()).unwrap();
    let total: u64 = runs.iter().map(|r| r.1).sum();
    assert_eq!(total, d.len());
    let at = |off: u64| {
        runs.iter()
            .find(|r| r.0 <= off && off < r.0 + r.1)
            .unwrap()
            .2
    };
    assert_eq!(at(0), Allocation::Data);
    assert_eq!(at(1 << 20), Allocation::Data);
    assert_eq!(at((1 << 20) + (512 << 10)), Allocation::Unallocated);
}

#[test]
fn cid_mismatch_is_a_warning() {
    let dir = fixtures();
    let p = dir.path().join("chain-child.vmdk");
    // The child is a sparse file with an embedded descriptor: patch it in place.
    let mut bytes = std::fs::read(&p).unwrap();
    let at = find(&bytes, b"parentCID=").unwrap() + 10;
    bytes[at..at + 8].copy_from_slice(b"00001234");
    std::fs::write(&p, bytes).unwrap();
    let d = Disk::open(&p).unwrap();
    let w = d.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("chain-child.vmdk: parentCID 0x1234 does not match parent CID 0x"),
        "{}",
        w[0]
    );
    assert_eq!(sha_of(&d, 1 << 20), expected_for("chain-child.vmdk"));
}

#[test]
fn cowd_child_with_absolute_esx_parent_path() {
    let dir = fixtures();
    let d = Disk::open(&dir.path().join("cowd-000001.vmdk")).unwrap();
    let info = d.info();
    assert_eq!(info.format, "vmfsSparse");
    assert_eq!(info.extents[0].kind, "VMFSSPARSE");
    assert_eq!(
        info.parent.as_ref().unwrap().path,
        dir.path().join("cowd-base.vmdk")
    );
    assert_eq!(sha_of(&d, 1 << 20), expected_for("cowd-000001.vmdk"));
    // The delta opened alone: a COWD file without parent reads zeros where unallocated.
    let lone = Disk::open(&dir.path().join("cowd-000001-delta.vmdk")).unwrap();
    assert_eq!(lone.info().format, "vmfsSparse");
    let mut b = [0u8; 512];
    lone.read_at(0, &mut b).unwrap();
    assert_eq!(b, [0u8; 512]);
    lone.read_at(100 * 512, &mut b).unwrap();
    assert_eq!(b, [0xc4; 512]);
}

#[test]
fn child_without_parent_reads_zeros_and_missing_parent_is_named() {
    let dir = fixtures();
    std::fs::remove_file(dir.path().join("chain-base.vmdk")).unwrap();
    let e = Disk::open(&dir.path().join("chain-child.vmdk"))
        .unwrap_err()
        .to_string();
    // msparse.vmdk is the same disk as chain-base.vmdk (qemu-img gave both CID
    // 1be0dcbb, the child's parentCID): it is offered as the renamed parent.
    assert_eq!(
        e,
        "chain-child.vmdk: parent chain-base.vmdk not found beside it; msparse.vmdk has CID 1be0dcbb, this disk's parentCID: read it as is with --extent-map chain-base.vmdk=msparse.vmdk"
    );
    std::fs::remove_file(dir.path().join("msparse.vmdk")).unwrap();
    let e = Disk::open(&dir.path().join("chain-child.vmdk"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("chain-child.vmdk: parent chain-base.vmdk not found (looked in "),
        "{e}"
    );
}

#[test]
fn moved_descriptor_and_missing_or_short_extent() {
    let dir = fixtures();
    let p = dir.path();
    let e = {
        std::fs::rename(p.join("mflat-flat.vmdk"), p.join("elsewhere.bin")).unwrap();
        Disk::open(&p.join("mflat.vmdk")).unwrap_err().to_string()
    };
    // Two flat files of the declared size sit beside it: both are named.
    assert_eq!(
        e,
        "mflat.vmdk: extent file mflat-flat.vmdk not found beside it; cowd-base-flat.vmdk, split-flat-f001.vmdk have the declared size (4194304 bytes): read the right one with --extent-map mflat-flat.vmdk=FILE"
    );
    std::fs::remove_file(p.join("cowd-base-flat.vmdk")).unwrap();
    std::fs::remove_file(p.join("split-flat-f001.vmdk")).unwrap();
    let e = Disk::open(&p.join("mflat.vmdk")).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "mflat.vmdk: extent file mflat-flat.vmdk not found (looked in {})",
            p.display()
        )
    );
    // A short flat file: the error names the file, the declared and the actual size.
    let data = std::fs::read(p.join("elsewhere.bin")).unwrap();
    std::fs::write(p.join("mflat-flat.vmdk"), &data[..data.len() - 4096]).unwrap();
    let e = Disk::open(&p.join("mflat.vmdk")).unwrap_err().to_string();
    assert_eq!(
        e,
        "mflat-flat.vmdk: extent declares 8192 sectors (4194304 bytes), file has 4190208 bytes"
    );
}

#[test]
fn extent_path_escaping_the_folder_is_refused() {
    let dir = fixtures();
    let p = dir.path();
    let sub = p.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let text = std::fs::read_to_string(p.join("mflat.vmdk")).unwrap();
    let text = text.replace("\"mflat-flat.vmdk\"", "\"../mflat-flat.vmdk\"");
    std::fs::write(sub.join("x.vmdk"), text).unwrap();
    let e = Disk::open(&sub.join("x.vmdk")).unwrap_err().to_string();
    assert!(e.contains("leaves the descriptor's folder"), "{e}");
    let d = Disk::open_with(
        &sub.join("x.vmdk"),
        &OpenOptions {
            allow_extents_outside_dir: true,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    assert_eq!(sha_of(&d, 1 << 20), expected_for("mflat.vmdk"));
}

#[test]
fn absolute_extent_path_resolves_beside_the_descriptor() {
    let dir = fixtures();
    let p = dir.path();
    let text = std::fs::read_to_string(p.join("mflat.vmdk")).unwrap();
    let text = text.replace(
        "\"mflat-flat.vmdk\"",
        "\"/vmfs/volumes/5a1b-22/web01/mflat-flat.vmdk\"",
    );
    std::fs::write(p.join("abs.vmdk"), text).unwrap();
    let d = Disk::open(&p.join("abs.vmdk")).unwrap();
    assert_eq!(sha_of(&d, 1 << 20), expected_for("mflat.vmdk"));
}

#[test]
fn parent_loop_and_depth_are_bounded() {
    let dir = fixtures();
    let p = dir.path();
    // A child whose parent is itself (same-length name patched into the embedded
    // descriptor).
    let mut bytes = std::fs::read(p.join("chain-child.vmdk")).unwrap();
    let at = find(&bytes, b"chain-base.vmdk").unwrap();
    bytes[at..at + 15].copy_from_slice(b"chain-loop.vmdk");
    std::fs::write(p.join("chain-loop.vmdk"), bytes).unwrap();
    let e = Disk::open(&p.join("chain-loop.vmdk"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("loops"), "{e}");
    // A chain of 70 descriptors, each a ZERO disk pointing to the next.
    for i in 0..70 {
        std::fs::write(
            p.join(format!("deep{i}.vmdk")),
            format!(
                "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=1\ncreateType=\"monolithicFlat\"\nparentFileNameHint=\"deep{}.vmdk\"\nRW 8 ZERO\n",
                i + 1
            ),
        )
        .unwrap();
    }
    std::fs::write(
        p.join("deep70.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 8 ZERO\n",
    )
    .unwrap();
    let e = Disk::open(&p.join("deep0.vmdk")).unwrap_err().to_string();
    assert!(e.contains("deeper than 64"), "{e}");
    assert!(Disk::open(&p.join("deep10.vmdk")).is_ok());
}

#[test]
fn allocation_of_sparse_and_zero_extents() {
    let dir = fixtures();
    let d = Disk::open(&dir.path().join("msparse.vmdk")).unwrap();
    let runs = d.allocation(0, d.len()).unwrap();
    // qemu-img leaves all-zero grains unallocated: [1 MiB, 2 MiB) is a hole.
    assert!(runs.contains(&(0, 1 << 20, Allocation::Data)), "{runs:?}");
    assert!(
        runs.iter()
            .any(|r| r.2 == Allocation::Unallocated && r.0 <= 1 << 20 && r.0 + r.1 >= 2 << 20),
        "{runs:?}"
    );
    let z = Disk::open(&dir.path().join("zeroflat.vmdk")).unwrap();
    let runs = z.allocation(0, z.len()).unwrap();
    assert_eq!(
        runs,
        [
            (0, 1 << 20, Allocation::Data),
            (1 << 20, 512 << 10, Allocation::Zero),
            ((1 << 20) + (512 << 10), (1 << 20) + 4096, Allocation::Data),
        ]
    );
}

#[test]
fn reads_are_coalesced_into_few_backing_reads() {
    // A 1 MiB read of a contiguous monolithicSparse region becomes one file read per
    // contiguous run, not one per 64 KiB grain. Measured with a counting source.
    let dir = fixtures();
    let src: bytesource::SharedSource =
        std::sync::Arc::new(bytesource::FileSource::open(dir.path().join("msparse.vmdk")).unwrap());
    let counting = std::sync::Arc::new(bytesource::Counting::new(src));
    let d = Disk::from_source(counting.clone()).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    d.read_at(0, &mut buf).unwrap(); // loads the grain table
    let before = counting.reads();
    d.read_at(0, &mut buf).unwrap();
    assert!(
        counting.reads() - before <= 2,
        "{} reads",
        counting.reads() - before
    );
}

#[test]
fn concurrent_reads_agree() {
    let dir = fixtures();
    let d = std::sync::Arc::new(Disk::open(&dir.path().join("stream.vmdk")).unwrap());
    let want = expected_for("stream.vmdk");
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let d = d.clone();
            std::thread::spawn(move || sha_of(&*d, 4096 + i * 1000))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), want);
    }
}

#[test]
fn truncated_qemu_stream_reads_what_is_left() {
    // qemu writes its stream's grain directory near the start, so a cut file keeps
    // its map: grains before the cut read, grains after it fail clearly.
    let dir = fixtures();
    let full = std::fs::read(dir.path().join("stream.vmdk")).unwrap();
    let good = Disk::open(&dir.path().join("stream.vmdk")).unwrap();
    let mut want = vec![0u8; 1 << 20];
    good.read_at(0, &mut want).unwrap();
    let p = dir.path().join("cut.vmdk");
    std::fs::write(&p, &full[..full.len() / 2]).unwrap();
    let d = Disk::open(&p).unwrap();
    let mut got = vec![0u8; 1 << 20];
    d.read_at(0, &mut got).unwrap();
    assert_eq!(got, want);
    let mut all = vec![0u8; d.len() as usize];
    let e = d.read_at(0, &mut all).unwrap_err().to_string();
    assert!(e.contains("cut.vmdk: "), "{e}");
}

/// (offset, length, kind) runs of one disk, as `qemu-img map` reports them.
type MapRuns = Vec<(u64, u64, Allocation)>;

/// `allocation()` against `qemu-img map --output=json` (recorded by the fixture script).
#[test]
fn allocation_matches_qemu_img_map() {
    let dir = fixtures();
    let text = std::fs::read_to_string(format!("{TESTDATA}/expected.map")).unwrap();
    let mut want: Vec<(String, MapRuns)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let kind = match f[3] {
            "data" => Allocation::Data,
            "zero" => Allocation::Zero,
            _ => Allocation::Unallocated,
        };
        let run = (f[1].parse().unwrap(), f[2].parse().unwrap(), kind);
        match want.last_mut() {
            Some((n, runs)) if n == f[0] => runs.push(run),
            _ => want.push((f[0].to_string(), vec![run])),
        }
    }
    assert!(want.len() >= 5);
    for (name, runs) in want {
        let d = Disk::open(&dir.path().join(&name)).unwrap();
        assert_eq!(d.allocation(0, d.len()).unwrap(), runs, "{name}");
    }
}
