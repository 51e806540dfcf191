//! `vmdkrecover cp`: copy files and trees out of a guest filesystem, like `cp -r`.
//!
//! Guarantees (DESIGN.md, "Command line contract" and rules 1-2):
//! - nothing is written outside DEST: every name from the image is checked (no `/`,
//!   `.`, `..`, NUL, no duplicates) and an existing symlink in DEST is never followed;
//! - regular files are written under a temporary name beside their final place and
//!   renamed into place only when complete, without replacing an existing file unless
//!   `--force` (the no-clobber rename is a hard link + unlink, so it is atomic);
//! - holes stay holes; symlinks are recreated verbatim, never followed; hard links stay
//!   hard links; mode, mtime and atime always, owner and xattrs with `-a`;
//! - a problem with one object is reported and counted, and the copy goes on.
//!
//! The work runs in phases: one walk creates directories, symlinks and special files
//! and lists the regular files; the files are then copied by a pool of threads (each
//! file as large positional reads of its data runs); hard links are made; finally the
//! directories get their modes and times, deepest first, so that writing into them
//! does not disturb their mtime.

use super::{join, show_name, Common, Outcome};
use crate::spec::OpenFs;
use anyhow::{anyhow, bail, Context, Result};
use filetime::FileTime;
use fsapi::{FileType, Metadata};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Options of `cp`.
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// Also owner/group (where permitted) and xattrs.
    pub archive: bool,
    /// Replace existing destination files.
    pub force: bool,
    /// Worker threads for file data; None = number of CPUs.
    pub threads: Option<usize>,
}

/// Size of each data read and write.
const CHUNK: u64 = 1 << 20;
/// Most files of one directory a worker takes at a time.
const BATCH: usize = 64;

/// Runs `cp`.
pub fn run(common: &Common, args: &[String], opts: &CopyOptions) -> Result<Outcome> {
    let (dest, specs) = args
        .split_last()
        .ok_or_else(|| anyhow!("cp: need SPEC... DEST"))?;
    if specs.is_empty() {
        bail!("cp: need at least one SPEC before DEST {dest}");
    }
    // Absolute once, so that the temporary files need no getcwd each.
    let dest = std::path::absolute(dest).with_context(|| format!("cp: {dest}"))?;
    let dest_is_dir = fs::metadata(&dest).map(|m| m.is_dir()).unwrap_or(false);
    if specs.len() > 1 && !dest_is_dir {
        bail!(
            "cp: copying several SPECs needs an existing directory as DEST, and {} is not one",
            dest.display()
        );
    }
    let stack = common.open()?;
    let started = Instant::now();
    let progress = Progress::new();
    let mut total = Stats::default();
    let mut failures = 0u64;
    let mut warnings = 0u64;
    for spec in specs {
        let target = common.target(&stack, spec)?;
        let fs_ = &*target.fs.fs;
        let ino = fs_
            .lookup(&target.path)
            .with_context(|| target.display.clone())?;
        let inode = fs_.metadata(ino)?;
        let is_root = target.path == b"/";
        // Where this SPEC lands, by cp's rules.
        let (dst, merge_root) = if dest_is_dir {
            if is_root {
                (dest.clone(), true)
            } else {
                let base = target
                    .path
                    .rsplit(|b| *b == b'/')
                    .next()
                    .unwrap_or_default();
                (dest.join(OsStr::from_bytes(base)), false)
            }
        } else {
            if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                if !parent.is_dir() {
                    bail!(
                        "cp: {}: no such directory (create it first)",
                        parent.display()
                    );
                }
            }
            (dest.clone(), false)
        };
        let copier = Copier::new(&target.fs, opts, &progress);
        copier.copy(&target.path, inode, &dst, merge_root);
        failures += copier.failures.load(Ordering::Relaxed);
        warnings += target
            .fs
            .finish_warnings(&|l| progress.bar.suspend(|| eprintln!("{l}")));
        total.add(&copier.stats);
    }
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    let mib = total.bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0);
    eprintln!(
        "vmdkrecover: copied {} files, {} directories, {} symlinks, {} other ({:.1} MiB) in {:.2} s ({:.0} MiB/s){}{}",
        total.files.load(Ordering::Relaxed),
        total.dirs.load(Ordering::Relaxed),
        total.symlinks.load(Ordering::Relaxed),
        total.other.load(Ordering::Relaxed),
        mib,
        secs,
        if secs > 0.0 { mib / secs } else { 0.0 },
        if failures > 0 { format!("; {failures} failed (see above)") } else { String::new() },
        if warnings > 0 {
            format!("; {warnings} filesystem warnings (something may be missing; see above)")
        } else {
            String::new()
        }
    );
    Ok(Outcome { failures, warnings })
}

