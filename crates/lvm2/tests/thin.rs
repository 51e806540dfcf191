//! Thin pools made by real tools (`scripts/fixtures/lvm2-thin.sh`): the pool
//! metadata was written by `thin_restore`, checked by `thin_check` and dumped by
//! `thin_dump` (`thin_dump-p*.xml`, the oracle for every mapping); the VG text was
//! validated and written by lvm2's `vgcfgrestore`, and `lvs.txt` is lvm2's report.
//! `expected.txt` holds the sha256 of each thin LV as the script's independent
//! reassembly rebuilt it (equal to the source ext4 images, which e2fsck and the
//! kernel accepted).

use bytesource::{ByteSource, FileSource, SharedSource};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

fn data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/thin"))
}

/// The PV, gunzipped once into a sparse temporary file (it is 320 MiB, mostly
/// zeros).
fn pv() -> SharedSource {
    static PV: OnceLock<PathBuf> = OnceLock::new();
    let path = PV.get_or_init(|| {
        // Under cargo's per-target temporary directory, reused across runs; written
        // under a unique name and renamed, so concurrent test binaries never see a
        // half-written file.
        // Named by the compressed image's hash, so a regenerated fixture is never
        // mistaken for the old one.
        let gz = std::fs::read(data_dir().join("pv1.img.gz")).unwrap();
        let tag: String = Sha256::digest(&gz)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let out =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("lvm2-thin-pv1-{tag}.img"));
        let want = 320u64 << 20;
        if std::fs::metadata(&out).is_ok_and(|m| m.len() == want) {
            return out;
        }
        let tmp = out.with_extension(format!("{}.tmp", std::process::id()));
        let mut gz = flate2::read::GzDecoder::new(&gz[..]);
        let mut f = std::fs::File::create(&tmp).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut len = 0u64;
        loop {
            let mut got = 0;
            while got < buf.len() {
                let n = gz.read(&mut buf[got..]).unwrap();
                if n == 0 {
                    break;
                }
                got += n;
            }
            if got == 0 {
                break;
            }
            if buf[..got].iter().all(|&b| b == 0) {
                f.seek(SeekFrom::Current(got as i64)).unwrap();
            } else {
                f.write_all(&buf[..got]).unwrap();
            }
            len += got as u64;
        }
        f.set_len(len).unwrap();
        assert_eq!(len, want, "pv1.img.gz");
        std::fs::rename(&tmp, &out).unwrap();
        out
    });
    Arc::new(FileSource::open(path).unwrap())
}

fn vg() -> lvm2::VolumeGroup {
    let scan = lvm2::scan(&[lvm2::Device {
        name: "pv1".into(),
        source: pv(),
    }]);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    scan.vg("vg_thin").unwrap().clone()
}

/// lvs.txt: name -> columns (see the script's `report`).
fn lvs() -> HashMap<String, Vec<String>> {
    std::fs::read_to_string(data_dir().join("lvs.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<String> = l.split('|').map(str::to_string).collect();
            (f[0].trim_matches(|c| c == '[' || c == ']').to_string(), f)
        })
        .collect()
}

/// One device of a thin_dump XML: (mapped_blocks attribute, vblock -> data block).
struct Dev {
    mapped_blocks: u64,
    transaction: u64,
    map: HashMap<u64, u64>,
}

struct Dump {
    data_block_size: u64,
    nr_data_blocks: u64,
    transaction: u64,
    devs: HashMap<u64, Dev>,
}

fn attr(line: &str, name: &str) -> u64 {
    let key = format!(" {name}=\"");
    let i = line
        .find(&key)
        .unwrap_or_else(|| panic!("{name} in {line}"))
        + key.len();
    line[i..].split('"').next().unwrap().parse().unwrap()
}

