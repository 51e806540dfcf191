//! dm-thin pools: thin volumes (and thin snapshots, which are thin volumes sharing
//! mappings) read through the pool's persistent-data metadata.
//!
//! A pool is two devices: the metadata device (lvm2's `<pool>_tmeta`) and the data
//! device (`<pool>_tdata`), cut into data blocks of `data_block_size` sectors. The
//! metadata ([`superblock`], [`btree`], [`space_map`]; kernel
//! `drivers/md/dm-thin-metadata.c`) holds a two-level mapping btree: device id ->
//! root of that device's tree, whose leaves map a virtual block to the u64
//! `(data_block << 24) | time` (`pack_block_time`), and a device details btree:
//! device id -> `struct disk_device_details` {mapped_blocks u64, transaction_id
//! u64, creation_time u32, snapshotted_time u32}.
//!
//! A thin volume reads mapped blocks from the data device and zeros (or, with an
//! external origin, the origin's bytes) where nothing is mapped. Lookups are lazy:
//! nodes are read on demand and kept in a small bounded cache, so memory does not
//! grow with the number of mappings; consecutive blocks mapped to consecutive data
//! blocks are read in one request.
//!
//! Not read: the metadata snapshot's own view (its block is reported), the space
//! maps' bitmaps (only their counts), and `needs_check` is reported, not acted on.
//! Nothing is written.

// The node, space-map and superblock layouts are internal; the fuzz target forges
// their checksums, so `--features fuzzing` makes them public for it alone.
#[cfg(feature = "fuzzing")]
pub mod btree;
#[cfg(not(feature = "fuzzing"))]
mod btree;
#[cfg(feature = "fuzzing")]
pub mod space_map;
#[cfg(not(feature = "fuzzing"))]
mod space_map;
#[cfg(feature = "fuzzing")]
pub mod superblock;
#[cfg(not(feature = "fuzzing"))]
mod superblock;

use btree::{Node, NodeSource};
use bytesource::field;
use bytesource::{ByteSource, SharedSource};
pub use space_map::SmRoot;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
pub use superblock::Superblock;
use superblock::BLOCK_SIZE;

/// Nodes kept in the cache (256 × 4 KiB = 1 MiB per pool).
const CACHE_NODES: usize = 256;
/// Most nodes a whole-tree walk (device details) visits.
const MAX_WALK_NODES: usize = 1 << 16;
/// Most virtual blocks looked up for one read before it is split.
const MAX_BLOCKS_PER_RUN: u64 = 1 << 16;
/// Size of `struct disk_device_details`.
const DETAILS_SIZE: usize = 24;

/// One thin device's details (`struct disk_device_details`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThinDeviceDetails {
    /// Device id (lvm2's `device_id`).
    pub device_id: u64,
    /// Data blocks mapped.
    pub mapped_blocks: u64,
    /// Transaction id when the device last changed.
    pub transaction_id: u64,
    /// Pool time at creation.
    pub creation_time: u32,
    /// Pool time of the last snapshot of (or by) this device.
    pub snapshotted_time: u32,
}

struct Cache {
    map: HashMap<u64, Arc<Node>>,
    order: VecDeque<u64>,
}

/// An opened thin pool: checked superblock plus lazy btree access.
pub struct ThinPool {
    name: String,
    meta: SharedSource,
    data: SharedSource,
    sb: Superblock,
    meta_blocks: u64,
    cache: Mutex<Cache>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for ThinPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThinPool")
            .field("name", &self.name)
            .field("superblock", &self.sb)
            .finish()
    }
}

fn thin_err(name: &str, reason: impl std::fmt::Display) -> crate::Error {
    crate::Error::Thin {
        pool: name.to_string(),
        reason: reason.to_string(),
    }
}

impl ThinPool {
    /// Opens a bare pool: its metadata device and data device.
    pub fn open(meta: SharedSource, data: SharedSource) -> Result<Self, crate::Error> {
        Self::open_named("thin pool", meta, data)
    }

