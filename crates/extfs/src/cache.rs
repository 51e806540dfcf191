//! A small bounded cache of metadata blocks (group descriptor tables, inode
//! tables, extent and indirect blocks, directory blocks). File data is never
//! cached. Eviction is least-recently-used by a tick counter; the cache holds at
//! most ~2 MiB whatever the block size.
//!
//! Also [`Memo`], a bounded map of objects already parsed from those blocks (group
//! descriptors, inodes), so that asking for one twice (`ls -l` reads each entry's
//! inode, then its extended attributes) parses and checksums it once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Bytes the cache may hold. 8 MiB were the largest holder of a far copy's memory
/// after its copy buffers: its blocks are one allocation each, made by the
/// scanner and copying threads and so spread over glibc's malloc arenas. Copying
/// `/usr/share` out of a stream-optimized disk behind 1 ms per read (LT3), the
/// median peak RSS was 81 MiB with 8 MiB, 72 with 4 and 67 with 2; out of the flat
/// disk (L3) 56 MiB with 4 and 46 with 2; no copy was slower (4 interleaved runs
/// each).
const CACHE_BYTES: u32 = 2 << 20;

pub(crate) struct BlockCache {
    map: HashMap<u64, (Arc<[u8]>, u64)>,
    tick: u64,
    capacity: usize,
}

impl BlockCache {
    pub(crate) fn new(block_size: u32) -> Self {
        let capacity = usize::try_from(CACHE_BYTES.checked_div(block_size).unwrap_or(16))
            .unwrap_or(16)
            .max(16);
        BlockCache {
            map: HashMap::new(),
            tick: 0,
            capacity,
        }
    }

    pub(crate) fn get(&mut self, block: u64) -> Option<Arc<[u8]>> {
        self.tick = self.tick.wrapping_add(1);
        let tick = self.tick;
        self.map.get_mut(&block).map(|(data, t)| {
            *t = tick;
            data.clone()
        })
    }

    pub(crate) fn put(&mut self, block: u64, data: Arc<[u8]>) {
        if self.map.len() >= self.capacity {
            // Drop the older half at once so eviction cost is amortised.
            let mut ticks: Vec<u64> = self.map.values().map(|(_, t)| *t).collect();
            ticks.sort_unstable();
            let cut = ticks.get(ticks.len() / 2).copied().unwrap_or(0);
            self.map.retain(|_, (_, t)| *t > cut);
        }
        self.tick = self.tick.wrapping_add(1);
        self.map.insert(block, (data, self.tick));
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }
}

/// A bounded map from a number (group, inode) to what was parsed for it. When
/// full it is emptied at once: what it saves is a re-parse, never a read the
/// caller would not otherwise make. A `BTreeMap`: the keys come from the image,
/// and ordered lookups cost the same whatever numbers a hostile image picks.
pub(crate) struct Memo<V> {
    map: Mutex<BTreeMap<u32, V>>,
    capacity: usize,
}

impl<V: Clone> Memo<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Memo {
            map: Mutex::new(BTreeMap::new()),
            capacity,
        }
    }

    pub(crate) fn get(&self, key: u32) -> Option<V> {
        self.map.lock().ok()?.get(&key).cloned()
    }

    pub(crate) fn put(&self, key: u32, value: V) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= self.capacity {
                m.clear();
            }
            m.insert(key, value);
        }
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut m) = self.map.lock() {
            m.clear();
        }
    }
}
