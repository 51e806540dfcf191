//! Where a file's bytes come from, down to the files on the host: the key that lets
//! `versions` hash a file once for every image that resolves it to the same bytes.
//!
//! The file's runs (the filesystem's extent map, [`fsapi::Filesystem::file_runs`])
//! are followed through its volume: a partition adds its start on the disk (the
//! partition table), a linear LV segment maps to its PV at `pe_start + extent *
//! extent_size` (lvm2's metadata), and a disk made of FLAT/VMFS/ZERO extents
//! without a parent maps a disk offset to `offset_sectors * 512 + offset` of the
//! extent file (the descriptor's extent line). The result names each backing
//! file by its identity on the host (device, inode, size, mtime and ctime): two
//! images whose keys are equal read the same bytes of the same unchanged files,
//! so their contents are equal without reading them a second time.
//!
//! Where a layer is not followed (sparse, stream-optimized or SESparse extents,
//! delta disks, striped, mirrored, thin or snapshot LVs), the piece is keyed by the
//! volume offset together with the identity of every file of every disk of the
//! stack: equal only when the whole VM's storage is the same unchanged files,
//! which is exact too, only less often true. A filesystem whose journal or log was
//! replayed in memory, or a file whose runs do not cover it, gets no key (it is
//! always read): replayed blocks are not where the extent map says.
//!
//! What it does not do: guess from the guest's metadata (size, mtime, inode number
//! say nothing about the bytes).

use crate::stack::{Origin, Stack};
use fsapi::{FileRun, FileType, Filesystem, Ino};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// LV on PV on ... : deeper than this is refused (no real stack comes close).
const MAX_DEPTH: u32 = 8;

/// What says a host file's bytes did not change since another image was read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    /// The identity of the file at `path` (symlinks followed, as opening it does).
    pub fn of(path: &Path) -> Option<FileId> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// One piece of a file, in file order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Piece {
    /// Bytes of a host file.
    File { id: FileId, offset: u64, len: u64 },
    /// Zeros (a hole, unwritten extent, or ZERO extent).
    Zero { len: u64 },
    /// Bytes of a volume, read through layers not followed here; keyed with the
    /// identity of every file of the stack ([`Key::stack`]).
    Volume {
        volume: String,
        offset: u64,
        len: u64,
    },
}

/// Where every byte of one regular file comes from. Equal keys, equal contents.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    size: u64,
    pieces: Vec<Piece>,
    /// Every file of every disk (descriptors, extents, parents) when a piece is
    /// [`Piece::Volume`]; empty otherwise.
    stack: Vec<FileId>,
}

/// Every file the stack reads: each disk's opened file, its extents, its parents'.
fn stack_files(stack: &Stack) -> Option<Vec<FileId>> {
    let mut out = Vec::new();
    for d in &stack.disks {
        let mut info = Some(d.disk.info());
        let mut depth = 0u32;
        while let Some(i) = info {
            depth = depth.saturating_add(1);
            if depth > 64 {
                return None;
            }
            out.push(FileId::of(&i.path)?);
            for e in &i.extents {
                if let Some(f) = &e.file {
                    out.push(FileId::of(f)?);
                }
            }
            info = i.parent.map(|p| *p);
        }
    }
    Some(out)
}

fn push(out: &mut Vec<Piece>, p: Piece) {
    match (out.last_mut(), &p) {
        (
            Some(Piece::File {
                id: a,
                offset: ao,
                len: al,
            }),
            Piece::File {
                id: b,
                offset: bo,
                len: bl,
            },
        ) if a == b && ao.checked_add(*al) == Some(*bo) => *al = al.saturating_add(*bl),
        (Some(Piece::Zero { len: a }), Piece::Zero { len: b }) => *a = a.saturating_add(*b),
        (
            Some(Piece::Volume {
                volume: a,
                offset: ao,
                len: al,
            }),
            Piece::Volume {
                volume: b,
                offset: bo,
                len: bl,
            },
        ) if a == b && ao.checked_add(*al) == Some(*bo) => *al = al.saturating_add(*bl),
        _ => out.push(p),
    }
}