#[derive(Default)]
struct Stats {
    files: AtomicU64,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    other: AtomicU64,
    bytes: AtomicU64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        for (a, b) in [
            (&self.files, &o.files),
            (&self.dirs, &o.dirs),
            (&self.symlinks, &o.symlinks),
            (&self.other, &o.other),
            (&self.bytes, &o.bytes),
        ] {
            a.fetch_add(b.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// A progress line on a terminal; nothing otherwise.
struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    fn new() -> Self {
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} {bytes} ({bytes_per_sec}) {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Self { bar }
    }
    fn bytes(&self, n: u64) {
        self.bar.inc(n);
    }
    fn file(&self, name: &Path) {
        if !self.bar.is_hidden() {
            self.bar.set_message(name.display().to_string());
        }
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

struct FileJob {
    src: Vec<u8>,
    inode: Metadata,
    dst: PathBuf,
}

/// What the walk of the source tree remembers until the end of the copy. It grows
/// with the number of directories and hard-linked files only: regular files flow
/// to the copying threads through a bounded queue as the walk finds them, so memory
/// stays bounded however many files a tree holds.
#[derive(Default)]
struct WalkState {
    /// Inode -> destination of its first copy, for hard links.
    first_copy: HashMap<u64, PathBuf>,
    /// (source path, existing destination, new link) to make once the files exist.
    links: Vec<(Vec<u8>, PathBuf, PathBuf)>,
    /// Directories to finish (mode, times) at the end: destination and inode number.
    dirs: Vec<(PathBuf, u64)>,
}

struct Copier<'a> {
    ofs: &'a OpenFs,
    fs: &'a dyn fsapi::Filesystem,
    opts: &'a CopyOptions,
    progress: &'a Progress,
    stats: Stats,
    failures: AtomicU64,
    warned_chown: AtomicU64,
}

impl<'a> Copier<'a> {
    fn new(ofs: &'a OpenFs, opts: &'a CopyOptions, progress: &'a Progress) -> Self {
        Copier {
            ofs,
            fs: &*ofs.fs,
            opts,
            progress,
            stats: Stats::default(),
            failures: AtomicU64::new(0),
            warned_chown: AtomicU64::new(0),
        }
    }

    fn fail(&self, src: &[u8], e: &anyhow::Error) {
        self.progress
            .bar
            .suspend(|| eprintln!("vmdkrecover: {}: {e:#}", show_name(src)));
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the tree at `src` to `dst`: one thread walks the source, creating
    /// directories, symlinks and special files, and hands each directory's regular
    /// files (at most BATCH at a time) to a pool of copying threads; then hard
    /// links are made, then directory modes and times set, deepest first.
    fn copy(&self, src: &[u8], inode: Metadata, dst: &Path, merge_root: bool) {
        let threads = self
            .opts
            .threads
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            })
            .clamp(1, 64);
        let (queue, batches) = std::sync::mpsc::sync_channel::<Vec<FileJob>>(threads * 4);
        let batches = Mutex::new(batches);
        let mut walk = WalkState::default();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let mut buf = crate::io::AlignedBuf::new(CHUNK as usize);
                    loop {
                        let next = batches.lock().ok().and_then(|rx| rx.recv().ok());
                        let Some(batch) = next else { break };
                        self.copy_batch(&batch, &mut buf);
                    }
                });
            }
            self.walk(src, inode, dst, merge_root, &mut walk, &queue);
            // Closing the queue lets the copying threads finish.
            drop(queue);
        });
        self.finish(walk);
    }

    /// The walk (see [`Copier::copy`]).
    fn walk(
        &self,
        src: &[u8],
        inode: Metadata,
        dst: &Path,
        merge_root: bool,
        walk: &mut WalkState,
        queue: &std::sync::mpsc::SyncSender<Vec<FileJob>>,
    ) {
        // Full batches go out at once, so that a directory of a million files is
        // never held as a whole.
        let send = |jobs: &mut Vec<FileJob>, at_least: usize| {
            if !jobs.is_empty() && jobs.len() >= at_least {
                // Fails only if every copying thread is gone; nothing to do then.
                let _ = queue.send(std::mem::replace(jobs, Vec::with_capacity(BATCH)));
            }
        };
        if inode.file_type != FileType::Directory {
            match self.copy_non_dir(src, &inode, dst, false, walk) {
                Ok(job) => send(&mut job.into_iter().collect(), 1),
                Err(e) => self.fail(src, &e),
            }
            return;
        }
        // Directories still to visit.
        let mut stack = vec![(src.to_vec(), inode, dst.to_path_buf())];
        let mut seen_dirs = HashSet::new();
        let mut is_top = true;
        while let Some((src, inode, dst)) = stack.pop() {
            let top = std::mem::replace(&mut is_top, false);
            if !seen_dirs.insert(inode.ino) {
                self.fail(
                    &src,
                    &anyhow!(
                        "directory loop in the filesystem (inode {} seen twice); skipped",
                        inode.ino
                    ),
                );
                continue;
            }
            // In a directory this copy made, nothing can be in the way of its
            // entries: their existence checks are skipped (the final no-clobber
            // placement still holds).
            let fresh = match self.make_dir(&dst, top && merge_root) {
                Ok(fresh) => fresh,
                Err(e) => {
                    self.fail(&src, &e);
                    continue;
                }
            };
            self.stats.dirs.fetch_add(1, Ordering::Relaxed);
            walk.dirs.push((dst.clone(), inode.ino));
            let entries = self.fs.read_dir(inode.ino);
            // The warnings reading this directory raised (a dropped entry, a bad
            // block), now rather than at the end of a long copy.
            self.ofs.print_new_warnings_in(Some(&src), &|l| {
                self.progress.bar.suspend(|| eprintln!("{l}"))
            });
            let mut entries = match entries {
                Ok(e) => e,
                Err(e) => {
                    self.fail(&src, &anyhow::Error::new(e));
                    continue;
                }
            };
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            let mut names = crate::names::DirNames::new();
            let mut subdirs = Vec::new();
            let mut jobs = Vec::with_capacity(BATCH);
            for e in entries {
                let child_src = join(&src, &e.name);
                if let Err(why) = names.admit(&e.name) {
                    self.ofs.warn(&format!("{}: {why}", show_name(&src)), &|l| {
                        self.progress.bar.suspend(|| eprintln!("{l}"))
                    });
                    continue;
                }
                let child = match self.fs.metadata(e.ino) {
                    Ok(i) => i,
                    Err(err) => {
                        self.fail(&child_src, &anyhow::Error::new(err));
                        continue;
                    }
                };
                let child_dst = dst.join(OsStr::from_bytes(&e.name));
                if child.file_type == FileType::Directory {
                    subdirs.push((child_src, child, child_dst));
                    continue;
                }
                match self.copy_non_dir(&child_src, &child, &child_dst, fresh, walk) {
                    Ok(job) => jobs.extend(job),
                    Err(err) => self.fail(&child_src, &err),
                }
                send(&mut jobs, BATCH);
            }
            send(&mut jobs, 1);
            // Popped in name order.
            stack.extend(subdirs.into_iter().rev());
        }
    }

    /// Copies one directory's batch of files, named relative to that directory.
    fn copy_batch(&self, batch: &[FileJob], buf: &mut [u8]) {
        let Some(parent) = batch.first().and_then(|j| j.dst.parent()) else {
            return;
        };
        let dir = match crate::io::DestDir::open(parent) {
            Ok(d) => d,
            Err(e) => {
                for job in batch {
                    self.fail(&job.src, &anyhow!("{}: {e}", parent.display()));
                }
                return;
            }
        };
        for job in batch {
            self.progress.file(&job.dst);
            match self.copy_file(job, &dir, buf) {
                Ok(()) => {
                    self.stats.files.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => self.fail(&job.src, &e),
            }
        }
    }

    /// Creates the directory `dst`, or merges into an existing one as `cp -r` does;
    /// true when this call created it.
    fn make_dir(&self, dst: &Path, merge_root: bool) -> Result<bool> {
        use std::os::unix::fs::DirBuilderExt;
        // Owner-writable while we fill it; the final mode is set at the end.
        match fs::DirBuilder::new().mode(0o700).create(dst) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(anyhow::Error::new(e)
                    .context(format!("{}: cannot create directory", dst.display())))
            }
            Err(_) => {}
        }
        match fs::symlink_metadata(dst) {
            Ok(m) if m.is_dir() => Ok(false),
            Ok(m) if m.file_type().is_symlink() && !merge_root => {
                bail!("{}: exists as a symlink; not following it", dst.display())
            }
            Ok(_) if merge_root => Ok(false),
            Ok(_) => bail!("{}: exists and is not a directory", dst.display()),
            Err(e) => Err(anyhow::Error::new(e).context(format!("{}", dst.display()))),
        }
    }

    /// Creates a symlink or special file, or returns the job that copies a regular
    /// file (none for a further hard link to an inode already copied).
    fn copy_non_dir(
        &self,
        src: &[u8],
        inode: &Metadata,
        dst: &Path,
        in_fresh_dir: bool,
        walk: &mut WalkState,
    ) -> Result<Option<FileJob>> {
        if !in_fresh_dir {
            refuse_existing(dst, self.opts.force)?;
        }
        match inode.file_type {
            FileType::Regular => {
                if inode.nlink > 1 {
                    if let Some(first) = walk.first_copy.get(&inode.ino) {
                        walk.links
                            .push((src.to_vec(), first.clone(), dst.to_path_buf()));
                        return Ok(None);
                    }
                    walk.first_copy.insert(inode.ino, dst.to_path_buf());
                }
                Ok(Some(FileJob {
                    src: src.to_vec(),
                    inode: inode.clone(),
                    dst: dst.to_path_buf(),
                }))
            }
            FileType::Symlink => {
                let target = self.fs.read_link(inode.ino)?;
                if target.is_empty() || target.contains(&0) {
                    bail!("symlink target is empty or contains NUL; skipped");
                }
                let tmp = temp_name(dst)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &tmp)
                    .with_context(|| format!("{}: cannot create symlink", tmp.display()))?;
                let r = self
                    .finish_special(inode, &tmp, true)
                    .and_then(|()| place(&tmp, dst, self.opts.force));
                if r.is_err() {
                    let _ = fs::remove_file(&tmp);
                }
                r?;
                self.stats.symlinks.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
            FileType::Fifo | FileType::CharDevice | FileType::BlockDevice | FileType::Socket => {
                use nix::sys::stat::{mknod, Mode, SFlag};
                let kind = match inode.file_type {
                    FileType::Fifo => SFlag::S_IFIFO,
                    FileType::CharDevice => SFlag::S_IFCHR,
                    FileType::BlockDevice => SFlag::S_IFBLK,
                    _ => SFlag::S_IFSOCK,
                };
                let (maj, min) = inode.rdev.unwrap_or((0, 0));
                let dev = nix::sys::stat::makedev(u64::from(maj), u64::from(min));
                let tmp = temp_name(dst)?;
                mknod(&tmp, kind, Mode::from_bits_truncate(0o600), dev).map_err(|e| {
                    anyhow!(
                        "cannot create {} {maj}:{min}: {e} (device nodes need root)",
                        super::type_name(inode.file_type)
                    )
                })?;
                let r = self
                    .finish_special(inode, &tmp, false)
                    .and_then(|()| place(&tmp, dst, self.opts.force));
                if r.is_err() {
                    let _ = fs::remove_file(&tmp);
                }
                r?;
                self.stats.other.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
            FileType::Directory => unreachable_dir().map(|()| None),
            FileType::Unknown => bail!("unknown file type (mode {:o}); skipped", inode.mode),
        }
    }

    /// Owner, mode, xattrs and times on a just-created object (before it is renamed
    /// into place).
    fn finish_special(&self, inode: &Metadata, path: &Path, is_symlink: bool) -> Result<()> {
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

    fn chown(&self, target: Target, inode: &Metadata) {
        let (uid, gid) = (Some(inode.uid), Some(inode.gid));
        let r = match target {
            Target::Path(p) => std::os::unix::fs::lchown(p, uid, gid),
            Target::File(f, _) => std::os::unix::fs::fchown(f, uid, gid),
        };
        if let Err(e) = r {
            if self.warned_chown.fetch_add(1, Ordering::Relaxed) == 0 {
                self.progress.bar.suspend(|| {
                    eprintln!("vmdkrecover: warning: cannot set owners ({e}); files keep your user (run as root to keep them)")
                });
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
            let name = OsStr::from_bytes(&a.name);
            let r = match target {
                Target::Path(p) => xattr::set(p, name, &a.value),
                Target::File(f, _) => xattr::FileExt::set_xattr(f, name, &a.value),
            };
            if let Err(e) = r {
                self.progress.bar.suspend(|| {
                    eprintln!(
                        "vmdkrecover: warning: {}: cannot set xattr {}: {e}",
                        path.display(),
                        show_name(&a.name)
                    )
                });
            }
        }
    }

    /// Copies one regular file into `dir`, the directory of `job.dst`.
    fn copy_file(&self, job: &FileJob, dir: &crate::io::DestDir, buf: &mut [u8]) -> Result<()> {
        let name = job
            .dst
            .file_name()
            .ok_or_else(|| anyhow!("{}: no file name", job.dst.display()))?;
        let staged = crate::io::StagedFile::new_in(dir, name)
            .with_context(|| format!("{}: cannot create a temporary file", dir.path().display()))?;
        let out = staged.file();
        let size = job.inode.size;
        let mut written_to = 0u64;
        for run in self.fs.file_runs(job.inode.ino)? {
            // Holes and unwritten (preallocated) runs read as zeros: both stay holes.
            let fsapi::FileRun::Data { offset, len, .. } = run else {
                continue;
            };
            let end = offset.saturating_add(len).min(size);
            let mut pos = offset;
            while pos < end {
                let want = (end - pos).min(buf.len() as u64) as usize;
                let chunk = &mut buf[..want];
                let n = self.fs.read_at(job.inode.ino, pos, chunk)?;
                if n == 0 {
                    bail!("unexpected end of file data at offset {pos} of {size}");
                }
                let data = &chunk[..n];
                // A block that reads as zeros inside a data run (preallocated space
                // the guest never wrote) stays data: cp keeps what the fs says.
                out.write_all_at(data, pos)
                    .with_context(|| format!("{}: write failed", job.dst.display()))?;
                pos += n as u64;
                written_to = pos;
                self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
                self.progress.bytes(n as u64);
            }
        }
        // Trailing hole (and files that are all hole): the size alone makes it.
        if written_to < size {
            out.set_len(size)?;
        }
        if self.opts.archive {
            self.chown(Target::File(out, &job.dst), &job.inode);
        }
        out.set_permissions(fs::Permissions::from_mode(job.inode.mode & 0o7777))?;
        if self.opts.archive {
            self.set_xattrs(Target::File(out, &job.dst), &job.inode);
        }
        let (atime, mtime) = times(&job.inode);
        filetime::set_file_handle_times(out, Some(atime), Some(mtime))?;
        staged
            .place(dir, name, self.opts.force)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    anyhow!(
                        "{}: already exists (use --force to replace)",
                        job.dst.display()
                    )
                }
                _ => anyhow!("{}: cannot put into place: {e}", job.dst.display()),
            })?;
        Ok(())
    }

    /// Hard links, then directory modes and times, deepest first.
    fn finish(&self, walk: WalkState) {
        for (src, first, dst) in walk.links {
            let r = (|| -> Result<()> {
                if self.opts.force && fs::symlink_metadata(&dst).is_ok() {
                    fs::remove_file(&dst)?;
                }
                fs::hard_link(&first, &dst).with_context(|| {
                    format!("{}: cannot link to {}", dst.display(), first.display())
                })
            })();
            match r {
                Ok(()) => {
                    self.stats.files.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => self.fail(&src, &e),
            }
        }
        for (dst, ino) in walk.dirs.into_iter().rev() {
            let r = (|| -> Result<()> {
                let inode = self.fs.metadata(ino)?;
                if self.opts.archive {
                    self.chown(Target::Path(&dst), &inode);
                    self.set_xattrs(Target::Path(&dst), &inode);
                }
                fs::set_permissions(&dst, fs::Permissions::from_mode(inode.mode & 0o7777))?;
                let (atime, mtime) = times(&inode);
                filetime::set_file_times(&dst, atime, mtime)?;
                Ok(())
            })();
            if let Err(e) = r {
                self.fail(dst.as_os_str().as_bytes(), &e);
            }
        }
    }
}

