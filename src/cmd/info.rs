//! `vmdkrecover info`: the whole stack as a tree (or JSON, `"schema": 1`).

use super::{Common, Outcome};
use crate::stack::{Content, Origin, Stack};
use anyhow::Result;
use serde::Serialize;
use std::io::Write;

/// JSON schema version of `info --json`; bumped on incompatible changes.
pub const INFO_SCHEMA: u32 = 1;

#[derive(Serialize)]
struct InfoJson {
    schema: u32,
    disks: Vec<DiskJson>,
    physical_volumes: Vec<PvJson>,
    volume_groups: Vec<VgJson>,
    volumes: Vec<VolumeJson>,
    /// The guest as its fstab assembles it (absent when no volume holds /etc/fstab).
    #[serde(skip_serializing_if = "Option::is_none")]
    guest: Option<GuestJson>,
    warnings: Vec<String>,
}

/// `guest` in `info --json`.
#[derive(Serialize)]
struct GuestJson {
    /// `PRETTY_NAME` of /etc/os-release, else /etc/redhat-release or similar.
    #[serde(skip_serializing_if = "Option::is_none")]
    os: Option<String>,
    /// /etc/hostname.
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
    /// Filesystems placed in the guest tree, root first.
    mounts: Vec<crate::spec::PlacedMount>,
    /// fstab lines left out, with why.
    skipped: Vec<crate::spec::SkippedMount>,
}

/// Reads the guest's identity through its own tree.
fn guest_json(stack: &Stack) -> Option<GuestJson> {
    let (tree, layout) = crate::spec::open_guest(stack, false).ok()?;
    let read = |p: &[u8]| {
        crate::spec::read_small_file(&*tree.fs, p, 1 << 16)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let os = read(b"/etc/os-release")
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim().trim_matches('"').to_string())
            })
        })
        .or_else(|| {
            [
                &b"/etc/redhat-release"[..],
                b"/etc/SuSE-release",
                b"/etc/debian_version",
            ]
            .iter()
            .find_map(|p| read(p))
            .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
        })
        .filter(|s| !s.is_empty());
    let hostname = read(b"/etc/hostname")
        .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
        .filter(|s| !s.is_empty());
    Some(GuestJson {
        os,
        hostname,
        mounts: layout.mounts,
        skipped: layout.skipped,
    })
}

#[derive(Serialize)]
struct DiskJson {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    slot: Option<String>,
    path: String,
    format: String,
    size: u64,
    extents: Vec<ExtentJson>,
    chain: Vec<String>,
    #[serde(serialize_with = "table_kind_json")]
    partition_table: crate::partitions::TableKind,
    #[serde(serialize_with = "partitions_json")]
    partitions: Vec<crate::partitions::Partition>,
}

/// `partition_table`: `none`, `mbr` or `gpt`.
fn table_kind_json<S: serde::Serializer>(
    k: &crate::partitions::TableKind,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(k.as_str())
}

/// One entry of `partitions` (the partitions crate has no serde; the fields are
/// the documented ones, plus `type_guid`, `attributes` and `readable`).
#[derive(Serialize)]
struct PartitionJson {
    number: u32,
    start: u64,
    size: u64,
    type_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mbr_type: Option<u8>,
    extended: bool,
    bootable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpt_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    part_uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    type_guid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attributes: Option<u64>,
    readable: bool,
}

fn partitions_json<S: serde::Serializer>(
    parts: &[crate::partitions::Partition],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(parts.iter().map(|p| PartitionJson {
        number: p.number,
        start: p.start,
        size: p.size,
        type_name: p.type_name.clone(),
        mbr_type: p.mbr_type,
        extended: p.extended,
        bootable: p.bootable,
        gpt_name: p.gpt_name.clone(),
        part_uuid: p.part_uuid.map(|g| g.to_string()),
        type_guid: p.type_guid.map(|g| g.to_string()),
        attributes: p.type_guid.map(|_| p.attributes),
        readable: p.readable,
    }))
}

#[derive(Serialize)]
struct ExtentJson {
    access: String,
    kind: String,
    sectors: u64,
    offset_sectors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
}

#[derive(Serialize)]
struct PvJson {
    device: String,
    uuid: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    vg: Option<String>,
}

#[derive(Serialize)]
struct VgJson {
    name: String,
    uuid: String,
    seqno: u64,
    extent_size: u64,
    pvs: Vec<VgPvJson>,
    lvs: Vec<LvJson>,
}

#[derive(Serialize)]
struct VgPvJson {
    name: String,
    uuid: String,
    device_hint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    found_on: Option<String>,
    missing: bool,
}

