//! The text descriptor ("# Disk DescriptorFile"), VMware "Virtual Disk Format 5.0"
//! section "The Descriptor File", and libyal libvmdk's "Descriptor file" chapter.
//!
//! ```text
//! # Disk DescriptorFile
//! version=1
//! CID=fffffffe
//! parentCID=ffffffff
//! createType="monolithicFlat"
//!
//! # Extent description
//! RW 20971520 FLAT "web01-flat.vmdk" 0
//!
//! ddb.adapterType = "lsilogic"
//! ```
//!
//! Lines end in LF or CRLF; `#` starts a comment line; blank lines are ignored; a
//! value may be quoted or bare. Every `key = value` line is kept in order, known or
//! not. An extent line is `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`. Parsing stops at
//! the first NUL byte (embedded descriptors are NUL padded).
//!
//! The parser keeps the byte span of every extent file name so
//! [`rewrite_extent_files`] can change only those bytes.
//!
//! Why this is not written with nom (which DESIGN.md suggested): the grammar is one
//! flat level of lines, and the three things the parser must do besides
//! recognising tokens are what nom would not give us for free: an error message
//! per field that tells a sysadmin which part of which line to fix ("bad extent
//! size", "unknown extent type", with the 1-based line number), the exact byte span
//! of each file name for in-place rewriting, and tolerance of the variants real
//! tools write (CRLF, NUL padding, bare or quoted values, unknown keys kept in
//! order). With nom each field would still need its own `map_err` to produce those
//! messages, and spans would be recomputed from remaining-input lengths as here; the
//! result was not shorter. The `vmdk_descriptor` fuzz target covers this parser.

use crate::Error;
use std::ops::Range;

/// Largest descriptor text accepted (real ones are a few hundred bytes).
pub const MAX_DESCRIPTOR_BYTES: usize = 10 * 1024 * 1024;
/// Most extent lines one descriptor may list (a 2 TiB twoGbMaxExtentSparse disk has
/// 1024; VMware's largest, 62 TiB in 2 GiB pieces, about 32 thousand).
pub const MAX_EXTENT_LINES: usize = 1 << 16;

/// Extent types this parser knows (the reader supports a subset).
const KNOWN_KINDS: &[&str] = &[
    "FLAT",
    "SPARSE",
    "ZERO",
    "VMFS",
    "VMFSSPARSE",
    "VMFSRDM",
    "VMFSRAW",
    "VMFSRDMP",
    "RDM",
    "RDMP",
    "SESPARSE",
];

/// A parsed descriptor.
#[derive(Clone, Debug)]
pub struct Descriptor {
    /// `version=`.
    pub version: Option<u32>,
    /// `CID=` (hex).
    pub cid: Option<u32>,
    /// `parentCID=` (hex); `ffffffff` means no parent.
    pub parent_cid: Option<u32>,
    /// `createType=`.
    pub create_type: Option<String>,
    /// `parentFileNameHint=`.
    pub parent_file_name_hint: Option<String>,
    /// Extent lines, in order.
    pub extents: Vec<ExtentLine>,
    /// Every `key = value` line, values unquoted, in order (including `ddb.*`).
    pub entries: Vec<(String, String)>,
}

/// One extent line.
#[derive(Clone, Debug)]
pub struct ExtentLine {
    /// `RW`, `RDONLY` or `NOACCESS`.
    pub access: String,
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// `FLAT`, `SPARSE`, `ZERO`, `VMFS`, `VMFSSPARSE`, `SESPARSE`, `VMFSRDM`, ...
    pub kind: String,
    /// File name as written (no quotes); `None` for `ZERO`.
    pub file: Option<String>,
    /// Start offset in sectors inside the file (FLAT/VMFS only; 0 otherwise).
    pub offset: u64,
    /// 1-based line number.
    pub line: usize,
    /// Byte range of the file name inside the original text (inside the quotes).
    pub file_span: Option<Range<usize>>,
}

impl Descriptor {
    /// The value of the first entry named `key` (case-sensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Total size of all extents in sectors (checked).
    pub fn total_sectors(&self) -> Option<u64> {
        self.extents
            .iter()
            .try_fold(0u64, |acc, e| acc.checked_add(e.sectors))
    }
}

fn err(line: usize, msg: impl Into<String>) -> Error {
    Error::Descriptor {
        file: None,
        line,
        msg: msg.into(),
    }
}

