//! Extended attributes in the inode's attribute fork ("XFS Algorithms & Data
//! Structures", "Extended Attributes"; fs/xfs/libxfs/xfs_da_format.h,
//! xfs_attr_leaf.c, xfs_attr_remote.c): shortform in the inode (LOCAL), or
//! leaf blocks ("XAttr leaf", magic 0xfbee, V5 0x3bee) reached through a dabtree
//! of node blocks (0xfebe, V5 0x3ebe) from attribute-fork block 0, with values
//! either inside the leaf or in remote blocks (V5: an "XARM" header per block).
//! Entries still being written (XFS_ATTR_INCOMPLETE) and parent pointers
//! (XFS_ATTR_PARENT) are not attributes a user sees and are skipped.

use std::collections::HashSet;

use fsapi::Error;

use crate::bmap::{self, Extent};
use crate::bytes::us;
use crate::crc;
use crate::inode::{Fork, Inode, FMT_BTREE, FMT_EXTENTS, FMT_LOCAL};
use crate::Filesystem;
use bytesource::field::{be_u16, be_u32, be_u64, slice_at, u8_at};

/// Entry flags (xfs_da_format.h XFS_ATTR_*).
const ATTR_LOCAL: u8 = 1 << 0;
pub(crate) const ATTR_ROOT: u8 = 1 << 1;
pub(crate) const ATTR_SECURE: u8 = 1 << 2;
const ATTR_PARENT: u8 = 1 << 3;
const ATTR_INCOMPLETE: u8 = 1 << 7;
/// Block magics (XFS_ATTR_LEAF_MAGIC, XFS_ATTR3_LEAF_MAGIC, XFS_DA_NODE_MAGIC,
/// XFS_DA3_NODE_MAGIC) at offset 8 of the da block header.
const LEAF_MAGIC: u16 = 0xfbee;
const LEAF3_MAGIC: u16 = 0x3bee;
const NODE_MAGIC: u16 = 0xfebe;
const NODE3_MAGIC: u16 = 0x3ebe;
/// "XARM" (XFS_ATTR3_RMT_MAGIC) and sizeof(struct xfs_attr3_rmt_hdr).
const RMT_MAGIC: u32 = 0x5841_524d;
const RMT_HDR: usize = 56;
/// CRC offset in xfs_da3_blkinfo and in xfs_attr3_rmt_hdr.
const DA3_CRC_OFF: usize = 12;
/// Largest attribute value (XFS_XATTR_SIZE_MAX).
const MAX_VALUE: usize = 1 << 16;
/// Most value bytes gathered for one inode.
const MAX_TOTAL: usize = 64 << 20;
/// Deepest dabtree walked (XFS_DA_NODE_MAXDEPTH is 5).
const MAX_DEPTH: u32 = 8;

/// An attribute as stored: namespace flags, name without prefix, value.
#[derive(Clone, Debug)]
pub(crate) struct RawAttr {
    pub flags: u8,
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// All attributes of `inode`.
pub(crate) fn list(fs: &Filesystem, inode: &Inode) -> Result<Vec<RawAttr>, Error> {
    let Some(area) = inode.fork_area(Fork::Attr) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    match inode.aformat {
        FMT_LOCAL => shortform(fs, inode, area, &mut out),
        FMT_EXTENTS | FMT_BTREE => {
            let ext = bmap::extents(fs, inode, Fork::Attr)?;
            if !ext.is_empty() {
                let mut t = Tree {
                    fs,
                    inode,
                    ext: &ext,
                    seen: HashSet::new(),
                    total: 0,
                };
                t.visit(0, 0, &mut out)?;
            }
        }
        f => {
            return Err(Error::corrupt_at(
                format!("inode {} attribute fork", inode.ino),
                inode.pos,
                format!("format {f}"),
            ))
        }
    }
    Ok(out)
}

fn keep(fs: &Filesystem, ino: u64, flags: u8, name: &[u8]) -> bool {
    if flags & ATTR_INCOMPLETE != 0 {
        fs.warn(format!(
            "inode {ino}: attribute {} is incomplete; skipped",
            String::from_utf8_lossy(name)
        ));
        return false;
    }
    if flags & ATTR_PARENT != 0 {
        fs.warn(format!(
            "inode {ino}: parent pointer attributes are not listed"
        ));
        return false;
    }
    !name.is_empty()
}

/// xfs_attr_sf_hdr {totsize, count, pad} then {namelen, valuelen, flags, nameval}.
fn shortform(fs: &Filesystem, inode: &Inode, b: &[u8], out: &mut Vec<RawAttr>) {
    let count = u8_at(b, 2).unwrap_or(0);
    let total = usize::from(be_u16(b, 0).unwrap_or(0)).min(b.len());
    let b = b.get(..total).unwrap_or_default();
    let mut pos = 4usize;
    for _ in 0..count {
        let (Some(nl), Some(vl), Some(flags)) = (
            u8_at(b, pos),
            u8_at(b, pos.saturating_add(1)),
            u8_at(b, pos.saturating_add(2)),
        ) else {
            fs.warn(format!(
                "inode {}: shortform attributes run past the fork",
                inode.ino
            ));
            return;
        };
        let (nl, vl) = (usize::from(nl), usize::from(vl));
        let at = pos.saturating_add(3);
        let (Some(name), Some(value)) =
            (slice_at(b, at, nl), slice_at(b, at.saturating_add(nl), vl))
        else {
            fs.warn(format!(
                "inode {}: shortform attribute at byte {pos} runs past the fork",
                inode.ino
            ));
            return;
        };
        if keep(fs, inode.ino, flags, name) {
            out.push(RawAttr {
                flags,
                name: name.to_vec(),
                value: value.to_vec(),
            });
        }
        pos = at.saturating_add(nl).saturating_add(vl);
    }
}

struct Tree<'a> {
    fs: &'a Filesystem,
    inode: &'a Inode,
    ext: &'a [Extent],
    seen: HashSet<u64>,
    total: usize,
}

