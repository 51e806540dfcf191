//! A volume group: the metadata text turned into PVs, LVs and segment maps.
//!
//! Field names follow what lvm2's `lib/format_text/export.c` writes and
//! `lib/format_text/import_vsn1.c` reads (`_read_pv`, `_read_lvnames`,
//! `_read_segment`): `extent_size`, `pe_start` and `stripe_size` are in 512-byte
//! sectors; `start_extent`, `extent_count` and area starts are in extents. Each
//! segment type's own keys come from its `text_import` in `lib/striped/striped.c`
//! (`stripe_count`, `stripe_size`, `stripes`), `lib/mirror/mirrored.c`
//! (`mirror_count`, `mirrors`), `lib/raid/raid.c` (`device_count`, `raids` as
//! rmeta/rimage pairs, `raid0_lvs`, `data_copies`, `data_offset`) and
//! `lib/snapshot/snapshot.c` (`origin`, `cow_store`, `chunk_size`), `lib/thin/thin.c`
//! (`metadata`, `pool`, `chunk_size`, `transaction_id`, `zero_new_blocks`;
//! `thin_pool`, `device_id`, `origin`, `external_origin`), `lib/cache_segtype/cache.c`
//! (`cache_pool`, `origin`, `cache_mode`) and `lib/writecache/writecache.c`
//! (`origin`, `writecache`). The LV graph (LVs on LVs) is walked with memoisation
//! and a depth bound.

use crate::bytes::uuid_key;
use crate::error::Error;
use crate::metadata_text::{Section, Value};
use crate::model::{
    Area, Blocker, LvInfo, LvRole, Raid5Layout, Seg, SegMap, SegmentInfo, VgInner, VgPv, MAX_AREAS,
    MAX_OBJECTS, MAX_SEGMENTS, MAX_STACK, POOL_REFUSED,
};
use crate::raid6::Raid6Layout;
use bytesource::SharedSource;
use std::collections::HashMap;
use std::sync::Arc;

/// Sector size in the metadata's units.
const SECTOR: u64 = 512;

/// A volume group found on the devices (or given as a metadata file).
#[derive(Clone)]
pub struct VolumeGroup {
    pub(crate) inner: Arc<VgInner>,
    /// Thin pools opened so far, by pool LV index (their superblock is read once).
    pub(crate) pools: Arc<std::sync::Mutex<HashMap<usize, Arc<crate::thin::ThinPool>>>>,
}

impl std::fmt::Debug for VolumeGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeGroup")
            .field("name", &self.inner.name)
            .field("uuid", &self.inner.uuid)
            .field("seqno", &self.inner.seqno)
            .field("extent_size", &self.inner.extent_size)
            .field("pvs", &self.inner.pvs)
            .field("lvs", &self.inner.lvs)
            .finish()
    }
}

impl VolumeGroup {
    /// VG name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    /// VG uuid (with dashes).
    pub fn uuid(&self) -> &str {
        &self.inner.uuid
    }
    /// Metadata sequence number of the copy in use.
    pub fn seqno(&self) -> u64 {
        self.inner.seqno
    }
    /// Extent size in bytes.
    pub fn extent_size(&self) -> u64 {
        self.inner.extent_size
    }
    /// PVs as the metadata lists them.
    pub fn pvs(&self) -> &[VgPv] {
        &self.inner.pvs
    }
    /// LVs, visible and hidden.
    pub fn lvs(&self) -> &[LvInfo] {
        &self.inner.lvs
    }
    /// The LV named `name`, if any.
    pub fn lv(&self, name: &str) -> Option<&LvInfo> {
        self.inner.lvs.iter().find(|l| l.name == name)
    }
    /// PVs the metadata lists that no device carries.
    pub fn missing_pvs(&self) -> Vec<&VgPv> {
        self.inner
            .pvs
            .iter()
            .filter(|p| p.present_on.is_none())
            .collect()
    }
    /// Opens LV `name` for reading. A thin LV reads through its pool, a
    /// snapshot's COW LV (or its hidden `snapshotN` LV) reads as the snapshot, a
    /// cache LV reads its origin; a thin pool itself is refused.
    pub fn open_lv(&self, name: &str) -> Result<crate::lv::LogicalVolume, Error> {
        let idx = self.lv_index(name)?;
        self.open_idx(idx, 0)
    }

    pub(crate) fn new(inner: VgInner) -> Self {
        Self {
            inner: Arc::new(inner),
            pools: Arc::default(),
        }
    }

    pub(crate) fn lv_index(&self, name: &str) -> Result<usize, Error> {
        self.inner
            .lvs
            .iter()
            .position(|l| l.name == name)
            .ok_or_else(|| Error::UnknownLv {
                vg: self.inner.name.clone(),
                lv: name.to_string(),
            })
    }

    /// Err when LV `idx` has a blocker (unsupported, invalid, refused).
    pub(crate) fn check_blocker(&self, idx: usize) -> Result<(), Error> {
        let name = self
            .inner
            .lvs
            .get(idx)
            .map(|l| l.name.clone())
            .unwrap_or_default();
        match self.inner.lv_block.get(idx) {
            Some(Some(Blocker::Unsupported(kind))) => Err(Error::UnsupportedSegment {
                vg: self.inner.name.clone(),
                lv: name,
                kind: kind.clone(),
            }),
            Some(Some(Blocker::Invalid(reason) | Blocker::Refused(reason))) => Err(Error::Lv {
                vg: self.inner.name.clone(),
                lv: name,
                reason: reason.clone(),
            }),
            _ => Ok(()),
        }
    }
}

/// The parts of a VG section needed before PVs are matched to devices.
#[derive(Clone, Debug)]
pub(crate) struct VgHead {
    pub name: String,
    pub uuid: String,
    pub seqno: u64,
}

/// Finds the VG section in a parsed metadata text (the one holding `seqno`).
pub(crate) fn find_vg_section(root: &Section) -> Option<(&str, &Section)> {
    root.sections()
        .find(|(_, s)| s.get("seqno").is_some() || s.get("physical_volumes").is_some())
}

