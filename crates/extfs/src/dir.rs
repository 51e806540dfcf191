//! Directories (Documentation/filesystems/ext4/directory.rst).
//!
//! Every directory is read linearly: htree (`dir_index`) interior blocks look
//! like one empty entry spanning the block, so a linear walk sees exactly the
//! leaf entries. A block may end with a 12-byte checksum tail
//! (`ext4_dir_entry_tail`), verified when `metadata_csum` is on. Inline
//! directories keep the parent inode in the first 4 bytes of `i_block`, then
//! entries, continued in the `system.data` xattr.

use crate::bytes::{le16, le32, slice};
use crate::crc::crc32c;
use crate::inode::{EXT4_ENCRYPT_FL, EXT4_INLINE_DATA_FL};
use crate::superblock::INCOMPAT_FILETYPE;
use crate::{DirEntry, Error, FileType, Filesystem, Inode, Mapping};

/// Largest directory read (bounds the work and memory for one directory).
const MAX_DIR_SIZE: u64 = 256 << 20;
/// Most entries returned for one directory (bounds memory: a real directory of
/// this size is already extreme).
const MAX_DIR_ENTRIES: usize = 4 << 20;
/// Size of the fixed part of a directory entry.
const DIRENT_HEADER: usize = 8;
/// `det_reserved_ft` of the checksum tail (directory.rst).
const EXT4_FT_DIR_CSUM: u8 = 0xDE;

fn file_type_from_dirent(ft: u8) -> FileType {
    match ft {
        1 => FileType::Regular,
        2 => FileType::Directory,
        3 => FileType::CharDevice,
        4 => FileType::BlockDevice,
        5 => FileType::Fifo,
        6 => FileType::Socket,
        7 => FileType::Symlink,
        _ => FileType::Unknown,
    }
}

/// Decodes `rec_len`; 64 KiB blocks store 65536 as 0 or 65535 (the kernel's
/// `ext4_rec_len_from_disk`).
fn rec_len_from_disk(v: u16, block_size: usize) -> usize {
    let len = usize::from(v);
    if block_size < 65536 {
        return len;
    }
    if v == 65535 || v == 0 {
        return 65536;
    }
    (len & 65532) | ((len & 3) << 16)
}

/// All entries of `dir`, "." and ".." included.
pub(crate) fn read_entries(fs: &Filesystem, dir: &Inode) -> Result<Vec<DirEntry>, Error> {
    if dir.file_type != FileType::Directory {
        return Err(Error::WrongType {
            ino: dir.ino,
            detail: "not a directory".into(),
        });
    }
    if dir.has_flag(EXT4_ENCRYPT_FL) {
        return Err(Error::unsupported(
            format!("inode {}", dir.ino),
            "encrypted directory (names cannot be read without the key)",
        ));
    }
    if dir.size > MAX_DIR_SIZE {
        return Err(Error::inode(
            dir.ino,
            format!(
                "directory size {} exceeds the {MAX_DIR_SIZE}-byte limit",
                dir.size
            ),
        ));
    }
    let filetype = fs.sb.has_incompat(INCOMPAT_FILETYPE);
    let mut out = Vec::new();
    if dir.has_flag(EXT4_INLINE_DATA_FL) {
        let data = fs.inline_data(dir)?;
        let parent = le32(&data, 0);
        out.push(DirEntry {
            name: b".".to_vec(),
            ino: dir.ino,
            file_type: FileType::Directory,
        });
        out.push(DirEntry {
            name: b"..".to_vec(),
            ino: parent,
            file_type: FileType::Directory,
        });
        let size = usize::try_from(dir.size)
            .unwrap_or(usize::MAX)
            .min(data.len());
        // i_block part: bytes 4..60; xattr part: 60..size. Each is parsed as its own region.
        let first = data.get(4..size.min(60)).unwrap_or_default();
        parse_region(fs, dir, first, filetype, "inline data", &mut out);
        if size > 60 {
            let second = data.get(60..size).unwrap_or_default();
            parse_region(fs, dir, second, filetype, "inline data xattr", &mut out);
        }
        fill_unknown_types(fs, filetype, &mut out);
        return Ok(out);
    }
    let bs = u64::from(fs.sb.block_size);
    let nblocks = dir.size.div_ceil(bs);
    let mut lblk: u64 = 0;
    while lblk < nblocks {
        let (len, phys) = match fs.map_block(dir, lblk)? {
            Mapping::Data { phys, len } => (len, Some(phys)),
            Mapping::Hole { len } | Mapping::Unwritten { len } => (len, None),
        };
        let len = len.max(1).min(nblocks.saturating_sub(lblk));
        if let Some(phys) = phys {
            let mut i: u64 = 0;
            while i < len {
                let pblk = phys.saturating_add(i);
                let what = format!("directory block {}", lblk.saturating_add(i));
                match fs.read_block(pblk) {
                    Ok(block) => {
                        check_tail(fs, dir, &block, &what);
                        parse_region(fs, dir, &block, filetype, &what, &mut out);
                        if out.len() > MAX_DIR_ENTRIES {
                            return Err(Error::inode(
                                dir.ino,
                                format!("directory has more than {MAX_DIR_ENTRIES} entries"),
                            ));
                        }
                    }
                    Err(e) => fs.warn(format!("inode {}: {what}: {e}", dir.ino)),
                }
                i = i.saturating_add(1);
            }
        }
        lblk = lblk.saturating_add(len);
    }
    fill_unknown_types(fs, filetype, &mut out);
    Ok(out)
}

