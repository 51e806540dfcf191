//! The public sample corpus (`../shared/corpus`), read by path. The expected values
//! come from the corpus README (what the source projects say their images hold).

use bytesource::{ByteSource, MemSource, SharedSource};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

fn corpus() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus"
    ));
    if p.is_dir() {
        Some(p)
    } else if std::env::var("VMDKRECOVER_SKIP_MISSING").as_deref() == Ok("1") {
        eprintln!(
            "\n*** SKIPPED: ../shared/corpus not found ({}) ***\n",
            p.display()
        );
        None
    } else {
        panic!(
            "../shared/corpus not found ({}); set VMDKRECOVER_SKIP_MISSING=1 to skip",
            p.display()
        );
    }
}

fn load(path: &std::path::Path) -> SharedSource {
    let raw = std::fs::read(path).unwrap();
    let name = path.to_string_lossy();
    let data = if name.ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else if name.ends_with(".xz") {
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut &raw[..], &mut out).unwrap();
        out
    } else {
        raw
    };
    Arc::new(MemSource::new(data))
}

fn glob_one(base: &std::path::Path, prefix: &str, rest: &str) -> Option<PathBuf> {
    // `prefix` is a directory holding history-* folders.
    let dir = base.join(prefix);
    let mut hits: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(rest))
        .filter(|p| p.exists())
        .collect();
    hits.sort();
    hits.pop()
}

fn dev(name: &str, source: SharedSource) -> lvm2::Device {
    lvm2::Device {
        name: name.to_string(),
        source,
    }
}

#[test]
fn dfvfs_lvm_raw() {
    let Some(c) = corpus() else { return };
    let src = load(&c.join("dfvfs/history-cb1c205b/test_data/lvm.raw"));
    assert!(lvm2::probe(src.as_ref()));
    let scan = lvm2::scan(&[dev("sda", src)]);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(scan.vgs.len(), 1);
    let vg = &scan.vgs[0];
    assert_eq!(vg.name(), "test_volume_group");
    assert_eq!(scan.pvs[0].vg_name.as_deref(), Some("test_volume_group"));
    let visible: Vec<_> = vg.lvs().iter().filter(|l| l.visible).collect();
    assert_eq!(visible.len(), 1, "{:?}", vg.lvs());
    assert_eq!(visible[0].size, 4 << 20);
    let lv = vg.open_lv(&visible[0].name).unwrap();
    let mut magic = [0u8; 2];
    lv.read_at(1080, &mut magic).unwrap();
    assert_eq!(u16::from_le_bytes(magic), 0xEF53);
}

#[test]
fn dissect_lvm_linear() {
    let Some(c) = corpus() else { return };
    let Some(p) = glob_one(&c, "dissect.volume", "tests/data/lvm.bin.gz") else {
        panic!("lvm.bin.gz missing from corpus");
    };
    let scan = lvm2::scan(&[dev("sda", load(&p))]);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    let vg = &scan.vgs[0];
    let info = vg.lvs().iter().find(|l| l.visible).unwrap();
    let lv = vg.open_lv(&info.name).unwrap();
    let mut buf = vec![0u8; 2048];
    lv.read_at(0, &mut buf).unwrap();
    assert_eq!(
        &buf[..1024],
        [0xde, 0xad, 0xbe, 0xef].repeat(256).as_slice()
    );
    assert!(buf[1024..].iter().all(|&b| b == 0));
}

#[test]
fn dissect_lvm_mirror() {
    let Some(c) = corpus() else { return };
    let p1 = glob_one(&c, "dissect.volume", "tests/data/lvm-mirror-1.bin.gz").unwrap();
    let p2 = glob_one(&c, "dissect.volume", "tests/data/lvm-mirror-2.bin.gz").unwrap();
    let (s1, s2) = (load(&p1), load(&p2));
    let check = |devices: &[lvm2::Device], expect_missing: bool| {
        let scan = lvm2::scan(devices);
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        assert_eq!(scan.vgs.len(), 1);
        let vg = &scan.vgs[0];
        assert_eq!(vg.missing_pvs().is_empty(), !expect_missing);
        let info = vg
            .lvs()
            .iter()
            .find(|l| l.visible)
            .unwrap_or_else(|| panic!("{:?}", vg.lvs()));
        assert_eq!(info.segments[0].kind, "mirror", "{info:?}");
        let lv = vg.open_lv(&info.name).unwrap();
        // These are the older (history-b3311fd) dissect images: its test of that
        // commit reads sector s as 512 bytes of (s & 0xff), for 4096 sectors. (The
        // corpus README's "2-byte i per 4 KiB" describes the newer upstream images.)
        assert!(lv.len() >= 4096 * 512);
        let mut sector = vec![0u8; 512];
        for s in 0..4096u64 {
            lv.read_at(s * 512, &mut sector).unwrap();
            assert!(
                sector.iter().all(|&b| b == (s & 0xff) as u8),
                "sector {s} starts {:?}",
                &sector[..8]
            );
        }
    };
    check(&[dev("sda", s1.clone()), dev("sdb", s2.clone())], false);
    // Either leg alone still reads.
    check(&[dev("sda", s1)], true);
    check(&[dev("sdb", s2)], true);
}