pub(crate) fn vg_head(root: &Section) -> Result<VgHead, String> {
    let (name, sec) = find_vg_section(root).ok_or("no volume group section")?;
    let uuid = sec.str("id").ok_or("VG has no id")?.to_string();
    let seqno = sec
        .int("seqno")
        .and_then(|s| u64::try_from(s).ok())
        .ok_or("VG has no valid seqno")?;
    Ok(VgHead {
        name: name.to_string(),
        uuid,
        seqno,
    })
}

fn uint(sec: &Section, key: &str, what: &str) -> Result<u64, String> {
    match sec.value(key) {
        Some(Value::Int(i)) => {
            u64::try_from(*i).map_err(|_| format!("{what}: {key} = {i} is negative"))
        }
        Some(_) => Err(format!("{what}: {key} is not an integer")),
        None => Err(format!("{what}: {key} is missing")),
    }
}

fn sectors_to_bytes(v: u64, what: &str) -> Result<u64, String> {
    v.checked_mul(SECTOR)
        .ok_or_else(|| format!("{what}: {v} sectors overflow"))
}

/// Pairs `["name", extent, "name", extent, …]`.
fn area_pairs(sec: &Section, key: &str) -> Result<Vec<(String, u64)>, String> {
    let Some(Value::List(items)) = sec.value(key) else {
        return Err(format!("{key} list is missing"));
    };
    let mut out = Vec::new();
    let mut it = items.iter();
    while let Some(name) = it.next() {
        let Value::Str(name) = name else {
            return Err(format!("{key}: expected a name, found {name:?}"));
        };
        let ext = match it.next() {
            Some(Value::Int(e)) => {
                u64::try_from(*e).map_err(|_| format!("{key}: negative extent {e}"))?
            }
            other => {
                return Err(format!(
                    "{key}: expected an extent after {name:?}, found {other:?}"
                ))
            }
        };
        out.push((name.clone(), ext));
    }
    Ok(out)
}

/// An LV as parsed, before its segments are resolved.
struct RawLv {
    /// The LV's section name.
    name: String,
    /// Its `id` (uuid).
    id: String,
    /// Its `status` flags.
    status: Vec<String>,
    /// Its segments, sorted by start extent.
    segs: Vec<RawSeg>,
    /// The first problem found while parsing it.
    problem: Option<String>,
}

/// A segment as parsed, before areas are resolved.
struct RawSeg {
    info: SegmentInfo,
    /// Pair areas (striped, mirror) or names with extent 0 (raid images).
    areas: Vec<(String, u64)>,
    /// raid10 `data_copies`.
    copies: u64,
    /// Set when the type cannot be read.
    unsupported: Option<String>,
    invalid: Option<String>,
    /// Keys of the thin, snapshot and cache types.
    extra: Extra,
}

/// The LV references and settings of segment types that stack on other LVs by
/// name rather than by areas (lvm2's `lib/thin/thin.c`, `lib/snapshot/snapshot.c`,
/// `lib/cache_segtype/cache.c`, `lib/writecache/writecache.c`).
#[derive(Clone, Debug, Default)]
enum Extra {
    #[default]
    None,
    /// `thin-pool`: `metadata`, `pool`, `chunk_size` (sectors), `transaction_id`,
    /// `zero_new_blocks`.
    Pool {
        metadata: String,
        data: String,
        chunk_sectors: u64,
        transaction_id: u64,
        zero: bool,
    },
    /// `thin`: `thin_pool`, `device_id`, `transaction_id`, `origin`,
    /// `external_origin`.
    Thin {
        pool: String,
        device_id: u64,
        transaction_id: u64,
        origin: Option<String>,
        external_origin: Option<String>,
    },
    /// `snapshot`: `origin`, `cow_store`, `chunk_size` (sectors).
    Snapshot {
        origin: String,
        cow: String,
        chunk_sectors: u64,
    },
    /// `cache` (`origin`, `cache_pool`, `cache_mode`) and `writecache`
    /// (`origin`, `writecache`).
    Cache {
        origin: String,
        cache: String,
        mode: Option<String>,
    },
    /// `cache-pool`: its `cache_mode` (older lvm2 keeps the mode here).
    CachePool { mode: Option<String> },
}

/// dm-thin device ids are 24 bits (`MAX_DEV_ID` in dm-thin.c).
const MAX_THIN_DEV_ID: u64 = (1 << 24) - 1;

/// Reads the name-referencing keys of thin, snapshot and cache segments.
fn parse_extra(sec: &Section, kind: &str, what: &str) -> Result<Extra, String> {
    let name = |k: &str| {
        sec.str(k)
            .map(str::to_string)
            .ok_or_else(|| format!("{what}: {kind} segment has no {k}"))
    };
    let num = |k: &str| sec.int(k).and_then(|v| u64::try_from(v).ok());
    Ok(match kind {
        "thin-pool" => Extra::Pool {
            metadata: name("metadata")?,
            data: name("pool")?,
            chunk_sectors: num("chunk_size").ok_or_else(|| format!("{what}: no chunk_size"))?,
            transaction_id: num("transaction_id").unwrap_or(0),
            zero: num("zero_new_blocks") == Some(1),
        },
        "thin" => {
            let device_id = num("device_id").ok_or_else(|| format!("{what}: no device_id"))?;
            if device_id > MAX_THIN_DEV_ID {
                return Err(format!("{what}: device_id {device_id} is over 24 bits"));
            }
            Extra::Thin {
                pool: name("thin_pool")?,
                device_id,
                transaction_id: num("transaction_id").unwrap_or(0),
                origin: sec.str("origin").map(str::to_string),
                external_origin: sec.str("external_origin").map(str::to_string),
            }
        }
        "snapshot" => Extra::Snapshot {
            origin: name("origin")?,
            cow: name("cow_store")?,
            chunk_sectors: num("chunk_size").ok_or_else(|| format!("{what}: no chunk_size"))?,
        },
        "cache" => Extra::Cache {
            origin: name("origin")?,
            cache: name("cache_pool")?,
            mode: sec.str("cache_mode").map(str::to_string),
        },
        "writecache" => Extra::Cache {
            origin: name("origin")?,
            cache: name("writecache")?,
            mode: Some("writecache".to_string()),
        },
        "cache-pool" => Extra::CachePool {
            mode: sec.str("cache_mode").map(str::to_string),
        },
        _ => Extra::None,
    })
}

