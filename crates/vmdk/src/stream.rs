//! streamOptimized specifics: the footer that carries the real header when the first
//! header says `gdOffset = GD_AT_END`.
//!
//! VMware "Virtual Disk Format 5.0", "Stream-Optimized Compressed Sparse Extents": the
//! file ends with a footer marker sector (`val` 1, `size` 0, `type` 3 = FOOTER), a copy
//! of the sparse header holding the real grain directory offset, and an end-of-stream
//! marker sector (all zero, type 0). qemu reads the footer at `file size - 1536`
//! (`vmdk_open_vmdk4`). Each grain is stored as a grain marker (`lba` u64, `size` u32)
//! followed by `size` bytes of zlib data; grain tables and the directory are preceded
//! by metadata markers (`val` = sectors, `size` 0, `type` 1 = GT, 2 = GD). Compressed
//! grains are inflated in [`crate::grain`].

use crate::error::need;
use crate::grain::Ahead;
use crate::kdmv::{Header, GD_AT_END};
use crate::Error;
use bytesource::field::{le_u32, le_u64};
use bytesource::SharedSource;
use std::collections::BTreeMap;

const MARKER_EOS: u32 = 0;
const MARKER_FOOTER: u32 = 3;

/// Reads and checks the footer (from `tail`, the file's last bytes read ahead,
/// when it holds them); returns the header it holds.
pub(crate) fn read_footer(
    file: &SharedSource,
    name: &str,
    tail: Option<&Ahead>,
) -> Result<Header, Error> {
    let len = file.len();
    let at = len.checked_sub(1536).ok_or_else(|| {
        Error::corrupt(
            name,
            format!("streamOptimized file of {len} bytes is too short for a footer"),
        )
    })?;
    let mut b = vec![0u8; 1536];
    match tail.and_then(|t| t.get(at, 1536)) {
        Some(t) => b.copy_from_slice(t),
        None => file.read_at(at, &mut b).map_err(|e| Error::io(name, e))?,
    }
    const WHAT: &str = "streamOptimized footer";
    let u32f = |off: usize| need(le_u32(&b, off), name, WHAT, at, off);
    let u64f = |off: usize| need(le_u64(&b, off), name, WHAT, at, off);
    let footer_marker_ok = u32f(8)? == 0 && u32f(12)? == MARKER_FOOTER;
    let eos_ok = u64f(1024)? == 0 && u32f(1032)? == 0 && u32f(1036)? == MARKER_EOS;
    let header = match b.get(512..1024) {
        Some(h) => Header::parse(h, name, at.saturating_add(512))?,
        None => None,
    };
    match header {
        Some(h) if footer_marker_ok && eos_ok => {
            if h.gd_offset == GD_AT_END {
                return Err(Error::corrupt(
                    name,
                    "streamOptimized footer also says the grain directory is at the end",
                ));
            }
            Ok(h)
        }
        _ => Err(Error::corrupt(
            name,
            format!(
                "header says the grain directory is in the footer, but no valid footer (footer marker, KDMV header, end-of-stream marker) at byte {at:#x}"
            ),
        )),
    }
}

/// A grain map rebuilt by walking the stream's markers.
pub(crate) struct Scanned {
    /// Grain number -> sector of its grain marker: sparse, at most one entry per
    /// marker in the file, whatever grain numbers the markers claim.
    pub(crate) grains_at: BTreeMap<u64, u64>,
    /// Why the walk stopped, when not at an end-of-stream marker.
    pub(crate) stopped: Option<String>,
}

/// Walks a stream-optimized file from `start` (bytes) marker by marker, recording where
/// each grain is. Used when the grain directory is missing or damaged (a stream cut
/// short has no footer). Every step moves forward by at least one sector, so the walk
/// ends; the rebuilt map holds at most one entry per grain marker found.
pub(crate) fn scan(
    file: &SharedSource,
    name: &str,
    start: u64,
    grain_sectors: u64,
    capacity_sectors: u64,
) -> Result<Scanned, Error> {
    let len = file.len();
    let mut pos = start.max(512);
    let mut grains_at = BTreeMap::new();
    let mut stopped = None;
    let bad = |what: &str| Error::corrupt(name, format!("scanning the stream: {what}"));
    loop {
        let Some(end) = pos.checked_add(512).filter(|&e| e <= len) else {
            stopped = Some(format!(
                "no end-of-stream marker before the end of the file (byte {pos:#x})"
            ));
            break;
        };
        let _ = end;
        let mut m = [0u8; 16];
        file.read_at(pos, &mut m).map_err(|e| Error::io(name, e))?;
        const WHAT: &str = "stream marker";
        let val = need(le_u64(&m, 0), name, WHAT, pos, 0)?;
        let size = u64::from(need(le_u32(&m, 8), name, WHAT, pos, 8)?);
        let kind = need(le_u32(&m, 12), name, WHAT, pos, 12)?;
        let sector = pos / 512;
        let advance = if size != 0 {
            // Grain marker: lba, size, then the compressed bytes.
            let grain = val
                .checked_div(grain_sectors)
                .ok_or_else(|| bad("grain size 0"))?;
            if val < capacity_sectors && val.checked_rem(grain_sectors) == Some(0) {
                grains_at.insert(grain, sector);
            } else {
                stopped = Some(format!(
                    "grain marker at byte {pos:#x} names sector {val}, outside the disk"
                ));
                break;
            }
            size.saturating_add(12).div_ceil(512).saturating_mul(512)
        } else {
            match kind {
                MARKER_EOS => break,
                1..=3 => val.saturating_add(1).saturating_mul(512),
                other => {
                    stopped = Some(format!("unknown marker type {other} at byte {pos:#x}"));
                    break;
                }
            }
        };
        pos = match pos.checked_add(advance.max(512)) {
            Some(p) => p,
            None => break,
        };
    }
    Ok(Scanned { grains_at, stopped })
}
