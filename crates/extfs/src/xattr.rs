//! Extended attributes (Documentation/filesystems/ext4/attributes.rst).
//!
//! Attributes live after `i_extra_isize` in a large inode (magic, then entries
//! whose value offsets count from the first entry) and in one block named by
//! `i_file_acl` (a 32-byte header, entries, values counted from the block start).
//! With `ea_inode` a value may live in its own inode. POSIX ACLs (name index 2
//! and 3) are stored in ext4's compact format and converted here to the generic
//! `posix_acl_xattr` format (version 2) that `getfattr`/`setxattr` use.
//!
//! Sizes from disk are capped before anything is allocated, as the kernel's
//! `ext4_xattr_check_entries` (fs/ext4/xattr.c) does: an in-place value lies
//! inside its block or inode body, the values of one region together fit in the
//! region (they never share bytes), and a value in an EA inode is at most
//! `XATTR_SIZE_MAX` and at most that inode's size. An EA inode is read as plain
//! data, never for its own attributes, so EA inodes cannot loop.

use crate::bytes::{slice, usize_from, Fields};
use crate::crc::crc32c;
use crate::inode::{extra_isize, EXT2_GOOD_OLD_INODE_SIZE};
use crate::{Error, Filesystem, Inode, Xattr};
use bytesource::field;

/// `h_magic` / in-inode magic (attributes.rst).
const EXT4_XATTR_MAGIC: u32 = 0xEA02_0000;
/// Size of `ext4_xattr_entry` before the name.
const ENTRY_HEADER: usize = 16;
/// Size of the xattr block header.
const BLOCK_HEADER: usize = 32;
/// Largest value read from an EA inode (the kernel's XATTR_SIZE_MAX).
const MAX_VALUE: u32 = 65536;
/// Largest total of names and values returned for one inode.
const MAX_TOTAL: usize = 16 << 20;

/// `EXT4_EA_INODE_FL`: the inode holds one xattr value (inodes.rst).
const EXT4_EA_INODE_FL: u32 = 0x20_0000;
/// `EXT4_FEATURE_INCOMPAT_EA_INODE`.
const INCOMPAT_EA_INODE: u32 = 0x400;

/// `e_name_index` 7 + name "data": inline file data, not an attribute.
const INDEX_SYSTEM: u8 = 7;

struct RawEntry {
    index: u8,
    name: Vec<u8>,
    value: Vec<u8>,
    /// Where the value starts in the region's bytes (None: in an EA inode).
    at: Option<usize>,
}

fn prefix(index: u8) -> Option<&'static [u8]> {
    Some(match index {
        0 => b"",
        1 => b"user.",
        2 => b"system.posix_acl_access",
        3 => b"system.posix_acl_default",
        4 => b"trusted.",
        6 => b"security.",
        7 => b"system.",
        8 => b"system.richacl",
        _ => return None,
    })
}

/// Where a list of entries lives: entries start at `start` of `bytes`, values
/// at `value_base + e_value_offs`.
struct Region<'a> {
    bytes: &'a [u8],
    start: usize,
    value_base: usize,
    what: &'a str,
}