fn dump(pool: &str) -> Dump {
    let text = std::fs::read_to_string(data_dir().join(format!("thin_dump-{pool}.xml"))).unwrap();
    let mut d = Dump {
        data_block_size: 0,
        nr_data_blocks: 0,
        transaction: 0,
        devs: HashMap::new(),
    };
    let mut cur = None;
    for l in text.lines() {
        let l = l.trim();
        if l.starts_with("<superblock") {
            d.data_block_size = attr(l, "data_block_size");
            d.nr_data_blocks = attr(l, "nr_data_blocks");
            d.transaction = attr(l, "transaction");
        } else if l.starts_with("<device") {
            let id = attr(l, "dev_id");
            d.devs.insert(
                id,
                Dev {
                    mapped_blocks: attr(l, "mapped_blocks"),
                    transaction: attr(l, "transaction"),
                    map: HashMap::new(),
                },
            );
            cur = Some(id);
        } else if l.starts_with("<single_mapping") {
            let m = &mut d.devs.get_mut(&cur.unwrap()).unwrap().map;
            m.insert(attr(l, "origin_block"), attr(l, "data_block"));
        } else if l.starts_with("<range_mapping") {
            let m = &mut d.devs.get_mut(&cur.unwrap()).unwrap().map;
            for k in 0..attr(l, "length") {
                m.insert(attr(l, "origin_begin") + k, attr(l, "data_begin") + k);
            }
        }
    }
    d
}

fn sha256_of(src: &dyn ByteSource) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < src.len() {
        let n = (src.len() - off).min(buf.len() as u64) as usize;
        src.read_at(off, &mut buf[..n]).unwrap();
        h.update(&buf[..n]);
        off += n as u64;
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn thin_lvs_read_as_the_reassembled_images() {
    let vg = vg();
    let lvs = lvs();
    let expected = std::fs::read_to_string(data_dir().join("expected.txt")).unwrap();
    let mut seen = 0;
    for l in expected.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let (name, size, sum) = (f[0], f[1].parse::<u64>().unwrap(), f[2]);
        let info = vg.lv(name).unwrap();
        assert_eq!(info.readable, Ok(()), "{name}");
        // lvs: thin_id and pool_lv columns.
        let row = &lvs[name];
        match &info.role {
            lvm2::LvRole::Thin {
                pool, device_id, ..
            } => {
                assert_eq!(pool, &row[10], "{name}");
                assert_eq!(device_id.to_string(), row[9], "{name}");
            }
            r => panic!("{name}: {r:?}"),
        }
        let lv = vg.open_lv(name).unwrap();
        assert_eq!(lv.len(), size, "{name}");
        if name == "big" {
            continue; // 400 MiB: checked block by block below instead of hashed.
        }
        assert_eq!(sha256_of(&lv), sum, "{name}");
        seen += 1;
    }
    assert_eq!(seen, 4);
}

/// `big` (device 3 of p1): thin_dump lists 3000 scattered mappings; every mapped
/// 64 KiB block holds the script's stamp "big vblock <v>\n" then zeros, every
/// unmapped block reads as zeros.
#[test]
fn unmapped_ranges_are_zero_and_mapped_blocks_land_right() {
    let vg = vg();
    let d = dump("p1");
    let dev = &d.devs[&3];
    assert_eq!(dev.map.len(), 3000);
    let lv = vg.open_lv("big").unwrap();
    let bs = (d.data_block_size * 512) as usize;
    let blocks = lv.len() / bs as u64;
    // Read 16 blocks at a time: reads cross mapped/unmapped boundaries.
    let mut buf = vec![0u8; bs * 16];
    for first in (0..blocks).step_by(16) {
        lv.read_at(first * bs as u64, &mut buf).unwrap();
        for (k, blk) in buf.chunks(bs).enumerate() {
            let v = first + k as u64;
            if dev.map.contains_key(&v) {
                let stamp = format!("big vblock {v}\n");
                assert!(blk.starts_with(stamp.as_bytes()), "block {v}");
                assert!(blk[stamp.len()..].iter().all(|&b| b == 0), "block {v}");
            } else {
                assert!(blk.iter().all(|&b| b == 0), "unmapped block {v}");
            }
        }
    }
    // The same through odd, unaligned reads.
    let mut odd = vec![0u8; 100_000];
    let v = *dev.map.keys().max().unwrap();
    lv.read_at(v * bs as u64 - 50_000, &mut odd).unwrap();
    // The tail of block v-1 is zeros whether or not it is mapped (stamps are short).
    assert!(odd[..50_000].iter().all(|&b| b == 0));
    assert!(odd[50_000..].starts_with(format!("big vblock {v}\n").as_bytes()));
}

