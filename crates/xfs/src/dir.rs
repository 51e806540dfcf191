//! Directories ("XFS Algorithms & Data Structures", "Directories";
//! fs/xfs/libxfs/xfs_da_format.h, xfs_dir2_sf.c, xfs_dir2_block.c,
//! xfs_dir2_data.c). Shortform directories live in the inode fork. Every other
//! form (block, leaf, node, B+tree) keeps its entries in data blocks at directory
//! offsets below XFS_DIR2_LEAF_OFFSET (32 GiB); the leaf and free-index blocks
//! above it only speed up lookups, so listing reads the data blocks in logical
//! order and nothing else. A directory block is `blocksize << sb_dirblklog`
//! bytes and each of its filesystem blocks is mapped through the data fork on
//! its own (they need not be contiguous).

use fsapi::{DirEntry, Error, FileType};

use crate::bmap::{self, Extent};
use crate::bytes::{round8, us};
use crate::crc;
use crate::inode::{Fork, Inode, FMT_BTREE, FMT_EXTENTS, FMT_LOCAL};
use crate::Filesystem;
use bytesource::field::{be_u16, be_u32, be_u64, slice_at, u8_at};

/// Block-form and data-block magics (xfs_da_format.h XFS_DIR2_BLOCK_MAGIC "XD2B",
/// XFS_DIR3_BLOCK_MAGIC "XDB3", XFS_DIR2_DATA_MAGIC "XD2D", XFS_DIR3_DATA_MAGIC "XDD3").
const XD2B: u32 = 0x5844_3242;
const XDB3: u32 = 0x5844_4233;
const XD2D: u32 = 0x5844_3244;
const XDD3: u32 = 0x5844_4433;
/// Data block header sizes: magic + 3 bestfree (V4), xfs_dir3_data_hdr (V5).
const DATA_HDR: usize = 16;
const DATA3_HDR: usize = 64;
/// Offset of the CRC in xfs_dir3_blk_hdr (XFS_DIR3_DATA_CRC_OFF).
const DIR3_CRC_OFF: usize = 4;
/// Marks an unused region in a data block (XFS_DIR2_DATA_FREE_TAG).
const FREE_TAG: u16 = 0xffff;
/// Directory byte offset of the leaf section (XFS_DIR2_LEAF_OFFSET).
const LEAF_OFFSET: u64 = 32 << 30;
/// Most entries listed for one directory (far above anything real: an XFS
/// directory of 32 GiB of data blocks holds at most ~2^29 entries).
const MAX_ENTRIES: usize = 1 << 24;

/// Lists directory `inode` (without `.` and `..`).
pub(crate) fn read_dir(fs: &Filesystem, inode: &Inode) -> Result<Vec<DirEntry>, Error> {
    match inode.format {
        FMT_LOCAL => shortform(fs, inode),
        FMT_EXTENTS | FMT_BTREE => blocks(fs, inode),
        f => Err(Error::corrupt_at(
            format!("directory inode {}", inode.ino),
            inode.pos,
            format!("data fork format {f}"),
        )),
    }
}

/// Checks an entry name; a bad one is a warning naming the directory and offset.
fn accept(
    fs: &Filesystem,
    dir: u64,
    at: u64,
    name: &[u8],
    ino: u64,
    ftype: Option<u8>,
    out: &mut Vec<DirEntry>,
) {
    if name == b"." || name == b".." {
        return;
    }
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        fs.warn(format!(
            "directory inode {dir}: entry at offset {at} has an invalid name {name:?}; skipped"
        ));
        return;
    }
    if ino == 0 || fs.sb.ino_to_byte(ino).is_none() {
        fs.warn(format!(
            "directory inode {dir}: entry {} at offset {at} points outside the filesystem (inode {ino}); skipped",
            String::from_utf8_lossy(name)
        ));
        return;
    }
    if out.len() >= MAX_ENTRIES {
        return;
    }
    out.push(DirEntry {
        name: name.to_vec(),
        ino,
        file_type: ftype.map_or(FileType::Unknown, FileType::from_dirent_code),
    });
}

