//! Read-only XFS reader (V4 and V5) behind the [`fsapi::Filesystem`] interface.
//!
//! What it reads, following the kernel's "XFS Algorithms & Data Structures"
//! (Documentation/filesystems/xfs/) and fs/xfs/libxfs/*.h: the superblock (V4 and
//! V5 with CRC), inodes v1/v2/v3 (classic and bigtime timestamps, nrext64
//! counters), data and attribute forks in local, extent and B+tree form,
//! directories in every form (shortform, block, leaf, node, B+tree; with and
//! without ftype), local and remote symlinks, extended attributes in every fork
//! form with remote values, POSIX ACLs converted to the generic xattr form, and
//! the AG headers (checked for `info`). Shared (reflinked) extents are read like
//! any other. V5 CRC mismatches are warnings that name the object; reading goes on.
//!
//! What it does not: write anything, read the realtime device (realtime files are
//! refused by name, their metadata still reads), read an external log, or replay
//! the log itself (module [`log`] does that in memory when asked).

#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

mod acl;
mod ag;
mod attr;
mod bmap;
mod bytes;
mod cache;
mod crc;
mod dir;
mod inode;
pub mod log;
mod superblock;
mod symlink;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use bytesource::{ByteSource, HostRange, SharedSource};
use fsapi::{
    DirEntry, Error, FileRun, FileType, FsInfo, Ino, Metadata, OpenOptions, Warnings, Xattr,
};

use crate::bytes::{us, us64, uuid_string};
use crate::cache::BlockCache;
use crate::inode::{Fork, Inode, FMT_BTREE, FMT_EXTENTS, FMT_LOCAL};
use crate::superblock::{Superblock, SB_MAGIC};

/// Files whose runs are kept between calls (so `read_at` in pieces does not walk
/// a bmbt again each time).
const RUN_CACHE_FILES: usize = 64;
/// Decoded inodes kept (about 200 bytes each): `ls -l` decodes each entry's inode
/// for its metadata, then again for its attributes (the ACL marker) and its link
/// target; each decode checks the inode's CRC, which cost a local `ls -l /etc` a
/// tenth of its instructions. Enough for the entries of a directory like `/etc`
/// (137 entries on the benchmark disk): 4096 inodes (about 3 MiB of small blocks
/// spread over the malloc arenas, emptied at once when full) took a far copy of
/// `/usr/share` (XL3) to a median peak RSS of 51 MiB against 47 with 256 (4
/// interleaved runs each, same time), and `ls -l /etc` was no faster with them
/// (2.2-2.3 ms, hyperfine).
const INODE_CACHE: usize = 256;
/// Bytes of one inode read-ahead span of [`Filesystem::prefetch_inodes`] (an inode
/// chunk of 64 inodes of 512 bytes; chunks are aligned to their size, xfs_ialloc.c).
const INODE_PREFETCH_BYTES: u64 = 32 << 10;
/// Spans one prefetch reads at most (1 MiB, a quarter of the block cache).
const INODE_PREFETCH_SPANS: usize = 32;
/// Requests in flight during a prefetch.
const INODE_PREFETCH_IN_FLIGHT: usize = 8;
/// Largest run list kept in that cache (64 files of at most 2 MiB each).
const RUN_CACHE_MAX_RUNS: usize = 1 << 16;

/// An open XFS filesystem.
pub struct Filesystem {
    dev: SharedSource,
    sb: Superblock,
    cache: Mutex<BlockCache>,
    runs: Mutex<HashMap<u64, Arc<Vec<FileRun>>>>,
    /// Inodes decoded lately ([`INODE_CACHE`]); emptied when full.
    inodes: Mutex<HashMap<u64, Inode>>,
    warnings: Warnings,
    info: FsInfo,
}

impl fmt::Debug for Filesystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("xfs::Filesystem")
            .field("uuid", &self.info.uuid)
            .field("label", &self.info.label)
            .finish_non_exhaustive()
    }
}

fn read_sb(dev: &dyn ByteSource) -> Result<Superblock, Error> {
    let mut first = [0u8; 512];
    dev.read_at(0, &mut first)
        .map_err(|e| Error::io("XFS superblock", 0, e))?;
    let sb = Superblock::parse(&first)?;
    // Read the whole sector for the V5 CRC, which covers sb_sectsize bytes.
    let mut sect = vec![0u8; usize::from(sb.sect_size)];
    dev.read_at(0, &mut sect)
        .map_err(|e| Error::io("XFS superblock", 0, e))?;
    Superblock::parse(&sect)
}