    /// Like [`ThinPool::open`], naming the pool in messages ("vg/pool").
    pub fn open_named(
        name: &str,
        meta: SharedSource,
        data: SharedSource,
    ) -> Result<Self, crate::Error> {
        let mut b = vec![0u8; BLOCK_SIZE];
        meta.read_at(0, &mut b)
            .map_err(|e| thin_err(name, format!("metadata superblock: {e}")))?;
        let sb = superblock::parse_superblock(&b).map_err(|e| thin_err(name, e))?;
        sb.data_sm.check("data").map_err(|e| thin_err(name, e))?;
        sb.metadata_sm
            .check("metadata")
            .map_err(|e| thin_err(name, e))?;
        let dev_blocks = meta.len().checked_div(4096).unwrap_or(0);
        let meta_blocks = if sb.metadata_nr_blocks == 0 {
            dev_blocks
        } else {
            sb.metadata_nr_blocks.min(dev_blocks)
        };
        let mut warnings = Vec::new();
        if sb.metadata_nr_blocks > dev_blocks {
            warnings.push(format!(
                "{name}: superblock says {} metadata blocks, the metadata device holds {dev_blocks}",
                sb.metadata_nr_blocks
            ));
        }
        if sb.flags & 1 != 0 {
            warnings.push(format!("{name}: metadata is flagged needs_check"));
        }
        let block_bytes = u64::from(sb.data_block_size).saturating_mul(512);
        let data_blocks = data.len().checked_div(block_bytes).unwrap_or(0);
        if sb.data_sm.nr_blocks > data_blocks {
            warnings.push(format!(
                "{name}: {} data blocks in the space map, the data device holds {data_blocks}",
                sb.data_sm.nr_blocks
            ));
        }
        Ok(Self {
            name: name.to_string(),
            meta,
            data,
            sb,
            meta_blocks,
            cache: Mutex::new(Cache {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
            warnings,
        })
    }

    /// The checked superblock.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }
    /// Data block size in bytes.
    pub fn data_block_bytes(&self) -> u64 {
        u64::from(self.sb.data_block_size).saturating_mul(512)
    }
    /// Data space map: total data blocks and blocks in use.
    pub fn data_space(&self) -> SmRoot {
        self.sb.data_sm
    }
    /// Metadata space map: total metadata blocks (4 KiB) and blocks in use.
    pub fn metadata_space(&self) -> SmRoot {
        self.sb.metadata_sm
    }
    /// The pool's transaction id.
    pub fn transaction_id(&self) -> u64 {
        self.sb.transaction_id
    }
    /// Block of the metadata snapshot (`held_root`), when one is held.
    pub fn metadata_snap(&self) -> Option<u64> {
        (self.sb.metadata_snap != 0).then_some(self.sb.metadata_snap)
    }
    /// Problems found while opening (never fatal).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
    pub(crate) fn push_warning(&mut self, w: String) {
        self.warnings.push(w);
    }

    /// The pool's name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every thin device's details, in device id order.
    pub fn devices(&self) -> Result<Vec<ThinDeviceDetails>, crate::Error> {
        let mut out = Vec::new();
        let mut f = |k: u64, v: &[u8]| {
            out.push(details(k, v).ok_or_else(|| format!("device {k}: details value too short"))?);
            Ok(())
        };
        btree::walk(
            self,
            self.sb.device_details_root,
            DETAILS_SIZE,
            MAX_WALK_NODES,
            &mut f,
        )
        .map_err(|e| thin_err(&self.name, format!("device details: {e}")))?;
        Ok(out)
    }

    /// Details of device `id`, if the pool has it.
    pub fn device(&self, id: u64) -> Result<Option<ThinDeviceDetails>, crate::Error> {
        let v = btree::lookup(self, self.sb.device_details_root, id, DETAILS_SIZE)
            .map_err(|e| thin_err(&self.name, format!("device details of device {id}: {e}")))?;
        v.map(|v| {
            details(id, &v).ok_or_else(|| {
                thin_err(
                    &self.name,
                    format!("device details of device {id}: value too short"),
                )
            })
        })
        .transpose()
    }

    /// Root block of device `id`'s mapping tree.
    fn device_root(&self, id: u64) -> Result<u64, crate::Error> {
        let v = btree::lookup(self, self.sb.data_mapping_root, id, 8)
            .map_err(|e| thin_err(&self.name, format!("mapping tree, device {id}: {e}")))?;
        // A looked-up value is the tree's value size (8 here, checked per node).
        v.and_then(|v| field::le_u64(&v, 0))
            .ok_or_else(|| thin_err(&self.name, format!("no thin device with id {id}")))
    }

    /// Where virtual block `vblock` of the device tree at `root` lives: the data
    /// block and the time stamp, or None when unmapped.
    pub fn map_block(&self, root: u64, vblock: u64) -> Result<Option<(u64, u32)>, String> {
        let v = btree::lookup(self, root, vblock, 8)?;
        Ok(v.map(|v| {
            // The value is 8 bytes (value size checked per node): never 0 by fallback.
            let x = field::le_u64(&v, 0).unwrap_or(0);
            (x >> 24, u32::try_from(x & 0xff_ffff).unwrap_or(0))
        }))
    }

    /// Opens thin device `id` as a byte source of `size` bytes. Unmapped blocks
    /// read from `external_origin` when given (where it is long enough), else as
    /// zeros.
    pub fn open_thin(
        self: &Arc<Self>,
        id: u64,
        size: u64,
        external_origin: Option<SharedSource>,
    ) -> Result<ThinVolume, crate::Error> {
        let root = self.device_root(id)?;
        // Check the root node now, so a damaged tree is reported at open time.
        self.node(root, 8)
            .map_err(|e| thin_err(&self.name, format!("device {id}: {e}")))?;
        Ok(ThinVolume {
            pool: self.clone(),
            id,
            root,
            size,
            origin: external_origin,
        })
    }

    /// The highest mapped virtual block of device `id`, if any (cheap: follows
    /// the last child at each level). For bare pools, whose device sizes live
    /// outside the metadata.
    pub fn highest_mapped_block(&self, id: u64) -> Result<Option<u64>, crate::Error> {
        let root = self.device_root(id)?;
        btree::last_key(self, root, 8)
            .map_err(|e| thin_err(&self.name, format!("device {id}: {e}")))
    }
}

/// `struct disk_device_details` (dm-thin-metadata.c); `None` when `v` is shorter
/// than its DETAILS_SIZE bytes, which the per-node value size check rules out.
fn details(id: u64, v: &[u8]) -> Option<ThinDeviceDetails> {
    Some(ThinDeviceDetails {
        device_id: id,
        mapped_blocks: field::le_u64(v, 0)?,
        transaction_id: field::le_u64(v, 8)?,
        creation_time: field::le_u32(v, 16)?,
        snapshotted_time: field::le_u32(v, 20)?,
    })
}

impl NodeSource for ThinPool {
    fn node(&self, block: u64, leaf_value_size: usize) -> Result<Arc<Node>, String> {
        if let Ok(c) = self.cache.lock() {
            if let Some(n) = c.map.get(&block) {
                return check_cached(n, block, leaf_value_size);
            }
        }
        if block == 0 || block >= self.meta_blocks {
            return Err(format!(
                "btree node block {block} is outside the metadata device's {} blocks",
                self.meta_blocks
            ));
        }
        let mut buf = vec![0u8; BLOCK_SIZE];
        let off = block
            .checked_mul(4096)
            .ok_or_else(|| format!("block {block} overflows"))?;
        self.meta
            .read_at(off, &mut buf)
            .map_err(|e| format!("btree node block {block}: {e}"))?;
        let node = Arc::new(Node::parse(buf, block, leaf_value_size)?);
        if let Ok(mut c) = self.cache.lock() {
            if c.map.len() >= CACHE_NODES {
                if let Some(old) = c.order.pop_front() {
                    c.map.remove(&old);
                }
            }
            c.map.insert(block, node.clone());
            c.order.push_back(block);
        }
        Ok(node)
    }
}

/// A cached node was parsed for some tree; a leaf's value size must still match
/// what this lookup expects (a hostile image can point two trees at one block).
fn check_cached(n: &Arc<Node>, block: u64, lvs: usize) -> Result<Arc<Node>, String> {
    let vs = if n.leaf { lvs } else { 8 };
    let ok = n.is_empty() || n.value(0).len() == vs;
    if ok {
        Ok(n.clone())
    } else {
        Err(format!(
            "btree node block {block}: value size does not fit this tree"
        ))
    }
}

/// A thin device of a pool, as a byte source.
#[derive(Clone)]
pub struct ThinVolume {
    pool: Arc<ThinPool>,
    id: u64,
    root: u64,
    size: u64,
    origin: Option<SharedSource>,
}

impl std::fmt::Debug for ThinVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ThinVolume({} device {}, {} bytes)",
            self.pool.name, self.id, self.size
        )
    }
}

