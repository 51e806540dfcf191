//! Opening: sniffing what a file is, resolving extent and parent files beside the
//! descriptor, building the extent list and following the snapshot chain.
//!
//! Names inside a descriptor are untrusted: a relative name resolves inside the
//! descriptor's folder; `..` is refused unless [`OpenOptions::allow_extents_outside_dir`];
//! an absolute name (an ESX `/vmfs/volumes/<uuid>/vm/vm.vmdk`, a Windows `C:\...`)
//! resolves to the same file name beside the descriptor, because moved and restored
//! VMDKs are the norm. Parent chains are at most [`MAX_DEPTH`] deep and must not loop.
//!
//! Each distinct file (by device and inode) is opened once per [`crate::Disk::open`]
//! and shared by every extent line and parent that names it, and a descriptor may list
//! at most [`crate::descriptor::MAX_EXTENT_LINES`] extents, so neither a split disk of a thousand pieces
//! nor a descriptor repeating one name runs out of file descriptors; past half the
//! open-file limit, further files are reopened on demand ([`bytesource::PooledFile`]). A missing extent
//! or parent is looked for among the files beside the descriptor under its likely
//! renamed name (a restore tool's `vm-restore-flat.vmdk`), and the error says how to
//! read it: [`OpenOptions::extent_map`] reads such a pair without writing anything.
//! A `.vmdk` that is neither a descriptor nor a known extent header is refused unless
//! it looks like a raw disk or [`OpenOptions::raw`] is set.

use crate::descriptor::{self, Descriptor, MAX_DESCRIPTOR_BYTES, MAX_EXTENT_LINES};
use crate::extent::{Extent, Flat, Zero};
use crate::{
    cowd, file_name, kdmv, sesparse, sparse, Disk, DiskInfo, Error, ExtentInfo, OpenOptions, Slot,
};
use bytesource::{field, ByteSource, FileSource, PooledFile, SharedSource};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Deepest snapshot chain followed.
pub(crate) const MAX_DEPTH: usize = 64;
/// Directory entries looked at when searching for a renamed extent or parent.
const MAX_DIR_SCAN: usize = 4096;
/// Candidate files whose CID is read when searching for a renamed parent.
const MAX_PARENT_CANDIDATES: usize = 256;

/// What one [`open`] has seen so far: the chain (for loops) and the files opened, so
/// each file is opened once.
#[derive(Default)]
pub(crate) struct State {
    seen: Vec<PathBuf>,
    by_path: HashMap<PathBuf, SharedSource>,
    by_id: HashMap<(u64, u64), SharedSource>,
}
/// Bytes read to decide what a file is.
const SNIFF_BYTES: u64 = 16 * 1024;

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
    if let Err(e) = file.read_at(0, &mut head) {
        // A bad sector after sector 0 (a raw disk's primary GPT) must not make the
        // disk unopenable: the magics and a descriptor's first line are in sector
        // 0, and the layers above fall back where they can (backup GPT). Only
        // sector 0 itself is fatal.
        head.truncate(usize::try_from(file.len().min(512)).unwrap_or(0));
        file.read_at(0, &mut head).map_err(|_| Error::io(name, e))?;
    }
    let magic4 = field::le_u32(&head, 0);
    if magic4 == Some(kdmv::MAGIC) {
        return Ok(Kind::Sparse);
    }
    if magic4 == Some(cowd::MAGIC) {
        return Ok(Kind::Cowd);
    }
    if field::le_u64(&head, 0) == Some(sesparse::MAGIC) {
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
    let mut st = State::default();
    open_depth(path, opts, 0, &mut st)
}

