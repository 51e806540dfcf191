//! ESX `COWD` sparse extents (VMFSSPARSE, the `-delta.vmdk` of an ESX snapshot).
//!
//! Layout from qemu `block/vmdk.c` (`VMDK3Header`, `vmdk_open_vmfs_sparse`) and libyal
//! libvmdk "COWD sparse extent file header", little-endian:
//!
//! ```text
//!  0 magic 'COWD'   4 version u32 (1)   8 flags u32         12 numSectors u32
//! 16 grainSize u32 (sectors)           20 gdOffset u32 (sector)
//! 24 numGDEntries u32                  28 freeSector u32
//! ```
//!
//! Each grain table holds 4096 32-bit sector numbers; 0 is an unallocated grain (read
//! from the parent).

use crate::error::need;
use crate::grain::{open_dir, DirEncoding, Directory, Flavor, GrainMap, MAX_GRAIN_SECTORS};
use crate::Error;
use bytesource::field::le_u32;
use bytesource::SharedSource;

/// `COWD` read as a little-endian u32.
pub(crate) const MAGIC: u32 = 0x4457_4f43;
/// Entries per grain table (fixed by the format).
pub(crate) const GT_ENTRIES: u64 = 4096;

/// Opens a `COWD` file.
pub(crate) fn open(file: SharedSource, name: &str) -> Result<GrainMap, Error> {
    let mut b = [0u8; 512];
    if file.len() < 512 {
        return Err(Error::corrupt(
            name,
            format!("{} bytes is too short for a COWD header", file.len()),
        ));
    }
    file.read_at(0, &mut b).map_err(|e| Error::io(name, e))?;
    let u32_at = |off: usize| need(le_u32(&b, off), name, "COWD header", 0, off);
    if u32_at(0)? != MAGIC {
        return Err(Error::corrupt(name, "no COWD magic at byte 0"));
    }
    let version = u32_at(4)?;
    if version != 1 {
        return Err(Error::unsupported(
            name,
            format!("COWD version {version} (only 1 is known)"),
        ));
    }
    let sectors = u64::from(u32_at(12)?);
    let grain_sectors = u64::from(u32_at(16)?);
    let gd_sector = u64::from(u32_at(20)?);
    let gd_entries = u64::from(u32_at(24)?);
    if grain_sectors == 0 || grain_sectors > MAX_GRAIN_SECTORS {
        return Err(Error::corrupt(
            name,
            format!(
                "COWD grain size of {grain_sectors} sectors (1 to {MAX_GRAIN_SECTORS} are sane)"
            ),
        ));
    }
    let grain = grain_sectors.saturating_mul(512);
    let len = sectors.saturating_mul(512);
    // Directory entries beyond what the capacity needs are never consulted.
    let needed = len.div_ceil(grain.saturating_mul(GT_ENTRIES));
    let gd_entries = gd_entries.min(needed);
    let dir = open_dir(
        &file,
        name,
        "COWD grain directory",
        gd_sector.saturating_mul(512),
        gd_entries,
        4,
        DirEncoding::Sector,
        GT_ENTRIES.saturating_mul(4),
        None,
    )?;
    Ok(GrainMap::new(
        file,
        name.to_string(),
        len,
        grain,
        GT_ENTRIES,
        4,
        Directory::OnDisk(dir),
        Flavor::Cowd,
    ))
}
