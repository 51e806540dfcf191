//! Hostile and malformed input: every case must end in a clear error naming the
//! object, never a panic, hang or huge allocation.

use bytesource::{ByteSource, MemSource};
use lvm2::label::{parse_label, LabelProblem};

fn label_sector(sector: u64, offset_xl: u32, ty: &[u8; 8]) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[..8].copy_from_slice(b"LABELONE");
    b[8..16].copy_from_slice(&sector.to_le_bytes());
    b[20..24].copy_from_slice(&offset_xl.to_le_bytes());
    b[24..32].copy_from_slice(ty);
    fix_label_crc(&mut b);
    b
}

fn fix_label_crc(b: &mut [u8]) {
    let crc = lvm2::crc::calc_crc(lvm2::crc::INITIAL_CRC, &b[20..512]);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn label_problems_are_named() {
    assert_eq!(parse_label(&[0u8; 512], 0), Err(LabelProblem::NoMagic));
    assert_eq!(parse_label(&[0u8; 10], 0), Err(LabelProblem::NoMagic));
    let b = label_sector(1, 32, b"LVM2 001");
    assert!(parse_label(&b, 1).is_ok());
    assert_eq!(parse_label(&b, 2), Err(LabelProblem::WrongSector(1)));
    let b = label_sector(1, 5000, b"LVM2 001");
    assert_eq!(parse_label(&b, 1), Err(LabelProblem::BadOffset(5000)));
    let b = label_sector(1, 32, b"LVM1 001");
    assert!(matches!(
        parse_label(&b, 1),
        Err(LabelProblem::WrongType(_))
    ));
    let mut b = label_sector(1, 32, b"LVM2 001");
    b[300] ^= 1;
    assert!(matches!(
        parse_label(&b, 1),
        Err(LabelProblem::BadCrc { .. })
    ));
}

#[test]
fn pv_header_lists_that_never_end() {
    // A valid label whose disk_locn lists fill the sector with no terminator.
    let mut b = label_sector(1, 32, b"LVM2 001");
    b[32..64].copy_from_slice(b"abcdefghijklmnopqrstuvwxyzABCDEF");
    for chunk in b[72..].chunks_mut(8) {
        chunk.copy_from_slice(&7u64.to_le_bytes()[..chunk.len()]);
    }
    fix_label_crc(&mut b);
    let e = lvm2::parse_label_sector(&b, 1).unwrap_err();
    assert!(e.contains("runs past the end"), "{e}");
    // Non-alphanumeric uuid bytes.
    let mut b = label_sector(1, 32, b"LVM2 001");
    b[32..64].copy_from_slice(&[0xffu8; 32]);
    fix_label_crc(&mut b);
    assert!(lvm2::parse_label_sector(&b, 1).is_err());
}

/// A device: label in sector 1 pointing at one metadata area at 4096 of `mda_size`
/// bytes, whose raw_locn 0 is (`off`, `len`) with the text's real checksum.
fn device(mda_size: u64, off: u64, text: &[u8], declared_len: Option<u64>) -> Vec<u8> {
    let total = 4096 + mda_size as usize + 65536;
    let mut d = vec![0u8; total];
    let mut l = label_sector(1, 32, b"LVM2 001");
    l[32..64].copy_from_slice(b"abcdefghijklmnopqrstuvwxyzABCDEF");
    l[64..72].copy_from_slice(&(total as u64).to_le_bytes());
    // data area: offset 4096+mda_size, size 0; terminator; mda 4096, mda_size; terminator
    l[72..80].copy_from_slice(&(4096 + mda_size).to_le_bytes());
    l[104..112].copy_from_slice(&4096u64.to_le_bytes());
    l[112..120].copy_from_slice(&mda_size.to_le_bytes());
    fix_label_crc(&mut l);
    d[512..1024].copy_from_slice(&l);
    // The text, wrapping after the end of the area to 4096+512.
    let ring = (mda_size - 512) as usize;
    for (i, &c) in text.iter().enumerate() {
        let pos = (off as usize - 512 + i) % ring;
        d[4096 + 512 + pos] = c;
    }
    let crc = lvm2::crc::calc_crc(lvm2::crc::INITIAL_CRC, text);
    let h = &mut d[4096..4096 + 512];
    h[4..20].copy_from_slice(b" LVM2 x[5A%r0N*>");
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[24..32].copy_from_slice(&4096u64.to_le_bytes());
    h[32..40].copy_from_slice(&mda_size.to_le_bytes());
    h[40..48].copy_from_slice(&off.to_le_bytes());
    h[48..56].copy_from_slice(&declared_len.unwrap_or(text.len() as u64).to_le_bytes());
    h[56..60].copy_from_slice(&crc.to_le_bytes());
    let c = lvm2::crc::calc_crc(lvm2::crc::INITIAL_CRC, &h[4..512]);
    h[0..4].copy_from_slice(&c.to_le_bytes());
    d
}

const VG: &str = r#"vg {
id = "aaaaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaaa"
seqno = 3
extent_size = 8
physical_volumes {
pv0 {
id = "abcdef-ghij-klmn-opqr-stuv-wxyz-ABCDEF"
device = "/dev/old"
pe_start = 64
pe_count = 100
}
}
logical_volumes {
lv {
id = "x"
status = ["READ", "WRITE", "VISIBLE"]
segment_count = 1
segment1 {
start_extent = 0
extent_count = 2
type = "striped"
stripe_count = 1
stripes = ["pv0", 1]
}
}
}
}
"#;

