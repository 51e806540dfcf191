//! `vmdkrecover ls`: list a directory, like `ls -1`, `ls -l`, `ls -R`.

use super::{format_time, join, mode_string, show_name, walk, Common, EntryJson, Outcome};
use crate::spec::{eprint_line, OpenFs};
use anyhow::Result;
use fsapi::{FileType, Metadata};
use std::io::Write;

/// Runs `ls`.
pub fn run(
    common: &Common,
    spec: &str,
    long: bool,
    recursive: bool,
    json: bool,
) -> Result<Outcome> {
    let stack = common.open()?;
    let target = common.target(&stack, spec)?;
    let fs = &*target.fs.fs;
    let ino = fs.lookup(&target.path)?;
    let top = fs.metadata(ino)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut outcome = Outcome::default();

    if json {
        let mut entries = Vec::new();
        if top.file_type != FileType::Directory {
            entries.push(EntryJson::new(fs, &target.path, &top));
        } else if recursive {
            let mut on_err = |p: &[u8], e: &anyhow::Error| {
                eprintln!("vmdkrecover: {}: {e:#}", show_name(p));
                outcome.failures += 1;
            };
            walk(
                &target.fs,
                &target.path,
                top,
                &mut |p, i| {
                    if p != target.path.as_slice() {
                        entries.push(EntryJson::new(fs, p, i));
                    }
                    Ok(())
                },
                &mut on_err,
            )?;
        } else {
            let listed = sorted_dir(&target.fs, &target.path, &top);
            target
                .fs
                .print_new_warnings_in(Some(&target.path), &eprint_line);
            for e in listed? {
                let p = join(&target.path, &e.name);
                match fs.metadata(e.ino) {
                    Ok(i) => entries.push(EntryJson::new(fs, &p, &i)),
                    Err(err) => {
                        eprintln!("vmdkrecover: {}: {err}", show_name(&p));
                        outcome.failures += 1;
                    }
                }
            }
        }
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
        out.flush()?;
        outcome.end_walk(&target);
        return Ok(outcome);
    }

    if top.file_type != FileType::Directory {
        print_entry(&mut out, fs, &target.path, &top, long)?;
        out.flush()?;
        outcome.end_walk(&target);
        return Ok(outcome);
    }
    let mut dirs = vec![(target.path.clone(), top)];
    let mut seen = std::collections::HashSet::new();
    let mut first = true;
    while let Some((path, dir)) = dirs.pop() {
        if !seen.insert(dir.ino) {
            continue;
        }
        if recursive {
            if !first {
                writeln!(out)?;
            }
            writeln!(out, "{}:", show_name(&path))?;
        }
        first = false;
        let entries = sorted_dir(&target.fs, &path, &dir);
        if recursive {
            // Long listings: the warnings this directory raised, as they come.
            out.flush()?;
        }
        target.fs.print_new_warnings_in(Some(&path), &eprint_line);
        let entries = match entries {
            Ok(e) => e,
            Err(e) => {
                eprintln!("vmdkrecover: {}: {e}", show_name(&path));
                outcome.failures += 1;
                continue;
            }
        };
        if long {
            writeln!(out, "total {}", entries.len())?;
        }
        let mut subdirs = Vec::new();
        for e in entries {
            let p = join(&path, &e.name);
            match fs.metadata(e.ino) {
                Ok(i) => {
                    print_entry(&mut out, fs, &e.name, &i, long)?;
                    if recursive && i.file_type == FileType::Directory {
                        subdirs.push((p, i));
                    }
                }
                Err(err) => {
                    eprintln!("vmdkrecover: {}: {err}", show_name(&p));
                    outcome.failures += 1;
                }
            }
        }
        subdirs.reverse();
        dirs.extend(subdirs);
    }
    out.flush()?;
    outcome.end_walk(&target);
    Ok(outcome)
}

/// A directory's entries in name order, without the names [`crate::names`]
/// refuses (each refused with a warning naming the directory).
fn sorted_dir(ofs: &OpenFs, path: &[u8], dir: &Metadata) -> Result<Vec<fsapi::DirEntry>> {
    let mut entries = ofs.fs.read_dir(dir.ino)?;
    let mut names = crate::names::DirNames::new();
    entries.retain(|e| match names.admit(&e.name) {
        Ok(()) => true,
        Err(why) => {
            ofs.warn(&format!("{}: {why}", show_name(path)), &eprint_line);
            false
        }
    });
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

fn print_entry(
    out: &mut dyn Write,
    fs: &dyn fsapi::Filesystem,
    name: &[u8],
    inode: &Metadata,
    long: bool,
) -> Result<()> {
    if !long {
        writeln!(out, "{}", show_name(name))?;
        return Ok(());
    }
    let size = match inode.rdev {
        Some((maj, min))
            if matches!(
                inode.file_type,
                FileType::CharDevice | FileType::BlockDevice
            ) =>
        {
            format!("{maj}, {min}")
        }
        _ => inode.size.to_string(),
    };
    write!(
        out,
        "{} {:>3} {:>5} {:>5} {:>10} {} {}",
        mode_string(inode.mode, inode.file_type),
        inode.nlink,
        inode.uid,
        inode.gid,
        size,
        &format_time(inode.mtime.secs)[..16],
        show_name(name)
    )?;
    if inode.file_type == FileType::Symlink {
        match fs.read_link(inode.ino) {
            Ok(t) => write!(out, " -> {}", show_name(&t))?,
            Err(e) => write!(out, " -> (unreadable: {e})")?,
        }
    }
    writeln!(out)?;
    Ok(())
}
