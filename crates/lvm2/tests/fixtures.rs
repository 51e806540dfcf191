//! Fixtures made by real lvm2 (`scripts/fixtures/lvm2.sh`). Every expected value
//! comes from lvm2's own reports stored beside the images (`pvs.txt`, `lvs.txt`,
//! `pvck-*.txt`, `backup.vg`), and LV content is self-describing: sector s of LV
//! "x" holds "x sector s\n" then zeros, written by the script at the byte ranges
//! lvm2 reported. Nothing here takes this crate's parser output as the truth.

use bytesource::{ByteSource, Counting, MemSource, SharedSource};
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

fn data_dir(fixture: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data")).join(fixture)
}

fn gunzip(path: &std::path::Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[derive(Debug, Clone)]
struct PvRow {
    file: String,
    uuid: String,
    pe_start: u64,
    dev_size: u64,
    pe_count: u64,
    vg: String,
    extent_size: u64,
    seqno: u64,
}

#[derive(Debug, Clone)]
struct SegRow {
    segtype: String,
    start: u64,
    size: u64,
    stripes: u32,
    stripe_size: u64,
    /// (pv file, first extent)
    ranges: Vec<(String, u64)>,
}

#[derive(Debug, Clone)]
struct LvRow {
    name: String,
    hidden: bool,
    size: u64,
    segs: Vec<SegRow>,
}

struct Fixture {
    pvs: Vec<PvRow>,
    lvs: Vec<LvRow>,
    images: HashMap<String, Vec<u8>>,
    dir: PathBuf,
}

fn load(fixture: &str) -> Fixture {
    let dir = data_dir(fixture);
    let pvs: Vec<PvRow> = std::fs::read_to_string(dir.join("pvs.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.trim().split('|').collect();
            PvRow {
                file: f[0].into(),
                uuid: f[1].into(),
                pe_start: f[2].parse().unwrap(),
                dev_size: f[3].parse().unwrap(),
                pe_count: f[4].parse().unwrap(),
                vg: f[5].into(),
                extent_size: f[6].parse().unwrap(),
                seqno: f[7].parse().unwrap(),
            }
        })
        .collect();
    let mut lvs: Vec<LvRow> = Vec::new();
    for l in std::fs::read_to_string(dir.join("lvs.txt"))
        .unwrap()
        .lines()
    {
        let f: Vec<&str> = l.trim().split('|').collect();
        let hidden = f[0].starts_with('[');
        let name = f[0].trim_matches(|c| c == '[' || c == ']').to_string();
        let seg = SegRow {
            segtype: f[1].into(),
            start: f[2].parse().unwrap(),
            size: f[3].parse().unwrap(),
            stripes: f[4].parse().unwrap(),
            stripe_size: f[5].parse().unwrap(),
            ranges: f[6]
                .split_whitespace()
                .map(|r| {
                    let (pv, rng) = r.rsplit_once(':').unwrap();
                    (
                        pv.to_string(),
                        rng.split('-').next().unwrap().parse().unwrap(),
                    )
                })
                .collect(),
        };
        let size = f[8].parse().unwrap();
        match lvs.iter_mut().find(|x| x.name == name) {
            Some(x) => x.segs.push(seg),
            None => lvs.push(LvRow {
                name,
                hidden,
                size,
                segs: vec![seg],
            }),
        }
    }
    for lv in &mut lvs {
        lv.segs.sort_by_key(|s| s.start);
    }
    let images = pvs
        .iter()
        .map(|p| {
            (
                p.file.clone(),
                gunzip(&dir.join(format!("{}.img.gz", p.file))),
            )
        })
        .collect();
    Fixture {
        pvs,
        lvs,
        images,
        dir,
    }
}

impl Fixture {
    fn devices(&self) -> Vec<lvm2::Device> {
        self.pvs
            .iter()
            .map(|p| dev(&p.file, self.images[&p.file].clone()))
            .collect()
    }
    /// A `pvck --dump headers` field, e.g. ("pv1", "mda_header_1.start").
    fn pvck(&self, pv: &str, field: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.join(format!("pvck-{pv}.txt"))).ok()?;
        text.lines().find_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix(field)?;
            let rest = rest.strip_prefix(' ')?;
            Some(rest.split(" #").next().unwrap().trim().to_string())
        })
    }
    fn pvck_u64(&self, pv: &str, field: &str) -> u64 {
        let v = self
            .pvck(pv, field)
            .unwrap_or_else(|| panic!("pvck-{pv}: no {field}"));
        match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).unwrap(),
            None => v.parse().unwrap(),
        }
    }
    /// Absolute offset of the label sector ("label_header at 512").
    fn label_offset(&self, pv: &str) -> u64 {
        let text = std::fs::read_to_string(self.dir.join(format!("pvck-{pv}.txt"))).unwrap();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("label_header at "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

fn dev(name: &str, bytes: Vec<u8>) -> lvm2::Device {
    lvm2::Device {
        name: name.to_string(),
        source: Arc::new(MemSource::new(bytes)),
    }
}

fn pattern(lv: &str, sector: u64) -> Vec<u8> {
    let mut v = format!("{lv} sector {sector}\n").into_bytes();
    v.resize(512, 0);
    v
}

/// Compares `got` (LV bytes starting at `offset`) with the pattern; returns a short
/// message on the first difference.
fn check_pattern(lv: &str, offset: u64, got: &[u8]) -> Result<(), String> {
    let mut pos = offset;
    let mut rest = got;
    while !rest.is_empty() {
        let sector = pos / 512;
        let within = (pos % 512) as usize;
        let n = (512 - within).min(rest.len());
        let want = pattern(lv, sector);
        if rest[..n] != want[within..within + n] {
            let line: String = rest[..n.min(24)]
                .iter()
                .map(|&c| {
                    if c.is_ascii_graphic() || c == b' ' {
                        c as char
                    } else {
                        '.'
                    }
                })
                .collect();
            return Err(format!(
                "{lv}: sector {sector} (+{within}) differs: reads {line:?}"
            ));
        }
        pos += n as u64;
        rest = &rest[n..];
    }
    Ok(())
}

/// Everything lvm2's reports say, checked against a scan of the fixture.
fn check_fixture(name: &str) {
    let fx = load(name);
    let scan = lvm2::scan(&fx.devices());
    assert!(scan.errors.is_empty(), "{name}: {:?}", scan.errors);
    assert!(scan.warnings.is_empty(), "{name}: {:?}", scan.warnings);
    // PVs: uuid, size, VG, as pvs reports them.
    for p in &fx.pvs {
        let found = scan
            .pvs
            .iter()
            .find(|f| f.device == p.file)
            .unwrap_or_else(|| panic!("{name}: {} not found as a PV", p.file));
        assert_eq!(found.pv_uuid, p.uuid);
        assert_eq!(found.size, p.dev_size);
        assert_eq!(found.vg_name.as_deref(), Some(p.vg.as_str()));
    }
    assert_eq!(scan.vgs.len(), 1);
    let vg = &scan.vgs[0];
    let p0 = &fx.pvs[0];
    assert_eq!(vg.name(), p0.vg);
    assert_eq!(vg.seqno(), p0.seqno);
    assert_eq!(vg.extent_size(), p0.extent_size);
    // Metadata PV name ("pv0") -> fixture file, via the uuid.
    let mut meta_to_file = HashMap::new();
    for p in &fx.pvs {
        let vp = vg
            .pvs()
            .iter()
            .find(|v| v.uuid == p.uuid)
            .unwrap_or_else(|| panic!("{name}: VG lacks PV {}", p.uuid));
        assert_eq!(vp.pe_start, p.pe_start);
        assert_eq!(vp.pe_count, p.pe_count);
        assert_eq!(vp.present_on.as_deref(), Some(p.file.as_str()));
        meta_to_file.insert(vp.name.clone(), p.file.clone());
    }
    // LVs and segments, as lvs --segments reports them.
    assert_eq!(vg.lvs().len(), fx.lvs.len(), "{name}: {:?}", vg.lvs());
    let ext = vg.extent_size();
    for row in &fx.lvs {
        let info = vg
            .lvs()
            .iter()
            .find(|l| l.name == row.name)
            .unwrap_or_else(|| panic!("{name}: LV {} missing", row.name));
        assert_eq!(info.size, row.size, "{name}/{}", row.name);
        assert_eq!(info.visible, !row.hidden);
        assert_eq!(info.readable, Ok(()));
        assert_eq!(info.segments.len(), row.segs.len(), "{name}/{}", row.name);
        for (s, r) in info.segments.iter().zip(&row.segs) {
            assert_eq!(s.start_extent * ext, r.start);
            assert_eq!(s.extent_count * ext, r.size);
            let kind = if r.segtype == "linear" {
                "striped"
            } else {
                &r.segtype
            };
            assert_eq!(s.kind, kind);
            assert_eq!(s.stripe_count, r.stripes);
            assert_eq!(s.stripe_size, r.stripe_size);
            // lvs names PVs by device and sub-LVs by name; raid areas list only the
            // images (each from extent 0), while the metadata pairs rmeta and rimage.
            let areas: Vec<(String, u64)> = s
                .areas
                .iter()
                .filter(|a| !s.kind.starts_with("raid") || a.contains("_rimage_"))
                .map(|a| match a.rsplit_once(':') {
                    Some((n, e)) => (
                        meta_to_file
                            .get(n)
                            .cloned()
                            .unwrap_or_else(|| n.to_string()),
                        e.parse().unwrap(),
                    ),
                    None => (a.clone(), 0),
                })
                .collect();
            assert_eq!(areas, r.ranges, "{name}/{}", row.name);
        }
    }
    // Content of every visible linear/striped LV: one big read, then odd pieces.
    for row in fx.lvs.iter().filter(|r| !r.hidden) {
        let lv = vg.open_lv(&row.name).unwrap();
        assert_eq!(lv.len(), row.size);
        let mut all = vec![0u8; row.size as usize];
        lv.read_at(0, &mut all).unwrap();
        check_pattern(&row.name, 0, &all).unwrap();
        let mut off = 0u64;
        let mut step = 1u64;
        while off < row.size {
            let n = step.min(row.size - off);
            let mut buf = vec![0u8; n as usize];
            lv.read_at(off, &mut buf).unwrap();
            check_pattern(&row.name, off, &buf).unwrap();
            off += n;
            step = step * 3 + 1021;
        }
        // Past the end is an error, never a short read.
        let mut b = [0u8; 2];
        assert!(lv.read_at(row.size - 1, &mut b).is_err());
    }
    // The low-level parsers against pvck's dump of the same headers.
    for p in &fx.pvs {
        let img = &fx.images[&p.file];
        let at = fx.label_offset(&p.file) as usize;
        let h = lvm2::parse_label_sector(&img[at..at + 512], (at / 512) as u64).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&h.uuid_raw),
            fx.pvck(&p.file, "pv_header.pv_uuid").unwrap()
        );
        assert_eq!(h.device_size, fx.pvck_u64(&p.file, "pv_header.device_size"));
        assert_eq!(
            h.data_areas[0].offset,
            fx.pvck_u64(&p.file, "pv_header.disk_locn[0].offset")
        );
        assert_eq!(
            h.ext_version,
            fx.pvck_u64(&p.file, "pv_header_extension.version") as u32
        );
        for (i, m) in h.metadata_areas.iter().enumerate() {
            let key = format!("mda_header_{}", i + 1);
            let start = fx.pvck_u64(&p.file, &format!("{key}.start"));
            assert_eq!(m.offset, start);
            let s = start as usize;
            let mh = lvm2::mda::parse_mda_header(&img[s..s + 512], start).unwrap();
            assert_eq!(mh.size, fx.pvck_u64(&p.file, &format!("{key}.size")));
            let rl = mh.raw_locns[0];
            assert_eq!(
                rl.offset,
                fx.pvck_u64(&p.file, &format!("{key}.raw_locn[0].offset"))
            );
            assert_eq!(
                rl.size,
                fx.pvck_u64(&p.file, &format!("{key}.raw_locn[0].size"))
            );
            assert_eq!(
                u64::from(rl.checksum),
                fx.pvck_u64(&p.file, &format!("{key}.raw_locn[0].checksum"))
            );
            let src = MemSource::new(img.clone());
            let text = lvm2::mda::read_raw_text(&src, &mh, &rl).unwrap();
            assert!(text.checksum_ok);
        }
    }
}

