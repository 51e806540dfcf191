//! Reading a logical volume: LV bytes → segments → stripes/legs → PV bytes.
//!
//! The mappings are those of the device-mapper targets lvm2 builds
//! (`lib/activate/dev_manager.c`): `striped` is dm-stripe (chunk `c` of a segment
//! goes to stripe `c % n`, row `c / n`), `mirror` and `raid1` hold full copies on
//! every leg, `raid10` is md's "near" layout. A read is split exactly where the
//! mapping changes (segment ends, stripe chunks) and nowhere else.

use crate::model::{Area, LvInfo, Raid5Layout, Seg, SegMap, VgInner, MAX_STACK, POOL_REFUSED};
use bytesource::{ByteSource, SharedSource};
use std::cell::Cell;
use std::io;
use std::sync::Arc;

/// Most failed leg reads tried within one `read_at` before giving up.
const MAX_FAILED_LEGS: u32 = 64;

/// An open LV: a byte source of the LV's size.
#[derive(Clone)]
pub struct LogicalVolume {
    vg: Arc<VgInner>,
    lv: usize,
    size: u64,
    /// For thin LVs and snapshots: the reader that replaces the segment map.
    special: Option<SharedSource>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for LogicalVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LogicalVolume({}/{}, {} bytes)",
            self.vg.name,
            self.name(),
            self.size
        )
    }
}

impl LogicalVolume {
    pub(crate) fn new(vg: Arc<VgInner>, lv: usize) -> Self {
        let size = vg.lvs.get(lv).map(|l| l.size).unwrap_or(0);
        Self {
            vg,
            lv,
            size,
            special: None,
            warnings: Vec::new(),
        }
    }

    /// This LV read through `src` (a thin device, a snapshot) of `size` bytes.
    pub(crate) fn with_source(
        mut self,
        src: SharedSource,
        size: u64,
        warnings: Vec<String>,
    ) -> Self {
        self.special = Some(src);
        self.size = size;
        self.warnings = warnings;
        self
    }

    /// Caveats found while opening (pool or snapshot warnings) plus the LV's own
    /// ([`crate::LvInfo::warnings`]).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = self.warnings.clone();
        if let Some(i) = self.info() {
            w.extend(i.warnings.iter().cloned());
        }
        w
    }

    /// The LV name.
    pub fn name(&self) -> &str {
        self.vg
            .lvs
            .get(self.lv)
            .map(|l| l.name.as_str())
            .unwrap_or("")
    }

    /// What the metadata says about this LV.
    pub fn info(&self) -> Option<&LvInfo> {
        self.vg.lvs.get(self.lv)
    }

    /// "VG/LV", for messages.
    pub fn full_name(&self) -> String {
        FullName(self).to_string()
    }
}

/// Displays as [`LogicalVolume::full_name`].
struct FullName<'a>(&'a LogicalVolume);

impl std::fmt::Display for FullName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.0.vg.name, self.0.name())
    }
}

impl ByteSource for LogicalVolume {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        // The name is formatted only for an error (this runs for every read).
        bytesource::check_range(&FullName(self), self.size, offset, buf.len())?;
        if let Some(s) = &self.special {
            return s.read_at(offset, buf);
        }
        read_lv(&self.vg, self.lv, offset, buf, 0, &Cell::new(0))
    }
    /// Looks through linear segments (one area) only: striped, mirrored, RAID,
    /// thin and snapshot LVs place or change their bytes in ways a single host
    /// range cannot say.
    fn host_range(&self, offset: u64, len: u64) -> Option<bytesource::HostRange<'_>> {
        if offset.checked_add(len)? > self.size {
            return None;
        }
        if let Some(s) = &self.special {
            return s.host_range(offset, len);
        }
        host_range_lv(&self.vg, self.lv, offset, len, 0)
    }
}

