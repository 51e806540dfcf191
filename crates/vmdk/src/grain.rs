//! The two-level grain map shared by every sparse extent kind: a grain directory (GD)
//! whose entries locate grain tables (GT), whose entries locate grains.
//!
//! VMware "Virtual Disk Format 5.0", "Grain Directories and Grain Tables"; qemu
//! `block/vmdk.c` `get_cluster_offset` for the three entry encodings:
//!
//! * hosted sparse (`KDMV`) and stream-optimized: 32-bit sector numbers; GTE 0 is an
//!   unallocated grain, GTE 1 a zeroed grain;
//! * ESX `COWD` (VMFSSPARSE): 32-bit sector numbers, 4096 entries per GT;
//! * SESparse: 64-bit entries whose top nibble says unallocated (0), unmapped or zero
//!   (1, 2) or allocated (3, with the grain number split across the other bits).
//!
//! The directory is checked against the file once, at open, by streaming through it in
//! [`DIR_CHUNK_BYTES`] pieces (every entry must locate a table inside the file), and is
//! never held whole: directory chunks and grain tables are read on demand into small
//! bounded caches (a mutex around a least-recently-used list), so an extent costs at
//! most [`MAX_CACHE_BYTES`] of memory whatever its header claims and however many
//! extents and parents a disk has open. Compressed grains are inflated into a third
//! small cache so a run of small reads inside one grain inflates it once. A stream
//! rebuilt from its markers keeps a sparse map (grain number -> marker sector) with at
//! most one entry per marker found in the file.
//!
//! Reads that pay for round trips: contiguous uncompressed grains are one read per run
//! (`map` joins them, across tables). A read spanning several compressed grains reads
//! the stored grains of each group of neighbours in one request (split into parallel
//! `O_DIRECT` pieces below once the file is far), and where reads are slow
//! (`bytesource::parallel_reads_pay`: NFS, FUSE, a cold disk) inflates them on a few
//! threads; and once the file is far (`bytesource::far_reads_seen`) and a walk has
//! needed several tables, a grain table that is not cached is read together with the
//! tables stored next to it (a window of up to 256, in 128 KiB pieces read at once).
//! Where the file is far, opening a hosted sparse or stream file also reads the
//! grain directory in one [`Ahead`] window of 124 KiB with the tables stored after
//! it ([`GrainMap::seed`]), and a lone compressed grain is read in such a window
//! of the stored grains around it, kept for the neighbours that follow
//! ([`GrainMap::inflate_windowed`]): behind 1 ms per request (nbdfuse), listing a
//! directory of a qemu-made stream took 4 requests instead of 10.

use crate::extent::{read_file, Extent, Piece};
use crate::Error;
use bytesource::{field, SharedSource};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

/// Largest grain accepted by every sparse kind, in sectors (8 MiB; VMware writes
/// 128 = 64 KiB, qemu refuses more than 128 MiB... of cluster, far above this).
pub(crate) const MAX_GRAIN_SECTORS: u64 = 16 * 1024;

/// Bytes of decoded grain tables kept in memory per extent.
const TABLE_CACHE_BYTES: u64 = 2 * 1024 * 1024;
/// Bytes of one grain directory piece read at a time.
pub(crate) const DIR_CHUNK_BYTES: u64 = 64 * 1024;
/// Grain directory pieces kept per extent.
const DIR_CACHE_CHUNKS: usize = 4;
/// Most decompressed grains kept per extent (64 KiB grains: 256 KiB)...
const GRAIN_CACHE_GRAINS: u64 = 4;
/// ...and at most this many bytes of them, but always one grain.
const GRAIN_CACHE_BYTES: u64 = 1024 * 1024;
/// [`DIR_CACHE_CHUNKS`] as u64 (keep them equal).
const DIR_CACHE_CHUNKS_U64: u64 = 4;
/// Windows of stored grains kept per extent ([`GrainMap::inflate_windowed`])...
const RAW_WINDOWS: usize = 4;
/// ...as u64 (keep them equal).
const RAW_WINDOWS_U64: u64 = 4;
/// Most bytes of tables, directory pieces and inflated grains one extent holds
/// between reads (one grain is at most `MAX_GRAIN_SECTORS` * 512 = 8 MiB): about
/// 11 MiB. The stored grains of grouped reads go through buffers of the
/// process-wide pool of [`crate::groupbuf`] ([`crate::groupbuf::POOL_BYTES`] for
/// all extents together); a lone grain larger than a pool buffer holds its own
/// while it is read.
pub const MAX_CACHE_BYTES: u64 = TABLE_CACHE_BYTES
    + DIR_CHUNK_BYTES * DIR_CACHE_CHUNKS_U64
    + RAW_WINDOWS_U64 * (Ahead::WINDOW + ALIGN)
    + if GRAIN_CACHE_BYTES > MAX_GRAIN_SECTORS * 512 {
        GRAIN_CACHE_BYTES
    } else {
        MAX_GRAIN_SECTORS * 512
    };

/// How a grain directory entry locates its grain table.
#[derive(Clone, Copy, Debug)]
pub(crate) enum DirEncoding {
    /// Hosted sparse and COWD: the table's sector number; 0 = no table.
    Sector,
    /// SESparse: 0 = no table, else `0x10000000_<table number>`, tables of
    /// `table_bytes` numbered from byte `tables_at` (qemu `vmdk_open_se_sparse`).
    SeSparse { tables_at: u64 },
}

/// A grain directory on disk: `count` entries of `entry_size` bytes at byte `at`,
/// checked by [`open_dir`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dir {
    at: u64,
    count: u64,
    entry_size: u64,
    encoding: DirEncoding,
    table_bytes: u64,
}

/// What the directory says about one span.
enum SpanTable {
    /// Past the end of the directory.
    PastEnd,
    /// No table: the span is unallocated.
    Missing,
    /// The span's table.
    Table(Arc<Vec<u64>>),
}

/// Where a map finds its grain tables.
pub(crate) enum Directory {
    /// A grain directory in the file.
    OnDisk(Dir),
    /// Rebuilt from a stream's markers: grain number -> sector of its grain marker.
    Scanned(BTreeMap<u64, u64>),
}

/// How entries of this map are encoded.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Flavor {
    /// Hosted sparse (`KDMV`); `compressed` for stream-optimized grains,
    /// `markers` when each compressed grain starts with a 12-byte grain marker.
    Hosted { compressed: bool, markers: bool },
    /// ESX `COWD`.
    Cowd,
    /// SESparse; grains are numbered from `grains_offset` (bytes).
    SeSparse { grains_offset: u64 },
}

/// Where one grain lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    Unallocated,
    Zero,
    At(u64),
}

/// A grain map over one extent file.
pub(crate) struct GrainMap {
    pub(crate) file: SharedSource,
    pub(crate) name: String,
    /// Bytes of virtual disk this extent covers.
    pub(crate) len: u64,
    /// Grain size in bytes (non-zero).
    pub(crate) grain: u64,
    /// Entries per grain table (non-zero).
    pub(crate) gt_entries: u64,
    /// 4 or 8.
    pub(crate) entry_size: u64,
    /// Where the grain tables are.
    pub(crate) dir: Directory,
    pub(crate) flavor: Flavor,
    /// The redundant grain directory (hosted sparse, rgdOffset), checked at open:
    /// where a table or a piece of the primary directory cannot be read, its copy
    /// is read from here.
    redundant: Option<Dir>,
    /// Read errors survived through the redundant copies, one line each.
    read_warnings: Mutex<Vec<String>>,
    /// Boxed: a map is moved by value through the frames of opening, which a
    /// chain of 64 parents nests (tests/fixtures.rs
    /// `parent_loop_and_depth_are_bounded`, in a test thread's 2 MiB stack).
    caches: Box<Caches>,
    /// Grain tables read so far (see [`GrainMap::prefetch_tables`]).
    table_misses: std::sync::atomic::AtomicU32,
}