#[test]
fn linear() {
    check_fixture("linear");
}

#[test]
fn striped() {
    check_fixture("striped");
}

#[test]
fn segments_across_two_pvs() {
    check_fixture("segments");
}

#[test]
fn two_metadata_copies() {
    check_fixture("mdacopies2");
}

#[test]
fn wrapped_metadata_ring() {
    check_fixture("wrap");
    let fx = load("wrap");
    // pvck itself says the committed text wraps ("# commit wrapped").
    let text = std::fs::read_to_string(fx.dir.join("pvck-pv1.txt")).unwrap();
    assert!(text.contains("commit wrapped"));
    let img = &fx.images["pv1"];
    let start = fx.pvck_u64("pv1", "mda_header_1.start");
    let mh =
        lvm2::mda::parse_mda_header(&img[start as usize..start as usize + 512], start).unwrap();
    let t = lvm2::mda::read_raw_text(&MemSource::new(img.clone()), &mh, &mh.raw_locns[0]).unwrap();
    assert!(t.wrapped);
}

/// Reads and bytes that reach the PVs: a linear read is one PV read; a striped
/// read splits exactly at stripe chunks.
#[test]
fn reads_split_only_at_chunk_boundaries() {
    let fx = load("striped");
    let counters: Vec<(String, Arc<Counting<MemSource>>)> = fx
        .pvs
        .iter()
        .map(|p| {
            (
                p.file.clone(),
                Arc::new(Counting::new(MemSource::new(fx.images[&p.file].clone()))),
            )
        })
        .collect();
    let devices: Vec<lvm2::Device> = counters
        .iter()
        .map(|(n, c)| lvm2::Device {
            name: n.clone(),
            source: c.clone() as SharedSource,
        })
        .collect();
    let scan = lvm2::scan(&devices);
    let vg = &scan.vgs[0];
    let total = || counters.iter().map(|(_, c)| c.reads()).sum::<u64>();
    for row in &fx.lvs {
        let lv = vg.open_lv(&row.name).unwrap();
        let before = total();
        let mut buf = vec![0u8; row.size as usize];
        lv.read_at(0, &mut buf).unwrap();
        let seg = &row.segs[0];
        let expect = if seg.stripes == 1 {
            1
        } else {
            row.size / seg.stripe_size
        };
        assert_eq!(total() - before, expect, "{}", row.name);
        // A read inside one chunk is one PV read.
        if seg.stripes > 1 {
            let before = total();
            let mut b = vec![0u8; 100];
            lv.read_at(seg.stripe_size * 3 + 7, &mut b).unwrap();
            assert_eq!(total() - before, 1);
            check_pattern(&row.name, seg.stripe_size * 3 + 7, &b).unwrap();
        }
    }
}