impl Tree<'_> {
    fn read(&self, lblk: u64) -> Result<(u64, std::sync::Arc<[u8]>), Error> {
        let obj = || format!("inode {} attribute block {lblk}", self.inode.ino);
        let (fsb, _) =
            bmap::lookup(self.ext, lblk).ok_or_else(|| Error::corrupt(obj(), "not mapped"))?;
        let b = self.fs.read_fsb(fsb, &obj)?;
        Ok((self.fs.sb.fsb_to_byte(fsb).unwrap_or(0), b))
    }

    fn check_v5(&self, lblk: u64, pos: u64, b: &[u8]) {
        let obj = format!("inode {} attribute block {lblk}", self.inode.ino);
        if !crc::verify(b, DA3_CRC_OFF) {
            self.fs.warn(format!("{obj}: CRC mismatch (at byte {pos})"));
        }
        if be_u64(b, 48) != Some(self.inode.ino) {
            self.fs.warn(format!("{obj}: owner is not this inode"));
        }
    }

    /// Visits dabtree block `lblk` at `depth` and appends the leaves' attributes.
    fn visit(&mut self, lblk: u64, depth: u32, out: &mut Vec<RawAttr>) -> Result<(), Error> {
        let obj = || format!("inode {} attribute block {lblk}", self.inode.ino);
        if depth > MAX_DEPTH || !self.seen.insert(lblk) {
            return Err(Error::corrupt(
                obj(),
                "dabtree too deep or block visited twice",
            ));
        }
        let (pos, b) = self.read(lblk)?;
        let v5 = self.fs.sb.is_v5();
        match (be_u16(&b, 8).unwrap_or(0), v5) {
            (LEAF_MAGIC, false) => self.leaf(lblk, &b, 12, 32, out),
            (LEAF3_MAGIC, true) => {
                self.check_v5(lblk, pos, &b);
                self.leaf(lblk, &b, 56, 80, out)
            }
            (NODE_MAGIC, false) => self.node(&b, 12, 16, depth, out),
            (NODE3_MAGIC, true) => {
                self.check_v5(lblk, pos, &b);
                self.node(&b, 56, 64, depth, out)
            }
            (m, _) => Err(Error::corrupt_at(
                obj(),
                pos,
                format!("bad attribute block magic {m:#x}"),
            )),
        }
    }

    /// A da node: count at `count_at`, {hashval, before} entries from `ents`.
    fn node(
        &mut self,
        b: &[u8],
        count_at: usize,
        ents: usize,
        depth: u32,
        out: &mut Vec<RawAttr>,
    ) -> Result<(), Error> {
        let count = usize::from(be_u16(b, count_at).unwrap_or(0));
        let room = b.len().saturating_sub(ents) / 8;
        for i in 0..count.min(room) {
            let before = be_u32(
                b,
                ents.saturating_add(i.saturating_mul(8)).saturating_add(4),
            )
            .unwrap_or(0);
            if let Err(e) = self.visit(u64::from(before), depth.saturating_add(1), out) {
                self.fs.warn(format!("{e}; attributes there are skipped"));
            }
        }
        Ok(())
    }

    /// An attribute leaf: count at `count_at`, 8-byte entries from `ents`.
    fn leaf(
        &mut self,
        lblk: u64,
        b: &[u8],
        count_at: usize,
        ents: usize,
        out: &mut Vec<RawAttr>,
    ) -> Result<(), Error> {
        let count = usize::from(be_u16(b, count_at).unwrap_or(0));
        let room = b.len().saturating_sub(ents) / 8;
        if count > room {
            self.fs.warn(format!(
                "inode {} attribute block {lblk}: {count} entries, room for {room}",
                self.inode.ino
            ));
        }
        for i in 0..count.min(room) {
            let e = ents.saturating_add(i.saturating_mul(8));
            let idx = usize::from(be_u16(b, e.saturating_add(4)).unwrap_or(0));
            let flags = u8_at(b, e.saturating_add(6)).unwrap_or(0);
            match self.entry(b, idx, flags) {
                Ok(Some(a)) => out.push(a),
                Ok(None) => {}
                Err(d) => self.fs.warn(format!(
                    "inode {} attribute block {lblk} entry {i}: {d}; skipped",
                    self.inode.ino
                )),
            }
        }
        Ok(())
    }

    /// One leaf entry's name and value (xfs_attr_leaf_name_local / _remote).
    fn entry(&mut self, b: &[u8], idx: usize, flags: u8) -> Result<Option<RawAttr>, String> {
        let (name, value) = if flags & ATTR_LOCAL != 0 {
            let vl = usize::from(be_u16(b, idx).ok_or("name beyond the block")?);
            let nl = usize::from(u8_at(b, idx.saturating_add(2)).ok_or("name beyond the block")?);
            let at = idx.saturating_add(3);
            let name = slice_at(b, at, nl).ok_or("name beyond the block")?;
            let value = slice_at(b, at.saturating_add(nl), vl).ok_or("value beyond the block")?;
            if !keep(self.fs, self.inode.ino, flags, name) {
                return Ok(None);
            }
            (name.to_vec(), value.to_vec())
        } else {
            let blk = be_u32(b, idx).ok_or("name beyond the block")?;
            let vl = us(be_u32(b, idx.saturating_add(4)).ok_or("name beyond the block")?);
            let nl = usize::from(u8_at(b, idx.saturating_add(8)).ok_or("name beyond the block")?);
            let name = slice_at(b, idx.saturating_add(9), nl).ok_or("name beyond the block")?;
            if !keep(self.fs, self.inode.ino, flags, name) {
                return Ok(None);
            }
            if vl > MAX_VALUE {
                return Err(format!("remote value of {vl} bytes"));
            }
            (
                name.to_vec(),
                self.remote(u64::from(blk), vl).map_err(|e| e.to_string())?,
            )
        };
        self.total = self.total.saturating_add(value.len());
        if self.total > MAX_TOTAL {
            return Err("attribute values exceed the per-inode cap".into());
        }
        Ok(Some(RawAttr { flags, name, value }))
    }

    /// A remote value of `len` bytes from attribute-fork block `lblk` on.
    fn remote(&self, lblk: u64, len: usize) -> Result<Vec<u8>, Error> {
        let v5 = self.fs.sb.is_v5();
        let mut out = Vec::with_capacity(len);
        let mut l = lblk;
        let max_blocks = u64::try_from(len).unwrap_or(0).saturating_add(1);
        while out.len() < len && l.saturating_sub(lblk) < max_blocks {
            let (pos, b) = self.read(l)?;
            let want = len.saturating_sub(out.len());
            let obj = || format!("inode {} remote attribute block {l}", self.inode.ino);
            let data = if v5 {
                if be_u32(&b, 0) != Some(RMT_MAGIC) {
                    return Err(Error::corrupt_at(obj(), pos, "no XARM magic"));
                }
                if !crc::verify(&b, DA3_CRC_OFF) {
                    self.fs
                        .warn(format!("{}: CRC mismatch (at byte {pos})", obj()));
                }
                let bytes = us(be_u32(&b, 8).unwrap_or(0)).min(want);
                b.get(RMT_HDR..RMT_HDR.saturating_add(bytes))
                    .unwrap_or_default()
            } else {
                b.get(..want.min(b.len())).unwrap_or_default()
            };
            if data.is_empty() {
                return Err(Error::corrupt_at(obj(), pos, "empty remote value block"));
            }
            out.extend_from_slice(data);
            l = l.saturating_add(1);
        }
        if out.len() != len {
            return Err(Error::corrupt(
                format!("inode {} remote attribute at block {lblk}", self.inode.ino),
                format!("{} of {len} bytes found", out.len()),
            ));
        }
        Ok(out)
    }
}
