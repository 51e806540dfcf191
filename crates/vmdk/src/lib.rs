//! Read-only VMware virtual disks (VMDK), as a [`bytesource::ByteSource`].
//!
//! [`Disk::open`] takes any file a user may point at and sniffs its content:
//!
//! * a text descriptor (`# Disk DescriptorFile`, [`descriptor`]) naming extents;
//! * a hosted sparse file (`KDMV`): monolithicSparse, one piece of a
//!   twoGbMaxExtentSparse disk, or streamOptimized (deflate grains, markers, footer);
//! * an ESX `COWD` delta or an SESparse file on its own;
//! * anything else is a raw image (`.img`, or a `-flat.vmdk` given directly).
//!
//! Extent kinds read: FLAT and VMFS (with start offset), ZERO, SPARSE (hosted, incl.
//! compressed stream-optimized grains), VMFSSPARSE (`COWD`), SESPARSE. RDONLY and
//! NOACCESS extents occupy their sectors and are read like RW ones. Snapshot chains
//! follow `parentFileNameHint` (bounded depth, cycles refused); a CID mismatch is a
//! warning. [`vmx::disk_paths`] lists the disks of a `.vmx`.
//!
//! Not read: VMFSRAW/VMFSRDM/RDM(P) extents (reported as unsupported: their data is on
//! a LUN, not in a file), the SESparse journal (not replayed; a warning says when it
//! should be), changed-block-tracking data, encrypted disks. Nothing is ever written.
//!
//! Layout references: VMware "Virtual Disk Format 5.0", qemu `block/vmdk.c`, libyal
//! libvmdk's format document. Every on-disk value is checked before use: no panics,
//! bounded loops, allocations bounded by the file size. Grain directories and tables
//! are read on demand through bounded caches ([`MAX_CACHE_BYTES`] per extent), each
//! distinct file is opened once per open, and every input is opened through
//! [`bytesource::open_input`], which refuses FIFOs and devices instead of hanging.

#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions
)]

mod chain;
mod cowd;
pub mod descriptor;
mod error;
mod extent;
mod grain;
mod groupbuf;
mod kdmv;
mod sesparse;
mod sparse;
mod stream;
pub mod vmx;

pub use descriptor::MAX_EXTENT_LINES;
pub use error::Error;
pub use grain::MAX_CACHE_BYTES;
pub use groupbuf::POOL_BYTES as GROUP_POOL_BYTES;

use bytesource::{ByteSource, SharedSource};
use extent::{Extent, Piece};
use std::io;
use std::path::{Path, PathBuf};

/// Options for [`Disk::open_with`].
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Allow extent and parent paths that leave the descriptor's folder (`../x`, or an
    /// absolute path when no file of that name is beside the descriptor).
    /// The command line's `--allow-outside-dir`.
    pub allow_extents_outside_dir: bool,
    /// Extent and parent files to read from another file: (OLD, NEW) reads the file
    /// a descriptor names OLD (as written, or its last component) from NEW (as given,
    /// or else beside the descriptor). Reads a renamed restore copy without rewriting
    /// its descriptor. The command line's `--extent-map OLD=NEW`.
    pub extent_map: Vec<(String, PathBuf)>,
    /// Read a `.vmdk` that is neither a descriptor nor a known extent header as a raw
    /// disk even when it does not look like one. The command line's `--raw`.
    pub raw: bool,
}

/// What a range of the virtual disk is backed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocation {
    /// Stored data (in this disk or a parent).
    Data,
    /// Known to read as zeros (ZERO extent, zeroed grain).
    Zero,
    /// Not stored anywhere in the chain; reads as zeros.
    Unallocated,
}

/// Description of an opened disk.
#[derive(Clone, Debug)]
pub struct DiskInfo {
    /// The file opened.
    pub path: PathBuf,
    /// `createType` of the descriptor, or "raw".
    pub format: String,
    /// Virtual size in bytes.
    pub size: u64,
    /// Extents in order.
    pub extents: Vec<ExtentInfo>,
    /// `CID`.
    pub cid: Option<u32>,
    /// `parentCID`.
    pub parent_cid: Option<u32>,
    /// The parent disk, if any.
    pub parent: Option<Box<DiskInfo>>,
}

/// Description of one extent.
#[derive(Clone, Debug)]
pub struct ExtentInfo {
    /// `RW`, `RDONLY` or `NOACCESS`.
    pub access: String,
    /// `FLAT`, `VMFS`, `ZERO`, `SPARSE`, `VMFSSPARSE`, `SESPARSE`, ...
    pub kind: String,
    /// Size in sectors.
    pub sectors: u64,
    /// The resolved extent file.
    pub file: Option<PathBuf>,
    /// Start offset in the file, in sectors.
    pub offset_sectors: u64,
}