fn flip(img: &mut [u8], at: u64) {
    img[at as usize] ^= 0x20;
}

#[test]
fn damaged_label_is_a_device_error() {
    let fx = load("linear");
    let mut img = fx.images["pv1"].clone();
    flip(&mut img, fx.label_offset("pv1") + 100);
    let scan = lvm2::scan(&[dev("sda2", img)]);
    assert!(scan.vgs.is_empty());
    assert_eq!(scan.errors.len(), 1, "{:?}", scan.errors);
    assert!(
        scan.errors[0].starts_with("LVM label on sda2: bad CRC"),
        "{:?}",
        scan.errors
    );
}

#[test]
fn damaged_mda_header_with_one_copy() {
    let fx = load("linear");
    let start = fx.pvck_u64("pv1", "mda_header_1.start");
    // A flipped byte in the header's unused tail: only its checksum fails, the text
    // it points to verifies, so the VG is still read, with a warning.
    let mut img = fx.images["pv1"].clone();
    flip(&mut img, start + 400);
    let scan = lvm2::scan(&[dev("sdb", img)]);
    assert_eq!(scan.vgs.len(), 1, "{:?}", scan.errors);
    assert!(
        scan.warnings
            .iter()
            .any(|w| w.contains("sdb") && w.contains("checksum mismatch")),
        "{:?}",
        scan.warnings
    );
    // A damaged magic: the area is unusable, the PV is listed, the VG is lost.
    let mut img = fx.images["pv1"].clone();
    flip(&mut img, start + 8);
    let scan = lvm2::scan(&[dev("sdb", img)]);
    assert!(scan.vgs.is_empty());
    assert_eq!(scan.pvs.len(), 1);
    assert!(
        scan.warnings
            .iter()
            .any(|w| w.contains("sdb") && w.contains("magic")),
        "{:?}",
        scan.warnings
    );
    assert!(
        scan.errors
            .iter()
            .any(|e| e.contains("no readable metadata")),
        "{:?}",
        scan.errors
    );
}