fn scan_one(d: Vec<u8>) -> lvm2::Scan {
    lvm2::scan(&[lvm2::Device {
        name: "sdz".into(),
        source: std::sync::Arc::new(MemSource::new(d)),
    }])
}

#[test]
fn synthetic_device_reads_and_wraps() {
    // Not wrapped.
    let scan = scan_one(device(8192, 1024, VG.as_bytes(), None));
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(scan.vgs[0].name(), "vg");
    assert_eq!(scan.vgs[0].pvs()[0].present_on.as_deref(), Some("sdz"));
    // Wrapped: starts 100 bytes before the end of the area.
    let d = device(8192, 8192 - 100, VG.as_bytes(), None);
    let scan = scan_one(d.clone());
    assert!(
        scan.errors.is_empty() && scan.warnings.is_empty(),
        "{scan:?}"
    );
    let lv = scan.vgs[0].open_lv("lv").unwrap();
    assert_eq!(lv.len(), 8192);
    // Extent 1 of pv0: pe_start 64 sectors + 8 sectors.
    let mut b = [0u8; 4];
    lv.read_at(0, &mut b).unwrap();
}

#[test]
fn raw_locn_out_of_bounds() {
    for (off, len) in [
        (0u64, 100u64),  // inside the header
        (9000, 100),     // past the area
        (1024, 0),       // empty
        (1024, 9 << 20), // larger than the cap
        (1024, 100_000), // larger than the ring
    ] {
        let d = device(8192, 1024, VG.as_bytes(), Some(len));
        let mut d = d;
        // The text sits at 1024; point raw_locn 0 somewhere else.
        let h = &mut d[4096..4096 + 512];
        h[40..48].copy_from_slice(&off.to_le_bytes());
        let c = lvm2::crc::calc_crc(lvm2::crc::INITIAL_CRC, &h[4..512]);
        h[0..4].copy_from_slice(&c.to_le_bytes());
        let scan = scan_one(d);
        // The bad location is reported; the text itself still sits in the ring,
        // where the ring search finds it (and says so).
        assert!(
            scan.warnings.iter().any(|w| w.contains("sdz")),
            "({off}, {len}): {:?}",
            scan.warnings
        );
        assert_eq!(scan.vgs.len(), 1, "({off}, {len})");
        assert!(
            scan.warnings.iter().any(|w| w.contains("by searching")),
            "({off}, {len}): {:?}",
            scan.warnings
        );
    }
}