/// Shortform (xfs_dir2_sf_hdr + xfs_dir2_sf_entry): count, i8count, parent, then
/// entries of namelen, 2-byte offset, name, optional ftype, 4- or 8-byte inode.
fn shortform(fs: &Filesystem, inode: &Inode) -> Result<Vec<DirEntry>, Error> {
    let area = inode.fork_area(Fork::Data).unwrap_or_default();
    let size = usize::try_from(inode.size).unwrap_or(usize::MAX);
    let obj = || format!("directory inode {} (shortform)", inode.ino);
    let b = area
        .get(..size)
        .ok_or_else(|| Error::corrupt_at(obj(), inode.pos, "size larger than the inode fork"))?;
    let count = u8_at(b, 0).ok_or_else(|| Error::corrupt_at(obj(), inode.pos, "empty"))?;
    let i8 = u8_at(b, 1).unwrap_or(0) != 0;
    let isz = if i8 { 8 } else { 4 };
    let ftype = fs.sb.has_ftype();
    let mut pos = 2usize.saturating_add(isz);
    let mut out = Vec::new();
    for _ in 0..count {
        let Some(namelen) = u8_at(b, pos).map(usize::from) else {
            fs.warn(format!("{}: entries run past the end", obj()));
            break;
        };
        let name_at = pos.saturating_add(3);
        let ft_at = name_at.saturating_add(namelen);
        let ino_at = ft_at.saturating_add(usize::from(ftype));
        let ino = if i8 {
            be_u64(b, ino_at)
        } else {
            be_u32(b, ino_at).map(u64::from)
        };
        let (Some(name), Some(ino)) = (slice_at(b, name_at, namelen), ino) else {
            fs.warn(format!("{}: entry at byte {pos} runs past the end", obj()));
            break;
        };
        let ft = if ftype { u8_at(b, ft_at) } else { None };
        let off = u64::from(be_u16(b, pos.saturating_add(1)).unwrap_or(0));
        accept(fs, inode.ino, off, name, ino, ft, &mut out);
        pos = ino_at.saturating_add(isz);
    }
    Ok(out)
}

/// Lists the data blocks of a block/leaf/node/B+tree directory in logical order.
fn blocks(fs: &Filesystem, inode: &Inode) -> Result<Vec<DirEntry>, Error> {
    let ext = bmap::extents(fs, inode, Fork::Data)?;
    let blog = u32::from(fs.sb.block_log);
    let dblk_fsbs = 1u64 << fs.sb.dirblklog.min(7);
    let leaf_fsb = LEAF_OFFSET >> blog;
    // Logical directory blocks that have at least one mapped filesystem block.
    let mut dblocks: Vec<u64> = Vec::new();
    for e in ext.iter().filter(|e| e.off < leaf_fsb) {
        let first = e.off >> fs.sb.dirblklog.min(7);
        let last =
            e.off.saturating_add(e.len).min(leaf_fsb).saturating_sub(1) >> fs.sb.dirblklog.min(7);
        let mut d = first;
        while d <= last {
            if dblocks.last() != Some(&d) {
                dblocks.push(d);
            }
            d = d.saturating_add(1);
        }
    }
    // A directory cannot have more distinct blocks than the filesystem; a
    // hostile map pointing many logical blocks at one physical block would
    // otherwise make the listing unboundedly large.
    let max_blocks = usize::try_from(fs.sb.dblocks >> fs.sb.dirblklog.min(7)).unwrap_or(usize::MAX);
    if dblocks.len() > max_blocks {
        fs.warn(format!(
            "directory inode {}: maps {} directory blocks, more than the filesystem holds; only the first {max_blocks} read",
            inode.ino,
            dblocks.len()
        ));
        dblocks.truncate(max_blocks);
    }
    let mut out = Vec::new();
    for d in dblocks {
        let lblk = d.saturating_mul(dblk_fsbs);
        match read_dir_block(fs, inode, &ext, lblk) {
            Ok(buf) => parse_data_block(fs, inode.ino, lblk << blog, &buf, &mut out),
            Err(e) => fs.warn(format!("{e}; its entries are skipped")),
        }
    }
    Ok(out)
}

