//! A read-only LVM2 reader.
//!
//! What is read:
//! - the label in sectors 0–3 (`LABELONE`, sector number, CRC) — [`label`];
//! - the PV header: uuid, device size, data and metadata area lists, and the
//!   extension header when present (old lvm2 lacks it) — [`pv_header`];
//! - every metadata area header (at most two per PV, as lvm2 writes) and its
//!   committed and precommitted `raw_locn`s, with the metadata text read from the
//!   ring buffer (wrapping past its end) and its checksum verified — [`mda`];
//! - the metadata text (lvm2's config syntax), from disk or from an
//!   `/etc/lvm/backup` file — [`metadata_text`];
//! - volume groups assembled across devices by VG uuid, PVs matched by PV uuid (the
//!   `device` field is only a hint), the newest valid copy by `seqno` (an older valid
//!   copy is used, with a warning, when the newest is damaged) — `scan` and `vg`;
//! - LV mapping (`lv`) for `striped`/linear (dm-stripe), `mirror` and `raid1` (first
//!   leg that reads), `raid0` and `raid10` (md's round-robin and "near" layouts),
//!   `raid4` and `raid5_{la,ra,ls,rs,n}` (md's parity layouts; a chunk on a missing
//!   image is rebuilt from the others by XOR), `raid6_{zr,nr,nc,la_6,ra_6,ls_6,rs_6,
//!   n_6}` (up to two missing images rebuilt from P and Q — `raid6`), `zero` and
//!   `error` segments, LVs stacked on sub-LVs, and several segments per LV. A PV
//!   that is missing fails only the reads that need it.
//! - Thin provisioning ([`thin`]): a `thin` LV reads through its pool's `_tmeta`
//!   (dm-thin persistent-data metadata, checked and looked up lazily) and `_tdata`;
//!   unmapped blocks read as zeros, or from the `external_origin`. Thin snapshots
//!   are thin LVs. [`thin::ThinPool::open`] reads a bare metadata + data pair.
//! - Classic snapshots ([`snapshot`]): the snapshot (opened by its COW LV's name,
//!   as lvs shows it) reads the dm-snapshot persistent exception store on the COW
//!   LV and the origin for every chunk not copied.
//! - `cache` and `writecache` LVs read their origin sub-LV, with a warning that
//!   blocks dirty in a writeback cache may be newer ([`LvInfo::warnings`]).
//!
//! For listings, [`LvInfo::role`] says what an LV is ([`LvRole`]: thin pool, thin
//! LV, snapshot, origin, cache) from the text, and [`VolumeGroup::thin_pool`] /
//! [`VolumeGroup::thin_device_details`] add the pool metadata's counts.
//!
//! What is not read: `vdo`, `integrity` and `cache-pool` segments, raid images
//! with reshape space, a thin pool opened as a volume (an error: read its thin
//! LVs), a thin LV or snapshot used as another LV's area, the thin metadata
//! snapshot's view (its block is reported), and dirty cache blocks. Those LVs are
//! listed with [`LvInfo::readable`] = `Err(…)` naming the reason, and
//! [`VolumeGroup::open_lv`] fails the same way. Nothing is ever written;
//! lvmlockd/cluster state, historical LVs and older copies left in the metadata
//! ring are ignored.
//!
//! Recovery leniency, always with a warning: a metadata area header whose own
//! checksum fails is still followed (its texts carry their own checksums), and a
//! text with a bad checksum is used only when no good copy of its VG exists.
//!
//! Every byte is treated as hostile: lengths are bounded (8 MiB of text, 128 areas
//! per segment, 65536 segments, LV stacks 8 deep, walks over the LV graph memoised,
//! failed mirror legs per read capped), arithmetic is checked, and a damaged
//! structure becomes an error naming the device and object, never a panic.

#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::as_conversions
    )
)]

mod bytes;
pub mod crc;
mod error;
pub mod label;
mod lv;
pub mod mda;
pub mod metadata_text;
mod model;
mod open;
pub mod pv_header;
mod raid6;
mod scan;
pub mod snapshot;
pub mod thin;
mod vg;

pub use bytes::format_uuid;
pub use error::Error;
pub use lv::LogicalVolume;
pub use model::{LvInfo, LvRole, SegmentInfo, VgPv};
pub use vg::VolumeGroup;

use bytesource::ByteSource;

/// A device to scan: a whole disk or a partition, named as the guest would name it.
#[derive(Clone)]
pub struct Device {
    /// Guest-style name ("sda2", "sdb").
    pub name: String,
    /// Its bytes.
    pub source: bytesource::SharedSource,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Device({}, {} bytes)", self.name, self.source.len())
    }
}

/// What a scan found.
#[derive(Debug)]
#[non_exhaustive]
pub struct Scan {
    /// Every device with a valid LVM label.
    pub pvs: Vec<FoundPv>,
    /// Every volume group with a usable metadata copy.
    pub vgs: Vec<VolumeGroup>,
    /// Problems worked around ("sdb: metadata copy seqno 7 has a bad checksum; using seqno 6").
    pub warnings: Vec<String>,
    /// Per-device failures ("LVM label on sda2: bad CRC").
    pub errors: Vec<String>,
    /// The entries of `warnings` and `errors` caused by the device failing a read
    /// (a bad sector in a metadata area): the disk is failing even when another
    /// copy made up for it, so copying commands print and count these.
    pub read_errors: Vec<String>,
}