fn vg_with(lvs: &str, extent_size: &str) -> String {
    format!(
        r#"vg {{ id = "v" seqno = 1 extent_size = {extent_size}
physical_volumes {{ pv0 {{ id = "abcdef-ghij-klmn-opqr-stuv-wxyz-ABCDEF" pe_start = 2048 pe_count = 1000 }} }}
logical_volumes {{ {lvs} }} }}"#
    )
}

#[test]
fn impossible_geometry_is_an_lv_error() {
    let cases = [
        // extents overflow u64 bytes
        (
            r#"big { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 4611686018427387904 type = "striped" stripe_count = 1 stripes = ["pv0", 0] } }"#,
            "big",
        ),
        // stripe count does not match the areas
        (
            r#"s { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 4 type = "striped" stripe_count = 3 stripe_size = 128 stripes = ["pv0", 0, "pv0", 10] } }"#,
            "s",
        ),
        // striped without a stripe size
        (
            r#"s { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 4 type = "striped" stripe_count = 2 stripes = ["pv0", 0, "pv0", 10] } }"#,
            "s",
        ),
        // area past the PV's extents
        (
            r#"p { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 4 type = "striped" stripe_count = 1 stripes = ["pv0", 999] } }"#,
            "p",
        ),
        // unknown area name
        (
            r#"u { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 4 type = "striped" stripe_count = 1 stripes = ["nowhere", 0] } }"#,
            "u",
        ),
        // a gap between segments
        (
            r#"g { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv0", 0] } segment2 { start_extent = 5 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv0", 1] } }"#,
            "g",
        ),
        // negative values
        (
            r#"n { status = ["VISIBLE"] segment1 { start_extent = -1 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv0", 0] } }"#,
            "n",
        ),
    ];
    for (lv, name) in cases {
        let vg = lvm2::parse_vg_text(vg_with(lv, "8").as_bytes()).unwrap();
        let info = vg.lvs().iter().find(|l| l.name == name);
        if let Some(info) = info {
            assert!(info.readable.is_err(), "{lv}");
        }
        let e = vg.open_lv(name).unwrap_err().to_string();
        assert!(e.starts_with("vg/") || e.starts_with("VG vg"), "{e}");
    }
    assert!(lvm2::parse_vg_text(vg_with("", "0").as_bytes()).is_err());
    assert!(lvm2::parse_vg_text(vg_with("", "-8").as_bytes()).is_err());
    assert!(lvm2::parse_vg_text(vg_with("", "36028797018963968").as_bytes()).is_err());
}

#[test]
fn stacked_cycles_end_in_an_error() {
    let lvs = r#"
a { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 1 type = "mirror" mirror_count = 1 mirrors = ["b", 0] } }
b { status = [] segment1 { start_extent = 0 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["a", 0] } }
"#;
    let vg = lvm2::parse_vg_text(vg_with(lvs, "8").as_bytes()).unwrap();
    for name in ["a", "b"] {
        let info = vg.lvs().iter().find(|l| l.name == name).unwrap();
        assert!(info.readable.is_err());
        if let Ok(lv) = vg.open_lv(name) {
            let mut b = [0u8; 512];
            assert!(lv.read_at(0, &mut b).is_err());
        }
    }
}

#[test]
fn unsupported_types_are_named() {
    let lvs = r#"
v { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 1 type = "vdo" vdo_pool = "vp" } }
i { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 1 type = "integrity" origin = "x" } }
"#;
    let vg = lvm2::parse_vg_text(vg_with(lvs, "8").as_bytes()).unwrap();
    for (name, kind) in [("v", "vdo"), ("i", "integrity")] {
        let info = vg.lvs().iter().find(|l| l.name == name).unwrap();
        let r = info.readable.clone().unwrap_err();
        assert!(
            r.starts_with(&format!("unsupported segment type {kind} (")),
            "{r}"
        );
        let e = vg.open_lv(name).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("vg/{name}: unsupported segment type {kind}")),
            "{e}"
        );
    }
}