/// The keys of raid segments (lvm2's `lib/raid/raid.c`, `_raid_text_import`).
fn parse_raid(sec: &Section, kind: &str, what: &str, raw: &mut RawSeg) -> Result<(), String> {
    // lvm2's raid.c: raid0 lists its images as "raid0_lvs", the others as
    // "raids" (rmeta/rimage pairs); the count is "device_count", or
    // "stripe_count" for raid0.
    let names = if kind == "raid0" && sec.get("raid0_lvs").is_some() {
        sec.str_list("raid0_lvs")
    } else {
        sec.str_list("raids")
    };
    let device_count = sec
        .int("device_count")
        .or_else(|| sec.int("stripe_count"))
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(0);
    raw.info.stripe_count = device_count;
    raw.info.areas = names.clone();
    if let Some(s) = sec.int("stripe_size").and_then(|s| u64::try_from(s).ok()) {
        raw.info.stripe_size = sectors_to_bytes(s, what)?;
    }
    if let Some(c) = sec.int("data_copies").and_then(|c| u64::try_from(c).ok()) {
        raw.copies = c;
    }
    // "raids" holds rmeta/rimage pairs; raid0 may have images only.
    let dc = usize::try_from(device_count).unwrap_or(0);
    let images: Vec<String> = if dc > 0 && names.len() == dc.saturating_mul(2) {
        names.iter().skip(1).step_by(2).cloned().collect()
    } else if dc > 0 && names.len() == dc {
        names
    } else {
        raw.invalid = Some(format!(
            "{what}: device_count = {device_count} does not match {} raids entries",
            names.len()
        ));
        Vec::new()
    };
    if sec.int("data_offset").is_some_and(|o| o != 0) {
        raw.unsupported = Some(format!("{kind} with a data_offset (reshaping)"));
    }
    raw.areas = images.into_iter().map(|n| (n, 0)).collect();
    Ok(())
}

fn parse_segment(sec: &Section, what: &str) -> Result<RawSeg, String> {
    let start_extent = uint(sec, "start_extent", what)?;
    let extent_count = uint(sec, "extent_count", what)?;
    let kind = sec
        .str("type")
        .ok_or_else(|| format!("{what}: type is missing"))?
        .to_string();
    let mut raw = RawSeg {
        info: SegmentInfo {
            start_extent,
            extent_count,
            kind: kind.clone(),
            stripe_count: 0,
            stripe_size: 0,
            areas: Vec::new(),
        },
        areas: Vec::new(),
        copies: 2,
        unsupported: None,
        invalid: None,
        extra: Extra::None,
    };
    let fill_pairs = |raw: &mut RawSeg, key: &str, count_key: &str| {
        match area_pairs(sec, key) {
            Ok(a) => {
                raw.info.areas = a.iter().map(|(n, e)| format!("{n}:{e}")).collect();
                raw.areas = a;
            }
            Err(e) => raw.invalid = Some(format!("{what}: {e}")),
        }
        let count = sec.int(count_key).and_then(|c| u32::try_from(c).ok());
        raw.info.stripe_count =
            count.unwrap_or_else(|| u32::try_from(raw.areas.len()).unwrap_or(u32::MAX));
        if count.is_some_and(|c| usize::try_from(c).ok() != Some(raw.areas.len()))
            && raw.invalid.is_none()
        {
            raw.invalid = Some(format!(
                "{what}: {count_key} = {} but {} areas are listed",
                raw.info.stripe_count,
                raw.areas.len()
            ));
        }
    };
    match kind.as_str() {
        "striped" | "linear" => {
            fill_pairs(&mut raw, "stripes", "stripe_count");
            if raw.areas.len() > 1 {
                match sec.int("stripe_size").and_then(|s| u64::try_from(s).ok()) {
                    Some(s) if s > 0 => raw.info.stripe_size = sectors_to_bytes(s, what)?,
                    _ => {
                        raw.invalid =
                            Some(format!("{what}: striped segment has no valid stripe_size"))
                    }
                }
            }
        }
        "mirror" => fill_pairs(&mut raw, "mirrors", "mirror_count"),
        "raid1" | "raid10" | "raid0" | "raid0_meta" | "raid4" | "raid5" | "raid5_la"
        | "raid5_ra" | "raid5_ls" | "raid5_rs" | "raid5_n" | "raid6" | "raid6_zr" | "raid6_nr"
        | "raid6_nc" | "raid6_la_6" | "raid6_ra_6" | "raid6_ls_6" | "raid6_rs_6" | "raid6_n_6" => {
            parse_raid(sec, &kind, what, &mut raw)?;
        }
        "zero" | "error" => {}
        "thin-pool" | "thin" | "snapshot" | "cache" | "writecache" | "cache-pool" => {
            match parse_extra(sec, &kind, what) {
                Ok(e) => raw.extra = e,
                Err(e) => raw.invalid = Some(e),
            }
            if kind == "cache-pool" {
                raw.unsupported = Some("cache-pool (a cache's fast device, not a volume)".into());
            }
        }
        "vdo" | "vdo-pool" => {
            raw.unsupported = Some(format!(
                "{kind} (VDO deduplicates and compresses; its block map is not read)"
            ))
        }
        "integrity" => {
            raw.unsupported = Some(
                "integrity (dm-integrity interleaves checksum tags with the data; not read)"
                    .to_string(),
            )
        }
        _ => raw.unsupported = Some(kind.clone()),
    }
    // Space reserved at the start of a raid image for an out-of-place reshape
    // (lvm2 writes `reshape_count` on the image's segments) moves where the data
    // starts in a way this crate does not model.
    if sec.int("reshape_count").is_some_and(|r| r != 0) && raw.unsupported.is_none() {
        raw.unsupported = Some(format!("{kind} with reshape space"));
    }
    Ok(raw)
}

/// The VG's PVs, and for each the device source carrying it when found.
struct PvList {
    pvs: Vec<VgPv>,
    pv_sources: Vec<Option<SharedSource>>,
}

