//! Symbolic links ("XFS Algorithms & Data Structures", "Symbolic Links";
//! fs/xfs/libxfs/xfs_format.h struct xfs_dsymlink_hdr, xfs_symlink_remote.c):
//! short targets live in the inode's data fork (LOCAL), longer ones (up to
//! XFS_SYMLINK_MAXLEN = 1024 bytes) in extent blocks. On V5 each extent of the
//! target starts with an "XSLM" header (offset, byte count, CRC, uuid, owner)
//! that is stripped here.

use fsapi::Error;

use crate::bmap;
use crate::bytes::{u64_of, us, us64};
use crate::crc;
use crate::inode::{Fork, Inode, FMT_BTREE, FMT_EXTENTS, FMT_LOCAL};
use crate::Filesystem;
use bytesource::field::{be_u32, be_u64};

/// XFS_SYMLINK_MAXLEN.
const MAXLEN: u64 = 1024;
/// "XSLM" (XFS_SYMLINK_MAGIC).
const SYMLINK_MAGIC: u32 = 0x5853_4c4d;
/// sizeof(struct xfs_dsymlink_hdr).
const HDR: usize = 56;
/// offsetof(struct xfs_dsymlink_hdr, sl_crc).
const CRC_OFF: usize = 12;

pub(crate) fn read_link(fs: &Filesystem, inode: &Inode) -> Result<Vec<u8>, Error> {
    let obj = || format!("symlink inode {}", inode.ino);
    if inode.size == 0 || inode.size > MAXLEN {
        return Err(Error::corrupt_at(
            obj(),
            inode.pos,
            format!("target length {}", inode.size),
        ));
    }
    let len = usize::try_from(inode.size).unwrap_or(0);
    match inode.format {
        FMT_LOCAL => {
            let area = inode.fork_area(Fork::Data).unwrap_or_default();
            area.get(..len).map(<[u8]>::to_vec).ok_or_else(|| {
                Error::corrupt_at(obj(), inode.pos, "target longer than the inode fork")
            })
        }
        FMT_EXTENTS | FMT_BTREE => remote(fs, inode, len),
        f => Err(Error::corrupt_at(
            obj(),
            inode.pos,
            format!("data fork format {f}"),
        )),
    }
}

/// Remote target: one buffer per extent, each with one header on V5
/// (xfs_symlink_remote.c xfs_symlink_remote_read(): the header is per mapping,
/// unlike remote attribute values, which have one per block).
fn remote(fs: &Filesystem, inode: &Inode, len: usize) -> Result<Vec<u8>, Error> {
    let ext = bmap::extents(fs, inode, Fork::Data)?;
    let v5 = fs.sb.is_v5();
    let bs = u64::from(fs.sb.block_size);
    let mut out = Vec::with_capacity(len);
    for e in &ext {
        if out.len() >= len {
            break;
        }
        let obj = || format!("symlink inode {} extent at block {}", inode.ino, e.off);
        // A target is at most 1024 bytes: at most 3 blocks of the smallest size.
        let bytes = e.len.min(4).saturating_mul(bs);
        let pos = fs
            .sb
            .fsb_to_byte(e.start)
            .ok_or_else(|| Error::corrupt(obj(), "extent outside the filesystem"))?;
        let b = fs.read_meta(pos, us64(bytes), &obj)?;
        let want = len.saturating_sub(out.len());
        let data = if v5 {
            if be_u32(&b, 0) != Some(SYMLINK_MAGIC) {
                return Err(Error::corrupt_at(obj(), pos, "no XSLM magic"));
            }
            if !crc::verify(&b, CRC_OFF) {
                fs.warn(format!("{}: CRC mismatch (at byte {pos})", obj()));
            }
            if be_u64(&b, 32) != Some(inode.ino) {
                fs.warn(format!("{}: owner is not this inode", obj()));
            }
            let off = us(be_u32(&b, 4).unwrap_or(0));
            let n = us(be_u32(&b, 8).unwrap_or(0));
            if off != out.len() {
                return Err(Error::corrupt_at(
                    obj(),
                    pos,
                    format!("header says offset {off}"),
                ));
            }
            b.get(HDR..HDR.saturating_add(n.min(want)))
                .ok_or_else(|| Error::corrupt_at(obj(), pos, "byte count beyond the extent"))?
        } else {
            b.get(..want.min(b.len())).unwrap_or_default()
        };
        if data.is_empty() {
            return Err(Error::corrupt_at(obj(), pos, "empty target extent"));
        }
        out.extend_from_slice(data);
    }
    if u64_of(out.len()) != inode.size {
        return Err(Error::corrupt(
            format!("symlink inode {}", inode.ino),
            format!("blocks hold {} of {} target bytes", out.len(), inode.size),
        ));
    }
    Ok(out)
}
