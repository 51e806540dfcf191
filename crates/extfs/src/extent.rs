//! Extent trees (Documentation/filesystems/ext4/ifork.rst, "Extent Tree").
//!
//! A lookup descends from the root in `i_block` to the leaf that covers one
//! logical block, choosing at each level the last index entry whose `ei_block`
//! is not above the target. Each lookup costs at most `depth` block reads (served
//! from the metadata cache), so walking a file costs one lookup per extent, and a
//! malformed tree (shared children, unsorted entries) cannot blow up the work.

use crate::bytes::{lo_hi, Fields};
use crate::crc::crc32c;
use crate::{Error, Filesystem, Inode, Mapping};
use bytesource::field;

/// `eh_magic` (ifork.rst).
const EXT4_EXT_MAGIC: u16 = 0xF30A;
/// The deepest tree we follow. The kernel refuses trees deeper than 5
/// (`EXT4_MAX_EXTENT_DEPTH`), but e2fsck calls deeper ones valid, merely "could be
/// more shallow" (its `f_extent_too_deep` test), and debugfs reads them, so a
/// recovery tool should too. Depth strictly decreases on the way down (checked in
/// the descent), so this is the bound on block reads per lookup.
pub(crate) const MAX_EXTENT_DEPTH: u16 = 32;
/// `ee_len` above this marks an uninitialized extent (`EXT_INIT_MAX_LEN`).
const EXT_INIT_MAX_LEN: u16 = 32768;
/// Header and entry size.
const ENTRY: usize = 12;

/// A checked `ext4_extent_header`: `entries <= eh_max`, and `eh_max` entries fit
/// in the node, so every entry below `entries` lies inside it.
struct Header {
    entries: usize,
    depth: u16,
}

fn header(ino: u32, node: &[u8], what: &str) -> Result<Header, Error> {
    let f = Fields::new(node, "extent header");
    let magic = f
        .le16(0)
        .map_err(|e| Error::inode(ino, format!("{what}: {e}")))?;
    if node.len() < ENTRY || magic != EXT4_EXT_MAGIC {
        return Err(Error::inode(
            ino,
            format!("{what}: bad extent header magic {magic:#06x}"),
        ));
    }
    // node.len() >= ENTRY (12) was checked above: the header's fields are inside.
    let field = |off| {
        f.le16(off)
            .map_err(|e| Error::inode(ino, format!("{what}: {e}")))
    };
    let entries = usize::from(field(2)?);
    let max = usize::from(field(4)?);
    let depth = field(6)?;
    let room = node.len().saturating_sub(ENTRY) / ENTRY;
    if entries > max || max > room {
        return Err(Error::inode(
            ino,
            format!("{what}: extent header has {entries} entries, max {max}, room for {room}"),
        ));
    }
    if depth > MAX_EXTENT_DEPTH {
        return Err(Error::inode(
            ino,
            format!("extent tree depth {depth} exceeds {MAX_EXTENT_DEPTH}"),
        ));
    }
    Ok(Header { entries, depth })
}

/// Verifies the `ext4_extent_tail` checksum of a non-root node.
fn check_tail(fs: &Filesystem, inode: &Inode, block: u64, node: &[u8]) {
    if !fs.sb.metadata_csum() {
        return;
    }
    // Runs before `header` checks the node (so a bad node still gets its checksum
    // warning); a node too short for eh_max has no tail to check, and `header`
    // rejects it next.
    let Some(max) = field::le_u16(node, 4).map(usize::from) else {
        return;
    };
    let Some(tail) = max.checked_mul(ENTRY).and_then(|x| x.checked_add(ENTRY)) else {
        return;
    };
    let Some(covered) = node.get(..tail) else {
        return;
    };
    if tail.checked_add(4).is_none_or(|end| end > node.len()) {
        return;
    }
    // tail + 4 <= node.len() was checked just above.
    let Some(want) = field::le_u32(node, tail) else {
        return;
    };
    let got = crc32c(fs.inode_csum_seed(inode), covered);
    if want != got {
        fs.warn(format!(
            "inode {}: extent block {block} checksum mismatch (stored {want:#010x}, computed {got:#010x})",
            inode.ino
        ));
    }
}

