//! Directories (Documentation/filesystems/ext4/directory.rst).
//!
//! Every directory is read linearly: htree (`dir_index`) interior blocks look
//! like one empty entry spanning the block, so a linear walk sees exactly the
//! leaf entries. A block may end with a 12-byte checksum tail
//! (`ext4_dir_entry_tail`), verified when `metadata_csum` is on. Inline
//! directories keep the parent inode in the first 4 bytes of `i_block`, then
//! entries, continued in the `system.data` xattr.
//!
//! Each entry is checked as the kernel's `ext4_check_dir_entry` (fs/ext4/dir.c)
//! does: `rec_len` at least 12 (`EXT4_DIR_REC_LEN(1)`), a multiple of 4, room for
//! the name, inside the block. Where the kernel then refuses the whole block, this
//! reader salvages it for recovery, in the spirit of e2fsck's `salvage_directory`
//! (e2fsck/pass2.c): the damaged entry is kept when its own header and name are
//! sound, and the scan resumes at the next plausible entry on a 4-byte boundary.
//! Every entry skipped or kept this way is a warning naming the directory inode,
//! the block and the byte offset.
//!
//! A directory that maps one physical block twice is read once (warning), and the
//! number of entries is bounded by the directory size / 12, the smallest entry.

use std::collections::HashSet;

use crate::bytes::slice;
use crate::crc::crc32c;
use crate::inode::{EXT4_ENCRYPT_FL, EXT4_INLINE_DATA_FL};
use crate::superblock::INCOMPAT_FILETYPE;
use crate::{DirEntry, Error, FileType, Filesystem, Inode, Mapping};
use bytesource::field;

/// Largest directory read (bounds the work and memory for one directory).
const MAX_DIR_SIZE: u64 = 256 << 20;
/// Most entries returned for one directory (bounds memory: a real directory of
/// this size is already extreme).
const MAX_DIR_ENTRIES: usize = 4 << 20;
/// Size of the fixed part of a directory entry.
const DIRENT_HEADER: usize = 8;
/// The smallest valid `rec_len`: `EXT4_DIR_REC_LEN(1)` (fs/ext4/ext4.h).
const MIN_REC_LEN: usize = 12;
const MIN_REC_LEN_U64: u64 = 12;
/// Size of the `ext4_dir_entry_tail` checksum entry.
const TAIL_LEN: usize = 12;
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
    // Every entry takes at least 12 bytes (`EXT4_DIR_REC_LEN(1)`) of the blocks
    // read, which cover i_size rounded up to whole blocks (inline: i_size).
    let bs = fs.sb.block_size.as_u64();
    let nblocks = dir.size.div_ceil(bs);
    let covered = if dir.has_flag(EXT4_INLINE_DATA_FL) {
        dir.size
    } else {
        nblocks.saturating_mul(bs)
    };
    let max_entries = usize::try_from(covered / MIN_REC_LEN_U64)
        .unwrap_or(usize::MAX)
        .saturating_add(2)
        .min(MAX_DIR_ENTRIES);
    if dir.has_flag(EXT4_INLINE_DATA_FL) {
        let data = fs.inline_data(dir)?;
        let parent = field::le_u32(&data, 0).ok_or_else(|| {
            Error::inode(
                dir.ino,
                "inline directory data shorter than its 4-byte parent inode",
            )
        })?;
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
        // Named as e2fsck numbers them: block 0 is i_block (offsets counted from
        // its start, the parent number included), block 1 the system.data xattr.
        let ctx = |what: &'static str, base: usize| Region {
            what: what.to_string(),
            filetype,
            dots: false,
            base,
        };
        let i_block = ctx("directory block 0 (inline, i_block)", 4);
        parse_region(fs, dir, first, &i_block, &mut out);
        if size > 60 {
            let second = data.get(60..size).unwrap_or_default();
            let xattr = ctx("directory block 1 (inline, system.data xattr)", 0);
            parse_region(fs, dir, second, &xattr, &mut out);
        }
        fill_unknown_types(fs, filetype, &mut out);
        return Ok(out);
    }
    // Physical blocks already read: a hostile map can alias one block many times
    // (e2fsck calls such blocks "multiply-claimed"); its entries are listed once.
    let mut seen: HashSet<u64> = HashSet::new();
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
                let l = lblk.saturating_add(i);
                i = i.saturating_add(1);
                let what = format!("directory block {l} (block {pblk})");
                if !seen.insert(pblk) {
                    fs.warn(format!(
                        "inode {}: {what} is mapped a second time; read once",
                        dir.ino
                    ));
                    continue;
                }
                // The rest of this run is read in the same request (bounded).
                match fs.read_block_ahead(pblk, phys.saturating_add(len)) {
                    Ok(block) => {
                        check_tail(fs, dir, &block, &format!("directory block {l}"));
                        let ctx = Region {
                            what,
                            filetype,
                            dots: l == 0,
                            base: 0,
                        };
                        parse_region(fs, dir, &block, &ctx, &mut out);
                        if out.len() > max_entries {
                            return Err(Error::inode(
                                dir.ino,
                                format!(
                                    "directory of {} bytes has more than {max_entries} entries",
                                    dir.size
                                ),
                            ));
                        }
                    }
                    Err(e) => fs.warn(format!("inode {}: {what}: {e}", dir.ino)),
                }
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
    // `ext4_dir_entry_tail`: det_reserved_zero1 u32, det_rec_len u16 (12),
    // det_reserved_zero2 u8, det_reserved_ft u8 (0xDE), det_checksum u32. All
    // inside the 12 bytes of `tail`, so the `None` arms cannot be taken.
    let is_tail = field::le_u32(tail, 0) == Some(0)
        && field::le_u16(tail, 4) == Some(12)
        && tail.get(6) == Some(&0)
        && tail.get(7) == Some(&EXT4_FT_DIR_CSUM);
    let (true, Some(want)) = (is_tail, field::le_u32(tail, 8)) else {
        return;
    };
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

