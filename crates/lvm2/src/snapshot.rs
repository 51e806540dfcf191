//! Classic (non-thin) LVM snapshots: the dm-snapshot persistent exception store on
//! the COW LV, and reading the snapshot as it was.
//!
//! Layout (`drivers/md/dm-snap-persistent.c`): the COW device is cut into chunks of
//! `chunk_size` sectors. Chunk 0 is the header `struct disk_header` {magic u32 =
//! 0x70416e53 ("SnAp"), valid u32, version u32 = 1, chunk_size u32 (sectors)}.
//! Then come areas: area `a` is one metadata chunk at chunk `1 + a * (epa + 1)`
//! holding `epa = chunk_size * 512 / 16` exceptions `struct disk_exception`
//! {old_chunk u64, new_chunk u64} (little-endian), followed by the `epa` data chunks
//! those exceptions point into. `read_exceptions` reads area after area while
//! each is full; `insert_exceptions` stops at the first entry whose new_chunk is 0
//! (chunk 0 is the header, so no exception can point there).
//!
//! A snapshot chunk listed as an exception (old_chunk) reads COW chunk new_chunk;
//! any other chunk reads the origin. A store with `valid` = 0 was invalidated by
//! the kernel (usually because the COW filled up): it is refused, naming the LV.
//! A header of all zeros is a snapshot that never got an exception: it reads as
//! the origin. The store is read once, at open, bounded by the COW's size.

use bytesource::field;
use bytesource::{ByteSource, SharedSource};
use std::io;

/// `SNAP_MAGIC` (dm-snap-persistent.c).
pub const SNAP_MAGIC: u32 = 0x7041_6e53;
/// `SNAPSHOT_DISK_VERSION`.
pub const SNAPSHOT_DISK_VERSION: u32 = 1;
/// Size of `struct disk_exception`.
const EXCEPTION_SIZE: u64 = 16;
/// Most exceptions kept (16 bytes each: 256 MiB); a bigger table is refused.
pub const MAX_EXCEPTIONS: usize = 1 << 24;
/// Largest chunk accepted (dm-snapshot allows up to 512 KiB; be lenient).
const MAX_CHUNK_BYTES: u64 = 1 << 24;

/// The exception table of one snapshot.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ExceptionStore {
    /// Chunk size in bytes (from the header; it wins over the VG text).
    pub chunk_bytes: u64,
    /// (old_chunk, new_chunk), sorted by old_chunk, one entry per old chunk.
    exceptions: Vec<(u64, u64)>,
    /// Areas read.
    pub areas: u64,
}

impl ExceptionStore {
    /// Reads the store on `cow`. `text_chunk_bytes` is the VG text's chunk size
    /// (used only when the header has none, and compared otherwise). Returns the
    /// store and any warnings.
    pub fn read(
        cow: &dyn ByteSource,
        text_chunk_bytes: u64,
    ) -> Result<(Self, Vec<String>), String> {
        let mut warnings = Vec::new();
        let mut hdr = [0u8; 16];
        cow.read_at(0, &mut hdr)
            .map_err(|e| format!("COW header at byte 0: {e}"))?;
        // `struct disk_header` (dm-snap-persistent.c): magic, valid, version,
        // chunk_size, each u32, all inside the 16 bytes just read.
        let hdr_field = |at: usize| {
            field::le_u32(&hdr, at)
                .ok_or_else(|| format!("COW header: field at byte {at} outside it"))
        };
        let magic = hdr_field(0)?;
        if magic == 0 {
            // A new snapshot: the kernel writes the header with its first use.
            return Ok((
                Self {
                    chunk_bytes: text_chunk_bytes,
                    exceptions: Vec::new(),
                    areas: 0,
                },
                vec![
                    "COW header is empty: no chunk has been copied, it reads as the origin"
                        .to_string(),
                ],
            ));
        }
        if magic != SNAP_MAGIC {
            return Err(format!(
                "COW header magic {magic:#010x} at byte 0, expected {SNAP_MAGIC:#010x}"
            ));
        }
        if hdr_field(4)? == 0 {
            return Err("the snapshot is marked invalid (valid = 0 at byte 4): \
                        the kernel dropped it, usually because its COW overflowed"
                .to_string());
        }
        let version = hdr_field(8)?;
        if version != SNAPSHOT_DISK_VERSION {
            return Err(format!(
                "COW header version {version} at byte 8, expected 1"
            ));
        }
        let chunk_bytes = u64::from(hdr_field(12)?).saturating_mul(512);
        if chunk_bytes == 0 || chunk_bytes > MAX_CHUNK_BYTES || !chunk_bytes.is_power_of_two() {
            return Err(format!(
                "COW header chunk_size {chunk_bytes} bytes at byte 12 is not valid"
            ));
        }
        if text_chunk_bytes != 0 && text_chunk_bytes != chunk_bytes {
            warnings.push(format!(
                "chunk_size {text_chunk_bytes} bytes in the VG text, {chunk_bytes} in the COW \
                 header; using the header's"
            ));
        }
        let store = Self::read_areas(cow, chunk_bytes)?;
        Ok((store, warnings))
    }