/// The caches of one [`GrainMap`], together at most [`MAX_CACHE_BYTES`].
struct Caches {
    tables: Mutex<Lru<Arc<Vec<u64>>>>,
    dir_chunks: Mutex<Lru<Arc<Vec<u8>>>>,
    grains: Mutex<Lru<Arc<Vec<u8>>>>,
    /// Stored bytes read around lone compressed grains where the file is far
    /// ([`GrainMap::inflate_windowed`]): at most [`RAW_WINDOWS`] of
    /// [`Ahead::WINDOW`] bytes.
    raw: Mutex<Lru<Arc<Ahead>>>,
}

/// Most read warnings one map keeps (one per grain table at most, but bounded).
const MAX_READ_WARNINGS: usize = 1000;
/// Directory-chunk cache keys of the redundant directory have this bit set.
const REDUNDANT_KEY: u64 = 1 << 63;

/// A tiny least-recently-used cache keyed by u64.
struct Lru<T> {
    cap: usize,
    tick: u64,
    items: Vec<(u64, u64, T)>,
}

impl<T: Clone> Lru<T> {
    fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            tick: 0,
            items: Vec::new(),
        }
    }
    fn get(&mut self, key: u64) -> Option<T> {
        self.tick = self.tick.wrapping_add(1);
        let tick = self.tick;
        self.items.iter_mut().find(|(k, _, _)| *k == key).map(|e| {
            e.1 = tick;
            e.2.clone()
        })
    }
    /// The first item `hit` accepts, marked as used.
    fn find(&mut self, hit: impl Fn(&T) -> bool) -> Option<T> {
        self.tick = self.tick.wrapping_add(1);
        let tick = self.tick;
        self.items.iter_mut().find(|e| hit(&e.2)).map(|e| {
            e.1 = tick;
            e.2.clone()
        })
    }
    fn put(&mut self, key: u64, value: T) {
        self.tick = self.tick.wrapping_add(1);
        if self.items.len() >= self.cap {
            if let Some(i) = self
                .items
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.1)
                .map(|(i, _)| i)
            {
                self.items.swap_remove(i);
            }
        }
        self.items.push((key, self.tick, value));
    }
}

/// One little-endian directory or table entry of `entry_size` (4 or 8) bytes at the
/// start of `bytes`. Every caller passes a slice of exactly that length
/// (`chunks_exact`, or a checked `get`), so the field is always there; were it not,
/// it would read as 0 (no table, unallocated grain), never as stray data.
fn le(bytes: &[u8], entry_size: u64) -> u64 {
    if entry_size == 8 {
        field::le_u64(bytes, 0)
    } else {
        field::le_u32(bytes, 0).map(u64::from)
    }
    .unwrap_or(0)
}

/// Decodes `count` little-endian entries of `entry_size` bytes.
pub(crate) fn decode_entries(bytes: &[u8], entry_size: u64) -> Vec<u64> {
    let step = if entry_size == 8 { 8 } else { 4 };
    bytes
        .chunks_exact(step)
        .map(|c| le(c, entry_size))
        .collect()
}