/// snap1 (device 2) is a thin snapshot of thin1 (device 1): their 64 KiB blocks
/// differ exactly where thin_dump maps them to different data blocks.
#[test]
fn thin_snapshot_differs_exactly_where_the_mappings_differ() {
    let vg = vg();
    let d = dump("p1");
    let (m1, m2) = (&d.devs[&1].map, &d.devs[&2].map);
    let a = vg.open_lv("thin1").unwrap();
    let b = vg.open_lv("snap1").unwrap();
    let bs = d.data_block_size * 512;
    let (mut x, mut y) = (vec![0u8; bs as usize], vec![0u8; bs as usize]);
    let mut differing = 0;
    for v in 0..a.len() / bs {
        a.read_at(v * bs, &mut x).unwrap();
        b.read_at(v * bs, &mut y).unwrap();
        let same_mapping = m1.get(&v) == m2.get(&v);
        assert_eq!(
            x == y,
            same_mapping,
            "block {v}: {:?} vs {:?}",
            m1.get(&v),
            m2.get(&v)
        );
        differing += usize::from(!same_mapping);
    }
    assert!(differing > 0 && differing < m2.len());
}

/// What `info` shows for pools and thin LVs, against thin_dump and lvs.
#[test]
fn pool_and_thin_details_match_thin_dump_and_lvs() {
    let vg = vg();
    let lvs = lvs();
    for pool in ["p1", "p2"] {
        let d = dump(pool);
        let p = vg.thin_pool(pool).unwrap();
        assert_eq!(p.superblock().data_block_size as u64, d.data_block_size);
        // lvs chunk_size column, in bytes.
        assert_eq!(p.data_block_bytes().to_string(), lvs[pool][11]);
        assert_eq!(p.transaction_id(), d.transaction);
        assert_eq!(p.data_space().nr_blocks, d.nr_data_blocks);
        let used: std::collections::HashSet<u64> = d
            .devs
            .values()
            .flat_map(|v| v.map.values().copied())
            .collect();
        assert_eq!(p.data_space().nr_allocated, used.len() as u64);
        assert_eq!(p.metadata_snap(), None);
        assert!(p.warnings().is_empty(), "{:?}", p.warnings());
        let devs = p.devices().unwrap();
        assert_eq!(devs.len(), d.devs.len());
        for dd in devs {
            let x = &d.devs[&dd.device_id];
            assert_eq!(dd.mapped_blocks, x.mapped_blocks);
            assert_eq!(dd.transaction_id, x.transaction);
        }
        match &vg.lv(pool).unwrap().role {
            lvm2::LvRole::ThinPool {
                chunk_size,
                thin_lvs,
                metadata_lv,
                data_lv,
                ..
            } => {
                assert_eq!(chunk_size.to_string(), lvs[pool][11]);
                assert_eq!(format!("[{metadata_lv}]"), lvs[pool][14]);
                assert_eq!(format!("[{data_lv}]"), lvs[pool][13]);
                let mut from_lvs: Vec<&String> = lvs
                    .iter()
                    .filter(|(_, r)| r[10] == pool)
                    .map(|(n, _)| n)
                    .collect();
                from_lvs.sort();
                let mut ours: Vec<&String> = thin_lvs.iter().collect();
                ours.sort();
                assert_eq!(ours, from_lvs);
            }
            r => panic!("{r:?}"),
        }
        let e = vg.open_lv(pool).unwrap_err().to_string();
        assert!(
            e.ends_with("thin pool: read its thin volumes instead"),
            "{e}"
        );
    }
    // lvs' origin column: snap1's origin is thin1, ext1's is the external origin.
    match &vg.lv("snap1").unwrap().role {
        lvm2::LvRole::Thin { origin, .. } => {
            assert_eq!(origin.as_deref(), Some(&*lvs["snap1"][12]))
        }
        r => panic!("{r:?}"),
    }
    match &vg.lv("ext1").unwrap().role {
        lvm2::LvRole::Thin {
            external_origin, ..
        } => assert_eq!(external_origin.as_deref(), Some(&*lvs["ext1"][12])),
        r => panic!("{r:?}"),
    }
    let d = vg.thin_device_details("big").unwrap().unwrap();
    assert_eq!(d.mapped_blocks, 3000);
}

