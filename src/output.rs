//! Where the front ends' outputs land on the host: one way to put a file, symlink or
//! special file under its final name atomically and without replacing anything
//! (unless `--force`), used by `cp` (each object), `tar -o FILE`, `export -o FILE`
//! and `descriptor rewrite`.
//!
//! An output is written staged — an unnamed `O_TMPFILE` inode where the filesystem
//! has them, else a named `.NAME.*.vmdkrecover-partial` file beside the target — and
//! only a complete output gets its name: with `linkat` (fails if the name exists) or
//! `renameat2(RENAME_NOREPLACE)`, or with a plain rename over the old file when
//! replacing is asked for. A partial output therefore never carries its final name.
//!
//! Named temporaries are listed in a registry while they exist; on SIGINT, SIGTERM
//! or SIGHUP ([`install_signal_cleanup`]) they are removed and the process exits
//! with 128 + the signal number, as a shell reports a killed command. Files left by
//! a process killed harder (SIGKILL, a crash) are named by [`warn_stale_partials`]
//! the next time that directory is written to.

use crate::io::{DestDir, StagedFile};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The suffix of every named temporary file we create.
pub const PARTIAL_SUFFIX: &str = ".vmdkrecover-partial";

/// Named temporary files that exist now, for the signal handler to remove.
static LIVE: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// A named temporary file's entry in the registry, removed from it on drop (the
/// owner has then renamed or deleted the file).
#[derive(Debug)]
pub struct LiveTemp(PathBuf);

impl LiveTemp {
    /// Registers `path` (made absolute so that the handler needs no cwd).
    pub fn new(path: &Path) -> Self {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        if let Ok(mut live) = LIVE.lock() {
            live.get_or_insert_with(HashSet::new).insert(path.clone());
        }
        LiveTemp(path)
    }
}

impl Drop for LiveTemp {
    fn drop(&mut self) {
        if let Ok(mut live) = LIVE.lock() {
            if let Some(set) = live.as_mut() {
                set.remove(&self.0);
            }
        }
    }
}

/// Removes every registered temporary file; returns how many were removed.
pub fn remove_live() -> usize {
    let paths: Vec<PathBuf> = match LIVE.lock() {
        Ok(mut live) => live
            .take()
            .map(|s| s.into_iter().collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    paths.iter().filter(|p| fs::remove_file(p).is_ok()).count()
}

/// Makes SIGINT, SIGTERM and SIGHUP remove our named temporary files and exit with
/// 128 + the signal number (130, 143, 129). Must be called before the command
/// starts any thread: the signals are blocked in the calling thread (and so in
/// every thread it starts later) and taken by one thread with `sigwait`, which
/// needs no `unsafe` signal handler.
pub fn install_signal_cleanup() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(sig) = set.wait() {
                let removed = remove_live();
                // Leave the terminal on a fresh line after a progress bar.
                eprintln!(
                    "\nvmdkrecover: {sig}: stopped{}",
                    if removed > 0 {
                        format!("; removed {removed} partial file(s)")
                    } else {
                        String::new()
                    }
                );
                std::process::exit(128_i32.saturating_add(sig as i32));
            }
        });
    if spawned.is_err() {
        let _ = set.thread_unblock();
    }
}

/// Warns about `*.vmdkrecover-partial` files in `dir` (left by an earlier run that
/// was killed): they are not ours to delete, but the user should know.
pub fn warn_stale_partials(dir: &Path, print: &dyn Fn(&str)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let stale: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n.as_encoded_bytes().ends_with(PARTIAL_SUFFIX.as_bytes()))
        .take(1000)
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    if stale.is_empty() {
        return;
    }
    let shown: Vec<&str> = stale.iter().take(5).map(String::as_str).collect();
    print(&format!(
        "vmdkrecover: warning: {}: {} partial file(s) left by an interrupted earlier run ({}{}); delete them when no vmdkrecover is running",
        dir.display(),
        stale.len(),
        shown.join(", "),
        if stale.len() > shown.len() { ", ..." } else { "" }
    ));
}

/// One output file: staged, written, then [`Output::commit`]ted under its name.
pub struct Output {
    staged: StagedFile,
    dir: DestDir,
    name: OsString,
    path: PathBuf,
    force: bool,
}

impl Output {
    /// Starts the output `path`. An existing `path` is an error now (before any
    /// work) unless `force`; the final placement checks again atomically.
    pub fn create(path: &Path, force: bool) -> Result<Self> {
        let name = path
            .file_name()
            .ok_or_else(|| anyhow!("{}: not a file name", path.display()))?
            .to_os_string();
        if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
            bail!("{}: Not a directory", path.display());
        }
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => bail!("{}: is a directory", path.display()),
            Ok(_) if !force => bail!(
                "{}: already exists (use --force to replace)",
                path.display()
            ),
            _ => {}
        }
        let parent = parent_dir(path);
        let dir = DestDir::open(parent)
            .with_context(|| format!("{}: cannot open the directory", parent.display()))?;
        warn_stale_partials(parent, &|l| eprintln!("{l}"));
        let staged = StagedFile::new_in(&dir, &name, 0o666)
            .with_context(|| format!("{}: cannot create a temporary file", parent.display()))?;
        Ok(Output {
            staged,
            dir,
            name,
            path: path.to_path_buf(),
            force,
        })
    }

    /// The file to write.
    pub fn file(&self) -> &fs::File {
        self.staged.file()
    }

    /// Gives the complete output its name.
    pub fn commit(self) -> Result<()> {
        let path = self.path;
        self.staged
            .place(&self.dir, &self.name, self.force)
            .map_err(|e| placement_error(&path, &e))
    }
}