fn text_offset(fx: &Fixture, pv: &str, mda: u32) -> u64 {
    fx.pvck_u64(pv, &format!("mda_header_{mda}.start"))
        + fx.pvck_u64(pv, &format!("mda_header_{mda}.raw_locn[0].offset"))
}

#[test]
fn damaged_text_falls_back_to_the_other_mda() {
    let fx = load("mdacopies2");
    for (bad, good) in [(1u32, 2u32), (2, 1)] {
        let mut img = fx.images["pv1"].clone();
        // Break the text so it fails its checksum (and no longer parses).
        let at = text_offset(&fx, "pv1", bad) + 40;
        img[at as usize] = b'{';
        let scan = lvm2::scan(&[dev("sdc", img.clone())]);
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        assert_eq!(scan.vgs.len(), 1);
        assert!(
            scan.warnings.iter().any(|w| w.contains("sdc")),
            "mda {bad}: {:?}",
            scan.warnings
        );
        let lv = scan.vgs[0].open_lv("two").unwrap();
        let mut all = vec![0u8; lv.len() as usize];
        lv.read_at(0, &mut all).unwrap();
        check_pattern("two", 0, &all).unwrap();
        // The header of the good copy intact, a damaged header on the bad one.
        let mut img2 = fx.images["pv1"].clone();
        flip(
            &mut img2,
            fx.pvck_u64("pv1", &format!("mda_header_{bad}.start")) + 300,
        );
        let scan = lvm2::scan(&[dev("sdc", img2)]);
        assert_eq!(
            scan.vgs.len(),
            1,
            "mda {good} should serve: {:?}",
            scan.errors
        );
    }
}