/// Splits `text` into lines, returning (1-based number, byte start, line without EOL).
fn lines(text: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    let mut start = 0usize;
    let mut number = 0usize;
    std::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        let rest = text.get(start..)?;
        let (line, advance) = match rest.find('\n') {
            Some(i) => (rest.get(..i)?, i.checked_add(1)?),
            None => (rest, rest.len()),
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        let at = start;
        start = start.checked_add(advance)?;
        number = number.checked_add(1)?;
        Some((number, at, line))
    })
}

/// True when `text` looks like the start of a descriptor: the first line that is not
/// blank is `# Disk DescriptorFile`, or a `version=`/`encoding=`/`CID=`/`createType=`
/// line (after comments). Used to sniff a file's content.
pub fn looks_like_descriptor(text: &str) -> bool {
    for (_, _, line) in lines(text) {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if t.starts_with('#') {
            if t.to_ascii_lowercase().contains("disk descriptorfile") {
                return true;
            }
            continue;
        }
        if let Some((k, _)) = t.split_once('=') {
            let k = k.trim();
            return ["version", "encoding", "CID", "createType", "parentCID"]
                .iter()
                .any(|known| k.eq_ignore_ascii_case(known));
        }
        return false;
    }
    false
}

/// Parses descriptor text. Errors carry the 1-based line number.
pub fn parse(text: &str) -> Result<Descriptor, Error> {
    if text.len() > MAX_DESCRIPTOR_BYTES {
        return Err(err(
            0,
            format!(
                "descriptor of {} bytes is larger than the {} byte limit (not a descriptor?)",
                text.len(),
                MAX_DESCRIPTOR_BYTES
            ),
        ));
    }
    // Embedded descriptors are padded with NULs; the text ends at the first one.
    let text = match text.find('\0') {
        Some(i) => text.get(..i).unwrap_or(""),
        None => text,
    };
    let mut d = Descriptor {
        version: None,
        cid: None,
        parent_cid: None,
        create_type: None,
        parent_file_name_hint: None,
        extents: Vec::new(),
        entries: Vec::new(),
    };
    for (number, line_start, line) in lines(text) {
        let lead = line.len().saturating_sub(line.trim_start().len());
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let first = t.split_ascii_whitespace().next().unwrap_or("");
        if matches!(first, "RW" | "RDONLY" | "NOACCESS") {
            if d.extents.len() >= MAX_EXTENT_LINES {
                return Err(err(
                    number,
                    format!("more than {MAX_EXTENT_LINES} extent lines, more than any disk has"),
                ));
            }
            let start = line_start.checked_add(lead).unwrap_or(line_start);
            d.extents.push(parse_extent(t, number, start)?);
            continue;
        }
        let Some((key, value)) = t.split_once('=') else {
            return Err(err(
                number,
                format!(
                    "expected `key = value` or an extent line, found {:?}",
                    clip(t)
                ),
            ));
        };
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(err(number, format!("bad key {:?}", clip(key))));
        }
        let value = unquote(value.trim(), number)?;
        match key {
            "version" => {
                d.version = Some(
                    value
                        .parse()
                        .map_err(|_| err(number, format!("bad version {:?}", clip(&value))))?,
                )
            }
            "CID" => d.cid = Some(parse_cid(&value, number)?),
            "parentCID" => d.parent_cid = Some(parse_cid(&value, number)?),
            "createType" => d.create_type = Some(value.clone()),
            "parentFileNameHint" => d.parent_file_name_hint = Some(value.clone()),
            _ => {}
        }
        d.entries.push((key.to_string(), value));
    }
    Ok(d)
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

fn unquote(v: &str, line: usize) -> Result<String, Error> {
    if let Some(rest) = v.strip_prefix('"') {
        match rest.find('"') {
            Some(end) => Ok(rest.get(..end).unwrap_or("").to_string()),
            None => Err(err(line, "unterminated quoted value")),
        }
    } else {
        Ok(v.to_string())
    }
}

fn parse_cid(v: &str, line: usize) -> Result<u32, Error> {
    let h = v
        .strip_prefix("0x")
        .or_else(|| v.strip_prefix("0X"))
        .unwrap_or(v);
    u32::from_str_radix(h, 16).map_err(|_| err(line, format!("bad CID {:?}", clip(v))))
}

