//! `vmdkrecover find`: walk a tree, filtering by name glob, type and mtime.

use super::{parse_time, show_name, walk, Common, EntryJson, Outcome};
use anyhow::{bail, Result};
use std::io::Write;

/// Runs `find`.
pub fn run(
    common: &Common,
    spec: &str,
    name: Option<&str>,
    kind: Option<&str>,
    newer_than: Option<&str>,
    json: bool,
) -> Result<Outcome> {
    let glob = match name {
        Some(g) => Some(globset::Glob::new(g)?.compile_matcher()),
        None => None,
    };
    let want_type = match kind {
        None => None,
        Some("f") => Some(fsapi::FileType::Regular),
        Some("d") => Some(fsapi::FileType::Directory),
        Some("l") => Some(fsapi::FileType::Symlink),
        Some(other) => bail!("--type {other}: expected f, d or l"),
    };
    let newer = newer_than.map(parse_time).transpose()?;
    let stack = common.open()?;
    let target = common.target(&stack, spec)?;
    let fs = &*target.fs.fs;
    let top = fs.metadata(fs.lookup(&target.path)?)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut outcome = Outcome::default();
    let mut entries = Vec::new();
    let mut failures = 0;
    walk(
        &target.fs,
        &target.path,
        top,
        &mut |path, inode| {
            let base = path.rsplit(|b| *b == b'/').next().unwrap_or(path);
            if let Some(g) = &glob {
                let base = String::from_utf8_lossy(base);
                if !g.is_match(base.as_ref()) {
                    return Ok(());
                }
            }
            if want_type.is_some_and(|t| t != inode.file_type) {
                return Ok(());
            }
            if newer.is_some_and(|n| inode.mtime.secs <= n) {
                return Ok(());
            }
            if json {
                entries.push(EntryJson::new(fs, path, inode));
            } else {
                writeln!(out, "{}", show_name(path))?;
            }
            Ok(())
        },
        &mut |p, e| {
            eprintln!("vmdkrecover: {}: {e:#}", show_name(p));
            failures += 1;
        },
    )?;
    outcome.failures += failures;
    if json {
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
    }
    out.flush()?;
    outcome.end_walk(&target);
    Ok(outcome)
}