#[derive(Serialize)]
struct LvJson {
    name: String,
    volume: String,
    uuid: String,
    size: u64,
    hidden: bool,
    status: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unreadable: Option<String>,
    segments: Vec<SegmentJson>,
    /// What the LV is for, beyond holding data: a thin pool, a thin LV, a classic
    /// snapshot, an origin, a cache (absent for plain LVs).
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<RoleJson>,
    /// What the LVM reader noticed (a writeback cache, a pool's metadata snapshot).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// `role` of an LV in `info --json`.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum RoleJson {
    ThinPool {
        metadata_lv: String,
        data_lv: String,
        chunk_size: u64,
        transaction_id: u64,
        thin_lvs: Vec<String>,
        /// From the pool's own metadata (absent when it cannot be read).
        #[serde(skip_serializing_if = "Option::is_none")]
        data_blocks: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        data_blocks_used: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata_blocks: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata_blocks_used: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata_snapshot: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    Thin {
        pool: String,
        device_id: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        mapped_blocks: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        origin: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        external_origin: Option<String>,
    },
    Snapshot {
        origin: String,
        chunk_size: u64,
        snapshot_size: u64,
    },
    SnapshotSegment {
        origin: String,
        cow_store: String,
    },
    Origin {
        snapshots: Vec<String>,
    },
    Cache {
        origin: String,
        cache: String,
        mode: String,
    },
}

fn role_json(vg: &lvm2::VolumeGroup, lv: &lvm2::LvInfo) -> Option<RoleJson> {
    Some(match &lv.role {
        lvm2::LvRole::Plain => return None,
        lvm2::LvRole::ThinPool {
            metadata_lv,
            data_lv,
            chunk_size,
            transaction_id,
            thin_lvs,
            ..
        } => {
            let pool = vg.thin_pool(&lv.name);
            let (d, m, snap, error) = match &pool {
                Ok(p) => (
                    Some(p.data_space()),
                    Some(p.metadata_space()),
                    p.metadata_snap(),
                    None,
                ),
                Err(e) => (None, None, None, Some(e.to_string())),
            };
            RoleJson::ThinPool {
                metadata_lv: metadata_lv.clone(),
                data_lv: data_lv.clone(),
                chunk_size: *chunk_size,
                transaction_id: *transaction_id,
                thin_lvs: thin_lvs.clone(),
                data_blocks: d.map(|s| s.nr_blocks),
                data_blocks_used: d.map(|s| s.nr_allocated),
                metadata_blocks: m.map(|s| s.nr_blocks),
                metadata_blocks_used: m.map(|s| s.nr_allocated),
                metadata_snapshot: snap,
                error,
            }
        }
        lvm2::LvRole::Thin {
            pool,
            device_id,
            origin,
            external_origin,
            ..
        } => RoleJson::Thin {
            pool: pool.clone(),
            device_id: *device_id,
            mapped_blocks: vg
                .thin_device_details(&lv.name)
                .ok()
                .flatten()
                .map(|d| d.mapped_blocks),
            origin: origin.clone(),
            external_origin: external_origin.clone(),
        },
        lvm2::LvRole::SnapshotCow {
            origin,
            chunk_size,
            snapshot_size,
            ..
        } => RoleJson::Snapshot {
            origin: origin.clone(),
            chunk_size: *chunk_size,
            snapshot_size: *snapshot_size,
        },
        lvm2::LvRole::Snapshot { origin, cow_store } => RoleJson::SnapshotSegment {
            origin: origin.clone(),
            cow_store: cow_store.clone(),
        },
        lvm2::LvRole::Origin { snapshots } => RoleJson::Origin {
            snapshots: snapshots.clone(),
        },
        lvm2::LvRole::Cache {
            origin,
            cache,
            mode,
        } => RoleJson::Cache {
            origin: origin.clone(),
            cache: cache.clone(),
            mode: mode.clone(),
        },
        _ => return None,
    })
}

/// The text `info` prints after an LV's line for its role.
fn role_text(r: &RoleJson) -> String {
    match r {
        RoleJson::ThinPool {
            chunk_size,
            thin_lvs,
            data_blocks,
            data_blocks_used,
            metadata_blocks,
            metadata_blocks_used,
            error,
            ..
        } => {
            let usage = match (
                data_blocks,
                data_blocks_used,
                metadata_blocks,
                metadata_blocks_used,
            ) {
                (Some(d), Some(du), Some(m), Some(mu)) => format!(
                    "data {du}/{d} blocks of {}, metadata {mu}/{m} blocks",
                    human(*chunk_size)
                ),
                _ => format!("metadata unreadable: {}", error.as_deref().unwrap_or("?")),
            };
            format!("thin pool ({usage}); thin LVs: {}", thin_lvs.join(", "))
        }
        RoleJson::Thin {
            pool,
            device_id,
            mapped_blocks,
            origin,
            ..
        } => {
            let mut t = format!("thin LV in pool {pool} (device {device_id}");
            if let Some(m) = mapped_blocks {
                t.push_str(&format!(", {m} blocks mapped"));
            }
            t.push(')');
            if let Some(o) = origin {
                t.push_str(&format!(", snapshot of {o}"));
            }
            t
        }
        RoleJson::Snapshot {
            origin,
            snapshot_size,
            ..
        } => format!(
            "classic snapshot of {origin} ({} as it was)",
            human(*snapshot_size)
        ),
        RoleJson::SnapshotSegment { origin, cow_store } => {
            format!("snapshot of {origin} stored in {cow_store}")
        }
        RoleJson::Origin { snapshots } => format!("origin of snapshots {}", snapshots.join(", ")),
        RoleJson::Cache {
            origin,
            cache,
            mode,
        } => format!("cached ({mode}) by {cache}; reads {origin}"),
    }
}

#[derive(Serialize)]
struct SegmentJson {
    start_extent: u64,
    extent_count: u64,
    kind: String,
    stripes: u32,
    stripe_size: u64,
    areas: Vec<String>,
}

#[derive(Serialize)]
struct VolumeJson {
    name: String,
    origin: Origin,
    size: u64,
    content: Content,
    #[serde(skip_serializing_if = "Option::is_none")]
    unreadable: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filesystem: Option<FsJson>,
}

#[derive(Serialize)]
struct FsJson {
    kind: String,
    label: String,
    uuid: String,
    block_size: u32,
    blocks: u64,
    free_blocks: u64,
    inodes: u64,
    free_inodes: u64,
    features: Vec<String>,
    needs_recovery: bool,
    clean: bool,
    last_mounted: String,
    /// Further facts the reader reports, by name (absent when there are none).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    details: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn fs_json(v: &crate::stack::Volume) -> Option<FsJson> {
    crate::filesystems::reader_for(v.content())?;
    let src = v.source.as_ref().ok()?;
    let empty = |error: String| FsJson {
        kind: v.content().name().into(),
        label: String::new(),
        uuid: String::new(),
        block_size: 0,
        blocks: 0,
        free_blocks: 0,
        inodes: 0,
        free_inodes: 0,
        features: vec![],
        needs_recovery: false,
        clean: false,
        last_mounted: String::new(),
        details: Default::default(),
        error: Some(error),
    };
    // The journal is not replayed for `info`: it reports the on-disk state.
    let opened = crate::filesystems::open(src.clone(), &fsapi::OpenOptions::with_replay(false));
    Some(match opened {
        Ok(Some(fs)) => {
            let i = fs.info();
            FsJson {
                kind: i.kind,
                label: i.label,
                uuid: i.uuid,
                block_size: i.block_size,
                blocks: i.blocks,
                free_blocks: i.free_blocks,
                inodes: i.inodes,
                free_inodes: i.free_inodes,
                features: i.features,
                needs_recovery: i.needs_recovery,
                clean: i.clean,
                last_mounted: i.last_mounted.unwrap_or_default(),
                details: i.details.into_iter().collect(),
                error: None,
            }
        }
        Ok(None) => empty("no filesystem signature found".into()),
        // The reader's own message, without the registry's "ext filesystem" context.
        Err(e) => empty(
            e.chain()
                .nth(1)
                .map_or_else(|| e.to_string(), |c| c.to_string()),
        ),
    })
}

fn build(stack: &Stack) -> InfoJson {
    let disks = stack
        .disks
        .iter()
        .map(|d| {
            let info = d.disk.info();
            let mut chain = Vec::new();
            let mut p = info.parent.as_deref();
            while let Some(pi) = p {
                chain.push(pi.path.display().to_string());
                p = pi.parent.as_deref();
            }
            DiskJson {
                name: d.name.clone(),
                slot: d.slot.clone(),
                path: info.path.display().to_string(),
                format: info.format.clone(),
                size: info.size,
                extents: info
                    .extents
                    .iter()
                    .map(|e| ExtentJson {
                        access: e.access.clone(),
                        kind: e.kind.clone(),
                        sectors: e.sectors,
                        offset_sectors: e.offset_sectors,
                        file: e.file.as_ref().map(|f| f.display().to_string()),
                    })
                    .collect(),
                chain,
                partition_table: d.table.kind,
                partitions: d.table.partitions.clone(),
            }
        })
        .collect();
    let physical_volumes = stack
        .lvm
        .pvs
        .iter()
        .map(|p| PvJson {
            device: p.device.clone(),
            uuid: p.pv_uuid.clone(),
            size: p.size,
            vg: p.vg_name.clone(),
        })
        .collect();
    let volume_groups = stack
        .lvm
        .vgs
        .iter()
        .map(|vg| VgJson {
            name: vg.name().to_string(),
            uuid: vg.uuid().to_string(),
            seqno: vg.seqno(),
            extent_size: vg.extent_size(),
            pvs: vg
                .pvs()
                .iter()
                .map(|p| VgPvJson {
                    name: p.name.clone(),
                    uuid: p.uuid.clone(),
                    device_hint: p.device_hint.clone(),
                    found_on: p.present_on.clone(),
                    missing: p.present_on.is_none(),
                })
                .collect(),
            lvs: vg
                .lvs()
                .iter()
                .map(|lv| LvJson {
                    role: role_json(vg, lv),
                    warnings: lv.warnings.clone(),
                    name: lv.name.clone(),
                    volume: format!("{}/{}", vg.name(), lv.name),
                    uuid: lv.uuid.clone(),
                    size: lv.size,
                    hidden: !lv.visible,
                    status: lv.status.clone(),
                    unreadable: lv.readable.clone().err(),
                    segments: lv
                        .segments
                        .iter()
                        .map(|s| SegmentJson {
                            start_extent: s.start_extent,
                            extent_count: s.extent_count,
                            kind: s.kind.clone(),
                            stripes: s.stripe_count,
                            stripe_size: s.stripe_size,
                            areas: s.areas.clone(),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    crate::stack::probe_all(&stack.volumes);
    let volumes = stack
        .volumes
        .iter()
        .map(|v| VolumeJson {
            name: v.name.clone(),
            origin: v.origin.clone(),
            size: v.size,
            content: v.content().clone(),
            unreadable: v.source.as_ref().err().cloned(),
            filesystem: fs_json(v),
        })
        .collect();
    let guest = guest_json(stack);
    // Read errors survived after the stack was opened (a grain table read from its
    // redundant copy while the guest's fstab was read) join those found opening it.
    let mut warnings = stack.warnings.clone();
    for w in stack.read_warnings() {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    InfoJson {
        schema: INFO_SCHEMA,
        disks,
        physical_volumes,
        volume_groups,
        volumes,
        guest,
        warnings,
    }
}

/// `1.5 GiB` style sizes.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A thin pool is never read itself (its thin LVs are), so it is not a failure.
fn is_thin_pool(info: &InfoJson, volume: &str) -> bool {
    info.volume_groups.iter().any(|vg| {
        vg.lvs
            .iter()
            .any(|l| l.volume == volume && matches!(l.role, Some(RoleJson::ThinPool { .. })))
    })
}

/// Runs `info`.
pub fn run(common: &Common, json: bool) -> Result<Outcome> {
    let stack = crate::stack::Stack::open(&common.request)?;
    let info = build(&stack);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // Damage found while assembling the stack (a backup GPT used, a broken EBR
    // chain, a missing PV) counts like an unreadable volume: exit status 1.
    let outcome = Outcome {
        failures: (info
            .volumes
            .iter()
            .filter(|v| v.unreadable.is_some() && !is_thin_pool(&info, &v.name))
            .count()
            .saturating_add(info.warnings.len())) as u64,
        warnings: 0,
    };
    if json {
        serde_json::to_writer_pretty(&mut out, &info)?;
        writeln!(out)?;
        out.flush()?;
        for w in &info.warnings {
            eprintln!("vmdkrecover: warning: {w}");
        }
        return Ok(outcome);
    }
    let vol_line = |out: &mut dyn Write, indent: &str, v: &VolumeJson| -> std::io::Result<()> {
        write!(out, "{indent}{:<22} {:>10}  ", v.name, human(v.size))?;
        match &v.filesystem {
            Some(f) if f.error.is_none() => write!(out, "{}", f.kind)?,
            _ => write!(out, "{}", v.content.name())?,
        }
        if let Some(f) = &v.filesystem {
            match &f.error {
                Some(e) => write!(out, " (unreadable: {e})")?,
                None => {
                    if !f.label.is_empty() {
                        write!(out, " label={}", f.label)?;
                    }
                    write!(out, " uuid={}", f.uuid)?;
                    if f.needs_recovery {
                        write!(out, " [journal needs recovery: replayed in memory on read]")?;
                    }
                }
            }
        }
        if let Some(why) = &v.unreadable {
            write!(out, " UNREADABLE: {why}")?;
        }
        writeln!(out)
    };
    for d in &info.disks {
        write!(
            out,
            "{}  {}  {} ({})",
            d.name,
            d.path,
            human(d.size),
            d.format
        )?;
        if let Some(s) = &d.slot {
            write!(out, " [{s}]")?;
        }
        writeln!(out)?;
        for e in &d.extents {
            write!(
                out,
                "  extent {} {} {} sectors",
                e.access, e.kind, e.sectors
            )?;
            if let Some(f) = &e.file {
                write!(out, " {f}")?;
            }
            if e.offset_sectors != 0 {
                write!(out, " @{}", e.offset_sectors)?;
            }
            writeln!(out)?;
        }
        for c in &d.chain {
            writeln!(out, "  parent {c}")?;
        }
        writeln!(
            out,
            "  partition table: {}",
            match d.partition_table {
                crate::partitions::TableKind::None => "none (whole disk)",
                crate::partitions::TableKind::Mbr => "MBR",
                crate::partitions::TableKind::Gpt => "GPT",
            }
        )?;
        for v in info.volumes.iter().filter(|v| match &v.origin {
            Origin::Disk { disk } | Origin::Partition { disk, .. } => disk == &d.name,
            Origin::Lv { .. } => false,
        }) {
            let p = match &v.origin {
                Origin::Partition { number, .. } => {
                    d.partitions.iter().find(|p| p.number == *number)
                }
                _ => None,
            };
            vol_line(&mut out, "  ", v)?;
            if let Some(p) = p {
                writeln!(
                    out,
                    "    start {} (sector {}), {} sectors, type {}{}",
                    p.start,
                    p.start / 512,
                    p.size / 512,
                    p.type_name,
                    if p.bootable { ", bootable" } else { "" }
                )?;
            }
        }
    }
    for vg in &info.volume_groups {
        writeln!(
            out,
            "VG {}  uuid={}  extent size {}  seqno {}",
            vg.name,
            vg.uuid,
            human(vg.extent_size),
            vg.seqno
        )?;
        for p in &vg.pvs {
            match &p.found_on {
                Some(dev) => writeln!(out, "  PV {} on {dev}  uuid={}", p.name, p.uuid)?,
                None => writeln!(
                    out,
                    "  PV {} MISSING  uuid={} (last seen as {}); add its disk with --disk",
                    p.name, p.uuid, p.device_hint
                )?,
            }
        }
        for lv in vg.lvs.iter().filter(|l| !l.hidden) {
            match info.volumes.iter().find(|v| v.name == lv.volume) {
                Some(v) => vol_line(&mut out, "  LV ", v)?,
                None => writeln!(out, "  LV {:<22} {:>10}", lv.volume, human(lv.size))?,
            }
            if let Some(r) = &lv.role {
                writeln!(out, "       {}", role_text(r))?;
            }
            for w in &lv.warnings {
                writeln!(out, "       warning: {w}")?;
            }
            for s in &lv.segments {
                let kind = if s.kind == "striped" && s.stripes <= 1 {
                    "linear"
                } else {
                    s.kind.as_str()
                };
                write!(
                    out,
                    "       extents {}+{} {kind}",
                    s.start_extent, s.extent_count
                )?;
                if s.stripes > 1 {
                    write!(out, " x{} stripe {}", s.stripes, human(s.stripe_size))?;
                }
                writeln!(out, " on {}", s.areas.join(", "))?;
            }
        }
    }
    for p in info.physical_volumes.iter().filter(|p| p.vg.is_none()) {
        writeln!(
            out,
            "PV on {} uuid={} (in no volume group)",
            p.device, p.uuid
        )?;
    }
    if let Some(g) = &info.guest {
        writeln!(
            out,
            "Guest: {}{}",
            g.os.as_deref().unwrap_or("operating system unknown"),
            g.hostname
                .as_deref()
                .map(|h| format!(" (hostname {h})"))
                .unwrap_or_default()
        )?;
        for m in &g.mounts {
            writeln!(out, "  {:<22} {} ({})", m.mount_point, m.volume, m.device)?;
        }
        for s in &g.skipped {
            writeln!(
                out,
                "  {:<22} not mounted: {} ({})",
                s.mount_point, s.why, s.device
            )?;
        }
    }
    out.flush()?;
    for w in &info.warnings {
        eprintln!("vmdkrecover: warning: {w}");
    }
    Ok(outcome)
}
