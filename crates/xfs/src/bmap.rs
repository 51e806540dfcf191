//! Block maps of a fork: the extent list (packed 128-bit `xfs_bmbt_rec`) kept in
//! the inode or in the leaves of a bmap B+tree whose root (`xfs_bmdr_block`) sits
//! in the inode fork ("XFS Algorithms & Data Structures", "Data Extents" and "B+tree
//! Extent List"; fs/xfs/libxfs/xfs_bmap_btree.h and xfs_format.h). The tree is
//! walked with a depth bound, a visited set (no loops) and a cap on records taken
//! from the inode's extent counter.

use std::collections::HashSet;

use fsapi::{Error, FileRun};

use crate::bytes::u64_of;
use crate::crc;
use crate::inode::{Fork, Inode, FMT_BTREE, FMT_EXTENTS};
use crate::Filesystem;
use bytesource::field::{be_u16, be_u32, be_u64};

/// "BMAP" / "BMA3" (XFS_BMAP_MAGIC, XFS_BMAP_CRC_MAGIC).
const BMAP_MAGIC: u32 = 0x424d_4150;
const BMAP_CRC_MAGIC: u32 = 0x424d_4133;
/// Long-form btree block header sizes (XFS_BTREE_LBLOCK_LEN / _CRC_LEN).
const LBLOCK_LEN: usize = 24;
const LBLOCK_CRC_LEN: usize = 72;
/// Offset of bb_crc in a long-form V5 btree block (XFS_BTREE_LBLOCK_CRC_OFF).
const LBLOCK_CRC_OFF: usize = 64;
/// Deepest bmbt this reader walks (the kernel's limit is about 9 levels for 2^48
/// extents; XFS_BM_MAXLEVELS).
const MAX_LEVELS: u16 = 10;
/// Most extents read for one fork (32 bytes each in memory: 128 MiB).
pub(crate) const MAX_EXTENTS: u64 = 1 << 22;

/// One mapping: `len` filesystem blocks at logical block `off` live at filesystem
/// block `start` (AG number above sb_agblklog bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Extent {
    pub off: u64,
    pub start: u64,
    pub len: u64,
    pub unwritten: bool,
}

/// Unpacks a bmbt record (xfs_bmbt_disk_get_all()): flag bit 127, startoff 54
/// bits, startblock 52 bits, blockcount 21 bits.
fn unpack(l0: u64, l1: u64) -> Extent {
    Extent {
        unwritten: l0 >> 63 != 0,
        off: (l0 & ((1u64 << 63) - 1)) >> 9,
        start: ((l0 & 0x1ff) << 43) | (l1 >> 21),
        len: l1 & ((1u64 << 21) - 1),
    }
}

fn records(b: &[u8], at: usize, n: usize, out: &mut Vec<Extent>) -> bool {
    for i in 0..n {
        let Some(o) = i.checked_mul(16).and_then(|x| x.checked_add(at)) else {
            return false;
        };
        let (Some(l0), Some(l1)) = (be_u64(b, o), be_u64(b, o.saturating_add(8))) else {
            return false;
        };
        out.push(unpack(l0, l1));
    }
    true
}

/// The extents of `inode`'s `fork`, in logical order, validated: records beyond the
/// AGs, of length zero or overlapping earlier ones are dropped with a warning.
pub(crate) fn extents(fs: &Filesystem, inode: &Inode, fork: Fork) -> Result<Vec<Extent>, Error> {
    let obj = || format!("inode {} {fork:?} fork", inode.ino);
    let count = inode.fork_extents(fork);
    if count > MAX_EXTENTS {
        return Err(Error::unsupported(
            obj(),
            format!("{count} extents (cap {MAX_EXTENTS})"),
        ));
    }
    let area = inode
        .fork_area(fork)
        .ok_or_else(|| Error::corrupt_at(obj(), inode.pos, "fork missing"))?;
    let mut raw = Vec::new();
    match inode.fork_format(fork) {
        FMT_EXTENTS => {
            let fit = u64_of(area.len() / 16);
            if count > fit {
                fs.warn(format!(
                    "{}: {count} extents do not fit in the inode",
                    obj()
                ));
            }
            let n = usize::try_from(count.min(fit)).unwrap_or(0);
            records(area, 0, n, &mut raw);
        }
        FMT_BTREE => walk_root(fs, inode, fork, area, count, &mut raw)?,
        f => {
            return Err(Error::corrupt_at(
                obj(),
                inode.pos,
                format!("fork format {f} has no block map"),
            ))
        }
    }
    Ok(clean(fs, &obj, raw))
}