/// `EXT4_DIR_REC_LEN(name_len)`: header plus name, rounded up to 4 bytes.
fn rec_len_min(name_len: usize) -> usize {
    DIRENT_HEADER.saturating_add(name_len).saturating_add(3) & !3
}

/// What is being parsed, for warnings and the "." / ".." rule.
struct Region {
    /// "directory block 3 (block 1234)" or "inline data xattr".
    what: String,
    /// `filetype` feature: `name_len` is one byte followed by the type.
    filetype: bool,
    /// The first block of the directory: entries 0 and 1 are "." and "..".
    dots: bool,
    /// Byte offset of the region in what `what` names (for messages).
    base: usize,
}

/// The fields of one entry header at `pos`.
struct Raw {
    ino: u32,
    rec_len: usize,
    name_len: usize,
    ft: u8,
}

/// The entry header at `pos`, or `None` when its 8 bytes are not all inside
/// `region` (then there is no entry there).
fn raw_at(region: &[u8], pos: usize, filetype: bool) -> Option<Raw> {
    let ino = field::le_u32(region, pos)?;
    let rec_len = rec_len_from_disk(field::le_u16(region, pos.checked_add(4)?)?, region.len());
    let (name_len, ft) = if filetype {
        (
            usize::from(field::u8_at(region, pos.checked_add(6)?)?),
            field::u8_at(region, pos.checked_add(7)?)?,
        )
    } else {
        (usize::from(field::le_u16(region, pos.checked_add(6)?)?), 0)
    };
    Some(Raw {
        ino,
        rec_len,
        name_len,
        ft,
    })
}

