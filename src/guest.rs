//! The guest as one tree: the root filesystem with every other filesystem mounted
//! where the guest's fstab puts it, presented as a single [`fsapi::Filesystem`].
//!
//! Every command that walks a tree (`ls -R`, `find`, `cp`, `tar`, `mount`) takes a
//! filesystem and a path; handing it a [`GuestTree`] instead of one volume's
//! filesystem makes it cross mount points the way the guest's kernel would, with no
//! command knowing about mounts. Paths it prints are guest paths.
//!
//! Inode numbers: the root filesystem's numbers are unchanged; those of the
//! filesystem mounted `n`th carry `n` in their top 8 bits, so numbers stay unique
//! across the tree (hard-link detection in `cp` and `tar` relies on that) and
//! `stat` on the root filesystem shows the real ones. A mount point whose directory
//! is missing on the filesystem below (a common sight: `/boot` exists only while
//! mounted on some images) appears as a directory entry anyway, and so do missing
//! parent directories, as read-only synthetic directories.
//!
//! What it does not do: bind mounts, overlay or union mounts, network filesystems
//! (the caller skips those fstab lines and says so), or reading a device: data is
//! read through the filesystem that owns the file ([`Filesystem::read_device_at`]
//! is refused, since device offsets mean nothing across filesystems).

use fsapi::Filesystem as _;
use fsapi::{DirEntry, Error, FileRun, FileType, FsInfo, Ino, Metadata, Result, Xattr};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Bits of an inode number left to the filesystem that owns it.
const INO_BITS: u32 = 56;
/// Most filesystems in one tree (the top 8 bits pick one; 255 is the synthetic one).
const MAX_MOUNTS: usize = 255;
/// Index of the synthetic directories.
const SYNTHETIC: u64 = 255;

/// One filesystem placed in the tree.
#[derive(Clone)]
pub struct Mount {
    /// Absolute guest path of the mount point (`/`, `/boot`, `/var/log`).
    pub path: Vec<u8>,
    /// What to call it in messages (`sda1`, `rhel/root`).
    pub volume: String,
    /// The filesystem mounted there.
    pub fs: Arc<dyn fsapi::Filesystem>,
}

impl fmt::Debug for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mount")
            .field("path", &String::from_utf8_lossy(&self.path))
            .field("volume", &self.volume)
            .finish_non_exhaustive()
    }
}

/// A synthetic directory standing in for a missing mount point or its missing parents.
#[derive(Debug, Default)]
struct Synthetic {
    entries: Vec<DirEntry>,
    mtime: fsapi::Timestamp,
}

/// The assembled guest: see the module doc.
pub struct GuestTree {
    mounts: Vec<Mount>,
    /// (mount index, inode covered by a mount) -> the guest inode shown instead.
    covered: HashMap<(usize, Ino), Ino>,
    /// Entries to add to a directory (a missing mount point), by guest inode.
    extra: HashMap<Ino, Vec<DirEntry>>,
    /// Synthetic directories, indexed by the low bits of their inode number.
    synthetic: Vec<Synthetic>,
    /// Mount points that could not be placed, with why (shown by `info`).
    skipped: Vec<String>,
}

impl fmt::Debug for GuestTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestTree")
            .field("mounts", &self.mounts)
            .finish_non_exhaustive()
    }
}

fn encode(index: usize, ino: Ino) -> Result<Ino> {
    let idx = u64::try_from(index).map_err(|_| Error::corrupt("guest tree", "too many mounts"))?;
    if ino >> INO_BITS != 0 {
        return Err(Error::unsupported(
            format!("inode {ino}"),
            "inode number too large to place in the guest tree",
        ));
    }
    Ok((idx << INO_BITS) | ino)
}

fn decode(ino: Ino) -> (u64, Ino) {
    (ino >> INO_BITS, ino & ((1u64 << INO_BITS) - 1))
}

fn components(path: &[u8]) -> Vec<Vec<u8>> {
    fsapi::split_path(path)
}

