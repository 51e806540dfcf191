//! Fuzzes the metadata text parser and VG model building (`lvm2::parse_vg_text`,
//! as used for `--lvm-metadata` backup files): any text, never a panic, and LV
//! reads of the result fail cleanly (every PV is missing).
#![no_main]

use bytesource::ByteSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lvm2::metadata_text::parse(data);
    if let Ok(vg) = lvm2::parse_vg_text(data) {
        for info in vg.lvs() {
            if let Ok(lv) = vg.open_lv(&info.name) {
                let mut buf = [0u8; 512];
                let _ = lv.read_at(0, &mut buf);
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lvm2::scan_with_metadata(&[], text);
    }
});