/// dissect.volume's LVM thin PV (corpus README): lv-1 (device 1) and lv-2
/// (device 2) read the 512-block pattern, each maps 32 blocks, and the pool
/// itself is refused.
#[test]
fn dissect_lvm_thin() {
    let Some(c) = corpus() else { return };
    let p = c.join("dissect.volume/tests/_data/lvm/lvm-thin.bin.gz");
    let scan = lvm2::scan(&[dev("sda", load(&p))]);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    let vg = &scan.vgs[0];
    for (name, id) in [("lv-1", 1), ("lv-2", 2)] {
        let info = vg.lv(name).unwrap();
        assert_eq!(info.readable, Ok(()), "{name}");
        match &info.role {
            lvm2::LvRole::Thin {
                pool, device_id, ..
            } => assert_eq!((pool.as_str(), *device_id), ("data", id)),
            r => panic!("{name}: {r:?}"),
        }
        let lv = vg.open_lv(name).unwrap();
        assert!(lv.len() >= 2 << 20);
        let mut buf = vec![0u8; 2 << 20];
        lv.read_at(0, &mut buf).unwrap();
        for (i, blk) in buf.chunks(4096).enumerate() {
            assert!(blk == pattern_block(i as u16 + 1), "{name} block {i}");
        }
        // thin_dump (README): each device maps 32 blocks.
        let d = vg.thin_device_details(name).unwrap().unwrap();
        assert_eq!(d.mapped_blocks, 32);
    }
    let e = vg.open_lv("data").unwrap_err().to_string();
    assert!(
        e.contains("thin pool: read its thin volumes instead"),
        "{e}"
    );
    assert!(vg.lv("data").unwrap().readable.is_err());
    let pool = vg.thin_pool("data").unwrap();
    assert_eq!(pool.data_block_bytes(), 128 * 512);
    // README: transaction_id 2.
    assert_eq!(pool.transaction_id(), 2);
    match &vg.lv("data").unwrap().role {
        lvm2::LvRole::ThinPool {
            chunk_size,
            thin_lvs,
            transaction_id,
            metadata_lv,
            data_lv,
            ..
        } => {
            assert_eq!(*chunk_size, 128 * 512);
            assert_eq!(*transaction_id, 2);
            assert_eq!(thin_lvs, &["lv-1", "lv-2"]);
            assert_eq!(
                (metadata_lv.as_str(), data_lv.as_str()),
                ("data_tmeta", "data_tdata")
            );
        }
        r => panic!("{r:?}"),
    }
}

/// The older dissect.volume thin PV: the VG is the one the mda header points to
/// (README: VG KxjyPJ-…, seqno 10, not the stale seqno 17 text), and its thin LVs
/// open and read through the pool. Its content is not described by any oracle in
/// the corpus, so only readability is asserted.
#[test]
fn dissect_lvm_thin_older() {
    let Some(c) = corpus() else { return };
    let p = glob_one(&c, "dissect.volume", "tests/data/lvm-thin.bin.gz").unwrap();
    let scan = lvm2::scan(&[dev("sda", load(&p))]);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    let vg = &scan.vgs[0];
    assert!(vg.uuid().starts_with("KxjyPJ"), "{}", vg.uuid());
    assert_eq!(vg.seqno(), 10);
    let thins: Vec<_> = vg
        .lvs()
        .iter()
        .filter(|l| matches!(l.role, lvm2::LvRole::Thin { .. }))
        .collect();
    assert!(!thins.is_empty(), "{:?}", vg.lvs());
    for t in thins {
        assert_eq!(t.readable, Ok(()), "{}", t.name);
        let lv = vg.open_lv(&t.name).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        lv.read_at(0, &mut buf).unwrap();
    }
}

#[test]
fn util_linux_bare_pv() {
    let Some(c) = corpus() else { return };
    let src = load(&c.join("util-linux/tests/ts/blkid/images-fs/lvm2.img.xz"));
    assert!(lvm2::probe(src.as_ref()));
    let scan = lvm2::scan(&[dev("sda", src)]);
    assert_eq!(scan.pvs.len(), 1, "{scan:?}");
    assert_eq!(scan.pvs[0].vg_name, None);
    assert!(scan.vgs.is_empty());
    // blkid's expected output for this image (tests/expected/blkid/low-probe-lvm2).
    eprintln!("{:?}", scan.pvs[0]);
}