impl GuestTree {
    /// Builds the tree. `mounts[0]` must be the root (`/`); the others are placed in
    /// order of their depth, so `/var` is mounted before `/var/log`. A mount point
    /// that cannot be placed (its parent is a file, a symlink loop, the path is
    /// covered twice) is skipped and listed in [`GuestTree::skipped`].
    pub fn new(mut mounts: Vec<Mount>) -> Result<GuestTree> {
        if mounts.is_empty() || mounts.len() > MAX_MOUNTS {
            return Err(Error::corrupt(
                "guest tree",
                format!("{} filesystems (1 to {MAX_MOUNTS} expected)", mounts.len()),
            ));
        }
        let root = mounts.remove(0);
        mounts.sort_by_key(|m| components(&m.path).len());
        mounts.insert(0, root);
        let mut tree = GuestTree {
            mounts: Vec::new(),
            covered: HashMap::new(),
            extra: HashMap::new(),
            synthetic: Vec::new(),
            skipped: Vec::new(),
        };
        for (i, m) in mounts.into_iter().enumerate() {
            if i == 0 {
                tree.mounts.push(m);
                continue;
            }
            let index = tree.mounts.len();
            let root = match m.fs.root() {
                r if r >> INO_BITS == 0 => encode(index, r)?,
                _ => {
                    tree.skipped.push(format!(
                        "{}: root inode number too large",
                        String::from_utf8_lossy(&m.path)
                    ));
                    continue;
                }
            };
            let path = m.path.clone();
            tree.mounts.push(m);
            if let Err(e) = tree.place(&path, root) {
                tree.mounts.pop();
                tree.skipped
                    .push(format!("{}: {e}", String::from_utf8_lossy(&path)));
            }
        }
        Ok(tree)
    }

    /// Mount points that were not placed, with the reason.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The filesystems in the tree, root first.
    pub fn mounts(&self) -> &[Mount] {
        &self.mounts
    }

    /// The mount that owns guest inode `ino` and the inode number inside it, or
    /// `None` for a synthetic directory.
    pub fn owner(&self, ino: Ino) -> Option<(&Mount, Ino)> {
        let (idx, inner) = decode(ino);
        let m = self.mounts.get(usize::try_from(idx).ok()?)?;
        Some((m, inner))
    }

    /// Makes `path` show the filesystem whose root is the guest inode `root`.
    fn place(&mut self, path: &[u8], root: Ino) -> Result<()> {
        let comps = components(path);
        let Some((last, parents)) = comps.split_last() else {
            return Err(Error::corrupt("guest tree", "a second root"));
        };
        let mut dir = self.root();
        for name in parents {
            dir = match self.child(dir, name)? {
                Some(e) if self.metadata(e.ino)?.file_type == FileType::Directory => e.ino,
                Some(_) => {
                    return Err(Error::NotADirectory {
                        path: String::from_utf8_lossy(name).into_owned(),
                    })
                }
                None => self.add_synthetic(dir, name)?,
            };
        }
        match self.child(dir, last)? {
            Some(e) => {
                let (idx, inner) = decode(e.ino);
                let idx = usize::try_from(idx)
                    .map_err(|_| Error::corrupt("guest tree", "bad mount index"))?;
                if idx == usize::try_from(SYNTHETIC).unwrap_or(usize::MAX) {
                    return Err(Error::corrupt("guest tree", "mount point already placed"));
                }
                self.covered.insert((idx, inner), root);
            }
            None => self.add_entry(
                dir,
                DirEntry {
                    name: last.clone(),
                    ino: root,
                    file_type: FileType::Directory,
                },
            ),
        }
        Ok(())
    }

    /// Adds an entry to a directory's listing (a synthetic one or a real one).
    fn add_entry(&mut self, dir: Ino, entry: DirEntry) {
        match self.synthetic_mut(dir) {
            Some(s) => s.entries.push(entry),
            None => self.extra.entry(dir).or_default().push(entry),
        }
    }

