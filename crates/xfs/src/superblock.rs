//! The XFS superblock (`struct xfs_dsb`, fs/xfs/libxfs/xfs_format.h; "XFS
//! Algorithms & Data Structures", chapter "Superblocks"), big-endian, at byte 0 of
//! AG 0. Parsed and validated here, with the feature bits and the geometry the rest
//! of the reader needs (inode number and filesystem block number layout).

use fsapi::Error;

use crate::bytes::cstr;
use crate::crc;
use bytesource::field::{be_u16, be_u32, be_u64, u8_at};

/// "XFSB" (XFS_SB_MAGIC).
pub(crate) const SB_MAGIC: u32 = 0x5846_5342;

// sb_versionnum bits (xfs_format.h XFS_SB_VERSION_*).
const V_NUMBITS: u16 = 0x000f;
const V_ATTR: u16 = 0x0010;
const V_NLINK: u16 = 0x0020;
const V_QUOTA: u16 = 0x0040;
const V_ALIGN: u16 = 0x0080;
const V_DALIGN: u16 = 0x0100;
const V_LOGV2: u16 = 0x0400;
const V_SECTOR: u16 = 0x0800;
const V_EXTFLG: u16 = 0x1000;
const V_DIRV2: u16 = 0x2000;
const V_MOREBITS: u16 = 0x8000;

// sb_features2 (XFS_SB_VERSION2_*).
const F2_LAZYSBCOUNT: u32 = 0x0002;
const F2_ATTR2: u32 = 0x0008;
const F2_PROJID32: u32 = 0x0080;
const F2_CRC: u32 = 0x0100;
const F2_FTYPE: u32 = 0x0200;

// V5 feature words (XFS_SB_FEAT_*).
const RO_FINOBT: u32 = 1 << 0;
const RO_RMAPBT: u32 = 1 << 1;
const RO_REFLINK: u32 = 1 << 2;
const RO_INOBTCNT: u32 = 1 << 3;
const IN_FTYPE: u32 = 1 << 0;
const IN_SPINODES: u32 = 1 << 1;
const IN_META_UUID: u32 = 1 << 2;
const IN_BIGTIME: u32 = 1 << 3;
const IN_NEEDSREPAIR: u32 = 1 << 4;
const IN_NREXT64: u32 = 1 << 5;
const IN_EXCHRANGE: u32 = 1 << 6;
const IN_PARENT: u32 = 1 << 7;
const IN_METADIR: u32 = 1 << 8;
/// Incompat bits this reader understands; anything else is refused (a V5
/// filesystem with an unknown incompat feature cannot be read safely, as the
/// kernel's xfs_sb_has_incompat_feature() check says).
const IN_KNOWN: u32 = IN_FTYPE
    | IN_SPINODES
    | IN_META_UUID
    | IN_BIGTIME
    | IN_NEEDSREPAIR
    | IN_NREXT64
    | IN_EXCHRANGE
    | IN_PARENT;

/// Offset of sb_crc (xfs_format.h XFS_SB_CRC_OFF).
const SB_CRC_OFF: usize = 224;

/// The superblock fields this reader uses.
#[derive(Clone, Debug)]
pub(crate) struct Superblock {
    pub block_size: u32,
    pub block_log: u8,
    pub dblocks: u64,
    pub rblocks: u64,
    pub uuid: [u8; 16],
    /// The UUID stamped into V5 metadata headers (sb_meta_uuid when META_UUID is
    /// set, else sb_uuid).
    pub meta_uuid: [u8; 16],
    pub logstart: u64,
    pub rootino: u64,
    pub agblocks: u32,
    pub agcount: u32,
    pub logblocks: u32,
    pub versionnum: u16,
    pub sect_size: u16,
    pub inode_size: u16,
    pub label: String,
    pub inopblog: u8,
    pub agblklog: u8,
    pub icount: u64,
    pub ifree: u64,
    pub fdblocks: u64,
    pub dirblklog: u8,
    pub logsectsize: u16,
    pub logsunit: u32,
    pub features2: u32,
    pub ro_compat: u32,
    pub incompat: u32,
    pub log_incompat: u32,
    pub inprogress: u8,
    pub crc_ok: bool,
}

fn err(detail: impl Into<String>) -> Error {
    Error::corrupt_at("XFS superblock", 0, detail)
}

fn uuid_at(b: &[u8], off: usize) -> Option<[u8; 16]> {
    b.get(off..)?.first_chunk::<16>().copied()
}

/// Integer log2 of a power of two, `None` otherwise.
fn log2_exact(v: u32) -> Option<u8> {
    if v.is_power_of_two() {
        u8::try_from(v.trailing_zeros()).ok()
    } else {
        None
    }
}