/// The structural checks of `ext4_check_dir_entry`, as a reason when one fails.
fn structure_error(e: &Raw, pos: usize, len: usize) -> Option<String> {
    let why = if e.rec_len < MIN_REC_LEN {
        "rec_len is smaller than minimal"
    } else if e.rec_len % 4 != 0 {
        "rec_len is not a multiple of 4"
    } else if e.rec_len < rec_len_min(e.name_len) {
        "rec_len is too small for name_len"
    } else if pos.checked_add(e.rec_len).is_none_or(|end| end > len) {
        "entry runs past the end of the block"
    } else {
        return None;
    };
    Some(format!(
        "{why} (rec_len {}, name_len {})",
        e.rec_len, e.name_len
    ))
}

/// A name e2fsck would accept: no NUL and no '/' (pass2.c `check_name`).
fn name_ok(name: &[u8]) -> bool {
    !name.is_empty() && !name.iter().any(|&c| c == 0 || c == b'/')
}

/// The name of the entry at `pos` when the header and name bytes look like a
/// live entry (used only while salvaging: a stricter test than the kernel's).
fn plausible_name<'a>(region: &'a [u8], pos: usize, e: &Raw, max_ino: u32) -> Option<&'a [u8]> {
    if e.ino == 0 || e.ino > max_ino || e.name_len == 0 || e.ft > 7 {
        return None;
    }
    if pos.checked_add(rec_len_min(e.name_len))? > region.len() {
        return None;
    }
    let name = slice(region, pos.saturating_add(DIRENT_HEADER), e.name_len)?;
    name_ok(name).then_some(name)
}

/// Whether a salvage scan may resume at `pos`: a sound live entry whose `rec_len`
/// ends the block or leads to another structurally sound entry.
fn resumable(region: &[u8], pos: usize, filetype: bool, max_ino: u32) -> bool {
    let Some(e) = raw_at(region, pos, filetype) else {
        return false;
    };
    if structure_error(&e, pos, region.len()).is_some() {
        return false;
    }
    if plausible_name(region, pos, &e, max_ino).is_none() {
        return false;
    }
    let next = pos.saturating_add(e.rec_len);
    if next == region.len() {
        return true;
    }
    if next.saturating_add(DIRENT_HEADER) > region.len() {
        return false;
    }
    raw_at(region, next, filetype)
        .is_some_and(|n| structure_error(&n, next, region.len()).is_none())
}