/// Without the `filetype` feature, entries carry no type: take it from the inode.
fn fill_unknown_types(fs: &Filesystem, filetype: bool, out: &mut [DirEntry]) {
    if filetype {
        return;
    }
    for e in out.iter_mut() {
        if e.file_type == FileType::Unknown {
            if let Ok(i) = fs.inode(e.ino) {
                e.file_type = i.file_type;
            }
        }
    }
}

/// Verifies the `ext4_dir_entry_tail` checksum when the block has one.
fn check_tail(fs: &Filesystem, dir: &Inode, block: &[u8], what: &str) {
    if !fs.sb.metadata_csum() {
        return;
    }
    let Some(tail_off) = block.len().checked_sub(12) else {
        return;
    };
    let Some(tail) = slice(block, tail_off, 12) else {
        return;
    };
    let is_tail = le32(tail, 0) == 0
        && le16(tail, 4) == 12
        && tail.get(6) == Some(&0)
        && tail.get(7) == Some(&EXT4_FT_DIR_CSUM);
    if !is_tail {
        return;
    }
    let want = le32(tail, 8);
    let got = crc32c(
        fs.inode_csum_seed(dir),
        block.get(..tail_off).unwrap_or_default(),
    );
    if want != got {
        fs.warn(format!(
            "inode {}: {what} checksum mismatch (stored {want:#010x}, computed {got:#010x})",
            dir.ino
        ));
    }
}

/// Parses the linear entries of one block (or inline region) into `out`.
/// A malformed entry ends the region with a warning; earlier entries are kept.
fn parse_region(
    fs: &Filesystem,
    dir: &Inode,
    region: &[u8],
    filetype: bool,
    what: &str,
    out: &mut Vec<DirEntry>,
) {
    let max_ino = fs.sb.max_ino();
    let mut pos: usize = 0;
    // Every step advances by at least 8 bytes, so this loop is bounded by the region.
    while pos
        .checked_add(DIRENT_HEADER)
        .is_some_and(|e| e <= region.len())
    {
        let ino = le32(region, pos);
        let rec_len = rec_len_from_disk(le16(region, pos.saturating_add(4)), region.len());
        let (name_len, ft) = if filetype {
            (
                usize::from(region.get(pos.saturating_add(6)).copied().unwrap_or(0)),
                region.get(pos.saturating_add(7)).copied().unwrap_or(0),
            )
        } else {
            (usize::from(le16(region, pos.saturating_add(6))), 0)
        };
        let bad = |detail: String| {
            fs.warn(format!(
                "inode {}: {what}: entry at byte {pos}: {detail}; rest of block skipped",
                dir.ino
            ));
        };
        if rec_len < DIRENT_HEADER || rec_len % 4 != 0 {
            bad(format!("bad rec_len {rec_len}"));
            return;
        }
        let Some(end) = pos.checked_add(rec_len).filter(|&e| e <= region.len()) else {
            bad(format!("rec_len {rec_len} runs past the end"));
            return;
        };
        if name_len.saturating_add(DIRENT_HEADER) > rec_len {
            bad(format!(
                "name_len {name_len} does not fit in rec_len {rec_len}"
            ));
            return;
        }
        if ino != 0 && name_len > 0 {
            if ino > max_ino {
                fs.warn(format!(
                    "inode {}: {what}: entry at byte {pos} names inode {ino}, beyond {max_ino}; skipped",
                    dir.ino
                ));
            } else if let Some(name) = slice(region, pos.saturating_add(DIRENT_HEADER), name_len) {
                out.push(DirEntry {
                    name: name.to_vec(),
                    ino,
                    file_type: file_type_from_dirent(ft),
                });
            }
        } else if ino != 0 {
            fs.warn(format!("inode {}: {what}: entry at byte {pos} names inode {ino} with an empty name; skipped", dir.ino));
        }
        pos = end;
    }
}