    fn add_synthetic(&mut self, parent: Ino, name: &[u8]) -> Result<Ino> {
        let n = u64::try_from(self.synthetic.len())
            .map_err(|_| Error::corrupt("guest tree", "too many directories"))?;
        let ino = (SYNTHETIC << INO_BITS) | n;
        self.synthetic.push(Synthetic::default());
        self.add_entry(
            parent,
            DirEntry {
                name: name.to_vec(),
                ino,
                file_type: FileType::Directory,
            },
        );
        Ok(ino)
    }

    fn synthetic_mut(&mut self, ino: Ino) -> Option<&mut Synthetic> {
        let (idx, n) = decode(ino);
        if idx != SYNTHETIC {
            return None;
        }
        self.synthetic.get_mut(usize::try_from(n).ok()?)
    }

    fn synthetic_ref(&self, ino: Ino) -> Option<&Synthetic> {
        let (idx, n) = decode(ino);
        if idx != SYNTHETIC {
            return None;
        }
        self.synthetic.get(usize::try_from(n).ok()?)
    }

    fn child(&self, dir: Ino, name: &[u8]) -> Result<Option<DirEntry>> {
        Ok(self.read_dir(dir)?.into_iter().find(|e| e.name == name))
    }

    /// The filesystem and inner inode behind a guest inode (mount roots resolved).
    fn resolve(&self, ino: Ino) -> Result<(&dyn fsapi::Filesystem, Ino)> {
        let (idx, inner) = decode(ino);
        let fs = usize::try_from(idx)
            .ok()
            .and_then(|i| self.mounts.get(i))
            .ok_or_else(|| Error::WrongType {
                ino,
                detail: "not an inode of this guest tree".into(),
            })?;
        Ok((fs.fs.as_ref(), inner))
    }

    fn index_of(ino: Ino) -> usize {
        usize::try_from(decode(ino).0).unwrap_or(usize::MAX)
    }
}

impl fsapi::Filesystem for GuestTree {
    fn info(&self) -> FsInfo {
        let mut info = self.mounts.first().map(|m| m.fs.info()).unwrap_or_default();
        for m in self.mounts.iter().skip(1) {
            info.details.push((
                format!("mount {}", String::from_utf8_lossy(&m.path)),
                m.volume.clone(),
            ));
        }
        info
    }

    fn warnings(&self) -> Vec<String> {
        let mut all = Vec::new();
        for m in &self.mounts {
            for w in m.fs.warnings() {
                all.push(format!("{}: {w}", m.volume));
            }
        }
        all
    }

    fn warning_count(&self) -> u64 {
        self.mounts
            .iter()
            .fold(0u64, |n, m| n.saturating_add(m.fs.warning_count()))
    }

    fn root(&self) -> Ino {
        self.mounts.first().map(|m| m.fs.root()).unwrap_or(0)
    }

    fn metadata(&self, ino: Ino) -> Result<Metadata> {
        if let Some(s) = self.synthetic_ref(ino) {
            return Ok(Metadata {
                ino,
                mode: 0o040555,
                file_type: FileType::Directory,
                uid: 0,
                gid: 0,
                size: 0,
                nlink: 2,
                atime: s.mtime,
                mtime: s.mtime,
                ctime: s.mtime,
                crtime: None,
                flags: 0,
                rdev: None,
                generation: 0,
                blocks: 0,
            });
        }
        let (fs, inner) = self.resolve(ino)?;
        let mut m = fs.metadata(inner)?;
        m.ino = ino;
        Ok(m)
    }

    fn read_dir(&self, ino: Ino) -> Result<Vec<DirEntry>> {
        if let Some(s) = self.synthetic_ref(ino) {
            return Ok(s.entries.clone());
        }
        let index = Self::index_of(ino);
        let (fs, inner) = self.resolve(ino)?;
        let mut entries = fs.read_dir(inner)?;
        for e in &mut entries {
            let shown = self.covered.get(&(index, e.ino)).copied();
            e.ino = match shown {
                Some(root) => {
                    e.file_type = FileType::Directory;
                    root
                }
                None => encode(index, e.ino)?,
            };
        }
        if let Some(more) = self.extra.get(&ino) {
            for m in more {
                if !entries.iter().any(|e| e.name == m.name) {
                    entries.push(m.clone());
                }
            }
        }
        Ok(entries)
    }

