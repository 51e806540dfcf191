//! The batched read paths forced on (`VMDKRECOVER_GRAIN_BATCH=1`: grain tables read
//! in windows, compressed grains read in groups and inflated by several threads,
//! as where reads are slow), compared with `qemu-img convert -O raw` checksums
//! recorded by `scripts/fixtures/vmdk.sh` (testdata/expected.sha256, its `corpus:`
//! lines for the public samples). A test binary of its own: the knob is read once
//! per process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
use bytesource::{ByteSource, Counting, FileSource, SharedSource};
use common::*;
use std::sync::Arc;
use vmdk::Disk;

fn force() {
    // Edition 2021: set_var is safe; every test of this binary sets the same value
    // before its first read, so the order of the threads does not matter.
    std::env::set_var("VMDKRECOVER_GRAIN_BATCH", "1");
}

/// Whole images in 8 MiB reads (batches of 128 grains), 1 MiB reads, and odd
/// reads whose ends fall inside grains (partial grains at both ends of a batch),
/// and 4 KiB reads (one grain each: marker and data in one read when forced).
fn check(path: &std::path::Path, sha: &str, what: &str) {
    let d = Disk::open(path).unwrap_or_else(|e| panic!("{what}: {e}"));
    for chunk in [8 << 20, 1 << 20, 3_000_001, 200_000, 4096] {
        assert_eq!(sha_of(&d, chunk), sha, "{what} ({chunk}-byte reads)");
    }
}

#[test]
fn fixtures_read_whole_through_the_batched_paths() {
    force();
    let dir = fixtures();
    for name in [
        "stream.vmdk",
        "msparse.vmdk",
        "split-sparse.vmdk",
        "chain-child.vmdk",
        "chain-grandchild.vmdk",
    ] {
        check(&dir.path().join(name), &expected_for(name), name);
    }
}

#[test]
fn corpus_streams_and_sparse_read_whole_through_the_batched_paths() {
    force();
    let Some(c) = corpus() else { return };
    for rel in [
        "vmdk-rs/data/streamOptimized.vmdk",
        "vmdk-rs/data/streamOptimizedWithMarkers.vmdk",
        "vmdk-rs/data/monolithicSparse.vmdk",
        "vmdk-rs/data/twoGbMaxExtentSparse.vmdk",
        "go-vmdk-parser/pkg/virtualization/vmdk/testdata/vmdk-streamoptimized.img",
        "go-vmdk-parser/pkg/virtualization/vmdk/testdata/vmdk-monolith.img",
        "vmdk-forensic/core/tests/data/compressed_stream_opt.vmdk",
        "dfvfs/test_data/ext2.vmdk",
    ] {
        check(&c.join(rel), &expected_for(&format!("corpus:{rel}")), rel);
    }
}

#[test]
fn a_batch_of_compressed_grains_is_a_few_file_reads() {
    // The qemu-made stream fixture read in 1 MiB pieces: the old path read each
    // grain's marker and then its data (two reads per 64 KiB grain, 32 per MiB).
    force();
    let dir = fixtures();
    let src: SharedSource = Arc::new(FileSource::open(dir.path().join("stream.vmdk")).unwrap());
    let counting = Arc::new(Counting::new(src));
    let d = Disk::from_source(counting.clone()).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    d.read_at(0, &mut buf).unwrap(); // loads the grain tables
    let before = counting.reads();
    let mut pos = 0u64;
    let mut mib = 0u64;
    while pos < d.len() {
        let n = (d.len() - pos).min(1 << 20) as usize;
        d.read_at(pos, &mut buf[..n]).unwrap();
        pos += n as u64;
        mib += 1;
    }
    let reads = counting.reads() - before;
    assert!(reads <= 2 * mib, "{reads} file reads for {mib} MiB");
    assert_eq!(sha_of(&d, 1 << 20), expected_for("stream.vmdk"));
}

/// The multi-table fixtures of `scripts/fixtures/vmdk-spans.sh`, gunzipped.
fn spans() -> (tempfile::TempDir, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("{TESTDATA}/spans");
    let text = std::fs::read_to_string(format!("{data}/expected.sha256")).unwrap();
    let mut want = Vec::new();
    for l in text.lines() {
        let (sha, name) = l.split_once("  ").unwrap();
        gunzip(
            std::path::Path::new(&format!("{data}/{name}.gz")),
            dir.path(),
            name,
        );
        want.push((sha.to_string(), name.to_string()));
    }
    assert_eq!(want.len(), 2);
    (dir, want)
}

#[test]
fn multi_table_sparse_and_stream_read_whole_through_the_batched_paths() {
    force();
    let (dir, want) = spans();
    for (sha, name) in want {
        check(&dir.path().join(&name), &sha, &name);
    }
}

#[test]
fn the_grain_tables_of_several_spans_are_one_read() {
    // qemu-img stores the five tables one after another: one window read brings
    // them all, where one read per span was needed before.
    force();
    let (dir, _) = spans();
    for name in ["spans-sparse.vmdk", "spans-stream.vmdk"] {
        let src: SharedSource = Arc::new(FileSource::open(dir.path().join(name)).unwrap());
        let counting = Arc::new(Counting::new(src));
        let d = Disk::from_source(counting.clone()).unwrap();
        let before = counting.reads();
        let mut sector = [0u8; 512];
        // Data in spans 0, 1, 2 and 4 (vmdk-spans.sh); span 3 holds none.
        for at in [
            0u64,
            32 << 20,
            (64 << 20) + (100 << 10),
            96 << 20,
            130 << 20,
        ] {
            d.read_at(at, &mut sector).unwrap();
            // What vmdk-spans.sh wrote there: self-naming sectors, zeros.
            match at {
                0 => assert!(sector.starts_with(b"head sector 00000000 "), "{name}"),
                0x0401_9000 => assert!(sector.starts_with(b"mid sector 00131272 "), "{name}"),
                0x0600_0000 => assert_eq!(sector, [0u8; 512], "{name}"),
                _ => {}
            }
        }
        let reads = counting.reads() - before;
        // A directory piece, one table window, and per span with data its grain
        // (sparse: one read; stream: marker and data, two).
        let most = if name.contains("stream") { 10 } else { 6 };
        assert!(reads <= most, "{name}: {reads} reads");
    }
}

