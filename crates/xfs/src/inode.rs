//! On-disk inodes (`struct xfs_dinode`, fs/xfs/libxfs/xfs_format.h; decoded as in
//! xfs_inode_buf.c xfs_inode_from_disk()): the core (v1/v2: 100 bytes, v3: 176
//! bytes with CRC, crtime and self-describing ino/uuid), timestamps in the classic
//! and the bigtime encoding, the extent counters (including nrext64's large ones),
//! and the two fork areas after the core (di_forkoff in 8-byte units).

use std::sync::Arc;

use fsapi::{Error, FileType, Metadata, Timestamp};

use crate::crc;
use crate::superblock::Superblock;
use bytesource::field::{be_u16, be_u32, be_u64, u8_at};

/// "IN" (XFS_DINODE_MAGIC).
const DINODE_MAGIC: u16 = 0x494e;
/// Offset of di_crc in a v3 inode (XFS_DINODE_CRC_OFF).
const DINODE_CRC_OFF: usize = 100;

/// Fork formats (enum xfs_dinode_fmt).
pub(crate) const FMT_DEV: u8 = 0;
pub(crate) const FMT_LOCAL: u8 = 1;
pub(crate) const FMT_EXTENTS: u8 = 2;
pub(crate) const FMT_BTREE: u8 = 3;

/// di_flags XFS_DIFLAG_REALTIME: data lives on the realtime device.
pub(crate) const DIFLAG_REALTIME: u16 = 0x0001;
/// di_flags2 bits (XFS_DIFLAG2_*).
const DIFLAG2_BIGTIME: u64 = 1 << 3;
const DIFLAG2_NREXT64: u64 = 1 << 4;

/// Seconds between 1901-12-13T20:45:52Z (bigtime zero) and the Unix epoch
/// (XFS_BIGTIME_EPOCH_OFFSET = -(s64)S32_MIN, xfs_format.h).
const BIGTIME_EPOCH_OFFSET: i64 = 1 << 31;

/// Which fork.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fork {
    Data,
    Attr,
}

/// A decoded inode, with its raw bytes kept for the fork areas.
#[derive(Clone, Debug)]
pub(crate) struct Inode {
    pub ino: u64,
    /// Device byte offset of the inode.
    pub pos: u64,
    pub version: u8,
    pub mode: u16,
    pub format: u8,
    pub aformat: u8,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub nblocks: u64,
    pub flags: u16,
    pub flags2: u64,
    pub gen: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub crtime: Option<Timestamp>,
    pub nextents: u64,
    pub anextents: u64,
    pub forkoff: u8,
    raw: Arc<[u8]>,
}

fn decode_time(raw: u64, bigtime: bool) -> Timestamp {
    if bigtime {
        // xfs_inode_from_disk_ts(): nanoseconds since the bigtime epoch.
        let secs = i64::try_from(raw / 1_000_000_000).unwrap_or(i64::MAX);
        let nanos = u32::try_from(raw % 1_000_000_000).unwrap_or(0);
        Timestamp {
            secs: secs.saturating_sub(BIGTIME_EPOCH_OFFSET),
            nanos,
        }
    } else {
        // Classic: signed 32-bit seconds, then nanoseconds (xfs_legacy_timestamp).
        let secs = i64::from(i32::from_be_bytes(
            u32::try_from(raw >> 32).unwrap_or(0).to_be_bytes(),
        ));
        let nanos = u32::try_from(raw & 0xffff_ffff)
            .unwrap_or(0)
            .min(999_999_999);
        Timestamp { secs, nanos }
    }
}

