//! `vmdkrecover stat`: an inode's metadata, like stat(1), plus its xattrs; `-L`
//! follows symlinks (inside the guest), `-c FORMAT` prints coreutils-style
//! directives (`%n %N %s %b %a %A %f %F %U %G %u %g %h %i %x %X %y %Y %z %Z %w %W %t %T %%`).

use super::{format_time_ns, mode_string, show_name, type_name, Common, EntryJson, Outcome};
use anyhow::Result;
use serde::Serialize;
use std::io::Write;

#[derive(Serialize)]
struct StatJson {
    /// Version of this object's shape (docs/json.md).
    schema: u32,
    volume: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    filesystem: Option<HolderJson>,
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

/// The filesystem that holds the inode (docs/json.md, `stat --json`).
#[derive(Serialize)]
struct HolderJson {
    /// Canonical volume name (`rhel/home`, `sda2`).
    volume: String,
    /// `ext4`, `xfs`, ...
    kind: String,
    /// Where the guest mounts it, for a guest path.
    #[serde(skip_serializing_if = "Option::is_none")]
    mount_point: Option<String>,
    /// The inode number inside that filesystem (what the kernel's `stat -c %i`
    /// shows on a mount of it); the entry's `ino` is the guest tree's number.
    ino: u64,
}

/// Which filesystem holds `ino` of the target, and its number there; `None` for a
/// directory the guest tree synthesises (a missing mount point's parent).
fn holder(target: &crate::spec::Target, ino: u64) -> Option<HolderJson> {
    match &target.guest {
        Some(tree) => {
            let (m, inner) = tree.owner(ino)?;
            Some(HolderJson {
                volume: m.volume.clone(),
                kind: m.fs.info().kind,
                mount_point: Some(String::from_utf8_lossy(&m.path).into_owned()),
                ino: inner,
            })
        }
        None => Some(HolderJson {
            volume: target.fs.volume.clone(),
            kind: target.fs.fs.info().kind,
            mount_point: None,
            ino,
        }),
    }
}

#[derive(Serialize)]
struct XattrJson {
    name: String,
    /// Value as text when it is printable UTF-8, else null.
    text: Option<String>,
    /// Value in hex.
    hex: String,
}

/// Runs `stat`: `follow` is `-L`, `format` is `-c FORMAT`.
pub fn run(
    common: &Common,
    spec: &str,
    json: bool,
    follow: bool,
    format: Option<&str>,
) -> Result<Outcome> {
    let stack = common.open()?;
    let target = common.target(&stack, spec)?;
    let fs = &*target.fs.fs;
    let inode = if follow {
        crate::spec::lookup_follow(fs, &target.path)?.1
    } else {
        fs.metadata(fs.lookup(&target.path)?)?
    };
    let shown = super::Shown::new(spec, &target.path).show(&target.path);
    if let Some(f) = format {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        writeln!(out, "{}", directives(f, fs, &shown, &inode))?;
        let mut outcome = Outcome::default();
        outcome.end_walk(&target);
        return Ok(outcome);
    }
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
            schema: 1,
            volume: target.fs.volume.clone(),
            filesystem: holder(&target, inode.ino),
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
    match holder(&target, inode.ino) {
        Some(h) => {
            let place = h
                .mount_point
                .map(|m| format!(", mounted at {m}"))
                .unwrap_or_default();
            if target.guest.is_some() {
                writeln!(
                    out,
                    "Volume: {} ({}{place})  Inode there: {}",
                    h.volume, h.kind, h.ino
                )?;
            } else {
                writeln!(out, "Volume: {} ({})", h.volume, h.kind)?;
            }
        }
        None => writeln!(
            out,
            "Volume: none (a directory the guest tree supplies where fstab mounts below it)"
        )?,
    }
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

/// Expands stat(1)'s `-c` directives (times UTC, `%y` as stat prints it).
fn directives(f: &str, fs: &dyn fsapi::Filesystem, name: &[u8], i: &fsapi::Metadata) -> String {
    let mut out = String::new();
    let mut chars = f.chars();
    let time = |t: Option<fsapi::Timestamp>, human: bool| match t {
        Some(t) if human => format_time_ns(t),
        Some(t) => t.secs.to_string(),
        None if human => "-".to_string(),
        None => "0".to_string(),
    };
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('\\') => out.push('\\'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
            continue;
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        let (maj, min) = i.rdev.unwrap_or((0, 0));
        match chars.next() {
            Some('n') => out.push_str(&show_name(name)),
            Some('N') => {
                out.push_str(&format!("'{}'", show_name(name)));
                if i.file_type == fsapi::FileType::Symlink {
                    if let Ok(t) = fs.read_link(i.ino) {
                        out.push_str(&format!(" -> '{}'", show_name(&t)));
                    }
                }
            }
            Some('s') => out.push_str(&i.size.to_string()),
            Some('b') => out.push_str(&i.blocks.to_string()),
            Some('B') => out.push_str("512"),
            Some('a') => out.push_str(&format!("{:o}", i.mode & 0o7777)),
            Some('A') => out.push_str(&mode_string(i.mode, i.file_type)),
            Some('f') => out.push_str(&format!("{:x}", i.mode)),
            Some('F') => out.push_str(match i.file_type {
                fsapi::FileType::Regular if i.size == 0 => "regular empty file",
                fsapi::FileType::Regular => "regular file",
                fsapi::FileType::Directory => "directory",
                fsapi::FileType::Symlink => "symbolic link",
                fsapi::FileType::CharDevice => "character special file",
                fsapi::FileType::BlockDevice => "block special file",
                fsapi::FileType::Fifo => "fifo",
                fsapi::FileType::Socket => "socket",
                fsapi::FileType::Unknown => "weird file",
            }),
            // No passwd database of the guest is read: names are the numbers.
            Some('u') | Some('U') => out.push_str(&i.uid.to_string()),
            Some('g') | Some('G') => out.push_str(&i.gid.to_string()),
            Some('h') => out.push_str(&i.nlink.to_string()),
            Some('i') => out.push_str(&i.ino.to_string()),
            Some('t') => out.push_str(&format!("{maj:x}")),
            Some('T') => out.push_str(&format!("{min:x}")),
            Some('x') => out.push_str(&time(Some(i.atime), true)),
            Some('X') => out.push_str(&time(Some(i.atime), false)),
            Some('y') => out.push_str(&time(Some(i.mtime), true)),
            Some('Y') => out.push_str(&time(Some(i.mtime), false)),
            Some('z') => out.push_str(&time(Some(i.ctime), true)),
            Some('Z') => out.push_str(&time(Some(i.ctime), false)),
            Some('w') => out.push_str(&time(i.crtime, true)),
            Some('W') => out.push_str(&time(i.crtime, false)),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}