/// The error for a failed placement: "already exists" suggests `--force`.
pub fn placement_error(path: &Path, e: &std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::AlreadyExists {
        anyhow!(
            "{}: already exists (use --force to replace)",
            path.display()
        )
    } else {
        anyhow!("{}: cannot put into place: {e}", path.display())
    }
}

/// The directory a path's last component lives in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A fresh, registered temporary name beside `dst`, for objects that cannot be
/// made unnamed (symlinks, fifos, device nodes). The caller creates the object
/// under it and then calls [`place_path`] (or removes it).
pub fn temp_name(dst: &Path) -> Result<(PathBuf, LiveTemp)> {
    let parent = dst
        .parent()
        .ok_or_else(|| anyhow!("{}: no parent directory", dst.display()))?;
    let base = dst.file_name().unwrap_or_default().to_string_lossy();
    // Keeps temporary names under NAME_MAX (255) whatever the final name's length.
    let base: String = base.chars().take(100).collect();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = parent.join(format!(
            ".{base}.{}.{n}{PARTIAL_SUFFIX}",
            std::process::id()
        ));
        if fs::symlink_metadata(&p).is_err() {
            let live = LiveTemp::new(&p);
            return Ok((p, live));
        }
    }
    bail!("{}: cannot find a free temporary name", parent.display())
}

/// Moves a finished object from its temporary name into place: replacing only with
/// `force`, otherwise an atomic rename that refuses an existing `dst`
/// (`RENAME_NOREPLACE`), or, where the filesystem lacks it, a hard link (which fails
/// if `dst` exists) and an unlink. The temporary is removed when placing fails.
pub fn place_path(tmp: &Path, live: LiveTemp, dst: &Path, force: bool) -> Result<()> {
    let r = place_inner(tmp, dst, force);
    if r.is_err() {
        let _ = fs::remove_file(tmp);
    }
    drop(live);
    r
}

fn place_inner(tmp: &Path, dst: &Path, force: bool) -> Result<()> {
    if force {
        fs::rename(tmp, dst)
            .with_context(|| format!("{}: cannot rename into place", dst.display()))?;
        return Ok(());
    }
    use nix::fcntl::{renameat2, RenameFlags};
    match renameat2(None, tmp, None, dst, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS) => {
            fs::hard_link(tmp, dst).map_err(|e| placement_error(dst, &e))?;
            fs::remove_file(tmp)?;
            Ok(())
        }
        Err(e) => Err(placement_error(dst, &std::io::Error::from(e))),
    }
}

/// `OsStr` from bytes, for names from the image.
pub fn os(b: &[u8]) -> &OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry is global: these tests must not run at the same time.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn live_temporaries_are_removed_and_placed_ones_forgotten() {
        let _serial = SERIAL.lock();
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("file");
        let (tmp, live) = temp_name(&dst).unwrap();
        assert!(tmp
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with(PARTIAL_SUFFIX));
        std::fs::write(&tmp, b"partial").unwrap();
        // A second one, placed: no longer live, so never removed.
        let other = dir.path().join("placed");
        let (tmp2, live2) = temp_name(&other).unwrap();
        std::fs::write(&tmp2, b"done").unwrap();
        place_path(&tmp2, live2, &other, false).unwrap();
        assert!(remove_live() >= 1);
        assert!(!tmp.exists(), "the live temporary was not removed");
        assert_eq!(std::fs::read(&other).unwrap(), b"done");
        drop(live);
    }

    #[test]
    fn placing_never_replaces_without_force() {
        let _serial = SERIAL.lock();
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("file");
        std::fs::write(&dst, b"mine").unwrap();
        let (tmp, live) = temp_name(&dst).unwrap();
        std::fs::write(&tmp, b"new").unwrap();
        let e = place_path(&tmp, live, &dst, false).unwrap_err();
        assert!(format!("{e}").contains("--force"), "{e}");
        assert_eq!(std::fs::read(&dst).unwrap(), b"mine");
        assert!(!tmp.exists(), "the temporary was left behind");
        let o = Output::create(&dst, false);
        assert!(o.is_err());
        let o = Output::create(&dst, true).unwrap();
        std::io::Write::write_all(&mut o.file(), b"replaced").unwrap();
        o.commit().unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), b"replaced");
    }
}
