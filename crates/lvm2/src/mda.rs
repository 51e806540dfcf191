//! Metadata areas: a 512-byte header followed by a ring buffer of metadata text.
//!
//! Layout from lvm2's `lib/format_text/layout.h` (`struct mda_header`,
//! `struct raw_locn`) and `lib/format_text/format-text.c`, and libyal libvslvm's
//! "Metadata area header" section:
//!
//! | offset | size | field                                              |
//! |-------:|-----:|----------------------------------------------------|
//! |      0 |    4 | `checksum_xl` over bytes 4..512                    |
//! |      4 |   16 | `magic` = " LVM2 x[5A%r0N*>" (`FMTT_MAGIC`)        |
//! |     20 |    4 | `version` = 1 (`FMTT_VERSION`)                     |
//! |     24 |    8 | `start`: absolute byte offset of this header       |
//! |     32 |    8 | `size` of the whole area in bytes                  |
//! |     40 | 24×n | `raw_locn` list ending in a zero entry             |
//!
//! Each `raw_locn` is `{offset u64 (from the area start), size u64, checksum u32,
//! flags u32}`. Entry 0 is the committed metadata; lvm2 reads entry 1 only as
//! "precommitted" metadata. `RAW_LOCN_IGNORED` (flag 1) marks an area that
//! `pvchange --metadataignore` switched off. The text is a ring: when
//! `offset + size` passes the end of the area, it continues right after the
//! header at area start + 512 (`_vg_read_raw_area` / `_read_metadata_location`).

use crate::crc::{calc_crc, INITIAL_CRC};
use bytesource::field::{le_u32, le_u64, slice_at};
use bytesource::ByteSource;

/// `MDA_HEADER_SIZE`.
pub const MDA_HEADER_SIZE: u64 = 512;
/// `FMTT_MAGIC`.
pub const FMTT_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
/// `FMTT_VERSION`.
pub const FMTT_VERSION: u32 = 1;
/// `RAW_LOCN_IGNORED`.
pub const RAW_LOCN_IGNORED: u32 = 1;
/// Largest metadata text this crate reads (lvm2's own default area is 1 MiB; a
/// VG with thousands of LVs stays far below this).
pub const MAX_TEXT_SIZE: u64 = 8 << 20;
/// At most this many `raw_locn` entries fit in the header sector.
const MAX_RAW_LOCNS: usize = 19;

/// One `raw_locn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RawLocn {
    /// Offset of the text from the start of the area.
    pub offset: u64,
    /// Text size in bytes (including lvm2's trailing NUL).
    pub size: u64,
    /// `calc_crc` of the text.
    pub checksum: u32,
    /// Flags (`RAW_LOCN_IGNORED`).
    pub flags: u32,
}

/// A validated metadata area header.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MdaHeader {
    /// `start`: absolute byte offset of the area.
    pub start: u64,
    /// `size` of the area.
    pub size: u64,
    /// Every non-zero `raw_locn`, in order.
    pub raw_locns: Vec<RawLocn>,
}

/// Parses a 512-byte metadata area header that lvm2 placed at byte `expected_start`.
pub fn parse_mda_header(buf: &[u8], expected_start: u64) -> Result<MdaHeader, String> {
    parse_mda_header_inner(buf, expected_start, true)
}

/// Like [`parse_mda_header`], but accepts a header whose own checksum fails as long
/// as everything else is sound (magic, version, start). For recovery only: the
/// metadata text it points to still carries its own checksum.
pub fn parse_mda_header_ignoring_checksum(
    buf: &[u8],
    expected_start: u64,
) -> Result<MdaHeader, String> {
    parse_mda_header_inner(buf, expected_start, false)
}