impl Scan {
    /// The VG named `name`.
    pub fn vg(&self, name: &str) -> Option<&VolumeGroup> {
        self.vgs.iter().find(|v| v.name() == name)
    }
}

/// A device carrying a valid LVM label.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FoundPv {
    /// `Device.name`.
    pub device: String,
    /// PV uuid as lvm prints it (6-4-4-4-4-4-6).
    pub pv_uuid: String,
    /// Device size recorded in the PV header, in bytes.
    pub size: u64,
    /// The VG whose metadata lists this PV, if any.
    pub vg_name: Option<String>,
}

/// True when `source` has a `LABELONE` sector among its first four sectors.
///
/// Cheap: reads at most 2 KiB and checks only the magic and sector number.
pub fn probe(source: &dyn ByteSource) -> bool {
    (0..label::LABEL_SCAN_SECTORS).any(|s| {
        let mut buf = [0u8; 16];
        s.checked_mul(512)
            .is_some_and(|off| source.read_at(off, &mut buf).is_ok())
            && buf.starts_with(label::LABEL_ID)
            && buf
                .get(8..16)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_le_bytes)
                == Some(s)
    })
}

/// Scans `devices` for PVs and assembles every volume group found. Never fails as a
/// whole: per-device problems land in [`Scan::errors`] and [`Scan::warnings`].
pub fn scan(devices: &[Device]) -> Scan {
    match scan::scan_impl(devices, None) {
        Ok(s) => s,
        // Without a replacement text scan_impl has no failing path; keep the
        // promise anyway.
        Err(e) => Scan {
            pvs: Vec::new(),
            vgs: Vec::new(),
            warnings: Vec::new(),
            errors: vec![e.to_string()],
            read_errors: Vec::new(),
        },
    }
}

/// Like [`scan`], but the volume group described by `metadata_text` (an
/// `/etc/lvm/backup` or `/etc/lvm/archive` file) replaces whatever copies of it
/// the devices hold. Its PVs are still matched to devices by uuid from their labels.
pub fn scan_with_metadata(devices: &[Device], metadata_text: &str) -> Result<Scan, Error> {
    let root = metadata_text::parse(metadata_text.as_bytes()).map_err(|e| Error::MetadataText {
        what: "metadata file".to_string(),
        line: e.line,
        reason: e.reason,
    })?;
    scan::scan_impl(devices, Some(&root))
}

/// Parses one label sector found at sector `sector` (for fuzzing and tools).
pub fn parse_label_sector(buf: &[u8], sector: u64) -> Result<pv_header::PvHeader, String> {
    let l = label::parse_label(buf, sector).map_err(|p| p.to_string())?;
    pv_header::parse_pv_header(buf, usize::try_from(l.offset_xl).unwrap_or(usize::MAX))
}

/// Builds a volume group from metadata text alone, with no devices (every PV
/// missing): for fuzzing and for inspecting a backup file.
pub fn parse_vg_text(text: &[u8]) -> Result<VolumeGroup, Error> {
    let root = metadata_text::parse(text).map_err(|e| Error::MetadataText {
        what: "text".to_string(),
        line: e.line,
        reason: e.reason,
    })?;
    let inner = vg::build_vg(&root, &std::collections::HashMap::new())?;
    Ok(VolumeGroup::new(inner))
}

/// The device-mapper name lvm2 gives LV `lv` of VG `vg` (`/dev/mapper/<name>`):
/// every `-` in either name is doubled, and the two are joined by one `-`
/// (`dm_build_dm_name` in lvm2's `libdm`).
pub fn mapper_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

/// Splits a device-mapper name back into `(vg, lv)`: the first `-` that is not part
/// of a doubled `--` separates them. `None` when there is no such `-`.
pub fn split_mapper_name(name: &str) -> Option<(String, String)> {
    let bytes = name.as_bytes();
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        if b == b'-' {
            if bytes.get(i.checked_add(1)?) == Some(&b'-') {
                i = i.checked_add(2)?;
                continue;
            }
            let vg = name.get(..i)?.replace("--", "-");
            let lv = name.get(i.checked_add(1)?..)?.replace("--", "-");
            if vg.is_empty() || lv.is_empty() {
                return None;
            }
            return Some((vg, lv));
        }
        i = i.checked_add(1)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapper_names_round_trip() {
        assert_eq!(mapper_name("VolGroup00", "LogVol00"), "VolGroup00-LogVol00");
        assert_eq!(mapper_name("my-vg", "root-lv"), "my--vg-root--lv");
        assert_eq!(
            split_mapper_name("my--vg-root--lv"),
            Some(("my-vg".into(), "root-lv".into()))
        );
        assert_eq!(
            split_mapper_name("VolGroup00-LogVol00"),
            Some(("VolGroup00".into(), "LogVol00".into()))
        );
        assert_eq!(split_mapper_name("novg"), None);
        assert_eq!(split_mapper_name("a--b"), None);
        assert_eq!(split_mapper_name("-x"), None);
    }
}
