//! SESparse extents (`-sesparse.vmdk`, ESXi 6.5+ snapshots and large-disk deltas).
//!
//! The format is not officially documented; the layout follows qemu `block/vmdk.c`
//! (`VMDKSESparseConstHeader`, `vmdk_open_se_sparse`, `get_cluster_offset`). All
//! fields are little-endian u64, offsets and sizes in sectors:
//!
//! ```text
//! const header (sector 0):  0 magic 0xcafebabe   8 version 0x200000001
//!   16 capacity  24 grain_size (8)  32 grain_table_size (64)  40 flags
//!   80 volatile_header_offset  ...  128 grain_dir_offset  136 grain_dir_size
//!   144 grain_tables_offset  152 grain_tables_size  ...  192 grains_offset
//! volatile header: 0 magic 0xcafecafe ... 24 replay_journal
//! ```
//!
//! A grain directory entry is 0 (no table) or `0x10000000_<table number>`; a grain
//! table entry's top nibble is 0 (unallocated), 1 (unmapped) or 2 (zero), or 3
//! (allocated: grain number = bits 48..59 | bits 0..47 << 12). The journal is not
//! replayed: an image whose volatile header asks for replay is read with a warning.

use crate::error::need;
use crate::grain::{open_dir, DirEncoding, Directory, Flavor, GrainMap, MAX_GRAIN_SECTORS};
use crate::Error;
use bytesource::field::le_u64;
use bytesource::SharedSource;

/// Const header magic, as the first 8 bytes read little-endian.
pub(crate) const MAGIC: u64 = 0xcafe_babe;
const VOLATILE_MAGIC: u64 = 0xcafe_cafe;
const VERSION: u64 = 0x0000_0002_0000_0001;

/// Opens an SESparse file; returns the map and any warnings.
pub(crate) fn open(file: SharedSource, name: &str) -> Result<(GrainMap, Vec<String>), Error> {
    let mut warnings = Vec::new();
    if file.len() < 512 {
        return Err(Error::corrupt(
            name,
            format!("{} bytes is too short for an SESparse header", file.len()),
        ));
    }
    let mut b = [0u8; 512];
    file.read_at(0, &mut b).map_err(|e| Error::io(name, e))?;
    let u64_at = |off: usize| need(le_u64(&b, off), name, "SESparse header", 0, off);
    if u64_at(0)? != MAGIC {
        return Err(Error::corrupt(name, "no SESparse magic at byte 0"));
    }
    let version = u64_at(8)?;
    if version != VERSION {
        return Err(Error::unsupported(
            name,
            format!("SESparse version {version:#x} (only 0x200000001 is known)"),
        ));
    }
    let capacity = u64_at(16)?;
    let grain_sectors = u64_at(24)?;
    let gt_sectors = u64_at(32)?;
    let flags = u64_at(40)?;
    if flags != 0 {
        return Err(Error::unsupported(
            name,
            format!("SESparse flags {flags:#x}"),
        ));
    }
    if grain_sectors == 0 || !grain_sectors.is_power_of_two() || grain_sectors > MAX_GRAIN_SECTORS {
        return Err(Error::corrupt(
            name,
            format!("SESparse grain size of {grain_sectors} sectors is not sane"),
        ));
    }
    if gt_sectors == 0 || gt_sectors > 1024 {
        return Err(Error::corrupt(
            name,
            format!("SESparse grain table size of {gt_sectors} sectors is not sane"),
        ));
    }
    let volatile_at = u64_at(80)?.saturating_mul(512);
    let mut v = [0u8; 512];
    match file.read_at(volatile_at, &mut v) {
        // v is 512 bytes: both fields lie inside it.
        Ok(()) if le_u64(&v, 0) == Some(VOLATILE_MAGIC) => {
            if le_u64(&v, 24) != Some(0) {
                warnings.push(format!(
                    "{name}: the SESparse journal needs replaying (unclean shutdown); it is not replayed, recent writes may be missing"
                ));
            }
        }
        _ => warnings.push(format!(
            "{name}: SESparse volatile header at byte {volatile_at:#x} is missing or damaged"
        )),
    }
    let gd_at = u64_at(128)?.saturating_mul(512);
    let gd_entries = u64_at(136)?.saturating_mul(512) / 8;
    let tables_at = u64_at(144)?.saturating_mul(512);
    let grains_at = u64_at(192)?.saturating_mul(512);
    let grain = grain_sectors.saturating_mul(512);
    let gt_bytes = gt_sectors.saturating_mul(512);
    let gt_entries = gt_bytes / 8;
    let len = capacity
        .checked_mul(512)
        .ok_or_else(|| Error::corrupt(name, format!("capacity of {capacity} sectors overflows")))?;
    let needed = len.div_ceil(grain.saturating_mul(gt_entries));
    let dir = open_dir(
        &file,
        name,
        "SESparse grain directory",
        gd_at,
        gd_entries.min(needed),
        8,
        DirEncoding::SeSparse { tables_at },
        gt_bytes,
        None,
    )?;
    Ok((
        GrainMap::new(
            file,
            name.to_string(),
            len,
            grain,
            gt_entries,
            8,
            Directory::OnDisk(dir),
            Flavor::SeSparse {
                grains_offset: grains_at,
            },
        ),
        warnings,
    ))
}