/// Thin, snapshot and raid6 segments in text alone (every PV missing): the
/// pool is refused, references to LVs that do not exist are invalid, and
/// nothing panics or opens what cannot be read.
#[test]
fn thin_snapshot_raid6_text_without_devices() {
    let lvs = r#"
pool { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 1 type = "thin-pool" metadata = "m" pool = "d" chunk_size = 128 } }
m { status = [] segment1 { start_extent = 0 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv0", 0] } }
d { status = [] segment1 { start_extent = 0 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv0", 1] } }
t { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 1 type = "thin" thin_pool = "pool" device_id = 1 } }
t2 { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 1 type = "thin" thin_pool = "nopool" device_id = 1 } }
t3 { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 1 type = "thin" thin_pool = "pool" device_id = 16777216 } }
r6 { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 1 type = "raid6_zr" device_count = 3 stripe_size = 128 raids = ["a", "b", "c", "d", "e", "f"] } }
origin { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv0", 2] } }
snap { status = ["VISIBLE"] segment1 { start_extent = 0 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv0", 3] } }
snapshot0 { status = [] segment1 { start_extent = 0 extent_count = 1 type = "snapshot" chunk_size = 8 origin = "origin" cow_store = "snap" } }
"#;
    let vg = lvm2::parse_vg_text(vg_with(lvs, "8").as_bytes()).unwrap();
    let e = vg.open_lv("pool").unwrap_err().to_string();
    assert_eq!(e, "vg/pool: thin pool: read its thin volumes instead");
    for name in ["t", "snap", "snapshot0", "r6"] {
        let info = vg.lvs().iter().find(|l| l.name == name).unwrap();
        assert!(info.readable.is_err(), "{name}: PVs are missing");
        assert!(vg.open_lv(name).is_err() || name == "r6", "{name}");
    }
    for name in ["t2", "t3"] {
        let info = vg.lvs().iter().find(|l| l.name == name).unwrap();
        assert!(info.readable.is_err(), "{name}");
        assert!(vg.open_lv(name).is_err(), "{name}");
    }
    assert!(matches!(
        vg.lv("snap").unwrap().role,
        lvm2::LvRole::SnapshotCow { .. }
    ));
    assert!(matches!(
        vg.lv("origin").unwrap().role,
        lvm2::LvRole::Origin { .. }
    ));
    match &vg.lv("pool").unwrap().role {
        lvm2::LvRole::ThinPool { thin_lvs, .. } => assert_eq!(thin_lvs, &["t"]),
        r => panic!("{r:?}"),
    }
}

#[test]
fn text_bounds() {
    let deep = "a {".repeat(10_000);
    assert!(lvm2::metadata_text::parse(deep.as_bytes()).is_err());
    let big = vec![b' '; (8 << 20) + 1];
    assert!(lvm2::metadata_text::parse(&big).is_err());
    for bad in [
        "a = ",
        "a = [1,",
        "a = \"x",
        "= 1",
        "a { b = 1",
        "a = [ { ]",
        "a = ]",
    ] {
        assert!(lvm2::metadata_text::parse(bad.as_bytes()).is_err(), "{bad}");
    }
    // Escapes, single quotes, comments after values, trailing comma.
    let s = lvm2::metadata_text::parse(b"a = 'x\\'y' # c\nb = [1, 2,]\nc = 0x10\n").unwrap();
    assert_eq!(s.str("a"), Some("x'y"));
    assert_eq!(s.int("c"), Some(16));
}

#[test]
fn shared_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<lvm2::VolumeGroup>();
    check::<lvm2::LogicalVolume>();
    check::<lvm2::Scan>();
    check::<lvm2::Error>();
}

#[test]
fn truncated_device_is_warned_about() {
    let mut d = device(8192, 1024, VG.as_bytes(), None);
    d.truncate(20000);
    let scan = scan_one(d);
    assert!(
        scan.warnings.iter().any(|w| w.contains("truncated")),
        "{:?}",
        scan.warnings
    );
    let lv = scan.vgs[0].open_lv("lv").unwrap();
    let mut b = vec![0u8; 8192];
    let e = lv.read_at(0, &mut b).unwrap_err();
    assert!(e.to_string().contains("pv0"), "{e}");
}

/// Nine levels of ten mirror LVs, each level's legs being every LV of the next,
/// ending on a missing PV: 10^9 paths. Metadata walks must be memoised and reads
/// must give up after a bounded number of failed legs.
#[test]
fn wide_stacks_do_not_explode() {
    let mut lvs = String::new();
    let levels = 9;
    for k in 0..levels {
        for i in 0..10 {
            if k + 1 == levels {
                lvs.push_str(&format!(
                    "l{k}_{i} {{ status = [] segment1 {{ start_extent = 0 extent_count = 1 type = \"striped\" stripe_count = 1 stripes = [\"pv0\", {i}] }} }}\n"
                ));
            } else {
                let legs: Vec<String> = (0..10).map(|j| format!("\"l{}_{j}\", 0", k + 1)).collect();
                lvs.push_str(&format!(
                    "l{k}_{i} {{ status = [\"VISIBLE\"] segment1 {{ start_extent = 0 extent_count = 1 type = \"mirror\" mirror_count = 10 mirrors = [{}] }} }}\n",
                    legs.join(", ")
                ));
            }
        }
    }
    let t = std::time::Instant::now();
    let vg = lvm2::parse_vg_text(vg_with(&lvs, "8").as_bytes()).unwrap();
    let info = vg.lvs().iter().find(|l| l.name == "l0_0").unwrap();
    // pv0 is missing (no devices), so nothing is readable...
    assert!(info.readable.is_err());
    // ...but a read is tried, and fails quickly.
    let lv = vg.open_lv("l0_0").unwrap();
    let mut b = [0u8; 512];
    assert!(lv.read_at(0, &mut b).is_err());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t.elapsed()
    );
}

