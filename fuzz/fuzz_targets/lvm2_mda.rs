//! Fuzzes a whole PV: label, PV header, metadata area headers, the metadata ring
//! (wrapping), the text, VG assembly and LV reads. The input is the device image;
//! the first bytes also serve as a metadata area header on their own.
#![no_main]

use bytesource::{ByteSource, MemSource, SharedSource};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    // The header checksum is not required here, so mutations reach the ring code.
    if let Ok(mh) = lvm2::mda::parse_mda_header_ignoring_checksum(data, 0) {
        let src = MemSource::new(data.to_vec());
        for rl in &mh.raw_locns {
            let _ = lvm2::mda::read_raw_text(&src, &mh, rl);
        }
        let _ = lvm2::mda::search_ring(&src, &mh);
    }
    let source: SharedSource = Arc::new(MemSource::new(data.to_vec()));
    let scan = lvm2::scan(&[lvm2::Device {
        name: "fuzz".to_string(),
        source,
    }]);
    for vg in &scan.vgs {
        for info in vg.lvs() {
            if let Ok(lv) = vg.open_lv(&info.name) {
                let mut buf = vec![0u8; 4096.min(lv.len()) as usize];
                let _ = lv.read_at(0, &mut buf);
                let _ = lv.read_at(lv.len().saturating_sub(buf.len() as u64), &mut buf);
            }
        }
    }
});
