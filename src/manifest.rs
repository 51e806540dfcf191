//! A tree's manifest: every object below a path with what `versions` and `diff`
//! compare (type, size, mode, owner, mtime, symlink target, xattrs, and optionally
//! the sha256 of the contents), in path order.

use anyhow::{anyhow, Result};
use fsapi::{FileType, Filesystem, Ino, Metadata, Timestamp};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};

/// Largest read while hashing a file.
const HASH_CHUNK: usize = 1 << 20;
/// Most objects one manifest holds (a hostile tree cannot grow it without bound).
const MAX_OBJECTS: usize = 10_000_000;

/// One object of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// Type.
    pub file_type: FileType,
    /// Full mode.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: Timestamp,
    /// Symlink target.
    pub target: Option<Vec<u8>>,
    /// Device numbers of device nodes.
    pub rdev: Option<(u32, u32)>,
    /// Extended attributes: name -> sha256 of the value.
    pub xattrs: BTreeMap<Vec<u8>, [u8; 32]>,
    /// sha256 of the contents (regular files, when asked for).
    pub sha256: Option<[u8; 32]>,
}

/// A whole tree: path (relative to the manifest's top, `""` for the top itself) ->
/// object, plus the objects that could not be read.
#[derive(Debug, Default)]
pub struct Manifest {
    /// Objects by relative path.
    pub objects: BTreeMap<Vec<u8>, Object>,
    /// Paths that could not be read, with why.
    pub errors: Vec<(Vec<u8>, String)>,
}

impl Manifest {
    /// One hash over every object (paths, types, modes, owners, sizes, mtimes,
    /// targets, xattrs, contents): equal trees have equal digests.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for (path, o) in &self.objects {
            h.update(u64::try_from(path.len()).unwrap_or(u64::MAX).to_le_bytes());
            h.update(path);
            h.update(describe(o).as_bytes());
            if let Some(s) = o.sha256 {
                h.update(s);
            }
            for (n, v) in &o.xattrs {
                h.update(n);
                h.update(v);
            }
        }
        h.finalize().into()
    }
}

/// One line describing the metadata of an object, used in digests.
fn describe(o: &Object) -> String {
    format!(
        "{:?} {:o} {} {} {} {}.{} {:?} {:?}",
        o.file_type, o.mode, o.uid, o.gid, o.size, o.mtime.secs, o.mtime.nanos, o.target, o.rdev
    )
}

/// sha256 of a file's contents, read in large pieces; holes read as zeros.
pub fn hash_file(fs: &dyn Filesystem, ino: Ino, size: u64) -> Result<[u8; 32]> {
    hash_file_with(fs, ino, size, &|_| {})
}

/// [`hash_file`], telling `on_bytes` how many bytes each read added (progress).
pub fn hash_file_with(
    fs: &dyn Filesystem,
    ino: Ino,
    size: u64,
    on_bytes: &dyn Fn(u64),
) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; HASH_CHUNK];
    let mut pos = 0u64;
    while pos < size {
        let want = usize::try_from((size - pos).min(HASH_CHUNK as u64)).unwrap_or(HASH_CHUNK);
        let chunk = buf
            .get_mut(..want)
            .ok_or_else(|| anyhow!("internal: chunk"))?;
        let n = fs.read_at(ino, pos, chunk)?;
        if n == 0 {
            return Err(anyhow!(
                "inode {ino}: file ends at byte {pos}, before its size {size}"
            ));
        }
        h.update(chunk.get(..n).unwrap_or_default());
        pos = pos.saturating_add(n as u64);
        on_bytes(n as u64);
    }
    Ok(h.finalize().into())
}

/// Builds the object for one inode.
pub fn object(fs: &dyn Filesystem, m: &Metadata, content: bool) -> Result<Object> {
    let target = if m.file_type == FileType::Symlink {
        Some(fs.read_link(m.ino)?)
    } else {
        None
    };
    let sha256 = if content && m.file_type == FileType::Regular {
        Some(hash_file(fs, m.ino, m.size)?)
    } else {
        None
    };
    let mut xattrs = BTreeMap::new();
    for x in fs.xattrs(m.ino)? {
        xattrs.insert(x.name, Sha256::digest(&x.value).into());
    }
    Ok(Object {
        file_type: m.file_type,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        size: m.size,
        mtime: m.mtime,
        target,
        rdev: m.rdev,
        xattrs,
        sha256,
    })
}

/// The manifest of everything at and below `top` (an inode of `fs`).
pub fn build(fs: &dyn Filesystem, top: Ino, content: bool) -> Result<Manifest> {
    let mut out = Manifest::default();
    let mut seen: HashSet<Ino> = HashSet::new();
    let mut stack: Vec<(Vec<u8>, Ino)> = vec![(Vec::new(), top)];
    while let Some((path, ino)) = stack.pop() {
        if out.objects.len() >= MAX_OBJECTS {
            out.errors.push((
                path,
                format!("more than {MAX_OBJECTS} objects; the rest is not compared"),
            ));
            break;
        }
        let m = match fs.metadata(ino) {
            Ok(m) => m,
            Err(e) => {
                out.errors.push((path, e.to_string()));
                continue;
            }
        };
        match object(fs, &m, content) {
            Ok(o) => {
                out.objects.insert(path.clone(), o);
            }
            Err(e) => {
                out.errors.push((path.clone(), e.to_string()));
                continue;
            }
        }
        if m.file_type != FileType::Directory || !seen.insert(ino) {
            continue;
        }
        match fs.read_dir(ino) {
            Ok(entries) => {
                for e in entries {
                    let mut p = path.clone();
                    p.push(b'/');
                    p.extend_from_slice(&e.name);
                    stack.push((p, e.ino));
                }
            }
            Err(e) => out.errors.push((path, e.to_string())),
        }
    }
    Ok(out)
}

/// What differs between two objects at the same path, as short phrases
/// (`size 10 -> 12`, `mode 644 -> 600`, `content`).
pub fn changes(a: &Object, b: &Object) -> Vec<String> {
    let mut out = Vec::new();
    if a.file_type != b.file_type {
        out.push(format!("type {:?} -> {:?}", a.file_type, b.file_type));
        return out;
    }
    // A directory's size is its on-disk layout (ext blocks, XFS shortform bytes),
    // not its contents: the entries themselves are compared one by one.
    if a.size != b.size && a.file_type != FileType::Directory {
        out.push(format!("size {} -> {}", a.size, b.size));
    }
    if a.mode != b.mode {
        out.push(format!(
            "mode {:o} -> {:o}",
            a.mode & 0o7777,
            b.mode & 0o7777
        ));
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        out.push(format!("owner {}:{} -> {}:{}", a.uid, a.gid, b.uid, b.gid));
    }
    if a.mtime != b.mtime && a.file_type != FileType::Directory {
        out.push(format!(
            "mtime {} -> {}",
            crate::cmd::format_time_ns(a.mtime),
            crate::cmd::format_time_ns(b.mtime)
        ));
    }
    if a.target != b.target {
        let show =
            |t: &Option<Vec<u8>>| t.as_deref().map(crate::cmd::show_name).unwrap_or_default();
        out.push(format!("target {} -> {}", show(&a.target), show(&b.target)));
    }
    if a.rdev != b.rdev {
        out.push(format!("device {:?} -> {:?}", a.rdev, b.rdev));
    }
    if a.xattrs != b.xattrs {
        out.push("xattrs".to_string());
    }
    if let (Some(x), Some(y)) = (a.sha256, b.sha256) {
        if x != y {
            out.push("content".to_string());
        }
    }
    out
}

/// Lowercase hex of a digest.
pub fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}
