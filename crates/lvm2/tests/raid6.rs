//! raid6 LVs, one per md layout lvm2 names (`scripts/fixtures/lvm2-thin.sh`,
//! section raid6). lvm2's `vgcfgrestore` validated and wrote the VG text; `lvs.txt`
//! is its report. LV sector s of LV "x" holds "x sector s\n" then zeros; the
//! script placed data, P and Q per its own transliteration of the kernel's
//! raid5.c and lib/raid6. Every LV must read back the same with 0, 1 or 2 of its 5
//! images (PV files) missing, and fail with 3 missing.

use bytesource::{ByteSource, MemSource, SharedSource};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

fn data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/raid6"))
}

fn pvs() -> Vec<lvm2::Device> {
    (1..=5)
        .map(|i| {
            let raw = std::fs::read(data_dir().join(format!("pv{i}.img.gz"))).unwrap();
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .unwrap();
            let source: SharedSource = Arc::new(MemSource::new(out));
            lvm2::Device {
                name: format!("pv{i}"),
                source,
            }
        })
        .collect()
}

/// (LV, segment type, size) of the raid6 LVs in lvs.txt.
fn raid6_lvs() -> Vec<(String, String, u64)> {
    std::fs::read_to_string(data_dir().join("lvs.txt"))
        .unwrap()
        .lines()
        .map(|l| l.split('|').collect::<Vec<_>>())
        .filter(|f| f[1].starts_with("raid6"))
        .map(|f| (f[0].to_string(), f[1].to_string(), f[8].parse().unwrap()))
        .collect()
}

fn check_all(devs: &[lvm2::Device], missing: &[usize]) {
    let scan = lvm2::scan(devs);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    let vg = scan.vg("vg_r6").unwrap();
    assert_eq!(vg.missing_pvs().len(), missing.len());
    let lvs = raid6_lvs();
    assert_eq!(lvs.len(), 8);
    for (name, kind, size) in lvs {
        let info = vg.lv(&name).unwrap();
        assert_eq!(info.segments[0].kind, kind);
        if missing.len() > 2 {
            assert!(info.readable.is_err(), "{name} with {missing:?} missing");
            if let Ok(lv) = vg.open_lv(&name) {
                let mut b = vec![0u8; 1 << 20];
                assert!(lv.read_at(0, &mut b).is_err(), "{name}");
            }
            continue;
        }
        assert_eq!(info.readable, Ok(()), "{name} with {missing:?} missing");
        let lv = vg.open_lv(&name).unwrap();
        assert_eq!(lv.len(), size);
        let mut buf = vec![0u8; size as usize];
        lv.read_at(0, &mut buf).unwrap();
        for (s, sec) in buf.chunks(512).enumerate() {
            let t = format!("{name} sector {s}\n");
            assert!(
                sec.starts_with(t.as_bytes()) && sec[t.len()..].iter().all(|&b| b == 0),
                "{name} ({kind}) sector {s} with {missing:?} missing: {:?}",
                String::from_utf8_lossy(&sec[..32])
            );
        }
        // An unaligned read across chunk boundaries.
        let mut odd = vec![0u8; 70_000];
        lv.read_at(30_000, &mut odd).unwrap();
        assert_eq!(odd, buf[30_000..100_000]);
    }
}

#[test]
fn raid6_reads_with_every_image() {
    check_all(&pvs(), &[]);
}

#[test]
fn raid6_reads_with_one_image_missing() {
    let all = pvs();
    for gone in 0..5 {
        let devs: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != gone)
            .map(|(_, d)| d.clone())
            .collect();
        check_all(&devs, &[gone]);
    }
}

#[test]
fn raid6_reads_with_two_images_missing() {
    let all = pvs();
    for a in 0..5 {
        for b in a + 1..5 {
            let devs: Vec<_> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != a && *i != b)
                .map(|(_, d)| d.clone())
                .collect();
            check_all(&devs, &[a, b]);
        }
    }
}

#[test]
fn raid6_fails_with_three_images_missing() {
    let all = pvs();
    check_all(&all[3..], &[0, 1, 2]);
    check_all(&[all[0].clone(), all[2].clone()], &[1, 3, 4]);
}