/// The `physical_volumes` section, each PV matched to a device by uuid.
fn parse_pvs(
    sec: &Section,
    sources: &HashMap<String, (String, SharedSource)>,
) -> Result<PvList, String> {
    let mut pvs = Vec::new();
    let mut pv_sources = Vec::new();
    if let Some(pvsec) = sec.section("physical_volumes") {
        for (pvname, p) in pvsec.sections() {
            if pvs.len() >= MAX_OBJECTS {
                return Err("too many PVs".to_string());
            }
            let what = format!("PV {pvname}");
            let pv_uuid = p
                .str("id")
                .ok_or_else(|| format!("{what}: id is missing"))?
                .to_string();
            let pe_start = sectors_to_bytes(uint(p, "pe_start", &what)?, &what)?;
            let pe_count = uint(p, "pe_count", &what)?;
            let found = sources.get(&uuid_key(&pv_uuid));
            pvs.push(VgPv {
                name: pvname.to_string(),
                uuid: pv_uuid,
                device_hint: p.str("device").unwrap_or("").to_string(),
                pe_start,
                pe_count,
                present_on: found.map(|(d, _)| d.clone()),
            });
            pv_sources.push(found.map(|(_, s)| s.clone()));
        }
    }
    Ok(PvList { pvs, pv_sources })
}

/// Builds a VG from the metadata root, attaching the given PV sources
/// (keyed by dash-free uuid, with the device name).
pub(crate) fn build_vg(
    root: &Section,
    sources: &HashMap<String, (String, SharedSource)>,
) -> Result<VgInner, Error> {
    let (name, sec) = find_vg_section(root).ok_or_else(|| Error::Vg {
        vg: "?".to_string(),
        reason: "metadata text holds no volume group section".to_string(),
    })?;
    let vg = name.to_string();
    let verr = |reason: String| Error::Vg {
        vg: vg.clone(),
        reason,
    };
    let uuid = sec
        .str("id")
        .ok_or_else(|| verr("no id".to_string()))?
        .to_string();
    let seqno = uint(sec, "seqno", "VG").map_err(verr)?;
    let extent_sectors = uint(sec, "extent_size", "VG").map_err(verr)?;
    if extent_sectors == 0 {
        return Err(verr("extent_size is 0".to_string()));
    }
    let extent_size = sectors_to_bytes(extent_sectors, "extent_size").map_err(verr)?;

    let PvList { pvs, pv_sources } = parse_pvs(sec, sources).map_err(verr)?;
    let pv_index: HashMap<&str, usize> = pvs
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();

    // Logical volumes, first pass: names, segments as written.
    let mut raw_lvs: Vec<RawLv> = Vec::new();
    if let Some(lvsec) = sec.section("logical_volumes") {
        for (lvname, l) in lvsec.sections() {
            if raw_lvs.len() >= MAX_OBJECTS {
                return Err(verr("too many LVs".to_string()));
            }
            let id = l.str("id").unwrap_or("").to_string();
            let status = l.str_list("status");
            let mut segs = Vec::new();
            let mut problem = None;
            for (sname, s) in l.sections() {
                if !sname.starts_with("segment") {
                    continue;
                }
                if segs.len() >= MAX_SEGMENTS {
                    problem = Some("too many segments".to_string());
                    break;
                }
                match parse_segment(s, sname) {
                    Ok(seg) => segs.push(seg),
                    Err(e) => {
                        problem = Some(e);
                        break;
                    }
                }
            }
            if let Some(c) = l.int("segment_count") {
                if usize::try_from(c).ok() != Some(segs.len()) && problem.is_none() {
                    problem = Some(format!(
                        "segment_count = {c} but {} segments found",
                        segs.len()
                    ));
                }
            }
            segs.sort_by_key(|s| s.info.start_extent);
            raw_lvs.push(RawLv {
                name: lvname.to_string(),
                id,
                status,
                segs,
                problem,
            });
        }
    }
    let lv_index: HashMap<&str, usize> = raw_lvs
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.as_str(), i))
        .collect();
    // Second pass: resolve areas, compute sizes.
    let Resolved {
        lvs,
        lv_segs,
        lv_block,
    } = resolve_lvs(&raw_lvs, extent_size, &pvs, &pv_index, &lv_index);
    let mut inner = VgInner {
        name: vg.clone(),
        uuid,
        seqno,
        extent_size,
        pvs,
        pv_sources,
        lvs,
        lv_segs,
        lv_block,
        snap_of: Vec::new(),
    };
    assign_roles(&mut inner, &raw_lvs, &lv_index);
    // Third pass: propagate blockers from sub-LVs, and work out readability. Both
    // are memoised walks over the LV graph, so a hostile graph (wide fan-out, or a
    // cycle) costs one visit per LV, never an exponential walk.
    let n = inner.lvs.len();
    let mut memo = vec![Memo::Todo; n];
    let blocks: Vec<Option<Blocker>> = (0..n)
        .map(|i| stacked_blocker(&inner, i, 0, &mut memo))
        .collect();
    inner.lv_block = blocks;
    let mut memo = vec![Memo::Todo; n];
    for i in 0..n {
        let r = readability(&inner, i, 0, &mut memo);
        if let Some(lv) = inner.lvs.get_mut(i) {
            lv.readable = r;
        }
    }
    Ok(inner)
}

/// Every LV's public description, its resolved segments and its blocker, by LV index.
struct Resolved {
    lvs: Vec<LvInfo>,
    lv_segs: Vec<Vec<Seg>>,
    lv_block: Vec<Option<Blocker>>,
}