    fn read_link(&self, ino: Ino) -> Result<Vec<u8>> {
        let (fs, inner) = self.resolve(ino)?;
        fs.read_link(inner)
    }

    fn read_at(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (fs, inner) = self.resolve(ino)?;
        fs.read_at(inner, offset, buf)
    }

    fn file_runs(&self, ino: Ino) -> Result<Vec<FileRun>> {
        let (fs, inner) = self.resolve(ino)?;
        fs.file_runs(inner)
    }

    fn xattrs(&self, ino: Ino) -> Result<Vec<Xattr>> {
        if self.synthetic_ref(ino).is_some() {
            return Ok(Vec::new());
        }
        let (fs, inner) = self.resolve(ino)?;
        fs.xattrs(inner)
    }

    fn data_host_range(
        &self,
        ino: Ino,
        physical: u64,
        len: u64,
    ) -> Option<bytesource::HostRange<'_>> {
        if self.synthetic_ref(ino).is_some() {
            return None;
        }
        let (fs, inner) = self.resolve(ino).ok()?;
        fs.data_host_range(inner, physical, len)
    }

    fn read_device_at(&self, _offset: u64, _buf: &mut [u8]) -> Result<()> {
        Err(Error::unsupported(
            "guest tree",
            "device offsets belong to one volume; read the volume itself",
        ))
    }
}

#[cfg(test)]
mod tests {
    //! The composition logic on a tiny in-memory filesystem (the on-disk readers
    //! are checked against their oracles in their own crates and in
    //! tests/guest_tree.rs).
    use super::*;

