//! Owner, extended attributes, mode and times on the copies: always mode, atime and
//! mtime with nanoseconds; owner and group (where permitted) and xattrs with `-a`.

use super::walk::Copier;
use crate::cmd::show_name;
use anyhow::{anyhow, Result};
use filetime::FileTime;
use fsapi::Metadata;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::Ordering;

/// Where to set owners and xattrs: a path (not followed if a symlink), or an open
/// file (named by its destination in messages).
#[derive(Clone, Copy)]
pub(super) enum Target<'a> {
    Path(&'a Path),
    File(&'a fs::File, &'a Path),
}

/// The (atime, mtime) pair of an inode, nanoseconds included.
pub(super) fn times(inode: &Metadata) -> (FileTime, FileTime) {
    (
        FileTime::from_unix_time(inode.atime.secs, inode.atime.nanos),
        FileTime::from_unix_time(inode.mtime.secs, inode.mtime.nanos),
    )
}

impl Copier<'_> {
    /// Owner, mode, xattrs and times on a just-created symlink or special file
    /// (before it is renamed into place).
    pub(super) fn finish_special(
        &self,
        inode: &Metadata,
        path: &Path,
        is_symlink: bool,
    ) -> Result<()> {
        if self.opts.archive {
            self.chown(Target::Path(path), inode);
            self.set_xattrs(Target::Path(path), inode);
        }
        if !is_symlink {
            fs::set_permissions(path, fs::Permissions::from_mode(inode.mode & 0o7777))?;
        }
        let (atime, mtime) = times(inode);
        filetime::set_symlink_file_times(path, atime, mtime)?;
        Ok(())
    }

    /// Owner, mode, xattrs and times on a staged regular file; `mode_set`: it was
    /// created with its final mode ([`Copier::creation_mode`]).
    pub(super) fn finish_file(
        &self,
        inode: &Metadata,
        out: &fs::File,
        dst: &Path,
        mode_set: bool,
    ) -> Result<()> {
        if self.opts.archive {
            self.chown(Target::File(out, dst), inode);
        }
        if !mode_set {
            out.set_permissions(fs::Permissions::from_mode(inode.mode & 0o7777))?;
        }
        if self.opts.archive {
            self.set_xattrs(Target::File(out, dst), inode);
        }
        let (atime, mtime) = times(inode);
        filetime::set_file_handle_times(out, Some(atime), Some(mtime))?;
        Ok(())
    }

    /// Owner, xattrs, mode and times on a finished directory.
    pub(super) fn finish_dir(&self, inode: &Metadata, dst: &Path) -> Result<()> {
        if self.opts.archive {
            self.chown(Target::Path(dst), inode);
            self.set_xattrs(Target::Path(dst), inode);
        }
        fs::set_permissions(dst, fs::Permissions::from_mode(inode.mode & 0o7777))?;
        // utimensat on the path: one system call, where filetime's
        // set_file_times opens the directory, sets the times on the handle and
        // closes it. It follows a symlink as that did (a merged-into DEST may be
        // one, as chmod above follows it).
        let ts = |t: &fsapi::Timestamp| rustix::fs::Timespec {
            tv_sec: t.secs,
            tv_nsec: t.nanos.into(),
        };
        let stamps = rustix::fs::Timestamps {
            last_access: ts(&inode.atime),
            last_modification: ts(&inode.mtime),
        };
        rustix::fs::utimensat(rustix::fs::CWD, dst, &stamps, rustix::fs::AtFlags::empty())?;
        Ok(())
    }

    fn chown(&self, target: Target, inode: &Metadata) {
        let (uid, gid) = (Some(inode.uid), Some(inode.gid));
        let r = match target {
            Target::Path(p) => std::os::unix::fs::lchown(p, uid, gid),
            Target::File(f, _) => std::os::unix::fs::fchown(f, uid, gid),
        };
        if let Err(e) = r {
            if self.warned_chown.fetch_add(1, Ordering::Relaxed) == 0 {
                self.progress.eprintln(&format!(
                    "vmdkrecover: warning: cannot set owners ({e}); files keep your user (run as root to keep them)"
                ));
            }
        }
    }

    fn set_xattrs(&self, target: Target, inode: &Metadata) {
        let path = match target {
            Target::Path(p) | Target::File(_, p) => p,
        };
        let attrs = match self.fs.xattrs(inode.ino) {
            Ok(a) => a,
            Err(e) => {
                self.fail(
                    path.as_os_str().as_bytes(),
                    &anyhow!("extended attributes: {e}"),
                );
                return;
            }
        };
        for a in attrs {
            let name = crate::output::os(&a.name);
            let r = match target {
                Target::Path(p) => xattr::set(p, name, &a.value),
                Target::File(f, _) => xattr::FileExt::set_xattr(f, name, &a.value),
            };
            if let Err(e) = r {
                self.progress.eprintln(&format!(
                    "vmdkrecover: warning: {}: cannot set xattr {}: {e}",
                    path.display(),
                    show_name(&a.name)
                ));
            }
        }
    }
}
