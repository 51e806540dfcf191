//! The walk of the source tree: one thread creates directories, symlinks and special
//! files and hands each directory's regular files (at most [`BATCH`] at a time) to a
//! pool of copying threads ([`super::file`]); hard links are made at the end, then
//! directory modes and times are set, deepest first, so that writing into the
//! directories does not disturb their mtime. Where the disk is far away (NFS, FUSE),
//! scanner threads read the next directories ahead of the walk, in its order
//! ([`super::ahead`]), and the pool grows to [`FAR_COPIERS`] copying threads.

use super::ahead::{self, Ahead, Got, Scanned, Slot};
use super::{CopyOptions, Stats};
use crate::cmd::{join, show_name};
use crate::output::{os, place_path, temp_name};
use crate::progress::Progress;
use crate::spec::OpenFs;
use anyhow::{anyhow, bail, Context, Result};
use fsapi::{FileType, Metadata};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Copying threads in all once the disk has turned out to be far away
/// (`bytesource::far_reads_seen`), unless `--threads` is given.
const FAR_COPIERS: usize = 8;
/// Buffer of each copying thread added then. Files larger than this get a buffer
/// of their own (`file::FAR_OWN_MIN`), so it holds at most a small file: 1 MiB
/// each, six of them were resident at the peak of a far copy of /usr/share.
pub(super) const FAR_COPIER_BUF: usize = 512 << 10;
/// Most files of one directory a worker takes at a time.
pub(super) const BATCH: usize = 64;

/// One regular file to copy.
pub(super) struct FileJob {
    pub src: Vec<u8>,
    pub inode: Metadata,
    pub dst: PathBuf,
    /// In a directory this copy made (nothing else was there before it).
    pub fresh_dir: bool,
}

/// What the walk remembers until the end of the copy. It grows with the number of
/// directories and hard-linked files only: regular files flow to the copying
/// threads through a bounded queue as the walk finds them, so memory stays bounded
/// however many files a tree holds.
#[derive(Default)]
struct WalkState {
    /// Inode -> destination of its first copy, for hard links.
    first_copy: HashMap<u64, PathBuf>,
    /// (source path, existing destination, new link) to make once the files exist.
    links: Vec<(Vec<u8>, PathBuf, PathBuf)>,
    /// Directories to finish (mode, times) at the end: destination and inode number.
    dirs: Vec<(PathBuf, u64)>,
}

/// A file written with `--salvage`: its destination and its unreadable byte
/// ranges (offset, length).
pub(super) type Salvaged = (String, Vec<(u64, u64)>);

/// One SPEC's copy.
pub(super) struct Copier<'a> {
    pub ofs: &'a OpenFs,
    pub fs: &'a dyn fsapi::Filesystem,
    pub opts: &'a CopyOptions,
    pub progress: &'a Progress,
    pub stats: Stats,
    pub failures: AtomicU64,
    pub warned_chown: AtomicU64,
    /// The copy's top directory was made by it and has no default ACL, so neither
    /// has any directory made under it (a new directory inherits its parent's,
    /// acl(5)): set by the walk, read by [`Copier::creation_mode`].
    pub no_default_acl: AtomicBool,
    /// `--salvage`: the files written with unreadable ranges (destination, ranges).
    pub salvaged: Mutex<Vec<Salvaged>>,
    /// The SPEC's path inside the filesystem, and how the user named it: messages
    /// and `-v` show the second (a guest path stays a guest path).
    fs_prefix: &'a [u8],
    shown_prefix: &'a str,
    /// Reads small files' data ahead of their copy where the disk is far away.
    pub prefetch: super::prefetch::Pool,
}

impl<'a> Copier<'a> {
    pub fn new(
        ofs: &'a OpenFs,
        opts: &'a CopyOptions,
        progress: &'a Progress,
        fs_prefix: &'a [u8],
        shown_prefix: &'a str,
    ) -> Self {
        Copier {
            ofs,
            fs: &*ofs.fs,
            opts,
            progress,
            stats: Stats::default(),
            failures: AtomicU64::new(0),
            warned_chown: AtomicU64::new(0),
            no_default_acl: AtomicBool::new(false),
            salvaged: Mutex::new(Vec::new()),
            fs_prefix,
            shown_prefix,
            prefetch: super::prefetch::Pool::default(),
        }
    }