/// `obj` names the fork in warnings (formatted only for one).
fn clean(fs: &Filesystem, obj: &dyn Fn() -> String, raw: Vec<Extent>) -> Vec<Extent> {
    let mut out: Vec<Extent> = Vec::with_capacity(raw.len());
    let mut next_off = 0u64;
    for e in raw {
        let end = e.off.checked_add(e.len);
        let last = e.start.checked_add(e.len.saturating_sub(1));
        let placed = match (end, last) {
            (Some(_), Some(last)) => {
                e.len > 0
                    && fs.sb.fsb_to_byte(e.start).is_some()
                    && fs.sb.fsb_to_byte(last).is_some()
                    && (last >> fs.sb.agblklog) == (e.start >> fs.sb.agblklog)
            }
            _ => false,
        };
        if !placed {
            fs.warn(format!(
                "{}: extent at logical block {} ({} blocks at {}) is outside the filesystem; read as a hole",
                obj(),
                e.off,
                e.len,
                e.start
            ));
            continue;
        }
        if e.off < next_off {
            fs.warn(format!(
                "{}: extent at logical block {} overlaps the one before; dropped",
                obj(),
                e.off
            ));
            continue;
        }
        next_off = end.unwrap_or(u64::MAX);
        out.push(e);
    }
    out
}

fn walk_root(
    fs: &Filesystem,
    inode: &Inode,
    fork: Fork,
    area: &[u8],
    count: u64,
    out: &mut Vec<Extent>,
) -> Result<(), Error> {
    let obj = || format!("inode {} {fork:?} fork bmbt root", inode.ino);
    let bad = |d: String| Error::corrupt_at(obj(), inode.pos, d);
    let level = be_u16(area, 0).ok_or_else(|| bad("truncated".into()))?;
    let numrecs = usize::from(be_u16(area, 2).ok_or_else(|| bad("truncated".into()))?);
    // xfs_bmdr_maxrecs(): keys and pointers split the rest of the fork area.
    let maxrecs = area.len().saturating_sub(4) / 16;
    if level == 0 || level > MAX_LEVELS || numrecs > maxrecs {
        return Err(bad(format!(
            "level {level}, {numrecs} records (max {maxrecs})"
        )));
    }
    let ptr_at = 4usize.saturating_add(maxrecs.saturating_mul(8));
    let mut walk = Walk {
        fs,
        ino: inode.ino,
        cap: usize::try_from(count).unwrap_or(0),
        seen: HashSet::new(),
        out,
    };
    for i in 0..numrecs {
        let p = be_u64(area, ptr_at.saturating_add(i.saturating_mul(8)))
            .ok_or_else(|| bad("pointer beyond the fork".into()))?;
        walk.block(p, level.saturating_sub(1))?;
        if walk.out.len() >= walk.cap {
            break;
        }
    }
    if u64_of(walk.out.len()) < count {
        fs.warn(format!(
            "inode {} {fork:?} fork: bmbt holds {} of {count} extents",
            inode.ino,
            walk.out.len()
        ));
    }
    Ok(())
}

struct Walk<'a> {
    fs: &'a Filesystem,
    ino: u64,
    cap: usize,
    seen: HashSet<u64>,
    out: &'a mut Vec<Extent>,
}

