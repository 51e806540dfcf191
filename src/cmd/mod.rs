//! The front ends. Each command returns an [`Outcome`]: how many items failed and
//! how many filesystem warnings its reading raised (exit status 1 when either is
//! not zero), or an error that stopped it (exit status 2). Commands see
//! filesystems only through `fsapi`.

pub mod cat;
pub mod cp;
pub mod descriptor;
pub mod export;
pub mod find;
pub mod info;
pub mod ls;
pub mod mount;
pub mod stat;
pub mod tar;

use crate::spec::{eprint_line, resolve, OpenFs, Spec, Target};
use crate::stack::{OpenRequest, Stack};
use anyhow::Result;
use fsapi::{FileType, Metadata, Timestamp};
use serde::Serialize;
use std::io::Write;
use std::process::ExitCode;

/// What every image-reading command gets.
pub struct Common {
    /// Which disks to open.
    pub request: OpenRequest,
    /// Replay the ext journal in memory (default) or show the on-disk state.
    pub replay_journal: bool,
}

impl Common {
    /// Opens the stack. Its warnings (a missing PV of another VG, a damaged backup
    /// GPT) are not printed here: `info` shows them, and a SPEC that runs into one
    /// gets it in its error message.
    pub fn open(&self) -> Result<Stack> {
        Stack::open(&self.request)
    }

    /// Opens the stack and resolves one SPEC on it.
    pub fn target(&self, stack: &Stack, spec: &str) -> Result<Target> {
        let spec = Spec::parse(spec)?;
        let t = resolve(stack, &spec, self.replay_journal)?;
        // What the filesystem found when it was opened (journal replayed, orphans
        // pending) is printed but does not change the exit status.
        t.fs.opened(&eprint_line);
        Ok(t)
    }
}

/// How a command ended when it did not stop on an error.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    /// Items (files, volumes) that could not be handled.
    pub failures: u64,
    /// Warnings raised while the command read the filesystem (after it was opened):
    /// each means something may be missing or wrong in the output.
    pub warnings: u64,
}

impl Outcome {
    /// Prints the target filesystem's warnings not printed yet and counts those
    /// raised since it was opened.
    pub fn end_walk(&mut self, target: &Target) {
        self.warnings += target.fs.finish_warnings(&eprint_line);
    }
}