/// Parses the linear entries of one block (or inline region) into `out`.
///
/// A structurally bad entry does not end the block: the entry itself is kept
/// when its header and name are sound, and parsing resumes at the next
/// plausible entry on a 4-byte boundary (both reported). Entries with inode 0
/// (deleted, or htree index space) are skipped silently; inode numbers past
/// `s_inodes_count`, empty names and "." / ".." outside the first two entries
/// of the first block are skipped with a warning.
fn parse_region(fs: &Filesystem, dir: &Inode, region: &[u8], r: &Region, out: &mut Vec<DirEntry>) {
    let max_ino = fs.sb.max_ino();
    let len = region.len();
    let warn = |pos: usize, msg: String| {
        fs.warn(format!(
            "inode {}: {}: entry at byte {}: {msg}",
            dir.ino,
            r.what,
            r.base.saturating_add(pos)
        ));
    };
    let mut pos: usize = 0;
    let mut index: usize = 0;
    // Every step advances by at least 4 bytes, so this loop is bounded by the region.
    while pos.checked_add(DIRENT_HEADER).is_some_and(|e| e <= len) {
        // The loop condition puts the 8 header bytes inside the region.
        let Some(e) = raw_at(region, pos, r.filetype) else {
            break;
        };
        if e.ino == 0
            && e.rec_len == TAIL_LEN
            && pos.checked_add(TAIL_LEN) == Some(len)
            && field::u8_at(region, pos.saturating_add(7)) == Some(EXT4_FT_DIR_CSUM)
        {
            pos = len;
            break; // the checksum tail
        }
        if let Some(why) = structure_error(&e, pos, len) {
            let rec_len_sound = e.rec_len >= MIN_REC_LEN
                && e.rec_len % 4 == 0
                && pos.checked_add(e.rec_len).is_some_and(|end| end <= len);
            let mut resume_from = pos.saturating_add(4);
            if rec_len_sound {
                // Only name_len is wrong: the chain of rec_len still holds, the
                // name does not (it would run into the next entry).
                warn(pos, format!("{why}; entry skipped"));
                resume_from = pos.saturating_add(e.rec_len);
            } else if let Some(name) = plausible_name(region, pos, &e, max_ino) {
                // Keep this entry when its own header and name are sound.
                warn(
                    pos,
                    format!(
                        "{why}; kept {:?} (inode {}) by its name length",
                        String::from_utf8_lossy(name),
                        e.ino
                    ),
                );
                push(out, r, &mut index, name, e.ino, e.ft, &warn, pos);
                resume_from = pos.saturating_add(rec_len_min(e.name_len));
            } else {
                warn(pos, format!("{why}; entry unreadable"));
            }
            // Scan forward on 4-byte boundaries for the next plausible entry.
            let mut p = resume_from;
            let found = loop {
                if p.saturating_add(MIN_REC_LEN) > len {
                    break None;
                }
                if resumable(region, p, r.filetype, max_ino) {
                    break Some(p);
                }
                p = p.saturating_add(4);
            };
            match found {
                Some(p) => {
                    if p > resume_from {
                        warn(
                            pos,
                            format!(
                                "bytes {}..{} skipped; resumed at the next plausible entry",
                                r.base.saturating_add(resume_from),
                                r.base.saturating_add(p)
                            ),
                        );
                    }
                    pos = p;
                }
                None => {
                    if resume_from < len {
                        warn(
                            pos,
                            format!(
                                "no plausible entry in bytes {}..{}; rest of the block skipped",
                                r.base.saturating_add(resume_from),
                                r.base.saturating_add(len)
                            ),
                        );
                    }
                    return;
                }
            }
            continue;
        }
        let here = pos;
        pos = pos.saturating_add(e.rec_len);
        if e.ino == 0 {
            // A deleted entry or the fake entry covering an htree index block.
            index = index.saturating_add(1);
            continue;
        }
        if e.ino > max_ino {
            warn(
                here,
                format!(
                    "names inode {}, beyond s_inodes_count {max_ino}; skipped",
                    e.ino
                ),
            );
            index = index.saturating_add(1);
            continue;
        }
        let name =
            slice(region, here.saturating_add(DIRENT_HEADER), e.name_len).unwrap_or_default();
        push(out, r, &mut index, name, e.ino, e.ft, &warn, here);
    }
    if pos < len {
        // The rec_len chain must end exactly at the end of the block.
        warn(
            pos,
            format!(
                "only {} bytes left, too few for an entry header",
                len.saturating_sub(pos)
            ),
        );
    }
}

/// Adds one live entry, applying the empty-name and "." / ".." rules.
#[allow(clippy::too_many_arguments)]
fn push(
    out: &mut Vec<DirEntry>,
    r: &Region,
    index: &mut usize,
    name: &[u8],
    ino: u32,
    ft: u8,
    warn: &dyn Fn(usize, String),
    pos: usize,
) {
    let i = *index;
    *index = i.saturating_add(1);
    if name.is_empty() {
        warn(pos, format!("empty name (inode {ino}); skipped"));
        return;
    }
    let dot = name == b".";
    let dotdot = name == b"..";
    if (dot || dotdot) && !(r.dots && ((dot && i == 0) || (dotdot && i == 1))) {
        warn(
            pos,
            format!(
                "{:?} (inode {ino}) is not among the first two entries of the first block; skipped",
                String::from_utf8_lossy(name)
            ),
        );
        return;
    }
    if !name_ok(name) {
        warn(
            pos,
            format!(
                "name {:?} (inode {ino}) contains NUL or '/'",
                String::from_utf8_lossy(name)
            ),
        );
    }
    out.push(DirEntry {
        name: name.to_vec(),
        ino,
        file_type: file_type_from_dirent(ft),
    });
}