/// [`ByteSource::host_range`] of `[offset, offset+len)` of LV `lv`: the part in
/// the segment holding `offset`, when it is linear, followed to its PV (or LV).
fn host_range_lv(
    vg: &VgInner,
    lv: usize,
    offset: u64,
    len: u64,
    depth: u32,
) -> Option<bytesource::HostRange<'_>> {
    if depth > MAX_STACK {
        return None;
    }
    let segs = vg.lv_segs.get(lv)?;
    let seg = segs
        .partition_point(|s| s.start <= offset)
        .checked_sub(1)
        .and_then(|i| segs.get(i))
        .filter(|s| offset < s.start.saturating_add(s.len))?;
    let in_seg = offset.checked_sub(seg.start)?;
    let n = len.min(seg.len.checked_sub(in_seg)?);
    let SegMap::Striped { areas, .. } = &seg.map else {
        return None;
    };
    let [only] = areas.as_slice() else {
        return None;
    };
    match only {
        Area::Pv { pv, offset: start } => {
            let src = vg.pv_sources.get(*pv)?.as_ref()?;
            src.host_range(start.checked_add(in_seg)?, n)
        }
        Area::Lv { lv, offset: start } => {
            let at = start.checked_add(in_seg)?;
            let size = vg.lvs.get(*lv)?.size;
            if at.checked_add(n)? > size {
                return None;
            }
            host_range_lv(vg, *lv, at, n, depth.saturating_add(1))
        }
    }
}

fn err(kind: io::ErrorKind, msg: String) -> io::Error {
    io::Error::new(kind, msg)
}

fn lv_name(vg: &VgInner, lv: usize) -> String {
    format!(
        "{}/{}",
        vg.name,
        vg.lvs.get(lv).map(|l| l.name.as_str()).unwrap_or("?")
    )
}

fn len_u64(b: &[u8]) -> u64 {
    u64::try_from(b.len()).unwrap_or(u64::MAX)
}

/// Reads `buf.len()` bytes at `offset` of LV `lv`.
pub(crate) fn read_lv(
    vg: &VgInner,
    lv: usize,
    mut offset: u64,
    mut buf: &mut [u8],
    depth: u32,
    fails: &Cell<u32>,
) -> io::Result<()> {
    if depth > MAX_STACK {
        return Err(err(
            io::ErrorKind::InvalidData,
            format!("{}: LVs stacked too deep", lv_name(vg, lv)),
        ));
    }
    let segs = vg.lv_segs.get(lv).map(Vec::as_slice).unwrap_or_default();
    while !buf.is_empty() {
        // Segments are sorted by start: find the last one starting at or before offset.
        let idx = segs.partition_point(|s| s.start <= offset);
        let seg = idx
            .checked_sub(1)
            .and_then(|i| segs.get(i))
            .filter(|s| offset < s.start.saturating_add(s.len))
            .ok_or_else(|| {
                err(
                    io::ErrorKind::InvalidData,
                    format!("{}: no segment maps byte {offset}", lv_name(vg, lv)),
                )
            })?;
        let in_seg = offset.saturating_sub(seg.start);
        let avail = seg.len.saturating_sub(in_seg);
        let n = usize::try_from(avail.min(len_u64(buf)))
            .unwrap_or(buf.len())
            .min(buf.len());
        if n == 0 {
            // Cannot happen (the segment contains offset), but never spin.
            return Err(err(
                io::ErrorKind::InvalidData,
                format!("{}: empty segment at byte {offset}", lv_name(vg, lv)),
            ));
        }
        let (now, rest) = std::mem::take(&mut buf).split_at_mut(n);
        read_seg(vg, lv, seg, in_seg, now, depth, fails)?;
        offset = offset.saturating_add(len_u64(now));
        buf = rest;
    }
    Ok(())
}

