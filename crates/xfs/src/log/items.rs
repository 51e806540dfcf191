//! Log item formats: what region 0 of each item says (libxfs/xfs_log_format.h).
//!
//! Item format structures are written in host byte order; [`super::record`] only
//! accepts records whose `h_fmt` is little-endian Linux, so they are read LE here.
//! The exceptions are noted: `xfs_icreate_log` is big-endian, and logged buffer
//! contents, dquots and inode forks are in on-disk (big-endian) format, while the
//! logged inode core (`xfs_log_dinode`) is host order.

use super::transaction::RawItem;
use bytesource::field;

pub(crate) const XFS_LI_EFI: u16 = 0x1236;
pub(crate) const XFS_LI_EFD: u16 = 0x1237;
pub(crate) const XFS_LI_IUNLINK: u16 = 0x1238;
pub(crate) const XFS_LI_INODE: u16 = 0x123b;
pub(crate) const XFS_LI_BUF: u16 = 0x123c;
pub(crate) const XFS_LI_DQUOT: u16 = 0x123d;
pub(crate) const XFS_LI_QUOTAOFF: u16 = 0x123e;
pub(crate) const XFS_LI_ICREATE: u16 = 0x123f;
pub(crate) const XFS_LI_RUI: u16 = 0x1240;
pub(crate) const XFS_LI_RUD: u16 = 0x1241;
pub(crate) const XFS_LI_CUI: u16 = 0x1242;
pub(crate) const XFS_LI_CUD: u16 = 0x1243;
pub(crate) const XFS_LI_BUI: u16 = 0x1244;
pub(crate) const XFS_LI_BUD: u16 = 0x1245;
pub(crate) const XFS_LI_ATTRI: u16 = 0x1246;
pub(crate) const XFS_LI_ATTRD: u16 = 0x1247;
pub(crate) const XFS_LI_XMI: u16 = 0x1248;
pub(crate) const XFS_LI_XMD: u16 = 0x1249;

/// `blf_flags` bits.
pub(crate) const XFS_BLF_INODE_BUF: u16 = 1 << 0;
pub(crate) const XFS_BLF_CANCEL: u16 = 1 << 1;
pub(crate) const XFS_BLF_DQUOT_BUFS: u16 = (1 << 2) | (1 << 3) | (1 << 4);
/// `XFS_BLF_DATAMAP_SIZE`: (XFS_MAX_BLOCKSIZE / XFS_BLF_CHUNK) / NBWORD + 1.
const BLF_DATAMAP_SIZE: usize = 65536 / 128 / 32 + 1;
/// `XFS_BLF_CHUNK`.
pub(crate) const XFS_BLF_CHUNK: usize = 128;

/// `XFS_ILOG_*` field bits.
pub(crate) const XFS_ILOG_CORE: u32 = 0x001;
pub(crate) const XFS_ILOG_DDATA: u32 = 0x002;
pub(crate) const XFS_ILOG_DEXT: u32 = 0x004;
pub(crate) const XFS_ILOG_DBROOT: u32 = 0x008;
pub(crate) const XFS_ILOG_DEV: u32 = 0x010;
pub(crate) const XFS_ILOG_ADATA: u32 = 0x040;
pub(crate) const XFS_ILOG_AEXT: u32 = 0x080;
pub(crate) const XFS_ILOG_ABROOT: u32 = 0x100;
/// `XFS_ILOG_DOWNER | XFS_ILOG_AOWNER`: change the fork's bmbt owner on replay.
pub(crate) const XFS_ILOG_OWNERS: u32 = 0x200 | 0x400;
pub(crate) const XFS_ILOG_DFORK: u32 = XFS_ILOG_DDATA | XFS_ILOG_DEXT | XFS_ILOG_DBROOT;
pub(crate) const XFS_ILOG_AFORK: u32 = XFS_ILOG_ADATA | XFS_ILOG_AEXT | XFS_ILOG_ABROOT;

