//! Opening: sniffing what a file is, resolving extent and parent files beside the
//! descriptor, building the extent list and following the snapshot chain.
//!
//! Names inside a descriptor are untrusted: a relative name resolves inside the
//! descriptor's folder; `..` is refused unless [`OpenOptions::allow_extents_outside_dir`];
//! an absolute name (an ESX `/vmfs/volumes/<uuid>/vm/vm.vmdk`, a Windows `C:\...`)
//! resolves to the same file name beside the descriptor, because moved and restored
//! VMDKs are the norm. Parent chains are at most [`MAX_DEPTH`] deep and must not loop.

use crate::descriptor::{self, Descriptor, MAX_DESCRIPTOR_BYTES};
use crate::extent::{Extent, Flat, Zero};
use crate::{
    cowd, file_name, sesparse, sparse, Disk, DiskInfo, Error, ExtentInfo, OpenOptions, Slot,
};
use bytesource::{ByteSource, FileSource, SharedSource};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Deepest snapshot chain followed.
pub(crate) const MAX_DEPTH: usize = 64;
/// Bytes read to decide what a file is.
const SNIFF_BYTES: u64 = 4096;

/// What a file's first bytes say it is.
enum Kind {
    Sparse,
    Cowd,
    SeSparse,
    Descriptor,
    Raw,
}

fn sniff(file: &SharedSource, name: &str) -> Result<Kind, Error> {
    let n = file.len().min(SNIFF_BYTES);
    let mut head = vec![0u8; usize::try_from(n).unwrap_or(0)];
    file.read_at(0, &mut head).map_err(|e| Error::io(name, e))?;
    let magic4 = sparse::u32_at(&head, 0);
    if head.len() >= 4 && magic4 == sparse::MAGIC {
        return Ok(Kind::Sparse);
    }
    if head.len() >= 4 && magic4 == cowd::MAGIC {
        return Ok(Kind::Cowd);
    }
    if head.len() >= 8 && sparse::u64_at(&head, 0) == sesparse::MAGIC {
        return Ok(Kind::SeSparse);
    }
    let text_end = head.iter().position(|&b| b == 0).unwrap_or(head.len());
    let text = String::from_utf8_lossy(head.get(..text_end).unwrap_or(&[]));
    if text_end > 0 && descriptor::looks_like_descriptor(&text) {
        if file.len() > u64::try_from(MAX_DESCRIPTOR_BYTES).unwrap_or(u64::MAX) {
            return Err(Error::corrupt(
                name,
                format!(
                    "starts like a text descriptor but is {} bytes, more than the {MAX_DESCRIPTOR_BYTES} byte limit for one",
                    file.len()
                ),
            ));
        }
        return Ok(Kind::Descriptor);
    }
    Ok(Kind::Raw)
}

