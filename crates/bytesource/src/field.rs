//! Fixed-width integer fields read from untrusted buffers: the one little- and
//! big-endian reader vocabulary of the format crates.
//!
//! Every function returns `None` when the field does not lie wholly inside the
//! buffer (including when `off + width` overflows), never a silent zero and
//! never a panic. A parser turns `None` into its own error naming the object and
//! the byte position; a caller that has already proven the buffer long enough
//! (a fixed-size header read in one piece) says so in a comment where it falls
//! back.

/// `N` bytes at `off` as an array.
pub fn array_at<const N: usize>(buf: &[u8], off: usize) -> Option<[u8; N]> {
    let end = off.checked_add(N)?;
    buf.get(off..end)?.try_into().ok()
}

/// `len` bytes at `off`.
pub fn slice_at(buf: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    buf.get(off..off.checked_add(len)?)
}

/// The byte at `off`.
pub fn u8_at(buf: &[u8], off: usize) -> Option<u8> {
    buf.get(off).copied()
}

/// A little-endian `u16` at `off`.
pub fn le_u16(buf: &[u8], off: usize) -> Option<u16> {
    array_at(buf, off).map(u16::from_le_bytes)
}

/// A little-endian `u32` at `off`.
pub fn le_u32(buf: &[u8], off: usize) -> Option<u32> {
    array_at(buf, off).map(u32::from_le_bytes)
}

/// A little-endian `u64` at `off`.
pub fn le_u64(buf: &[u8], off: usize) -> Option<u64> {
    array_at(buf, off).map(u64::from_le_bytes)
}

/// A big-endian `u16` at `off` (XFS, jbd2).
pub fn be_u16(buf: &[u8], off: usize) -> Option<u16> {
    array_at(buf, off).map(u16::from_be_bytes)
}

/// A big-endian `u32` at `off` (XFS, jbd2).
pub fn be_u32(buf: &[u8], off: usize) -> Option<u32> {
    array_at(buf, off).map(u32::from_be_bytes)
}

/// A big-endian `u64` at `off` (XFS, jbd2).
pub fn be_u64(buf: &[u8], off: usize) -> Option<u64> {
    array_at(buf, off).map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_and_outside() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(le_u16(&b, 0), Some(0x0201));
        assert_eq!(be_u16(&b, 0), Some(0x0102));
        assert_eq!(le_u32(&b, 5), Some(0x0908_0706));
        assert_eq!(le_u32(&b, 6), None);
        assert_eq!(le_u64(&b, 1), Some(0x0908_0706_0504_0302));
        assert_eq!(be_u64(&b, 2), None);
        assert_eq!(be_u32(&b, usize::MAX), None);
        assert_eq!(slice_at(&b, 8, 1), Some(&b[8..]));
        assert_eq!(slice_at(&b, 8, 2), None);
        assert_eq!(slice_at(&b, usize::MAX, 2), None);
        assert_eq!(u8_at(&b, 9), None);
        assert_eq!(array_at::<3>(&b, 6), Some([7, 8, 9]));
    }
}
