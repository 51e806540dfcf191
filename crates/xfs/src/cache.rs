//! A bounded cache of metadata blocks (inode clusters, bmbt and directory and
//! attribute blocks), keyed by device byte offset and length. File data is never
//! cached. Eviction drops the least recently used half at once when the byte
//! budget (4 MiB) is exceeded, so a lookup stays O(1) and eviction is amortised.

use std::collections::HashMap;
use std::sync::Arc;

/// Bytes the cache may hold.
const CACHE_BYTES: usize = 4 << 20;

/// (device byte offset, length) -> (bytes, last-use tick).
type Map = HashMap<(u64, usize), (Arc<[u8]>, u64)>;

#[derive(Debug, Default)]
pub(crate) struct BlockCache {
    map: Map,
    tick: u64,
    bytes: usize,
}

impl BlockCache {
    pub(crate) fn get(&mut self, key: (u64, usize)) -> Option<Arc<[u8]>> {
        self.tick = self.tick.wrapping_add(1);
        let tick = self.tick;
        self.map.get_mut(&key).map(|(data, t)| {
            *t = tick;
            data.clone()
        })
    }

    pub(crate) fn put(&mut self, key: (u64, usize), data: Arc<[u8]>) {
        if data.len() > CACHE_BYTES / 4 {
            return;
        }
        if self.bytes.saturating_add(data.len()) > CACHE_BYTES {
            let mut ticks: Vec<u64> = self.map.values().map(|(_, t)| *t).collect();
            ticks.sort_unstable();
            let cut = ticks.get(ticks.len() / 2).copied().unwrap_or(0);
            self.map.retain(|_, (_, t)| *t > cut);
            self.bytes = self.map.values().map(|(d, _)| d.len()).sum();
        }
        self.tick = self.tick.wrapping_add(1);
        self.bytes = self.bytes.saturating_add(data.len());
        if let Some((old, _)) = self.map.insert(key, (data, self.tick)) {
            self.bytes = self.bytes.saturating_sub(old.len());
        }
    }
}
