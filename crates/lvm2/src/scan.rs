//! Scanning devices: labels → PV headers → metadata copies → volume groups.
//!
//! As lvm2's `lib/label/label.c` (`label_scan`) and `lib/format_text/` do it:
//! every metadata area of every PV is read, copies are grouped by VG uuid, and the
//! highest `seqno` whose checksum verifies wins (`vg_read` → `_vg_read`). PVs are
//! matched to the VG's `physical_volumes` by uuid, never by the `device` hint.

use crate::bytes::uuid_key;
use crate::error::Error;
use crate::label::{parse_label, LabelProblem, LABEL_SCAN_SECTORS, SECTOR_SIZE};
use crate::mda::{
    parse_mda_header, parse_mda_header_ignoring_checksum, read_raw_text, search_ring,
    RAW_LOCN_IGNORED, READ_FAILED,
};
use crate::metadata_text::{parse, Section};
use crate::pv_header::{parse_pv_header, PvHeader};
use crate::vg::{build_vg, vg_head, VgHead, VolumeGroup};
use crate::{Device, FoundPv, Scan};
use bytesource::{ByteSource, SharedSource};
use std::collections::HashMap;

/// Metadata areas read per PV (lvm2's `pvmetadatacopies` is at most 2).
const MAX_MDAS: usize = 2;
/// `raw_locn` slots read per area (lvm2 uses committed and precommitted).
const MAX_SLOTS: usize = 2;

/// `Copy::slot` of a copy found by searching the ring (sorts after real slots).
const RING_SLOT: usize = usize::MAX;

/// Result of looking for a label in the first four sectors.
pub(crate) enum LabelScan {
    /// No `LABELONE` anywhere: not a PV.
    NotPv,
    /// A valid label and its PV header.
    Pv(PvHeader),
    /// A label that is damaged, or a PV header that is.
    Damaged(Error),
}

/// Reads the label and PV header of `source`.
pub(crate) fn read_label(device: &str, source: &dyn ByteSource) -> LabelScan {
    let mut first_problem: Option<LabelProblem> = None;
    for sector in 0..LABEL_SCAN_SECTORS {
        let mut buf = [0u8; SECTOR_SIZE];
        let Some(off) = sector.checked_mul(512) else {
            break;
        };
        if source.read_at(off, &mut buf).is_err() {
            break;
        }
        match parse_label(&buf, sector) {
            Ok(label) => {
                let at = usize::try_from(label.offset_xl).unwrap_or(usize::MAX);
                return match parse_pv_header(&buf, at) {
                    Ok(h) => LabelScan::Pv(h),
                    Err(reason) => LabelScan::Damaged(Error::PvHeader {
                        device: device.to_string(),
                        reason,
                    }),
                };
            }
            Err(LabelProblem::NoMagic) => {}
            Err(p) => {
                if first_problem.is_none() {
                    first_problem = Some(p);
                }
            }
        }
    }
    match first_problem {
        None => LabelScan::NotPv,
        Some(p) => LabelScan::Damaged(Error::Label {
            device: device.to_string(),
            reason: p.to_string(),
        }),
    }
}

/// One metadata copy found on a device.
struct Copy {
    device: String,
    mda_offset: u64,
    slot: usize,
    checksum_ok: bool,
    root: Section,
    head: VgHead,
}

/// Everything read from one device.
struct PvFound {
    device: String,
    source: SharedSource,
    header: PvHeader,
}