/// Hostile exception stores: a table whose every area is full runs into the end
/// of the COW (an error, not a hang), entries pointing past the COW are errors,
/// and bad headers are named.
#[test]
fn hostile_snapshot_stores() {
    use lvm2::snapshot::ExceptionStore;
    let hdr = |magic: u32, valid: u32, version: u32, chunk: u32| {
        let mut v = vec![0u8; 64 << 10];
        v[0..4].copy_from_slice(&magic.to_le_bytes());
        v[4..8].copy_from_slice(&valid.to_le_bytes());
        v[8..12].copy_from_slice(&version.to_le_bytes());
        v[12..16].copy_from_slice(&chunk.to_le_bytes());
        v
    };
    let read = |v: Vec<u8>| ExceptionStore::read(&bytesource::MemSource::new(v), 4096);
    // Every entry non-zero: all areas full, until the COW ends.
    let mut full = hdr(0x7041_6e53, 1, 1, 8);
    for (i, e) in full[4096..].chunks_mut(16).enumerate() {
        e[0..8].copy_from_slice(&(i as u64).to_le_bytes());
        e[8..16].copy_from_slice(&3u64.to_le_bytes());
    }
    let e = read(full).unwrap_err();
    assert!(e.contains("never ends"), "{e}");
    let mut past = hdr(0x7041_6e53, 1, 1, 8);
    past[4096 + 8..4096 + 16].copy_from_slice(&1000u64.to_le_bytes());
    assert!(read(past).unwrap_err().contains("past the COW"));
    assert!(read(hdr(0x7041_6e53, 0, 1, 8))
        .unwrap_err()
        .contains("invalid"));
    assert!(read(hdr(0x7041_6e53, 1, 2, 8))
        .unwrap_err()
        .contains("version"));
    assert!(read(hdr(0x7041_6e53, 1, 1, 0))
        .unwrap_err()
        .contains("chunk_size"));
    assert!(read(hdr(0x1234, 1, 1, 8)).unwrap_err().contains("magic"));
    // An all-zero header: a snapshot never written to; no exceptions.
    let (s, w) = read(vec![0u8; 8192]).unwrap();
    assert!(s.is_empty() && !w.is_empty());
}
