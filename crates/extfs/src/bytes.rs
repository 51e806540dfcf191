//! Field readers over byte slices.
//!
//! [`Fields`] reads the little- and big-endian (jbd2) fields of one on-disk
//! structure through `bytesource::field`: a field that does not lie inside the
//! structure's bytes is an [`Error::Corrupt`] naming the structure and the
//! field's byte offset, never a silent zero and never a panic.

use crate::error::Error;
use bytesource::field;

/// The bytes of one on-disk structure and the name errors give it.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    object: &'a str,
}

impl<'a> Fields<'a> {
    /// The structure `object` ("superblock", "extent node") held in `buf`.
    pub(crate) fn new(buf: &'a [u8], object: &'a str) -> Self {
        Self { buf, object }
    }

    fn outside(&self, off: usize, width: usize) -> Error {
        Error::corrupt(
            self.object,
            format!(
                "{width}-byte field at byte {off} lies outside its {} bytes",
                self.buf.len()
            ),
        )
    }

    /// Little-endian `u16` at `off`.
    pub(crate) fn le16(&self, off: usize) -> Result<u16, Error> {
        field::le_u16(self.buf, off).ok_or_else(|| self.outside(off, 2))
    }

    /// Little-endian `u32` at `off`.
    pub(crate) fn le32(&self, off: usize) -> Result<u32, Error> {
        field::le_u32(self.buf, off).ok_or_else(|| self.outside(off, 4))
    }

    /// Big-endian `u32` at `off` (jbd2).
    pub(crate) fn be32(&self, off: usize) -> Result<u32, Error> {
        field::be_u32(self.buf, off).ok_or_else(|| self.outside(off, 4))
    }

    /// The byte at `off`.
    pub(crate) fn u8(&self, off: usize) -> Result<u8, Error> {
        field::u8_at(self.buf, off).ok_or_else(|| self.outside(off, 1))
    }

    /// `len` bytes at `off`.
    pub(crate) fn slice(&self, off: usize, len: usize) -> Result<&'a [u8], Error> {
        field::slice_at(self.buf, off, len).ok_or_else(|| self.outside(off, len))
    }

    /// `N` bytes at `off` as an array.
    pub(crate) fn array<const N: usize>(&self, off: usize) -> Result<[u8; N], Error> {
        field::array_at(self.buf, off).ok_or_else(|| self.outside(off, N))
    }
}

/// Combines a low and high 32-bit half.
pub(crate) fn lo_hi(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | (u64::from(hi) << 32)
}

/// Widens a `u32` to `usize` (all supported targets have at least 32-bit `usize`).
pub(crate) fn usize_from(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Converts a `usize` to `u64` (never fails on supported targets).
pub(crate) fn u64_from(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// A sub-slice `b[off..off+len]`, or `None` when it does not fit.
pub(crate) fn slice(b: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    b.get(off..off.checked_add(len)?)
}

/// The bytes before the first NUL, as lossy UTF-8.
pub(crate) fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(b.get(..end).unwrap_or_default()).into_owned()
}
