//! persistent-data btree nodes, as dm-thin stores its mappings and device details.
//!
//! Layout: `struct node_header` in the kernel's
//! `drivers/md/persistent-data/dm-btree-internal.h` (thin-provisioning-tools
//! `src/pdata/btree.rs`): csum u32 @0, flags u32 @4 (`INTERNAL_NODE` 1, `LEAF_NODE`
//! 2), blocknr u64 @8, nr_entries u32 @16, max_entries u32 @20, value_size u32 @24,
//! padding u32 @28; then `max_entries` little-endian u64 keys, then `max_entries`
//! values of `value_size` bytes. Internal nodes hold u64 child block numbers. The
//! checksum covers bytes 4..4096 with salt `BTREE_CSUM_XOR` (dm-btree-spine.c).
//!
//! Lookup follows `lower_bound` (dm-btree.c): in an internal node, the last key
//! <= the wanted key picks the child; a leaf must hold the key exactly. Every node
//! is checked before use (checksum, its own block number, entry counts, strictly
//! increasing keys); depth is bounded, and whole-tree walks keep a visited set.

use super::superblock::{verify_block, BLOCK_SIZE};
use bytesource::field;
use std::collections::HashSet;

/// The callback of [`walk`]: key and leaf value bytes.
pub type Visit<'a> = dyn FnMut(u64, &[u8]) -> Result<(), String> + 'a;

/// `BTREE_CSUM_XOR` (dm-btree-spine.c).
pub const BTREE_CSUM_XOR: u32 = 121_107;
/// `INTERNAL_NODE` flag.
const INTERNAL_NODE: u32 = 1;
/// `LEAF_NODE` flag.
const LEAF_NODE: u32 = 2;
/// Size of `struct node_header`.
const HEADER: usize = 32;
/// Deepest btree accepted: with >= 126 entries per node, 8 levels address far more
/// than 2^64 keys, so a deeper path is a loop or damage.
pub const MAX_DEPTH: u32 = 8;

/// A checked btree node (the block it was read from is kept whole).
#[derive(Clone, Debug)]
pub struct Node {
    /// Block number (verified equal to the `blocknr` field). Kept for debugging
    /// output; the walk itself tracks block numbers on its own.
    #[allow(dead_code)]
    pub blocknr: u64,
    /// Leaf (values are the tree's values) or internal (values are child blocks).
    pub leaf: bool,
    nr_entries: usize,
    max_entries: usize,
    value_size: usize,
    block: Vec<u8>,
}

impl Node {
    /// Parses block `blocknr`. `leaf_value_size` is what the tree's leaves must
    /// hold (internal nodes always hold 8-byte block numbers).
    pub fn parse(block: Vec<u8>, blocknr: u64, leaf_value_size: usize) -> Result<Self, String> {
        if block.len() != BLOCK_SIZE {
            return Err(format!("btree node block {blocknr}: short block"));
        }
        if let Err((stored, computed)) = verify_block(&block, BTREE_CSUM_XOR) {
            return Err(format!(
                "btree node block {blocknr}: checksum {stored:#010x}, computed {computed:#010x}"
            ));
        }
        // The header (32 bytes) lies inside the BLOCK_SIZE block checked above.
        let short =
            |at: usize| format!("btree node block {blocknr}: field at byte {at} outside it");
        let le32 = |at: usize| field::le_u32(&block, at).ok_or_else(|| short(at));
        let flags = le32(4)?;
        let leaf = match flags & (INTERNAL_NODE | LEAF_NODE) {
            INTERNAL_NODE => false,
            LEAF_NODE => true,
            _ => return Err(format!("btree node block {blocknr}: flags {flags:#x}")),
        };
        let own = field::le_u64(&block, 8).ok_or_else(|| short(8))?;
        if own != blocknr {
            return Err(format!(
                "btree node block {blocknr}: header says it is block {own}"
            ));
        }
        let nr = usize::try_from(le32(16)?).unwrap_or(usize::MAX);
        let max = usize::try_from(le32(20)?).unwrap_or(usize::MAX);
        let vs = usize::try_from(le32(24)?).unwrap_or(usize::MAX);
        let want_vs = if leaf { leaf_value_size } else { 8 };
        if vs != want_vs {
            return Err(format!(
                "btree node block {blocknr}: value_size {vs}, expected {want_vs}"
            ));
        }
        let fits = (BLOCK_SIZE.saturating_sub(HEADER))
            .checked_div(vs.saturating_add(8))
            .unwrap_or(0);
        if nr > max || max > fits {
            return Err(format!(
                "btree node block {blocknr}: nr_entries {nr}, max_entries {max} (at most {fits} fit)"
            ));
        }
        let node = Self {
            blocknr,
            leaf,
            nr_entries: nr,
            max_entries: max,
            value_size: vs,
            block,
        };
        for i in 1..nr {
            if node.key(i) <= node.key(i.saturating_sub(1)) {
                return Err(format!(
                    "btree node block {blocknr}: keys not increasing at entry {i}"
                ));
            }
        }
        Ok(node)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.nr_entries
    }