#[test]
fn damaged_text_with_no_other_copy_is_used_with_a_warning() {
    let fx = load("linear");
    let mut img = fx.images["pv1"].clone();
    // Change one character inside the VG id: still parses, checksum fails.
    let at = text_offset(&fx, "pv1", 1);
    let s = at as usize;
    let text = &img[s..s + 200];
    let id = text.windows(6).position(|w| w == b"id = \"").unwrap();
    img[s + id + 7] ^= 0x01;
    let scan = lvm2::scan(&[dev("sdd", img)]);
    assert_eq!(scan.vgs.len(), 1);
    assert!(
        scan.warnings
            .iter()
            .any(|w| w.contains("bad checksum") && w.contains("using it anyway")),
        "{:?}",
        scan.warnings
    );
}

/// The second PV holds the metadata as it was one change earlier (seqno 7), the
/// first PV has seqno 8 (as pvs reports). With the newest copy damaged, the older
/// valid one is used, with a warning naming both seqnos.
#[test]
fn damaged_newest_copy_uses_the_previous_seqno() {
    let fx = load("segments");
    let seqno = fx.pvs[0].seqno;
    let old_head = gunzip(&fx.dir.join("pv2-old-head.img.gz"));
    let mut pv2 = fx.images["pv2"].clone();
    pv2[..old_head.len()].copy_from_slice(&old_head);
    // Undamaged: the newest copy wins, and the stale one is mentioned.
    let scan = lvm2::scan(&[
        dev("sda", fx.images["pv1"].clone()),
        dev("sdb", pv2.clone()),
    ]);
    assert_eq!(scan.vgs[0].seqno(), seqno);
    assert!(
        scan.warnings
            .iter()
            .any(|w| w.contains("sdb") && w.contains(&format!("seqno {}", seqno - 1))),
        "{:?}",
        scan.warnings
    );
    // Damage the newest copy (on pv1) so its checksum fails.
    let mut pv1 = fx.images["pv1"].clone();
    // Flip a digit of the trailing creation_time: the text still parses (so its
    // seqno is known) but fails its checksum.
    let at = text_offset(&fx, "pv1", 1) as usize;
    let len = fx.pvck_u64("pv1", "mda_header_1.raw_locn[0].size") as usize;
    let ct = pv1[at..at + len]
        .windows(16)
        .rposition(|w| w == b"creation_time = ")
        .unwrap();
    pv1[at + ct + 17] ^= 0x01;
    let scan = lvm2::scan(&[dev("sda", pv1), dev("sdb", pv2)]);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    let vg = &scan.vgs[0];
    assert_eq!(vg.seqno(), seqno - 1);
    assert!(
        scan.warnings.iter().any(|w| w
            == &format!(
                "sda: metadata copy seqno {seqno} has a bad checksum; using seqno {}",
                seqno - 1
            )),
        "{:?}",
        scan.warnings
    );
    // At seqno 7, LV c had not yet got its striped extension (lvs.txt's last change).
    let c = vg.lvs().iter().find(|l| l.name == "c").unwrap();
    let c_now = fx.lvs.iter().find(|l| l.name == "c").unwrap();
    assert_eq!(c.segments.len(), c_now.segs.len() - 1);
    assert_eq!(c.size, c_now.segs[0].size);
    // LVs untouched by that change read the same.
    let a = vg.open_lv("a").unwrap();
    let mut all = vec![0u8; a.len() as usize];
    a.read_at(0, &mut all).unwrap();
    check_pattern("a", 0, &all).unwrap();
}

