//! Fuzzes the LVM label and PV header parser (`lvm2::parse_label_sector`) and
//! `lvm2::probe`: any input, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for sector in 0..4u64 {
        let _ = lvm2::parse_label_sector(data, sector);
    }
    let _ = lvm2::probe(&bytesource::MemSource::new(data.to_vec()));
});