impl Filesystem {
    /// True when `dev` starts with an XFS superblock ("XFSB", version 4 or 5).
    pub fn probe(dev: &dyn ByteSource) -> bool {
        let mut b = [0u8; 104];
        if dev.read_at(0, &mut b).is_err() {
            return false;
        }
        let version = bytesource::field::be_u16(&b, 100).unwrap_or(0) & 0xf;
        bytesource::field::be_u32(&b, 0) == Some(SB_MAGIC) && (version == 4 || version == 5)
    }

    /// Opens the XFS filesystem on `dev`, replaying a dirty internal log in memory
    /// when `opts.replay_journal` is set.
    pub fn open(dev: SharedSource, opts: &OpenOptions) -> Result<Filesystem, Error> {
        let sb = read_sb(&*dev)?;
        let warnings = Warnings::new();
        let mut info = FsInfo::new("xfs");
        let (dev, sb) = open_log(dev, sb, opts, &warnings, &mut info)?;
        let fs = Filesystem {
            dev,
            sb,
            cache: Mutex::new(BlockCache::default()),
            runs: Mutex::new(HashMap::new()),
            inodes: Mutex::new(HashMap::new()),
            warnings,
            info,
        };
        let mut fs = fs;
        fs.finish_info();
        ag::check(&fs);
        fs.inode(fs.sb.rootino)
            .map_err(|e| Error::corrupt("XFS root directory", format!("{e}")))?;
        Ok(fs)
    }

    fn finish_info(&mut self) {
        let sb = &self.sb;
        if !sb.crc_ok {
            self.warnings
                .push("XFS superblock: CRC mismatch (at byte 0)");
        }
        if sb.feature_names().iter().any(|f| f == "needsrepair") {
            self.warnings.push("XFS superblock: needsrepair is set (xfs_repair did not finish); metadata may be inconsistent");
        }
        if sb.inprogress != 0 {
            self.warnings
                .push("XFS superblock: mkfs did not finish (sb_inprogress)");
        }
        let need = sb.dblocks.saturating_mul(u64::from(sb.block_size));
        if need > self.dev.len() {
            self.warnings.push(format!(
                "device holds {} bytes, the filesystem claims {need}",
                self.dev.len()
            ));
        }
        let i = &mut self.info;
        i.label = sb.label.clone();
        i.uuid = uuid_string(&sb.uuid);
        i.block_size = sb.block_size;
        i.blocks = sb.dblocks;
        i.free_blocks = sb.fdblocks;
        i.inodes = sb.icount;
        i.free_inodes = sb.ifree;
        i.features = sb.feature_names();
        let v = if sb.is_v5() { "5" } else { "4" };
        let d = &mut i.details;
        d.push(("version".into(), v.into()));
        d.push(("agcount".into(), sb.agcount.to_string()));
        d.push(("agblocks".into(), sb.agblocks.to_string()));
        d.push(("inode size".into(), sb.inode_size.to_string()));
        d.push(("sector size".into(), sb.sect_size.to_string()));
        d.push((
            "directory block size".into(),
            sb.dir_block_size().to_string(),
        ));
        d.push(("root inode".into(), sb.rootino.to_string()));
        d.push(("realtime blocks".into(), sb.rblocks.to_string()));
        d.push((
            "counters".into(),
            "free blocks/inodes from the superblock (lazy counters may be stale)".into(),
        ));
    }

    /// Reads exactly `buf.len()` bytes at device byte `pos`.
    pub(crate) fn read_dev(
        &self,
        pos: u64,
        buf: &mut [u8],
        what: &dyn Fn() -> String,
    ) -> Result<(), Error> {
        self.dev
            .read_at(pos, buf)
            .map_err(|e| Error::io(what(), pos, e))
    }

    /// Reads `len` metadata bytes at `pos` through the block cache.
    pub(crate) fn read_meta(
        &self,
        pos: u64,
        len: usize,
        what: &dyn Fn() -> String,
    ) -> Result<Arc<[u8]>, Error> {
        if let Ok(mut c) = self.cache.lock() {
            if let Some(b) = c.get((pos, len)) {
                return Ok(b);
            }
        }
        // Read into the shared buffer itself (a Vec turned into an Arc is copied).
        let mut data: Arc<[u8]> = std::iter::repeat_n(0u8, len).collect();
        match Arc::get_mut(&mut data) {
            Some(buf) => self.read_dev(pos, buf, what)?,
            None => return Err(Error::corrupt(what(), "metadata buffer shared")),
        }
        if let Ok(mut c) = self.cache.lock() {
            c.put((pos, len), data.clone());
        }
        Ok(data)
    }