impl ThinVolume {
    /// The device id.
    pub fn device_id(&self) -> u64 {
        self.id
    }
    /// The pool.
    pub fn pool(&self) -> &Arc<ThinPool> {
        &self.pool
    }

    fn io_err(&self, e: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} thin device {}: {e}", self.pool.name, self.id),
        )
    }

    /// Fills `buf` (at byte `off` of the device, inside unmapped blocks) from the
    /// external origin, or with zeros.
    fn read_unmapped(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        buf.fill(0);
        if let Some(o) = &self.origin {
            let olen = o.len();
            if off < olen {
                let n = usize::try_from(olen.saturating_sub(off))
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                if let Some(part) = buf.get_mut(..n) {
                    o.read_at(off, part)?;
                }
            }
        }
        Ok(())
    }
}

impl ByteSource for ThinVolume {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        bytesource::check_range(&"thin device", self.size, offset, buf.len())?;
        let bs = self.pool.data_block_bytes();
        let mut off = offset;
        let mut rest = buf;
        while !rest.is_empty() {
            let bad = || self.io_err("data block size is 0".to_string());
            let vblock = off.checked_div(bs).ok_or_else(bad)?;
            let within = off.checked_rem(bs).ok_or_else(bad)?;
            let first = self
                .pool
                .map_block(self.root, vblock)
                .map_err(|e| self.io_err(e))?;
            // Extend the run while the next blocks map the same way (consecutive
            // data blocks, or all unmapped) and the read wants them.
            let want = within.saturating_add(u64::try_from(rest.len()).unwrap_or(u64::MAX));
            let blocks_wanted = want.div_ceil(bs).min(MAX_BLOCKS_PER_RUN);
            let mut run = 1u64;
            while run < blocks_wanted {
                let next = self
                    .pool
                    .map_block(self.root, vblock.saturating_add(run))
                    .map_err(|e| self.io_err(e))?;
                let fits = match (first, next) {
                    (None, None) => true,
                    (Some((d0, _)), Some((d, _))) => d0.checked_add(run) == Some(d),
                    _ => false,
                };
                if !fits {
                    break;
                }
                run = run.saturating_add(1);
            }
            let take = run.saturating_mul(bs).saturating_sub(within);
            let take = usize::try_from(take).unwrap_or(usize::MAX).min(rest.len());
            let (now, later) = std::mem::take(&mut rest).split_at_mut(take);
            match first {
                None => self.read_unmapped(off, now)?,
                Some((d, _)) => {
                    let at = d
                        .checked_mul(bs)
                        .and_then(|x| x.checked_add(within))
                        .ok_or_else(|| self.io_err(format!("data block {d} overflows")))?;
                    let end = at.saturating_add(u64::try_from(now.len()).unwrap_or(u64::MAX));
                    if end > self.pool.data.len() {
                        return Err(self.io_err(format!(
                            "block {vblock} maps to data block {d}, past the data device's end"
                        )));
                    }
                    self.pool.data.read_at(at, now)?;
                }
            }
            off = off.saturating_add(u64::try_from(now.len()).unwrap_or(u64::MAX));
            rest = later;
        }
        Ok(())
    }
}
