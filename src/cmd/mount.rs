//! `vmdkrecover mount`: a guest filesystem as a read-only FUSE mount, so that any
//! tool (rsync, grep -r, a file manager) can browse it. Runs in the foreground until
//! the mount point is unmounted (`fusermount -u`/`umount`) or the process gets
//! Ctrl-C/SIGTERM, which unmounts it.
//!
//! Refuses a mount point that is not empty (as fusermount does). As root it mounts
//! with mount(2) on /dev/fuse; otherwise fuser falls back to fusermount3, and when
//! /dev/fuse cannot even be opened (mode 0600) we run fusermount3 ourselves and take
//! the descriptor it passes back. SIGINT, SIGTERM and SIGHUP unmount before exit, so
//! no dead mount ("Transport endpoint is not connected") is left behind.
//!
//! VOLUME is a volume (its whole filesystem), `VOLUME:/dir` (a subtree) or a guest
//! path; whatever filesystem the SPEC resolves to is served, a composed guest tree
//! included. Inode numbers are the filesystem's own (any u64), except that the
//! served root and number 1 trade places (FUSE's root is 1; ext's root is 2).

use super::{Common, Outcome};
use crate::spec::{eprint_line, OpenFs};
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
    ofs: Arc<OpenFs>,
    fs: Arc<dyn fsapi::Filesystem>,
    /// The filesystem's root inode, which FUSE calls 1.
    root: u64,
    dirs: HashMap<u64, Arc<Vec<fsapi::DirEntry>>>,
}

/// FUSE numbers the root 1; the filesystem's root may be any number (ext 2, XFS
/// often 128). Swapping the two numbers keeps the mapping one-to-one: the
/// filesystem's own inode 1 (ext's bad-blocks inode), should an entry name it,
/// appears under the root's number.
fn swap_root(ino: u64, root: u64) -> u64 {
    if ino == root {
        fuser::FUSE_ROOT_ID
    } else if ino == fuser::FUSE_ROOT_ID {
        root
    } else {
        ino
    }
}

fn kind(ft: fsapi::FileType) -> FileType {
    match ft {
        fsapi::FileType::Directory => FileType::Directory,
        fsapi::FileType::Symlink => FileType::Symlink,
        fsapi::FileType::CharDevice => FileType::CharDevice,
        fsapi::FileType::BlockDevice => FileType::BlockDevice,
        fsapi::FileType::Fifo => FileType::NamedPipe,
        fsapi::FileType::Socket => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn time(t: fsapi::Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nanos));
    match u64::try_from(t.secs) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s) + nanos,
        Err(_) => UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs()) + nanos,
    }
}