/// Resolves every LV's segments; an LV's first problem becomes its blocker.
fn resolve_lvs(
    raw_lvs: &[RawLv],
    extent_size: u64,
    pvs: &[VgPv],
    pv_index: &HashMap<&str, usize>,
    lv_index: &HashMap<&str, usize>,
) -> Resolved {
    let mut lvs = Vec::new();
    let mut lv_segs = Vec::new();
    let mut lv_block = Vec::new();
    for RawLv {
        name: lvname,
        id,
        status,
        segs,
        problem,
    } in raw_lvs
    {
        let mut block: Option<Blocker> = problem.clone().map(Blocker::Invalid);
        let mut out = Vec::new();
        let mut expect_ext: u64 = 0;
        let mut size: u64 = 0;
        for rs in segs {
            let what = format!("segment at extent {}", rs.info.start_extent);
            match resolve_segment(rs, &what, extent_size, pvs, pv_index, lv_index) {
                Ok(seg) => {
                    if rs.info.start_extent != expect_ext && block.is_none() {
                        block = Some(Blocker::Invalid(format!(
                            "{what}: expected a segment at extent {expect_ext} (gap or overlap)"
                        )));
                    }
                    expect_ext = rs.info.start_extent.saturating_add(rs.info.extent_count);
                    size = size.max(seg.start.saturating_add(seg.len));
                    let b = match &seg.map {
                        SegMap::Unsupported(k) => Some(Blocker::Unsupported(k.clone())),
                        SegMap::Invalid(r) => Some(Blocker::Invalid(r.clone())),
                        SegMap::ThinPool { .. } => Some(Blocker::Refused(POOL_REFUSED.into())),
                        SegMap::Thin { .. } | SegMap::Snapshot { .. } if segs.len() != 1 => {
                            Some(Blocker::Invalid(format!(
                                "{what}: a {} segment must be the LV's only one",
                                rs.info.kind
                            )))
                        }
                        _ => None,
                    };
                    if block.is_none() {
                        block = b;
                    }
                    out.push(seg);
                }
                Err(e) => {
                    if block.is_none() {
                        block = Some(Blocker::Invalid(e));
                    }
                }
            }
        }
        lvs.push(LvInfo {
            name: lvname.clone(),
            uuid: id.clone(),
            size,
            visible: status.iter().any(|s| s == "VISIBLE"),
            status: status.clone(),
            segments: segs.iter().map(|s| s.info.clone()).collect(),
            readable: Ok(()),
            role: LvRole::Plain,
            warnings: Vec::new(),
        });
        lv_segs.push(out);
        lv_block.push(block);
    }
    Resolved {
        lvs,
        lv_segs,
        lv_block,
    }
}

/// Fills in each LV's [`LvRole`] and warnings from the thin, snapshot and cache
/// segments, and links snapshot COW LVs to their snapshot.
fn assign_roles(inner: &mut VgInner, raw_lvs: &[RawLv], lv_index: &HashMap<&str, usize>) {
    let n = inner.lvs.len();
    inner.snap_of = vec![None; n];
    let mut roles: Vec<(usize, LvRole)> = Vec::new();
    let mut thin_of_pool: HashMap<usize, Vec<String>> = HashMap::new();
    let mut snaps_of: HashMap<usize, Vec<String>> = HashMap::new();
    let mut warnings: Vec<(usize, String)> = Vec::new();
    let mut show: Vec<(usize, bool)> = Vec::new();
    let size_of = |i: usize| inner.lvs.get(i).map(|l| l.size).unwrap_or(0);
    for (
        i,
        RawLv {
            name: lvname, segs, ..
        },
    ) in raw_lvs.iter().enumerate()
    {
        for rs in segs {
            match &rs.extra {
                Extra::Pool {
                    metadata,
                    data,
                    chunk_sectors,
                    transaction_id,
                    zero,
                } => roles.push((
                    i,
                    LvRole::ThinPool {
                        metadata_lv: metadata.clone(),
                        data_lv: data.clone(),
                        chunk_size: chunk_sectors.saturating_mul(SECTOR),
                        transaction_id: *transaction_id,
                        zero_new_blocks: *zero,
                        thin_lvs: Vec::new(),
                    },
                )),
                Extra::Thin {
                    pool,
                    device_id,
                    transaction_id,
                    origin,
                    external_origin,
                } => {
                    if let Some(&p) = lv_index.get(pool.as_str()) {
                        thin_of_pool.entry(p).or_default().push(lvname.clone());
                    }
                    roles.push((
                        i,
                        LvRole::Thin {
                            pool: pool.clone(),
                            device_id: *device_id,
                            transaction_id: *transaction_id,
                            origin: origin.clone(),
                            external_origin: external_origin.clone(),
                        },
                    ));
                }
                Extra::Snapshot {
                    origin,
                    cow,
                    chunk_sectors,
                } => {
                    roles.push((
                        i,
                        LvRole::Snapshot {
                            origin: origin.clone(),
                            cow_store: cow.clone(),
                        },
                    ));
                    if let Some(&c) = lv_index.get(cow.as_str()) {
                        if let Some(slot) = inner.snap_of.get_mut(c) {
                            *slot = Some(i);
                        }
                        // lvm2 marks the snapshotN LV visible and the COW hidden,
                        // but shows (and names in /dev) the snapshot by the COW's
                        // name: follow what users see.
                        show.push((c, inner.lvs.get(i).is_some_and(|l| l.visible)));
                        show.push((i, false));
                        roles.push((
                            c,
                            LvRole::SnapshotCow {
                                snapshot_lv: lvname.clone(),
                                origin: origin.clone(),
                                chunk_size: chunk_sectors.saturating_mul(SECTOR),
                                snapshot_size: size_of(i),
                            },
                        ));
                    }
                    if let Some(&o) = lv_index.get(origin.as_str()) {
                        snaps_of.entry(o).or_default().push(cow.clone());
                    }
                }
                Extra::Cache {
                    origin,
                    cache,
                    mode,
                } => {
                    let (role, warning) = cache_role(raw_lvs, lv_index, origin, cache, mode);
                    roles.push((i, role));
                    warnings.extend(warning.map(|w| (i, w)));
                }
                Extra::None | Extra::CachePool { .. } => {}
            }
        }
    }
    for (i, vis) in show {
        if let Some(l) = inner.lvs.get_mut(i) {
            l.visible = vis;
        }
    }
    for (o, snapshots) in snaps_of {
        roles.push((o, LvRole::Origin { snapshots }));
    }
    for (i, mut role) in roles {
        if let LvRole::ThinPool { thin_lvs, .. } = &mut role {
            *thin_lvs = thin_of_pool.remove(&i).unwrap_or_default();
        }
        if let Some(l) = inner.lvs.get_mut(i) {
            l.role = role;
        }
    }
    for (i, w) in warnings {
        if let Some(l) = inner.lvs.get_mut(i) {
            l.warnings.push(w);
        }
    }
}