fn parse_mda_header_inner(
    buf: &[u8],
    expected_start: u64,
    verify: bool,
) -> Result<MdaHeader, String> {
    let sector = buf
        .get(..512)
        .ok_or_else(|| "metadata area header is cut short".to_string())?;
    let stored = le_u32(sector, 0).ok_or("cut short")?;
    let computed = calc_crc(INITIAL_CRC, sector.get(4..).ok_or("cut short")?);
    if slice_at(sector, 4, 16) != Some(&FMTT_MAGIC[..]) {
        return Err("no metadata area magic (\" LVM2 x[5A%r0N*>\")".to_string());
    }
    if verify && stored != computed {
        return Err(format!(
            "header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    let version = le_u32(sector, 20).ok_or("cut short")?;
    if version != FMTT_VERSION {
        return Err(format!("unknown metadata area version {version}"));
    }
    let start = le_u64(sector, 24).ok_or("cut short")?;
    let size = le_u64(sector, 32).ok_or("cut short")?;
    if start != expected_start {
        return Err(format!(
            "header says it starts at byte {start}, but the PV header puts it at {expected_start}"
        ));
    }
    if size <= MDA_HEADER_SIZE {
        return Err(format!("area size {size} leaves no room for metadata"));
    }
    let mut raw_locns = Vec::new();
    for i in 0..MAX_RAW_LOCNS {
        let base = i
            .checked_mul(24)
            .and_then(|x| x.checked_add(40))
            .ok_or("cut short")?;
        let (Some(offset), Some(lsize), Some(checksum), Some(flags)) = (
            le_u64(sector, base),
            le_u64(sector, base.saturating_add(8)),
            le_u32(sector, base.saturating_add(16)),
            le_u32(sector, base.saturating_add(20)),
        ) else {
            break;
        };
        if offset == 0 {
            // lvm2 ends the list at the first zero offset.
            break;
        }
        raw_locns.push(RawLocn {
            offset,
            size: lsize,
            checksum,
            flags,
        });
    }
    Ok(MdaHeader {
        start,
        size,
        raw_locns,
    })
}

/// The metadata text of one `raw_locn`, read from the ring (wrapping if needed).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RawText {
    /// The text bytes, trailing NULs removed.
    pub text: Vec<u8>,
    /// Whether the stored checksum matches.
    pub checksum_ok: bool,
    /// Whether the text wrapped around the end of the ring.
    pub wrapped: bool,
}

/// How [`read_raw_text`]'s error starts when the device failed the read (a bad
/// sector) rather than the area being damaged: the scan counts those as read
/// errors survived (or not) through the other copies.
pub const READ_FAILED: &str = "cannot read";

/// Reads the text that `rl` points to in the area described by `mda`.
pub fn read_raw_text(
    source: &dyn ByteSource,
    mda: &MdaHeader,
    rl: &RawLocn,
) -> Result<RawText, String> {
    if rl.size == 0 {
        return Err("metadata location has size 0".to_string());
    }
    if rl.size > MAX_TEXT_SIZE {
        return Err(format!(
            "metadata text size {} exceeds the {MAX_TEXT_SIZE}-byte limit",
            rl.size
        ));
    }
    if rl.offset < MDA_HEADER_SIZE || rl.offset >= mda.size {
        return Err(format!(
            "metadata text offset {} lies outside the area (size {})",
            rl.offset, mda.size
        ));
    }
    // Bytes from offset to the end of the ring, then the rest from just after the header.
    let first = (mda.size.saturating_sub(rl.offset)).min(rl.size);
    let second = rl.size.saturating_sub(first);
    let ring = mda.size.saturating_sub(MDA_HEADER_SIZE);
    if second > ring {
        return Err(format!(
            "metadata text of {} bytes is larger than the ring ({ring} bytes)",
            rl.size
        ));
    }
    let total = usize::try_from(rl.size).map_err(|_| "metadata text too large".to_string())?;
    let first_len = usize::try_from(first).map_err(|_| "metadata text too large".to_string())?;
    let mut text = vec![0u8; total];
    let (a, b) = text
        .split_at_mut_checked(first_len)
        .ok_or_else(|| "metadata text split".to_string())?;
    let abs = mda
        .start
        .checked_add(rl.offset)
        .ok_or_else(|| "metadata text offset overflows".to_string())?;
    source
        .read_at(abs, a)
        .map_err(|e| format!("{READ_FAILED} metadata text at byte {abs}: {e}"))?;
    if !b.is_empty() {
        let abs2 = mda
            .start
            .checked_add(MDA_HEADER_SIZE)
            .ok_or_else(|| "metadata area offset overflows".to_string())?;
        source
            .read_at(abs2, b)
            .map_err(|e| format!("{READ_FAILED} the wrapped metadata text at byte {abs2}: {e}"))?;
    }
    let checksum_ok = calc_crc(INITIAL_CRC, &text) == rl.checksum;
    while text.last() == Some(&0) {
        text.pop();
    }
    Ok(RawText {
        text,
        checksum_ok,
        wrapped: second > 0,
    })
}

/// Most candidate texts [`search_ring`] returns per area.
const MAX_RING_CANDIDATES: usize = 8;
/// How far into a candidate text its `seqno` is looked for.
const SEQNO_WINDOW: usize = 4096;

/// The number after the first `seqno = ` in `window`.
fn seqno_in(window: &[u8]) -> Option<u64> {
    let key = b"seqno = ";
    let at = window.windows(key.len()).position(|w| w == key)?;
    let digits = window.get(at.checked_add(key.len())?..)?;
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(digits.get(..n)?).ok()?.parse().ok()
}

/// Looks for whole metadata texts anywhere in the ring of `mda`, the way
/// `pvck --dump metadata_search` does: lvm2 writes each new version at a 512-byte
/// boundary after the previous one, so older versions stay in the ring until they
/// are overwritten. A candidate starts at a 512-byte boundary with `NAME {` and
/// runs to the next NUL (wrapping at the end of the ring). Returns up to 8
/// `(offset in the area, text)`, highest `seqno` first; nothing here is
/// checksummed, so callers must treat the results as a last resort.
pub fn search_ring(source: &dyn ByteSource, mda: &MdaHeader) -> Vec<(u64, Vec<u8>)> {
    let ring_len = mda.size.saturating_sub(MDA_HEADER_SIZE).min(MAX_TEXT_SIZE);
    let Ok(len) = usize::try_from(ring_len) else {
        return Vec::new();
    };
    let Some(start) = mda.start.checked_add(MDA_HEADER_SIZE) else {
        return Vec::new();
    };
    let mut ring = vec![0u8; len];
    if source.read_at(start, &mut ring).is_err() {
        return Vec::new();
    }
    // Cheap pass: every 512-byte boundary that starts like a text, with its seqno.
    let mut found: Vec<(u64, usize)> = Vec::new();
    for at in (0..len).step_by(512) {
        let Some(head) = ring.get(at..) else { break };
        let name_len = head
            .iter()
            .take(128)
            .take_while(|&&b| b.is_ascii_alphanumeric() || b"+_.-".contains(&b))
            .count();
        if name_len == 0 || head.get(name_len..name_len.saturating_add(2)) != Some(b" {") {
            continue;
        }
        let window = head.get(..SEQNO_WINDOW.min(head.len())).unwrap_or_default();
        if let Some(seqno) = seqno_in(window) {
            found.push((seqno, at));
        }
    }
    found.sort_by_key(|&(seqno, _)| std::cmp::Reverse(seqno));
    found
        .into_iter()
        .take(MAX_RING_CANDIDATES)
        .filter_map(|(_, at)| {
            // The text runs to the next NUL, possibly wrapping to the ring's start.
            let tail = ring.get(at..)?;
            let front = ring.get(..at)?;
            let mut text: Vec<u8> = tail.iter().copied().take_while(|&b| b != 0).collect();
            if text.len() == tail.len() {
                text.extend(front.iter().copied().take_while(|&b| b != 0));
            }
            let offset = u64::try_from(at).ok()?.checked_add(MDA_HEADER_SIZE)?;
            Some((offset, text))
        })
        .collect()
}