fn read_text(file: &SharedSource, name: &str) -> Result<String, Error> {
    let mut buf = vec![0u8; usize::try_from(file.len()).unwrap_or(0)];
    file.read_at(0, &mut buf).map_err(|e| Error::io(name, e))?;
    if let Some(nul) = buf.iter().position(|&b| b == 0) {
        buf.truncate(nul);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn to_bytes(name: &str, line: usize, sectors: u64) -> Result<u64, Error> {
    sectors.checked_mul(512).ok_or_else(|| Error::Descriptor {
        file: Some(name.to_string()),
        line,
        msg: format!("extent of {sectors} sectors overflows"),
    })
}

pub(crate) fn open(path: &Path, opts: &OpenOptions) -> Result<Disk, Error> {
    let mut seen = Vec::new();
    open_depth(path, opts, 0, &mut seen)
}

fn open_file(path: &Path) -> Result<SharedSource, Error> {
    FileSource::open(path)
        .map(|f| -> SharedSource { Arc::new(f) })
        .map_err(|e| Error::io(&path.display().to_string(), e))
}

fn open_depth(
    path: &Path,
    opts: &OpenOptions,
    depth: usize,
    seen: &mut Vec<PathBuf>,
) -> Result<Disk, Error> {
    let name = file_name(path);
    if depth > MAX_DEPTH {
        return Err(Error::corrupt(
            &name,
            format!("snapshot chain is deeper than {MAX_DEPTH} disks"),
        ));
    }
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if seen.contains(&canon) {
        return Err(Error::corrupt(
            &name,
            format!(
                "snapshot chain loops: {} is its own ancestor",
                canon.display()
            ),
        ));
    }
    seen.push(canon);
    let file = open_file(path)?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    match sniff(&file, &name)? {
        Kind::Descriptor => {
            let text = read_text(&file, &name)?;
            let d = descriptor::parse(&text).map_err(|e| e.in_file(&name))?;
            from_descriptor(path, &dir, &name, &d, opts, depth, seen, Vec::new())
        }
        Kind::Sparse => {
            let o = sparse::open(file, &name)?;
            let mut warnings = o.warnings;
            let d = match o.descriptor.as_deref().map(descriptor::parse) {
                Some(Ok(d)) if d.entries.is_empty() && d.extents.is_empty() => {
                    warnings.push(format!("{name}: embedded descriptor is empty"));
                    None
                }
                Some(Ok(d)) => Some(d),
                Some(Err(e)) => {
                    warnings.push(format!("{name}: embedded {e}"));
                    None
                }
                None => None,
            };
            let default_type = if o.stream_optimized {
                "streamOptimized"
            } else {
                "monolithicSparse"
            };
            single(
                path,
                &dir,
                &name,
                Box::new(o.map),
                "SPARSE",
                default_type,
                d,
                opts,
                depth,
                seen,
                warnings,
            )
        }
        Kind::Cowd => {
            let m = cowd::open(file, &name)?;
            single(
                path,
                &dir,
                &name,
                Box::new(m),
                "VMFSSPARSE",
                "vmfsSparse",
                None,
                opts,
                depth,
                seen,
                Vec::new(),
            )
        }
        Kind::SeSparse => {
            let (m, w) = sesparse::open(file, &name)?;
            single(
                path,
                &dir,
                &name,
                Box::new(m),
                "SESPARSE",
                "seSparse",
                None,
                opts,
                depth,
                seen,
                w,
            )
        }
        Kind::Raw => {
            let len = file.len();
            Ok(Disk {
                info: one_file_info(path, len, "FLAT", "raw", None),
                warnings: Vec::new(),
                size: len,
                slots: slot_list(vec![Box::new(Flat {
                    file,
                    name,
                    start: 0,
                    len,
                })]),
                parent: None,
            })
        }
    }
}

fn slot_list(extents: Vec<Box<dyn Extent>>) -> Vec<Slot> {
    let mut start = 0u64;
    let mut slots = Vec::new();
    for e in extents {
        let len = e.len();
        if len == 0 {
            continue;
        }
        slots.push(Slot { start, extent: e });
        start = start.saturating_add(len);
    }
    slots
}

/// The description of a disk that is one whole file: createType from its embedded
/// descriptor when it has one, else `default_type`; no parent yet.
fn one_file_info(
    path: &Path,
    size: u64,
    kind: &str,
    default_type: &str,
    d: Option<&Descriptor>,
) -> DiskInfo {
    DiskInfo {
        path: path.to_path_buf(),
        format: d
            .and_then(|d| d.create_type.clone())
            .unwrap_or_else(|| default_type.to_string()),
        size,
        extents: vec![ExtentInfo {
            access: "RW".into(),
            kind: kind.into(),
            sectors: size / 512,
            file: Some(path.to_path_buf()),
            offset_sectors: 0,
        }],
        cid: d.and_then(|d| d.cid),
        parent_cid: d.and_then(|d| d.parent_cid),
        parent: None,
    }
}

/// A disk made of one sparse file (monolithicSparse, streamOptimized, a lone COWD or
/// SESparse file), with its embedded descriptor when it has one.
#[allow(clippy::too_many_arguments)]
fn single(
    path: &Path,
    dir: &Path,
    name: &str,
    extent: Box<dyn Extent>,
    kind: &str,
    default_type: &str,
    d: Option<Descriptor>,
    opts: &OpenOptions,
    depth: usize,
    seen: &mut Vec<PathBuf>,
    mut warnings: Vec<String>,
) -> Result<Disk, Error> {
    let size = extent.len();
    let mut info = one_file_info(path, size, kind, default_type, d.as_ref());
    let parent = match &d {
        Some(d) => open_parent(dir, name, d, opts, depth, seen, &mut warnings)?,
        None => None,
    };
    info.parent = parent.as_ref().map(|p| Box::new(p.info.clone()));
    Ok(Disk {
        info,
        warnings,
        size,
        slots: slot_list(vec![extent]),
        parent: parent.map(Box::new),
    })
}

fn open_parent(
    dir: &Path,
    name: &str,
    d: &Descriptor,
    opts: &OpenOptions,
    depth: usize,
    seen: &mut Vec<PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<Option<Disk>, Error> {
    let Some(hint) = d.parent_file_name_hint.as_deref().filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let p = resolve(dir, name, hint, "parent", true, opts)?;
    let parent = open_depth(&p, opts, depth.saturating_add(1), seen)?;
    if let (Some(pc), Some(c)) = (d.parent_cid, parent.info.cid) {
        if pc != c {
            warnings.push(format!(
                "{name}: parentCID {pc:#x} does not match parent CID {c:#x} ({}); the parent may have changed since the snapshot",
                file_name(&p)
            ));
        }
    }
    Ok(Some(parent))
}

/// Resolves a file named in a descriptor (see the module docs).
fn resolve(
    dir: &Path,
    desc_name: &str,
    raw: &str,
    what: &'static str,
    parent: bool,
    opts: &OpenOptions,
) -> Result<PathBuf, Error> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let p = Path::new(raw);
    let windows_abs = raw.contains('\\') || raw.as_bytes().get(1) == Some(&b':');
    let not_found = |looked: String| Error::NotFound {
        file: desc_name.to_string(),
        what,
        name: raw.to_string(),
        looked,
    };
    if base.is_empty() || base == "." || base == ".." {
        return Err(Error::corrupt(
            desc_name,
            format!("{what} name {raw:?} is not a file name"),
        ));
    }
    if p.is_absolute() || windows_abs {
        let beside = dir.join(base);
        if beside.exists() {
            return Ok(beside);
        }
        if opts.allow_extents_outside_dir && p.exists() {
            return Ok(p.to_path_buf());
        }
        let mut looked = dir.display().to_string();
        if opts.allow_extents_outside_dir && p.is_absolute() {
            looked.push_str(&format!(" and at {}", p.display()));
        } else if p.is_absolute() && p.exists() {
            looked.push_str(&format!(
                "; {} exists but lies outside that folder: copy it beside the descriptor, or set allow_extents_outside_dir",
                p.display()
            ));
        }
        return Err(not_found(looked));
    }
    let escapes = p.components().any(|c| {
        matches!(
            c,
            Component::ParentDir | Component::RootDir | Component::Prefix(_)
        )
    });
    if escapes {
        if parent {
            // A linked clone's parent usually sits in another folder; a copy beside
            // the child (the usual restore layout) wins.
            let beside = dir.join(base);
            if beside.exists() {
                return Ok(beside);
            }
        }
        if !opts.allow_extents_outside_dir {
            return Err(Error::Refused {
                file: desc_name.to_string(),
                msg: format!(
                    "{what} path {raw:?} leaves the descriptor's folder {}; refused (set allow_extents_outside_dir to follow it)",
                    dir.display()
                ),
            });
        }
    }
    let cand = dir.join(p);
    if cand.exists() {
        Ok(cand)
    } else {
        Err(not_found(dir.display().to_string()))
    }
}

/// Builds a disk from a parsed text descriptor.
#[allow(clippy::too_many_arguments)]
fn from_descriptor(
    path: &Path,
    dir: &Path,
    name: &str,
    d: &Descriptor,
    opts: &OpenOptions,
    depth: usize,
    seen: &mut Vec<PathBuf>,
    mut warnings: Vec<String>,
) -> Result<Disk, Error> {
    if d.extents.is_empty() {
        return Err(Error::corrupt(name, "descriptor lists no extents"));
    }
    let mut extents: Vec<Box<dyn Extent>> = Vec::new();
    let mut infos = Vec::new();
    let mut size = 0u64;
    for e in &d.extents {
        let len = to_bytes(name, e.line, e.sectors)?;
        size = size.checked_add(len).ok_or_else(|| Error::Descriptor {
            file: Some(name.to_string()),
            line: e.line,
            msg: "extent sizes add up past 2^64 bytes".into(),
        })?;
        let file_path = match (&e.file, e.kind.as_str()) {
            (_, "ZERO") => None,
            (Some(f), _) => Some(resolve(dir, name, f, "extent file", false, opts)?),
            (None, _) => None,
        };
        infos.push(ExtentInfo {
            access: e.access.clone(),
            kind: e.kind.clone(),
            sectors: e.sectors,
            file: file_path.clone(),
            offset_sectors: e.offset,
        });
        let ext: Box<dyn Extent> = match (e.kind.as_str(), file_path) {
            ("ZERO", _) => Box::new(Zero {
                len,
                unallocated: false,
            }),
            ("FLAT" | "VMFS", Some(fp)) => {
                let ename = file_name(&fp);
                let file = open_file(&fp)?;
                let start = to_bytes(name, e.line, e.offset)?;
                let need = start.checked_add(len).ok_or_else(|| Error::Descriptor {
                    file: Some(name.to_string()),
                    line: e.line,
                    msg: "extent offset plus size overflows".into(),
                })?;
                if file.len() < need {
                    return Err(Error::ExtentTooShort {
                        file: ename,
                        sectors: e.sectors,
                        bytes: need,
                        actual: file.len(),
                    });
                }
                Box::new(Flat {
                    file,
                    name: ename,
                    start,
                    len,
                })
            }
            ("SPARSE" | "VMFSSPARSE" | "SESPARSE", Some(fp)) => {
                let ename = file_name(&fp);
                let file = open_file(&fp)?;
                let (m, w) = match sniff(&file, &ename)? {
                    Kind::Sparse => {
                        let o = sparse::open(file, &ename)?;
                        (o.map, o.warnings)
                    }
                    Kind::Cowd => (cowd::open(file, &ename)?, Vec::new()),
                    Kind::SeSparse => sesparse::open(file, &ename)?,
                    _ => {
                        return Err(Error::corrupt(
                            &ename,
                            format!(
                                "{} extent (descriptor {name} line {}) has no KDMV, COWD or SESparse header",
                                e.kind, e.line
                            ),
                        ))
                    }
                };
                warnings.extend(w);
                let have = m.len;
                let mut m = m;
                if have != len {
                    warnings.push(format!(
                        "{ename}: sparse header says {} sectors, descriptor line {} says {}; using the descriptor's size",
                        have / 512,
                        e.line,
                        e.sectors
                    ));
                }
                if have > len {
                    m.len = len;
                }
                extents.push(Box::new(m));
                if have < len {
                    Box::new(Zero {
                        len: len.saturating_sub(have),
                        unallocated: true,
                    })
                } else {
                    continue;
                }
            }
            ("VMFSRAW" | "VMFSRDM" | "VMFSRDMP" | "RDM" | "RDMP", _) => {
                return Err(Error::Unsupported {
                    file: name.to_string(),
                    msg: format!(
                        "descriptor line {}: {} extent {} is a raw device mapping: its data lives on a SAN LUN, not in a file, so it cannot be read from here",
                        e.line,
                        e.kind,
                        e.file.as_deref().unwrap_or("")
                    ),
                })
            }
            (k, _) => {
                return Err(Error::Descriptor {
                    file: Some(name.to_string()),
                    line: e.line,
                    msg: format!("{k} extent has no file"),
                })
            }
        };
        extents.push(ext);
    }
    let parent = open_parent(dir, name, d, opts, depth, seen, &mut warnings)?;
    Ok(Disk {
        info: DiskInfo {
            path: path.to_path_buf(),
            format: d.create_type.clone().unwrap_or_else(|| "unknown".into()),
            size,
            extents: infos,
            cid: d.cid,
            parent_cid: d.parent_cid,
            parent: parent.as_ref().map(|p| Box::new(p.info.clone())),
        },
        warnings,
        size,
        slots: slot_list(extents),
        parent: parent.map(Box::new),
    })
}

/// [`Disk::from_source`]: one in-memory file, no neighbours.
pub(crate) fn from_source(file: SharedSource) -> Result<Disk, Error> {
    let name = "memory".to_string();
    let path = PathBuf::from("memory");
    let (extent, kind, fmt, d, warnings): (
        Box<dyn Extent>,
        &str,
        &str,
        Option<Descriptor>,
        Vec<String>,
    ) = match sniff(&file, &name)? {
        Kind::Sparse => {
            let o = sparse::open(file, &name)?;
            let d = o
                .descriptor
                .as_deref()
                .and_then(|t| descriptor::parse(t).ok());
            let fmt = if o.stream_optimized {
                "streamOptimized"
            } else {
                "monolithicSparse"
            };
            (Box::new(o.map), "SPARSE", fmt, d, o.warnings)
        }
        Kind::Cowd => (
            Box::new(cowd::open(file, &name)?),
            "VMFSSPARSE",
            "vmfsSparse",
            None,
            Vec::new(),
        ),
        Kind::SeSparse => {
            let (m, w) = sesparse::open(file, &name)?;
            (Box::new(m), "SESPARSE", "seSparse", None, w)
        }
        Kind::Descriptor => {
            let text = read_text(&file, &name)?;
            let d = descriptor::parse(&text).map_err(|e| e.in_file(&name))?;
            return Err(Error::unsupported(
                &name,
                format!(
                    "an in-memory descriptor's {} extent file(s) cannot be opened",
                    d.extents.len()
                ),
            ));
        }
        Kind::Raw => {
            let len = file.len();
            (
                Box::new(Flat {
                    file,
                    name: name.clone(),
                    start: 0,
                    len,
                }),
                "FLAT",
                "raw",
                None,
                Vec::new(),
            )
        }
    };
    let size = extent.len();
    Ok(Disk {
        info: one_file_info(&path, size, kind, fmt, d.as_ref()),
        warnings,
        size,
        slots: slot_list(vec![extent]),
        parent: None,
    })
}