    /// Reads filesystem block `fsb` (metadata) through the cache.
    pub(crate) fn read_fsb(&self, fsb: u64, what: &dyn Fn() -> String) -> Result<Arc<[u8]>, Error> {
        let pos = self.sb.fsb_to_byte(fsb).ok_or_else(|| {
            Error::corrupt(what(), format!("block {fsb} is outside the filesystem"))
        })?;
        self.read_meta(pos, us(self.sb.block_size), what)
    }

    pub(crate) fn warn(&self, msg: impl Into<String>) {
        self.warnings.push(msg);
    }

    /// Reads ahead, in parallel, the inode blocks holding `inos` that are not cached
    /// yet: each missing block's aligned [`INODE_PREFETCH_BYTES`] span (inside one
    /// inode chunk on the usual geometry), up to [`INODE_PREFETCH_SPANS`] spans,
    /// [`INODE_PREFETCH_IN_FLIGHT`] requests at a time, every block of them cached.
    /// Where the disk is far away (NFS) the inodes of a listed directory then cost
    /// one round trip or two instead of one per block. Errors are ignored: the
    /// inode's own read reports them.
    pub fn prefetch_inodes(&self, inos: &[u64]) {
        let bs = u64::from(self.sb.block_size);
        let span = INODE_PREFETCH_BYTES.max(bs);
        let dev_len = self.dev.len();
        let mut spans: Vec<u64> = Vec::new();
        if let Ok(mut c) = self.cache.lock() {
            let mut blocks: Vec<u64> = inos
                .iter()
                .filter_map(|&i| self.sb.ino_to_byte(i))
                .map(|pos| pos & !bs.saturating_sub(1))
                .collect();
            blocks.sort_unstable();
            blocks.dedup();
            for b in blocks {
                let s = b & !span.saturating_sub(1);
                if spans.last() == Some(&s) || c.get((b, us(self.sb.block_size))).is_some() {
                    continue;
                }
                if s.checked_add(span).is_some_and(|end| end <= dev_len) {
                    spans.push(s);
                }
                if spans.len() >= INODE_PREFETCH_SPANS {
                    break;
                }
            }
        }
        if spans.len() < 2 || !bytesource::parallel_reads_pay() {
            return; // read on demand: nothing to overlap, or reads too fast to pay
        }
        for batch in spans.chunks(INODE_PREFETCH_IN_FLIGHT) {
            // On the process's reader threads (started once, not per batch); the
            // jobs own what they read from: the shared device.
            let jobs: Vec<_> = batch
                .iter()
                .map(|&s| {
                    let dev = self.dev.clone();
                    Box::new(move || -> Option<(u64, Vec<u8>)> {
                        let mut buf = vec![0u8; us64(span)];
                        dev.read_at(s, &mut buf).ok()?;
                        Some((s, buf))
                    }) as bytesource::pool::Job<_>
                })
                .collect();
            let read: Vec<(u64, Vec<u8>)> = bytesource::pool::run_all(jobs)
                .into_iter()
                .flatten()
                .flatten()
                .collect();
            if let Ok(mut c) = self.cache.lock() {
                for (s, buf) in read {
                    for (k, chunk) in buf.chunks(us64(bs).max(1)).enumerate() {
                        let pos = s.saturating_add(bs.saturating_mul(k as u64));
                        c.put((pos, chunk.len()), Arc::from(chunk));
                    }
                }
            }
        }
    }

    /// Reads and decodes inode `ino`, through the inode cache (the warnings a
    /// decode raises are raised once either way: [`Warnings`] keeps each once).
    pub(crate) fn inode(&self, ino: u64) -> Result<Inode, Error> {
        if let Some(i) = self.inodes.lock().ok().and_then(|m| m.get(&ino).cloned()) {
            return Ok(i);
        }
        let inode = self.decode_inode(ino)?;
        if let Ok(mut m) = self.inodes.lock() {
            if m.len() >= INODE_CACHE {
                m.clear();
            }
            m.insert(ino, inode.clone());
        }
        Ok(inode)
    }