impl Superblock {
    /// Parses the superblock sector `b` (at least 512 bytes, `sb_sectsize` when
    /// the caller could read that much, for the CRC).
    pub(crate) fn parse(b: &[u8]) -> Result<Superblock, Error> {
        let f32 = |o| be_u32(b, o).ok_or_else(|| err("superblock is truncated"));
        let f64 = |o| be_u64(b, o).ok_or_else(|| err("superblock is truncated"));
        let f16 = |o| be_u16(b, o).ok_or_else(|| err("superblock is truncated"));
        let f8 = |o| u8_at(b, o).ok_or_else(|| err("superblock is truncated"));
        if f32(0)? != SB_MAGIC {
            return Err(err("no XFSB magic"));
        }
        let versionnum = f16(100)?;
        let version = versionnum & V_NUMBITS;
        if version != 4 && version != 5 {
            return Err(Error::unsupported(
                "XFS superblock",
                format!("superblock version {version} (only 4 and 5 are read)"),
            ));
        }
        let v5 = version == 5;
        let uuid = uuid_at(b, 32).ok_or_else(|| err("superblock is truncated"))?;
        let (ro_compat, incompat, log_incompat) = if v5 {
            (f32(212)?, f32(216)?, f32(220)?)
        } else {
            (0, 0, 0)
        };
        let meta_uuid = if v5 && incompat & IN_META_UUID != 0 {
            uuid_at(b, 248).ok_or_else(|| err("superblock is truncated"))?
        } else {
            uuid
        };
        let sb = Superblock {
            block_size: f32(4)?,
            block_log: f8(120)?,
            dblocks: f64(8)?,
            rblocks: f64(16)?,
            uuid,
            meta_uuid,
            logstart: f64(48)?,
            rootino: f64(56)?,
            agblocks: f32(84)?,
            agcount: f32(88)?,
            logblocks: f32(96)?,
            versionnum,
            sect_size: f16(102)?,
            inode_size: f16(104)?,
            label: cstr(b.get(108..120).unwrap_or_default()),
            inopblog: f8(123)?,
            agblklog: f8(124)?,
            icount: f64(128)?,
            ifree: f64(136)?,
            fdblocks: f64(144)?,
            dirblklog: f8(192)?,
            logsectsize: f16(194)?,
            logsunit: f32(196)?,
            features2: if versionnum & V_MOREBITS != 0 {
                f32(200)?
            } else {
                0
            },
            ro_compat,
            incompat,
            log_incompat,
            inprogress: f8(126)?,
            crc_ok: !v5 || crc::verify(b, SB_CRC_OFF),
        };
        sb.validate()?;
        Ok(sb)
    }

    /// Geometry checks (xfs_sb.c xfs_validate_sb_common()): everything later code
    /// shifts or multiplies by is bounded here.
    fn validate(&self) -> Result<(), Error> {
        let blog = log2_exact(self.block_size)
            .filter(|l| (9..=16).contains(l) && *l == self.block_log)
            .ok_or_else(|| err(format!("bad block size {}", self.block_size)))?;
        let ilog = log2_exact(u32::from(self.inode_size))
            .filter(|l| (8..=11).contains(l) && *l <= blog)
            .ok_or_else(|| err(format!("bad inode size {}", self.inode_size)))?;
        if u32::from(self.inopblog) != u32::from(blog).saturating_sub(u32::from(ilog)) {
            return Err(err(format!("inopblog {} does not match", self.inopblog)));
        }
        if log2_exact(u32::from(self.sect_size)).is_none_or(|l| !(9..=15).contains(&l)) {
            return Err(err(format!("bad sector size {}", self.sect_size)));
        }
        if self.agcount == 0 || self.agblocks < 2 {
            return Err(err("no allocation groups"));
        }
        // agblklog is log2 of agblocks rounded up (xfs_highbit32(agblocks - 1) + 1).
        let want = 32u32.saturating_sub(self.agblocks.saturating_sub(1).leading_zeros());
        if u32::from(self.agblklog) != want {
            return Err(err(format!(
                "agblklog {} does not match agblocks",
                self.agblklog
            )));
        }
        if u32::from(self.agblklog).saturating_add(u32::from(self.inopblog)) > 56 {
            return Err(err("inode number layout too large"));
        }
        let max = u64::from(self.agcount).saturating_mul(u64::from(self.agblocks));
        if self.dblocks == 0 || self.dblocks > max {
            return Err(err(format!("dblocks {} outside the AGs", self.dblocks)));
        }
        if u32::from(blog).saturating_add(u32::from(self.dirblklog)) > 16 {
            return Err(err(format!(
                "directory block log {} too large",
                self.dirblklog
            )));
        }
        if self.is_v5() && self.incompat & !IN_KNOWN != 0 {
            return Err(Error::unsupported(
                "XFS superblock",
                format!("incompatible features {:#x}", self.incompat & !IN_KNOWN),
            ));
        }
        Ok(())
    }

    pub(crate) fn is_v5(&self) -> bool {
        self.versionnum & V_NUMBITS == 5
    }