/// A damaged btree node in the pool metadata is an error naming the block (the
/// metadata is copied out of the fixture and one byte flipped).
#[test]
fn damaged_metadata_is_an_error_naming_the_block() {
    let vg = vg();
    let meta = vg.open_lv("p1_tmeta").unwrap();
    let data: SharedSource = Arc::new(vg.open_lv("p1_tdata").unwrap());
    let mut m = vec![0u8; meta.len() as usize];
    meta.read_at(0, &mut m).unwrap();
    let good = Arc::new(
        lvm2::thin::ThinPool::open(
            Arc::new(bytesource::MemSource::new(m.clone())),
            data.clone(),
        )
        .unwrap(),
    );
    let root = good.superblock().data_mapping_root;
    // Flip a byte in the top-level mapping tree's root node.
    m[root as usize * 4096 + 100] ^= 0x40;
    let bad = Arc::new(
        lvm2::thin::ThinPool::open(
            Arc::new(bytesource::MemSource::new(m.clone())),
            data.clone(),
        )
        .unwrap(),
    );
    let e = bad.open_thin(1, 1 << 20, None).unwrap_err().to_string();
    assert!(
        e.contains(&format!("block {root}")) && e.contains("checksum"),
        "{e}"
    );
    // A damaged superblock fails the open.
    m[200] ^= 1;
    let e = lvm2::thin::ThinPool::open(Arc::new(bytesource::MemSource::new(m)), data)
        .unwrap_err()
        .to_string();
    assert!(e.contains("superblock: checksum"), "{e}");
}

/// Consecutive virtual blocks mapped to consecutive data blocks are read with one
/// data-device request: thin_dump shows device 1 mapping origin blocks 18..25 to
/// data blocks 3..10 as one range_mapping.
#[test]
fn contiguous_mappings_are_read_in_one_request() {
    let vg = vg();
    let d = dump("p1");
    let m = &d.devs[&1].map;
    let start = (0..1000u64)
        .find(|&v| {
            m.contains_key(&v)
                && (0..7).all(|k| m.get(&(v + k)) == m.get(&v).map(|x| x + k).as_ref())
        })
        .expect("a run of 7 contiguous mappings in thin_dump");
    let meta: SharedSource = Arc::new(vg.open_lv("p1_tmeta").unwrap());
    let counting = Arc::new(bytesource::Counting::new(vg.open_lv("p1_tdata").unwrap()));
    let data: SharedSource = counting.clone();
    let pool = Arc::new(lvm2::thin::ThinPool::open(meta, data).unwrap());
    let v = pool.open_thin(1, 16 << 20, None).unwrap();
    let bs = pool.data_block_bytes();
    let mut buf = vec![0u8; (7 * bs) as usize];
    v.read_at(start * bs, &mut buf).unwrap();
    assert_eq!(counting.reads(), 1);
    assert_eq!(counting.bytes(), 7 * bs);
}
