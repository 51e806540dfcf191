//! Conversions and small string helpers. XFS is big-endian on disk (except its
//! CRC32C fields, see `crc.rs`); fields are read with `bytesource::field`, whose
//! readers return `None` when the field does not fit, and callers turn `None` into
//! an error that names the structure.

/// Widens a `u32` (all supported targets have at least 32-bit `usize`).
pub(crate) fn us(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Narrows a `u64` to `usize`, saturating.
pub(crate) fn us64(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Widens a `usize` to `u64`.
pub(crate) fn u64_of(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Rounds `v` up to a multiple of 8 (directory entries are 8-byte aligned).
pub(crate) fn round8(v: usize) -> Option<usize> {
    Some(v.checked_add(7)? & !7)
}

/// The bytes before the first NUL, lossy UTF-8 (labels).
pub(crate) fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(b.get(..end).unwrap_or_default()).into_owned()
}

/// A UUID in 8-4-4-4-12 lowercase form.
pub(crate) fn uuid_string(u: &[u8; 16]) -> String {
    let h: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
    let part = |a: usize, z: usize| h.get(a..z).map(|s| s.concat()).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 4),
        part(4, 6),
        part(6, 8),
        part(8, 10),
        part(10, 16)
    )
}
