//! The PV header that follows the label in the same sector.
//!
//! Layout from lvm2's `lib/format_text/layout.h` (`struct pv_header`,
//! `struct disk_locn`, `struct pv_header_extension`) and libyal libvslvm's
//! "Physical volume header" section:
//!
//! | offset | size | field                                                     |
//! |-------:|-----:|-----------------------------------------------------------|
//! |      0 |   32 | `pv_uuid` (32 characters, no dashes)                      |
//! |     32 |    8 | `device_size_xl` in bytes                                 |
//! |     40 | 16×n | data area list: `{offset, size}` pairs ending in a zero pair |
//! |      … | 16×m | metadata area list, also ending in a zero pair           |
//! |      … |    8 | extension (lvm2 ≥ 2.02.110): `version`, `flags`           |
//! |      … | 16×k | bootloader area list ending in a zero pair (version ≥ 1)  |
//!
//! Old lvm2 versions write no extension; the bytes there are then zero, which reads
//! as version 0 (no extension).

use crate::bytes::format_uuid;
use bytesource::field::{le_u32, le_u64, slice_at};

/// One `disk_locn`: a byte range on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskLocn {
    /// Absolute byte offset on the device.
    pub offset: u64,
    /// Size in bytes (0 for a data area means "to the end of the device").
    pub size: u64,
}

/// A parsed PV header.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PvHeader {
    /// The raw 32-character uuid.
    pub uuid_raw: [u8; 32],
    /// `device_size_xl`.
    pub device_size: u64,
    /// Data areas (normally one; its offset is `pe_start`).
    pub data_areas: Vec<DiskLocn>,
    /// Metadata areas (0, 1 or 2).
    pub metadata_areas: Vec<DiskLocn>,
    /// Extension version (0 when absent).
    pub ext_version: u32,
    /// Extension flags (`PV_EXT_USED` = 1).
    pub ext_flags: u32,
    /// Bootloader areas from the extension.
    pub bootloader_areas: Vec<DiskLocn>,
}

impl PvHeader {
    /// The uuid as lvm prints it (6-4-4-4-4-4-6).
    pub fn uuid(&self) -> String {
        format_uuid(&self.uuid_raw)
    }
}

/// Reads a zero-terminated `disk_locn` list at `*pos`, advancing it past the
/// terminator. The list may not run past the end of `buf`.
fn read_list(buf: &[u8], pos: &mut usize, what: &str) -> Result<Vec<DiskLocn>, String> {
    let mut out = Vec::new();
    // At most one entry per 16 bytes of the sector: the loop is bounded by `buf`.
    loop {
        let offset = le_u64(buf, *pos)
            .ok_or_else(|| format!("{what} list runs past the end of the label sector"))?;
        let size = le_u64(buf, pos.saturating_add(8))
            .ok_or_else(|| format!("{what} list runs past the end of the label sector"))?;
        *pos = pos.saturating_add(16);
        if offset == 0 {
            // lvm2 ends the list at the first entry with offset 0 (`dlocn_xl->offset`).
            return Ok(out);
        }
        out.push(DiskLocn { offset, size });
    }
}

/// Parses the PV header found at `offset` inside the 512-byte label sector `sector`.
pub fn parse_pv_header(sector: &[u8], offset: usize) -> Result<PvHeader, String> {
    let buf = sector
        .get(offset..)
        .ok_or_else(|| "PV header offset is outside the label sector".to_string())?;
    let mut uuid_raw = [0u8; 32];
    uuid_raw
        .copy_from_slice(slice_at(buf, 0, 32).ok_or_else(|| "PV header is cut short".to_string())?);
    if !uuid_raw.iter().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "PV uuid {:?} has characters lvm2 never writes",
            String::from_utf8_lossy(&uuid_raw)
        ));
    }
    let device_size = le_u64(buf, 32).ok_or_else(|| "PV header is cut short".to_string())?;
    let mut pos = 40usize;
    let data_areas = read_list(buf, &mut pos, "data area")?;
    let metadata_areas = read_list(buf, &mut pos, "metadata area")?;
    // The extension is optional: if it does not fit, it is absent.
    let (ext_version, ext_flags, bootloader_areas) =
        match (le_u32(buf, pos), le_u32(buf, pos.saturating_add(4))) {
            (Some(v), Some(f)) if v != 0 => {
                let mut p = pos.saturating_add(8);
                let boot = read_list(buf, &mut p, "bootloader area").unwrap_or_default();
                (v, f, boot)
            }
            _ => (0, 0, Vec::new()),
        };
    Ok(PvHeader {
        uuid_raw,
        device_size,
        data_areas,
        metadata_areas,
        ext_version,
        ext_flags,
        bootloader_areas,
    })
}