/// `xfs_buf_log_format`.
#[derive(Debug)]
pub(crate) struct BufItem {
    pub flags: u16,
    pub len_bb: u16,
    pub blkno: u64,
    pub map: Vec<u32>,
    pub regions: Vec<Vec<u8>>,
}

impl BufItem {
    /// The buffer type (`xfs_blft_from_flags`).
    pub(crate) fn blft(&self) -> u16 {
        (self.flags >> 11) & 0x1f
    }
}

/// `xfs_inode_log_format` (64- or 32-bit layout) plus its regions.
#[derive(Debug)]
pub(crate) struct InodeItem {
    pub size: u16,
    pub fields: u32,
    pub ino: u64,
    pub rdev: u32,
    pub blkno: u64,
    pub len_bb: u32,
    pub boffset: u32,
    pub regions: Vec<Vec<u8>>,
}

/// `xfs_icreate_log` (big-endian fields).
#[derive(Debug)]
pub(crate) struct IcreateItem {
    pub ag: u32,
    pub agbno: u32,
    pub count: u32,
    pub isize: u32,
    pub length: u32,
    pub gen: u32,
}

/// A parsed item.
#[derive(Debug)]
pub(crate) enum Item {
    Buf(BufItem),
    Inode(InodeItem),
    Icreate(IcreateItem),
    Dquot,
    QuotaOff,
    /// An intent (EFI, RUI, CUI, BUI, ATTRI, XMI) and its id.
    Intent {
        kind: u16,
        id: u64,
    },
    /// A done item and the id of the intent it finishes.
    Done {
        kind: u16,
        id: u64,
    },
}

/// The name of an intent type, for warnings.
pub(crate) fn intent_name(kind: u16) -> &'static str {
    match kind {
        XFS_LI_EFI => "extent-free intent (EFI)",
        XFS_LI_RUI => "reverse-mapping update intent (RUI)",
        XFS_LI_CUI => "refcount update intent (CUI)",
        XFS_LI_BUI => "block-mapping update intent (BUI)",
        XFS_LI_ATTRI => "extended-attribute intent (ATTRI)",
        XFS_LI_XMI => "file-mapping exchange intent (XMI)",
        _ => "intent",
    }
}

/// The intent a done item finishes.
pub(crate) fn done_to_intent(kind: u16) -> u16 {
    match kind {
        XFS_LI_EFD => XFS_LI_EFI,
        XFS_LI_RUD => XFS_LI_RUI,
        XFS_LI_CUD => XFS_LI_CUI,
        XFS_LI_BUD => XFS_LI_BUI,
        XFS_LI_ATTRD => XFS_LI_ATTRI,
        XFS_LI_XMD => XFS_LI_XMI,
        other => other,
    }
}

/// Item type name for the summary.
pub(crate) fn type_name(kind: u16) -> &'static str {
    match kind {
        XFS_LI_BUF => "buffer",
        XFS_LI_INODE => "inode",
        XFS_LI_ICREATE => "icreate",
        XFS_LI_DQUOT => "dquot",
        XFS_LI_QUOTAOFF => "quotaoff",
        XFS_LI_EFI => "EFI",
        XFS_LI_EFD => "EFD",
        XFS_LI_RUI => "RUI",
        XFS_LI_RUD => "RUD",
        XFS_LI_CUI => "CUI",
        XFS_LI_CUD => "CUD",
        XFS_LI_BUI => "BUI",
        XFS_LI_BUD => "BUD",
        XFS_LI_ATTRI => "ATTRI",
        XFS_LI_ATTRD => "ATTRD",
        XFS_LI_XMI => "XMI",
        XFS_LI_XMD => "XMD",
        _ => "unknown",
    }
}