/// libyal's structure fragments: the field offsets this crate reads must see the
/// values libvslvm's tests expect in them.
#[test]
fn libvslvm_fragments() {
    let Some(c) = corpus() else { return };
    let d = c.join("libvslvm/tests/data");
    let mut label = std::fs::read(d.join("physical_volume_label.1")).unwrap();
    label.resize(512, 0);
    // The fragment is only the 32-byte header; padded, its stored CRC no longer
    // matches, and the parser must say so rather than accept it.
    match lvm2::label::parse_label(&label, 1) {
        Err(lvm2::label::LabelProblem::BadCrc { stored, .. }) => assert_eq!(stored, 0xcf77ca6e),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        lvm2::label::parse_label(&label, 0),
        Err(lvm2::label::LabelProblem::WrongSector(1))
    );
    let mut pvh = std::fs::read(d.join("physical_volume_header.1")).unwrap();
    pvh.resize(512, 0);
    let h = lvm2::pv_header::parse_pv_header(&pvh, 0).unwrap();
    assert_eq!(h.uuid(), "btEzLa-i0aL-sfS8-Ae9P-QKGU-IhtA-CkpWm7");
    assert_eq!(h.device_size, 16 << 20);
    let mut mda = std::fs::read(d.join("metadata_area.1")).unwrap();
    mda.resize(512, 0);
    // Same for the metadata area header: magic recognised, checksum refused.
    let e = lvm2::mda::parse_mda_header(&mda, 4096).unwrap_err();
    assert!(e.contains("checksum"), "{e}");
}

// thin-provisioning-tools' `tests/testdata/*.pack` metadata (also in the corpus)
// needs `thin_metadata_unpack` (thin-provisioning-tools 1.x) to become a metadata
// device; Debian 12's 0.9.0 lacks it, so those images are not tested here.

/// 4 KiB block i (1-based) of dissect.volume's thin test pattern: the 2-byte
/// little-endian i repeated 2048 times (corpus README, `tests/dm/test_dm.py`).
fn pattern_block(i: u16) -> Vec<u8> {
    i.to_le_bytes().repeat(2048)
}

fn dm_pair(c: &std::path::Path, meta: &str, data: &str) -> lvm2::thin::ThinPool {
    let d = c.join("dissect.volume/tests/_data/dm");
    lvm2::thin::ThinPool::open(load(&d.join(meta)), load(&d.join(data))).unwrap()
}

#[test]
fn dissect_dm_thin_pair() {
    let Some(c) = corpus() else { return };
    let pool = Arc::new(dm_pair(
        &c,
        "dm-thin-metadata.bin.gz",
        "dm-thin-data.bin.gz",
    ));
    // thin_dump 0.9.0 (corpus README): data_block_size 128, 64 data blocks, two
    // devices of 32 mapped blocks.
    assert_eq!(pool.superblock().data_block_size, 128);
    assert_eq!(pool.data_space().nr_blocks, 64);
    assert_eq!(pool.data_space().nr_allocated, 64);
    let devs = pool.devices().unwrap();
    assert_eq!(
        devs.iter()
            .map(|d| (d.device_id, d.mapped_blocks))
            .collect::<Vec<_>>(),
        vec![(0, 32), (1, 32)]
    );
    for id in [0, 1] {
        let v = pool.open_thin(id, 2 << 20, None).unwrap();
        let mut buf = vec![0u8; 2 << 20];
        v.read_at(0, &mut buf).unwrap();
        for (i, blk) in buf.chunks(4096).enumerate() {
            assert_eq!(blk, pattern_block(i as u16 + 1), "device {id} block {i}");
        }
    }
    assert!(pool.open_thin(2, 1 << 20, None).is_err());
}

#[test]
fn dissect_dm_thin_empty_pair() {
    let Some(c) = corpus() else { return };
    let pool = Arc::new(dm_pair(
        &c,
        "dm-thin-empty-metadata.bin.gz",
        "dm-thin-empty-data.bin.gz",
    ));
    // Device 0 maps only origin block 8 -> data block 0: zeros except at 512 KiB.
    let v = pool.open_thin(0, 4 << 20, None).unwrap();
    let mut buf = vec![0u8; 4 << 20];
    v.read_at(0, &mut buf).unwrap();
    let bs = pool.data_block_bytes() as usize;
    assert_eq!(bs, 64 << 10);
    assert!(buf[..512 << 10].iter().all(|&b| b == 0));
    assert!(buf[(512 << 10) + bs..].iter().all(|&b| b == 0));
    assert_eq!(pool.highest_mapped_block(0).unwrap(), Some(8));
    let v1 = pool.open_thin(1, 1 << 20, None).unwrap();
    let mut b1 = vec![1u8; 1 << 20];
    v1.read_at(0, &mut b1).unwrap();
    assert!(b1.iter().all(|&b| b == 0));
    assert_eq!(pool.highest_mapped_block(1).unwrap(), None);
}
