//! Log recovery hook. STUB: the real in-memory log replay is written separately
//! and replaces this file; this one keeps the API and reports every log clean.

use bytesource::SharedSource;

/// Where the internal log lives and how it is laid out (from the superblock).
#[derive(Clone, Debug)]
pub struct LogGeometry {
    /// 512-byte sector of the log start on the data device.
    pub log_start_daddr: u64,
    /// sb_logblocks.
    pub log_blocks: u32,
    /// Filesystem block size.
    pub block_size: u32,
    /// sb_logsectsize, or 512.
    pub log_sector_size: u32,
    /// Log format version, 1 or 2.
    pub version: u32,
    /// sb_logsunit.
    pub log_stripe_unit: u32,
    /// V5 (CRC) filesystem.
    pub is_v5: bool,
    /// Filesystem UUID.
    pub uuid: [u8; 16],
}

/// What recovery found and the device to read from afterwards.
pub struct Recovery {
    /// The log held transactions not yet written back.
    pub was_dirty: bool,
    /// The data device with replayed buffers in place.
    pub device: SharedSource,
    /// Notes for the caller.
    pub warnings: Vec<String>,
    /// Head block of the log.
    pub head_block: u64,
    /// Tail block of the log.
    pub tail_block: u64,
}

/// Stub: reports a clean log and hands the device back unchanged.
pub fn recover(dev: SharedSource, _geom: &LogGeometry) -> Result<Recovery, fsapi::Error> {
    Ok(Recovery {
        was_dirty: false,
        device: dev,
        warnings: Vec::new(),
        head_block: 0,
        tail_block: 0,
    })
}