/// Prints the error, if any, and maps the result to the exit status of the contract.
pub fn finish(result: Result<Outcome>) -> ExitCode {
    match result {
        Ok(o) if o.failures == 0 && o.warnings == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            // The reader went away (`| head`): the output is incomplete, so not
            // success, but the reader knows; exit 1 without a message, as GNU
            // tools killed by SIGPIPE report failure without one.
            if is_broken_pipe(&e) {
                return ExitCode::from(1);
            }
            let mut msg = String::new();
            for (i, cause) in e.chain().enumerate() {
                if i > 0 {
                    msg.push_str(": ");
                }
                msg.push_str(&cause.to_string());
            }
            let _ = writeln!(std::io::stderr(), "vmdkrecover: {msg}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `drwxr-xr-x` from an i_mode.
pub fn mode_string(mode: u32, ft: FileType) -> String {
    let t = match ft {
        FileType::Directory => 'd',
        FileType::Symlink => 'l',
        FileType::CharDevice => 'c',
        FileType::BlockDevice => 'b',
        FileType::Fifo => 'p',
        FileType::Socket => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    let bit = |m: u32, c: char| if mode & m != 0 { c } else { '-' };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(match (mode & 0o100 != 0, mode & 0o4000 != 0) {
        (true, true) => 's',
        (false, true) => 'S',
        (true, false) => 'x',
        _ => '-',
    });
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(match (mode & 0o010 != 0, mode & 0o2000 != 0) {
        (true, true) => 's',
        (false, true) => 'S',
        (true, false) => 'x',
        _ => '-',
    });
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(match (mode & 0o001 != 0, mode & 0o1000 != 0) {
        (true, true) => 't',
        (false, true) => 'T',
        (true, false) => 'x',
        _ => '-',
    });
    s
}

/// Short type name used in JSON and find.
pub fn type_name(ft: FileType) -> &'static str {
    match ft {
        FileType::Regular => "file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::CharDevice => "char-device",
        FileType::BlockDevice => "block-device",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::Unknown => "unknown",
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2024-03-01 12:00:00` (UTC).
pub fn format_time(secs: i64) -> String {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `2024-03-01 12:00:00.123456789 +0000` as stat(1) prints.
pub fn format_time_ns(t: Timestamp) -> String {
    format!("{}.{:09} +0000", format_time(t.secs), t.nanos)
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DD HH:MM`, `YYYY-MM-DD HH:MM:SS` (UTC, `T` allowed) or `@EPOCH`.
pub fn parse_time(s: &str) -> Result<i64> {
    if let Some(e) = s.strip_prefix('@') {
        return e
            .parse()
            .map_err(|_| anyhow::anyhow!("{s}: not a number of seconds"));
    }
    let bad = || anyhow::anyhow!("{s}: expected YYYY-MM-DD[ HH:MM[:SS]] (UTC) or @EPOCH");
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (s, None),
    };
    let mut dp = date.splitn(3, '-');
    let y: i64 = dp.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let m: u32 = dp
        .next()
        .and_then(|v| v.parse().ok())
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(bad)?;
    let d: u32 = dp
        .next()
        .and_then(|v| v.parse().ok())
        .filter(|d| (1..=31).contains(d))
        .ok_or_else(bad)?;
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(t) = time {
        let mut tp = t.split(':');
        let h: i64 = tp
            .next()
            .and_then(|v| v.parse().ok())
            .filter(|h| (0..24).contains(h))
            .ok_or_else(bad)?;
        let mi: i64 = tp
            .next()
            .and_then(|v| v.parse().ok())
            .filter(|m| (0..60).contains(m))
            .ok_or_else(bad)?;
        let se: i64 = match tp.next() {
            Some(v) => v
                .parse()
                .ok()
                .filter(|s| (0..61).contains(s))
                .ok_or_else(bad)?,
            None => 0,
        };
        secs += h * 3600 + mi * 60 + se;
    }
    Ok(secs)
}

/// One directory entry or file, as `ls --json`, `find --json` and `stat --json` show it.
#[derive(Serialize)]
pub struct EntryJson {
    /// Path inside the volume.
    pub path: String,
    /// Last component.
    pub name: String,
    /// file, directory, symlink, char-device, block-device, fifo, socket.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Inode number.
    pub ino: u64,
    /// Permission bits (incl. setuid/setgid/sticky), as a number.
    pub mode: u32,
    /// Same, as `ls -l` shows it.
    pub mode_string: String,
    /// Hard link count.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch (may be negative).
    pub mtime: i64,
    /// Nanoseconds of the modification time.
    pub mtime_nsec: u32,
    /// Symlink target (symlinks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl EntryJson {
    /// Builds the JSON view of an inode.
    pub fn new(fs: &dyn fsapi::Filesystem, path: &[u8], inode: &Metadata) -> Self {
        let name = path
            .rsplit(|b| *b == b'/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or(b"/");
        let target = if inode.file_type == FileType::Symlink {
            fs.read_link(inode.ino)
                .ok()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
        } else {
            None
        };
        EntryJson {
            path: String::from_utf8_lossy(path).into_owned(),
            name: String::from_utf8_lossy(name).into_owned(),
            kind: type_name(inode.file_type),
            ino: inode.ino,
            mode: inode.mode & 0o7777,
            mode_string: mode_string(inode.mode, inode.file_type),
            nlink: inode.nlink,
            uid: inode.uid,
            gid: inode.gid,
            size: inode.size,
            mtime: inode.mtime.secs,
            mtime_nsec: inode.mtime.nanos,
            target,
        }
    }
}

/// Joins a directory path and a name.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if p.last() != Some(&b'/') {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Writes bytes that may not be UTF-8 (file names) to a terminal-safe string:
/// invalid UTF-8 and control characters become `\xNN`.
pub fn show_name(name: &[u8]) -> String {
    let mut out = String::new();
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.push_str(&format!("\\x{:02x}", c as u32));
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Depth-first walk of a tree, calling `visit(path, metadata)` for every object
/// below (and including) `root`, children in name order. Directories already
/// visited (a corrupt tree with a loop) are not entered twice. Errors on single
/// objects are passed to `on_error`. Names that are not a single safe path
/// component, and repeated names, are refused with a warning ([`crate::names`]).
/// The filesystem's warnings are printed as the walk runs into them.
pub fn walk(
    ofs: &OpenFs,
    root_path: &[u8],
    root: Metadata,
    visit: &mut dyn FnMut(&[u8], &Metadata) -> Result<()>,
    on_error: &mut dyn FnMut(&[u8], &anyhow::Error),
) -> Result<()> {
    let fs = &*ofs.fs;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![(root_path.to_vec(), root)];
    while let Some((path, md)) = stack.pop() {
        visit(&path, &md)?;
        if md.file_type != FileType::Directory || !seen.insert(md.ino) {
            continue;
        }
        let entries = fs.read_dir(md.ino);
        ofs.print_new_warnings_in(Some(&path), &eprint_line);
        let entries = match entries {
            Ok(e) => e,
            Err(e) => {
                on_error(&path, &anyhow::Error::new(e));
                continue;
            }
        };
        let mut names = crate::names::DirNames::new();
        let mut children = Vec::with_capacity(entries.len());
        for e in entries {
            if let Err(why) = names.admit(&e.name) {
                ofs.warn(&format!("{}: {why}", show_name(&path)), &eprint_line);
                continue;
            }
            let p = join(&path, &e.name);
            match fs.metadata(e.ino) {
                Ok(i) => children.push((p, i)),
                Err(err) => on_error(&p, &anyhow::Error::new(err)),
            }
        }
        children.sort_by(|a, b| b.0.cmp(&a.0));
        stack.extend(children);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_709_294_400), "2024-03-01 12:00:00");
        assert_eq!(format_time(-1), "1969-12-31 23:59:59");
        assert_eq!(format_time(4_102_444_800), "2100-01-01 00:00:00");
        assert_eq!(parse_time("2024-03-01 12:00").unwrap(), 1_709_294_400);
        assert_eq!(parse_time("2024-03-01").unwrap(), 1_709_251_200);
        assert_eq!(parse_time("@-5").unwrap(), -5);
        assert!(parse_time("2024-13-01").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(mode_string(0o4755, FileType::Regular), "-rwsr-xr-x");
        assert_eq!(mode_string(0o1777, FileType::Directory), "drwxrwxrwt");
        assert_eq!(mode_string(0o777, FileType::Symlink), "lrwxrwxrwx");
    }
}
