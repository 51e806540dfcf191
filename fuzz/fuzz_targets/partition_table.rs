//! Reads arbitrary bytes as a disk's partition table (MBR with an extended chain,
//! GPT with its backup header, hybrids, 4096-byte sectors): never a panic, a hang
//! or an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let disk = bytesource::MemSource::new(data.to_vec());
    if let Ok(Some(t)) = partitions::detect(&disk) {
        // Every warning renders; every partition is checked against the disk.
        for w in &t.warnings {
            let _ = w.to_string();
        }
        for p in &t.partitions {
            assert!(
                !p.readable
                    || p.start
                        .checked_add(p.size)
                        .is_some_and(|e| e <= data.len() as u64)
            );
        }
    }
    let _ = partitions::read_table(&disk);
});
