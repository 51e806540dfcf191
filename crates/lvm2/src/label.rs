//! The LVM label: one 512-byte sector among the first four of a device.
//!
//! Layout from lvm2's `lib/label/label.h` (`struct label_header`) and libyal
//! libvslvm's "Logical Volume Manager (LVM) format" document, section
//! "Physical volume label":
//!
//! | offset | size | field                                          |
//! |-------:|-----:|------------------------------------------------|
//! |      0 |    8 | `id` = "LABELONE"                              |
//! |      8 |    8 | `sector_xl`: the sector number of this label   |
//! |     16 |    4 | `crc_xl`: checksum of bytes 20..512            |
//! |     20 |    4 | `offset_xl`: where the PV header starts        |
//! |     24 |    8 | `type` = "LVM2 001"                            |
//!
//! lvm2 scans sectors 0..4 (`LABEL_SCAN_SECTORS`) and accepts a sector only when
//! its `sector_xl` matches where it was found (`label.c: _find_lvm_header`).

use crate::crc::{calc_crc, INITIAL_CRC};
use bytesource::field::{le_u32, le_u64, slice_at};

/// Sector size lvm2 uses for the label and headers (`SECTOR_SIZE`).
pub const SECTOR_SIZE: usize = 512;
/// Number of sectors scanned for a label (`LABEL_SCAN_SECTORS`).
pub const LABEL_SCAN_SECTORS: u64 = 4;
/// `LABEL_ID`.
pub const LABEL_ID: &[u8; 8] = b"LABELONE";
/// `LVM2_LABEL` (the label type this crate reads).
pub const LVM2_LABEL: &[u8; 8] = b"LVM2 001";

/// A validated label header.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Label {
    /// Sector (0..4) the label was found in.
    pub sector: u64,
    /// `offset_xl`: offset of the PV header inside the label sector.
    pub offset_xl: u32,
    /// `type`, normally "LVM2 001".
    pub label_type: [u8; 8],
}

/// Why a sector that starts with `LABELONE` was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LabelProblem {
    /// No `LABELONE` magic: not a label at all.
    NoMagic,
    /// The sector number field disagrees with where the sector was found.
    WrongSector(u64),
    /// `crc_xl` does not match.
    BadCrc {
        /// Stored value.
        stored: u32,
        /// Computed value.
        computed: u32,
    },
    /// `offset_xl` points outside the sector or into the label header.
    BadOffset(u32),
    /// The label type is not "LVM2 001".
    WrongType([u8; 8]),
}

impl std::fmt::Display for LabelProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabelProblem::NoMagic => write!(f, "no LABELONE"),
            LabelProblem::WrongSector(s) => write!(f, "label claims to be in sector {s}"),
            LabelProblem::BadCrc { stored, computed } => write!(
                f,
                "bad CRC (stored {stored:#010x}, computed {computed:#010x})"
            ),
            LabelProblem::BadOffset(o) => write!(f, "PV header offset {o} is outside the sector"),
            LabelProblem::WrongType(t) => {
                write!(
                    f,
                    "label type {:?} is not LVM2 001",
                    String::from_utf8_lossy(t)
                )
            }
        }
    }
}

/// Parses one 512-byte sector found at sector number `sector`.
pub fn parse_label(buf: &[u8], sector: u64) -> Result<Label, LabelProblem> {
    if buf.len() < SECTOR_SIZE || slice_at(buf, 0, 8) != Some(&LABEL_ID[..]) {
        return Err(LabelProblem::NoMagic);
    }
    let sector_xl = le_u64(buf, 8).ok_or(LabelProblem::NoMagic)?;
    if sector_xl != sector {
        return Err(LabelProblem::WrongSector(sector_xl));
    }
    let stored = le_u32(buf, 16).ok_or(LabelProblem::NoMagic)?;
    let covered = buf.get(20..SECTOR_SIZE).ok_or(LabelProblem::NoMagic)?;
    let computed = calc_crc(INITIAL_CRC, covered);
    if stored != computed {
        return Err(LabelProblem::BadCrc { stored, computed });
    }
    let offset_xl = le_u32(buf, 20).ok_or(LabelProblem::NoMagic)?;
    // The PV header follows the 32-byte label header and must hold at least its uuid
    // and device size.
    if !(32..=SECTOR_SIZE.saturating_sub(40))
        .contains(&usize::try_from(offset_xl).unwrap_or(usize::MAX))
    {
        return Err(LabelProblem::BadOffset(offset_xl));
    }
    let mut label_type = [0u8; 8];
    label_type.copy_from_slice(slice_at(buf, 24, 8).ok_or(LabelProblem::NoMagic)?);
    if &label_type != LVM2_LABEL {
        return Err(LabelProblem::WrongType(label_type));
    }
    Ok(Label {
        sector,
        offset_xl,
        label_type,
    })
}
