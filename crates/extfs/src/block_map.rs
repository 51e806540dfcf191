//! Indirect block maps of ext2/ext3 (and ext4 files without extents)
//! (Documentation/filesystems/ext4/ifork.rst, "Direct/Indirect Block Addressing").
//!
//! `i_block[0..12]` map the first 12 blocks directly, `i_block[12]` points to a
//! block of pointers, `i_block[13]` to a block of pointer blocks, `i_block[14]`
//! adds a third level. A zero pointer at any level is a hole covering its subtree.

use crate::bytes::{usize_from, Fields};
use crate::{Error, Filesystem, Inode, Mapping};

/// Number of direct pointers in `i_block`.
const EXT2_NDIR_BLOCKS: u64 = 12;

/// Maps logical block `lblk` of `inode` (which uses an indirect block map).
pub(crate) fn map(fs: &Filesystem, inode: &Inode, lblk: u64) -> Result<Mapping, Error> {
    let i_block = inode.i_block();
    let per_block = u64::from(fs.sb.block_size.get() / 4);
    if lblk < EXT2_NDIR_BLOCKS {
        // Direct pointers: extend the run over following contiguous pointers.
        let idx = usize::try_from(lblk).unwrap_or(0);
        return run_in(i_block, idx, 12).map_err(|e| Error::inode(inode.ino, e.to_string()));
    }
    let mut rem = lblk.saturating_sub(EXT2_NDIR_BLOCKS);
    // (root slot, number of levels, span of one root subtree in blocks)
    let mut span = per_block;
    let mut level_info = None;
    for (slot, levels) in [(12usize, 1u32), (13, 2), (14, 3)] {
        if rem < span {
            level_info = Some((slot, levels, span));
            break;
        }
        rem = rem.saturating_sub(span);
        span = span.saturating_mul(per_block);
    }
    let Some((slot, levels, span)) = level_info else {
        return Ok(Mapping::Hole { len: u64::MAX });
    };
    let mut ptr = u64::from(
        Fields::new(i_block, "i_block")
            .le32(slot.saturating_mul(4))
            .map_err(|e| Error::inode(inode.ino, e.to_string()))?,
    );
    let mut child_span = span;
    for level in 0..levels {
        if ptr == 0 {
            // Hole for the rest of this subtree.
            return Ok(Mapping::Hole {
                len: child_span.saturating_sub(rem).max(1),
            });
        }
        let block = fs
            .read_block(ptr)
            .map_err(|e| Error::inode(inode.ino, format!("indirect block {ptr}: {e}")))?;
        // per_block = block size / 4 >= 256 (BlockSize) and span is per_block ^
        // levels (at most 2^42, not saturated), so child_span stays a power of
        // per_block >= 1: none of the three fallbacks below can be taken.
        child_span = child_span.checked_div(per_block).unwrap_or(1);
        let idx = rem.checked_div(child_span).unwrap_or(0);
        rem = rem.checked_rem(child_span).unwrap_or(0);
        let idx = usize::try_from(idx).unwrap_or(usize::MAX);
        if level.saturating_add(1) == levels {
            return run_in(&block, idx, usize_from(fs.sb.block_size.get() / 4))
                .map_err(|e| Error::inode(inode.ino, format!("indirect block {ptr}: {e}")));
        }
        ptr = u64::from(
            Fields::new(&block, "pointer")
                .le32(idx.saturating_mul(4))
                .map_err(|e| Error::inode(inode.ino, format!("indirect block {ptr}: {e}")))?,
        );
    }
    Ok(Mapping::Hole { len: 1 })
}

/// The run starting at pointer `idx` of a pointer array with `count` entries:
/// consecutive physical blocks, or consecutive zero pointers. `count` pointers
/// fit in `ptrs` (i_block holds 15, a block `block_size / 4`), so a read outside
/// it means the caller's arithmetic is wrong, reported rather than read as 0.
fn run_in(ptrs: &[u8], idx: usize, count: usize) -> Result<Mapping, Error> {
    let f = Fields::new(ptrs, "block pointers");
    let first = u64::from(f.le32(idx.saturating_mul(4))?);
    let mut len: u64 = 1;
    let mut i = idx.saturating_add(1);
    while i < count {
        let p = u64::from(f.le32(i.saturating_mul(4))?);
        let expect = if first == 0 {
            0
        } else {
            first.saturating_add(len)
        };
        if p != expect {
            break;
        }
        len = len.saturating_add(1);
        i = i.saturating_add(1);
    }
    Ok(if first == 0 {
        Mapping::Hole { len }
    } else {
        Mapping::Data { phys: first, len }
    })
}
