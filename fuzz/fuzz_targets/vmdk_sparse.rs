//! Fuzzes the hosted sparse / streamOptimized (`KDMV`) extent reader: open one in-memory file, read
//! every byte (bounded) and query the allocation map. Errors are fine; panics,
//! hangs and huge allocations are not.
#![no_main]

use bytesource::{ByteSource, MemSource, SharedSource};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

const MAGIC: &[u8] = b"KDMV";

fuzz_target!(|data: &[u8]| {
    // Steer every input to this format by forcing its magic.
    let mut bytes = data.to_vec();
    if bytes.len() < MAGIC.len() {
        return;
    }
    bytes[..MAGIC.len()].copy_from_slice(MAGIC);
    let src: SharedSource = Arc::new(MemSource::new(bytes));
    let Ok(disk) = vmdk::Disk::from_source(src) else {
        return;
    };
    // Bounded: a hostile map can alternate kinds every grain.
    let _ = disk.allocation(0, disk.len().min(1 << 30));
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = 0u64;
    let end = disk.len().min(16 << 20);
    while pos < end {
        let n = (end - pos).min(buf.len() as u64) as usize;
        if disk.read_at(pos, &mut buf[..n]).is_err() {
            break;
        }
        pos += n as u64;
    }
});
