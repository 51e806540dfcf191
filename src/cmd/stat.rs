//! `vmdkrecover stat`: an inode's metadata, like stat(1), plus its xattrs.

use super::{format_time_ns, mode_string, show_name, type_name, Common, EntryJson, Outcome};
use anyhow::Result;
use serde::Serialize;
use std::io::Write;

#[derive(Serialize)]
struct StatJson {
    volume: String,
    #[serde(flatten)]
    entry: EntryJson,
    blocks: u64,
    flags: u64,
    generation: u32,
    atime: i64,
    atime_nsec: u32,
    ctime: i64,
    ctime_nsec: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    crtime: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crtime_nsec: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rdev: Option<(u32, u32)>,
    xattrs: Vec<XattrJson>,
}

#[derive(Serialize)]
struct XattrJson {
    name: String,
    /// Value as text when it is printable UTF-8, else null.
    text: Option<String>,
    /// Value in hex.
    hex: String,
}

/// Runs `stat`.
pub fn run(common: &Common, spec: &str, json: bool) -> Result<Outcome> {
    let stack = common.open()?;
    let target = common.target(&stack, spec)?;
    let fs = &*target.fs.fs;
    let inode = fs.metadata(fs.lookup(&target.path)?)?;
    let mut outcome = Outcome::default();
    let xattrs = match fs.xattrs(inode.ino) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("vmdkrecover: {}: extended attributes: {e}", target.display);
            outcome.failures += 1;
            Vec::new()
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        let s = StatJson {
            volume: target.fs.volume.clone(),
            entry: EntryJson::new(fs, &target.path, &inode),
            blocks: inode.blocks,
            flags: inode.flags,
            generation: inode.generation,
            atime: inode.atime.secs,
            atime_nsec: inode.atime.nanos,
            ctime: inode.ctime.secs,
            ctime_nsec: inode.ctime.nanos,
            crtime: inode.crtime.map(|t| t.secs),
            crtime_nsec: inode.crtime.map(|t| t.nanos),
            rdev: inode.rdev,
            xattrs: xattrs
                .iter()
                .map(|x| XattrJson {
                    name: String::from_utf8_lossy(&x.name).into_owned(),
                    text: std::str::from_utf8(x.value.strip_suffix(b"\0").unwrap_or(&x.value))
                        .ok()
                        .filter(|s| !s.chars().any(char::is_control))
                        .map(str::to_string),
                    hex: x.value.iter().map(|b| format!("{b:02x}")).collect(),
                })
                .collect(),
        };
        serde_json::to_writer_pretty(&mut out, &s)?;
        writeln!(out)?;
        outcome.end_walk(&target);
        return Ok(outcome);
    }
    let mut file_line = show_name(&target.path);
    if inode.file_type == fsapi::FileType::Symlink {
        if let Ok(t) = fs.read_link(inode.ino) {
            file_line = format!("{file_line} -> {}", show_name(&t));
        }
    }
    writeln!(out, "  File: {file_line}")?;
    writeln!(out, "Volume: {}", target.fs.volume)?;
    writeln!(
        out,
        "  Size: {:<15} Blocks: {:<10} {}",
        inode.size,
        inode.blocks,
        type_name(inode.file_type)
    )?;
    write!(out, " Inode: {:<15} Links: {:<10}", inode.ino, inode.nlink)?;
    if let Some((maj, min)) = inode.rdev {
        write!(out, " Device type: {maj},{min}")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Access: ({:04o}/{})  Uid: ({:>5})   Gid: ({:>5})",
        inode.mode & 0o7777,
        mode_string(inode.mode, inode.file_type),
        inode.uid,
        inode.gid
    )?;
    writeln!(out, "Access: {}", format_time_ns(inode.atime))?;
    writeln!(out, "Modify: {}", format_time_ns(inode.mtime))?;
    writeln!(out, "Change: {}", format_time_ns(inode.ctime))?;
    match inode.crtime {
        Some(t) => writeln!(out, " Birth: {}", format_time_ns(t))?,
        None => writeln!(out, " Birth: -")?,
    }
    writeln!(
        out,
        " Flags: 0x{:08x}  Generation: {}",
        inode.flags, inode.generation
    )?;
    for x in &xattrs {
        let v = match std::str::from_utf8(x.value.strip_suffix(b"\0").unwrap_or(&x.value)) {
            Ok(s) if !s.chars().any(char::is_control) => format!("\"{s}\""),
            _ => format!(
                "0x{}",
                x.value
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
        };
        writeln!(out, " Xattr: {}={v}", show_name(&x.name))?;
    }
    outcome.end_walk(&target);
    Ok(outcome)
}