/// Reads one directory block (dirblksize bytes) starting at logical block `lblk`.
fn read_dir_block(
    fs: &Filesystem,
    inode: &Inode,
    ext: &[Extent],
    lblk: u64,
) -> Result<Vec<u8>, Error> {
    let bs = us(fs.sb.block_size);
    let n = 1u64 << fs.sb.dirblklog.min(7);
    let mut buf = Vec::with_capacity(us(fs.sb.dir_block_size()));
    for i in 0..n {
        let l = lblk.saturating_add(i);
        let obj = || format!("directory inode {} block {l}", inode.ino);
        let Some((fsb, _)) = bmap::lookup(ext, l) else {
            return Err(Error::corrupt(
                obj(),
                "directory block is only partly mapped",
            ));
        };
        let b = fs.read_fsb(fsb, &obj)?;
        buf.extend_from_slice(b.get(..bs).unwrap_or_default());
    }
    Ok(buf)
}

/// Parses the entries of one data block (block form included) at directory byte
/// offset `base` (xfs_dir2_data_entry / xfs_dir2_data_unused, 8-byte aligned).
fn parse_data_block(fs: &Filesystem, dir: u64, base: u64, b: &[u8], out: &mut Vec<DirEntry>) {
    let obj = || format!("directory inode {dir} block at offset {base}");
    let magic = be_u32(b, 0).unwrap_or(0);
    let v5 = fs.sb.is_v5();
    let (hdr, block_form) = match (magic, v5) {
        (XD2B, false) => (DATA_HDR, true),
        (XD2D, false) => (DATA_HDR, false),
        (XDB3, true) => (DATA3_HDR, true),
        (XDD3, true) => (DATA3_HDR, false),
        _ => {
            fs.warn(format!("{}: bad magic {magic:#x}; skipped", obj()));
            return;
        }
    };
    if v5 {
        if !crc::verify(b, DIR3_CRC_OFF) {
            fs.warn(format!("{}: CRC mismatch", obj()));
        }
        if be_u64(b, 40) != Some(dir) {
            fs.warn(format!("{}: owner is not this directory", obj()));
        }
    }
    let mut end = b.len();
    if block_form {
        // xfs_dir2_block_tail {count, stale} at the very end, leaf entries before it.
        let count = us(be_u32(b, b.len().saturating_sub(8)).unwrap_or(0));
        end = count
            .checked_mul(8)
            .and_then(|l| b.len().checked_sub(l.checked_add(8)?))
            .filter(|e| *e >= hdr)
            .unwrap_or_else(|| {
                fs.warn(format!("{}: block tail count {count} too large", obj()));
                hdr
            });
    }
    let ftype = fs.sb.has_ftype();
    let mut pos = hdr;
    while pos < end {
        let at = base.saturating_add(crate::bytes::u64_of(pos));
        if be_u16(b, pos) == Some(FREE_TAG) {
            let len = usize::from(be_u16(b, pos.saturating_add(2)).unwrap_or(0));
            if len == 0 || len % 8 != 0 {
                fs.warn(format!(
                    "{}: bad free region at byte {pos}; rest skipped",
                    obj()
                ));
                return;
            }
            pos = pos.saturating_add(len);
            continue;
        }
        let ino = be_u64(b, pos).unwrap_or(0);
        let namelen = usize::from(u8_at(b, pos.saturating_add(8)).unwrap_or(0));
        let name_at = pos.saturating_add(9);
        let ft = if ftype {
            u8_at(b, name_at.saturating_add(namelen))
        } else {
            None
        };
        let size = round8(
            9usize
                .saturating_add(namelen)
                .saturating_add(usize::from(ftype))
                .saturating_add(2),
        );
        let (Some(name), Some(size)) = (slice_at(b, name_at, namelen), size) else {
            fs.warn(format!(
                "{}: entry at byte {pos} runs past the block; rest skipped",
                obj()
            ));
            return;
        };
        if pos.saturating_add(size) > end {
            fs.warn(format!(
                "{}: entry at byte {pos} runs past the data area; rest skipped",
                obj()
            ));
            return;
        }
        accept(fs, dir, at, name, ino, ft, out);
        pos = pos.saturating_add(size);
    }
}