fn attr(i: &fsapi::Metadata, root: u64) -> FileAttr {
    let rdev = i
        .rdev
        .map(|(maj, min)| (maj << 8) | (min & 0xff) | ((min & !0xff) << 12))
        .unwrap_or(0);
    FileAttr {
        ino: swap_root(i.ino, root),
        size: i.size,
        blocks: i.blocks,
        atime: time(i.atime),
        mtime: time(i.mtime),
        ctime: time(i.ctime),
        crtime: time(i.crtime.unwrap_or(i.ctime)),
        kind: kind(i.file_type),
        perm: u16::try_from(i.mode & 0o7777).unwrap_or(0),
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
fn errno(e: &fsapi::Error) -> i32 {
    match e {
        fsapi::Error::NotFound { .. } => ENOENT,
        fsapi::Error::NotADirectory { .. } => ENOTDIR,
        fsapi::Error::SymlinkLoop { .. } => 40, // ELOOP
        _ => {
            eprintln!("vmdkrecover: mount: {e}");
            5 // EIO
        }
    }
}

const ENOENT: i32 = 2;
const ENOTDIR: i32 = 20;

impl GuestFs {
    fn to_fs(&self, ino: u64) -> u64 {
        swap_root(ino, self.root)
    }

    fn attr(&self, i: &fsapi::Metadata) -> FileAttr {
        attr(i, self.root)
    }

    /// A directory's entries as the mount shows them: names [`crate::names`]
    /// refuses are left out, with a warning naming the directory.
    fn dir(&mut self, ino: u64) -> Result<Arc<Vec<fsapi::DirEntry>>, i32> {
        if let Some(d) = self.dirs.get(&ino) {
            return Ok(d.clone());
        }
        let md = self.fs.metadata(ino).map_err(|e| errno(&e))?;
        if md.file_type != fsapi::FileType::Directory {
            return Err(ENOTDIR);
        }
        let mut list = self.fs.read_dir(ino).map_err(|e| errno(&e))?;
        let mut names = crate::names::DirNames::new();
        list.retain(|e| match names.admit(&e.name) {
            Ok(()) => true,
            Err(why) => {
                self.ofs.warn(&format!("inode {ino}: {why}"), &eprint_line);
                false
            }
        });
        self.ofs.print_new_warnings(&eprint_line);
        let list = Arc::new(list);
        if self.dirs.len() >= DIR_CACHE {
            self.dirs.clear();
        }
        self.dirs.insert(ino, list.clone());
        Ok(list)
    }
}

impl fuser::Filesystem for GuestFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let list = match self.dir(self.to_fs(parent)) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let Some(entry) = list.iter().find(|e| e.name == name.as_bytes()) else {
            return reply.error(ENOENT);
        };
        match self.fs.metadata(entry.ino) {
            Ok(i) => reply.entry(&TTL, &self.attr(&i), u64::from(i.generation)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.fs.metadata(self.to_fs(ino)) {
            Ok(i) => reply.attr(&TTL, &self.attr(&i)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.fs.read_link(self.to_fs(ino)) {
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
        let ino = self.to_fs(ino);
        let inode = match self.fs.metadata(ino) {
            Ok(i) => i,
            Err(e) => return reply.error(errno(&e)),
        };
        let offset = u64::try_from(offset).unwrap_or(0);
        let want = u64::from(size).min(inode.size.saturating_sub(offset));
        let mut buf = vec![0u8; usize::try_from(want).unwrap_or(0)];
        match self.fs.read_at(ino, offset, &mut buf) {
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
        let list = match self.dir(self.to_fs(ino)) {
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
                swap_root(e.ino, self.root),
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
        let attrs = match self.fs.xattrs(self.to_fs(ino)) {
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
        let attrs = match self.fs.xattrs(self.to_fs(ino)) {
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
            i.blocks,
            i.free_blocks,
            i.free_blocks,
            i.inodes,
            i.free_inodes,
            i.block_size,
            255,
            i.block_size,
        );
    }
}

/// `-o` options `mount` understands (comma separated, as mount(8) takes them).
fn parse_o(opts: &[String], allow_other: &mut bool, allow_root: &mut bool) -> Result<()> {
    for o in opts.iter().flat_map(|o| o.split(',')) {
        match o {
            "" | "ro" | "nodev" | "nosuid" | "noexec" | "default_permissions" => {}
            "allow_other" => *allow_other = true,
            "allow_root" => *allow_root = true,
            "rw" | "dev" | "suid" | "exec" => {
                bail!("-o {o}: the mount is always read-only, nodev, nosuid, noexec")
            }
            other => bail!("-o {other}: expected allow_other, allow_root or ro"),
        }
    }
    Ok(())
}

/// The SPEC that `mount`'s VOLUME argument names: `VG/LV` or `sda1` (the whole
/// filesystem), `VOLUME:/dir` (a subtree), or a guest path (`/`, `/boot`).
fn volume_spec(volume: &str) -> String {
    if volume.contains(':') || (volume.starts_with('/') && !volume.starts_with("/dev/")) {
        volume.to_string()
    } else {
        format!("{volume}:/")
    }
}

/// How the filesystem got mounted, which decides how it is unmounted.
enum Mounted {
    /// By fuser (mount(2) as root, or its own fusermount3 fallback): dropping the
    /// session unmounts.
    Fuser(fuser::BackgroundSession),
    /// By us through fusermount3 (non-root, /dev/fuse not openable): unmounted
    /// with `fusermount3 -u`.
    Fusermount(fuser::BackgroundSession),
}

impl Mounted {
    fn finished(&self) -> bool {
        match self {
            Mounted::Fuser(s) | Mounted::Fusermount(s) => s.guard.is_finished(),
        }
    }

    fn unmount(self, mountpoint: &Path) {
        match self {
            Mounted::Fuser(s) => drop(s),
            Mounted::Fusermount(s) => {
                if !s.guard.is_finished() {
                    let r = std::process::Command::new("fusermount3")
                        .args(["-u", "-q", "-z", "--"])
                        .arg(mountpoint)
                        .status();
                    if !r.is_ok_and(|st| st.success()) {
                        eprintln!(
                            "vmdkrecover: {}: fusermount3 -u failed; unmount it by hand",
                            mountpoint.display()
                        );
                    }
                }
                drop(s);
            }
        }
    }
}

/// Mounts through the setuid `fusermount3` helper ourselves, the way libfuse does
/// when it may not open /dev/fuse (lib/mount.c, `fuse_mount_fusermount`): the
/// helper opens /dev/fuse, mounts, and passes the descriptor back over a Unix
/// socket named by `_FUSE_COMMFD` (SCM_RIGHTS).
fn mount_with_fusermount(
    guest: GuestFs,
    mountpoint: &Path,
    options: &[String],
    acl: fuser::SessionACL,
) -> Result<fuser::BackgroundSession> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    // The helper inherits its end.
    rustix::io::fcntl_setfd(&theirs, rustix::io::FdFlags::empty())?;
    let fd_number = {
        use std::os::fd::AsRawFd;
        theirs.as_raw_fd()
    };
    let child = std::process::Command::new("fusermount3")
        .arg("-o")
        .arg(options.join(","))
        .arg("--")
        .arg(mountpoint)
        .env("_FUSE_COMMFD", fd_number.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run fusermount3 (install fuse3)")?;
    drop(theirs);
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let received = rustix::net::recvmsg(
        &ours,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut cmsg,
        RecvFlags::CMSG_CLOEXEC,
    );
    let mut fd = None;
    if received.is_ok() {
        for m in cmsg.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = m {
                fd = fds.next();
            }
        }
    }
    let output = child.wait_with_output()?;
    let Some(fd) = fd else {
        let why = String::from_utf8_lossy(&output.stderr);
        bail!(
            "{}",
            match why.trim() {
                "" => "fusermount3 passed back no /dev/fuse descriptor",
                w => w,
            }
        );
    };
    Ok(fuser::Session::from_fd(guest, fd, acl).spawn()?)
}

/// Runs `mount` (foreground, until unmounted or interrupted). `options` are the
/// `-o` values.
pub fn run(
    common: &Common,
    volume: &str,
    mountpoint: &Path,
    allow_other: bool,
    options: &[String],
) -> Result<Outcome> {
    let (mut allow_other, mut allow_root) = (allow_other, false);
    parse_o(options, &mut allow_other, &mut allow_root)?;
    let stack = common.open()?;
    let target = common.target(&stack, &volume_spec(volume))?;
    let root_md = target.fs.fs.metadata(target.fs.fs.lookup(&target.path)?)?;
    if root_md.file_type != fsapi::FileType::Directory {
        bail!("{}: not a directory", target.display);
    }
    if !mountpoint.is_dir() {
        bail!(
            "{}: not a directory (create the mount point first)",
            mountpoint.display()
        );
    }
    // As fusermount does by default: mounting over files would hide them.
    if std::fs::read_dir(mountpoint)
        .with_context(|| format!("{}: cannot read the mount point", mountpoint.display()))?
        .next()
        .is_some()
    {
        bail!(
            "{}: mount point is not empty (mounting would hide what is there; use an empty directory)",
            mountpoint.display()
        );
    }
    let mut mount_options = vec![
        MountOption::RO,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoExec,
        MountOption::FSName(format!("vmdkrecover:{}", target.display.replace(',', "_"))),
        MountOption::Subtype("vmdkrecover".into()),
        MountOption::DefaultPermissions,
    ];
    if allow_other {
        mount_options.push(MountOption::AllowOther);
    } else if allow_root {
        mount_options.push(MountOption::AllowRoot);
    }
    // fusermount3 takes options as one comma-separated list: no commas in fsname.
    let display = target.display.replace(',', "_");
    let ofs = Arc::new(target.fs);
    let guest = GuestFs {
        ofs: ofs.clone(),
        fs: ofs.fs.clone(),
        root: root_md.ino,
        dirs: HashMap::new(),
    };
    // Signals first, so that one arriving just after the mount still unmounts.
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| anyhow!("cannot handle SIGINT/SIGTERM/SIGHUP: {e}"))?;
    let root_user = nix::unistd::geteuid().is_root();
    let dev_fuse_ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok();
    let session = if root_user || dev_fuse_ok {
        Mounted::Fuser(
            fuser::spawn_mount2(guest, mountpoint, &mount_options).with_context(|| {
                format!(
                    "{}: cannot mount (is /dev/fuse there, and fusermount3 installed for non-root users?)",
                    mountpoint.display()
                )
            })?,
        )
    } else {
        let mut o = vec![
            "ro".to_string(),
            "nodev".into(),
            "nosuid".into(),
            "noexec".into(),
            format!("fsname=vmdkrecover:{display}"),
            "subtype=vmdkrecover".into(),
            "default_permissions".into(),
        ];
        let acl = if allow_other {
            o.push("allow_other".into());
            fuser::SessionACL::All
        } else if allow_root {
            o.push("allow_other".into());
            fuser::SessionACL::RootAndOwner
        } else {
            fuser::SessionACL::Owner
        };
        Mounted::Fusermount(
            mount_with_fusermount(guest, mountpoint, &o, acl)
                .with_context(|| format!("{}: cannot mount", mountpoint.display()))?,
        )
    };
    eprintln!(
        "vmdkrecover: {display} mounted read-only at {}; unmount with `fusermount3 -u {}` (or umount as root), Ctrl-C or SIGTERM",
        mountpoint.display(),
        mountpoint.display()
    );
    // Read errors the disk layers survived: printed as they appear (grain tables
    // are read on demand) and counted, once each.
    let mut read_warnings = super::ReadWarnings::default();
    let mut read_errors = read_warnings.print_new(&stack, &eprint_line);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if session.finished() {
                    break;
                }
                ofs.print_new_warnings(&eprint_line);
                read_errors += read_warnings.print_new(&stack, &eprint_line);
            }
        }
    }
    session.unmount(mountpoint);
    let warnings = ofs.finish_warnings(&eprint_line);
    read_errors += read_warnings.print_new(&stack, &eprint_line);
    Ok(Outcome {
        failures: 0,
        warnings: warnings + read_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::swap_root;

    #[test]
    fn root_and_one_trade_places_and_nothing_else_moves() {
        for root in [2u64, 128, 1 << 40] {
            assert_eq!(swap_root(root, root), fuser::FUSE_ROOT_ID);
            assert_eq!(swap_root(fuser::FUSE_ROOT_ID, root), root);
            for ino in [3u64, 11, 127, 129, u64::MAX] {
                if ino != root {
                    assert_eq!(swap_root(ino, root), ino);
                }
            }
            // An involution: applying it twice gives the number back.
            for ino in [1u64, 2, 11, 128, 1 << 40] {
                assert_eq!(swap_root(swap_root(ino, root), root), ino);
            }
        }
    }
}