/// Parses `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`; `start` is the byte offset of `t`
/// in the whole text.
fn parse_extent(t: &str, line: usize, start: usize) -> Result<ExtentLine, Error> {
    let mut rest = t;
    let mut pos = start;
    let word = |rest: &mut &str, pos: &mut usize| -> Option<(usize, String)> {
        let trimmed = rest.trim_start();
        *pos = pos.checked_add(rest.len().checked_sub(trimmed.len())?)?;
        if trimmed.is_empty() {
            return None;
        }
        let end = trimmed
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(trimmed.len());
        let w = trimmed.get(..end)?.to_string();
        let at = *pos;
        *pos = pos.checked_add(end)?;
        *rest = trimmed.get(end..)?;
        Some((at, w))
    };
    let (_, access) = word(&mut rest, &mut pos).ok_or_else(|| err(line, "empty extent line"))?;
    let (_, sectors) =
        word(&mut rest, &mut pos).ok_or_else(|| err(line, "extent line has no size"))?;
    let sectors: u64 = sectors
        .parse()
        .map_err(|_| err(line, format!("bad extent size {:?}", clip(&sectors))))?;
    let (_, kind) =
        word(&mut rest, &mut pos).ok_or_else(|| err(line, "extent line has no type"))?;
    if !KNOWN_KINDS.contains(&kind.as_str()) {
        return Err(err(line, format!("unknown extent type {}", clip(&kind))));
    }
    // File name: quoted (may contain spaces) or a bare word.
    let trimmed = rest.trim_start();
    pos = pos
        .checked_add(rest.len().saturating_sub(trimmed.len()))
        .ok_or_else(|| err(line, "line too long"))?;
    rest = trimmed;
    let mut file = None;
    let mut file_span = None;
    if let Some(q) = rest.strip_prefix('"') {
        let end = q
            .find('"')
            .ok_or_else(|| err(line, "unterminated quoted extent file name"))?;
        let name_start = pos
            .checked_add(1)
            .ok_or_else(|| err(line, "line too long"))?;
        let name_end = name_start
            .checked_add(end)
            .ok_or_else(|| err(line, "line too long"))?;
        file = Some(q.get(..end).unwrap_or("").to_string());
        file_span = Some(name_start..name_end);
        let after = end
            .checked_add(1)
            .ok_or_else(|| err(line, "line too long"))?;
        rest = q.get(after..).unwrap_or("");
        pos = name_end
            .checked_add(1)
            .ok_or_else(|| err(line, "line too long"))?;
    } else if !rest.is_empty() {
        if let Some((at, w)) = word(&mut rest, &mut pos) {
            file_span = Some(at..at.saturating_add(w.len()));
            file = Some(w);
        }
    }
    let mut offset = 0;
    if let Some((_, w)) = word(&mut rest, &mut pos) {
        offset = w
            .parse()
            .map_err(|_| err(line, format!("bad extent offset {:?}", clip(&w))))?;
    }
    // Anything after the offset (RDM partition UUIDs etc.) is ignored.
    if kind != "ZERO" && file.is_none() {
        return Err(err(line, format!("{kind} extent line has no file name")));
    }
    Ok(ExtentLine {
        access,
        sectors,
        kind,
        file,
        offset,
        line,
        file_span,
    })
}