/// Parses the entries of `r` into `out`.
fn parse_entries(
    fs: &Filesystem,
    inode: &Inode,
    r: &Region<'_>,
    follow_ea: bool,
    out: &mut Vec<RawEntry>,
) -> Result<(), Error> {
    let (region, value_base, what) = (r.bytes, r.value_base, r.what);
    let mut pos = r.start;
    let mut total: usize = 0;
    // Bytes of in-place values: they never overlap, so they fit in the region.
    let mut in_place: usize = 0;
    // Each entry takes at least 16 bytes: bounded by the region.
    while pos.checked_add(4).is_some_and(|e| e <= region.len()) {
        // The loop condition puts these 4 bytes inside the region.
        if field::le_u32(region, pos).is_none_or(|v| v == 0) {
            break;
        }
        let Some(hdr) = slice(region, pos, ENTRY_HEADER) else {
            return Err(Error::inode(
                inode.ino,
                format!("{what}: entry at {pos} truncated"),
            ));
        };
        let name_len = usize::from(hdr.first().copied().unwrap_or(0));
        let index = hdr.get(1).copied().unwrap_or(0);
        // `hdr` is ENTRY_HEADER (16) bytes: e_value_offs, e_value_inum and
        // e_value_size (2..12) lie inside it.
        let f = Fields::new(hdr, "xattr entry header");
        let in_hdr = |e: Error| Error::inode(inode.ino, format!("{what}: entry at {pos}: {e}"));
        let value_offs = usize::from(f.le16(2).map_err(in_hdr)?);
        let value_inum = f.le32(4).map_err(in_hdr)?;
        let value_size = f.le32(8).map_err(in_hdr)?;
        let name = slice(region, pos.saturating_add(ENTRY_HEADER), name_len)
            .ok_or_else(|| {
                Error::inode(
                    inode.ino,
                    format!("{what}: name at {pos} runs past the end"),
                )
            })?
            .to_vec();
        let mut at = None;
        let value = if value_inum != 0 {
            if !follow_ea {
                // Only inline data is wanted here, and it never lives in an EA
                // inode; not following also rules out recursion through EA inodes.
                pos = pos.saturating_add(entry_len(name_len));
                continue;
            }
            ea_inode_value(fs, inode, value_inum, value_size)?
        } else {
            in_place = in_place.saturating_add(usize_from(value_size));
            if in_place > region.len() {
                // Values sharing bytes (e2fsck: "overlapping regions"): keep the
                // earlier ones, skip this one, so the total stays within the region.
                fs.warn(format!(
                    "inode {}: {what}: entry at {pos}: values add up to {in_place} bytes, more than the {}-byte region holds; skipped",
                    inode.ino,
                    region.len()
                ));
                in_place = in_place.saturating_sub(usize_from(value_size));
                pos = pos.saturating_add(entry_len(name_len));
                continue;
            }
            let off = value_base.checked_add(value_offs);
            at = off;
            off.and_then(|o| slice(region, o, usize_from(value_size)))
                .ok_or_else(|| {
                    Error::inode(
                        inode.ino,
                        format!(
                            "{what}: value of {value_size} bytes at offset {value_offs} runs past the end"
                        ),
                    )
                })?
                .to_vec()
        };
        total = total.saturating_add(value.len()).saturating_add(name.len());
        if total > MAX_TOTAL {
            return Err(Error::inode(
                inode.ino,
                format!("{what}: attributes exceed {MAX_TOTAL} bytes"),
            ));
        }
        out.push(RawEntry {
            index,
            name,
            value,
            at,
        });
        // Entries are padded to 4 bytes (EXT4_XATTR_LEN).
        let step = ENTRY_HEADER.saturating_add(name_len).saturating_add(3) & !3;
        pos = pos.saturating_add(step);
    }
    Ok(())
}

/// Size of an entry with its name, padded to 4 bytes (`EXT4_XATTR_LEN`).
fn entry_len(name_len: usize) -> usize {
    ENTRY_HEADER.saturating_add(name_len).saturating_add(3) & !3
}

fn ea_inode_value(fs: &Filesystem, owner: &Inode, ino: u32, size: u32) -> Result<Vec<u8>, Error> {
    if size > MAX_VALUE {
        return Err(Error::inode(
            owner.ino,
            format!("xattr value in inode {ino} of {size} bytes exceeds {MAX_VALUE}"),
        ));
    }
    if ino == owner.ino {
        return Err(Error::inode(
            owner.ino,
            format!("xattr value is said to be in inode {ino}, the inode itself"),
        ));
    }
    if !fs.sb.has_incompat(INCOMPAT_EA_INODE) {
        fs.warn(format!(
            "inode {}: xattr value in inode {ino} without the ea_inode feature",
            owner.ino
        ));
    }
    let ea = fs
        .inode(ino)
        .map_err(|e| Error::inode(owner.ino, format!("xattr value inode {ino}: {e}")))?;
    if !ea.has_flag(EXT4_EA_INODE_FL) {
        // The kernel refuses it; e2fsck sets the flag: the value is still there.
        fs.warn(format!(
            "inode {}: xattr value inode {ino} lacks EXT4_EA_INODE_FL",
            owner.ino
        ));
    }
    if ea.size < u64::from(size) {
        return Err(Error::inode(
            owner.ino,
            format!(
                "xattr value of {size} bytes in inode {ino}, which holds only {}",
                ea.size
            ),
        ));
    }
    if ea.has_flag(crate::inode::EXT4_INLINE_DATA_FL) {
        return Err(Error::inode(
            owner.ino,
            format!("xattr value inode {ino} claims inline data"),
        ));
    }
    let mut buf = vec![0u8; usize_from(size)];
    let got = fs.read_at(&ea, 0, &mut buf)?;
    buf.truncate(got);
    Ok(buf)
}