/// Opens `path` (see [`bytesource::open_input`]) or returns the handle already open
/// on the same file; `context` ("vm.vmdk: extent file") prefixes a refusal.
fn open_file(st: &mut State, path: &Path, context: Option<&str>) -> Result<SharedSource, Error> {
    if let Some(f) = st.by_path.get(path) {
        return Ok(f.clone());
    }
    let f =
        FileSource::open(path).map_err(|e| Error::open(&path.display().to_string(), context, e))?;
    let id = f.id();
    let shared = match st.by_id.get(&id) {
        Some(f) => f.clone(),
        None => {
            // Past half the open-file limit, further files give their descriptor back
            // and are reopened on demand from a small shared pool.
            let budget = bytesource::open_file_limit()
                .map(|l| {
                    usize::try_from(l / 2)
                        .unwrap_or(usize::MAX)
                        .saturating_sub(32)
                })
                .unwrap_or(usize::MAX);
            let f: SharedSource = if bytesource::open_files() > budget {
                Arc::new(PooledFile::from(f))
            } else {
                Arc::new(f)
            };
            st.by_id.insert(id, f.clone());
            f
        }
    };
    st.by_path.insert(path.to_path_buf(), shared.clone());
    Ok(shared)
}

/// Whether a file that is no known VMDK structure still looks like a raw disk image:
/// a whole number of sectors and at least 64 KiB, or a partition table or volume
/// signature where the kernel would look for one.
fn looks_like_raw_disk(file: &SharedSource) -> bool {
    let len = file.len();
    if len % 512 == 0 && len >= 64 * 1024 {
        return true;
    }
    let mut head = vec![0u8; usize::try_from(len.min(4096)).unwrap_or(0)];
    if file.read_at(0, &mut head).is_err() {
        return false;
    }
    let at = |o: usize, sig: &[u8]| {
        o.checked_add(sig.len())
            .and_then(|end| head.get(o..end))
            .is_some_and(|b| b == sig)
    };
    // MBR boot signature (offset 510), GPT header "EFI PART" in LBA 1, ext2/3/4
    // superblock magic 0xEF53 at 1024 + 56 (linux fs/ext4/ext4.h), XFS "XFSB" at 0
    // (xfs_format.h), LVM2 "LABELONE" in one of the first four sectors (lvm2
    // lib/label/label.c), LUKS "LUKS\xba\xbe" at 0.
    at(510, &[0x55, 0xaa])
        || at(512, b"EFI PART")
        || at(1080, &[0x53, 0xef])
        || at(0, b"XFSB")
        || (0..4).any(|s: usize| at(s.saturating_mul(512), b"LABELONE"))
        || at(0, b"LUKS\xba\xbe")
}

/// The first 16 bytes of a file, as hex and as ASCII, for an error message.
fn first_bytes(file: &SharedSource) -> String {
    let mut b = vec![0u8; usize::try_from(file.len().min(16)).unwrap_or(0)];
    if file.read_at(0, &mut b).is_err() {
        return "unreadable".into();
    }
    let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    let ascii: String = b
        .iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                char::from(c)
            } else {
                '.'
            }
        })
        .collect();
    format!("{} |{ascii}|", hex.join(" "))
}

