//! `vmdkrecover mount`: a guest filesystem as a read-only FUSE mount, so that any
//! tool (rsync, grep -r, a file manager) can browse it. Runs in the foreground until
//! the mount point is unmounted (`fusermount -u`/`umount`) or the process gets
//! Ctrl-C/SIGTERM, which unmounts it.
//!
//! Inode numbers are the ext ones, except that the root (ext inode 2) is FUSE's 1.

use super::{Common, Outcome};
use anyhow::{anyhow, bail, Context, Result};
use fuser::{
    FileAttr, FileType, MountOption, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyXattr,
    Request,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The image never changes under us: let the kernel cache attributes and entries.
const TTL: Duration = Duration::from_secs(3600);
/// Directories whose listing is kept between readdir calls.
const DIR_CACHE: usize = 64;

struct GuestFs {
    fs: Arc<extfs::Filesystem>,
    dirs: HashMap<u32, Arc<Vec<extfs::DirEntry>>>,
}

fn to_ext(ino: u64) -> u32 {
    if ino == fuser::FUSE_ROOT_ID {
        2
    } else {
        u32::try_from(ino).unwrap_or(0)
    }
}

fn to_fuse(ino: u32) -> u64 {
    if ino == 2 {
        fuser::FUSE_ROOT_ID
    } else {
        u64::from(ino)
    }
}

fn kind(ft: extfs::FileType) -> FileType {
    match ft {
        extfs::FileType::Directory => FileType::Directory,
        extfs::FileType::Symlink => FileType::Symlink,
        extfs::FileType::CharDevice => FileType::CharDevice,
        extfs::FileType::BlockDevice => FileType::BlockDevice,
        extfs::FileType::Fifo => FileType::NamedPipe,
        extfs::FileType::Socket => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn time(t: extfs::Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nanos));
    match u64::try_from(t.secs) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s) + nanos,
        Err(_) => UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs()) + nanos,
    }
}

fn attr(i: &extfs::Inode) -> FileAttr {
    let rdev = i
        .rdev
        .map(|(maj, min)| (maj << 8) | (min & 0xff) | ((min & !0xff) << 12))
        .unwrap_or(0);
    FileAttr {
        ino: to_fuse(i.ino),
        size: i.size,
        blocks: i.blocks,
        atime: time(i.atime),
        mtime: time(i.mtime),
        ctime: time(i.ctime),
        crtime: time(i.crtime.unwrap_or(i.ctime)),
        kind: kind(i.file_type),
        perm: i.mode & 0o7777,
        nlink: i.nlink,
        uid: i.uid,
        gid: i.gid,
        rdev,
        blksize: 4096,
        flags: 0,
    }
}

/// Maps our errors to errno: missing things are ENOENT, everything else EIO (and
/// logged, since the reader of a FUSE mount only sees "Input/output error").
fn errno(e: &extfs::Error) -> i32 {
    match e {
        extfs::Error::NotFound { .. } => ENOENT,
        extfs::Error::NotADirectory { .. } => ENOTDIR,
        extfs::Error::SymlinkLoop { .. } => 40, // ELOOP
        _ => {
            eprintln!("vmdkrecover: mount: {e}");
            5 // EIO
        }
    }
}

const ENOENT: i32 = 2;
const ENOTDIR: i32 = 20;

impl GuestFs {
    fn dir(&mut self, ino: u32) -> Result<Arc<Vec<extfs::DirEntry>>, i32> {
        if let Some(d) = self.dirs.get(&ino) {
            return Ok(d.clone());
        }
        let inode = self.fs.inode(ino).map_err(|e| errno(&e))?;
        if inode.file_type != extfs::FileType::Directory {
            return Err(ENOTDIR);
        }
        let list = Arc::new(self.fs.read_dir(&inode).map_err(|e| errno(&e))?);
        if self.dirs.len() >= DIR_CACHE {
            self.dirs.clear();
        }
        self.dirs.insert(ino, list.clone());
        Ok(list)
    }
}