/// Entries stored inside the inode body.
fn ibody_entries(
    fs: &Filesystem,
    inode: &Inode,
    follow_ea: bool,
    out: &mut Vec<RawEntry>,
) -> Result<(), Error> {
    let raw = inode.raw();
    if raw.len() <= EXT2_GOOD_OLD_INODE_SIZE {
        return Ok(());
    }
    let Some(start) = EXT2_GOOD_OLD_INODE_SIZE.checked_add(extra_isize(raw)) else {
        return Ok(());
    };
    let Some(region) = raw.get(start..) else {
        return Ok(());
    };
    // No room for the 4-byte magic means no in-inode xattrs, as a wrong magic does.
    if field::le_u32(region, 0) != Some(EXT4_XATTR_MAGIC) {
        return Ok(());
    }
    let r = Region {
        bytes: region,
        start: 4,
        value_base: 4,
        what: "in-inode xattrs",
    };
    parse_entries(fs, inode, &r, follow_ea, out)
}

/// Entries in the xattr block `i_file_acl`.
fn block_entries(fs: &Filesystem, inode: &Inode, out: &mut Vec<RawEntry>) -> Result<(), Error> {
    let blk = inode.file_acl();
    if blk == 0 {
        return Ok(());
    }
    let what = format!("xattr block {blk}");
    let data = fs
        .read_block(blk)
        .map_err(|e| Error::inode(inode.ino, format!("{what}: {e}")))?;
    let f = Fields::new(&data, "xattr block header");
    let hdr_err = |e: Error| Error::inode(inode.ino, format!("{what}: {e}"));
    let magic = f.le32(0).map_err(hdr_err)?;
    if magic != EXT4_XATTR_MAGIC {
        return Err(Error::inode(
            inode.ino,
            format!("{what}: bad magic {magic:#010x}"),
        ));
    }
    let h_blocks = f.le32(8).map_err(hdr_err)?;
    if h_blocks != 1 {
        return Err(Error::inode(
            inode.ino,
            format!("{what}: h_blocks is {h_blocks}, not 1"),
        ));
    }
    if fs.sb.metadata_csum() {
        // crc32c(seed, block number as le64, block with h_checksum zeroed).
        let want = f.le32(0x10).map_err(hdr_err)?;
        let mut crc = crc32c(fs.sb.csum_seed, &blk.to_le_bytes());
        crc = crc32c(crc, data.get(..0x10).unwrap_or_default());
        crc = crc32c(crc, &[0u8; 4]);
        crc = crc32c(crc, data.get(0x14..).unwrap_or_default());
        if crc != want {
            fs.warn(format!(
                "inode {}: {what} checksum mismatch (stored {want:#010x}, computed {crc:#010x})",
                inode.ino
            ));
        }
    }
    let r = Region {
        bytes: &data,
        start: BLOCK_HEADER,
        value_base: 0,
        what: &what,
    };
    parse_entries(fs, inode, &r, true, out)
}

/// The `system.data` value of an inline-data inode (its data beyond `i_block`).
pub(crate) fn inline_data_xattr(fs: &Filesystem, inode: &Inode) -> Result<Option<Vec<u8>>, Error> {
    let mut entries = Vec::new();
    ibody_entries(fs, inode, false, &mut entries)?;
    Ok(entries
        .into_iter()
        .find(|e| e.index == INDEX_SYSTEM && e.name == b"data")
        .map(|e| e.value))
}

/// Where the `system.data` value sits inside the inode's on-disk copy: (byte
/// offset from the start of the inode, length). The in-inode attribute region
/// starts after `i_extra_isize`, values count from its first entry.
pub(crate) fn inline_data_span(
    fs: &Filesystem,
    inode: &Inode,
) -> Result<Option<(usize, usize)>, Error> {
    let mut entries = Vec::new();
    ibody_entries(fs, inode, false, &mut entries)?;
    let start = EXT2_GOOD_OLD_INODE_SIZE.saturating_add(extra_isize(inode.raw()));
    Ok(entries
        .into_iter()
        .find(|e| e.index == INDEX_SYSTEM && e.name == b"data")
        .and_then(|e| Some((start.checked_add(e.at?)?, e.value.len()))))
}