/// Parses one item; `Err` is the kernel's "unrecognized type of log operation" or a
/// malformed format structure.
pub(crate) fn parse(raw: &RawItem) -> Result<(u16, Item), String> {
    let r0 = raw.regions.first().ok_or("item without regions")?;
    if raw.regions.len() != raw.total {
        return Err(format!(
            "item has {} of its {} regions",
            raw.regions.len(),
            raw.total
        ));
    }
    // Each arm checks its format structure's length before reading it; a field
    // outside the region is still an error naming its offset, never a zero.
    let short = |at: usize| {
        format!(
            "log item format: field at byte {at} outside its {} bytes",
            r0.len()
        )
    };
    let l16 = |at: usize| field::le_u16(r0, at).ok_or_else(|| short(at));
    let l32 = |at: usize| field::le_u32(r0, at).ok_or_else(|| short(at));
    let l64 = |at: usize| field::le_u64(r0, at).ok_or_else(|| short(at));
    let b32 = |at: usize| field::be_u32(r0, at).ok_or_else(|| short(at));
    let kind = l16(0)?;
    let item = match kind {
        XFS_LI_BUF => {
            // xfs_buf_log_check_iovec
            if r0.len() < 20 {
                return Err(format!("buffer log item too short ({} bytes)", r0.len()));
            }
            let map_size = usize::try_from(l32(16)?).unwrap_or(usize::MAX);
            if map_size == 0
                || map_size > BLF_DATAMAP_SIZE
                || r0.len() < 20usize.saturating_add(map_size.saturating_mul(4))
            {
                return Err(format!("buffer log item has bad map size {map_size}"));
            }
            let map = (0..map_size)
                .map(|i| l32(20usize.saturating_add(i.saturating_mul(4))))
                .collect::<Result<Vec<u32>, String>>()?;
            Item::Buf(BufItem {
                flags: l16(4)?,
                len_bb: l16(6)?,
                blkno: l64(8)?,
                map,
                regions: raw.regions.get(1..).unwrap_or_default().to_vec(),
            })
        }
        XFS_LI_INODE => {
            // xfs_inode_log_format (56 bytes) or its packed 32-bit form (52).
            let (ino, u, blkno) = match r0.len() {
                56 => (16, 24, 40),
                52 => (12, 20, 36),
                n => return Err(format!("inode log item has bad size {n}")),
            };
            let it = InodeItem {
                size: l16(2)?,
                fields: l32(4)?,
                ino: l64(ino)?,
                rdev: l32(u)?,
                blkno: l64(blkno)?,
                len_bb: l32(blkno.saturating_add(8))?,
                boffset: l32(blkno.saturating_add(12))?,
                regions: raw.regions.get(1..).unwrap_or_default().to_vec(),
            };
            if it.regions.is_empty() || it.size < 2 || it.size > 4 {
                return Err(format!("inode {} log item has {} regions", it.ino, it.size));
            }
            Item::Inode(it)
        }
        XFS_LI_ICREATE => {
            if r0.len() < 28 {
                return Err("icreate log item too short".into());
            }
            Item::Icreate(IcreateItem {
                ag: b32(4)?,
                agbno: b32(8)?,
                count: b32(12)?,
                isize: b32(16)?,
                length: b32(20)?,
                gen: b32(24)?,
            })
        }
        XFS_LI_DQUOT => Item::Dquot,
        XFS_LI_QUOTAOFF => Item::QuotaOff,
        XFS_LI_EFI | XFS_LI_RUI | XFS_LI_CUI | XFS_LI_BUI | XFS_LI_ATTRI | XFS_LI_XMI => {
            if r0.len() < 16 {
                return Err(format!("{} log item too short", type_name(kind)));
            }
            Item::Intent { kind, id: l64(8)? }
        }
        XFS_LI_EFD | XFS_LI_RUD | XFS_LI_CUD | XFS_LI_BUD | XFS_LI_ATTRD | XFS_LI_XMD => {
            if r0.len() < 16 {
                return Err(format!("{} log item too short", type_name(kind)));
            }
            Item::Done { kind, id: l64(8)? }
        }
        XFS_LI_IUNLINK => return Err("obsolete IUNLINK log item".into()),
        other => return Err(format!("unrecognized type of log operation {other:#x}")),
    };
    Ok((kind, item))
}