/// The role of a cache/writecache LV, and the warning its mode calls for.
fn cache_role(
    raw_lvs: &[RawLv],
    lv_index: &HashMap<&str, usize>,
    origin: &str,
    cache: &str,
    mode: &Option<String>,
) -> (LvRole, Option<String>) {
    // lvm2 keeps the mode on the cache segment (cache volumes) or on the cache
    // pool's segment; its default is writethrough.
    let mode = mode
        .clone()
        .or_else(|| cache_pool_mode(raw_lvs, lv_index, cache))
        .unwrap_or_else(|| "writethrough".to_string());
    let warning = (mode != "writethrough" && mode != "passthrough").then(|| {
        format!(
            "read from the origin {origin}: blocks dirty in the cache {cache} ({mode} mode) \
             may be newer than these"
        )
    });
    let role = LvRole::Cache {
        origin: origin.to_string(),
        cache: cache.to_string(),
        mode,
    };
    (role, warning)
}

/// `cache_mode` of the cache pool LV `name` (where lvm2 keeps it for cache pools).
fn cache_pool_mode(
    raw_lvs: &[RawLv],
    lv_index: &HashMap<&str, usize>,
    name: &str,
) -> Option<String> {
    let l = raw_lvs.get(*lv_index.get(name)?)?;
    l.segs.iter().find_map(|s| match &s.extra {
        Extra::CachePool { mode } => mode.clone(),
        _ => None,
    })
}

fn resolve_segment(
    rs: &RawSeg,
    what: &str,
    extent_size: u64,
    pvs: &[VgPv],
    pv_index: &HashMap<&str, usize>,
    lv_index: &HashMap<&str, usize>,
) -> Result<Seg, String> {
    let start = rs
        .info
        .start_extent
        .checked_mul(extent_size)
        .ok_or_else(|| format!("{what}: start overflows"))?;
    let len = rs
        .info
        .extent_count
        .checked_mul(extent_size)
        .ok_or_else(|| format!("{what}: length overflows"))?;
    start
        .checked_add(len)
        .ok_or_else(|| format!("{what}: end overflows"))?;
    let mk = |map| Ok(Seg { start, len, map });
    if let Some(r) = &rs.invalid {
        return mk(SegMap::Invalid(r.clone()));
    }
    if let Some(k) = &rs.unsupported {
        return mk(SegMap::Unsupported(k.clone()));
    }
    if let Some(map) = named_map(&rs.extra, what, lv_index) {
        return mk(map);
    }
    let n = u64::try_from(rs.areas.len()).unwrap_or(u64::MAX);
    if n > MAX_AREAS {
        return mk(SegMap::Invalid(format!(
            "{what}: {n} areas is more than lvm2 allows"
        )));
    }
    let area_extents = match area_extents(rs, n, what) {
        Ok(a) => a,
        Err(r) => return mk(SegMap::Invalid(r)),
    };
    let mut areas = Vec::new();
    for (name, ext) in &rs.areas {
        let off_ext = ext;
        let end_ext = off_ext
            .checked_add(area_extents)
            .ok_or_else(|| format!("{what}: area {name}:{ext} overflows"))?;
        if let Some(&pv) = pv_index.get(name.as_str()) {
            let p = pvs.get(pv).ok_or("internal: PV index")?;
            if end_ext > p.pe_count {
                return mk(SegMap::Invalid(format!(
                    "{what}: area {name}:{ext} runs past the PV's {} extents",
                    p.pe_count
                )));
            }
            let offset = off_ext
                .checked_mul(extent_size)
                .and_then(|b| b.checked_add(p.pe_start))
                .ok_or_else(|| format!("{what}: area {name}:{ext} overflows"))?;
            areas.push(Area::Pv { pv, offset });
        } else if let Some(&lv) = lv_index.get(name.as_str()) {
            let offset = off_ext
                .checked_mul(extent_size)
                .ok_or_else(|| format!("{what}: area {name}:{ext} overflows"))?;
            areas.push(Area::Lv { lv, offset });
        } else {
            return mk(SegMap::Invalid(format!(
                "{what}: area {name:?} is neither a PV nor an LV of this VG"
            )));
        }
    }
    mk(area_map(rs, n, areas, what))
}

/// The map of a segment that names other LVs instead of listing areas (thin
/// pool, thin, snapshot, cache, writecache); None for the others.
fn named_map(extra: &Extra, what: &str, lv_index: &HashMap<&str, usize>) -> Option<SegMap> {
    let lv = |n: &str| {
        lv_index
            .get(n)
            .copied()
            .ok_or_else(|| format!("{what}: LV {n:?} is not in this VG"))
    };
    let r: Result<SegMap, String> = (|| {
        Ok(match extra {
            Extra::None | Extra::CachePool { .. } => return Err(String::new()),
            Extra::Pool {
                metadata,
                data,
                chunk_sectors,
                ..
            } => SegMap::ThinPool {
                meta: lv(metadata)?,
                data: lv(data)?,
                chunk: sectors_to_bytes(*chunk_sectors, what)?,
            },
            Extra::Thin {
                pool,
                device_id,
                external_origin,
                ..
            } => SegMap::Thin {
                pool: lv(pool)?,
                device_id: *device_id,
                external_origin: external_origin.as_deref().map(lv).transpose()?,
            },
            Extra::Snapshot {
                origin,
                cow,
                chunk_sectors,
            } => SegMap::Snapshot {
                origin: lv(origin)?,
                cow: lv(cow)?,
                chunk: sectors_to_bytes(*chunk_sectors, what)?,
            },
            // A cache LV reads its origin sub-LV whole (the caveat about dirty
            // blocks is in the LV's warnings).
            Extra::Cache { origin, .. } => SegMap::Striped {
                stripe_size: 0,
                areas: vec![Area::Lv {
                    lv: lv(origin)?,
                    offset: 0,
                }],
            },
        })
    })();
    match r {
        Ok(m) => Some(m),
        Err(e) if e.is_empty() => None,
        Err(e) => Some(SegMap::Invalid(e)),
    }
}