/// All attributes of `inode`, in-inode first, with full names.
pub(crate) fn list(fs: &Filesystem, inode: &Inode) -> Result<Vec<Xattr>, Error> {
    let mut entries = Vec::new();
    ibody_entries(fs, inode, true, &mut entries)?;
    block_entries(fs, inode, &mut entries)?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        if e.index == INDEX_SYSTEM && e.name == b"data" {
            continue;
        }
        let mut name = match prefix(e.index) {
            Some(p) => p.to_vec(),
            None => format!("index{}.", e.index).into_bytes(),
        };
        name.extend_from_slice(&e.name);
        let value = if e.index == 2 || e.index == 3 {
            acl_to_xattr(&e.value).map_err(|d| {
                Error::inode(
                    inode.ino,
                    format!("{}: {d}", String::from_utf8_lossy(&name)),
                )
            })?
        } else {
            e.value
        };
        out.push(Xattr { name, value });
    }
    Ok(out)
}

// ACL tags (include/uapi/linux/posix_acl.h) and ext4's on-disk ACL (fs/ext4/acl.h).
const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;
const EXT4_ACL_VERSION: u32 = 0x0001;
const POSIX_ACL_XATTR_VERSION: u32 = 0x0002;
const ACL_UNDEFINED_ID: u32 = 0xFFFF_FFFF;

/// Converts ext4's compact ACL (4-byte header, 4- or 8-byte entries) to the
/// generic xattr format (4-byte header, 8-byte entries, version 2).
fn acl_to_xattr(v: &[u8]) -> Result<Vec<u8>, String> {
    if v.len() < 4 {
        return Err(format!("ACL of {} bytes is too short", v.len()));
    }
    let short = |pos: usize| format!("ACL entry at byte {pos} is truncated");
    let version = field::le_u32(v, 0).ok_or_else(|| short(0))?;
    if version != EXT4_ACL_VERSION {
        return Err(format!("ACL version {version} is not {EXT4_ACL_VERSION}"));
    }
    let mut out = Vec::with_capacity(v.len().saturating_mul(2));
    out.extend_from_slice(&POSIX_ACL_XATTR_VERSION.to_le_bytes());
    let mut pos: usize = 4;
    while pos < v.len() {
        let tag = field::le_u16(v, pos).ok_or_else(|| short(pos))?;
        let perm = field::le_u16(v, pos.saturating_add(2)).ok_or_else(|| short(pos))?;
        let (id, size) = match tag {
            ACL_USER_OBJ | ACL_GROUP_OBJ | ACL_MASK | ACL_OTHER => (ACL_UNDEFINED_ID, 4usize),
            ACL_USER | ACL_GROUP => (
                field::le_u32(v, pos.saturating_add(4)).ok_or_else(|| short(pos))?,
                8usize,
            ),
            other => {
                return Err(format!(
                    "ACL entry at byte {pos} has unknown tag {other:#x}"
                ))
            }
        };
        if pos.checked_add(size).is_none_or(|e| e > v.len()) {
            return Err(format!("ACL entry at byte {pos} is truncated"));
        }
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
        pos = pos.saturating_add(size);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_conversion() {
        // user::rw-, user:1000:r--, group::r--, mask::r--, other::---
        let mut v = vec![1, 0, 0, 0];
        v.extend_from_slice(&[1, 0, 6, 0]);
        v.extend_from_slice(&[2, 0, 4, 0, 0xE8, 3, 0, 0]);
        v.extend_from_slice(&[4, 0, 4, 0]);
        v.extend_from_slice(&[0x10, 0, 4, 0]);
        v.extend_from_slice(&[0x20, 0, 0, 0]);
        let x = acl_to_xattr(&v).unwrap();
        assert_eq!(x.len(), 4 + 5 * 8);
        assert_eq!(&x[..4], &[2, 0, 0, 0]);
        assert_eq!(&x[4..12], &[1, 0, 6, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(&x[12..20], &[2, 0, 4, 0, 0xE8, 3, 0, 0]);
        assert!(acl_to_xattr(&[1, 0, 0, 0, 2, 0, 4, 0]).is_err());
    }
}