    fn read_areas(cow: &dyn ByteSource, chunk_bytes: u64) -> Result<Self, String> {
        let epa = chunk_bytes.checked_div(EXCEPTION_SIZE).unwrap_or(0);
        let cow_chunks = cow.len().checked_div(chunk_bytes).unwrap_or(0);
        let chunk_len = usize::try_from(chunk_bytes).map_err(|_| "chunk too large")?;
        let mut area_buf = vec![0u8; chunk_len];
        let mut exceptions: Vec<(u64, u64)> = Vec::new();
        let mut area = 0u64;
        loop {
            // Area `area`'s metadata chunk: 1 + area * (epa + 1) (`area_location`).
            let chunk = area
                .checked_mul(epa.saturating_add(1))
                .and_then(|x| x.checked_add(1))
                .ok_or("area number overflows")?;
            if chunk >= cow_chunks {
                return Err(format!(
                    "exception area {area} (chunk {chunk}) is past the COW's {cow_chunks} chunks: \
                     the table never ends"
                ));
            }
            let off = chunk.saturating_mul(chunk_bytes);
            cow.read_at(off, &mut area_buf)
                .map_err(|e| format!("exception area {area} at byte {off}: {e}"))?;
            let mut full = true;
            for i in 0..epa {
                let at = usize::try_from(i.saturating_mul(EXCEPTION_SIZE)).unwrap_or(usize::MAX);
                // i < epa = chunk / 16, so the 16-byte exception is inside the chunk.
                let (Some(old), Some(new)) = (
                    field::le_u64(&area_buf, at),
                    field::le_u64(&area_buf, at.saturating_add(8)),
                ) else {
                    return Err(format!(
                        "exception {i} of area {area} lies outside its chunk"
                    ));
                };
                if new == 0 {
                    full = false;
                    break;
                }
                if new >= cow_chunks {
                    return Err(format!(
                        "exception area {area} entry {i} (byte {}): chunk {old} -> COW chunk {new}, \
                         past the COW's {cow_chunks} chunks",
                        off.saturating_add(i.saturating_mul(EXCEPTION_SIZE))
                    ));
                }
                if exceptions.len() >= MAX_EXCEPTIONS {
                    return Err(format!("more than {MAX_EXCEPTIONS} exceptions"));
                }
                exceptions.push((old, new));
            }
            area = area.saturating_add(1);
            if !full {
                break;
            }
        }
        // A later exception for the same chunk replaces an earlier one (the kernel
        // inserts them in order); keep the last one of each old chunk.
        exceptions.reverse();
        exceptions.sort_by_key(|e| e.0);
        exceptions.dedup_by_key(|e| e.0);
        Ok(Self {
            chunk_bytes,
            exceptions,
            areas: area,
        })
    }

    /// The COW chunk holding snapshot chunk `chunk`, if it was copied.
    pub fn lookup(&self, chunk: u64) -> Option<u64> {
        self.exceptions
            .binary_search_by_key(&chunk, |e| e.0)
            .ok()
            .and_then(|i| self.exceptions.get(i))
            .map(|e| e.1)
    }

    /// Number of exceptions (chunks that differ from the origin).
    pub fn len(&self) -> usize {
        self.exceptions.len()
    }

    /// True when no chunk was copied.
    pub fn is_empty(&self) -> bool {
        self.exceptions.is_empty()
    }
}

/// A snapshot as it was: exceptions from the COW, everything else from the origin.
#[derive(Clone)]
pub struct SnapshotVolume {
    name: String,
    origin: SharedSource,
    cow: SharedSource,
    store: std::sync::Arc<ExceptionStore>,
    size: u64,
}

impl std::fmt::Debug for SnapshotVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SnapshotVolume({}, {} exceptions)",
            self.name,
            self.store.len()
        )
    }
}

impl SnapshotVolume {
    /// Opens a snapshot of `size` bytes over `origin` with its COW device.
    pub fn open(
        name: &str,
        origin: SharedSource,
        cow: SharedSource,
        size: u64,
        text_chunk_bytes: u64,
    ) -> Result<(Self, Vec<String>), crate::Error> {
        let (store, warnings) =
            ExceptionStore::read(cow.as_ref(), text_chunk_bytes).map_err(|reason| {
                crate::Error::Snapshot {
                    snapshot: name.to_string(),
                    reason,
                }
            })?;
        Ok((
            Self {
                name: name.to_string(),
                origin,
                cow,
                store: std::sync::Arc::new(store),
                size,
            },
            warnings,
        ))
    }

    /// The exception table.
    pub fn store(&self) -> &ExceptionStore {
        &self.store
    }
}

impl ByteSource for SnapshotVolume {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        bytesource::check_range(&self.name, self.size, offset, buf.len())?;
        let cb = self.store.chunk_bytes;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "snapshot chunk size is 0");
        let mut off = offset;
        let mut rest = buf;
        while !rest.is_empty() {
            let chunk = off.checked_div(cb).ok_or_else(bad)?;
            let within = off.checked_rem(cb).ok_or_else(bad)?;
            let take = usize::try_from(cb.saturating_sub(within))
                .unwrap_or(usize::MAX)
                .min(rest.len());
            let (now, later) = std::mem::take(&mut rest).split_at_mut(take);
            match self.store.lookup(chunk) {
                Some(new) => {
                    let at = new.saturating_mul(cb).saturating_add(within);
                    self.cow.read_at(at, now).map_err(|e| {
                        io::Error::new(e.kind(), format!("{}: COW chunk {new}: {e}", self.name))
                    })?
                }
                None => {
                    // The origin may have shrunk since; beyond its end, zeros.
                    now.fill(0);
                    let olen = self.origin.len();
                    if off < olen {
                        let n = usize::try_from(olen.saturating_sub(off))
                            .unwrap_or(usize::MAX)
                            .min(now.len());
                        if let Some(part) = now.get_mut(..n) {
                            self.origin.read_at(off, part)?;
                        }
                    }
                }
            }
            off = off.saturating_add(u64::try_from(now.len()).unwrap_or(u64::MAX));
            rest = later;
        }
        Ok(())
    }
}