/// Most compressed runs one read hands its extent at once (8 MiB of 64 KiB grains;
/// bounds the list, not the bytes: those are the caller's buffer).
const MAX_BATCH_PIECES: usize = 128;

/// One extent placed in the virtual disk.
pub(crate) struct Slot {
    pub(crate) start: u64,
    pub(crate) extent: Box<dyn Extent>,
}

/// An opened virtual disk: the bytes the guest sees.
pub struct Disk {
    pub(crate) info: DiskInfo,
    pub(crate) warnings: Vec<String>,
    pub(crate) size: u64,
    pub(crate) slots: Vec<Slot>,
    pub(crate) parent: Option<Box<Disk>>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk")
            .field("info", &self.info)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

impl Disk {
    /// Opens a descriptor, sparse file or raw image (see the crate docs).
    pub fn open(path: &Path) -> Result<Disk, Error> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Opens with options.
    pub fn open_with(path: &Path, opts: &OpenOptions) -> Result<Disk, Error> {
        chain::open(path, opts)
    }

    /// Opens a single in-memory file (sparse, COWD, SESparse or raw; a text descriptor
    /// is parsed but its extents cannot be opened). Meant for fuzzing and tests.
    pub fn from_source(source: SharedSource) -> Result<Disk, Error> {
        chain::from_source(source)
    }

    /// What was opened.
    pub fn info(&self) -> DiskInfo {
        self.info.clone()
    }

    /// Problems that did not stop the open (CID mismatch, redundant GD used, ...),
    /// this disk's first, then its parents'; then the [`Disk::read_warnings`]
    /// raised so far.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = self.open_warnings();
        w.extend(self.read_warnings());
        w
    }

    fn open_warnings(&self) -> Vec<String> {
        let mut w = self.warnings.clone();
        if let Some(p) = &self.parent {
            w.extend(p.open_warnings());
        }
        w
    }

    /// Read errors survived so far, this disk's and its parents': a grain table
    /// or grain directory that could not be read and was read from its redundant
    /// copy instead (nothing lost, but the disk has bad sectors). The list grows
    /// as the disk is read; each line names the file, the table and its byte
    /// position. Front ends print these and count them like a filesystem's
    /// warnings.
    pub fn read_warnings(&self) -> Vec<String> {
        let mut w: Vec<String> = self
            .slots
            .iter()
            .flat_map(|s| s.extent.read_warnings())
            .collect();
        if let Some(p) = &self.parent {
            w.extend(p.read_warnings());
        }
        w
    }