impl GrainMap {
    /// Builds a map; `gd` holds table byte offsets already validated against the file.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        file: SharedSource,
        name: String,
        len: u64,
        grain: u64,
        gt_entries: u64,
        entry_size: u64,
        dir: Directory,
        flavor: Flavor,
    ) -> Self {
        let table_bytes = gt_entries.saturating_mul(8).max(1);
        let tables = usize::try_from(
            TABLE_CACHE_BYTES
                .checked_div(table_bytes)
                .unwrap_or(2)
                .max(2),
        )
        .unwrap_or(2);
        Self {
            file,
            name,
            len,
            grain,
            gt_entries,
            entry_size,
            dir,
            flavor,
            redundant: None,
            read_warnings: Mutex::new(Vec::new()),
            caches: Box::new(Caches {
                tables: Mutex::new(Lru::new(tables)),
                dir_chunks: Mutex::new(Lru::new(DIR_CACHE_CHUNKS)),
                raw: Mutex::new(Lru::new(RAW_WINDOWS)),
                grains: Mutex::new(Lru::new(
                    usize::try_from(
                        GRAIN_CACHE_BYTES
                            .checked_div(grain)
                            .unwrap_or(1)
                            .clamp(1, GRAIN_CACHE_GRAINS),
                    )
                    .unwrap_or(1),
                )),
            }),
            table_misses: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Adds the redundant grain directory (see [`GrainMap::redundant`]).
    pub(crate) fn with_redundant(mut self, redundant: Option<Dir>) -> Self {
        self.redundant = redundant;
        self
    }

    /// Records a read error that a redundant copy made good (once per message).
    pub(crate) fn note_read_warning(&self, w: String) {
        if let Ok(mut l) = self.read_warnings.lock() {
            if l.len() < MAX_READ_WARNINGS && !l.contains(&w) {
                l.push(w);
            }
        }
    }

    /// The byte offset of grain table `gd_index` (0 = no table), or `None` past the
    /// end of the directory: from the primary directory, or from the redundant one
    /// (with a read warning) where that piece of the primary cannot be read.
    fn table_offset(&self, d: &Dir, gd_index: u64) -> Result<Option<u64>, Error> {
        match self.dir_entry(d, gd_index, false) {
            Ok(o) => Ok(o),
            Err(e) => {
                let Some(r) = &self.redundant else {
                    return Err(e);
                };
                let o = self.dir_entry(r, gd_index, true).map_err(|e2| {
                    Error::corrupt(
                        &self.name,
                        format!("{e}; the redundant grain directory cannot be read either: {e2}"),
                    )
                })?;
                self.note_read_warning(format!(
                    "{e}; used the redundant grain directory at byte {:#x} for grain table {gd_index}",
                    r.at
                ));
                Ok(o)
            }
        }
    }

    /// Entry `gd_index` of directory `d` (the redundant one when `redundant`),
    /// read through the directory chunk cache.
    fn dir_entry(&self, d: &Dir, gd_index: u64, redundant: bool) -> Result<Option<u64>, Error> {
        if gd_index >= d.count {
            return Ok(None);
        }
        let internal = || Error::corrupt(&self.name, "internal: grain directory chunk");
        let per_chunk = d.per_chunk();
        let chunk_no = gd_index.checked_div(per_chunk).ok_or_else(internal)?;
        // chunk_no < 32 Mi (MAX_GD_ENTRIES), so the top bit is free for the copy.
        let key = if redundant {
            chunk_no | REDUNDANT_KEY
        } else {
            chunk_no
        };
        let cached = self
            .caches
            .dir_chunks
            .lock()
            .ok()
            .and_then(|mut c| c.get(key));
        let chunk = match cached {
            Some(c) => c,
            None => {
                let c = Arc::new(d.read_chunk(&self.file, &self.name, chunk_no)?);
                if let Ok(mut cache) = self.caches.dir_chunks.lock() {
                    cache.put(key, c.clone());
                }
                c
            }
        };
        let within = gd_index.checked_rem(per_chunk).ok_or_else(internal)?;
        let within = usize::try_from(within.saturating_mul(d.entry_size)).unwrap_or(usize::MAX);
        let raw = within
            .checked_add(usize::try_from(d.entry_size).unwrap_or(usize::MAX))
            .and_then(|end| chunk.get(within..end))
            .map(|b| le(b, d.entry_size))
            .ok_or_else(internal)?;
        d.decode(&self.name, self.file.len(), gd_index, raw)
            .map(Some)
    }

    fn gt_bytes(&self) -> Result<usize, Error> {
        self.gt_entries
            .checked_mul(self.entry_size)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| Error::corrupt(&self.name, "grain table size overflows"))
    }

    /// The grain table of span `gd_index`, reusing `current` when it is that span's.
    fn span_table(
        &self,
        d: &Dir,
        gd_index: u64,
        current: &mut Option<(u64, Arc<Vec<u64>>)>,
    ) -> Result<SpanTable, Error> {
        if let Some((i, t)) = current {
            if *i == gd_index {
                return Ok(SpanTable::Table(t.clone()));
            }
        }
        Ok(match self.table_offset(d, gd_index)? {
            None => SpanTable::PastEnd,
            Some(0) => SpanTable::Missing,
            Some(at) => {
                let t = self.table(gd_index, at)?;
                *current = Some((gd_index, t.clone()));
                SpanTable::Table(t)
            }
        })
    }

    fn table(&self, gd_index: u64, at: u64) -> Result<Arc<Vec<u64>>, Error> {
        if let Ok(mut c) = self.caches.tables.lock() {
            if let Some(t) = c.get(gd_index) {
                return Ok(t);
            }
        }
        // Only once the file is far and this map has already read a few tables one
        // by one: a walk of a few tables (`ls` of one directory) paid more for a
        // window's bytes than it saved in round trips (LS1 at 0.2 ms: 11.7 ms
        // against 7.4 without), a copy of a large file or a tree needs many.
        let misses = self
            .table_misses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let window = grain_batch()
            .unwrap_or_else(|| misses >= WINDOW_AFTER_MISSES && bytesource::far_reads_seen());
        if window {
            if let Some(t) = self.prefetch_tables(gd_index, at) {
                return Ok(t);
            }
        }
        let t = match self.read_table_at(at) {
            Ok(t) => t,
            Err(e) => self.redundant_table(gd_index, at, &e)?,
        };
        let t = Arc::new(t);
        if let Ok(mut c) = self.caches.tables.lock() {
            c.put(gd_index, t.clone());
        }
        Ok(t)
    }

    /// Once the file is far and [`WINDOW_AFTER_MISSES`] tables were read alone,
    /// reads grain table `gd_index` (at
    /// byte `at`) together with the other tables of its window of [`PREFETCH_TABLES`]
    /// directory entries that lie next to it in the file, in one request, and caches
    /// them all: qemu-img and VMware's hosted sparse files store the tables one after
    /// another after the directory (VMware "Virtual Disk Format 5.0", "Grain
    /// Directories and Grain Tables"), so a walk over the disk costs a few round
    /// trips instead of one per 32 MiB span. A stream whose tables sit between their
    /// grains gains nothing and loses nothing (a window of one table is not read
    /// here). `None`: not read here (the caller reads the table alone, with its
    /// redundant-copy fallback); a failed window read is not an error.
    fn prefetch_tables(&self, gd_index: u64, at: u64) -> Option<Arc<Vec<u64>>> {
        let Directory::OnDisk(d) = &self.dir else {
            return None;
        };
        let gt_bytes = u64::try_from(self.gt_bytes().ok()?).ok()?;
        // At most PREFETCH_BYTES of tables and half the table cache per window.
        let cap = self
            .caches
            .tables
            .lock()
            .ok()
            .map(|c| u64::try_from(c.cap / 2).unwrap_or(1))?;
        let window = PREFETCH_TABLES
            .min(PREFETCH_BYTES.checked_div(gt_bytes)?)
            .min(cap);
        if window < 2 {
            return None;
        }
        let first = gd_index.checked_sub(gd_index.checked_rem(window)?)?;
        // The run of tables contiguous in the file around gd_index, inside the window.
        let expect = |i: u64| -> Option<u64> {
            if i >= gd_index {
                at.checked_add(i.checked_sub(gd_index)?.checked_mul(gt_bytes)?)
            } else {
                at.checked_sub(gd_index.checked_sub(i)?.checked_mul(gt_bytes)?)
            }
        };
        let here = |i: u64| -> bool {
            match (self.dir_entry(d, i, false), expect(i)) {
                (Ok(Some(o)), Some(e)) => o == e,
                _ => false,
            }
        };
        let mut lo = gd_index;
        while lo > first && here(lo.saturating_sub(1)) {
            lo = lo.saturating_sub(1);
        }
        let end = first.saturating_add(window).min(d.count);
        let mut hi = gd_index.saturating_add(1);
        while hi < end && here(hi) {
            hi = hi.saturating_add(1);
        }
        let n = hi.checked_sub(lo)?;
        if n < 2 {
            return None;
        }
        let from = expect(lo)?;
        let len = usize::try_from(n.checked_mul(gt_bytes)?).ok()?;
        // A pooled buffer where one is free (512 KiB at most, see crate::groupbuf).
        let mut pooled = crate::groupbuf::GroupBuf::take(&crate::groupbuf::LARGE, false);
        let mut own = Vec::new();
        let buf: &mut [u8] = match pooled.as_mut().and_then(|b| b.aligned(len)) {
            Some(b) => b,
            None => {
                own.resize(len, 0u8);
                &mut own
            }
        };
        // In pieces read at once: the file may not be marked far yet (its first
        // large reads), and then one read would be one request after another.
        let ok = std::thread::scope(|scope| {
            let mut at = from;
            let mut handles = Vec::new();
            for piece in buf.chunks_mut(PREFETCH_PIECE) {
                let here = at;
                at = at.saturating_add(u64::try_from(piece.len()).unwrap_or(u64::MAX));
                handles.push(scope.spawn(move || read_file(&self.file, &self.name, here, piece)));
            }
            handles
                .into_iter()
                .all(|h| h.join().is_ok_and(|r| r.is_ok()))
        });
        if !ok {
            return None;
        }
        let mut wanted = None;
        let step = usize::try_from(gt_bytes).ok()?;
        let mut cache = self.caches.tables.lock().ok()?;
        for (i, bytes) in (lo..hi).zip(buf.chunks_exact(step)) {
            let t = Arc::new(decode_entries(bytes, self.entry_size));
            if i == gd_index {
                wanted = Some(t.clone());
            }
            cache.put(i, t);
        }
        wanted
    }

    /// The grain table at byte `at`, decoded.
    fn read_table_at(&self, at: u64) -> Result<Vec<u64>, Error> {
        let mut buf = vec![0u8; self.gt_bytes()?];
        read_file(&self.file, &self.name, at, &mut buf)?;
        Ok(decode_entries(&buf, self.entry_size))
    }

    /// Grain table `gd_index` from the redundant directory, after its primary copy
    /// at `at` failed with `e` (VMware "Virtual Disk Format 5.0": the redundant
    /// directory and tables are a full second copy). Without a usable copy, the
    /// error names the table, its byte position and what the copy said.
    fn redundant_table(&self, gd_index: u64, at: u64, e: &Error) -> Result<Vec<u64>, Error> {
        let fail = |more: String| {
            Error::corrupt(
                &self.name,
                format!("grain table {gd_index} at byte {at:#x} cannot be read: {e}{more}"),
            )
        };
        let Some(r) = &self.redundant else {
            return Err(fail(String::new()));
        };
        let r_at = match self.dir_entry(r, gd_index, true) {
            Ok(Some(a)) if a != 0 && a != at => a,
            Ok(_) => {
                return Err(fail(
                    "; the redundant grain directory has no other copy of it".into(),
                ))
            }
            Err(e2) => {
                return Err(fail(format!(
                    "; the redundant grain directory cannot be read either: {e2}"
                )))
            }
        };
        match self.read_table_at(r_at) {
            Ok(t) => {
                self.note_read_warning(format!(
                    "{}: grain table {gd_index} at byte {at:#x} cannot be read ({e}); used its redundant copy at byte {r_at:#x}",
                    self.name
                ));
                Ok(t)
            }
            Err(e2) => Err(fail(format!(
                "; its redundant copy at byte {r_at:#x} cannot be read either: {e2}"
            ))),
        }
    }

    fn decode(&self, raw: u64, grain_index: u64) -> Result<Loc, Error> {
        let bad = |what: &str| {
            Error::corrupt(
                &self.name,
                format!("grain table entry {raw:#x} for grain {grain_index}: {what}"),
            )
        };
        let at = match self.flavor {
            Flavor::Hosted { .. } | Flavor::Cowd => match raw {
                0 => return Ok(Loc::Unallocated),
                // GTE 1 marks a zeroed grain (VMware 5.0 spec, "zeroed-grain GTE");
                // sector 1 can never hold a grain, so read it as zeros whatever the flag.
                1 if matches!(self.flavor, Flavor::Hosted { .. }) => return Ok(Loc::Zero),
                s => s.checked_mul(512).ok_or_else(|| bad("offset overflows"))?,
            },
            Flavor::SeSparse { grains_offset } => match raw >> 60 {
                0 if raw == 0 => return Ok(Loc::Unallocated),
                1 | 2 => return Ok(Loc::Zero),
                3 => {
                    let n = ((raw & 0x0fff_0000_0000_0000) >> 48)
                        | ((raw & 0x0000_ffff_ffff_ffff) << 12);
                    n.checked_mul(self.grain)
                        .and_then(|b| b.checked_add(grains_offset))
                        .ok_or_else(|| bad("offset overflows"))?
                }
                _ => return Err(bad("unknown entry type")),
            },
        };
        // An uncompressed grain must lie wholly inside the file; a compressed one must
        // at least start there (its length comes from its marker).
        let need = if self.compressed() { 1 } else { self.grain };
        match at.checked_add(need) {
            Some(end) if end <= self.file.len() => Ok(Loc::At(at)),
            _ => Err(bad(&format!(
                "grain at byte {at:#x} lies past the end of the file ({} bytes)",
                self.file.len()
            ))),
        }
    }

    fn compressed(&self) -> bool {
        matches!(
            self.flavor,
            Flavor::Hosted {
                compressed: true,
                ..
            }
        )
    }

    /// Inflates the compressed grain stored at `at` (qemu `vmdk_read_extent`).
    fn inflate(&self, at: u64) -> Result<Arc<Vec<u8>>, Error> {
        if let Ok(mut c) = self.caches.grains.lock() {
            if let Some(g) = c.get(at) {
                return Ok(g);
            }
        }
        let markers = matches!(self.flavor, Flavor::Hosted { markers: true, .. });
        if let Some(g) = self.inflate_windowed(at)? {
            let g = Arc::new(g);
            if let Ok(mut c) = self.caches.grains.lock() {
                c.put(at, g.clone());
            }
            return Ok(g);
        }
        let file_len = self.file.len();
        let limit = self.grain.saturating_mul(2);
        // Where reads are slow, the marker and (nearly always) the whole stored grain
        // come in one request: at most a grain and a sector, which a grain that
        // deflate could not shrink still fits (stored blocks add 5 bytes per 64 KiB).
        let mut head = Vec::new();
        let (data_at, data_len) = if markers {
            // Grain marker: lba u64, size u32, then `size` bytes of zlib data.
            let mut m = [0u8; 12];
            if grain_batch().unwrap_or_else(bytesource::parallel_reads_pay) {
                let want = self
                    .grain
                    .saturating_add(512)
                    .min(file_len.saturating_sub(at));
                if let Ok(want) = usize::try_from(want) {
                    if want >= 12 {
                        head = vec![0u8; want];
                        // Failed (a bad sector past the grain?): the exact reads
                        // below, with their own errors.
                        if read_file(&self.file, &self.name, at, &mut head).is_err() {
                            head.clear();
                        }
                    }
                }
            }
            match head.get(..12) {
                Some(h) => m.copy_from_slice(h),
                None => read_file(&self.file, &self.name, at, &mut m)?,
            }
            let size = u64::from(crate::error::need(
                field::le_u32(&m, 8),
                &self.name,
                "grain marker",
                at,
                8,
            )?);
            if size == 0 || size > limit {
                return Err(Error::corrupt(
                    &self.name,
                    format!(
                        "grain marker at byte {at:#x} gives compressed size {size} (grain is {} bytes)",
                        self.grain
                    ),
                ));
            }
            let data_at = at
                .checked_add(12)
                .ok_or_else(|| Error::corrupt(&self.name, "grain offset overflows"))?;
            (data_at, size)
        } else {
            (at, limit.min(file_len.saturating_sub(at)))
        };
        match data_at.checked_add(data_len) {
            Some(end) if end <= file_len => {}
            _ => {
                return Err(Error::corrupt(
                    &self.name,
                    format!("compressed grain at byte {at:#x} runs past the end of the file"),
                ))
            }
        }
        let n =
            usize::try_from(data_len).map_err(|_| Error::corrupt(&self.name, "grain too large"))?;
        let in_head = 12usize.checked_add(n).and_then(|end| head.get(12..end));
        let g = match in_head {
            Some(packed) if markers => Arc::new(self.inflate_packed(at, packed)?),
            _ => {
                let mut packed = vec![0u8; n];
                read_file(&self.file, &self.name, data_at, &mut packed)?;
                Arc::new(self.inflate_packed(at, &packed)?)
            }
        };
        if let Ok(mut c) = self.caches.grains.lock() {
            c.put(at, g.clone());
        }
        Ok(g)
    }

    /// Whether lone compressed grains are read in windows ([`Self::inflate_windowed`]):
    /// stream grains with markers, small enough that a window holds one whatever
    /// it compresses to, where the file is far (or `VMDKRECOVER_GRAIN_BATCH=1`).
    fn windows_pay(&self) -> bool {
        matches!(
            self.flavor,
            Flavor::Hosted {
                compressed: true,
                markers: true
            }
        ) && self.grain.saturating_add(ALIGN + 512) <= Ahead::WINDOW
            && grain_batch().unwrap_or_else(bytesource::far_reads_seen)
    }

    /// A kept window of stored grains that holds the whole grain whose marker is at
    /// `at` (marker and zlib data of a size [`Self::inflate`] accepts).
    fn window_holding(&self, at: u64) -> Option<Arc<Ahead>> {
        let limit = self.grain.saturating_mul(2);
        self.caches
            .raw
            .lock()
            .ok()?
            .find(|w| w.packed(at, limit).is_some())
    }

    /// Where the file is far, the grain whose marker is at `at`, inflated from a
    /// window of the stored grains around it: a kept one that holds it, else one
    /// read now from `at` ([`Ahead::WINDOW`] bytes, one request). A stream keeps
    /// its grains in the order of the disk and those of file system metadata
    /// compress to a few hundred bytes, so the partition table, the LVM label and
    /// metadata and a file system's first blocks, each a lone read one after
    /// another at open, mostly come from one or two windows (LT1 behind 1 ms per
    /// request: ten requests to five, with the table window of
    /// [`GrainMap::seed`]). `None`: not read here (the caller reads the grain as
    /// before, with its own checks and errors); a failed window read is not an
    /// error.
    fn inflate_windowed(&self, at: u64) -> Result<Option<Vec<u8>>, Error> {
        if !self.windows_pay() {
            return Ok(None);
        }
        let limit = self.grain.saturating_mul(2);
        let w = match self.window_holding(at) {
            Some(w) => w,
            None => {
                let Some(w) = Ahead::read(&self.file, &self.name, at, Ahead::WINDOW) else {
                    return Ok(None);
                };
                let w = Arc::new(w);
                if let Ok(mut c) = self.caches.raw.lock() {
                    c.put(w.at, w.clone());
                }
                w
            }
        };
        match w.packed(at, limit) {
            Some(packed) => self.inflate_packed(at, packed).map(Some),
            None => Ok(None),
        }
    }

    /// Caches what `ahead` (read at open from the grain directory on) holds of the
    /// directory's first piece and of the grain tables it locates, at most half
    /// the table cache: qemu-img and VMware store the tables right after the
    /// directory (VMware "Virtual Disk Format 5.0", "Grain Directories and Grain
    /// Tables"), so the tables of the disk's first gigabytes (partition table,
    /// LVM label and metadata, the first file system's own metadata) come with the
    /// directory in its one request instead of one request each later.
    pub(crate) fn seed(&self, ahead: &Ahead) {
        let Directory::OnDisk(d) = &self.dir else {
            return;
        };
        let n = d.count.min(d.per_chunk());
        let Some(piece) = n
            .checked_mul(d.entry_size)
            .and_then(|len| ahead.get(d.at, len))
        else {
            return;
        };
        let Ok(gt_bytes) = self
            .gt_bytes()
            .map(|b| u64::try_from(b).unwrap_or(u64::MAX))
        else {
            return;
        };
        let piece = Arc::new(piece.to_vec());
        if let Ok(mut c) = self.caches.dir_chunks.lock() {
            c.put(0, piece.clone());
        }
        let Ok(mut tables) = self.caches.tables.lock() else {
            return;
        };
        let cap = tables.cap / 2;
        let mut seeded = 0usize;
        let step = usize::try_from(d.entry_size).unwrap_or(4);
        for (i, e) in (0u64..).zip(piece.chunks_exact(step)) {
            if seeded >= cap {
                break;
            }
            let Ok(at) = d.decode(&self.name, self.file.len(), i, le(e, d.entry_size)) else {
                continue;
            };
            if at == 0 {
                continue;
            }
            if let Some(b) = ahead.get(at, gt_bytes) {
                tables.put(i, Arc::new(decode_entries(b, self.entry_size)));
                seeded = seeded.saturating_add(1);
            }
        }
    }

    /// Inflates the zlib data `packed` of the compressed grain stored at `at`: at
    /// most one grain of output, more is an error.
    fn inflate_packed(&self, at: u64, packed: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(usize::try_from(self.grain).unwrap_or(0));
        flate2::read::ZlibDecoder::new(packed)
            .take(self.grain.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| {
                Error::corrupt(
                    &self.name,
                    format!("compressed grain at byte {at:#x} does not inflate: {e}"),
                )
            })?;
        if u64::try_from(out.len()).unwrap_or(u64::MAX) > self.grain {
            return Err(Error::corrupt(
                &self.name,
                format!(
                    "compressed grain at byte {at:#x} inflates to more than the grain size ({} bytes)",
                    self.grain
                ),
            ));
        }
        Ok(out)
    }

    /// Inflates the zlib data `packed` of the compressed grain stored at `at` into
    /// `buf`, one whole grain: the same checks as [`Self::inflate_packed`] followed
    /// by [`Self::copy_out`], without the grain's own buffer.
    fn inflate_into(&self, at: u64, packed: &[u8], buf: &mut [u8]) -> Result<(), Error> {
        let bad = |e: std::io::Error| {
            Error::corrupt(
                &self.name,
                format!("compressed grain at byte {at:#x} does not inflate: {e}"),
            )
        };
        let mut z = flate2::read::ZlibDecoder::new(packed);
        let mut got = 0usize;
        // Each read either fills more of buf or ends the stream: bounded by buf.
        while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
            match z.read(rest).map_err(bad)? {
                0 => break,
                k => got = got.saturating_add(k),
            }
        }
        let mut one = [0u8; 1];
        if got == buf.len() && z.read(&mut one).map_err(bad)? != 0 {
            return Err(Error::corrupt(
                &self.name,
                format!(
                    "compressed grain at byte {at:#x} inflates to more than the grain size ({} bytes)",
                    self.grain
                ),
            ));
        }
        if got < buf.len() {
            return Err(Error::corrupt(
                &self.name,
                format!("compressed grain at byte {at:#x} inflates to only {got} bytes"),
            ));
        }
        Ok(())
    }

    /// Copies bytes `within..` of the inflated grain `g` (stored at `at`) into `buf`.
    fn copy_out(&self, at: u64, g: &[u8], within: u64, buf: &mut [u8]) -> Result<(), Error> {
        let start = usize::try_from(within).unwrap_or(usize::MAX);
        let src = start
            .checked_add(buf.len())
            .and_then(|end| g.get(start..end))
            .ok_or_else(|| {
                Error::corrupt(
                    &self.name,
                    format!(
                        "compressed grain at byte {at:#x} inflates to only {} bytes",
                        g.len()
                    ),
                )
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }

    /// Reads a run of compressed grains (stream-optimized, with grain markers)
    /// together: the stored grains of each group that lies close together in the
    /// file are read in one request (which the byte source splits into parallel
    /// pieces, `O_DIRECT` once the file is far), at most [`GROUP_BYTES`] at a time,
    /// and inflated by up to [`INFLATE_THREADS`] threads, each into its own pieces
    /// of the caller's buffer. A grain whose marker or data does not lie inside its
    /// group's bytes (a hostile size, grains out of order) is read alone as before,
    /// so the errors are the same. Pieces that cover only part of a grain go
    /// through the grain cache, for the reads of the rest of it that follow.
    fn read_compressed_batch(&self, pieces: &mut [(Piece, &mut [u8])]) -> Result<(), Error> {
        // The most one stored grain can occupy: marker, at most 2 grains of zlib
        // data (the limit inflate() puts on a marker's size), to the next sector.
        let stored_max = self
            .grain
            .saturating_mul(2)
            .saturating_add(12)
            .next_multiple_of(512);
        let file_len = self.file.len();
        let mut done = 0usize;
        while done < pieces.len() {
            let rest = pieces.get_mut(done..).unwrap_or_default();
            // The group: pieces in order whose grains follow each other closely.
            let mut first_at = None;
            let mut last_at = 0u64;
            let mut n = 0usize;
            for (p, _) in rest.iter() {
                let Piece::Compressed { at, .. } = *p else {
                    break;
                };
                match first_at {
                    None => first_at = Some(at),
                    Some(f) => {
                        let close = at > last_at && at.saturating_sub(last_at) <= stored_max;
                        let fits = at.saturating_sub(f).saturating_add(stored_max) <= GROUP_BYTES;
                        if !close || !fits {
                            break;
                        }
                    }
                }
                last_at = at;
                n = n.saturating_add(1);
            }
            let Some(first_at) = first_at else {
                // Not a compressed piece: read it the ordinary way.
                if let Some((p, b)) = rest.first_mut() {
                    self.read_piece(*p, b)?;
                }
                done = done.saturating_add(1);
                continue;
            };
            let group = rest.get_mut(..n).unwrap_or_default();
            let threads = if grain_batch().unwrap_or_else(bytesource::parallel_reads_pay) {
                inflate_threads(group.len())
            } else {
                1
            };
            // A kept window that holds every grain of the group: no read.
            if self.windows_pay() {
                let limit = self.grain.saturating_mul(2);
                let holds = |w: &Arc<Ahead>| {
                    group.iter().all(|(p, _)| match *p {
                        Piece::Compressed { at, .. } => w.packed(at, limit).is_some(),
                        _ => false,
                    })
                };
                let w = self.caches.raw.lock().ok().and_then(|mut c| c.find(holds));
                if let Some(w) = w {
                    self.inflate_group(group, w.at, w.bytes(), threads)?;
                    done = done.saturating_add(n);
                    continue;
                }
            }
            // Page-aligned start, length and buffer where the file allows, so that
            // a far file's split reads can go O_DIRECT (bytesource::FileSource).
            let start = first_at.saturating_sub(first_at % ALIGN);
            let end = last_at
                .saturating_add(stored_max)
                .next_multiple_of(ALIGN)
                .min(file_len);
            let len = usize::try_from(end.saturating_sub(start))
                .map_err(|_| Error::corrupt(&self.name, "grain group too large"))?;
            // A pooled buffer (kept from one read to the next, see crate::groupbuf):
            // a large group waits for one, a small one takes one if one is free
            // and otherwise holds its own for this read; so does a lone grain
            // too large for a pooled buffer (grains over 1 MiB).
            let mut pooled = crate::groupbuf::GroupBuf::for_group(len);
            let mut own = Vec::new();
            let bytes = match pooled.as_mut().and_then(|b| b.aligned(len)) {
                Some(b) => b,
                None => {
                    own.resize(len.saturating_add(ALIGN_USIZE), 0u8);
                    let skip = own.as_ptr().align_offset(ALIGN_USIZE).min(ALIGN_USIZE);
                    own.get_mut(skip..skip.saturating_add(len))
                        .ok_or_else(|| Error::corrupt(&self.name, "internal: grain group buffer"))?
                }
            };
            read_file(&self.file, &self.name, start, bytes)?;
            let bytes: &[u8] = bytes;
            let result = self.inflate_group(group, start, bytes, threads);
            result?;
            done = done.saturating_add(n);
        }
        Ok(())
    }

    /// Inflates the grains of `group` from `bytes` (the file's bytes from `start`)
    /// on `threads` threads, each into its own pieces of the caller's buffer.
    fn inflate_group(
        &self,
        group: &mut [(Piece, &mut [u8])],
        start: u64,
        bytes: &[u8],
        threads: usize,
    ) -> Result<(), Error> {
        {
            if threads < 2 {
                for (p, b) in group.iter_mut() {
                    self.inflate_from(*p, b, start, bytes)?;
                }
            } else {
                let per = group.len().div_ceil(threads);
                std::thread::scope(|scope| {
                    let mut handles = Vec::new();
                    let mut chunks = group.chunks_mut(per.max(1));
                    let mine = chunks.next();
                    for c in chunks {
                        handles.push(scope.spawn(move || -> Result<(), Error> {
                            for (p, b) in c.iter_mut() {
                                self.inflate_from(*p, b, start, bytes)?;
                            }
                            Ok(())
                        }));
                    }
                    let mut result = Ok(());
                    for (p, b) in mine.into_iter().flatten() {
                        result = self.inflate_from(*p, b, start, bytes);
                        if result.is_err() {
                            break;
                        }
                    }
                    for h in handles {
                        let r = h.join().unwrap_or_else(|_| {
                            Err(Error::corrupt(&self.name, "an inflating thread panicked"))
                        });
                        if result.is_ok() {
                            result = r;
                        }
                    }
                    result
                })?;
            }
        }
        Ok(())
    }

    /// Inflates the grain of `piece` from `bytes` (the file's bytes from `start`)
    /// into `buf`; a grain not wholly inside `bytes` is read alone ([`Self::inflate`]).
    fn inflate_from(
        &self,
        piece: Piece,
        buf: &mut [u8],
        start: u64,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let Piece::Compressed { at, within } = piece else {
            return self.read_piece(piece, buf);
        };
        let whole = within == 0 && u64::try_from(buf.len()).ok() == Some(self.grain);
        if !whole {
            if let Ok(mut c) = self.caches.grains.lock() {
                if let Some(g) = c.get(at) {
                    return self.copy_out(at, &g, within, buf);
                }
            }
        }
        let packed = at
            .checked_sub(start)
            .and_then(|o| usize::try_from(o).ok())
            .and_then(|o| {
                let m = bytes.get(o..o.checked_add(12)?)?;
                let size = usize::try_from(field::le_u32(m, 8)?).ok()?;
                let limit = usize::try_from(self.grain.saturating_mul(2)).ok()?;
                if size == 0 || size > limit {
                    return None;
                }
                let from = o.checked_add(12)?;
                bytes.get(from..from.checked_add(size)?)
            });
        let Some(packed) = packed else {
            // Outside the group, or a marker inflate() refuses: its own read and
            // its own error.
            return self.read_piece(piece, buf);
        };
        if whole {
            return self.inflate_into(at, packed, buf);
        }
        let g = self.inflate_packed(at, packed)?;
        self.copy_out(at, &g, within, buf)?;
        {
            if let Ok(mut c) = self.caches.grains.lock() {
                c.put(at, Arc::new(g));
            }
        }
        Ok(())
    }
}

/// Tables a map reads one by one before it reads windows of them (where far).
const WINDOW_AFTER_MISSES: u32 = 4;
/// Directory entries per grain table prefetch window ([`GrainMap::prefetch_tables`];
/// also at most half the table cache).
const PREFETCH_TABLES: u64 = 512;
/// Most bytes of grain tables read in one prefetch (256 tables of VMware's 512
/// entries: all of an 8 GiB disk's)...
const PREFETCH_BYTES: u64 = 512 * 1024;
/// ...in pieces of this size read at once (a FUSE request's 128 KiB).
const PREFETCH_PIECE: usize = 128 * 1024;
/// Most bytes of stored grains read in one request by a compressed batch: the size
/// of a pooled buffer ([`crate::groupbuf`]), a far copy's 4 MiB read in grains
/// that barely compress (the request is split into parallel pieces below).
const GROUP_BYTES: u64 = crate::groupbuf::GROUP_BYTES;
/// Alignment of a group read (the page size: what `O_DIRECT` asks).
pub(crate) const ALIGN: u64 = 4096;
const ALIGN_USIZE: usize = 4096;
/// Most threads inflating one batch.
const INFLATE_THREADS: usize = 4;
/// Whole grains per inflating thread at least (fewer: not worth a thread).
const GRAINS_PER_THREAD: usize = 4;

/// Threads to inflate `grains` grains with: one per [`GRAINS_PER_THREAD`], at most
/// the CPUs and [`INFLATE_THREADS`].
fn inflate_threads(grains: usize) -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cpus = *CPUS.get_or_init(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    (grains / GRAINS_PER_THREAD).clamp(1, cpus.clamp(1, INFLATE_THREADS))
}

/// `VMDKRECOVER_GRAIN_BATCH`: `1` takes the batched paths (table windows, grouped
/// compressed grains inflated by several threads, a single grain's marker and data
/// in one read) even where reads are fast, `0` never (tests and A/B runs); unset:
/// table windows once a file is far ([`bytesource::far_reads_seen`]) and a few
/// tables were read alone, inflating
/// threads and one-read grains where reads are slow
/// ([`bytesource::parallel_reads_pay`]), grouped grains always.
fn grain_batch() -> Option<bool> {
    static V: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();
    *V.get_or_init(
        || match std::env::var("VMDKRECOVER_GRAIN_BATCH").as_deref() {
            Ok("1") => Some(true),
            Ok("0") => Some(false),
            _ => None,
        },
    )
}

/// Whether a run mapped so far (`first`, `run` bytes) continues with `next`.
fn continues(first: Piece, run: u64, next: Piece) -> bool {
    match (first, next) {
        (Piece::Data(a), Piece::Data(b)) => a.checked_add(run) == Some(b),
        (Piece::Zero, Piece::Zero) | (Piece::Unallocated, Piece::Unallocated) => true,
        _ => false,
    }
}

impl Extent for GrainMap {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_warnings(&self) -> Vec<String> {
        self.read_warnings
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    fn map(&self, offset: u64, max: u64) -> Result<(u64, Piece), Error> {
        let end = offset.saturating_add(max).min(self.len);
        let span = self
            .grain
            .checked_mul(self.gt_entries)
            .ok_or_else(|| Error::corrupt(&self.name, "grain table span overflows"))?;
        let internal = || Error::corrupt(&self.name, "internal: grain arithmetic");
        let mut pos = offset;
        let mut first: Option<Piece> = None;
        let mut run = 0u64;
        // The table of the span being walked, so a run through one table locks the
        // caches once, not once per grain.
        let mut current: Option<(u64, Arc<Vec<u64>>)> = None;
        // Each step advances at least one byte toward `end`, at most one grain table
        // span at a time through missing tables: the loop is bounded by `max`.
        while pos < end {
            // grain and span are non-zero (checked at open), so checked_* never fail.
            let gi = pos.checked_div(self.grain).ok_or_else(internal)?;
            let within = pos.checked_rem(self.grain).ok_or_else(internal)?;
            let gd_index = pos.checked_div(span).ok_or_else(internal)?;
            let left = end.saturating_sub(pos);
            let mut take = self.grain.saturating_sub(within).min(left);
            let piece = match &self.dir {
                Directory::Scanned(grains) => match grains.get(&gi) {
                    Some(&sector) => {
                        // The sector of a marker the scan found inside the file (not
                        // a GTE: sector 1 is a real marker here, not "zeroed").
                        let g = sector
                            .checked_mul(512)
                            .ok_or_else(|| Error::corrupt(&self.name, "grain offset overflows"))?;
                        if first.is_none() {
                            return Ok((take, Piece::Compressed { at: g, within }));
                        }
                        break;
                    }
                    None => {
                        // Unallocated up to the next grain the stream holds.
                        let next = gi
                            .checked_add(1)
                            .and_then(|n| grains.range(n..).next())
                            .and_then(|(&g, _)| g.checked_mul(self.grain))
                            .unwrap_or(u64::MAX);
                        take = next.min(end).saturating_sub(pos);
                        Piece::Unallocated
                    }
                },
                Directory::OnDisk(d) => match self.span_table(d, gd_index, &mut current)? {
                    SpanTable::PastEnd => {
                        // Past the directory: the rest of the extent is unallocated.
                        take = left;
                        Piece::Unallocated
                    }
                    SpanTable::Missing => {
                        // No table: the whole span is unallocated.
                        let span_end = gd_index
                            .checked_add(1)
                            .and_then(|n| n.checked_mul(span))
                            .unwrap_or(u64::MAX);
                        take = span_end.min(end).saturating_sub(pos);
                        Piece::Unallocated
                    }
                    SpanTable::Table(t) => {
                        let ti = gi.checked_rem(self.gt_entries).ok_or_else(internal)?;
                        let raw = t
                            .get(usize::try_from(ti).unwrap_or(usize::MAX))
                            .copied()
                            .unwrap_or(0);
                        match self.decode(raw, gi)? {
                            Loc::Unallocated => Piece::Unallocated,
                            Loc::Zero => Piece::Zero,
                            Loc::At(g) if self.compressed() => {
                                if first.is_none() {
                                    return Ok((take, Piece::Compressed { at: g, within }));
                                }
                                break;
                            }
                            Loc::At(g) => Piece::Data(g.checked_add(within).ok_or_else(|| {
                                Error::corrupt(&self.name, "grain offset overflows")
                            })?),
                        }
                    }
                },
            };
            match first {
                None => first = Some(piece),
                Some(f) if continues(f, run, piece) => {}
                Some(_) => break,
            }
            if take == 0 {
                return Err(internal());
            }
            run = run.saturating_add(take);
            pos = pos.saturating_add(take);
        }
        match first {
            Some(p) if run > 0 => Ok((run, p)),
            _ => Err(Error::corrupt(
                &self.name,
                format!("internal: empty mapping at {offset}"),
            )),
        }
    }

    fn read_piece(&self, piece: Piece, buf: &mut [u8]) -> Result<(), Error> {
        match piece {
            Piece::Data(at) => read_file(&self.file, &self.name, at, buf),
            Piece::Compressed { at, within } => {
                let g = self.inflate(at)?;
                self.copy_out(at, &g, within, buf)
            }
            Piece::Zero | Piece::Unallocated => {
                buf.fill(0);
                Ok(())
            }
        }
    }

    /// An uncompressed grain's bytes are stored as they are in the extent file.
    fn host_range(&self, piece: Piece, len: u64) -> Option<bytesource::HostRange<'_>> {
        match piece {
            Piece::Data(at) => self.file.host_range(at, len),
            _ => None,
        }
    }

    fn read_pieces(&self, pieces: &mut [(Piece, &mut [u8])]) -> Result<(), Error> {
        let grouped = matches!(
            self.flavor,
            Flavor::Hosted {
                compressed: true,
                markers: true
            }
        ) && pieces.len() > 1
            && grain_batch() != Some(false);
        if grouped {
            return self.read_compressed_batch(pieces);
        }
        for (p, b) in pieces.iter_mut() {
            self.read_piece(*p, b)?;
        }
        Ok(())
    }
}

/// Bytes of an extent file read ahead in one request, from a page boundary: at
/// open, the grain directory with the tables stored after it ([`GrainMap::seed`]);
/// later, the stored grains around a lone compressed grain
/// ([`GrainMap::inflate_windowed`]).
pub(crate) struct Ahead {
    /// File byte of `bytes()[0]`.
    at: u64,
    raw: Vec<u8>,
    skip: usize,
    len: usize,
}

impl Ahead {
    /// Bytes of one window: 31 pages, under the 128 KiB of one FUSE request and of
    /// the kernel's largest readahead window, so a cold buffered read of it is one
    /// request that does not also start reading ahead past it (measured behind
    /// nbdfuse: a read of the whole 128 KiB window made the kernel read the next
    /// 128 KiB too, in a request that the next read waited for).
    pub(crate) const WINDOW: u64 = 124 * 1024;

    /// Reads `len` bytes from `at` rounded down to a page (at most to the end of
    /// the file), in one read: the window holds at least `len - 4095` bytes from
    /// `at`. `None` when the read fails or is empty: callers then read what they
    /// need themselves, with its own error.
    pub(crate) fn read(file: &SharedSource, name: &str, at: u64, len: u64) -> Option<Self> {
        let start = at.checked_sub(at.checked_rem(ALIGN)?)?;
        let end = start.checked_add(len)?.min(file.len());
        let n = usize::try_from(end.checked_sub(start)?).ok()?;
        if n == 0 {
            return None;
        }
        // Page-aligned buffer, as the byte source's O_DIRECT reads want.
        let mut raw = vec![0u8; n.checked_add(ALIGN_USIZE)?];
        let skip = raw.as_ptr().align_offset(ALIGN_USIZE).min(ALIGN_USIZE);
        let buf = raw.get_mut(skip..skip.checked_add(n)?)?;
        read_file(file, name, start, buf).ok()?;
        Some(Self {
            at: start,
            raw,
            skip,
            len: n,
        })
    }

    fn bytes(&self) -> &[u8] {
        self.raw
            .get(self.skip..self.skip.saturating_add(self.len))
            .unwrap_or_default()
    }

    /// The `len` file bytes at `at`, when the window holds all of them.
    pub(crate) fn get(&self, at: u64, len: u64) -> Option<&[u8]> {
        let o = usize::try_from(at.checked_sub(self.at)?).ok()?;
        let n = usize::try_from(len).ok()?;
        self.bytes().get(o..o.checked_add(n)?)
    }

    /// The zlib data of the compressed grain whose marker (lba u64, size u32) is at
    /// `at`, when the window holds marker and data and the size is 1..=`limit`.
    fn packed(&self, at: u64, limit: u64) -> Option<&[u8]> {
        let m = self.get(at, 12)?;
        let size = u64::from(field::le_u32(m, 8)?);
        if size == 0 || size > limit {
            return None;
        }
        self.get(at.checked_add(12)?, size)
    }
}

/// Whether the grain directory is read at open together with what follows it
/// ([`Ahead`], [`GrainMap::seed`]): where some input file is far, or with
/// `VMDKRECOVER_GRAIN_BATCH=1`.
pub(crate) fn read_ahead_at_open() -> bool {
    grain_batch().unwrap_or_else(bytesource::far_reads_seen)
}

/// Largest grain directory read (qemu caps its L1 table at 32 Mi entries).
pub(crate) const MAX_GD_ENTRIES: u64 = 32 * 1024 * 1024;

/// Checks a grain directory of `count` entries of `entry_size` bytes at byte `at`: it
/// must lie inside the file (so a hostile count is capped by the file size) and every
/// entry must locate a table of `table_bytes` inside the file. The directory is read
/// in [`DIR_CHUNK_BYTES`] pieces and not kept, so memory stays bounded; pieces that
/// `ahead` holds are taken from it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn open_dir(
    file: &SharedSource,
    name: &str,
    what: &str,
    at: u64,
    count: u64,
    entry_size: u64,
    encoding: DirEncoding,
    table_bytes: u64,
    ahead: Option<&Ahead>,
) -> Result<Dir, Error> {
    if count > MAX_GD_ENTRIES {
        return Err(Error::corrupt(
            name,
            format!("{what} of {count} entries is larger than the {MAX_GD_ENTRIES} entry limit"),
        ));
    }
    let bytes = count
        .checked_mul(entry_size)
        .ok_or_else(|| Error::corrupt(name, format!("{what} size overflows")))?;
    match at.checked_add(bytes) {
        Some(end) if end <= file.len() => {}
        _ => {
            return Err(Error::corrupt(
                name,
                format!(
                "{what} ({count} entries at byte {at:#x}) lies past the end of the file ({} bytes)",
                file.len()
            ),
            ))
        }
    }
    let d = Dir {
        at,
        count,
        entry_size,
        encoding,
        table_bytes,
    };
    let per_chunk = d.per_chunk();
    let chunks = count.div_ceil(per_chunk);
    for c in 0..chunks {
        let buf = match ahead.and_then(|a| d.chunk_span(c).and_then(|(at, n)| a.get(at, n))) {
            Some(b) => b.to_vec(),
            None => d.read_chunk(file, name, c)?,
        };
        let first = c.saturating_mul(per_chunk);
        for (i, e) in buf
            .chunks_exact(usize::try_from(entry_size).unwrap_or(4))
            .enumerate()
        {
            let i = first.saturating_add(u64::try_from(i).unwrap_or(u64::MAX));
            d.decode(name, file.len(), i, le(e, entry_size))?;
        }
    }
    Ok(d)
}