    /// Reads and decodes inode `ino`.
    fn decode_inode(&self, ino: u64) -> Result<Inode, Error> {
        let obj = || format!("inode {ino}");
        let pos = self
            .sb
            .ino_to_byte(ino)
            .ok_or_else(|| Error::corrupt(obj(), "inode number outside the filesystem"))?;
        let bs = u64::from(self.sb.block_size);
        let block = pos & !bs.saturating_sub(1); // block sizes are powers of two
        let data = self.read_meta(block, us(self.sb.block_size), &obj)?;
        let at = us64(pos.saturating_sub(block));
        let raw: Arc<[u8]> = data
            .get(at..at.saturating_add(usize::from(self.sb.inode_size)))
            .ok_or_else(|| Error::corrupt_at(obj(), pos, "inode beyond its block"))?
            .into();
        Inode::parse(&self.sb, ino, pos, raw, &|m| self.warn(m))
    }

    fn file_inode(&self, ino: u64) -> Result<Inode, Error> {
        let inode = self.inode(ino)?;
        if inode.file_type() == FileType::Directory {
            return Err(Error::WrongType {
                ino,
                detail: "a file, not a directory".into(),
            });
        }
        Ok(inode)
    }

    /// The runs of a file's data fork, cached for the last few files.
    fn runs_of(&self, inode: &Inode) -> Result<Arc<Vec<FileRun>>, Error> {
        if let Some(r) = self
            .runs
            .lock()
            .ok()
            .and_then(|m| m.get(&inode.ino).cloned())
        {
            return Ok(r);
        }
        if inode.is_realtime() {
            return Err(Error::unsupported(
                format!("inode {}", inode.ino),
                "data on the realtime device is not read",
            ));
        }
        let runs = match inode.format {
            FMT_EXTENTS | FMT_BTREE => {
                let ext = bmap::extents(self, inode, Fork::Data)?;
                bmap::runs(self, &ext, inode.size)
            }
            // Local data (and device inodes, fifos, sockets) have no blocks.
            _ if inode.size == 0 => Vec::new(),
            FMT_LOCAL => Vec::new(),
            f => {
                return Err(Error::corrupt_at(
                    format!("inode {}", inode.ino),
                    inode.pos,
                    format!("data fork format {f} for a file of {} bytes", inode.size),
                ))
            }
        };
        let runs = Arc::new(runs);
        if runs.len() > RUN_CACHE_MAX_RUNS {
            return Ok(runs);
        }
        if let Ok(mut m) = self.runs.lock() {
            if m.len() >= RUN_CACHE_FILES {
                m.clear();
            }
            m.insert(inode.ino, runs.clone());
        }
        Ok(runs)
    }

    fn read_local(&self, inode: &Inode, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let area = inode.fork_area(Fork::Data).unwrap_or_default();
        if inode.size > bytes::u64_of(area.len()) {
            return Err(Error::corrupt_at(
                format!("inode {}", inode.ino),
                inode.pos,
                "inline data larger than the inode",
            ));
        }
        let data = area.get(..us64(inode.size)).unwrap_or_default();
        let src = data.get(us64(offset)..).unwrap_or_default();
        let n = src.len().min(buf.len());
        if let (Some(d), Some(s)) = (buf.get_mut(..n), src.get(..n)) {
            d.copy_from_slice(s);
        }
        Ok(n)
    }
}

fn open_log(
    dev: SharedSource,
    sb: Superblock,
    opts: &OpenOptions,
    warnings: &Warnings,
    info: &mut FsInfo,
) -> Result<(SharedSource, Superblock), Error> {
    if sb.logstart == 0 {
        warnings.push("external log device not read");
        info.details.push(("log".into(), "external".into()));
        info.clean = true;
        return Ok((dev, sb));
    }
    info.details.push(("log".into(), "internal".into()));
    let start = sb.fsb_to_byte(sb.logstart).ok_or_else(|| {
        Error::corrupt_at("XFS superblock", 0, "log start outside the filesystem")
    })?;
    let geom = log::LogGeometry {
        log_start_daddr: start / 512,
        log_blocks: sb.logblocks,
        block_size: sb.block_size,
        log_sector_size: if sb.logsectsize == 0 {
            512
        } else {
            u32::from(sb.logsectsize)
        },
        version: sb.log_version(),
        log_stripe_unit: sb.logsunit,
        is_v5: sb.is_v5(),
        uuid: sb.uuid,
    };
    let rec = match log::recover(dev.clone(), &geom) {
        Ok(r) => r,
        Err(e) => {
            warnings.push(format!("XFS log: not replayed: {e}"));
            return Ok((dev, sb));
        }
    };
    for w in &rec.warnings {
        warnings.push(w.clone());
    }
    info.needs_recovery = rec.was_dirty;
    info.clean = !rec.was_dirty;
    if !(rec.was_dirty && opts.replay_journal) {
        if rec.was_dirty {
            warnings.push("XFS log is dirty and was not replayed: reading the on-disk state");
        }
        return Ok((dev, sb));
    }
    info.journal_replayed = true;
    let sb = read_sb(&*rec.device)?;
    Ok((rec.device, sb))
}