/// Extents each area of a segment covers.
fn area_extents(rs: &RawSeg, n: u64, what: &str) -> Result<u64, String> {
    let ec = rs.info.extent_count;
    let kind = rs.info.kind.as_str();
    // Data images of the parity raids.
    let parity = if Raid5Layout::from_kind(kind).is_some() {
        Some(1)
    } else if Raid6Layout::from_kind(kind).is_some() {
        Some(2)
    } else {
        None
    };
    Ok(match (kind, parity) {
        ("striped" | "linear" | "raid0" | "raid0_meta", _) => {
            if n == 0 || ec.checked_rem(n) != Some(0) {
                return Err(format!(
                    "{what}: {ec} extents do not divide into {n} stripes"
                ));
            }
            ec.checked_div(n).unwrap_or(0)
        }
        ("raid10", _) => {
            // Each image holds extent_count * copies / n extents.
            ec.checked_mul(rs.copies.max(1))
                .and_then(|x| x.checked_div(n))
                .ok_or_else(|| format!("{what}: raid10 with no images"))?
        }
        (_, Some(p)) => {
            let data = n.saturating_sub(p);
            if data == 0 || ec.checked_rem(data) != Some(0) {
                return Err(format!(
                    "{what}: {ec} extents do not divide into {data} data images"
                ));
            }
            ec.checked_div(data).unwrap_or(0)
        }
        _ => ec,
    })
}

/// The map of a segment listing areas, once they are resolved.
fn area_map(rs: &RawSeg, n: u64, areas: Vec<Area>, what: &str) -> SegMap {
    let kind = rs.info.kind.as_str();
    let ss = rs.info.stripe_size;
    match kind {
        "striped" | "linear" | "raid0" | "raid0_meta" => {
            if areas.len() > 1 && ss == 0 {
                return SegMap::Invalid(format!("{what}: striped with stripe_size 0"));
            }
            SegMap::Striped {
                stripe_size: if n > 1 { ss } else { 0 },
                areas,
            }
        }
        "mirror" | "raid1" => {
            if areas.is_empty() {
                SegMap::Invalid(format!("{what}: no legs"))
            } else {
                SegMap::Mirror { legs: areas }
            }
        }
        "raid10" => {
            if ss == 0 || rs.copies == 0 || rs.copies > n {
                SegMap::Invalid(format!(
                    "{what}: raid10 needs a stripe_size and 1..={n} copies"
                ))
            } else {
                SegMap::Raid10 {
                    stripe_size: ss,
                    copies: rs.copies,
                    images: areas,
                }
            }
        }
        "zero" => SegMap::Zero,
        "error" => SegMap::ErrorTarget,
        k => {
            if let Some(layout) = Raid5Layout::from_kind(k) {
                if ss > 0 && n >= 2 {
                    return SegMap::Raid5 {
                        stripe_size: ss,
                        layout,
                        images: areas,
                    };
                }
                return SegMap::Invalid(format!(
                    "{what}: {k} needs a stripe_size and at least 2 images"
                ));
            }
            if let Some(layout) = Raid6Layout::from_kind(k) {
                if ss > 0 && n >= 3 {
                    return SegMap::Raid6 {
                        stripe_size: ss,
                        layout,
                        images: areas,
                    };
                }
                return SegMap::Invalid(format!(
                    "{what}: {k} needs a stripe_size and at least 3 images"
                ));
            }
            SegMap::Unsupported(k.to_string())
        }
    }
}

fn len_u64_of<T>(v: &[T]) -> u64 {
    u64::try_from(v.len()).unwrap_or(u64::MAX)
}

fn areas_of(seg: &Seg) -> &[Area] {
    match &seg.map {
        SegMap::Striped { areas, .. } => areas,
        SegMap::Mirror { legs } => legs,
        SegMap::Raid10 { images, .. } => images,
        SegMap::Raid5 { images, .. } => images,
        SegMap::Raid6 { images, .. } => images,
        _ => &[],
    }
}

/// A memoised result of a walk over the LV graph.
#[derive(Clone)]
enum Memo<T> {
    Todo,
    Busy,
    Done(T),
}

const CYCLE: &str = "LVs are stacked in a cycle";
const TOO_DEEP: &str = "LVs are stacked too deep";

/// The LV's own blocker, else the first one found in the LVs it stacks on.
fn stacked_blocker(
    vg: &VgInner,
    lv: usize,
    depth: u32,
    memo: &mut [Memo<Option<Blocker>>],
) -> Option<Blocker> {
    match memo.get(lv) {
        Some(Memo::Done(b)) => return b.clone(),
        Some(Memo::Busy) => return Some(Blocker::Invalid(CYCLE.to_string())),
        Some(Memo::Todo) => {}
        None => return Some(Blocker::Invalid("internal: LV index".to_string())),
    }
    if depth > MAX_STACK {
        return Some(Blocker::Invalid(TOO_DEEP.to_string()));
    }
    if let Some(m) = memo.get_mut(lv) {
        *m = Memo::Busy;
    }
    let mut result = vg.lv_block.get(lv).cloned().flatten();
    if result.is_none() {
        'outer: for seg in vg.lv_segs.get(lv).map(Vec::as_slice).unwrap_or_default() {
            for a in areas_of(seg) {
                if let Area::Lv { lv: sub, .. } = a {
                    if let Some(b) = stacked_blocker(vg, *sub, depth.saturating_add(1), memo) {
                        result = Some(b);
                        break 'outer;
                    }
                }
            }
        }
    }
    if let Some(m) = memo.get_mut(lv) {
        *m = Memo::Done(result.clone());
    }
    result
}

fn pv_missing_msg(p: &VgPv) -> String {
    format!("PV {} (uuid {}) is missing", p.name, p.uuid)
}

/// Ok when every byte of the LV can be read from the PVs present.
fn readability(
    vg: &VgInner,
    lv: usize,
    depth: u32,
    memo: &mut [Memo<Result<(), String>>],
) -> Result<(), String> {
    match memo.get(lv) {
        Some(Memo::Done(r)) => return r.clone(),
        Some(Memo::Busy) => return Err(CYCLE.to_string()),
        Some(Memo::Todo) => {}
        None => return Err("internal: LV index".to_string()),
    }
    if depth > MAX_STACK {
        return Err(TOO_DEEP.to_string());
    }
    if let Some(m) = memo.get_mut(lv) {
        *m = Memo::Busy;
    }
    let r = readability_inner(vg, lv, depth, memo);
    if let Some(m) = memo.get_mut(lv) {
        *m = Memo::Done(r.clone());
    }
    r
}

