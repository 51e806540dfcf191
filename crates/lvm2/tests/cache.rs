//! cache and writecache LVs read their origin sub-LV. The VG is the `segments`
//! fixture (made by lvm2, `scripts/fixtures/lvm2.sh`), whose LV "a" holds
//! "a sector s\n" in each sector s; its backup text is edited to turn "a" into the
//! origin `a_corig` of a writeback cache LV "a" (and "b" into the origin of a
//! writecache LV), the way lvm2's `lvconvert --type cache` records it
//! (`lib/cache_segtype/cache.c`, `lib/writecache/writecache.c`). The cache devices
//! themselves are not read, so they need not exist.

use bytesource::{ByteSource, MemSource, SharedSource};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

fn data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/segments"))
}

fn dev(file: &str) -> lvm2::Device {
    let raw = std::fs::read(data_dir().join(file)).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .unwrap();
    let source: SharedSource = Arc::new(MemSource::new(out));
    lvm2::Device {
        name: file.trim_end_matches(".img.gz").to_string(),
        source,
    }
}

fn cached_text() -> String {
    let t = std::fs::read_to_string(data_dir().join("backup.vg")).unwrap();
    let t = t.replacen("\n\t\ta {\n", "\n\t\ta_corig {\n", 1);
    let t = t.replacen("\n\t\tb {\n", "\n\t\tb_wcorig {\n", 1);
    let extra = r#"
		a {
			id = "cache0-0000-0000-0000-0000-0000-000001"
			status = ["READ", "WRITE", "VISIBLE"]
			segment_count = 1
			segment1 {
				start_extent = 0
				extent_count = 7
				type = "cache"
				cache_pool = "cpool"
				origin = "a_corig"
			}
		}
		cpool {
			id = "cache0-0000-0000-0000-0000-0000-000002"
			status = ["READ", "WRITE"]
			segment_count = 1
			segment1 {
				start_extent = 0
				extent_count = 1
				type = "cache-pool"
				data = "cpool_cdata"
				metadata = "cpool_cmeta"
				cache_mode = "writeback"
				chunk_size = 128
			}
		}
		b {
			id = "cache0-0000-0000-0000-0000-0000-000003"
			status = ["READ", "WRITE", "VISIBLE"]
			segment_count = 1
			segment1 {
				start_extent = 0
				extent_count = 5
				type = "writecache"
				origin = "b_wcorig"
				writecache = "fast_cvol"
			}
		}
"#;
    let i = t.find("\tlogical_volumes {\n").unwrap() + "\tlogical_volumes {\n".len();
    format!("{}{extra}{}", &t[..i], &t[i..])
}

#[test]
fn cache_lvs_read_their_origin_with_a_warning() {
    let devs = [dev("pv1.img.gz"), dev("pv2.img.gz")];
    let scan = lvm2::scan_with_metadata(&devs, &cached_text()).unwrap();
    let vg = &scan.vgs[0];
    for (name, origin, mode) in [
        ("a", "a_corig", "writeback"),
        ("b", "b_wcorig", "writecache"),
    ] {
        let info = vg.lv(name).unwrap();
        assert_eq!(info.readable, Ok(()), "{name}");
        match &info.role {
            lvm2::LvRole::Cache {
                origin: o, mode: m, ..
            } => {
                assert_eq!((o.as_str(), m.as_str()), (origin, mode));
            }
            r => panic!("{r:?}"),
        }
        let lv = vg.open_lv(name).unwrap();
        assert!(
            lv.warnings()
                .iter()
                .any(|w| w.contains(mode) && w.contains("newer")),
            "{:?}",
            lv.warnings()
        );
        // The content lvm2's fixture script wrote into the original LV.
        assert_eq!(lv.len(), vg.lv(origin).unwrap().size);
        let mut sec = vec![0u8; 512];
        for s in 0..lv.len() / 512 {
            lv.read_at(s * 512, &mut sec).unwrap();
            let t = format!("{name} sector {s}\n");
            assert!(sec.starts_with(t.as_bytes()), "{name} sector {s}");
        }
    }
    let e = vg.open_lv("cpool").unwrap_err().to_string();
    assert!(e.contains("cache-pool"), "{e}");
}
