//! Fuzzes the dm-snapshot persistent exception store: the input is the COW device
//! (header chunk, exception areas); the snapshot is read over a zero origin.
#![no_main]

use bytesource::{ByteSource, MemSource, SharedSource};
use libfuzzer_sys::fuzz_target;
use lvm2::snapshot::{ExceptionStore, SnapshotVolume};
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let cow = MemSource::new(data.to_vec());
    let _ = ExceptionStore::read(&cow, 4096);
    let cow: SharedSource = Arc::new(cow);
    let origin: SharedSource = Arc::new(MemSource::new(vec![0u8; 1 << 20]));
    if let Ok((v, _)) = SnapshotVolume::open("fuzz", origin, cow, 4 << 20, 4096) {
        let mut buf = vec![0u8; 100_000];
        for off in [0u64, 4095, 1 << 20, (4 << 20) - 100_000] {
            let _ = v.read_at(off, &mut buf);
        }
    }
});
