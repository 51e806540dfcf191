//! lvm2's id formatting. Field readers are `bytesource::field`'s.

/// Formats a 32-character lvm2 id the way lvm prints it: 6-4-4-4-4-4-6.
///
/// `id_write_format()` in lvm2's `lib/uuid/uuid.c`. Bytes that are not printable
/// ASCII are shown as `?` so a damaged id still prints.
pub fn format_uuid(raw: &[u8]) -> String {
    let mut out = String::with_capacity(38);
    for (i, &b) in raw.iter().take(32).enumerate() {
        if matches!(i, 6 | 10 | 14 | 18 | 22 | 26) {
            out.push('-');
        }
        out.push(if b.is_ascii_graphic() {
            char::from(b)
        } else {
            '?'
        });
    }
    out
}

/// The id with dashes removed, for comparing ids from labels and from metadata.
pub(crate) fn uuid_key(s: &str) -> String {
    s.chars().filter(|&c| c != '-').collect()
}