fn read_area(
    vg: &VgInner,
    area: &Area,
    off: u64,
    buf: &mut [u8],
    depth: u32,
    fails: &Cell<u32>,
) -> io::Result<()> {
    match area {
        Area::Pv { pv, offset } => {
            let meta = vg.pvs.get(*pv);
            let src = vg.pv_sources.get(*pv).and_then(Option::as_ref);
            let Some(src) = src else {
                let (name, uuid, hint) = meta
                    .map(|p| (p.name.as_str(), p.uuid.as_str(), p.device_hint.as_str()))
                    .unwrap_or(("?", "?", "?"));
                return Err(err(
                    io::ErrorKind::NotFound,
                    format!(
                        "VG {}: PV {name} (uuid {uuid}, last seen as {hint}) is missing",
                        vg.name
                    ),
                ));
            };
            let at = offset.checked_add(off).ok_or_else(|| {
                err(
                    io::ErrorKind::InvalidData,
                    "PV offset overflows".to_string(),
                )
            })?;
            src.read_at(at, buf).map_err(|e| {
                let name = meta.map(|p| p.name.as_str()).unwrap_or("?");
                let dev = meta.and_then(|p| p.present_on.as_deref()).unwrap_or("?");
                err(e.kind(), format!("VG {}: PV {name} on {dev}: {e}", vg.name))
            })
        }
        Area::Lv { lv, offset } => {
            let at = offset.checked_add(off).ok_or_else(|| {
                err(
                    io::ErrorKind::InvalidData,
                    "LV offset overflows".to_string(),
                )
            })?;
            let size = vg.lvs.get(*lv).map(|l| l.size).unwrap_or(0);
            bytesource::check_range(&lv_name(vg, *lv), size, at, buf.len())?;
            read_lv(vg, *lv, at, buf, depth.saturating_add(1), fails)
        }
    }
}

