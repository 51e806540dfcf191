//! The recovered device: the data device with the sectors that log replay changed
//! held in memory and laid over it (recovery is in memory, never written back).
//!
//! Replay works in 512-byte basic blocks (BBSIZE, libxfs/xfs_fs.h): every logged
//! buffer, inode and dquot lives at a daddr, so the overlay keeps whole sectors keyed
//! by their daddr. Its size is capped by the caller (see `MAX_OVERLAY_BYTES`).

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use bytesource::{check_range, ByteSource, SharedSource};

/// Basic block size: the unit of daddrs and of the log.
pub(crate) const BBSIZE: usize = 512;
const BBSIZE_U64: u64 = 512;

/// Sectors replaced by replay, over a base device.
pub(crate) struct Overlay {
    base: SharedSource,
    sectors: BTreeMap<u64, Box<[u8; BBSIZE]>>,
    cap_sectors: usize,
}

impl Overlay {
    pub(crate) fn new(base: SharedSource, cap_bytes: u64) -> Self {
        let cap_sectors = usize::try_from(cap_bytes / BBSIZE_U64).unwrap_or(usize::MAX);
        Overlay {
            base,
            sectors: BTreeMap::new(),
            cap_sectors,
        }
    }

    /// Number of sectors replaced.
    pub(crate) fn sector_count(&self) -> usize {
        self.sectors.len()
    }

    /// The replaced sectors (daddr order).
    pub(crate) fn daddrs(&self) -> Vec<u64> {
        self.sectors.keys().copied().collect()
    }

    /// Reads `buf.len()` bytes at device byte `offset` as replay has left them.
    pub(crate) fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        read_patched(&*self.base, &self.sectors, offset, buf)
    }

    /// Writes `data` at device byte `offset` into the overlay (never the device).
    pub(crate) fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        let len = u64::try_from(data.len()).map_err(|_| "write too large".to_string())?;
        let end = offset
            .checked_add(len)
            .ok_or_else(|| format!("write at byte {offset} overflows"))?;
        if end > self.base.len() {
            return Err(format!(
                "write of {len} bytes at byte {offset} runs past the end of the device ({} bytes)",
                self.base.len()
            ));
        }
        let mut pos = offset;
        let mut src = data;
        while !src.is_empty() {
            let daddr = pos / BBSIZE_U64;
            let within = usize::try_from(pos % BBSIZE_U64).unwrap_or(0);
            let n = src.len().min(BBSIZE.saturating_sub(within));
            if !self.sectors.contains_key(&daddr) {
                if self.sectors.len() >= self.cap_sectors {
                    return Err(format!(
                        "replay would change more than {} sectors",
                        self.cap_sectors
                    ));
                }
                let mut sec = Box::new([0u8; BBSIZE]);
                let start = daddr.saturating_mul(BBSIZE_U64);
                self.base
                    .read_at(start, &mut sec[..])
                    .map_err(|e| format!("reading sector {daddr}: {e}"))?;
                self.sectors.insert(daddr, sec);
            }
            let (head, rest) = src.split_at(n);
            if let Some(sec) = self.sectors.get_mut(&daddr) {
                if let Some(dst) = sec.get_mut(within..within.saturating_add(n)) {
                    dst.copy_from_slice(head);
                }
            }
            src = rest;
            pos = pos.saturating_add(u64::try_from(n).unwrap_or(0));
        }
        Ok(())
    }

    /// Freezes the overlay into a shareable byte source.
    pub(crate) fn into_source(self) -> OverlaySource {
        OverlaySource {
            base: self.base,
            sectors: Arc::new(self.sectors),
        }
    }
}

fn read_patched(
    base: &dyn ByteSource,
    sectors: &BTreeMap<u64, Box<[u8; BBSIZE]>>,
    offset: u64,
    buf: &mut [u8],
) -> io::Result<()> {
    check_range(&"recovered XFS device", base.len(), offset, buf.len())?;
    base.read_at(offset, buf)?;
    if buf.is_empty() || sectors.is_empty() {
        return Ok(());
    }
    let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
    let end = offset.saturating_add(len);
    let first = offset / BBSIZE_U64;
    let last = end.saturating_sub(1) / BBSIZE_U64;
    for (&daddr, sec) in sectors.range(first..=last) {
        let s_start = daddr.saturating_mul(BBSIZE_U64);
        let lo = s_start.max(offset);
        let hi = s_start.saturating_add(BBSIZE_U64).min(end);
        if lo >= hi {
            continue;
        }
        let n = usize::try_from(hi.saturating_sub(lo)).unwrap_or(0);
        let src_off = usize::try_from(lo.saturating_sub(s_start)).unwrap_or(0);
        let dst_off = usize::try_from(lo.saturating_sub(offset)).unwrap_or(0);
        if let (Some(d), Some(s)) = (
            buf.get_mut(dst_off..dst_off.saturating_add(n)),
            sec.get(src_off..src_off.saturating_add(n)),
        ) {
            d.copy_from_slice(s);
        }
    }
    Ok(())
}

/// The data device as log recovery left it: reads return replayed sectors where
/// recovery changed them and the device's bytes everywhere else.
pub struct OverlaySource {
    base: SharedSource,
    sectors: Arc<BTreeMap<u64, Box<[u8; BBSIZE]>>>,
}

impl OverlaySource {
    /// The daddrs (512-byte sector numbers) whose contents replay changed.
    pub fn changed_sectors(&self) -> Vec<u64> {
        self.sectors.keys().copied().collect()
    }
}

impl ByteSource for OverlaySource {
    fn len(&self) -> u64 {
        self.base.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        read_patched(&*self.base, &self.sectors, offset, buf)
    }
}