fn unreachable_dir() -> Result<()> {
    bail!("internal: directory passed to copy_non_dir")
}

/// The (atime, mtime) pair of an inode, nanoseconds included.
fn times(inode: &Metadata) -> (FileTime, FileTime) {
    (
        FileTime::from_unix_time(inode.atime.secs, inode.atime.nanos),
        FileTime::from_unix_time(inode.mtime.secs, inode.mtime.nanos),
    )
}

/// Refuses to replace an existing destination object unless `force`; never follows
/// or replaces a directory.
fn refuse_existing(dst: &Path, force: bool) -> Result<()> {
    match fs::symlink_metadata(dst) {
        Ok(m) if m.is_dir() => bail!("{}: a directory is in the way", dst.display()),
        Ok(_) if !force => bail!("{}: already exists (use --force to replace)", dst.display()),
        _ => Ok(()),
    }
}

/// A fresh name beside `dst` for objects that tempfile cannot make (symlinks, fifos).
fn temp_name(dst: &Path) -> Result<PathBuf> {
    let parent = dst
        .parent()
        .ok_or_else(|| anyhow!("{}: no parent directory", dst.display()))?;
    let base = dst.file_name().unwrap_or_default().to_string_lossy();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = parent.join(format!(
            ".{}.{}.{n}.vmdkrecover-partial",
            truncate_name(&base),
            std::process::id()
        ));
        if fs::symlink_metadata(&p).is_err() {
            return Ok(p);
        }
    }
    bail!("{}: cannot find a free temporary name", parent.display())
}

