//! Fuzzes dm-thin pool metadata: the input is the metadata device (superblock,
//! btree nodes). Unless the first byte is odd, every block's checksum is fixed up
//! first (superblock salt for block 0, btree node salt for the rest), so mutations
//! reach the node checks, lookups, walks and reads instead of stopping at the CRC.
#![no_main]

use bytesource::{ByteSource, MemSource, SharedSource};
use libfuzzer_sys::fuzz_target;
use lvm2::thin::{btree::BTREE_CSUM_XOR, superblock, ThinPool};
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let mut meta = data.to_vec();
    meta.truncate(256 * 4096);
    let blocks = meta.len().div_ceil(4096).max(1);
    meta.resize(blocks * 4096, 0);
    if data.first().is_some_and(|b| b & 1 == 0) {
        for (i, blk) in meta.chunks_mut(4096).enumerate() {
            let salt = if i == 0 {
                superblock::SUPERBLOCK_CSUM_XOR
            } else {
                BTREE_CSUM_XOR
            };
            let c = superblock::dm_checksum(&blk[4..], salt);
            blk[..4].copy_from_slice(&c.to_le_bytes());
        }
    }
    let meta: SharedSource = Arc::new(MemSource::new(meta));
    let dev: SharedSource = Arc::new(MemSource::new(vec![0u8; 1 << 20]));
    let Ok(pool) = ThinPool::open(meta, dev) else {
        return;
    };
    let pool = Arc::new(pool);
    let _ = pool.devices();
    for id in 0..4u64 {
        let _ = pool.device(id);
        let _ = pool.highest_mapped_block(id);
        if let Ok(v) = pool.open_thin(id, 64 << 20, None) {
            let mut buf = vec![0u8; 200_000];
            for off in [0u64, 65_000, 8 << 20, (64 << 20) - 200_000] {
                let _ = v.read_at(off, &mut buf);
            }
        }
    }
});
