//! Little- and big-endian field readers over byte slices.
//!
//! Every on-disk structure is first read into a buffer whose length has been
//! checked; these helpers then never panic: a field that does not fit in the
//! buffer reads as zero (callers validate lengths before relying on a field).

/// Reads a little-endian `u16` at `off`, or 0 when out of range.
pub(crate) fn le16(b: &[u8], off: usize) -> u16 {
    b.get(off..)
        .and_then(|s| s.first_chunk::<2>())
        .map_or(0, |a| u16::from_le_bytes(*a))
}

/// Reads a little-endian `u32` at `off`, or 0 when out of range.
pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    b.get(off..)
        .and_then(|s| s.first_chunk::<4>())
        .map_or(0, |a| u32::from_le_bytes(*a))
}

/// Reads a big-endian `u16` at `off`, or 0 when out of range (jbd2 is big-endian).
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    b.get(off..)
        .and_then(|s| s.first_chunk::<2>())
        .map_or(0, |a| u16::from_be_bytes(*a))
}

/// Reads a big-endian `u32` at `off`, or 0 when out of range.
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    b.get(off..)
        .and_then(|s| s.first_chunk::<4>())
        .map_or(0, |a| u32::from_be_bytes(*a))
}

/// Reads a single byte at `off`, or 0 when out of range.
pub(crate) fn u8_at(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
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