#[test]
fn missing_pv_fails_only_the_regions_on_it() {
    let fx = load("segments");
    let scan = lvm2::scan(&[dev("sda", fx.images["pv1"].clone())]);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    let vg = &scan.vgs[0];
    let pv2 = fx.pvs.iter().find(|p| p.file == "pv2").unwrap();
    let missing = vg.missing_pvs();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].uuid, pv2.uuid);
    assert!(
        scan.warnings
            .iter()
            .any(|w| w.contains("is missing") && w.contains(&pv2.uuid)),
        "{:?}",
        scan.warnings
    );
    // b lies only on pv1.
    let b = vg.lvs().iter().find(|l| l.name == "b").unwrap();
    assert_eq!(b.readable, Ok(()));
    let lvb = vg.open_lv("b").unwrap();
    let mut all = vec![0u8; lvb.len() as usize];
    lvb.read_at(0, &mut all).unwrap();
    check_pattern("b", 0, &all).unwrap();
    // a: its third segment is on pv2.
    let a_row = fx.lvs.iter().find(|l| l.name == "a").unwrap();
    let on_pv2 = a_row.segs.iter().find(|s| s.ranges[0].0 == "pv2").unwrap();
    let a = vg.lvs().iter().find(|l| l.name == "a").unwrap();
    let msg = a.readable.clone().unwrap_err();
    assert!(
        msg.contains("is missing") && msg.contains(&pv2.uuid),
        "{msg}"
    );
    let lva = vg.open_lv("a").unwrap();
    let mut head = vec![0u8; on_pv2.start as usize];
    lva.read_at(0, &mut head).unwrap();
    check_pattern("a", 0, &head).unwrap();
    let mut tail = vec![0u8; 512];
    let e = lva.read_at(on_pv2.start, &mut tail).unwrap_err();
    assert!(e.to_string().contains(&pv2.uuid), "{e}");
}

#[test]
fn backup_file_replaces_damaged_on_disk_metadata() {
    let fx = load("segments");
    let backup = std::fs::read_to_string(fx.dir.join("backup.vg")).unwrap();
    let mut imgs = Vec::new();
    for p in ["pv1", "pv2"] {
        let mut img = fx.images[p].clone();
        flip(&mut img, fx.pvck_u64(p, "mda_header_1.start") + 8); // the magic
        imgs.push(dev(p, img));
    }
    let plain = lvm2::scan(&imgs);
    assert!(plain.vgs.is_empty());
    let scan = lvm2::scan_with_metadata(&imgs, &backup).unwrap();
    assert_eq!(scan.vgs.len(), 1);
    let vg = &scan.vgs[0];
    assert_eq!(vg.seqno(), fx.pvs[0].seqno);
    for row in fx.lvs.iter().filter(|r| !r.hidden) {
        let lv = vg.open_lv(&row.name).unwrap();
        let mut all = vec![0u8; lv.len() as usize];
        lv.read_at(0, &mut all).unwrap();
        check_pattern(&row.name, 0, &all).unwrap();
    }
    assert!(lvm2::scan_with_metadata(&imgs, "vg { id = ").is_err());
}

#[test]
fn unknown_lv_is_named() {
    let fx = load("linear");
    let scan = lvm2::scan(&fx.devices());
    let e = scan.vgs[0].open_lv("nope").unwrap_err().to_string();
    assert_eq!(e, "VG vg_lin: no logical volume named \"nope\"");
}

#[test]
fn probe_finds_labels_only() {
    let fx = load("linear");
    assert!(lvm2::probe(&MemSource::new(fx.images["pv1"].clone())));
    assert!(!lvm2::probe(&MemSource::new(vec![0u8; 4096])));
    assert!(!lvm2::probe(&MemSource::new(vec![0u8; 10])));
}

#[test]
fn mirror_and_raid1_legs() {
    check_fixture("legs");
}