impl Inode {
    /// Decodes inode `ino` from its `inode_size` raw bytes at device offset `pos`.
    /// A v3 CRC or ino mismatch is reported through `warn` and decoding goes on.
    pub(crate) fn parse(
        sb: &Superblock,
        ino: u64,
        pos: u64,
        raw: Arc<[u8]>,
        warn: &dyn Fn(String),
    ) -> Result<Inode, Error> {
        let b = &raw[..];
        let obj = || format!("inode {ino}");
        let bad = |d: &str| Error::corrupt_at(obj(), pos, d.to_string());
        let t = || bad("inode is truncated");
        if be_u16(b, 0).ok_or_else(t)? != DINODE_MAGIC {
            return Err(bad("no IN magic (not an allocated inode)"));
        }
        let version = u8_at(b, 4).ok_or_else(t)?;
        match (version, sb.is_v5()) {
            (3, true) | (1 | 2, false) => {}
            _ => return Err(bad(&format!("inode version {version} on this filesystem"))),
        }
        if version == 3 {
            if !crc::verify(b, DINODE_CRC_OFF) {
                warn(format!("inode {ino}: CRC mismatch (at byte {pos})"));
            }
            if b.get(160..176) != Some(&sb.meta_uuid[..]) {
                warn(format!("inode {ino}: UUID is not this filesystem's"));
            }
            let self_ino = be_u64(b, 152).ok_or_else(t)?;
            if self_ino != ino {
                warn(format!("inode {ino}: records inode number {self_ino}"));
            }
        }
        let flags2 = if version == 3 {
            be_u64(b, 120).ok_or_else(t)?
        } else {
            0
        };
        let bigtime = flags2 & DIFLAG2_BIGTIME != 0;
        let time = |o| be_u64(b, o).map(|v| decode_time(v, bigtime)).ok_or_else(t);
        let nrext64 = flags2 & DIFLAG2_NREXT64 != 0;
        let (nextents, anextents) = if nrext64 {
            (
                be_u64(b, 24).ok_or_else(t)?,
                u64::from(be_u32(b, 76).ok_or_else(t)?),
            )
        } else {
            (
                u64::from(be_u32(b, 76).ok_or_else(t)?),
                u64::from(be_u16(b, 80).ok_or_else(t)?),
            )
        };
        // v1 inodes keep a 16-bit link count in di_onlink (xfs_inode_from_disk()).
        let nlink = if version == 1 {
            u32::from(be_u16(b, 6).ok_or_else(t)?)
        } else {
            be_u32(b, 16).ok_or_else(t)?
        };
        let inode = Inode {
            ino,
            pos,
            version,
            mode: be_u16(b, 2).ok_or_else(t)?,
            format: u8_at(b, 5).ok_or_else(t)?,
            aformat: u8_at(b, 83).ok_or_else(t)?,
            uid: be_u32(b, 8).ok_or_else(t)?,
            gid: be_u32(b, 12).ok_or_else(t)?,
            nlink,
            size: be_u64(b, 56).ok_or_else(t)?,
            nblocks: be_u64(b, 64).ok_or_else(t)?,
            flags: be_u16(b, 90).ok_or_else(t)?,
            flags2,
            gen: be_u32(b, 92).ok_or_else(t)?,
            atime: time(32)?,
            mtime: time(40)?,
            ctime: time(48)?,
            crtime: if version == 3 { Some(time(144)?) } else { None },
            nextents,
            anextents,
            forkoff: u8_at(b, 82).ok_or_else(t)?,
            raw: raw.clone(),
        };
        if inode.size > i64::MAX as u64 {
            return Err(bad("size beyond 2^63"));
        }
        if inode.literal_size() < usize::from(inode.forkoff).saturating_mul(8) {
            return Err(bad("attribute fork offset beyond the inode"));
        }
        Ok(inode)
    }

    fn core_size(&self) -> usize {
        if self.version == 3 {
            176
        } else {
            100
        }
    }

    fn literal_size(&self) -> usize {
        self.raw.len().saturating_sub(self.core_size())
    }

    /// The bytes of one fork's area in the inode (XFS_DFORK_DPTR / XFS_DFORK_APTR),
    /// `None` for an attribute fork the inode does not have.
    pub(crate) fn fork_area(&self, fork: Fork) -> Option<&[u8]> {
        let lit = self.raw.get(self.core_size()..)?;
        let split = usize::from(self.forkoff).saturating_mul(8);
        match fork {
            Fork::Data if split == 0 => Some(lit),
            Fork::Data => lit.get(..split),
            Fork::Attr if split == 0 => None,
            Fork::Attr => lit.get(split..),
        }
    }

    pub(crate) fn fork_format(&self, fork: Fork) -> u8 {
        match fork {
            Fork::Data => self.format,
            Fork::Attr => self.aformat,
        }
    }

    pub(crate) fn fork_extents(&self, fork: Fork) -> u64 {
        match fork {
            Fork::Data => self.nextents,
            Fork::Attr => self.anextents,
        }
    }

    pub(crate) fn file_type(&self) -> FileType {
        FileType::from_mode(u32::from(self.mode))
    }

    pub(crate) fn is_realtime(&self) -> bool {
        self.flags & DIFLAG_REALTIME != 0
    }

    /// (major, minor) of a device inode: the data fork holds a Linux dev_t in the
    /// old sysv layout, 14 bits of major above 18 bits of minor (xfs_inode_buf.c
    /// xfs_dinode_get_rdev(), xfs_linux.h sysv_major()/sysv_minor()).
    fn rdev(&self) -> Option<(u32, u32)> {
        if self.format != FMT_DEV {
            return None;
        }
        let raw = be_u32(self.fork_area(Fork::Data)?, 0)?;
        Some(((raw >> 18) & 0x3fff, raw & 0x3ffff))
    }

    pub(crate) fn metadata(&self, block_size: u32) -> Metadata {
        let ft = self.file_type();
        Metadata {
            ino: self.ino,
            mode: u32::from(self.mode),
            file_type: ft,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            nlink: self.nlink,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            crtime: self.crtime,
            flags: u64::from(self.flags) | (self.flags2 << 16),
            rdev: match ft {
                FileType::CharDevice | FileType::BlockDevice => self.rdev(),
                _ => None,
            },
            generation: self.gen,
            blocks: self.nblocks.saturating_mul(u64::from(block_size / 512)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigtime_zero_is_1901() {
        // xfs_format.h: bigtime 0 is 1901-12-13T20:45:52Z = -2^31 Unix seconds.
        assert_eq!(decode_time(0, true).secs, -(1i64 << 31));
    }

    #[test]
    fn classic_negative_seconds() {
        let raw = (u64::from((-5i32) as u32) << 32) | 7;
        assert_eq!(decode_time(raw, false), Timestamp { secs: -5, nanos: 7 });
    }
}
