//! `vmdkrecover descriptor rewrite|show|check`.

use super::Outcome;
use anyhow::{anyhow, bail, Context, Result};
use std::io::Write;
use std::path::Path;

/// Largest descriptor file we read as text.
const MAX_DESCRIPTOR: u64 = 10 << 20;

fn read_text(path: &Path) -> Result<String> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("{}: cannot open", path.display()))?;
    if meta.len() > MAX_DESCRIPTOR {
        bail!(
            "{}: {} bytes is too large for a text descriptor (a binary sparse file? use `info`)",
            path.display(),
            meta.len()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    String::from_utf8(bytes).map_err(|_| {
        anyhow!(
            "{}: not a text descriptor (not UTF-8); binary sparse files embed theirs: use `info`",
            path.display()
        )
    })
}

/// `descriptor rewrite`: copy with new extent names, nothing else changed.
pub fn rewrite(descriptor: &Path, extents: &[String], output: &Path) -> Result<Outcome> {
    let text = read_text(descriptor)?;
    let parsed =
        vmdk::descriptor::parse(&text).map_err(|e| anyhow!("{}: {e}", descriptor.display()))?;
    let files: Vec<_> = parsed.extents.iter().filter(|e| e.file.is_some()).collect();
    if files.len() != extents.len() {
        bail!(
            "{}: has {} extent file(s) but {} --extent given; give one --extent per extent line, in order",
            descriptor.display(),
            files.len(),
            extents.len()
        );
    }
    if std::fs::symlink_metadata(output).is_ok() {
        bail!(
            "{}: already exists; vmdkrecover never overwrites a descriptor (choose a new name)",
            output.display()
        );
    }
    let out_dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    for (line, new) in files.iter().zip(extents) {
        let p = Path::new(new);
        let resolved = if p.is_absolute() {
            p.to_path_buf()
        } else {
            out_dir.join(p)
        };
        let meta = std::fs::metadata(&resolved).with_context(|| {
            format!(
                "{new}: the new extent does not exist (looked at {}); copy the flat file first",
                resolved.display()
            )
        })?;
        let declared = line
            .sectors
            .checked_mul(512)
            .ok_or_else(|| anyhow!("extent size overflows"))?;
        let needed = declared.saturating_add(line.offset.saturating_mul(512));
        if meta.len() < needed {
            bail!(
                "{new}: extent declares {} sectors ({declared} bytes), file has {} bytes",
                line.sectors,
                meta.len()
            );
        }
        if meta.len() != needed {
            eprintln!(
                "vmdkrecover: warning: {new}: file has {} bytes, the extent declares {needed}",
                meta.len()
            );
        }
    }
    let new_text =
        vmdk::descriptor::rewrite_extent_files(&text, extents).map_err(|e| anyhow!("{e}"))?;
    // Staged, then placed without replacing anything (crate::output).
    crate::output::install_signal_cleanup();
    let out = crate::output::Output::create(output, false)?;
    let mut f = out.file();
    f.write_all(new_text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("{}: write failed", output.display()))?;
    out.commit()?;
    eprintln!(
        "vmdkrecover: wrote {} (extent{} now {})",
        output.display(),
        if extents.len() > 1 { "s" } else { "" },
        extents.join(", ")
    );
    Ok(Outcome::default())
}

/// `descriptor show`.
pub fn show(descriptor: &Path, json: bool) -> Result<Outcome> {
    let text = read_text(descriptor)?;
    let d = vmdk::descriptor::parse(&text).map_err(|e| anyhow!("{}: {e}", descriptor.display()))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        let v = serde_json::json!({
            "version": d.version,
            "cid": d.cid.map(|c| format!("{c:08x}")),
            "parent_cid": d.parent_cid.map(|c| format!("{c:08x}")),
            "create_type": d.create_type,
            "parent_file_name_hint": d.parent_file_name_hint,
            "extents": d.extents.iter().map(|e| serde_json::json!({
                "access": e.access, "sectors": e.sectors, "kind": e.kind, "file": e.file, "offset": e.offset, "line": e.line,
            })).collect::<Vec<_>>(),
            "entries": d.entries.iter().map(|(k, v)| serde_json::json!([k, v])).collect::<Vec<_>>(),
        });
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        return Ok(Outcome::default());
    }
    writeln!(
        out,
        "createType: {}",
        d.create_type.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "CID: {}",
        d.cid
            .map(|c| format!("{c:08x}"))
            .unwrap_or_else(|| "-".into())
    )?;
    writeln!(
        out,
        "parentCID: {}",
        d.parent_cid
            .map(|c| format!("{c:08x}"))
            .unwrap_or_else(|| "-".into())
    )?;
    if let Some(p) = &d.parent_file_name_hint {
        writeln!(out, "parent: {p}")?;
    }
    for e in &d.extents {
        write!(
            out,
            "extent (line {}): {} {} sectors {}",
            e.line, e.access, e.sectors, e.kind
        )?;
        if let Some(f) = &e.file {
            write!(out, " \"{f}\"")?;
        }
        if e.offset != 0 {
            write!(out, " offset {}", e.offset)?;
        }
        writeln!(out)?;
    }
    for (k, v) in &d.entries {
        writeln!(out, "{k} = {v}")?;
    }
    Ok(Outcome::default())
}

/// `descriptor check`: opens the disk (which validates every extent's presence and
/// size and walks the parent chain) and reports what it found.
pub fn check(descriptor: &Path) -> Result<Outcome> {
    let disk = vmdk::Disk::open(descriptor).map_err(|e| anyhow!("{e}"))?;
    let info = disk.info();
    let warnings = disk.warnings();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(
        out,
        "{}: {} ({} bytes)",
        info.path.display(),
        info.format,
        info.size
    )?;
    for e in &info.extents {
        if let Some(f) = &e.file {
            writeln!(
                out,
                "  ok: {} {} {} sectors",
                e.kind,
                f.display(),
                e.sectors
            )?;
        }
    }
    let mut p = info.parent.as_deref();
    while let Some(pi) = p {
        writeln!(out, "  parent ok: {} ({})", pi.path.display(), pi.format)?;
        p = pi.parent.as_deref();
    }
    for w in &warnings {
        writeln!(out, "  warning: {w}")?;
    }
    Ok(Outcome {
        failures: warnings.len() as u64,
        warnings: 0,
    })
}
