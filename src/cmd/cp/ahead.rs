//! Reading directories ahead of the walk, where the disk is far away.
//!
//! The walk ([`super::walk`]) visits directories one at a time, in name order,
//! depth first; each visit reads the directory's blocks, then its entries' inodes,
//! then slow symlinks' targets: two or three round trips one after another, per
//! directory, when the disk is far away (NFS, FUSE). Here a few reading threads
//! ("scanners") do those reads for the directories the walk will visit next,
//! several directories at once, and hand each result to the walk when it gets
//! there. What the walk does with a result (what it creates, in which order, what
//! it reports) is exactly what it would have done reading in turn:
//! - the next directories are taken in the walk's own order: each directory has
//!   a key, the indices of its subdirectories from the top (`[2, 0]` is the first
//!   subdirectory of the third one), and depth-first name order is the keys' order;
//! - the warnings the filesystem raises while a scanner reads are kept aside
//!   ([`fsapi::Warnings::deferred`]) and recorded by the walk when it reaches the
//!   read that raised them, so they are numbered, deduplicated and printed as in a
//!   walk that reads in turn; a scanner does not start where the filesystem keeps
//!   its warnings elsewhere ([`fsapi::Filesystem::warning_list`] is `None`);
//! - a directory the walk skips (a loop, a destination it cannot create) has its
//!   subtree dropped unread, and what was read of it is dropped with its warnings.
//!
//! Memory is bounded whatever the tree's depth and width: at most [`DIRS_AHEAD`]
//! directories and about [`ENTRIES_AHEAD`] entries are read and not yet walked; a
//! directory not yet read costs its key and names, as the walk's own stack of
//! directories to visit does. If the walk needs a directory no scanner has taken,
//! it reads it itself, in turn, so it never waits on the bound.

use fsapi::{DirEntry, Metadata};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Directories read ahead and not yet walked, at most (those being read count).
pub(super) const DIRS_AHEAD: usize = 64;
/// Entries held by the directories read ahead, at most (a scanner takes no new
/// directory past it; one directory may exceed it alone).
pub(super) const ENTRIES_AHEAD: usize = 16 * 1024;
/// Scanners where reads are slow. Each directory read also reads its entries'
/// inode-table blocks several at a time (extfs and xfs `prefetch_inodes`).
pub(super) const SCANNERS: usize = 8;

/// How many scanners to start: `VMDKRECOVER_WALK_AHEAD=N` (0: none; for tests and
/// A/B measurements), else [`SCANNERS`] once the disk has turned out to be far
/// away ([`bytesource::far_reads_seen`]: several slow large reads in a row). Not on
/// one slow read ([`bytesource::parallel_reads_pay`]): on a loaded machine a
/// page-cache hit can take that long, and where reads are page-cache hits the
/// threads cost more than the reads they overlap (a warm local copy of
/// `/usr/share` was no faster with them).
pub(super) fn scanners_wanted() -> Option<usize> {
    static FORCED: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    match super::env_number(&FORCED, "VMDKRECOVER_WALK_AHEAD") {
        Some(n) => Some(n.min(64)),
        None if bytesource::far_reads_seen() => Some(SCANNERS),
        None => None,
    }
}

/// One directory to walk.
pub(super) struct Slot {
    pub src: Vec<u8>,
    pub inode: Metadata,
    pub dst: PathBuf,
    /// Its place in the walk's order (see the module doc).
    pub key: Vec<u32>,
    /// Whether a scanner read it (guarded by [`Ahead`]'s lock, taken first).
    scan: Mutex<Read>,
}

/// How far a scanner got with a [`Slot`].
enum Read {
    /// No scanner took it.
    Not,
    /// A scanner is reading it.
    Reading,
    /// Read, not yet taken by the walk (or already taken: `Not` again).
    Done(Scanned),
}

impl Slot {
    /// Its result, if read (leaving `Not`); `reading` tells whether a scanner
    /// is still at it.
    fn take_done(&self) -> (Option<Scanned>, bool) {
        let Ok(mut s) = self.scan.lock() else {
            return (None, false);
        };
        match std::mem::replace(&mut *s, Read::Not) {
            Read::Done(scan) => (Some(scan), false),
            Read::Reading => {
                *s = Read::Reading;
                (None, true)
            }
            Read::Not => (None, false),
        }
    }