/// Returns `original` with the extent file names replaced, in order, by `new_files`
/// (one per extent line that names a file). Every other byte is kept.
pub fn rewrite_extent_files(original: &str, new_files: &[String]) -> Result<String, Error> {
    let d = parse(original)?;
    let spans: Vec<(usize, Range<usize>)> = d
        .extents
        .iter()
        .filter_map(|e| e.file_span.clone().map(|s| (e.line, s)))
        .collect();
    if spans.len() != new_files.len() {
        return Err(err(
            spans.first().map(|s| s.0).unwrap_or(0),
            format!(
                "descriptor has {} extent file name(s), {} replacement(s) given",
                spans.len(),
                new_files.len()
            ),
        ));
    }
    let mut out = String::with_capacity(original.len().saturating_add(256));
    let mut at = 0usize;
    for ((line, span), new) in spans.iter().zip(new_files) {
        if new.contains(['"', '\n', '\r', '\0']) || new.is_empty() {
            return Err(err(
                *line,
                format!("new extent file name {new:?} is empty or contains a quote or line break"),
            ));
        }
        out.push_str(original.get(at..span.start).unwrap_or(""));
        out.push_str(new);
        at = span.end;
    }
    out.push_str(original.get(at..).unwrap_or(""));
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Disk DescriptorFile\r\nversion=1\r\nencoding=\"UTF-8\"\r\nCID=12345678\r\nparentCID=ffffffff\r\ncreateType=\"monolithicFlat\"\r\n\r\n# Extent description\r\nRW 2048 FLAT \"my disk é-flat.vmdk\" 0\r\nRDONLY 100 ZERO\r\n  NOACCESS 8 VMFS \"b.vmdk\" 16\r\n\r\nddb.adapterType = \"lsilogic\"\r\nfoo.unknown = bare value\r\n";

    #[test]
    fn parses_crlf_comments_quotes_utf8() {
        let d = parse(SAMPLE).unwrap();
        assert_eq!(d.version, Some(1));
        assert_eq!(d.cid, Some(0x12345678));
        assert_eq!(d.parent_cid, Some(0xffffffff));
        assert_eq!(d.create_type.as_deref(), Some("monolithicFlat"));
        assert_eq!(d.extents.len(), 3);
        let e = &d.extents[0];
        assert_eq!(
            (e.access.as_str(), e.sectors, e.kind.as_str()),
            ("RW", 2048, "FLAT")
        );
        assert_eq!(e.file.as_deref(), Some("my disk é-flat.vmdk"));
        assert_eq!(&SAMPLE[e.file_span.clone().unwrap()], "my disk é-flat.vmdk");
        assert_eq!(e.line, 9);
        assert_eq!(d.extents[1].kind, "ZERO");
        assert_eq!(d.extents[1].file, None);
        assert_eq!(d.extents[2].offset, 16);
        assert_eq!(d.extents[2].access, "NOACCESS");
        assert_eq!(&SAMPLE[d.extents[2].file_span.clone().unwrap()], "b.vmdk");
        assert_eq!(d.get("ddb.adapterType"), Some("lsilogic"));
        assert_eq!(d.get("foo.unknown"), Some("bare value"));
        assert_eq!(d.entries[0].0, "version");
        assert_eq!(d.total_sectors(), Some(2156));
    }

    #[test]
    fn line_numbered_errors() {
        let e = parse("version=1\n\n# c\nCID=fffffffe\nRW 10 FOO \"x\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "descriptor line 5: unknown extent type FOO");
        let e = parse("version=1\nthis is junk\n").unwrap_err().to_string();
        assert!(e.starts_with("descriptor line 2:"), "{e}");
        let e = parse("CID=zz\n").unwrap_err().to_string();
        assert!(e.starts_with("descriptor line 1: bad CID"), "{e}");
        let e = parse("RW 10 FLAT \"x\n").unwrap_err().to_string();
        assert!(e.contains("unterminated"), "{e}");
        let e = parse("RW abc FLAT \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("bad extent size"), "{e}");
        let e = parse("RW 10 FLAT\n").unwrap_err().to_string();
        assert!(e.contains("no file name"), "{e}");
        let e = parse("RW 10 FLAT \"x\" 1x\n").unwrap_err().to_string();
        assert!(e.contains("bad extent offset"), "{e}");
        let e = parse("version=x\n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn nul_ends_text_and_huge_is_refused() {
        let d = parse("version=1\nRW 4 SPARSE \"a.vmdk\"\n\0\0garbage\u{1}").unwrap();
        assert_eq!(d.extents.len(), 1);
        let big = "#".repeat(MAX_DESCRIPTOR_BYTES + 1);
        assert!(parse(&big).unwrap_err().to_string().contains("limit"));
    }

    #[test]
    fn rewrite_keeps_every_other_byte() {
        let out =
            rewrite_extent_files(SAMPLE, &["new name-flat.vmdk".into(), "c.vmdk".into()]).unwrap();
        let expected = SAMPLE
            .replace("my disk é-flat.vmdk", "new name-flat.vmdk")
            .replace("\"b.vmdk\"", "\"c.vmdk\"");
        assert_eq!(out, expected);
        let d = parse(&out).unwrap();
        assert_eq!(d.extents[0].file.as_deref(), Some("new name-flat.vmdk"));
        assert!(rewrite_extent_files(SAMPLE, &["x".into()]).is_err());
        assert!(rewrite_extent_files(SAMPLE, &["a\"b".into(), "c".into()]).is_err());
    }

    #[test]
    fn sniffing() {
        assert!(looks_like_descriptor("# Disk DescriptorFile\nversion=1\n"));
        assert!(looks_like_descriptor("\n  \n# hi\nversion=1\n"));
        assert!(!looks_like_descriptor("hello world\n"));
        assert!(!looks_like_descriptor(""));
    }
}
