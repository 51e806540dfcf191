//! Where each SPEC lands, by coreutils `cp`'s rules for DEST:
//! - DEST ending in `/` is a directory: an existing one, or, for one SPEC that is a
//!   directory, the copy itself (`cp -r dir ./restore/` creates `restore` as GNU cp
//!   does); a file is never copied to a missing `./nodir/` (no file `nodir`);
//! - several SPECs need DEST to be an existing directory;
//! - into an existing directory, a SPEC lands under its own last name — the name the
//!   user typed, so the guest path `/boot` (a mount point in the guest) lands as
//!   `DEST/boot` although it is the root of its filesystem; `VOL:/` and the guest
//!   `/` copy the root's contents into DEST;
//! - otherwise DEST is the copy, and its parent directory must exist.

use crate::spec::Spec;
use anyhow::{bail, Result};
use std::fs;
use std::path::PathBuf;

/// The checked destination.
pub(super) struct Dest {
    /// Absolute, so that the staged files need no getcwd each.
    pub path: PathBuf,
    /// An existing directory (a symlink to one counts, as for cp).
    pub is_dir: bool,
    /// DEST ends in `/` but does not exist: only a directory may be copied there.
    pub dir_only: bool,
}

impl Dest {
    /// Checks DEST for `nspecs` SPECs.
    pub fn check(arg: &str, nspecs: usize) -> Result<Dest> {
        let path = std::path::absolute(arg).map_err(|e| anyhow::anyhow!("cp: {arg}: {e}"))?;
        let is_dir = fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false);
        let dir_only = arg.ends_with('/') && !is_dir;
        if dir_only && fs::symlink_metadata(&path).is_ok() {
            bail!("cp: cannot create '{arg}': Not a directory");
        }
        if nspecs > 1 && !is_dir {
            bail!(
                "cp: target '{arg}' is not a directory (several SPECs need an existing directory)"
            );
        }
        if !is_dir {
            let parent = crate::output::parent_dir(&path);
            if !parent.is_dir() {
                bail!(
                    "cp: cannot create '{arg}': No such file or directory (create {} first)",
                    parent.display()
                );
            }
        }
        Ok(Dest {
            path,
            is_dir,
            dir_only,
        })
    }

    /// Refuses a SPEC that is not a directory for a missing `DEST/` (GNU cp:
    /// "cannot create regular file 'x/': Not a directory").
    pub fn accepts(&self, arg: &str, file_type: fsapi::FileType) -> Result<()> {
        if self.dir_only && file_type != fsapi::FileType::Directory {
            bail!("cp: cannot create '{arg}': Not a directory (only a directory is copied to a missing DEST/; create the directory first)");
        }
        Ok(())
    }

    /// Where a SPEC whose path (as typed, made absolute) is `given` lands, and
    /// whether a root's contents merge into DEST.
    pub fn place_for(&self, given: &[u8]) -> Result<(PathBuf, bool)> {
        let is_root = given == b"/";
        if !self.is_dir {
            return Ok((self.path.clone(), false));
        }
        if is_root {
            return Ok((self.path.clone(), true));
        }
        let base = given
            .rsplit(|b| *b == b'/')
            .find(|c| !c.is_empty())
            .unwrap_or_default();
        if !crate::names::is_safe(base) {
            bail!("{}: not a name to copy to", super::super::show_name(base));
        }
        Ok((self.path.join(crate::output::os(base)), false))
    }
}

/// The path part of a SPEC as the user gave it.
pub(super) fn given_path(spec: &str) -> Result<Vec<u8>> {
    Ok(match Spec::parse(spec)? {
        Spec::OnVolume { path, .. } | Spec::Guest { path } => path,
    })
}

/// How the SPEC's top is named in messages and `-v`: `VOL:/path` or the guest path.
pub(super) fn shown_prefix(spec: &str, given: &[u8]) -> String {
    match Spec::parse(spec) {
        Ok(Spec::OnVolume { volume, path }) => {
            format!("{volume}:{}", String::from_utf8_lossy(&path))
        }
        _ => String::from_utf8_lossy(given).into_owned(),
    }
}