    /// The name the user knows a source object by.
    pub fn shown(&self, src: &[u8]) -> String {
        let rel = src
            .strip_prefix(self.fs_prefix)
            .map(|r| r.strip_prefix(b"/").unwrap_or(r));
        match rel {
            Some([]) => self.shown_prefix.to_string(),
            Some(rel) => format!(
                "{}/{}",
                self.shown_prefix.trim_end_matches('/'),
                show_name(rel)
            ),
            None => show_name(src),
        }
    }

    pub fn fail(&self, src: &[u8], e: &anyhow::Error) {
        self.progress
            .eprintln(&format!("vmdkrecover: {}: {e:#}", self.shown(src)));
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// `-v`: `'SRC' -> 'DEST'` on standard output, as `cp -v` prints it.
    pub fn made(&self, src: &[u8], dst: &Path) {
        if self.opts.verbose {
            let line = format!("'{}' -> '{}'", self.shown(src), dst.display());
            // On standard output as cp -v, unless that carries the --json summary.
            self.progress.suspend(|| {
                use std::io::Write;
                if self.opts.json {
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                } else {
                    let _ = writeln!(std::io::stdout().lock(), "{line}");
                }
            });
        }
    }

    /// Copies the tree at `src` to `dst` (see the module doc).
    pub fn copy(&self, src: &[u8], inode: Metadata, dst: &Path, merge_root: bool) {
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
        let ahead = Ahead::default();
        // The read-ahead pool's threads live in the outer scope: they stop once the
        // copying threads, in the inner one, are all done (or one panicked).
        std::thread::scope(|outer| {
            struct Close<'p>(&'p super::prefetch::Pool);
            impl Drop for Close<'_> {
                fn drop(&mut self) {
                    self.0.close();
                }
            }
            let _close = Close(&self.prefetch);
            std::thread::scope(|s| {
                let copier = |buf_len: usize| {
                    let batches = &batches;
                    move || {
                        let mut buf = crate::io::AlignedBuf::new(buf_len);
                        loop {
                            let next = batches.lock().ok().and_then(|rx| rx.recv().ok());
                            let Some(batch) = next else { break };
                            self.copy_batch(&batch, &mut buf);
                        }
                    }
                };
                for _ in 0..threads {
                    s.spawn(copier(super::file::CHUNK));
                }
                // Where the disk turns out to be far away, copying threads mostly wait
                // for round trips: more of them keep more requests in flight (unless
                // --threads says how many). Their buffers are small: one file's large
                // reads are split into parallel requests below anyway. The small
                // files' data is read ahead by a pool of threads started then.
                let extra = if self.opts.threads.is_none() {
                    FAR_COPIERS.saturating_sub(threads)
                } else {
                    0
                };
                let more_copiers = || {
                    for _ in 0..extra {
                        s.spawn(copier(FAR_COPIER_BUF));
                    }
                    if super::prefetch::data_read_ahead() {
                        self.prefetch.start(self, outer, super::prefetch::WORKERS);
                    }
                };
                self.walk(
                    src,
                    inode,
                    dst,
                    merge_root,
                    &mut walk,
                    &queue,
                    &ahead,
                    s,
                    &more_copiers,
                );
                // Closing the queue lets the copying threads finish.
                drop(queue);
            });
        });
        self.finish(walk);
    }

    #[allow(clippy::too_many_arguments)]
    fn walk<'s>(
        &'s self,
        src: &[u8],
        inode: Metadata,
        dst: &Path,
        merge_root: bool,
        walk: &mut WalkState,
        queue: &std::sync::mpsc::SyncSender<Vec<FileJob>>,
        ahead: &'s Ahead,
        scope: &'s std::thread::Scope<'s, '_>,
        more_copiers: &dyn Fn(),
    ) {
        // Full batches go out at once, so that a directory of a million files is
        // never held as a whole. The progress totals grow as files are queued.
        let send = |jobs: &mut Vec<FileJob>, at_least: usize| {
            if !jobs.is_empty() && jobs.len() >= at_least {
                let bytes = jobs
                    .iter()
                    .map(|j| j.inode.size)
                    .fold(0u64, u64::saturating_add);
                self.progress.add_total(jobs.len() as u64, bytes);
                // Fails only if every copying thread is gone; nothing to do then.
                let _ = queue.send(std::mem::replace(jobs, Vec::with_capacity(BATCH)));
            }
        };
        if inode.file_type != FileType::Directory {
            match self.copy_non_dir(src, &inode, dst, false, walk, None) {
                Ok(job) => send(&mut job.into_iter().collect(), 1),
                Err(e) => self.fail(src, &e),
            }
            return;
        }
        // Scanners read directories ahead where reads are slow, and only where the
        // filesystem lets their warnings wait for the walk's turn (ahead.rs).
        let deferrable = self.fs.warning_list().is_some();
        let mut scanners_started = !deferrable;
        // Directories still to visit.
        let mut stack = vec![Slot::new(
            src.to_vec(),
            inode,
            dst.to_path_buf(),
            Vec::new(),
        )];
        let mut seen_dirs = HashSet::new();
        let mut is_top = true;
        let mut far_copiers = false;
        while let Some(slot) = stack.pop() {
            if !far_copiers && bytesource::far_reads_seen() {
                far_copiers = true;
                more_copiers();
            }
            if !scanners_started {
                if let Some(n) = ahead::scanners_wanted() {
                    scanners_started = true;
                    for _ in 0..n {
                        scope.spawn(move || {
                            while let Some(s) = ahead.next_for_scanner() {
                                let scan = self.scan(&s);
                                ahead.deliver(&s, scan);
                            }
                        });
                    }
                    // What is already known to come next.
                    ahead.queue(stack.iter().cloned());
                }
            }
            let (src, inode, dst) = (&slot.src, &slot.inode, &slot.dst);
            let top = std::mem::replace(&mut is_top, false);
            if !seen_dirs.insert(inode.ino) {
                self.fail(
                    src,
                    &anyhow!(
                        "directory loop in the filesystem (inode {} seen twice); skipped",
                        inode.ino
                    ),
                );
                ahead.drop_subtree(&slot);
                continue;
            }
            // In a directory this copy made, nothing can be in the way of its
            // entries: their existence checks are skipped (the final no-clobber
            // placement still holds).
            let fresh = match self.make_dir(dst, top && merge_root) {
                Ok(fresh) => fresh,
                Err(e) => {
                    self.fail(src, &e);
                    ahead.drop_subtree(&slot);
                    continue;
                }
            };
            if fresh {
                if top {
                    self.no_default_acl
                        .store(crate::io::no_default_acl(dst), Ordering::Relaxed);
                }
                self.made(src, dst);
            } else if !top {
                // Writing into an existing directory: name what an earlier,
                // interrupted run left there.
                crate::output::warn_stale_partials(dst, &|l| self.progress.eprintln(l));
            }
            self.stats.dirs.fetch_add(1, Ordering::Relaxed);
            walk.dirs.push((dst.clone(), inode.ino));
            let (entries, read_ahead) = match ahead.take(&slot) {
                Got::Ahead(scan) => {
                    self.commit(scan.dir_warnings);
                    (scan.entries, true)
                }
                Got::InTurn => (
                    self.fs.read_dir(inode.ino).map(|mut e| {
                        e.sort_by(|a, b| a.name.cmp(&b.name));
                        e.into_iter()
                            .map(|entry| ahead::Entry {
                                entry,
                                meta: None,
                                link: None,
                                child: None,
                            })
                            .collect()
                    }),
                    false,
                ),
            };
            // The warnings reading this directory raised (a dropped entry, a bad
            // block), now rather than at the end of a long copy.
            self.ofs
                .print_new_warnings_in(Some(src), &|l| self.progress.eprintln(l));
            let entries = match entries {
                Ok(e) => e,
                Err(e) => {
                    self.fail(src, &anyhow::Error::new(e));
                    continue;
                }
            };
            let mut names = crate::names::SortedDirNames::new();
            let mut subdirs = Vec::new();
            let mut jobs = Vec::with_capacity(BATCH);
            for e in entries {
                let ahead::Entry {
                    entry: e,
                    meta,
                    link,
                    child: ready_child,
                } = e;
                let child_src = join(src, &e.name);
                if let Err(why) = names.admit(&e.name) {
                    self.ofs.warn(&format!("{}: {why}", self.shown(src)), &|l| {
                        self.progress.eprintln(l)
                    });
                    continue;
                }
                let child = match meta.map(|m| *m) {
                    Some((m, warnings)) => {
                        self.commit(warnings);
                        m
                    }
                    None => self.fs.metadata(e.ino),
                };
                let child = match child {
                    Ok(i) => i,
                    Err(err) => {
                        self.fail(&child_src, &anyhow::Error::new(err));
                        continue;
                    }
                };
                let child_dst = dst.join(os(&e.name));
                if child.file_type == FileType::Directory {
                    subdirs.push(ready_child.unwrap_or_else(|| {
                        Slot::new(
                            child_src,
                            child,
                            child_dst,
                            ahead::child_key(&slot.key, subdirs.len()),
                        )
                    }));
                    continue;
                }
                match self.copy_non_dir(
                    &child_src,
                    &child,
                    &child_dst,
                    fresh,
                    walk,
                    link.map(|l| *l),
                ) {
                    Ok(job) => jobs.extend(job),
                    Err(err) => self.fail(&child_src, &err),
                }
                send(&mut jobs, BATCH);
            }
            send(&mut jobs, 1);
            // Read in turn: the scanners (if any) learn of its subdirectories now.
            if !read_ahead && scanners_started && deferrable {
                // Their blocks first, where several fall together (prefetch.rs), as
                // a scanner does for the directories it reads.
                let dirs: Vec<u64> = subdirs.iter().map(|s| s.inode.ino).collect();
                self.prefetch_dirs(&dirs);
                ahead.queue(subdirs.iter().cloned());
            }
            // Popped in name order.
            stack.extend(subdirs.into_iter().rev());
        }
        ahead.finish();
    }

    /// Records warnings a scanner kept aside, now that the walk has reached the
    /// read that raised them.
    fn commit(&self, warnings: Vec<String>) {
        if warnings.is_empty() {
            return;
        }
        if let Some(list) = self.fs.warning_list() {
            list.commit(warnings);
        }
    }

    /// `f` with the warnings it raises kept aside (ahead.rs).
    fn deferred<T>(&self, f: impl FnOnce() -> fsapi::Result<T>) -> ahead::Deferred<T> {
        match self.fs.warning_list() {
            Some(w) => w.deferred(f),
            None => (f(), Vec::new()),
        }
    }

    /// A scanner's read of one directory: its entries in name order, their
    /// inodes, symlinks' targets, with the warnings each raised kept aside
    /// (ahead.rs); subdirectories get their slots.
    fn scan(&self, slot: &Slot) -> Scanned {
        let (entries, dir_warnings) = self.deferred(|| self.fs.read_dir(slot.inode.ino));
        let entries = entries.map(|mut entries| {
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            // The walk's own choice of entries, to read no inode it would not.
            let mut names = crate::names::SortedDirNames::new();
            let mut subdirs = 0usize;
            let mut out = Vec::with_capacity(entries.len());
            for entry in entries {
                let mut e = ahead::Entry {
                    meta: None,
                    link: None,
                    child: None,
                    entry,
                };
                if names.admit(&e.entry.name).is_ok() {
                    let ino = e.entry.ino;
                    let (meta, warnings) = self.deferred(|| self.fs.metadata(ino));
                    if let Ok(m) = &meta {
                        match m.file_type {
                            FileType::Symlink => {
                                e.link = Some(Box::new(self.deferred(|| self.fs.read_link(ino))));
                            }
                            FileType::Directory => {
                                e.child = Some(Slot::new(
                                    join(&slot.src, &e.entry.name),
                                    m.clone(),
                                    slot.dst.join(os(&e.entry.name)),
                                    ahead::child_key(&slot.key, subdirs),
                                ));
                                subdirs = subdirs.saturating_add(1);
                            }
                            _ => {}
                        }
                    }
                    e.meta = Some(Box::new((meta, warnings)));
                }
                out.push(e);
            }
            // Their blocks, where several fall together (prefetch.rs).
            let dirs: Vec<u64> = out
                .iter()
                .filter_map(|e| e.child.as_ref().map(|c| c.inode.ino))
                .collect();
            self.prefetch_dirs(&dirs);
            out
        });
        Scanned {
            entries,
            dir_warnings,
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
            Ok(_) => bail!(
                "{}: cannot overwrite non-directory with directory",
                dst.display()
            ),
            Err(e) => Err(anyhow::Error::new(e).context(format!("{}", dst.display()))),
        }
    }

    /// Whether `dst` may be made: an error for an existing object without
    /// `--force`, false (skip silently) with `-n`; a directory is never replaced.
    fn may_make(&self, dst: &Path) -> Result<bool> {
        match fs::symlink_metadata(dst) {
            Ok(m) if m.is_dir() => bail!("{}: a directory is in the way", dst.display()),
            Ok(_) if self.opts.no_clobber && !self.opts.force => {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
            Ok(_) if !self.opts.force => {
                bail!("{}: already exists (use --force to replace)", dst.display())
            }
            _ => Ok(true),
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
        link: Option<ahead::Deferred<Vec<u8>>>,
    ) -> Result<Option<FileJob>> {
        if !in_fresh_dir && !self.may_make(dst)? {
            return Ok(None);
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
                    fresh_dir: in_fresh_dir,
                }))
            }
            FileType::Symlink => {
                // Read ahead by a scanner, or now.
                let target = match link {
                    Some((target, warnings)) => {
                        self.commit(warnings);
                        target
                    }
                    None => self.fs.read_link(inode.ino),
                }?;
                if target.is_empty() || target.contains(&0) {
                    bail!("symlink target is empty or contains NUL; skipped");
                }
                let (tmp, live) = temp_name(dst)?;
                std::os::unix::fs::symlink(os(&target), &tmp)
                    .with_context(|| format!("{}: cannot create symlink", tmp.display()))?;
                self.place_special(inode, &tmp, live, dst, true)?;
                self.stats.symlinks.fetch_add(1, Ordering::Relaxed);
                self.made(src, dst);
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
                let (tmp, live) = temp_name(dst)?;
                mknod(&tmp, kind, Mode::from_bits_truncate(0o600), dev).map_err(|e| {
                    anyhow!(
                        "cannot create {} {maj}:{min}: {e} (device nodes need root)",
                        crate::cmd::type_name(inode.file_type)
                    )
                })?;
                self.place_special(inode, &tmp, live, dst, false)?;
                self.stats.other.fetch_add(1, Ordering::Relaxed);
                self.made(src, dst);
                Ok(None)
            }
            FileType::Directory => bail!("internal: directory passed to copy_non_dir"),
            FileType::Unknown => bail!("unknown file type (mode {:o}); skipped", inode.mode),
        }
    }

    /// Metadata on a just-made symlink or special file, then into place.
    fn place_special(
        &self,
        inode: &Metadata,
        tmp: &Path,
        live: crate::output::LiveTemp,
        dst: &Path,
        is_symlink: bool,
    ) -> Result<()> {
        let r = self.finish_special(inode, tmp, is_symlink);
        if r.is_err() {
            let _ = fs::remove_file(tmp);
            return r;
        }
        match place_path(tmp, live, dst, self.opts.force) {
            Err(e) if self.opts.no_clobber && fs::symlink_metadata(dst).is_ok() => {
                drop(e);
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            r => r,
        }
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
                    self.made(&src, &dst);
                }
                Err(e) => self.fail(&src, &e),
            }
        }
        for (dst, ino) in walk.dirs.into_iter().rev() {
            let r = (|| -> Result<()> {
                let inode = self.fs.metadata(ino)?;
                self.finish_dir(&inode, &dst)
            })();
            if let Err(e) = r {
                self.fail(dst.as_os_str().as_bytes(), &e);
            }
        }
    }
}
