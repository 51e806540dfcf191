//! `vmdkrecover find`: walk a tree, filtering like GNU find: `--name`/`--iname`
//! (shell globs on the last component), `--type` (f d l p s c b, comma lists),
//! `--size [+-]N[cwbkMG]`, `--newer-than`/`--older-than` (ISO 8601 or `@EPOCH`),
//! `--maxdepth`; `--print0` ends names with NUL instead of a newline.
//!
//! Every printed path can be pasted back as a SPEC: it starts with what the user
//! typed (the volume prefix, or the guest path), as GNU find's output starts with
//! its starting point ([`super::Shown`]).

use super::{parse_time_ns, show_name, walk_to_depth, Common, EntryJson, Outcome, Shown};
use anyhow::{bail, Result};
use fsapi::{FileType, Metadata, Timestamp};
use std::io::Write;

/// What `find` was asked for.
#[derive(Clone, Debug, Default)]
pub struct FindOptions {
    /// `--name GLOB`.
    pub name: Option<String>,
    /// `--iname GLOB`.
    pub iname: Option<String>,
    /// `--type` letters, comma separated.
    pub kind: Option<String>,
    /// `--size [+-]N[cwbkMG]`.
    pub size: Option<String>,
    /// `--newer-than DATE`: modified strictly after.
    pub newer_than: Option<String>,
    /// `--older-than DATE`: modified strictly before.
    pub older_than: Option<String>,
    /// `--maxdepth N`.
    pub maxdepth: Option<usize>,
    /// `--print0`.
    pub print0: bool,
    /// `--json`.
    pub json: bool,
}

/// `--type` letters as GNU find has them.
pub fn parse_types(s: &str) -> Result<Vec<FileType>> {
    let mut out = Vec::new();
    for t in s.split(',') {
        out.push(match t {
            "f" => FileType::Regular,
            "d" => FileType::Directory,
            "l" => FileType::Symlink,
            "p" => FileType::Fifo,
            "s" => FileType::Socket,
            "c" => FileType::CharDevice,
            "b" => FileType::BlockDevice,
            other => bail!("--type {other}: expected f, d, l, p, s, c or b (or a comma list: f,d)"),
        });
    }
    Ok(out)
}

/// `--size`: GNU find's `-size`: the size rounded up to whole units is compared
/// with N; `+N` more than N units, `-N` fewer, `N` exactly N. Units: `c` bytes,
/// `w` 2-byte words, `b` 512-byte blocks (the default), `k`, `M`, `G` (1024-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeTest {
    /// -1 fewer, 0 exactly, 1 more.
    cmp: i8,
    n: u64,
    unit: u64,
}

impl SizeTest {
    /// Parses `[+-]N[cwbkMG]`.
    pub fn parse(s: &str) -> Result<SizeTest> {
        let bad = || anyhow::anyhow!("--size {s}: expected [+-]N[cwbkMG], e.g. +10M, -1k, 512c");
        let (cmp, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => (0, s),
        };
        let (digits, unit) = match rest.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (&rest[..i], Some(c)),
            _ => (rest, None),
        };
        let unit = match unit {
            None | Some('b') => 512,
            Some('c') => 1,
            Some('w') => 2,
            Some('k') => 1024,
            Some('M') => 1 << 20,
            Some('G') => 1 << 30,
            Some(_) => return Err(bad()),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n = digits.parse().map_err(|_| bad())?;
        Ok(SizeTest { cmp, n, unit })
    }

    /// True when `size` bytes pass.
    pub fn matches(&self, size: u64) -> bool {
        let units = size.div_ceil(self.unit);
        match self.cmp {
            1 => units > self.n,
            -1 => units < self.n,
            _ => units == self.n,
        }
    }
}

/// Runs `find`.
pub fn run(common: &Common, spec: &str, opts: &FindOptions) -> Result<Outcome> {
    let glob = |g: &str, icase: bool| -> Result<globset::GlobMatcher> {
        Ok(globset::GlobBuilder::new(g)
            .case_insensitive(icase)
            .backslash_escape(true)
            .build()?
            .compile_matcher())
    };
    let name = opts.name.as_deref().map(|g| glob(g, false)).transpose()?;
    let iname = opts.iname.as_deref().map(|g| glob(g, true)).transpose()?;
    let types = opts.kind.as_deref().map(parse_types).transpose()?;
    let size = opts.size.as_deref().map(SizeTest::parse).transpose()?;
    let newer = opts.newer_than.as_deref().map(parse_time_ns).transpose()?;
    let older = opts.older_than.as_deref().map(parse_time_ns).transpose()?;
    let stack = common.open()?;
    let target = common.target(&stack, spec)?;
    let shown = Shown::new(spec, &target.path);
    let fs = &*target.fs.fs;
    let top = fs.metadata(fs.lookup(&target.path)?)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut outcome = Outcome::default();
    let mut entries = Vec::new();
    let mut failures = 0;
    let keep = |path: &[u8], inode: &Metadata| -> bool {
        let base = path.rsplit(|b| *b == b'/').next().unwrap_or(path);
        // The root's "name" is the path itself, as GNU find's -name sees `/`.
        let base = if base.is_empty() { path } else { base };
        let base = String::from_utf8_lossy(base);
        if name.as_ref().is_some_and(|g| !g.is_match(base.as_ref())) {
            return false;
        }
        if iname.as_ref().is_some_and(|g| !g.is_match(base.as_ref())) {
            return false;
        }
        if types
            .as_ref()
            .is_some_and(|t| !t.contains(&inode.file_type))
        {
            return false;
        }
        if size.is_some_and(|s| !s.matches(inode.size)) {
            return false;
        }
        let m = inode.mtime;
        if newer.is_some_and(|n: Timestamp| m <= n) {
            return false;
        }
        if older.is_some_and(|o: Timestamp| m >= o) {
            return false;
        }
        true
    };
    walk_to_depth(
        &target.fs,
        &target.path,
        top,
        opts.maxdepth,
        &mut |path, inode| {
            if !keep(path, inode) {
                return Ok(());
            }
            if opts.json {
                entries.push(EntryJson::new(fs, path, inode));
            } else if opts.print0 {
                // Raw bytes: NUL-separated output is for machines (xargs -0).
                out.write_all(&shown.show(path))?;
                out.write_all(b"\0")?;
            } else {
                writeln!(out, "{}", show_name(&shown.show(path)))?;
            }
            Ok(())
        },
        &mut |p, e| {
            eprintln!("vmdkrecover: {}: {e:#}", show_name(&shown.show(p)));
            failures += 1;
        },
    )?;
    outcome.failures += failures;
    if opts.json {
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
    }
    out.flush()?;
    outcome.end_walk(&target);
    outcome.end_read_warnings(&stack);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_like_gnu_find() {
        // GNU find: -size -1k matches only empty files (1 byte rounds up to 1k).
        let t = SizeTest::parse("-1k").unwrap();
        assert!(t.matches(0));
        assert!(!t.matches(1));
        let t = SizeTest::parse("1k").unwrap();
        assert!(t.matches(1) && t.matches(1024) && !t.matches(1025));
        let t = SizeTest::parse("+2M").unwrap();
        assert!(!t.matches(2 << 20) && t.matches((2 << 20) + 1));
        let t = SizeTest::parse("1").unwrap(); // 512-byte blocks
        assert!(t.matches(512) && !t.matches(513));
        assert!(SizeTest::parse("k").is_err());
        assert!(SizeTest::parse("10x").is_err());
        assert_eq!(parse_types("f,d").unwrap().len(), 2);
        assert!(parse_types("x").is_err());
    }
}