/// Maps logical block `lblk` of `inode` (which uses extents).
pub(crate) fn map(fs: &Filesystem, inode: &Inode, lblk: u64) -> Result<Mapping, Error> {
    let ino = inode.ino;
    // Extents address 32-bit logical blocks; past that everything is a hole.
    let Ok(target) = u32::try_from(lblk) else {
        return Ok(Mapping::Hole { len: u64::MAX });
    };
    let root = inode.i_block();
    let mut owned;
    let mut node: &[u8] = root;
    let mut hdr = header(ino, node, "extent root")?;
    // Exclusive upper logical bound inherited from the parent index entries.
    let mut bound: u64 = 1u64 << 32;
    let mut leaf_name: Option<String> = None;
    // Depth strictly decreases, so this loop runs at most 6 times.
    loop {
        if hdr.depth == 0 {
            let (m, overlap) = leaf_lookup(node, hdr.entries, target, bound)
                .map_err(|e| Error::inode(ino, e.to_string()))?;
            if let Some(Overlap { start, end, limit }) = overlap {
                // e2fsck: "extent tree ... overlaps" / "out of order extents". The
                // later extent wins from `limit` on, so nothing is read twice.
                fs.warn(format!(
                    "inode {ino}: {leaf}: extent at logical block {start} runs to {end}, over the next extent or index at {limit}; overlapping extents",
                    leaf = leaf_name.as_deref().unwrap_or("extent root")
                ));
            }
            return Ok(m);
        }
        // Index node: last entry with ei_block <= target. `header` proved the
        // entries lie inside the node, so a failed read is a corrupt node anyway.
        let f = Fields::new(node, "extent index node");
        let mut chosen: Option<(u32, u64)> = None;
        let mut next_start: Option<u32> = None;
        for i in 0..hdr.entries {
            let off = ENTRY.saturating_mul(i.saturating_add(1));
            let ei_block = f.le32(off).map_err(|e| Error::inode(ino, e.to_string()))?;
            let leaf = lo_hi(
                f.le32(off.saturating_add(4))
                    .map_err(|e| Error::inode(ino, e.to_string()))?,
                u32::from(
                    f.le16(off.saturating_add(8))
                        .map_err(|e| Error::inode(ino, e.to_string()))?,
                ),
            );
            if ei_block <= target {
                if let Some((b, other)) = chosen {
                    if b == ei_block && other != leaf {
                        // e2fsck: the tree is corrupt; the later entry is used and
                        // the subtree of the earlier one is never reached.
                        fs.warn(format!(
                            "inode {ino}: {}: index entries to blocks {other} and {leaf} both start at logical block {b}; using block {leaf}",
                            leaf_name.as_deref().unwrap_or("extent root")
                        ));
                    }
                }
                if chosen.is_none_or(|(b, _)| ei_block >= b) {
                    chosen = Some((ei_block, leaf));
                }
            } else if next_start.is_none_or(|n| ei_block < n) {
                next_start = Some(ei_block);
            }
        }
        if let Some(n) = next_start {
            bound = bound.min(u64::from(n));
        }
        let Some((_, child)) = chosen else {
            // Target lies before the first index entry: a hole up to it.
            let len = bound.saturating_sub(u64::from(target)).max(1);
            return Ok(Mapping::Hole { len });
        };
        let want_depth = hdr.depth.saturating_sub(1);
        owned = fs
            .read_block(child)
            .map_err(|e| Error::inode(ino, format!("extent index block {child}: {e}")))?;
        check_tail(fs, inode, child, &owned);
        leaf_name = Some(format!("extent block {child}"));
        node = &owned;
        hdr = header(ino, node, &format!("extent block {child}"))?;
        if hdr.depth != want_depth {
            return Err(Error::inode(
                ino,
                format!(
                    "extent block {child} has depth {} where {want_depth} was expected",
                    hdr.depth
                ),
            ));
        }
    }
}

/// An extent that runs into the next extent or past its parent's range.
struct Overlap {
    /// Its first logical block.
    start: u64,
    /// Where it claims to end.
    end: u64,
    /// Where the next extent or the parent's range begins.
    limit: u64,
}

/// The mapping of `target` in a leaf, and an [`Overlap`] when the extent
/// found runs into the next extent or past its parent's range.
fn leaf_lookup(
    node: &[u8],
    entries: usize,
    target: u32,
    bound: u64,
) -> Result<(Mapping, Option<Overlap>), Error> {
    let f = Fields::new(node, "extent leaf");
    let t = u64::from(target);
    let mut best: Option<(u64, u64, u64, bool)> = None; // (start, len, phys, uninit)
    let mut next_start: Option<u64> = None;
    let mut same_start = false;
    for i in 0..entries {
        let off = ENTRY.saturating_mul(i.saturating_add(1));
        let ee_block = u64::from(f.le32(off)?);
        let raw_len = f.le16(off.saturating_add(4))?;
        let (len, uninit) = if raw_len > EXT_INIT_MAX_LEN {
            (raw_len.saturating_sub(EXT_INIT_MAX_LEN), true)
        } else {
            (raw_len, false)
        };
        let phys = lo_hi(
            f.le32(off.saturating_add(8))?,
            u32::from(f.le16(off.saturating_add(6))?),
        );
        if ee_block <= t {
            if let Some((b, ..)) = best {
                same_start |= ee_block == b;
            }
            if best.is_none_or(|(b, ..)| ee_block >= b) {
                best = Some((ee_block, u64::from(len), phys, uninit));
            }
        } else if next_start.is_none_or(|n| ee_block < n) {
            next_start = Some(ee_block);
        }
    }
    let limit = next_start.map_or(bound, |n| n.min(bound));
    if let Some((start, len, phys, uninit)) = best {
        let full_end = start.saturating_add(len);
        let overlap = (full_end > limit || same_start).then_some(Overlap {
            start,
            end: full_end,
            limit,
        });
        let end = full_end.min(limit);
        if t < end {
            let skip = t.saturating_sub(start);
            let run = end.saturating_sub(t);
            if uninit {
                return Ok((Mapping::Unwritten { len: run }, overlap));
            }
            return Ok((
                Mapping::Data {
                    phys: phys.saturating_add(skip),
                    len: run,
                },
                overlap,
            ));
        }
        return Ok((
            Mapping::Hole {
                len: limit.saturating_sub(t).max(1),
            },
            overlap,
        ));
    }
    Ok((
        Mapping::Hole {
            len: limit.saturating_sub(t).max(1),
        },
        None,
    ))
}