/// Keeps temporary names under NAME_MAX (255) whatever the final name's length.
fn truncate_name(s: &str) -> String {
    s.chars().take(100).collect()
}

/// Moves a finished object into place: replacing only with `force`, otherwise an
/// atomic rename that refuses an existing `dst` (`RENAME_NOREPLACE`), or, where the
/// filesystem lacks it, a hard link (which fails if `dst` exists) and an unlink.
fn place(tmp: &Path, dst: &Path, force: bool) -> Result<()> {
    if force {
        fs::rename(tmp, dst)
            .with_context(|| format!("{}: cannot rename into place", dst.display()))?;
        return Ok(());
    }
    use nix::fcntl::{renameat2, RenameFlags};
    match renameat2(None, tmp, None, dst, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS) => {
            fs::hard_link(tmp, dst).with_context(|| {
                format!("{}: cannot place (use --force to replace)", dst.display())
            })?;
            fs::remove_file(tmp)?;
            Ok(())
        }
        Err(e) => Err(anyhow!(
            "{}: cannot place: {e} (use --force to replace)",
            dst.display()
        )),
    }
}

/// Where to set owners and xattrs: a path (not followed if a symlink), or an open
/// file (named by its destination in messages).
#[derive(Clone, Copy)]
enum Target<'a> {
    Path(&'a Path),
    File(&'a fs::File, &'a Path),
}

/// Re-exported for tests that check names the copier refuses ([`crate::names`]).
pub fn name_is_safe(name: &[u8]) -> bool {
    crate::names::is_safe(name)
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Arc<dyn fsapi::Filesystem>>();
}