impl Walk<'_> {
    /// Reads bmbt block `fsb`, expected at `level`, and everything below it.
    fn block(&mut self, fsb: u64, level: u16) -> Result<(), Error> {
        let obj = || format!("inode {} bmbt block {fsb}", self.ino);
        if !self.seen.insert(fsb) || self.seen.len() > self.cap.saturating_mul(2).saturating_add(16)
        {
            return Err(Error::corrupt(
                obj(),
                "block visited twice (loop) or too many blocks",
            ));
        }
        let b = self.fs.read_fsb(fsb, &obj)?;
        let pos = self.fs.sb.fsb_to_byte(fsb).unwrap_or(0);
        let bad = |d: String| Error::corrupt_at(obj(), pos, d);
        let v5 = self.fs.sb.is_v5();
        let (magic, hdr) = if v5 {
            (BMAP_CRC_MAGIC, LBLOCK_CRC_LEN)
        } else {
            (BMAP_MAGIC, LBLOCK_LEN)
        };
        if be_u32(&b, 0) != Some(magic) {
            return Err(bad("bad bmbt block magic".into()));
        }
        if v5 {
            if !crc::verify(&b, LBLOCK_CRC_OFF) {
                self.fs
                    .warn(format!("{}: CRC mismatch (at byte {pos})", obj()));
            }
            if be_u64(&b, 56) != Some(self.ino) {
                self.fs.warn(format!("{}: owner is not this inode", obj()));
            }
        }
        let got_level = be_u16(&b, 4).unwrap_or(u16::MAX);
        let numrecs = usize::from(be_u16(&b, 6).unwrap_or(0));
        if got_level != level {
            return Err(bad(format!("level {got_level}, expected {level}")));
        }
        let room = b.len().saturating_sub(hdr) / 16;
        if numrecs > room {
            return Err(bad(format!("{numrecs} records, room for {room}")));
        }
        if level == 0 {
            let take = numrecs.min(self.cap.saturating_sub(self.out.len()));
            records(&b, hdr, take, self.out);
            return Ok(());
        }
        let ptr_at = hdr.saturating_add(room.saturating_mul(8));
        for i in 0..numrecs {
            let p = be_u64(&b, ptr_at.saturating_add(i.saturating_mul(8))).unwrap_or(0);
            self.block(p, level.saturating_sub(1))?;
            if self.out.len() >= self.cap {
                break;
            }
        }
        Ok(())
    }
}

/// The filesystem block holding logical block `lblk`, with its unwritten flag.
pub(crate) fn lookup(ext: &[Extent], lblk: u64) -> Option<(u64, bool)> {
    let i = ext.partition_point(|e| e.off <= lblk).checked_sub(1)?;
    let e = ext.get(i)?;
    let d = lblk.checked_sub(e.off)?;
    (d < e.len).then(|| (e.start.saturating_add(d), e.unwritten))
}

/// The runs covering `[0, size)` of a file mapped by `ext` (merged where adjacent
/// and of the same kind, data runs only where contiguous on the device).
pub(crate) fn runs(fs: &Filesystem, ext: &[Extent], size: u64) -> Vec<FileRun> {
    let bs = u64::from(fs.sb.block_size);
    let mut out: Vec<FileRun> = Vec::new();
    let mut cur = 0u64;
    for e in ext {
        let lo = e.off.saturating_mul(bs);
        if lo >= size {
            break;
        }
        let hi = e.off.saturating_add(e.len).saturating_mul(bs).min(size);
        if lo > cur {
            push(
                &mut out,
                FileRun::Hole {
                    offset: cur,
                    len: lo.saturating_sub(cur),
                },
            );
        }
        let len = hi.saturating_sub(lo);
        let run = if e.unwritten {
            FileRun::Unwritten { offset: lo, len }
        } else {
            let physical = fs.sb.fsb_to_byte(e.start).unwrap_or(0);
            FileRun::Data {
                offset: lo,
                len,
                physical,
            }
        };
        push(&mut out, run);
        cur = hi;
    }
    if cur < size {
        push(
            &mut out,
            FileRun::Hole {
                offset: cur,
                len: size.saturating_sub(cur),
            },
        );
    }
    out
}

fn push(out: &mut Vec<FileRun>, run: FileRun) {
    if run.is_empty() {
        return;
    }
    let merged = match (out.last_mut(), run) {
        (Some(FileRun::Hole { len, .. }), FileRun::Hole { len: l2, .. })
        | (Some(FileRun::Unwritten { len, .. }), FileRun::Unwritten { len: l2, .. }) => {
            *len = len.saturating_add(l2);
            true
        }
        (
            Some(FileRun::Data { len, physical, .. }),
            FileRun::Data {
                len: l2,
                physical: p2,
                ..
            },
        ) if physical.checked_add(*len) == Some(p2) => {
            *len = len.saturating_add(l2);
            true
        }
        _ => false,
    };
    if !merged {
        out.push(run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_fields() {
        // startoff 5, startblock 0x8_0000_0000_0001, count 7, unwritten.
        let l0 = (1u64 << 63) | (5u64 << 9) | (0x8_0000_0000_0001u64 >> 43);
        let l1 = ((0x8_0000_0000_0001u64 & ((1u64 << 43) - 1)) << 21) | 7;
        let e = unpack(l0, l1);
        assert_eq!(
            e,
            Extent {
                off: 5,
                start: 0x8_0000_0000_0001,
                len: 7,
                unwritten: true
            }
        );
    }
}
