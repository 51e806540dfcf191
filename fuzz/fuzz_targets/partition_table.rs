//! Reads arbitrary bytes as a disk's partition table (MBR with an extended chain,
//! GPT with its backup header): never a panic, a hang or an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let disk = bytesource::MemSource::new(data.to_vec());
    let _ = vmdkrecover::partitions::read_table("sda", &disk);
    let _ = vmdkrecover::stack::probe(&disk);
});