    /// True when the node holds no entries.
    pub fn is_empty(&self) -> bool {
        self.nr_entries == 0
    }

    /// Key `i` (0 past the end). `parse` checked that `max_entries` keys and
    /// values fit in the block, so for `i < len()` the key is inside it; callers
    /// only ask for those.
    pub fn key(&self, i: usize) -> u64 {
        if i >= self.nr_entries {
            return 0;
        }
        field::le_u64(&self.block, HEADER.saturating_add(i.saturating_mul(8))).unwrap_or(0)
    }

    /// Value `i`'s bytes (empty past the end).
    pub fn value(&self, i: usize) -> &[u8] {
        if i >= self.nr_entries {
            return &[];
        }
        let start = HEADER
            .saturating_add(self.max_entries.saturating_mul(8))
            .saturating_add(i.saturating_mul(self.value_size));
        self.block
            .get(start..start.saturating_add(self.value_size))
            .unwrap_or_default()
    }

    /// Value `i` read as a u64 (child block numbers, mapping values).
    /// 0 past the end; inside, the value is `value_size` (checked 8 for the
    /// trees read this way) bytes, so the fallback is not taken.
    pub fn value_u64(&self, i: usize) -> u64 {
        field::le_u64(self.value(i), 0).unwrap_or(0)
    }

    /// Index of the last key <= `key` (`lower_bound` in dm-btree.c).
    pub fn lower_bound(&self, key: u64) -> Option<usize> {
        let keys = (0..self.nr_entries).map(|i| self.key(i));
        let n = keys.take_while(|&k| k <= key).count();
        // Keys are strictly increasing (checked in parse), so a binary search
        // would do; nodes hold at most 255 keys, a scan is cheap and obviously right.
        n.checked_sub(1)
    }
}

/// Something that hands out checked nodes (the pool, with its cache).
pub trait NodeSource {
    /// Node at `block` of a tree whose leaves hold `leaf_value_size` bytes.
    fn node(&self, block: u64, leaf_value_size: usize) -> Result<std::sync::Arc<Node>, String>;
}

/// Looks `key` up in the tree at `root`; returns the leaf value's bytes.
pub fn lookup(
    src: &dyn NodeSource,
    root: u64,
    key: u64,
    leaf_value_size: usize,
) -> Result<Option<Vec<u8>>, String> {
    let mut block = root;
    for _ in 0..MAX_DEPTH {
        let node = src.node(block, leaf_value_size)?;
        let Some(i) = node.lower_bound(key) else {
            return Ok(None);
        };
        if node.leaf {
            return Ok((node.key(i) == key).then(|| node.value(i).to_vec()));
        }
        block = node.value_u64(i);
    }
    Err(format!(
        "btree at block {root}: deeper than {MAX_DEPTH} levels looking up key {key}"
    ))
}

/// The largest key in the tree at `root` (follows the last child), if any.
pub fn last_key(
    src: &dyn NodeSource,
    root: u64,
    leaf_value_size: usize,
) -> Result<Option<u64>, String> {
    let mut block = root;
    for _ in 0..MAX_DEPTH {
        let node = src.node(block, leaf_value_size)?;
        let Some(last) = node.len().checked_sub(1) else {
            return Ok(None);
        };
        if node.leaf {
            return Ok(Some(node.key(last)));
        }
        block = node.value_u64(last);
    }
    Err(format!(
        "btree at block {root}: deeper than {MAX_DEPTH} levels"
    ))
}

/// Calls `f(key, value)` for every leaf entry in key order, visiting at most
/// `max_nodes` nodes; a node reached twice (a loop or shared subtree inside one
/// tree) is an error.
pub fn walk(
    src: &dyn NodeSource,
    root: u64,
    leaf_value_size: usize,
    max_nodes: usize,
    f: &mut Visit<'_>,
) -> Result<(), String> {
    let mut seen = HashSet::new();
    walk_inner(src, root, leaf_value_size, 0, max_nodes, &mut seen, f)
}