/// With either PV gone, the mirror and raid1 LVs still read in full from the other
/// leg; the LV with no second copy fails only if its PV is the missing one.
#[test]
fn mirror_and_raid1_survive_a_missing_leg() {
    let fx = load("legs");
    for keep in ["pv1", "pv2"] {
        let scan = lvm2::scan(&[dev(keep, fx.images[keep].clone())]);
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        let vg = &scan.vgs[0];
        assert_eq!(vg.missing_pvs().len(), 1);
        // raid10 (near, 2 copies, images alternating PVs) keeps a copy of every
        // chunk on each PV; raid0 does not.
        for name in ["mir", "r1", "r10"] {
            let info = vg.lvs().iter().find(|l| l.name == name).unwrap();
            assert_eq!(info.readable, Ok(()), "{name} with only {keep}");
            let lv = vg.open_lv(name).unwrap();
            let mut all = vec![0u8; lv.len() as usize];
            lv.read_at(0, &mut all).unwrap();
            check_pattern(name, 0, &all).unwrap();
        }
        let r0 = vg.lvs().iter().find(|l| l.name == "r0").unwrap();
        assert!(r0.readable.is_err());
        // raid5_ls and raid4 have images on pv1, pv2, pv1 (lvs.txt): without pv2
        // one image is gone and its chunks are rebuilt from parity; without pv1
        // two are gone.
        for name in ["r5", "r4"] {
            let info = vg.lvs().iter().find(|l| l.name == name).unwrap();
            if keep == "pv1" {
                assert_eq!(info.readable, Ok(()), "{name}");
                let lv = vg.open_lv(name).unwrap();
                let mut all = vec![0u8; lv.len() as usize];
                lv.read_at(0, &mut all).unwrap();
                check_pattern(name, 0, &all).unwrap();
            } else {
                assert!(info.readable.is_err(), "{name}");
            }
        }
        let pad = vg.lvs().iter().find(|l| l.name == "pad").unwrap();
        assert_eq!(pad.readable.is_ok(), keep == "pv2");
    }
}

/// With the raw_locn entries wiped, the texts lvm2 left in the ring are found by
/// searching it, as `pvck --dump metadata_search` does; the newest is the seqno
/// pvs reports (in `wrap`, that text wraps around the end of the ring).
#[test]
fn ring_search_finds_the_newest_text_when_locations_are_gone() {
    for name in ["linear", "wrap"] {
        let fx = load(name);
        let mut img = fx.images["pv1"].clone();
        let h = fx.pvck_u64("pv1", "mda_header_1.start") as usize;
        img[h + 40..h + 88].fill(0);
        let scan = lvm2::scan(&[dev("sde", img)]);
        assert_eq!(
            scan.vgs.len(),
            1,
            "{name}: {:?} {:?}",
            scan.errors,
            scan.warnings
        );
        assert_eq!(scan.vgs[0].seqno(), fx.pvs[0].seqno, "{name}");
        assert!(
            scan.warnings.iter().any(|w| w.contains("by searching")),
            "{name}: {:?}",
            scan.warnings
        );
        for row in fx.lvs.iter().filter(|r| !r.hidden) {
            let lv = scan.vgs[0].open_lv(&row.name).unwrap();
            let mut all = vec![0u8; lv.len() as usize];
            lv.read_at(0, &mut all).unwrap();
            check_pattern(&row.name, 0, &all).unwrap();
        }
    }
}