impl Dir {
    /// Entries in one directory piece (entry_size is 4 or 8).
    fn per_chunk(&self) -> u64 {
        DIR_CHUNK_BYTES
            .checked_div(self.entry_size)
            .unwrap_or(DIR_CHUNK_BYTES)
            .max(1)
    }

    /// File byte and length of directory piece `chunk_no`.
    fn chunk_span(&self, chunk_no: u64) -> Option<(u64, u64)> {
        let per_chunk = self.per_chunk();
        let first = chunk_no.checked_mul(per_chunk)?;
        let n = self.count.saturating_sub(first).min(per_chunk);
        let at = first.checked_mul(self.entry_size)?.checked_add(self.at)?;
        Some((at, n.checked_mul(self.entry_size)?))
    }

    /// Reads directory piece `chunk_no` (the last one may be short).
    fn read_chunk(&self, file: &SharedSource, name: &str, chunk_no: u64) -> Result<Vec<u8>, Error> {
        let per_chunk = self.per_chunk();
        let first = chunk_no.saturating_mul(per_chunk);
        let n = self.count.saturating_sub(first).min(per_chunk);
        let at = first
            .checked_mul(self.entry_size)
            .and_then(|o| o.checked_add(self.at))
            .ok_or_else(|| Error::corrupt(name, "grain directory offset overflows"))?;
        let len = usize::try_from(n.saturating_mul(self.entry_size))
            .map_err(|_| Error::corrupt(name, "grain directory too large"))?;
        let mut buf = vec![0u8; len];
        file.read_at(at, &mut buf).map_err(|e| {
            Error::io(
                name,
                std::io::Error::new(
                    e.kind(),
                    format!("grain directory at byte {at:#x} cannot be read: {e}"),
                ),
            )
        })?;
        Ok(buf)
    }

    /// Decodes entry `i` into a table byte offset (0 = no table), checking that the
    /// table lies inside a file of `file_len` bytes.
    fn decode(&self, name: &str, file_len: u64, i: u64, e: u64) -> Result<u64, Error> {
        if e == 0 {
            return Ok(0);
        }
        let at = match self.encoding {
            DirEncoding::Sector => e.checked_mul(512),
            DirEncoding::SeSparse { tables_at } => {
                if e & 0xffff_ffff_0000_0000 != 0x1000_0000_0000_0000 {
                    return Err(Error::corrupt(
                        name,
                        format!(
                            "SESparse grain directory entry {i} is {e:#x} (not a table reference)"
                        ),
                    ));
                }
                (e & 0xffff_ffff)
                    .checked_mul(self.table_bytes)
                    .and_then(|o| o.checked_add(tables_at))
            }
        };
        match at.and_then(|a| a.checked_add(self.table_bytes).map(|end| (a, end))) {
            Some((a, end)) if end <= file_len => Ok(a),
            _ => Err(Error::corrupt(
                name,
                format!(
                    "grain directory entry {i} ({e:#x}) points to a grain table past the end of the file ({file_len} bytes)"
                ),
            )),
        }
    }
}
