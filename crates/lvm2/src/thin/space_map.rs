//! Space map roots of a thin pool: how many data (and metadata) blocks exist and
//! how many are in use.
//!
//! Layout: `struct disk_sm_root` in the kernel's
//! `drivers/md/persistent-data/dm-space-map-common.h`: nr_blocks u64, nr_allocated
//! u64, bitmap_root u64, ref_count_root u64 (32 bytes, padded to 128 in the
//! superblock). The counts are written by `sm_ll_commit`, so they are current as of
//! the last commit. The bitmap (`BITMAP_CSUM_XOR` 240779) and index
//! (`INDEX_CSUM_XOR` 160478) blocks under the roots are not read: the counts are
//! all a reader needs.

use bytesource::field;

/// `BITMAP_CSUM_XOR` (dm-space-map-common.c), for reference and for tools.
/// The reader only counts the maps (module doc), so nothing here verifies them.
#[allow(dead_code)]
pub const BITMAP_CSUM_XOR: u32 = 240_779;
/// `INDEX_CSUM_XOR` (dm-space-map-common.c).
#[allow(dead_code)]
pub const INDEX_CSUM_XOR: u32 = 160_478;

/// A space map root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SmRoot {
    /// Blocks the space map covers.
    pub nr_blocks: u64,
    /// Blocks with a non-zero reference count.
    pub nr_allocated: u64,
    /// Root of the bitmap index.
    pub bitmap_root: u64,
    /// Root of the overflow reference-count btree.
    pub ref_count_root: u64,
}

impl SmRoot {
    /// Parses a `disk_sm_root`; `None` when `b` is shorter than its 32 bytes.
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            nr_blocks: field::le_u64(b, 0)?,
            nr_allocated: field::le_u64(b, 8)?,
            bitmap_root: field::le_u64(b, 16)?,
            ref_count_root: field::le_u64(b, 24)?,
        })
    }

    /// A root whose allocation count exceeds its size is damaged.
    pub fn check(&self, what: &str) -> Result<(), String> {
        if self.nr_allocated > self.nr_blocks {
            return Err(format!(
                "{what} space map: {} blocks allocated of {}",
                self.nr_allocated, self.nr_blocks
            ));
        }
        Ok(())
    }
}