    fn set(&self, r: Read) {
        if let Ok(mut s) = self.scan.lock() {
            *s = r;
        }
    }
}

impl Slot {
    pub fn new(src: Vec<u8>, inode: Metadata, dst: PathBuf, key: Vec<u32>) -> Arc<Slot> {
        Arc::new(Slot {
            src,
            inode,
            dst,
            key,
            scan: Mutex::new(Read::Not),
        })
    }
}

/// A result with the warnings its read raised, kept aside until recorded.
pub(super) type Deferred<T> = (fsapi::Result<T>, Vec<String>);

/// One entry of a directory read ahead.
pub(super) struct Entry {
    pub entry: DirEntry,
    /// The entry's inode, read ahead (none for a refused name). Boxed, so that
    /// the walk frees each as it goes instead of all with the directory's vector
    /// (224 bytes an entry unboxed, 64 boxed): the 18,000 entries of the largest
    /// directory of `/usr/share` were a vector of 4 MiB, held to the end of the
    /// directory's walk and then freed, which raised glibc's mmap and trim
    /// thresholds to 4 and 8 MiB (mallopt(3), dynamic threshold) for the rest of
    /// the copy.
    pub meta: Option<Box<Deferred<Metadata>>>,
    /// A symlink's target, read ahead (boxed: most entries are not symlinks, and
    /// thousands of entries are held ahead).
    pub link: Option<Box<Deferred<Vec<u8>>>>,
    /// A subdirectory's slot, already queued for the scanners.
    pub child: Option<Arc<Slot>>,
}

/// A directory read by a scanner.
pub(super) struct Scanned {
    /// The directory's entries in name order, or why it could not be read.
    pub entries: fsapi::Result<Vec<Entry>>,
    /// Warnings reading the directory raised (not its entries').
    pub dir_warnings: Vec<String>,
}

impl Scanned {
    fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, Vec::len)
    }
}

/// What the walk gets for a directory: read ahead, or to be read now.
pub(super) enum Got {
    Ahead(Scanned),
    /// Nobody read it: the walk reads it in turn.
    InTurn,
}

/// The queue between the walk and the scanners.
#[derive(Default)]
pub(super) struct Ahead {
    state: Mutex<State>,
    /// Scanners wait here for work and room.
    work: Condvar,
    /// The walk waits here for a scanner's result.
    ready: Condvar,
}

#[derive(Default)]
struct State {
    /// Directories known and not yet read, by key.
    queue: BTreeMap<Vec<u32>, Arc<Slot>>,
    /// Keys of directories the walk skipped: nothing under them is read.
    dropped: BTreeSet<Vec<u32>>,
    /// Directories taken by scanners and not yet walked.
    held_dirs: usize,
    /// Entries they hold.
    held_entries: usize,
    /// The walk is over: scanners stop.
    done: bool,
}

impl State {
    fn is_dropped(&self, key: &[u32]) -> bool {
        (0..=key.len()).any(|n| key.get(..n).is_some_and(|k| self.dropped.contains(k)))
    }
}

impl Ahead {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking thread ends the copy anyway; the state stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes as many scanners as `n` new directories or places can keep busy:
    /// waking all of them for each (3,000 times in a copy of `/usr/share`) made
    /// most wake up to find nothing and sleep again. Each woken scanner looks at
    /// the queue and the bounds itself, so one woken in vain loses nothing.
    fn wake(&self, n: usize) {
        if n >= SCANNERS {
            self.work.notify_all();
        } else {
            for _ in 0..n {
                self.work.notify_one();
            }
        }
    }

    /// Queues directories to read (a directory's subdirectories, in order).
    pub fn queue(&self, slots: impl IntoIterator<Item = Arc<Slot>>) {
        let mut st = self.lock();
        let mut n = 0usize;
        for s in slots {
            st.queue.insert(s.key.clone(), s);
            n = n.saturating_add(1);
        }
        drop(st);
        self.wake(n);
    }