fn walk_inner(
    src: &dyn NodeSource,
    block: u64,
    lvs: usize,
    depth: u32,
    max_nodes: usize,
    seen: &mut HashSet<u64>,
    f: &mut Visit<'_>,
) -> Result<(), String> {
    if depth >= MAX_DEPTH {
        return Err(format!(
            "btree node block {block}: deeper than {MAX_DEPTH} levels"
        ));
    }
    if !seen.insert(block) {
        return Err(format!("btree node block {block}: reached twice (loop)"));
    }
    if seen.len() > max_nodes {
        return Err(format!("btree: more than {max_nodes} nodes"));
    }
    let node = src.node(block, lvs)?;
    for i in 0..node.len() {
        if node.leaf {
            f(node.key(i), node.value(i))?;
        } else {
            walk_inner(
                src,
                node.value_u64(i),
                lvs,
                depth.saturating_add(1),
                max_nodes,
                seen,
                f,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thin::superblock::dm_checksum;

    fn node_block(blocknr: u64, flags: u32, keys: &[u64], max: u32, vs: u32) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK_SIZE];
        b[4..8].copy_from_slice(&flags.to_le_bytes());
        b[8..16].copy_from_slice(&blocknr.to_le_bytes());
        b[16..20].copy_from_slice(&(keys.len() as u32).to_le_bytes());
        b[20..24].copy_from_slice(&max.to_le_bytes());
        b[24..28].copy_from_slice(&vs.to_le_bytes());
        for (i, k) in keys.iter().enumerate() {
            b[32 + 8 * i..40 + 8 * i].copy_from_slice(&k.to_le_bytes());
        }
        let c = dm_checksum(&b[4..], BTREE_CSUM_XOR);
        b[0..4].copy_from_slice(&c.to_le_bytes());
        b
    }

    #[test]
    fn hostile_nodes_are_refused() {
        // These only exercise the checks; real node contents are tested against
        // thin_restore/thin_dump fixtures.
        assert!(Node::parse(node_block(5, 2, &[1, 2], 10, 8), 5, 8).is_ok());
        let e = Node::parse(node_block(5, 2, &[1, 2], 10, 8), 6, 8).unwrap_err();
        assert!(e.contains("header says"), "{e}");
        let e = Node::parse(node_block(5, 2, &[2, 2], 10, 8), 5, 8).unwrap_err();
        assert!(e.contains("increasing"), "{e}");
        let e = Node::parse(node_block(5, 2, &[1], 1000, 8), 5, 8).unwrap_err();
        assert!(e.contains("max_entries"), "{e}");
        let e = Node::parse(node_block(5, 3, &[1], 10, 8), 5, 8).unwrap_err();
        assert!(e.contains("flags"), "{e}");
        let mut b = node_block(5, 2, &[1], 10, 8);
        b[100] ^= 1;
        let e = Node::parse(b, 5, 8).unwrap_err();
        assert!(e.contains("checksum"), "{e}");
    }

    struct Blocks(std::collections::HashMap<u64, Vec<u8>>);
    impl NodeSource for Blocks {
        fn node(&self, block: u64, lvs: usize) -> Result<std::sync::Arc<Node>, String> {
            let b = self.0.get(&block).ok_or("no such block")?.clone();
            Node::parse(b, block, lvs).map(std::sync::Arc::new)
        }
    }

    fn internal(blocknr: u64, keys: &[u64], children: &[u64]) -> Vec<u8> {
        let mut b = node_block(blocknr, 1, keys, 10, 8);
        for (i, c) in children.iter().enumerate() {
            b[32 + 80 + 8 * i..32 + 88 + 8 * i].copy_from_slice(&c.to_le_bytes());
        }
        let c = dm_checksum(&b[4..], BTREE_CSUM_XOR);
        b[0..4].copy_from_slice(&c.to_le_bytes());
        b
    }

    #[test]
    fn loops_end_in_errors() {
        // Block 1 is an internal node whose only child is itself; block 2 points
        // at 3 twice (a shared subtree inside one tree), 3 is a leaf.
        let mut m = std::collections::HashMap::new();
        m.insert(1, internal(1, &[0], &[1]));
        m.insert(2, internal(2, &[0, 5], &[3, 3]));
        m.insert(3, node_block(3, 2, &[0, 1], 10, 8));
        let src = Blocks(m);
        let e = lookup(&src, 1, 7, 8).unwrap_err();
        assert!(e.contains("deeper than"), "{e}");
        let e = last_key(&src, 1, 8).unwrap_err();
        assert!(e.contains("deeper than"), "{e}");
        let e = walk(&src, 1, 8, 100, &mut |_, _| Ok(())).unwrap_err();
        assert!(e.contains("reached twice"), "{e}");
        let e = walk(&src, 2, 8, 100, &mut |_, _| Ok(())).unwrap_err();
        assert!(e.contains("reached twice"), "{e}");
        // Lookups follow the last key <= the wanted one.
        assert_eq!(lookup(&src, 2, 1, 8).unwrap(), Some(vec![0u8; 8]));
        assert_eq!(lookup(&src, 2, 4, 8).unwrap(), None);
    }
}