/// Follows `[off, off+len)` of disk `name` to its extent files; false when the
/// disk is not made of flat extents only.
fn map_disk(stack: &Stack, name: &str, off: u64, len: u64, out: &mut Vec<Piece>) -> bool {
    let Some(d) = stack.disks.iter().find(|d| d.name == name) else {
        return false;
    };
    let info = d.disk.info();
    let flat = |k: &str| k.eq_ignore_ascii_case("FLAT") || k.eq_ignore_ascii_case("VMFS");
    if info.parent.is_some()
        || info
            .extents
            .iter()
            .any(|e| !(e.kind.eq_ignore_ascii_case("ZERO") || flat(&e.kind) && e.file.is_some()))
    {
        return false;
    }
    let Some(end) = off.checked_add(len) else {
        return false;
    };
    let mut pieces = Vec::new();
    let mut start = 0u64;
    let mut pos = off;
    for e in &info.extents {
        let Some(size) = e.sectors.checked_mul(512) else {
            return false;
        };
        let Some(stop) = start.checked_add(size) else {
            return false;
        };
        if pos < stop && pos < end {
            let n = stop.min(end).saturating_sub(pos);
            let rel = pos.saturating_sub(start);
            match &e.file {
                Some(f) if flat(&e.kind) => {
                    let (Some(id), Some(base)) = (FileId::of(f), e.offset_sectors.checked_mul(512))
                    else {
                        return false;
                    };
                    let Some(offset) = base.checked_add(rel) else {
                        return false;
                    };
                    push(&mut pieces, Piece::File { id, offset, len: n });
                }
                _ => push(&mut pieces, Piece::Zero { len: n }),
            }
            pos = pos.saturating_add(n);
        }
        start = stop;
    }
    if pos != end {
        return false;
    }
    for p in pieces {
        push(out, p);
    }
    true
}

/// Follows `[off, off+len)` of the volume named `name` down to host files,
/// falling back to a [`Piece::Volume`] for a range whose layers are not followed.
fn map_volume(
    stack: &Stack,
    name: &str,
    off: u64,
    len: u64,
    out: &mut Vec<Piece>,
    depth: u32,
) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    let vol = stack.volumes.iter().find(|v| v.name == name)?;
    let whole = |out: &mut Vec<Piece>| {
        push(
            out,
            Piece::Volume {
                volume: name.to_string(),
                offset: off,
                len,
            },
        )
    };
    if off.checked_add(len)? > vol.size {
        return None;
    }
    match &vol.origin {
        Origin::Disk { disk } => {
            if !map_disk(stack, disk, off, len, out) {
                whole(out);
            }
        }
        Origin::Partition { disk, number } => {
            let d = stack.disks.iter().find(|d| &d.name == disk)?;
            let p = d.table.partitions.iter().find(|p| p.number == *number)?;
            if !map_disk(stack, disk, p.start.checked_add(off)?, len, out) {
                whole(out);
            }
        }
        Origin::Lv { vg, lv } => {
            let mut mapped = Vec::new();
            if map_lv(stack, vg, lv, off, len, &mut mapped, depth).is_some() {
                for p in mapped {
                    push(out, p);
                }
            } else {
                whole(out);
            }
        }
    }
    Some(())
}

/// A plain LV of linear segments: each piece goes to its PV's volume.
fn map_lv(
    stack: &Stack,
    vg: &str,
    lv: &str,
    mut off: u64,
    mut len: u64,
    out: &mut Vec<Piece>,
    depth: u32,
) -> Option<()> {
    let g = stack.lvm.vg(vg)?;
    let info = g.lv(lv)?;
    if !matches!(info.role, lvm2::LvRole::Plain | lvm2::LvRole::Origin { .. }) {
        return None;
    }
    let es = g.extent_size();
    let mut guard = 0usize;
    while len > 0 {
        guard = guard.saturating_add(1);
        if guard > info.segments.len().saturating_add(1) {
            return None;
        }
        let seg = info.segments.iter().find(|s| {
            let a = s.start_extent.checked_mul(es);
            let b = s
                .start_extent
                .checked_add(s.extent_count)
                .and_then(|e| e.checked_mul(es));
            matches!((a, b), (Some(a), Some(b)) if a <= off && off < b)
        })?;
        if seg.kind != "striped" || seg.stripe_count != 1 || seg.areas.len() != 1 {
            return None;
        }
        let (pv_name, extent) = seg.areas.first()?.rsplit_once(':')?;
        let extent: u64 = extent.parse().ok()?;
        let pv = g.pvs().iter().find(|p| p.name == pv_name)?;
        let device = pv.present_on.as_deref()?;
        let seg_start = seg.start_extent.checked_mul(es)?;
        let seg_end = seg
            .start_extent
            .checked_add(seg.extent_count)?
            .checked_mul(es)?;
        let n = len.min(seg_end.checked_sub(off)?);
        let pv_off = pv
            .pe_start
            .checked_add(extent.checked_mul(es)?)?
            .checked_add(off.checked_sub(seg_start)?)?;
        map_volume(stack, device, pv_off, n, out, depth.saturating_add(1))?;
        off = off.checked_add(n)?;
        len = len.checked_sub(n)?;
    }
    Some(())
}

