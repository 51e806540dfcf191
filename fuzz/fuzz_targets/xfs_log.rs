//! Runs XFS log recovery over arbitrary log bytes: a fixed small device (a minimal
//! v5 or v4 superblock at sector 0, a 256 KiB log whose contents are the fuzz
//! input, and data blocks that replay may target), then reads the recovered
//! device everywhere replay changed it. Errors are expected and ignored; panics,
//! hangs and runaway allocations are the bugs this looks for.
#![no_main]

use std::sync::Arc;

use bytesource::{ByteSource, MemSource, SharedSource};
use libfuzzer_sys::fuzz_target;
use xfs::log::{recover, LogGeometry};

const BLOCK: usize = 4096;
const LOG_START_BLOCK: usize = 8;
const LOG_BLOCKS: usize = 64;
const DEV_BLOCKS: usize = 512;
const UUID: [u8; 16] = *b"fuzz-xfs-log-uid";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, log)) = data.split_first() else { return };
    let is_v5 = flags & 1 != 0;
    let mut dev = vec![0u8; DEV_BLOCKS * BLOCK];
    // struct xfs_dsb fields the log module reads (libxfs/xfs_format.h).
    dev[0..4].copy_from_slice(b"XFSB");
    dev[4..8].copy_from_slice(&(BLOCK as u32).to_be_bytes());
    dev[32..48].copy_from_slice(&UUID);
    dev[84..88].copy_from_slice(&(DEV_BLOCKS as u32).to_be_bytes());
    dev[100..102].copy_from_slice(&(if is_v5 { 0xb4a5u16 } else { 0xb4a4 }).to_be_bytes());
    dev[104..106].copy_from_slice(&512u16.to_be_bytes());
    dev[122] = 9;
    dev[123] = 3;
    dev[124] = 9;
    dev[180..184].copy_from_slice(&2u32.to_be_bytes());
    let start = LOG_START_BLOCK * BLOCK;
    let n = log.len().min(LOG_BLOCKS * BLOCK);
    dev[start..start + n].copy_from_slice(&log[..n]);
    let src: SharedSource = Arc::new(MemSource::new(dev));
    let geom = LogGeometry {
        log_start_daddr: (LOG_START_BLOCK * BLOCK / 512) as u64,
        log_blocks: LOG_BLOCKS as u32,
        block_size: BLOCK as u32,
        log_sector_size: 512,
        version: if flags & 2 != 0 { 2 } else { 1 },
        log_stripe_unit: 0,
        is_v5,
        uuid: UUID,
    };
    if let Ok(rec) = recover(src, &geom) {
        let mut b = [0u8; 512];
        for s in rec.changed_sectors.iter().take(4096) {
            let _ = rec.device.read_at(s * 512, &mut b);
        }
        let _ = (rec.warnings.len(), rec.summary.len(), rec.head_block, rec.tail_block);
    }
});