pub(crate) fn scan_impl(devices: &[Device], replacement: Option<&Section>) -> Result<Scan, Error> {
    let mut scan = Scan {
        pvs: Vec::new(),
        vgs: Vec::new(),
        warnings: Vec::new(),
        errors: Vec::new(),
        read_errors: Vec::new(),
    };
    let mut found: Vec<PvFound> = Vec::new();
    let mut copies: Vec<Copy> = Vec::new();
    // Devices that carry metadata areas but yielded no usable copy.
    let mut no_copy: Vec<(String, Vec<String>)> = Vec::new();

    for dev in devices {
        let header = match read_label(&dev.name, dev.source.as_ref()) {
            LabelScan::NotPv => continue,
            LabelScan::Damaged(e) => {
                scan.errors.push(e.to_string());
                continue;
            }
            LabelScan::Pv(h) => h,
        };
        let key = uuid_key(&header.uuid());
        if let Some(other) = found.iter().find(|f| uuid_key(&f.header.uuid()) == key) {
            scan.warnings.push(format!(
                "{}: PV uuid {} is also on {}; using {}",
                dev.name,
                header.uuid(),
                other.device,
                other.device
            ));
            continue;
        }
        let actual = dev.source.len();
        if actual < header.device_size {
            scan.warnings.push(format!(
                "{}: device is {actual} bytes but its PV header says {} (a truncated image?); reads past the end will fail",
                dev.name, header.device_size
            ));
        }
        let mut usable = 0usize;
        // lvm2 writes at most two metadata areas per PV and two raw_locn slots
        // (committed, precommitted) per area; more is hostile, and reading them all
        // would multiply the 8 MiB text cap.
        if header.metadata_areas.len() > MAX_MDAS {
            scan.warnings.push(format!(
                "{}: PV header lists {} metadata areas; reading the first {MAX_MDAS}",
                dev.name,
                header.metadata_areas.len()
            ));
        }
        let mut seen_mda: Vec<u64> = Vec::new();
        // Areas whose header is sound enough to search their ring later.
        let mut ring_areas: Vec<(u64, crate::mda::MdaHeader)> = Vec::new();
        // What went wrong with each area, for the error when none is usable
        // (a bad sector in one copy must not hide what happened to the others).
        let mut tried: Vec<String> = Vec::new();
        for (index, mda) in header.metadata_areas.iter().take(MAX_MDAS).enumerate() {
            if seen_mda.contains(&mda.offset) {
                continue;
            }
            seen_mda.push(mda.offset);
            // lvm2 numbers the areas mda1, mda2 (pvck's mda_header_1/_2).
            let number = index.saturating_add(1);
            let pv_uuid = header.uuid();
            let merr = |reason: String| Error::Mda {
                device: dev.name.clone(),
                offset: mda.offset,
                reason: format!("(mda{number} of PV {pv_uuid}) {reason}"),
            };
            let mut hbuf = [0u8; 512];
            if let Err(e) = dev.source.read_at(mda.offset, &mut hbuf) {
                let w = merr(format!(
                    "cannot read the header: {e}; any other metadata copy is used"
                ))
                .to_string();
                tried.push(w.clone());
                scan.read_errors.push(w.clone());
                scan.warnings.push(w);
                continue;
            }
            let mh = match parse_mda_header(&hbuf, mda.offset) {
                Ok(m) => m,
                Err(r) => match parse_mda_header_ignoring_checksum(&hbuf, mda.offset) {
                    // Only the header's own checksum is wrong: use it, since every
                    // text it points to is still verified by its own checksum.
                    Ok(m) => {
                        scan.warnings.push(
                            merr(format!("{r}; reading it anyway, texts are still checked"))
                                .to_string(),
                        );
                        m
                    }
                    Err(_) => {
                        let w = merr(r).to_string();
                        tried.push(w.clone());
                        scan.warnings.push(w);
                        continue;
                    }
                },
            };
            // An area switched off with `pvchange --metadataignore` is not kept up
            // to date: never search it.
            if !mh
                .raw_locns
                .iter()
                .any(|rl| rl.flags & RAW_LOCN_IGNORED != 0)
            {
                ring_areas.push((mda.offset, mh.clone()));
            }
            if mda.size != 0 && mh.size != mda.size {
                scan.warnings.push(
                    merr(format!(
                        "header says the area is {} bytes, the PV header says {}",
                        mh.size, mda.size
                    ))
                    .to_string(),
                );
            }
            for (slot, rl) in mh.raw_locns.iter().enumerate().take(MAX_SLOTS) {
                if rl.flags & RAW_LOCN_IGNORED != 0 {
                    continue;
                }
                let raw = match read_raw_text(dev.source.as_ref(), &mh, rl) {
                    Ok(r) => r,
                    Err(reason) => {
                        let read_failed = reason.starts_with(READ_FAILED);
                        let w = merr(reason).to_string();
                        tried.push(w.clone());
                        if read_failed {
                            scan.read_errors.push(w.clone());
                        }
                        scan.warnings.push(w);
                        continue;
                    }
                };
                let parsed = parse(&raw.text)
                    .map_err(|e| e.to_string())
                    .and_then(|root| {
                        let head = vg_head(&root)?;
                        Ok((root, head))
                    });
                match parsed {
                    Ok((root, head)) => {
                        if raw.checksum_ok {
                            usable = usable.saturating_add(1);
                        }
                        copies.push(Copy {
                            device: dev.name.clone(),
                            mda_offset: mda.offset,
                            slot,
                            checksum_ok: raw.checksum_ok,
                            root,
                            head,
                        });
                    }
                    Err(reason) => {
                        let what = if raw.checksum_ok {
                            "metadata text does not parse"
                        } else {
                            "metadata text has a bad checksum and does not parse"
                        };
                        let w = merr(format!("{what}: {reason}")).to_string();
                        tried.push(w.clone());
                        scan.warnings.push(w);
                    }
                }
            }
        }
        // No copy parsed at all (damaged raw_locns, or texts that do not parse):
        // look through the rings for older versions lvm2 left behind.
        if !header.metadata_areas.is_empty() && !copies.iter().any(|c| c.device == dev.name) {
            for (mda_offset, mh) in &ring_areas {
                let mut best: Option<Copy> = None;
                for (_offset, text) in search_ring(dev.source.as_ref(), mh) {
                    let Ok(root) = parse(&text) else { continue };
                    let Ok(head) = vg_head(&root) else { continue };
                    // Candidates come highest seqno first: the first that parses wins.
                    best = Some(Copy {
                        device: dev.name.clone(),
                        mda_offset: *mda_offset,
                        slot: RING_SLOT,
                        checksum_ok: false,
                        root,
                        head,
                    });
                    break;
                }
                if let Some(b) = best {
                    scan.warnings.push(format!(
                        "{}: no metadata copy readable through its header; found seqno {} of VG {} by searching the metadata area at byte {} (no checksum to verify it)",
                        dev.name, b.head.seqno, b.head.name, mda_offset
                    ));
                    copies.push(b);
                }
            }
        }
        if !header.metadata_areas.is_empty() && usable == 0 {
            no_copy.push((dev.name.clone(), tried));
        }
        scan.pvs.push(FoundPv {
            device: dev.name.clone(),
            pv_uuid: header.uuid(),
            size: header.device_size,
            vg_name: None,
        });
        found.push(PvFound {
            device: dev.name.clone(),
            source: dev.source.clone(),
            header,
        });
    }

    let sources: HashMap<String, (String, SharedSource)> = found
        .iter()
        .map(|f| {
            (
                uuid_key(&f.header.uuid()),
                (f.device.clone(), f.source.clone()),
            )
        })
        .collect();

    // The replacement text (--lvm-metadata) takes the place of its VG's on-disk copies.
    let mut replaced_uuid = None;
    if let Some(root) = replacement {
        let head = vg_head(root).map_err(|reason| Error::Vg {
            vg: "?".to_string(),
            reason,
        })?;
        let inner = build_vg(root, &sources)?;
        replaced_uuid = Some(uuid_key(&head.uuid));
        scan.warnings.push(format!(
            "VG {}: using the metadata file given (seqno {}) instead of the copies on disk",
            head.name, head.seqno
        ));
        scan.vgs.push(VolumeGroup::new(inner));
    }

    // Group copies by VG uuid, in order of first appearance.
    let mut order: Vec<String> = Vec::new();
    for c in &copies {
        let k = uuid_key(&c.head.uuid);
        if !order.contains(&k) {
            order.push(k);
        }
    }
    // VGs with at least one good copy first; a VG seen only in damaged copies comes
    // last, and only when its devices are not PVs of a VG already assembled (a
    // damaged copy may carry a damaged VG uuid).
    let has_good = |k: &str| {
        copies
            .iter()
            .any(|c| c.checksum_ok && uuid_key(&c.head.uuid) == k)
    };
    let (good, bad): (Vec<String>, Vec<String>) = order.into_iter().partition(|k| has_good(k));
    for key in good.into_iter().chain(bad) {
        if replaced_uuid.as_deref() == Some(key.as_str()) {
            continue;
        }
        if !has_good(&key) {
            let claimed = copies
                .iter()
                .filter(|c| uuid_key(&c.head.uuid) == key)
                .all(|c| {
                    let pv_key = found
                        .iter()
                        .find(|f| f.device == c.device)
                        .map(|f| uuid_key(&f.header.uuid()));
                    scan.vgs
                        .iter()
                        .any(|vg| vg.pvs().iter().any(|p| Some(uuid_key(&p.uuid)) == pv_key))
                });
            if claimed {
                for c in copies.iter().filter(|c| uuid_key(&c.head.uuid) == key) {
                    scan.warnings.push(format!(
                        "{}: metadata area at byte {} holds a damaged copy (bad checksum); ignored",
                        c.device, c.mda_offset
                    ));
                }
                continue;
            }
        }
        let mut group: Vec<&Copy> = copies
            .iter()
            .filter(|c| uuid_key(&c.head.uuid) == key)
            .collect();
        // Committed slot first, then newest seqno.
        group.sort_by_key(|c| (c.slot != 0, std::cmp::Reverse(c.head.seqno)));
        let chosen = group
            .iter()
            .find(|c| c.checksum_ok)
            .or_else(|| group.first())
            .copied();
        let Some(chosen) = chosen else { continue };
        if !chosen.checksum_ok && chosen.slot != RING_SLOT {
            scan.warnings.push(format!(
                "{}: metadata copy seqno {} of VG {} has a bad checksum, and no good copy exists; using it anyway",
                chosen.device, chosen.head.seqno, chosen.head.name
            ));
        }
        for c in &group {
            if std::ptr::eq(*c, chosen) {
                continue;
            }
            if !c.checksum_ok && c.head.seqno >= chosen.head.seqno {
                scan.warnings.push(format!(
                    "{}: metadata copy seqno {} has a bad checksum; using seqno {}",
                    c.device, c.head.seqno, chosen.head.seqno
                ));
            } else if c.checksum_ok && c.head.seqno < chosen.head.seqno && c.slot == 0 {
                scan.warnings.push(format!(
                    "{}: metadata area at byte {} holds seqno {} of VG {}, older than seqno {} in use",
                    c.device, c.mda_offset, c.head.seqno, c.head.name, chosen.head.seqno
                ));
            }
        }
        match build_vg(&chosen.root, &sources) {
            Ok(inner) => scan.vgs.push(VolumeGroup::new(inner)),
            Err(e) => {
                // The chosen copy parses but describes an impossible VG: fall back to
                // the next valid copy that builds, if any.
                scan.errors.push(format!("{}: {e}", chosen.device));
                let next = group
                    .iter()
                    .filter(|c| c.checksum_ok && !std::ptr::eq(**c, chosen))
                    .find_map(|c| build_vg(&c.root, &sources).ok().map(|inner| (c, inner)));
                if let Some((c, inner)) = next {
                    scan.warnings.push(format!(
                        "{}: using metadata copy seqno {} of VG {} instead",
                        c.device, c.head.seqno, c.head.name
                    ));
                    scan.vgs.push(VolumeGroup::new(inner));
                }
            }
        }
    }

    // Tell each found PV which VG lists it; report PVs lost to damaged metadata.
    for pv in &mut scan.pvs {
        let key = uuid_key(&pv.pv_uuid);
        let claims: Vec<&VolumeGroup> = scan
            .vgs
            .iter()
            .filter(|vg| vg.pvs().iter().any(|p| uuid_key(&p.uuid) == key))
            .collect();
        if claims.len() > 1 {
            let names: Vec<&str> = claims.iter().map(|vg| vg.name()).collect();
            scan.warnings.push(format!(
                "{}: PV {} is listed by more than one VG ({}); one of them holds stale metadata",
                pv.device,
                pv.pv_uuid,
                names.join(", ")
            ));
        }
        pv.vg_name = claims.first().map(|vg| vg.name().to_string());
        if pv.vg_name.is_none() {
            if let Some((_, tried)) = no_copy.iter().find(|(d, _)| *d == pv.device) {
                let what = if tried.is_empty() {
                    String::new()
                } else {
                    format!(" (tried: {})", tried.join("; "))
                };
                scan.errors.push(format!(
                    "{}: PV {} has metadata areas but no readable metadata copy{what}",
                    pv.device, pv.pv_uuid
                ));
            }
        }
    }
    for (i, vg) in scan.vgs.iter().enumerate() {
        if let Some(other) = scan
            .vgs
            .iter()
            .skip(i.saturating_add(1))
            .find(|o| o.name() == vg.name())
        {
            scan.warnings.push(format!(
                "two volume groups are named {} (uuids {} and {}); name them by uuid",
                vg.name(),
                vg.uuid(),
                other.uuid()
            ));
        }
    }
    for vg in &scan.vgs {
        for p in vg.missing_pvs() {
            scan.warnings.push(
                Error::MissingPv {
                    vg: vg.name().to_string(),
                    pv: p.name.clone(),
                    uuid: p.uuid.clone(),
                    hint: p.device_hint.clone(),
                }
                .to_string(),
            );
        }
    }
    Ok(scan)
}