    /// The walk's turn for `slot`: its result if a scanner read it (waiting for
    /// one that is reading it), else [`Got::InTurn`] (taken off the queue).
    pub fn take(&self, slot: &Slot) -> Got {
        let mut st = self.lock();
        if st.queue.remove(&slot.key).is_some() {
            return Got::InTurn;
        }
        loop {
            match slot.take_done() {
                (Some(scan), _) => {
                    // Room for one more directory, or for all the scanners where
                    // the entries' bound held them all.
                    let room = if st.held_entries >= ENTRIES_AHEAD {
                        SCANNERS
                    } else {
                        1
                    };
                    st.held_dirs = st.held_dirs.saturating_sub(1);
                    st.held_entries = st.held_entries.saturating_sub(scan.len());
                    drop(st);
                    self.wake(room);
                    return Got::Ahead(scan);
                }
                // Neither queued nor taken by a scanner: read it in turn.
                (None, false) => return Got::InTurn,
                (None, true) => {}
            }
            st = self.ready.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The walk skipped `slot` (and will never take it): nothing under it is read,
    /// and whatever was read of it is dropped.
    pub fn drop_subtree(&self, slot: &Slot) {
        let mut garbage: Vec<Arc<Slot>> = Vec::new();
        let mut results: Vec<Scanned> = Vec::new();
        {
            let mut st = self.lock();
            st.dropped.insert(slot.key.clone());
            let prefix = slot.key.as_slice();
            let under: Vec<Vec<u32>> = st
                .queue
                .range(slot.key.clone()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, _)| k.clone())
                .collect();
            for k in under {
                if let Some(s) = st.queue.remove(&k) {
                    garbage.push(s);
                }
            }
            // Results already read under it (a tree: each taken once).
            let mut todo = vec![slot.take_done().0];
            while let Some(scan) = todo.pop() {
                let Some(scan) = scan else { continue };
                st.held_dirs = st.held_dirs.saturating_sub(1);
                st.held_entries = st.held_entries.saturating_sub(scan.len());
                if let Ok(entries) = &scan.entries {
                    for e in entries {
                        if let Some(c) = &e.child {
                            todo.push(c.take_done().0);
                        }
                    }
                }
                results.push(scan);
            }
        }
        self.work.notify_all();
        // Dropped outside the lock.
        drop(garbage);
        drop(results);
    }

    /// The walk is over.
    pub fn finish(&self) {
        self.lock().done = true;
        self.work.notify_all();
    }

    /// A scanner's next directory, in the walk's order, once there is room; None
    /// when the walk is over.
    pub fn next_for_scanner(&self) -> Option<Arc<Slot>> {
        let mut st = self.lock();
        loop {
            if st.done {
                return None;
            }
            if st.held_dirs < DIRS_AHEAD && st.held_entries < ENTRIES_AHEAD {
                if let Some((_, slot)) = st.queue.pop_first() {
                    st.held_dirs = st.held_dirs.saturating_add(1);
                    slot.set(Read::Reading);
                    return Some(slot);
                }
            }
            st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A scanner's result for `slot`: kept for the walk and its subdirectories
    /// queued, unless the walk skipped it meanwhile.
    pub fn deliver(&self, slot: &Slot, scan: Scanned) {
        let mut st = self.lock();
        let n = scan.len();
        let mut unused = None;
        // New work for scanners: the subdirectories queued, or the room given back.
        let mut new_work = 0usize;
        if st.is_dropped(&slot.key) {
            st.held_dirs = st.held_dirs.saturating_sub(1);
            slot.set(Read::Not);
            unused = Some(scan);
            new_work = 1;
        } else {
            st.held_entries = st.held_entries.saturating_add(n);
            if let Ok(entries) = &scan.entries {
                for c in entries.iter().filter_map(|e| e.child.as_ref()) {
                    st.queue.insert(c.key.clone(), c.clone());
                    new_work = new_work.saturating_add(1);
                }
            }
            slot.set(Read::Done(scan));
        }
        drop(st);
        self.ready.notify_all();
        self.wake(new_work);
        drop(unused);
    }
}

/// The key of the `i`-th subdirectory of the directory keyed `parent`.
pub(super) fn child_key(parent: &[u32], i: usize) -> Vec<u32> {
    let mut k = Vec::with_capacity(parent.len().saturating_add(1));
    k.extend_from_slice(parent);
    k.push(u32::try_from(i).unwrap_or(u32::MAX));
    k
}