/// What `scripts/fixtures/vmdk-spans.sh` wrote in sector `i` of a text run `tag`.
fn spans_text(i: u64, tag: &str) -> Vec<u8> {
    let line = format!("{tag} sector {i:08} ");
    line.as_bytes().iter().copied().cycle().take(512).collect()
}

#[test]
fn open_brings_the_tables_with_the_directory_and_stream_grains_come_in_windows() {
    // Forced as where the file is far: the directory is read with the tables
    // qemu-img stores right after it, so reading in all five spans reads no
    // table; a stream's lone grains are read in windows of stored grains, so the
    // 16 grains of self-naming text at the start (a few hundred bytes each once
    // compressed) are one or two reads, sector by sector.
    force();
    let (dir, _) = spans();
    for name in ["spans-sparse.vmdk", "spans-stream.vmdk"] {
        let src: SharedSource = Arc::new(FileSource::open(dir.path().join(name)).unwrap());
        let counting = Arc::new(Counting::new(src));
        let d = Disk::from_source(counting.clone()).unwrap();
        let at_open = counting.reads();
        let mut sector = [0u8; 512];
        for at in [32u64 << 20, (64 << 20) + (100 << 10), 96 << 20, 130 << 20] {
            d.read_at(at, &mut sector).unwrap();
        }
        // One read per span with data (span 3 holds none), no table read.
        let reads = counting.reads() - at_open;
        assert!(reads <= 3, "{name}: {reads} reads for spans 1, 2, 4");
        let before = counting.reads();
        for i in 0..2048u64 {
            d.read_at(i * 512, &mut sector).unwrap();
            assert_eq!(
                sector.as_slice(),
                spans_text(i, "head"),
                "{name} sector {i}"
            );
        }
        // (A sparse file's uncompressed sectors are each one read of their own.)
        let reads = counting.reads() - before;
        if name.contains("stream") {
            assert!(reads <= 2, "{name}: {reads} reads for the first 1 MiB");
        }
        // The text run of span 2, from its unaligned start, across grains.
        let first = ((64u64 << 20) + (100 << 10)) / 512;
        for i in (first..first + 6344).step_by(7) {
            d.read_at(i * 512, &mut sector).unwrap();
            assert_eq!(sector.as_slice(), spans_text(i, "mid"), "{name} sector {i}");
        }
        let last = d.len() / 512 - 1;
        d.read_at(last * 512, &mut sector).unwrap();
        assert_eq!(sector.as_slice(), spans_text(last, "last"), "{name}");
    }
}

#[test]
fn a_vmware_stream_footer_and_directory_are_one_read() {
    // qemu's iotest-version3.vmdk, a VMware-made stream whose header says the
    // directory is in the footer (GD_AT_END): where far, the file's last 124 KiB
    // bring the footer and the directory before it together. The data: the 100
    // patterns of the corpus test `iotest_version3_without_footer_is_rebuilt`.
    force();
    let Some(c) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = bunzip(
        &c.join("qemu/tests/qemu-iotests/sample_images/iotest-version3.vmdk.bz2"),
        dir.path(),
        "v3.vmdk",
    );
    let src: SharedSource = Arc::new(FileSource::open(&p).unwrap());
    let counting = Arc::new(Counting::new(src));
    let d = Disk::from_source(counting.clone()).unwrap();
    assert!(d.warnings().is_empty(), "{:?}", d.warnings());
    // Sniff, header, embedded descriptor, and the tail window.
    let at_open = counting.reads();
    assert!(at_open <= 4, "{at_open} reads to open");
    for i in 0..100u64 {
        let mut b = vec![0u8; 512];
        d.read_at(i * 655_360 + i * 512, &mut b).unwrap();
        assert!(b.iter().all(|&x| x == 0x30 + (i % 10) as u8), "pattern {i}");
    }
}

#[test]
fn many_threads_reading_a_stream_at_once_share_the_group_buffers() {
    // More threads than the pool has group buffers (crate groupbuf: two), each
    // reading the whole stream in its own chunk size through one shared Disk, so
    // that buffers are waited for and reused by other threads' groups; every
    // thread's bytes must still be qemu-img's conversion (expected.sha256).
    force();
    let dir = fixtures();
    let want = expected_for("stream.vmdk");
    let (sdir, spans) = spans();
    let mut disks = vec![(Disk::open(&dir.path().join("stream.vmdk")).unwrap(), want)];
    for (sha, name) in spans {
        if name.contains("stream") {
            disks.push((Disk::open(&sdir.path().join(&name)).unwrap(), sha));
        }
    }
    assert_eq!(disks.len(), 2, "the spans fixture has one stream");
    for (d, sha) in &disks {
        std::thread::scope(|s| {
            let hs: Vec<_> = [8 << 20, 4 << 20, 3_000_001, 1 << 20, 2 << 20, 8 << 20]
                .into_iter()
                .map(|chunk| s.spawn(move || (chunk, sha_of(d, chunk))))
                .collect();
            for h in hs {
                let (chunk, got) = h.join().unwrap();
                assert_eq!(&got, sha, "{chunk}-byte reads on one of six threads");
            }
        });
    }
}
