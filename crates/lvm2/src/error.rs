//! The crate's error type: every message names the layer and the object.

use std::io;

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the device (or a PV) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read ("sda2: metadata area header at byte 4096").
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The LVM label (`LABELONE` sector) is damaged.
    #[error("LVM label on {device}: {reason}")]
    Label {
        /// Device name.
        device: String,
        /// What is wrong.
        reason: String,
    },
    /// The PV header that follows the label is damaged.
    #[error("LVM PV header on {device}: {reason}")]
    PvHeader {
        /// Device name.
        device: String,
        /// What is wrong.
        reason: String,
    },
    /// A metadata area header or its text location is damaged.
    #[error("LVM metadata area on {device} at byte {offset}: {reason}")]
    Mda {
        /// Device name.
        device: String,
        /// Absolute byte offset of the metadata area on the device.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The metadata text does not parse.
    #[error("LVM metadata text ({what}) line {line}: {reason}")]
    MetadataText {
        /// Where the text came from.
        what: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The metadata parses but describes an impossible volume group.
    #[error("VG {vg}: {reason}")]
    Vg {
        /// VG name.
        vg: String,
        /// What is wrong.
        reason: String,
    },
    /// A PV the volume group needs was not found among the devices.
    #[error("VG {vg}: PV {pv} (uuid {uuid}, last seen as {hint}) is missing")]
    MissingPv {
        /// VG name.
        vg: String,
        /// PV name in the metadata ("pv1").
        pv: String,
        /// PV uuid.
        uuid: String,
        /// The metadata's `device` hint.
        hint: String,
    },
    /// The LV uses a segment type this crate does not read.
    #[error("{vg}/{lv}: unsupported segment type {kind}")]
    UnsupportedSegment {
        /// VG name.
        vg: String,
        /// LV name.
        lv: String,
        /// Segment type from the metadata.
        kind: String,
    },
    /// The LV cannot be read for another reason (bad mapping).
    #[error("{vg}/{lv}: {reason}")]
    Lv {
        /// VG name.
        vg: String,
        /// LV name.
        lv: String,
        /// What is wrong.
        reason: String,
    },
    /// No LV of that name in the VG.
    #[error("VG {vg}: no logical volume named {lv:?}")]
    UnknownLv {
        /// VG name.
        vg: String,
        /// Requested LV name.
        lv: String,
    },
    /// A thin pool's metadata is damaged or does not fit the request.
    #[error("thin pool {pool}: {reason}")]
    Thin {
        /// "VG/pool", or "thin pool" for a bare metadata/data pair.
        pool: String,
        /// What is wrong, naming the metadata block.
        reason: String,
    },
    /// A classic snapshot's exception store is damaged, invalid or overflowed.
    #[error("snapshot {snapshot}: {reason}")]
    Snapshot {
        /// "VG/LV".
        snapshot: String,
        /// What is wrong.
        reason: String,
    },
}
