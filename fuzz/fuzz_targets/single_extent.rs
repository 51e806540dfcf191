//! Shared body of the fuzz targets for one-file VMDK extent readers (`vmdk_sparse`,
//! `vmdk_cowd`, `vmdk_sesparse`): each forces its format's magic onto the input,
//! opens it as an in-memory file, queries the allocation map and reads every byte
//! (bounded). Errors are fine; panics, hangs and huge allocations are not.

use bytesource::{ByteSource, MemSource, SharedSource};
use std::sync::Arc;

pub fn run(magic: &[u8], data: &[u8]) {
    // Steer every input to this format by forcing its magic.
    let mut bytes = data.to_vec();
    if bytes.len() < magic.len() {
        return;
    }
    bytes[..magic.len()].copy_from_slice(magic);
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
}
