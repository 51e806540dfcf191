//! The jbd2 journal superblock (Documentation/filesystems/ext4/journal.rst,
//! "Super Block"; the kernel's `journal_load` / `jbd2_journal_check_…` in
//! fs/jbd2/journal.c). All fields are big-endian.

use crate::bytes::Fields;
use crate::crc::crc32c;
use crate::{Error, Filesystem};

use super::JBD2_MAGIC_NUMBER;

// h_blocktype values of a superblock.
const JBD2_SUPERBLOCK_V1: u32 = 3;
const JBD2_SUPERBLOCK_V2: u32 = 4;
// Feature bits (journal.rst, "Journal superblock").
const JBD2_FEATURE_INCOMPAT_REVOKE: u32 = 0x1;
const JBD2_FEATURE_INCOMPAT_64BIT: u32 = 0x2;
const JBD2_FEATURE_INCOMPAT_CSUM_V2: u32 = 0x8;
const JBD2_FEATURE_INCOMPAT_CSUM_V3: u32 = 0x10;
const JBD2_FEATURE_INCOMPAT_FAST_COMMIT: u32 = 0x20;
/// REVOKE, 64BIT, ASYNC_COMMIT (0x4, nothing to do when reading), CSUM_V2/V3,
/// FAST_COMMIT.
const JBD2_KNOWN_INCOMPAT: u32 = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20;
/// Default fast-commit area size when `s_num_fc_blks` is 0 (`JBD2_DEFAULT_FAST_COMMIT_BLOCKS`).
const JBD2_DEFAULT_FAST_COMMIT_BLOCKS: u32 = 256;

/// What replay needs from the journal superblock, validated.
pub(super) struct JournalSuper {
    /// `s_first`: first block of the log.
    pub first: u64,
    /// End of the log (exclusive): `s_maxlen`, less the fast-commit area.
    pub last: u64,
    /// `s_sequence`: the first transaction expected at `s_start`.
    pub sequence: u32,
    /// `s_start`: where the log starts; 0 means clean.
    pub start: u64,
    pub csum_v2: bool,
    pub csum_v3: bool,
    pub is_64bit: bool,
    pub revoke: bool,
    /// crc32c seed of the journal checksums: crc32c(~0, s_uuid).
    pub csum_seed: u32,
}

impl JournalSuper {
    pub fn has_csum(&self) -> bool {
        self.csum_v2 || self.csum_v3
    }

    /// Length of the log in blocks.
    pub fn log_len(&self) -> u64 {
        self.last.saturating_sub(self.first)
    }

    /// Journal block after `b`, wrapping from the end of the log to `s_first`.
    pub fn wrap(&self, b: u64) -> u64 {
        if b >= self.last {
            b.saturating_sub(self.last).saturating_add(self.first)
        } else {
            b
        }
    }

    /// Bytes of one block tag (`journal_tag_bytes` in fs/jbd2/journal.c).
    pub fn tag_bytes(&self) -> usize {
        if self.csum_v3 {
            return 16;
        }
        // journal_block_tag_t is 12 bytes, csum_v2 adds a 16-bit checksum, and
        // without 64bit the 4-byte t_blocknr_high is left out.
        match (self.csum_v2, self.is_64bit) {
            (true, true) => 14,
            (true, false) => 10,
            (false, true) => 12,
            (false, false) => 8,
        }
    }
}

/// Parses and validates the journal superblock `sbuf` of a journal whose inode
/// maps `mapped_blocks` blocks. Every inconsistency the kernel refuses at
/// journal load is an error naming the journal superblock.
pub(super) fn parse(
    fs: &Filesystem,
    sbuf: &[u8],
    mapped_blocks: u64,
) -> Result<JournalSuper, Error> {
    let jsb = |d: String| Error::corrupt("journal superblock", d);
    let f = Fields::new(sbuf, "journal superblock");
    let magic = f.be32(0)?;
    if magic != JBD2_MAGIC_NUMBER {
        return Err(jsb(format!("bad magic {magic:#010x}")));
    }
    let blocktype = f.be32(4)?;
    if blocktype != JBD2_SUPERBLOCK_V1 && blocktype != JBD2_SUPERBLOCK_V2 {
        return Err(jsb(format!("block type {blocktype} is not a superblock")));
    }
    let s_blocksize = f.be32(0xC)?;
    if s_blocksize != fs.sb.block_size.get() {
        return Err(jsb(format!(
            "journal block size {s_blocksize} differs from the filesystem's {}",
            fs.sb.block_size
        )));
    }
    let s_maxlen = f.be32(0x10)?;
    let s_first = f.be32(0x14)?;
    let s_sequence = f.be32(0x18)?;
    let s_start = f.be32(0x1C)?;
    let v2 = blocktype == JBD2_SUPERBLOCK_V2;
    let incompat = if v2 { f.be32(0x28)? } else { 0 };
    if incompat & !JBD2_KNOWN_INCOMPAT != 0 {
        return Err(Error::unsupported(
            "journal superblock",
            format!(
                "unknown incompatible features {:#x}",
                incompat & !JBD2_KNOWN_INCOMPAT
            ),
        ));
    }
    let csum_v2 = incompat & JBD2_FEATURE_INCOMPAT_CSUM_V2 != 0;
    let csum_v3 = incompat & JBD2_FEATURE_INCOMPAT_CSUM_V3 != 0;
    if csum_v2 || csum_v3 {
        let want = f.be32(0xFC)?;
        let mut copy = f.slice(0, 1024)?.to_vec();
        if let Some(s) = copy.get_mut(0xFC..0x100) {
            s.fill(0);
        }
        let got = crc32c(!0, &copy);
        if want != got {
            // The kernel refuses to load such a journal and e2fsck discards it.
            return Err(jsb(format!(
                "checksum mismatch (stored {want:#010x}, computed {got:#010x})"
            )));
        }
    }
    // journal_load: "journal file too short" when s_maxlen exceeds the inode.
    if u64::from(s_maxlen) > mapped_blocks {
        return Err(jsb(format!(
            "s_maxlen {s_maxlen} exceeds the {mapped_blocks} blocks the journal inode maps"
        )));
    }
    // With fast commits the log ends before the fast-commit area.
    let last = if incompat & JBD2_FEATURE_INCOMPAT_FAST_COMMIT != 0 {
        let fc = if v2 { f.be32(0x54)? } else { 0 };
        let fc = if fc == 0 {
            JBD2_DEFAULT_FAST_COMMIT_BLOCKS
        } else {
            fc
        };
        fs.warn("journal: fast-commit area present; fast commits are not replayed".into());
        s_maxlen.saturating_sub(fc)
    } else {
        s_maxlen
    };
    if s_first == 0 || s_first >= last {
        return Err(jsb(format!("s_first {s_first} is outside 1..{last}")));
    }
    if s_start != 0 && (s_start < s_first || s_start >= last) {
        return Err(jsb(format!(
            "s_start {s_start} is outside {s_first}..{last}"
        )));
    }
    Ok(JournalSuper {
        first: u64::from(s_first),
        last: u64::from(last),
        sequence: s_sequence,
        start: u64::from(s_start),
        csum_v2,
        csum_v3,
        is_64bit: incompat & JBD2_FEATURE_INCOMPAT_64BIT != 0,
        revoke: incompat & JBD2_FEATURE_INCOMPAT_REVOKE != 0,
        csum_seed: crc32c(!0, sbuf.get(0x30..0x40).unwrap_or_default()),
    })
}