    pub(crate) fn has_ftype(&self) -> bool {
        if self.is_v5() {
            self.incompat & IN_FTYPE != 0
        } else {
            self.features2 & F2_FTYPE != 0
        }
    }

    pub(crate) fn has_nlink(&self) -> bool {
        self.is_v5() || self.versionnum & V_NLINK != 0
    }

    pub(crate) fn log_version(&self) -> u32 {
        if self.is_v5() || self.versionnum & V_LOGV2 != 0 {
            2
        } else {
            1
        }
    }

    /// Directory block size in bytes (blocksize << sb_dirblklog), at most 64 KiB.
    pub(crate) fn dir_block_size(&self) -> u32 {
        self.block_size << self.dirblklog.min(7)
    }

    /// Feature names as `xfs_info` / `mkfs.xfs` print them (the ones set).
    pub(crate) fn feature_names(&self) -> Vec<String> {
        let mut v: Vec<&str> = Vec::new();
        let vn = self.versionnum;
        // V5 always has these versionnum bits; xfs_info shows them only for V4.
        let v4 = !self.is_v5();
        let f2 = self.features2;
        let pairs: [(bool, &str); 26] = [
            (self.is_v5() || f2 & F2_CRC != 0, "crc"),
            (self.has_ftype(), "ftype"),
            (self.ro_compat & RO_FINOBT != 0, "finobt"),
            (self.incompat & IN_SPINODES != 0, "sparse"),
            (self.ro_compat & RO_RMAPBT != 0, "rmapbt"),
            (self.ro_compat & RO_REFLINK != 0, "reflink"),
            (self.incompat & IN_BIGTIME != 0, "bigtime"),
            (self.ro_compat & RO_INOBTCNT != 0, "inobtcount"),
            (self.incompat & IN_NREXT64 != 0, "nrext64"),
            (self.incompat & IN_META_UUID != 0, "meta_uuid"),
            (self.incompat & IN_NEEDSREPAIR != 0, "needsrepair"),
            (self.incompat & IN_EXCHRANGE != 0, "exchange"),
            (self.incompat & IN_PARENT != 0, "parent"),
            (self.incompat & IN_METADIR != 0, "metadir"),
            (self.is_v5() || f2 & F2_ATTR2 != 0, "attr2"),
            (self.is_v5() || f2 & F2_LAZYSBCOUNT != 0, "lazy-count"),
            (self.is_v5() || f2 & F2_PROJID32 != 0, "projid32bit"),
            (self.log_version() == 2, "logv2"),
            (v4 && vn & V_ATTR != 0, "attr"),
            (!self.is_v5() && self.has_nlink(), "nlink"),
            (v4 && vn & V_QUOTA != 0, "quota"),
            (v4 && vn & V_ALIGN != 0, "align"),
            (v4 && vn & V_DALIGN != 0, "dalign"),
            (v4 && vn & V_EXTFLG != 0, "extflg"),
            (v4 && vn & V_SECTOR != 0, "sector"),
            (v4 && vn & V_DIRV2 != 0, "dirv2"),
        ];
        for (on, name) in pairs {
            if on {
                v.push(name);
            }
        }
        if self.log_incompat & 1 != 0 {
            v.push("log_incompat_xattrs");
        }
        v.into_iter().map(String::from).collect()
    }

    /// Byte offset of filesystem block `fsb` (AG number in the bits above
    /// sb_agblklog, xfs_format.h XFS_FSB_TO_DADDR), `None` when outside the AGs.
    pub(crate) fn fsb_to_byte(&self, fsb: u64) -> Option<u64> {
        let agno = fsb.checked_shr(u32::from(self.agblklog))?;
        let agbno = fsb & (1u64 << self.agblklog).checked_sub(1)?;
        if agno >= u64::from(self.agcount) || agbno >= u64::from(self.agblocks) {
            return None;
        }
        let lin = agno
            .checked_mul(u64::from(self.agblocks))?
            .checked_add(agbno)?;
        if lin >= self.dblocks {
            return None;
        }
        lin.checked_mul(u64::from(self.block_size))
    }

    /// Byte offset of inode `ino`: AG number above `agblklog + inopblog` bits,
    /// then the AG block and the slot in it (xfs_format.h XFS_INO_TO_AGNO etc.).
    pub(crate) fn ino_to_byte(&self, ino: u64) -> Option<u64> {
        let bits = u32::from(self.agblklog).checked_add(u32::from(self.inopblog))?;
        let agno = ino.checked_shr(bits)?;
        let agino = ino & (1u64 << bits).checked_sub(1)?;
        let agbno = agino >> self.inopblog;
        let slot = agino & (1u64 << self.inopblog).checked_sub(1)?;
        if agno >= u64::from(self.agcount) || agbno >= u64::from(self.agblocks) {
            return None;
        }
        let fsb = (agno << self.agblklog) | agbno;
        self.fsb_to_byte(fsb)?
            .checked_add(slot.checked_mul(u64::from(self.inode_size))?)
    }
}