/// Reads from `legs` in order, returning the first success.
fn read_any(
    vg: &VgInner,
    lv: usize,
    legs: &[(&Area, u64)],
    buf: &mut [u8],
    depth: u32,
    fails: &Cell<u32>,
) -> io::Result<()> {
    let mut first_err = None;
    for (a, off) in legs {
        match read_area(vg, a, *off, buf, depth, fails) {
            Ok(()) => return Ok(()),
            Err(e) => {
                // Every failed leg counts against one budget per read_at call, so
                // nested mirrors of failing legs cannot multiply into a hang.
                fails.set(fails.get().saturating_add(1));
                if fails.get() > MAX_FAILED_LEGS {
                    return Err(e);
                }
                if first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
    }
    Err(first_err.unwrap_or_else(|| {
        err(
            io::ErrorKind::InvalidData,
            format!("{}: segment has no legs", lv_name(vg, lv)),
        )
    }))
}

fn read_seg(
    vg: &VgInner,
    lv: usize,
    seg: &Seg,
    in_seg: u64,
    buf: &mut [u8],
    depth: u32,
    fails: &Cell<u32>,
) -> io::Result<()> {
    match &seg.map {
        SegMap::Striped { stripe_size, areas } => {
            if let [only] = areas.as_slice() {
                // Linear: the whole range is contiguous on one area, one read.
                return read_area(vg, only, in_seg, buf, depth, fails);
            }
            let n = len_u64_of(areas);
            let bad = || {
                err(
                    io::ErrorKind::InvalidData,
                    format!("{}: bad stripe geometry", lv_name(vg, lv)),
                )
            };
            for_each_chunk(in_seg, *stripe_size, buf, bad, |chunk, within, now| {
                let (stripe, area_off) =
                    chunk_place(chunk, within, *stripe_size, n).ok_or_else(bad)?;
                let area = at(areas, stripe).ok_or_else(bad)?;
                read_area(vg, area, area_off, now, depth, fails)
            })
        }
        SegMap::Mirror { legs } => {
            let l: Vec<(&Area, u64)> = legs.iter().map(|a| (a, in_seg)).collect();
            read_any(vg, lv, &l, buf, depth, fails)
        }
        SegMap::Raid10 {
            stripe_size,
            copies,
            images,
        } => {
            let n = len_u64_of(images);
            let ss = *stripe_size;
            let bad = || {
                err(
                    io::ErrorKind::InvalidData,
                    format!("{}: bad raid10 geometry", lv_name(vg, lv)),
                )
            };
            // md's "near" layout: chunk c's copies are slots c*copies .. +copies,
            // slot s on image s % n, row s / n.
            for_each_chunk(in_seg, ss, buf, bad, |chunk, within, now| {
                let slot = chunk.checked_mul(*copies).ok_or_else(bad)?;
                let mut legs = Vec::new();
                for c in 0..*copies {
                    let s = slot.checked_add(c).ok_or_else(bad)?;
                    let (dev, area_off) = chunk_place(s, within, ss, n).ok_or_else(bad)?;
                    let a = at(images, dev).ok_or_else(bad)?;
                    legs.push((a, area_off));
                }
                read_any(vg, lv, &legs, now, depth, fails)
            })
        }
        SegMap::Raid5 {
            stripe_size,
            layout,
            images,
        } => read_raid5(
            vg,
            lv,
            *stripe_size,
            *layout,
            images,
            in_seg,
            buf,
            depth,
            fails,
        ),
        SegMap::Raid6 {
            stripe_size,
            layout,
            images,
        } => read_raid6(
            vg,
            lv,
            *stripe_size,
            *layout,
            images,
            in_seg,
            buf,
            depth,
            fails,
        ),
        SegMap::ThinPool { .. } => Err(err(
            io::ErrorKind::Unsupported,
            format!("{}: {}", lv_name(vg, lv), POOL_REFUSED),
        )),
        SegMap::Thin { .. } | SegMap::Snapshot { .. } => Err(err(
            io::ErrorKind::Unsupported,
            format!(
                "{}: a thin LV or snapshot used as another LV's area is not read",
                lv_name(vg, lv)
            ),
        )),
        SegMap::Zero => {
            buf.fill(0);
            Ok(())
        }
        SegMap::ErrorTarget => Err(err(
            io::ErrorKind::Other,
            format!("{}: read of an \"error\" segment", lv_name(vg, lv)),
        )),
        SegMap::Unsupported(k) => Err(err(
            io::ErrorKind::Unsupported,
            format!("{}: unsupported segment type {k}", lv_name(vg, lv)),
        )),
        SegMap::Invalid(r) => Err(err(
            io::ErrorKind::InvalidData,
            format!("{}: {r}", lv_name(vg, lv)),
        )),
    }
}

/// raid4/raid5: the data chunk from its image, or rebuilt by XOR of the row.
#[allow(clippy::too_many_arguments)]
fn read_raid5(
    vg: &VgInner,
    lv: usize,
    stripe_size: u64,
    layout: Raid5Layout,
    images: &[Area],
    in_seg: u64,
    buf: &mut [u8],
    depth: u32,
    fails: &Cell<u32>,
) -> io::Result<()> {
    let n = len_u64_of(images);
    let ss = stripe_size;
    let bad = || {
        err(
            io::ErrorKind::InvalidData,
            format!("{}: bad raid5 geometry", lv_name(vg, lv)),
        )
    };
    for_each_chunk(in_seg, ss, buf, bad, |chunk, within, now| {
        let (row, dd, _pd) = layout.place(chunk, n).ok_or_else(bad)?;
        let area_off = row
            .checked_mul(ss)
            .and_then(|x| x.checked_add(within))
            .ok_or_else(bad)?;
        let data = at(images, dd).ok_or_else(bad)?;
        if let Err(e) = read_area(vg, data, area_off, now, depth, fails) {
            // Rebuild the chunk from every other image of the row (the other
            // data chunks and the parity chunk): XOR.
            fails.set(fails.get().saturating_add(1));
            if fails.get() > MAX_FAILED_LEGS {
                return Err(e);
            }
            now.fill(0);
            let mut tmp = vec![0u8; now.len()];
            for (j, other) in images.iter().enumerate() {
                if u64::try_from(j).ok() == Some(dd) {
                    continue;
                }
                if read_area(vg, other, area_off, &mut tmp, depth, fails).is_err() {
                    return Err(e);
                }
                for (a, b) in now.iter_mut().zip(&tmp) {
                    *a ^= b;
                }
            }
        }
        Ok(())
    })
}

/// raid6: the data chunk from its image, or rebuilt from P and/or Q.
#[allow(clippy::too_many_arguments)]
fn read_raid6(
    vg: &VgInner,
    lv: usize,
    stripe_size: u64,
    layout: crate::raid6::Raid6Layout,
    images: &[Area],
    in_seg: u64,
    buf: &mut [u8],
    depth: u32,
    fails: &Cell<u32>,
) -> io::Result<()> {
    let n = len_u64_of(images);
    let ss = stripe_size;
    let bad = || {
        err(
            io::ErrorKind::InvalidData,
            format!("{}: bad raid6 geometry", lv_name(vg, lv)),
        )
    };
    let data_disks = n.saturating_sub(2);
    for_each_chunk(in_seg, ss, buf, bad, |chunk, within, now| {
        let row = chunk.checked_div(data_disks).ok_or_else(bad)?;
        let k = chunk.checked_rem(data_disks).ok_or_else(bad)?;
        let r = layout.row(row, n).ok_or_else(bad)?;
        let area_off = row
            .checked_mul(ss)
            .and_then(|x| x.checked_add(within))
            .ok_or_else(bad)?;
        let k = usize::try_from(k).map_err(|_| bad())?;
        crate::raid6::read_chunk(&r, k, now, |disk, b| {
            let a = at(images, disk).ok_or_else(bad)?;
            let res = read_area(vg, a, area_off, b, depth, fails);
            if res.is_err() {
                fails.set(fails.get().saturating_add(1));
                if fails.get() > MAX_FAILED_LEGS {
                    return Err(err(io::ErrorKind::Other, "too many failed images".into()));
                }
            }
            res
        })
    })
}

/// Element `i` (a position computed from on-disk geometry) of `v`, if it exists.
fn at<T>(v: &[T], i: u64) -> Option<&T> {
    usize::try_from(i).ok().and_then(|i| v.get(i))
}

fn len_u64_of<T>(v: &[T]) -> u64 {
    u64::try_from(v.len()).unwrap_or(u64::MAX)
}

/// Splits a read of `buf` at byte `in_seg` of a segment laid out in `ss`-byte
/// chunks into one piece per chunk, calling `f(chunk index, offset inside the
/// chunk, piece)`: a read is split at chunk boundaries and nowhere else.
fn for_each_chunk(
    in_seg: u64,
    ss: u64,
    buf: &mut [u8],
    bad: impl Fn() -> io::Error,
    mut f: impl FnMut(u64, u64, &mut [u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut off = in_seg;
    let mut rest = buf;
    while !rest.is_empty() {
        let chunk = off.checked_div(ss).ok_or_else(&bad)?;
        let within = off.checked_rem(ss).ok_or_else(&bad)?;
        let take = ss.saturating_sub(within).min(len_u64(rest));
        let take = usize::try_from(take).unwrap_or(rest.len()).min(rest.len());
        if take == 0 {
            return Err(bad());
        }
        let (now, later) = std::mem::take(&mut rest).split_at_mut(take);
        f(chunk, within, now)?;
        off = off.saturating_add(len_u64(now));
        rest = later;
    }
    Ok(())
}

/// Where chunk number `chunk` of a round-robin layout over `n` areas lives: (area
/// index, byte offset in that area), `within` bytes into the chunk.
fn chunk_place(chunk: u64, within: u64, ss: u64, n: u64) -> Option<(u64, u64)> {
    let area = chunk.checked_rem(n)?;
    let row = chunk.checked_div(n)?;
    Some((area, row.checked_mul(ss)?.checked_add(within)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_positions() {
        // 3 stripes of 64 KiB: chunk 3 is the second row of stripe 0.
        let ss = 65536;
        assert_eq!(chunk_place(0, 0, ss, 3), Some((0, 0)));
        assert_eq!(chunk_place(1, 0, ss, 3), Some((1, 0)));
        assert_eq!(chunk_place(3, 5, ss, 3), Some((0, 65536 + 5)));
        assert_eq!(chunk_place(1, 0, ss, 0), None);
    }

    #[test]
    fn reads_split_at_chunk_boundaries_only() {
        let mut buf = vec![0u8; 100_000];
        let mut pieces = Vec::new();
        for_each_chunk(
            65_000,
            65536,
            &mut buf,
            || io::Error::other("bad"),
            |c, w, p| {
                pieces.push((c, w, p.len()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(pieces, [(0, 65_000, 536), (1, 0, 65536), (2, 0, 33_928)]);
        let zero = for_each_chunk(0, 0, &mut buf, || io::Error::other("bad"), |_, _, _| Ok(()));
        assert!(zero.is_err());
    }
}