fn open_depth(
    path: &Path,
    opts: &OpenOptions,
    depth: usize,
    st: &mut State,
) -> Result<Disk, Error> {
    let name = file_name(path);
    if depth > MAX_DEPTH {
        return Err(Error::corrupt(
            &name,
            format!("snapshot chain is deeper than {MAX_DEPTH} disks"),
        ));
    }
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if st.seen.contains(&canon) {
        return Err(Error::corrupt(
            &name,
            format!(
                "snapshot chain loops: {} is its own ancestor",
                canon.display()
            ),
        ));
    }
    st.seen.push(canon);
    let file = open_file(st, path, None)?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let vmdk_named = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("vmdk"));
    let mut raw_warnings = Vec::new();
    let kind = match sniff(&file, &name) {
        Ok(k) => k,
        // Sector 0 of a file that is not named as a VMDK (a .img, or --raw) cannot
        // be read: it is a raw disk either way, and the partition layer may still
        // find a backup GPT at its end.
        Err(e @ Error::Io { .. }) if !vmdk_named || opts.raw => {
            raw_warnings.push(format!(
                "{e}; the first sector cannot be read, reading it as a raw disk"
            ));
            Kind::Raw
        }
        Err(e) => return Err(e),
    };
    match kind {
        Kind::Descriptor => {
            let text = read_text(&file, &name)?;
            let d = descriptor::parse(&text).map_err(|e| e.in_file(&name))?;
            from_descriptor(path, &dir, &name, &d, opts, depth, st, Vec::new())
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
                st,
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
                st,
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
                st,
                w,
            )
        }
        Kind::Raw => {
            let len = file.len();
            if raw_warnings.is_empty() && vmdk_named && !opts.raw && !looks_like_raw_disk(&file) {
                return Err(Error::corrupt(
                    &name,
                    format!(
                        "is neither a text descriptor nor a KDMV, COWD or seSparse extent, and does not look like a raw disk ({len} bytes; first bytes {}); give --raw to read it as a raw disk anyway",
                        first_bytes(&file)
                    ),
                ));
            }
            Ok(Disk {
                info: one_file_info(path, len, "FLAT", "raw", None),
                warnings: raw_warnings,
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
    st: &mut State,
    mut warnings: Vec<String>,
) -> Result<Disk, Error> {
    let size = extent.len();
    let mut info = one_file_info(path, size, kind, default_type, d.as_ref());
    let parent = match &d {
        Some(d) => open_parent(dir, name, d, opts, depth, st, &mut warnings)?,
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
    st: &mut State,
    warnings: &mut Vec<String>,
) -> Result<Option<Disk>, Error> {
    let Some(hint) = d.parent_file_name_hint.as_deref().filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let p = resolve(dir, name, hint, Want::Parent(d.parent_cid), opts)?;
    let parent = open_depth(&p, opts, depth.saturating_add(1), st)?;
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

/// What a descriptor expects of a file it names, for the hint when it is missing.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Want<'a> {
    /// A FLAT/VMFS extent file of exactly `need` bytes (start offset + length);
    /// `only` when it is the descriptor's one extent.
    Flat { need: u64, only: bool },
    /// A SPARSE, VMFSSPARSE or SESPARSE extent file.
    Sparse { kind: &'a str, only: bool },
    /// A parent disk whose CID should be this (the child's parentCID).
    Parent(Option<u32>),
    /// Anything else.
    Other,
}

impl Want<'_> {
    fn what(&self) -> &'static str {
        match self {
            Want::Parent(_) => "parent",
            _ => "extent file",
        }
    }
}

/// The last path component of a name written in a descriptor (`/` or `\`).
fn base_name(raw: &str) -> &str {
    raw.rsplit(['/', '\\']).next().unwrap_or(raw)
}

/// The `--extent-map` target for `raw`, when one is given.
fn mapped(dir: &Path, raw: &str, opts: &OpenOptions) -> Option<PathBuf> {
    let base = base_name(raw);
    opts.extent_map
        .iter()
        .find(|(old, _)| old == raw || old == base || base_name(old) == base)
        .map(|(_, new)| {
            if new.is_absolute() || new.exists() {
                new.clone()
            } else {
                dir.join(new)
            }
        })
}

/// The CID in a file's text or embedded descriptor, if it has one.
fn cid_of(path: &Path) -> Option<u32> {
    let f: SharedSource = Arc::new(FileSource::open(path).ok()?);
    match sniff(&f, "candidate").ok()? {
        Kind::Descriptor => {
            descriptor::parse(&read_text(&f, "candidate").ok()?)
                .ok()?
                .cid
        }
        Kind::Sparse => {
            let mut sector = [0u8; 512];
            f.read_at(0, &mut sector).ok()?;
            let h = kdmv::Header::parse(&sector, "candidate", 0).ok()??;
            let text = sparse::read_embedded_descriptor(&f, "candidate", &h, &mut Vec::new())?;
            descriptor::parse(&text).ok()?.cid
        }
        _ => None,
    }
}

/// Whether `name` (lower case) ends in `-<c>NNN.vmdk` (a split extent's number).
fn numbered(name: &str, c: char) -> bool {
    let Some(stem) = name.strip_suffix(".vmdk") else {
        return false;
    };
    let digits = stem.chars().rev().take_while(char::is_ascii_digit).count();
    let Some(head) = stem.get(..stem.len().saturating_sub(digits)) else {
        return false;
    };
    (3..=4).contains(&digits) && head.ends_with(&format!("-{c}"))
}

/// Looks beside the descriptor for the renamed copy of a missing file and says what to
/// run; `None` when nothing fits.
fn suggest(dir: &Path, desc_name: &str, raw: &str, want: Want<'_>) -> Option<String> {
    let base = base_name(raw);
    let lower_desc = desc_name.to_ascii_lowercase();
    let stem = lower_desc.strip_suffix(".vmdk").unwrap_or(&lower_desc);
    let desc_stem = desc_name.get(..stem.len()).unwrap_or(desc_name);
    let mut found: Vec<(u8, String)> = Vec::new();
    let mut parents_checked = 0usize;
    for entry in std::fs::read_dir(dir).ok()?.take(MAX_DIR_SCAN).flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let lower = name.to_ascii_lowercase();
        if !lower.ends_with(".vmdk") || name == desc_name || name == base {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let mine = lower.starts_with(stem);
        let rank = match want {
            Want::Flat { need, .. } => {
                if meta.len() != need {
                    continue;
                }
                if lower == format!("{stem}-flat.vmdk") {
                    0
                } else if lower.ends_with("-flat.vmdk") || numbered(&lower, 'f') {
                    if mine {
                        1
                    } else {
                        2
                    }
                } else {
                    continue;
                }
            }
            Want::Sparse { kind, .. } => {
                let pattern = match kind {
                    "VMFSSPARSE" => lower.ends_with("-delta.vmdk"),
                    "SESPARSE" => lower.ends_with("-sesparse.vmdk"),
                    _ => numbered(&lower, 's'),
                };
                if !pattern {
                    continue;
                }
                let magic_ok = FileSource::open(&path).ok().is_some_and(|f| {
                    let f: SharedSource = Arc::new(f);
                    matches!(
                        (kind, sniff(&f, "candidate")),
                        ("VMFSSPARSE", Ok(Kind::Cowd))
                            | ("SESPARSE", Ok(Kind::SeSparse))
                            | ("SPARSE", Ok(Kind::Sparse))
                    )
                });
                if !magic_ok {
                    continue;
                }
                if mine {
                    0
                } else {
                    1
                }
            }
            Want::Parent(Some(cid)) => {
                if parents_checked >= MAX_PARENT_CANDIDATES {
                    break;
                }
                parents_checked = parents_checked.saturating_add(1);
                if cid_of(&path) != Some(cid) {
                    continue;
                }
                0
            }
            Want::Parent(None) | Want::Other => return None,
        };
        found.push((rank, name));
    }
    found.sort();
    let best = found.first()?.0;
    let names: Vec<&str> = found
        .iter()
        .filter(|(r, _)| *r == best)
        .map(|(_, n)| n.as_str())
        .collect();
    let (why, only) = match want {
        Want::Flat { need, only } => (
            if names.len() == 1 {
                format!("has the declared size ({need} bytes)")
            } else {
                format!("have the declared size ({need} bytes)")
            },
            only,
        ),
        Want::Sparse { kind, only } => (
            format!(
                "{} a {kind} extent",
                if names.len() == 1 { "is" } else { "are" }
            ),
            only,
        ),
        Want::Parent(cid) => (
            format!(
                "{} CID {:08x}, this disk's parentCID",
                if names.len() == 1 { "has" } else { "have" },
                cid.unwrap_or(0)
            ),
            false,
        ),
        Want::Other => return None,
    };
    if let [one] = names.as_slice() {
        let rewrite = if only {
            format!(
                "run  vmdkrecover descriptor rewrite {desc_name} --extent {one} -o {desc_stem}-fixed.vmdk  or "
            )
        } else {
            String::new()
        };
        Some(format!(
            "{one} {why}: {rewrite}read it as is with --extent-map {base}={one}"
        ))
    } else {
        Some(format!(
            "{} {why}: read the right one with --extent-map {base}=FILE",
            names.join(", ")
        ))
    }
}

/// The error for a missing file: [`Error::Renamed`] when a likely renamed copy is
/// beside the descriptor, else [`Error::NotFound`].
fn missing(dir: &Path, desc_name: &str, raw: &str, want: Want<'_>, looked: String) -> Error {
    match suggest(dir, desc_name, raw, want) {
        Some(hint) => Error::Renamed {
            file: desc_name.to_string(),
            what: want.what(),
            name: raw.to_string(),
            hint,
        },
        None => Error::NotFound {
            file: desc_name.to_string(),
            what: want.what(),
            name: raw.to_string(),
            looked,
        },
    }
}

/// Resolves a file named in a descriptor (see the module docs).
fn resolve(
    dir: &Path,
    desc_name: &str,
    raw: &str,
    want: Want<'_>,
    opts: &OpenOptions,
) -> Result<PathBuf, Error> {
    let what = want.what();
    let parent = matches!(want, Want::Parent(_));
    let base = base_name(raw);
    let p = Path::new(raw);
    let windows_abs = raw.contains('\\') || raw.as_bytes().get(1) == Some(&b':');
    if base.is_empty() || base == "." || base == ".." {
        return Err(Error::corrupt(
            desc_name,
            format!("{what} name {raw:?} is not a file name"),
        ));
    }
    if let Some(m) = mapped(dir, raw, opts) {
        // Named by the user on the command line: followed wherever it is.
        if m.exists() {
            return Ok(m);
        }
        return Err(Error::NotFound {
            file: desc_name.to_string(),
            what,
            name: raw.to_string(),
            looked: format!("--extent-map target {}", m.display()),
        });
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
                "; {} exists but lies outside that folder: copy it beside the descriptor, or give --allow-outside-dir",
                p.display()
            ));
        }
        return Err(missing(dir, desc_name, raw, want, looked));
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
                    "{what} path {raw:?} leaves the descriptor's folder {}; refused (give --allow-outside-dir to follow it)",
                    dir.display()
                ),
            });
        }
    }
    let cand = dir.join(p);
    if cand.exists() {
        Ok(cand)
    } else {
        Err(missing(
            dir,
            desc_name,
            raw,
            want,
            dir.display().to_string(),
        ))
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
    st: &mut State,
    mut warnings: Vec<String>,
) -> Result<Disk, Error> {
    if d.extents.is_empty() {
        return Err(Error::corrupt(name, "descriptor lists no extents"));
    }
    if d.extents.len() > MAX_EXTENT_LINES {
        return Err(Error::corrupt(
            name,
            format!(
                "descriptor lists {} extents, more than the {MAX_EXTENT_LINES} any disk has",
                d.extents.len()
            ),
        ));
    }
    if d.extents.len() > 64 {
        // A split disk holds one descriptor per distinct piece.
        bytesource::raise_open_file_limit();
    }
    let only = d.extents.len() == 1;
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
        let want = match e.kind.as_str() {
            "FLAT" | "VMFS" => Want::Flat {
                need: to_bytes(name, e.line, e.offset)?.saturating_add(len),
                only,
            },
            k @ ("SPARSE" | "VMFSSPARSE" | "SESPARSE") => Want::Sparse { kind: k, only },
            _ => Want::Other,
        };
        let file_path = match (&e.file, e.kind.as_str()) {
            (_, "ZERO") => None,
            (Some(f), _) => Some(resolve(dir, name, f, want, opts)?),
            (None, _) => None,
        };
        let context = format!("{name}: extent file");
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
                let file = open_file(st, &fp, Some(&context))?;
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
                let file = open_file(st, &fp, Some(&context))?;
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
    let parent = open_parent(dir, name, d, opts, depth, st, &mut warnings)?;
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