    /// A node: its type, its entries (name, inode) and its content.
    type Node = (FileType, Vec<(Vec<u8>, Ino)>, Vec<u8>);
    /// How a test writes a node: inode, type, entries, content.
    type NodeSpec<'a> = (Ino, FileType, &'a [(&'a str, Ino)], &'a str);

    #[derive(Debug)]
    struct Mem {
        nodes: HashMap<Ino, Node>,
    }

    impl Mem {
        fn new(spec: &[NodeSpec]) -> Arc<Mem> {
            let nodes = spec
                .iter()
                .map(|(i, t, ents, data)| {
                    (
                        *i,
                        (
                            *t,
                            ents.iter()
                                .map(|(n, c)| (n.as_bytes().to_vec(), *c))
                                .collect(),
                            data.as_bytes().to_vec(),
                        ),
                    )
                })
                .collect();
            Arc::new(Mem { nodes })
        }
    }

    impl fsapi::Filesystem for Mem {
        fn info(&self) -> FsInfo {
            FsInfo::new("mem")
        }
        fn warnings(&self) -> Vec<String> {
            Vec::new()
        }
        fn warning_count(&self) -> u64 {
            0
        }
        fn root(&self) -> Ino {
            2
        }
        fn metadata(&self, ino: Ino) -> Result<Metadata> {
            let (t, _, d) = self.nodes.get(&ino).ok_or_else(|| Error::NotFound {
                path: format!("#{ino}"),
            })?;
            Ok(Metadata {
                ino,
                mode: if *t == FileType::Directory {
                    0o40755
                } else {
                    0o100644
                },
                file_type: *t,
                uid: 0,
                gid: 0,
                size: d.len() as u64,
                nlink: 1,
                atime: Default::default(),
                mtime: Default::default(),
                ctime: Default::default(),
                crtime: None,
                flags: 0,
                rdev: None,
                generation: 0,
                blocks: 0,
            })
        }
        fn read_dir(&self, ino: Ino) -> Result<Vec<DirEntry>> {
            let (_, e, _) = self.nodes.get(&ino).unwrap();
            Ok(e.iter()
                .map(|(n, i)| DirEntry {
                    name: n.clone(),
                    ino: *i,
                    file_type: self.nodes.get(i).unwrap().0,
                })
                .collect())
        }
        fn read_link(&self, _: Ino) -> Result<Vec<u8>> {
            Err(Error::corrupt("mem", "no links"))
        }
        fn read_at(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize> {
            let d = &self.nodes.get(&ino).unwrap().2;
            let start = (offset as usize).min(d.len());
            let n = buf.len().min(d.len() - start);
            buf[..n].copy_from_slice(&d[start..start + n]);
            Ok(n)
        }
        fn file_runs(&self, _: Ino) -> Result<Vec<FileRun>> {
            Ok(Vec::new())
        }
        fn xattrs(&self, _: Ino) -> Result<Vec<Xattr>> {
            Ok(Vec::new())
        }
        fn read_device_at(&self, _: u64, _: &mut [u8]) -> Result<()> {
            Ok(())
        }
    }

    fn read(t: &GuestTree, path: &str) -> String {
        let ino = t.lookup(path.as_bytes()).unwrap();
        let mut buf = vec![0u8; 100];
        let n = t.read_at(ino, 0, &mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn tree() -> GuestTree {
        use FileType::*;
        // root: /boot (empty dir), /etc/fstab; /srv missing
        let root = Mem::new(&[
            (2, Directory, &[("boot", 10), ("etc", 11)], ""),
            (10, Directory, &[("stale", 12)], ""),
            (11, Directory, &[("fstab", 13)], ""),
            (12, Regular, &[], "under the mount"),
            (13, Regular, &[], "root fstab"),
        ]);
        let boot = Mem::new(&[
            (2, Directory, &[("grub", 20)], ""),
            (20, Directory, &[("grub.conf", 21)], ""),
            (21, Regular, &[], "boot grub"),
        ]);
        let data = Mem::new(&[
            (2, Directory, &[("f", 30)], ""),
            (30, Regular, &[], "data f"),
        ]);
        GuestTree::new(vec![
            Mount {
                path: b"/".to_vec(),
                volume: "root".into(),
                fs: root,
            },
            Mount {
                path: b"/srv/data/x".to_vec(),
                volume: "data".into(),
                fs: data,
            },
            Mount {
                path: b"/boot".to_vec(),
                volume: "sda1".into(),
                fs: boot,
            },
        ])
        .unwrap()
    }

    #[test]
    fn crosses_mounts_and_hides_what_is_under_them() {
        let t = tree();
        assert_eq!(read(&t, "/etc/fstab"), "root fstab");
        assert_eq!(read(&t, "/boot/grub/grub.conf"), "boot grub");
        assert!(t.lookup(b"/boot/stale").is_err());
        assert_eq!(read(&t, "/boot/grub/../grub/grub.conf"), "boot grub");
    }

    #[test]
    fn missing_mount_points_are_synthesised() {
        let t = tree();
        assert_eq!(read(&t, "/srv/data/x/f"), "data f");
        let root = t.read_dir(t.root()).unwrap();
        let names: Vec<_> = root.iter().map(|e| e.name.clone()).collect();
        assert_eq!(
            names,
            vec![b"boot".to_vec(), b"etc".to_vec(), b"srv".to_vec()]
        );
        let srv = t.lookup(b"/srv").unwrap();
        assert_eq!(t.metadata(srv).unwrap().file_type, FileType::Directory);
        assert!(t.skipped().is_empty());
    }

    #[test]
    fn inode_numbers_are_unique_across_mounts() {
        let t = tree();
        let a = t.lookup(b"/etc/fstab").unwrap();
        let b = t.lookup(b"/boot/grub/grub.conf").unwrap();
        assert_eq!(a, 13);
        assert_ne!(b, 21);
        assert_eq!(t.owner(b).unwrap().1, 21);
        assert_eq!(t.owner(b).unwrap().0.volume, "sda1");
    }
}