impl fuser::Filesystem for GuestFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let list = match self.dir(to_ext(parent)) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let Some(entry) = list.iter().find(|e| e.name == name.as_bytes()) else {
            return reply.error(ENOENT);
        };
        match self.fs.inode(entry.ino) {
            Ok(i) => reply.entry(&TTL, &attr(&i), u64::from(i.generation)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.fs.inode(to_ext(ino)) {
            Ok(i) => reply.attr(&TTL, &attr(&i)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self
            .fs
            .inode(to_ext(ino))
            .and_then(|i| self.fs.read_link(&i))
        {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(&e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let inode = match self.fs.inode(to_ext(ino)) {
            Ok(i) => i,
            Err(e) => return reply.error(errno(&e)),
        };
        let offset = u64::try_from(offset).unwrap_or(0);
        let want = u64::from(size).min(inode.size.saturating_sub(offset));
        let mut buf = vec![0u8; usize::try_from(want).unwrap_or(0)];
        match self.fs.read_at(&inode, offset, &mut buf) {
            Ok(n) => reply.data(&buf[..n]),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let list = match self.dir(to_ext(ino)) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let start = usize::try_from(offset).unwrap_or(0);
        let dots = [
            (ino, FileType::Directory, OsStr::new(".")),
            (ino, FileType::Directory, OsStr::new("..")),
        ];
        let all = dots.into_iter().chain(list.iter().map(|e| {
            (
                to_fuse(e.ino),
                kind(e.file_type),
                OsStr::from_bytes(&e.name),
            )
        }));
        for (i, (child, k, name)) in all.enumerate().skip(start) {
            if reply.add(child, i64::try_from(i + 1).unwrap_or(i64::MAX), k, name) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        name: &OsStr,
        size: u32,
        reply: ReplyXattr,
    ) {
        let attrs = match self.fs.inode(to_ext(ino)).and_then(|i| self.fs.xattrs(&i)) {
            Ok(a) => a,
            Err(e) => return reply.error(errno(&e)),
        };
        match attrs.iter().find(|a| a.name == name.as_bytes()) {
            None => reply.error(61), // ENODATA
            Some(a) if size == 0 => reply.size(u32::try_from(a.value.len()).unwrap_or(u32::MAX)),
            Some(a) if a.value.len() > size as usize => reply.error(34), // ERANGE
            Some(a) => reply.data(&a.value),
        }
    }

    fn listxattr(&mut self, _req: &Request<'_>, ino: u64, size: u32, reply: ReplyXattr) {
        let attrs = match self.fs.inode(to_ext(ino)).and_then(|i| self.fs.xattrs(&i)) {
            Ok(a) => a,
            Err(e) => return reply.error(errno(&e)),
        };
        let mut names = Vec::new();
        for a in &attrs {
            names.extend_from_slice(&a.name);
            names.push(0);
        }
        if size == 0 {
            reply.size(u32::try_from(names.len()).unwrap_or(u32::MAX));
        } else if names.len() > size as usize {
            reply.error(34);
        } else {
            reply.data(&names);
        }
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: fuser::ReplyStatfs) {
        let i = self.fs.info();
        reply.statfs(
            i.blocks_count,
            i.free_blocks,
            i.free_blocks,
            u64::from(i.inodes_count),
            u64::from(i.free_inodes),
            i.block_size,
            255,
            i.block_size,
        );
    }
}

/// Runs `mount` (foreground, until unmounted or interrupted).
pub fn run(common: &Common, volume: &str, mountpoint: &Path, allow_other: bool) -> Result<Outcome> {
    let stack = common.open()?;
    let spec = if volume.contains(':') {
        volume.to_string()
    } else {
        format!("{volume}:/")
    };
    let target = common.target(&stack, &spec)?;
    if target.path != b"/" {
        bail!("mount takes a VOLUME (the whole filesystem is mounted), not a path inside it");
    }
    if !mountpoint.is_dir() {
        bail!(
            "{}: not a directory (create the mount point first)",
            mountpoint.display()
        );
    }
    let mut options = vec![
        MountOption::RO,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoExec,
        MountOption::FSName(format!("vmdkrecover:{}", target.fs.volume)),
        MountOption::Subtype("vmdkrecover".into()),
        MountOption::DefaultPermissions,
    ];
    if allow_other {
        options.push(MountOption::AllowOther);
    }
    let guest = GuestFs {
        fs: target.fs.fs.clone(),
        dirs: HashMap::new(),
    };
    let session = fuser::spawn_mount2(guest, mountpoint, &options).with_context(|| {
        format!(
            "{}: cannot mount (is /dev/fuse there, and fusermount3 installed for non-root users?)",
            mountpoint.display()
        )
    })?;
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| anyhow!("cannot handle Ctrl-C: {e}"))?;
    eprintln!(
        "vmdkrecover: {} mounted read-only at {}; unmount with `fusermount -u {}` (or umount as root), or press Ctrl-C",
        target.fs.volume,
        mountpoint.display(),
        mountpoint.display()
    );
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(()) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if session.guard.is_finished() {
                    break;
                }
            }
        }
    }
    drop(session); // unmounts if still mounted
    Ok(Outcome::default())
}