/// Err when some raid10 chunk has every copy on a bad image. In the near layout
/// chunk c's copies sit on images (c*copies + j) % n, a pattern that repeats
/// after n chunks.
fn raid10_ok(status: &[Result<(), String>], copies: u64) -> Result<(), String> {
    let n = len_u64_of(status);
    for c in 0..n {
        let mut first_err = None;
        let mut any_ok = false;
        for j in 0..copies {
            let dev = c
                .checked_mul(copies)
                .and_then(|x| x.checked_add(j))
                .and_then(|x| x.checked_rem(n))
                .and_then(|d| usize::try_from(d).ok())
                .and_then(|d| status.get(d));
            match dev {
                Some(Ok(())) => any_ok = true,
                Some(Err(e)) if first_err.is_none() => first_err = Some(e.clone()),
                _ => {}
            }
        }
        if !any_ok {
            if let Some(e) = first_err {
                return Err(e);
            }
        }
    }
    Ok(())
}

fn readability_inner(
    vg: &VgInner,
    lv: usize,
    depth: u32,
    memo: &mut [Memo<Result<(), String>>],
) -> Result<(), String> {
    match vg.lv_block.get(lv) {
        Some(Some(Blocker::Unsupported(k))) => return Err(format!("unsupported segment type {k}")),
        Some(Some(Blocker::Invalid(r) | Blocker::Refused(r))) => return Err(r.clone()),
        _ => {}
    }
    // A snapshot's COW LV also needs its origin.
    if let Some(Some(s)) = vg.snap_of.get(lv) {
        for seg in vg.lv_segs.get(*s).map(Vec::as_slice).unwrap_or_default() {
            if let SegMap::Snapshot { origin, .. } = &seg.map {
                readability(vg, *origin, depth.saturating_add(1), memo)?;
            }
        }
    }
    let mut area_ok = |a: &Area| -> Result<(), String> {
        match a {
            Area::Pv { pv, .. } => match (vg.pv_sources.get(*pv), vg.pvs.get(*pv)) {
                (Some(Some(_)), _) => Ok(()),
                (_, Some(p)) => Err(pv_missing_msg(p)),
                _ => Err("internal: PV index".to_string()),
            },
            Area::Lv { lv, .. } => readability(vg, *lv, depth.saturating_add(1), memo),
        }
    };
    for seg in vg.lv_segs.get(lv).map(Vec::as_slice).unwrap_or_default() {
        match &seg.map {
            SegMap::Mirror { legs } => {
                let results: Vec<_> = legs.iter().map(&mut area_ok).collect();
                if !results.iter().any(Result::is_ok) {
                    if let Some(Err(e)) = results.into_iter().next() {
                        return Err(e);
                    }
                }
            }
            SegMap::Raid10 { images, copies, .. } => {
                let status: Vec<Result<(), String>> = images.iter().map(&mut area_ok).collect();
                raid10_ok(&status, *copies)?;
            }
            SegMap::Striped { areas, .. } => {
                for a in areas {
                    area_ok(a)?;
                }
            }
            SegMap::Raid5 { images, .. } | SegMap::Raid6 { images, .. } => {
                // Parity rebuilds any one missing image (raid5), P and Q any two.
                let tolerated = if matches!(seg.map, SegMap::Raid6 { .. }) {
                    2
                } else {
                    1
                };
                let bad: Vec<String> = images.iter().filter_map(|a| area_ok(a).err()).collect();
                if bad.len() > tolerated {
                    if let Some(e) = bad.into_iter().next() {
                        return Err(e);
                    }
                }
            }
            SegMap::Thin {
                pool,
                external_origin,
                ..
            } => {
                let pool_segs = vg.lv_segs.get(*pool).map(Vec::as_slice).unwrap_or_default();
                for ps in pool_segs {
                    if let SegMap::ThinPool { meta, data, .. } = &ps.map {
                        area_ok(&Area::Lv {
                            lv: *meta,
                            offset: 0,
                        })?;
                        area_ok(&Area::Lv {
                            lv: *data,
                            offset: 0,
                        })?;
                    }
                }
                if let Some(e) = external_origin {
                    area_ok(&Area::Lv { lv: *e, offset: 0 })?;
                }
            }
            SegMap::Snapshot { origin, cow, .. } => {
                area_ok(&Area::Lv {
                    lv: *origin,
                    offset: 0,
                })?;
                // The COW LV's own segments (its readability includes the origin).
                for cs in vg.lv_segs.get(*cow).map(Vec::as_slice).unwrap_or_default() {
                    for a in areas_of(cs) {
                        area_ok(a)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Raid5Layout;

    /// The 3-disk tables from md's documentation of each layout: for data chunk
    /// 0..6, which disk holds it (and the row's parity disk).
    #[test]
    fn raid5_layouts_match_md_tables() {
        let table = |l: Raid5Layout| -> Vec<(u64, u64)> {
            (0..6)
                .map(|c| {
                    let (_, dd, pd) = l.place(c, 3).unwrap();
                    (dd, pd)
                })
                .collect()
        };
        // left-symmetric:  D0 D1 P / D3 P D2 / P D4 D5
        assert_eq!(
            table(Raid5Layout::LeftSymmetric),
            vec![(0, 2), (1, 2), (2, 1), (0, 1), (1, 0), (2, 0)]
        );
        // left-asymmetric: D0 D1 P / D2 P D3 / P D4 D5
        assert_eq!(
            table(Raid5Layout::LeftAsymmetric),
            vec![(0, 2), (1, 2), (0, 1), (2, 1), (1, 0), (2, 0)]
        );
        // right-asymmetric: P D0 D1 / D2 P D3 / D4 D5 P
        assert_eq!(
            table(Raid5Layout::RightAsymmetric),
            vec![(1, 0), (2, 0), (0, 1), (2, 1), (0, 2), (1, 2)]
        );
        // right-symmetric: P D0 D1 / D3 P D2 / D4 D5 P
        assert_eq!(
            table(Raid5Layout::RightSymmetric),
            vec![(1, 0), (2, 0), (2, 1), (0, 1), (0, 2), (1, 2)]
        );
        // parity on the last disk (raid4, raid5_n)
        assert_eq!(
            table(Raid5Layout::ParityN),
            vec![(0, 2), (1, 2), (0, 2), (1, 2), (0, 2), (1, 2)]
        );
        assert_eq!(Raid5Layout::ParityN.place(0, 1), None);
    }
}