/// Reads from many threads at once over one shared LV (pread semantics).
#[test]
fn concurrent_reads() {
    let fx = load("striped");
    let scan = lvm2::scan(&fx.devices());
    let lv = Arc::new(scan.vgs[0].open_lv("s3").unwrap());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let lv = lv.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 5000];
                let mut off = t * 777;
                while off + 5000 <= lv.len() {
                    lv.read_at(off, &mut buf).unwrap();
                    check_pattern("s3", off, &buf).unwrap();
                    off += 40_000;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// A device whose reads of chosen byte ranges fail with EIO, like bad sectors.
struct Failing {
    inner: MemSource,
    bad: Vec<(u64, u64)>,
}

impl ByteSource for Failing {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let end = offset + buf.len() as u64;
        if self.bad.iter().any(|&(s, l)| offset < s + l && s < end) {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        self.inner.read_at(offset, buf)
    }
}

fn failing_dev(name: &str, bytes: Vec<u8>, bad: Vec<(u64, u64)>) -> lvm2::Device {
    lvm2::Device {
        name: name.to_string(),
        source: Arc::new(Failing {
            inner: MemSource::new(bytes),
            bad,
        }),
    }
}

/// Bad sectors over one metadata area of a `--pvmetadatacopies 2` PV (where
/// pvck says the area and its text are): the other area serves, the warning
/// names the PV, the area and its byte offset. Both bad: no VG, and the error
/// names each copy tried.
#[test]
fn unreadable_mda_falls_back_to_the_other_copy() {
    let fx = load("mdacopies2");
    let lv = &fx.lvs[0];
    for (bad, text_only) in [(1u32, false), (2, false), (1, true), (2, true)] {
        let start = fx.pvck_u64("pv1", &format!("mda_header_{bad}.start"));
        // Either the header sector, or only the text's first sector.
        let range = if text_only {
            (text_offset(&fx, "pv1", bad), 512)
        } else {
            (start, 512)
        };
        let scan = lvm2::scan(&[failing_dev("sdc", fx.images["pv1"].clone(), vec![range])]);
        assert!(scan.errors.is_empty(), "mda{bad}: {:?}", scan.errors);
        assert_eq!(scan.vgs.len(), 1);
        assert_eq!(scan.vgs[0].name(), fx.pvs[0].vg);
        assert_eq!(scan.vgs[0].seqno(), fx.pvs[0].seqno);
        assert!(
            scan.warnings.iter().any(|w| w.contains("sdc")
                && w.contains(&format!("mda{bad}"))
                && w.contains(&fx.pvs[0].uuid)
                && w.contains(&format!("byte {start}"))),
            "mda{bad}: {:?}",
            scan.warnings
        );
        // Counted as a read error the scan survived.
        assert_eq!(scan.read_errors.len(), 1, "{:?}", scan.read_errors);
        assert!(scan.read_errors[0].contains(&format!("mda{bad}")));
        let v = scan.vgs[0].open_lv(&lv.name).unwrap();
        assert_eq!(v.len(), lv.size);
        let mut all = vec![0u8; v.len() as usize];
        v.read_at(0, &mut all).unwrap();
        check_pattern(&lv.name, 0, &all).unwrap();
    }
    // Undamaged: no read error.
    assert!(lvm2::scan(&fx.devices()).read_errors.is_empty());
    // Both areas unreadable.
    let s1 = fx.pvck_u64("pv1", "mda_header_1.start");
    let s2 = fx.pvck_u64("pv1", "mda_header_2.start");
    let scan = lvm2::scan(&[failing_dev(
        "sdc",
        fx.images["pv1"].clone(),
        vec![(s1, 512), (s2, 512)],
    )]);
    assert!(scan.vgs.is_empty());
    assert_eq!(scan.errors.len(), 1, "{:?}", scan.errors);
    let e = &scan.errors[0];
    assert!(e.contains(&fx.pvs[0].uuid), "{e}");
    for (n, s) in [(1, s1), (2, s2)] {
        assert!(
            e.contains(&format!("mda{n}")) && e.contains(&format!("byte {s}")),
            "{e}"
        );
    }
}

/// A VG on two PVs (`segments`, one area each): pv1's area unreadable, pv2's
/// copy serves, and every LV reads as lvm2 laid it out.
#[test]
fn unreadable_mda_on_one_pv_uses_another_pvs_copy() {
    let fx = load("segments");
    let start = fx.pvck_u64("pv1", "mda_header_1.start");
    let scan = lvm2::scan(&[
        failing_dev("sda", fx.images["pv1"].clone(), vec![(start, 4096)]),
        dev("sdb", fx.images["pv2"].clone()),
    ]);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(scan.vgs.len(), 1);
    assert_eq!(scan.vgs[0].seqno(), fx.pvs[0].seqno);
    assert!(
        scan.warnings.iter().any(|w| w.contains("sda")
            && w.contains("mda1")
            && w.contains(&format!("byte {start}"))),
        "{:?}",
        scan.warnings
    );
    for lv in fx.lvs.iter().filter(|l| !l.hidden) {
        let v = scan.vgs[0].open_lv(&lv.name).unwrap();
        assert_eq!(v.len(), lv.size);
        let mut all = vec![0u8; v.len() as usize];
        v.read_at(0, &mut all).unwrap();
        check_pattern(&lv.name, 0, &all).unwrap();
    }
}