/// The key of regular file `ino` of `fs`, which is the filesystem on volume
/// `volume` of `stack`; `None` when it cannot be told (see the module doc).
pub fn key(stack: &Stack, volume: &str, fs: &dyn Filesystem, ino: Ino) -> Option<Key> {
    if fs.info().journal_replayed {
        return None;
    }
    let md = fs.metadata(ino).ok()?;
    if md.file_type != FileType::Regular {
        return None;
    }
    let runs = fs.file_runs(ino).ok()?;
    let mut pieces = Vec::new();
    let mut at = 0u64;
    for r in &runs {
        if r.offset() != at {
            return None;
        }
        match *r {
            FileRun::Data { len, physical, .. } => {
                map_volume(stack, volume, physical, len, &mut pieces, 0)?
            }
            FileRun::Hole { len, .. } | FileRun::Unwritten { len, .. } => {
                push(&mut pieces, Piece::Zero { len })
            }
        }
        at = at.checked_add(r.len())?;
    }
    if at != md.size {
        return None;
    }
    let stack_ids = if pieces.iter().any(|p| matches!(p, Piece::Volume { .. })) {
        stack_files(stack)?
    } else {
        Vec::new()
    };
    Some(Key {
        size: md.size,
        pieces,
        stack: stack_ids,
    })
}

#[cfg(test)]
mod tests {
    //! The mapping checked against the source trees: every regular file of the
    //! sample disk's three filesystems (/boot on sda1, the root LV on sda2, and
    //! VolGroup01/data spanning sda5 and the second disk) is read back from the
    //! host files its key names, and those bytes must hash to the sha256 that
    //! scripts/make-testdata.sh recorded from the source tree (MANIFEST.*.tsv).
    use super::*;
    use crate::stack::OpenRequest;
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::FileExt;
    use std::path::PathBuf;

    fn testdata(n: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(n)
    }

    /// Reads the bytes a key names; None when a piece is not a host file.
    fn read_key(k: &Key, paths: &HashMap<FileId, PathBuf>) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for p in &k.pieces {
            match p {
                Piece::File { id, offset, len } => {
                    let f = std::fs::File::open(paths.get(id)?).ok()?;
                    let mut b = vec![0u8; usize::try_from(*len).ok()?];
                    f.read_exact_at(&mut b, *offset).ok()?;
                    out.extend_from_slice(&b);
                }
                Piece::Zero { len } => out.resize(out.len() + *len as usize, 0),
                Piece::Volume { .. } => return None,
            }
        }
        out.truncate(k.size as usize);
        Some(out)
    }

    use std::collections::HashMap;

    #[test]
    fn keys_name_the_bytes_the_source_tree_had() {
        let req = OpenRequest {
            image: testdata("vm.vmdk"),
            extra_disks: vec![testdata("vm_1.vmdk")],
            ..Default::default()
        };
        let stack = Stack::open(&req).unwrap();
        let paths: HashMap<FileId, PathBuf> = ["vm-flat.vmdk", "vm_1-flat.vmdk"]
            .iter()
            .map(|n| (FileId::of(&testdata(n)).unwrap(), testdata(n)))
            .collect();
        let (mut checked, mut files) = (0, 0);
        for (volume, manifest) in [
            ("sda1", "MANIFEST.boot.tsv"),
            ("VolGroup00/LogVol00", "MANIFEST.root.tsv"),
            ("VolGroup01/data", "MANIFEST.srv.tsv"),
        ] {
            let vol = stack.volumes.iter().find(|v| v.name == volume).unwrap();
            let fs = crate::spec::open_fs(vol, false).unwrap();
            let text = std::fs::read_to_string(testdata(manifest)).unwrap();
            for line in text.lines() {
                let f: Vec<&str> = line.split('\t').collect();
                if f[1] != "f" {
                    continue;
                }
                files += 1;
                let ino = fs.fs.lookup(f[0].as_bytes()).unwrap();
                let Some(k) = key(&stack, volume, &*fs.fs, ino) else {
                    continue;
                };
                let bytes = read_key(&k, &paths).unwrap_or_else(|| panic!("{volume}:{}", f[0]));
                let sum: String = Sha256::digest(&bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                assert_eq!(sum, f[5], "{volume}:{}", f[0]);
                checked += 1;
            }
        }
        // Every file of these ext filesystems has extents on flat extents and
        // linear LVs, so every one gets a key.
        assert_eq!(checked, files);
        assert!(files > 100, "{files}");
    }
}
