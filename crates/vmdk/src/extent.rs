//! The interface every extent kind implements, and the two simplest kinds: FLAT/VMFS
//! (a byte range of a file, from the descriptor's start offset) and ZERO.

use crate::Error;
use bytesource::SharedSource;

/// What a run of extent bytes maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Stored uncompressed in the extent's file, starting at this byte offset; the
    /// whole run is contiguous there.
    Data(u64),
    /// Inside one compressed grain whose marker (or data) starts at `at` in the file;
    /// the run starts `within` bytes into the decompressed grain.
    Compressed { at: u64, within: u64 },
    /// Reads as zeros (ZERO extent, zeroed grain).
    Zero,
    /// Not stored here: read from the parent disk, or zeros without one.
    Unallocated,
}

/// An extent: a contiguous range of the virtual disk backed by one file (or none).
pub(crate) trait Extent: Send + Sync {
    /// Size in bytes.
    fn len(&self) -> u64;

    /// Maps the run starting at extent-relative `offset` (< `len`), at most `max`
    /// bytes (> 0). Returns the run's length (1..=max) and where it lives. A run never
    /// crosses a point where the mapping changes kind or becomes discontiguous.
    fn map(&self, offset: u64, max: u64) -> Result<(u64, Piece), Error>;

    /// Reads bytes of a [`Piece::Data`] or [`Piece::Compressed`] run.
    fn read_piece(&self, piece: Piece, buf: &mut [u8]) -> Result<(), Error>;

    /// Where the `len` bytes of a [`Piece::Data`] run lie in a local host file
    /// ([`bytesource::ByteSource::host_range`]); `None` for every other piece.
    fn host_range(&self, piece: Piece, len: u64) -> Option<bytesource::HostRange<'_>> {
        let _ = (piece, len);
        None
    }

    /// Reads several runs of one request, in order of the disk (all
    /// [`Piece::Compressed`] as [`crate::Disk`] gathers them): an extent may read
    /// and decode them together (stream-optimized grains, [`crate::grain`]).
    fn read_pieces(&self, pieces: &mut [(Piece, &mut [u8])]) -> Result<(), Error> {
        for (p, b) in pieces.iter_mut() {
            self.read_piece(*p, b)?;
        }
        Ok(())
    }

    /// Read errors survived so far through a redundant copy (a grain table read
    /// from the redundant grain directory), one line each; they grow as the
    /// extent is read.
    fn read_warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Reads `buf.len()` bytes at `at` from `file`, naming `name` on error.
pub(crate) fn read_file(
    file: &SharedSource,
    name: &str,
    at: u64,
    buf: &mut [u8],
) -> Result<(), Error> {
    file.read_at(at, buf).map_err(|e| Error::io(name, e))
}

/// FLAT and VMFS extents: `len` bytes of `file` starting at `start`.
pub(crate) struct Flat {
    pub(crate) file: SharedSource,
    pub(crate) name: String,
    pub(crate) start: u64,
    pub(crate) len: u64,
}

impl Extent for Flat {
    fn len(&self) -> u64 {
        self.len
    }
    fn map(&self, offset: u64, max: u64) -> Result<(u64, Piece), Error> {
        let left = self.len.saturating_sub(offset);
        let at = self
            .start
            .checked_add(offset)
            .ok_or_else(|| Error::corrupt(&self.name, "extent offset overflows"))?;
        Ok((left.min(max), Piece::Data(at)))
    }
    fn read_piece(&self, piece: Piece, buf: &mut [u8]) -> Result<(), Error> {
        match piece {
            Piece::Data(at) => read_file(&self.file, &self.name, at, buf),
            _ => Err(Error::corrupt(
                &self.name,
                "internal: bad piece for flat extent",
            )),
        }
    }
    fn host_range(&self, piece: Piece, len: u64) -> Option<bytesource::HostRange<'_>> {
        match piece {
            Piece::Data(at) => self.file.host_range(at, len),
            _ => None,
        }
    }
}

/// ZERO extents (and the part of a sparse extent past its capacity): all zeros.
pub(crate) struct Zero {
    pub(crate) len: u64,
    /// Reads as unallocated (falls through to a parent) rather than zero.
    pub(crate) unallocated: bool,
}

impl Extent for Zero {
    fn len(&self) -> u64 {
        self.len
    }
    fn map(&self, offset: u64, max: u64) -> Result<(u64, Piece), Error> {
        let piece = if self.unallocated {
            Piece::Unallocated
        } else {
            Piece::Zero
        };
        Ok((self.len.saturating_sub(offset).min(max), piece))
    }
    fn read_piece(&self, _piece: Piece, buf: &mut [u8]) -> Result<(), Error> {
        buf.fill(0);
        Ok(())
    }
}