impl fsapi::Filesystem for Filesystem {
    fn info(&self) -> FsInfo {
        self.info.clone()
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.list()
    }

    fn warning_count(&self) -> u64 {
        self.warnings.count()
    }

    fn root(&self) -> Ino {
        self.sb.rootino
    }

    fn warning_list(&self) -> Option<&Warnings> {
        Some(&self.warnings)
    }

    fn metadata(&self, ino: Ino) -> Result<Metadata, Error> {
        Ok(self.inode(ino)?.metadata(self.sb.block_size))
    }

    fn read_dir(&self, ino: Ino) -> Result<Vec<DirEntry>, Error> {
        let inode = self.inode(ino)?;
        if inode.file_type() != FileType::Directory {
            return Err(Error::WrongType {
                ino,
                detail: "not a directory".into(),
            });
        }
        let entries = dir::read_dir(self, &inode)?;
        // Callers of read_dir (ls -l, cp, find, tar) look at the entries' inodes next.
        let inos: Vec<u64> = entries.iter().map(|e| e.ino).collect();
        self.prefetch_inodes(&inos);
        Ok(entries)
    }

    fn read_link(&self, ino: Ino) -> Result<Vec<u8>, Error> {
        let inode = self.inode(ino)?;
        if inode.file_type() != FileType::Symlink {
            return Err(Error::WrongType {
                ino,
                detail: "not a symbolic link".into(),
            });
        }
        symlink::read_link(self, &inode)
    }

    fn read_at(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let inode = self.file_inode(ino)?;
        if offset >= inode.size || buf.is_empty() {
            return Ok(0);
        }
        if inode.format == FMT_LOCAL {
            return self.read_local(&inode, offset, buf);
        }
        let want = us64(inode.size.saturating_sub(offset)).min(buf.len());
        let runs = self.runs_of(&inode)?;
        let end = offset.saturating_add(bytes::u64_of(want));
        let i = runs.partition_point(|r| r.offset().saturating_add(r.len()) <= offset);
        let mut done = 0usize;
        for r in runs.iter().skip(i) {
            let lo = r.offset().max(offset);
            let hi = r.offset().saturating_add(r.len()).min(end);
            if lo >= hi {
                break;
            }
            let at = us64(lo.saturating_sub(offset));
            let n = us64(hi.saturating_sub(lo));
            let Some(dst) = buf.get_mut(at..at.saturating_add(n)) else {
                break;
            };
            match *r {
                FileRun::Data {
                    offset: ro,
                    physical,
                    ..
                } => {
                    let pos = physical.saturating_add(lo.saturating_sub(ro));
                    self.read_dev(pos, dst, &|| format!("inode {ino} data"))?;
                }
                _ => dst.fill(0),
            }
            done = at.saturating_add(n);
        }
        // Anything the runs do not cover reads as zeros (they cover [0, size)).
        if let Some(rest) = buf.get_mut(done..want) {
            rest.fill(0);
        }
        Ok(want)
    }

    fn file_runs(&self, ino: Ino) -> Result<Vec<FileRun>, Error> {
        let inode = self.file_inode(ino)?;
        if inode.format == FMT_LOCAL {
            return Err(Error::unsupported(
                format!("inode {ino}"),
                "data is stored inside the inode (no device runs); use read_at",
            ));
        }
        Ok(self.runs_of(&inode)?.as_ref().clone())
    }

    fn xattrs(&self, ino: Ino) -> Result<Vec<Xattr>, Error> {
        let inode = self.inode(ino)?;
        let raw = attr::list(self, &inode)?;
        Ok(acl::to_linux(self, ino, raw))
    }

    fn read_device_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.read_dev(offset, buf, &|| "device".to_string())
    }

    /// Inside the data device's blocks only; a device with a replayed log over it
    /// (an overlay) does not look through, so nothing the log replaced is bypassed.
    fn data_host_range(&self, _ino: Ino, physical: u64, len: u64) -> Option<HostRange<'_>> {
        let fs_end = self.sb.dblocks.checked_mul(u64::from(self.sb.block_size))?;
        if len == 0 || physical.checked_add(len)? > fs_end {
            return None;
        }
        self.dev.host_range(physical, len)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn filesystem_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::Filesystem>();
    }
}