    /// Virtual size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn slot_index(&self, offset: u64) -> Option<usize> {
        // Slots are sorted by start and contiguous; find the last start <= offset.
        let i = self.slots.partition_point(|s| s.start <= offset);
        i.checked_sub(1)
    }

    /// Calls `f(offset, len, piece, slot)` for each run of `[offset, offset+len)`.
    fn walk<'s>(
        &'s self,
        offset: u64,
        len: u64,
        mut f: impl FnMut(u64, u64, Piece, &'s Slot) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| {
                Error::corrupt(
                    &self.name(),
                    format!(
                        "range of {len} bytes at {offset} runs past the end of the disk ({} bytes)",
                        self.size
                    ),
                )
            })?;
        let mut pos = offset;
        while pos < end {
            let i = self
                .slot_index(pos)
                .ok_or_else(|| Error::corrupt(&self.name(), "internal: no extent"))?;
            let slot = self
                .slots
                .get(i)
                .ok_or_else(|| Error::corrupt(&self.name(), "internal: no extent"))?;
            let rel = pos.saturating_sub(slot.start);
            let left_in_extent = slot.extent.len().saturating_sub(rel);
            let want = end.saturating_sub(pos).min(left_in_extent);
            if want == 0 {
                return Err(Error::corrupt(&self.name(), "internal: empty extent"));
            }
            let (n, piece) = slot.extent.map(rel, want)?;
            let n = n.min(want);
            if n == 0 {
                return Err(Error::corrupt(&self.name(), "internal: empty run"));
            }
            f(pos, n, piece, slot)?;
            pos = pos.saturating_add(n);
        }
        Ok(())
    }

    fn name(&self) -> String {
        file_name(&self.info.path)
    }

    /// Reads `buf` at `offset`, run by run; consecutive compressed runs of one
    /// extent (stream-optimized grains) are handed to it together, at most
    /// [`MAX_BATCH_PIECES`] at a time, so it can read and inflate them at once.
    fn read_inner(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let len =
            u64::try_from(buf.len()).map_err(|_| Error::corrupt(&self.name(), "read too large"))?;
        let mut rest: &mut [u8] = buf;
        let mut batch: Vec<(Piece, &mut [u8])> = Vec::new();
        let mut batch_slot: Option<&Slot> = None;
        self.walk(offset, len, |pos, n, piece, slot| {
            let n = usize::try_from(n)
                .ok()
                .filter(|&n| n <= rest.len())
                .ok_or_else(|| Error::corrupt("read", "internal: bad run"))?;
            let (part, tail) = std::mem::take(&mut rest).split_at_mut(n);
            rest = tail;
            let same = batch_slot.is_some_and(|b| std::ptr::eq(b, slot));
            if !batch.is_empty() && (!same || batch.len() >= MAX_BATCH_PIECES) {
                if let Some(b) = batch_slot {
                    b.extent.read_pieces(&mut batch)?;
                }
                batch.clear();
            }
            match piece {
                Piece::Zero => {
                    part.fill(0);
                    Ok(())
                }
                Piece::Unallocated => self.read_parent(pos, part),
                Piece::Compressed { .. } => {
                    batch_slot = Some(slot);
                    batch.push((piece, part));
                    Ok(())
                }
                Piece::Data(_) => slot.extent.read_piece(piece, part),
            }
        })?;
        if let Some(b) = batch_slot {
            if !batch.is_empty() {
                b.extent.read_pieces(&mut batch)?;
            }
        }
        Ok(())
    }

    /// Reads unallocated bytes from the parent; zeros where there is none, or past its end.
    fn read_parent(&self, pos: u64, part: &mut [u8]) -> Result<(), Error> {
        let Some(p) = &self.parent else {
            part.fill(0);
            return Ok(());
        };
        let avail = p.size.saturating_sub(pos);
        let n = usize::try_from(avail).unwrap_or(usize::MAX).min(part.len());
        let (inside, outside) = part.split_at_mut(n);
        outside.fill(0);
        if !inside.is_empty() {
            p.read_inner(pos, inside)?;
        }
        Ok(())
    }

    /// What backs `[offset, offset+len)`: runs of data, zeros and unallocated space,
    /// looking through the parent chain. Adjacent runs of one kind are merged.
    pub fn allocation(&self, offset: u64, len: u64) -> Result<Vec<(u64, u64, Allocation)>, Error> {
        let mut out: Vec<(u64, u64, Allocation)> = Vec::new();
        self.allocation_into(offset, len, &mut out)?;
        Ok(out)
    }

    fn allocation_into(
        &self,
        offset: u64,
        len: u64,
        out: &mut Vec<(u64, u64, Allocation)>,
    ) -> Result<(), Error> {
        self.walk(offset, len, |pos, n, piece, _| {
            match piece {
                Piece::Data(_) | Piece::Compressed { .. } => {
                    push_run(out, pos, n, Allocation::Data)
                }
                Piece::Zero => push_run(out, pos, n, Allocation::Zero),
                Piece::Unallocated => match &self.parent {
                    Some(p) => {
                        let inside = p.size.saturating_sub(pos).min(n);
                        if inside > 0 {
                            p.allocation_into(pos, inside, out)?;
                        }
                        if inside < n {
                            push_run(
                                out,
                                pos.saturating_add(inside),
                                n.saturating_sub(inside),
                                Allocation::Unallocated,
                            );
                        }
                    }
                    None => push_run(out, pos, n, Allocation::Unallocated),
                },
            }
            Ok(())
        })
    }
}

fn push_run(out: &mut Vec<(u64, u64, Allocation)>, pos: u64, n: u64, a: Allocation) {
    if let Some(last) = out.last_mut() {
        if last.2 == a && last.0.checked_add(last.1) == Some(pos) {
            last.1 = last.1.saturating_add(n);
            return;
        }
    }
    out.push((pos, n, a));
}

/// The last component of a path, for messages.
pub(crate) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

impl ByteSource for Disk {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        bytesource::check_range(&self.info.path.display(), self.size, offset, buf.len())?;
        self.read_inner(offset, buf).map_err(io::Error::from)
    }
    /// Stored bytes of one extent (flat, or an uncompressed grain), or of the
    /// parent where this disk holds none; never zeros or compressed grains.
    fn host_range(&self, offset: u64, len: u64) -> Option<bytesource::HostRange<'_>> {
        if len == 0 || offset.checked_add(len)? > self.size {
            return None;
        }
        let slot = self.slots.get(self.slot_index(offset)?)?;
        let rel = offset.checked_sub(slot.start)?;
        let want = len.min(slot.extent.len().checked_sub(rel)?);
        if want == 0 {
            return None;
        }
        let (n, piece) = slot.extent.map(rel, want).ok()?;
        let n = n.min(want);
        match piece {
            Piece::Data(_) => slot.extent.host_range(piece, n),
            Piece::Unallocated => {
                // Past the parent's end it reads as zeros: nothing stored.
                let p = self
                    .parent
                    .as_ref()
                    .filter(|p| offset.saturating_add(n) <= p.size)?;
                p.host_range(offset, n)
            }
            Piece::Zero | Piece::Compressed { .. } => None,
        }
    }
}
