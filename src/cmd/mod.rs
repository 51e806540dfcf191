//! The front ends. Each command returns an [`Outcome`]: how many items failed and
//! how many filesystem warnings its reading raised (exit status 1 when either is
//! not zero), or an error that stopped it (exit status 2). Commands see
//! filesystems only through `fsapi`.

pub mod cat;
pub mod cp;
pub mod descriptor;
pub mod diff;
pub mod export;
pub mod find;
pub mod info;
pub mod ls;
pub mod mount;
pub mod stat;
pub mod tar;
pub mod versions;

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

    /// The same options for another IMAGE (`versions` and `diff` read several).
    pub fn for_image(&self, image: &std::path::Path) -> Common {
        Common {
            request: OpenRequest {
                image: image.to_path_buf(),
                ..self.request.clone()
            },
            replay_journal: self.replay_journal,
        }
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

/// Read errors the disk layers survived (a backup GPT, a redundant grain table, the
/// other LVM metadata copy; [`Stack::read_warnings`]), printed once each as
/// `vmdkrecover: warning: ...` and counted: nothing is lost, but the disk is
/// failing, so the command exits 1 (README, "Exit status").
#[derive(Default)]
pub struct ReadWarnings {
    seen: std::collections::HashSet<String>,
}

impl ReadWarnings {
    /// Prints the entries not printed yet and returns how many there were.
    pub fn print_new(&mut self, stack: &Stack, emit: &dyn Fn(&str)) -> u64 {
        let mut n = 0u64;
        for w in stack.read_warnings() {
            if self.seen.insert(w.clone()) {
                emit(&format!("vmdkrecover: warning: {w}"));
                n = n.saturating_add(1);
            }
        }
        n
    }
}

impl Outcome {
    /// Prints every read error survived so far (see [`ReadWarnings`]) and counts
    /// them as warnings: for commands that print them once, at the end.
    pub fn end_read_warnings(&mut self, stack: &Stack) {
        self.warnings += ReadWarnings::default().print_new(stack, &eprint_line);
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

/// Parses a point in time to seconds since the epoch: see [`parse_time_ns`].
pub fn parse_time(s: &str) -> Result<i64> {
    parse_time_ns(s).map(|t| t.secs)
}

/// Parses a point in time for `find --newer-than`/`--older-than`: ISO 8601 dates
/// and date-times (`2024-03-01`, `2024-03-01 12:00`, `2024-03-01T12:00:00.5`,
/// with `Z` or an offset `+02:00`, `+0200`, `-05`; no offset means UTC), or
/// `@EPOCH` (seconds, may be negative, may have a fraction).
pub fn parse_time_ns(s: &str) -> Result<Timestamp> {
    let bad = || {
        anyhow::anyhow!(
            "{s}: expected an ISO 8601 date or date-time (2024-03-01, 2024-03-01T12:00:00+02:00, ...; UTC unless an offset is given) or @EPOCH"
        )
    };
    if let Some(e) = s.strip_prefix('@') {
        let (whole, frac) = e.split_once('.').unwrap_or((e, ""));
        let secs: i64 = whole.parse().map_err(|_| bad())?;
        let nanos = parse_fraction(frac).ok_or_else(bad)?;
        if nanos != 0 && whole.starts_with('-') {
            // -1.5 is 1.5 seconds before the epoch: (-2, 0.5).
            return Ok(Timestamp {
                secs: secs.checked_sub(1).ok_or_else(bad)?,
                nanos: 1_000_000_000 - nanos,
            });
        }
        return Ok(Timestamp { secs, nanos });
    }
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut dp = date.splitn(3, '-');
    let num = |v: Option<&str>, len: usize| -> Option<i64> {
        v.filter(|v| v.len() == len && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse().ok())
    };
    let y = num(dp.next(), 4).ok_or_else(bad)?;
    let m = num(dp.next(), 2)
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(bad)?;
    let d = num(dp.next(), 2)
        .filter(|d| (1..=days_in_month(y, m)).contains(d))
        .ok_or_else(bad)?;
    let mut secs = days_from_civil(y, m as u32, d as u32) * 86_400;
    let mut nanos = 0;
    if let Some(t) = time {
        // Split off the zone: Z, or +/- after the clock.
        let (clock, zone) = match t.find(['Z', 'z', '+', '-']) {
            Some(i) => (&t[..i], &t[i..]),
            None => (t, ""),
        };
        let (clock, frac) = clock.split_once(['.', ',']).unwrap_or((clock, ""));
        let mut tp = clock.split(':');
        let h = num(tp.next(), 2)
            .filter(|h| (0..24).contains(h))
            .ok_or_else(bad)?;
        let mi = num(tp.next(), 2)
            .filter(|m| (0..60).contains(m))
            .ok_or_else(bad)?;
        let se = match tp.next() {
            Some(v) => num(Some(v), 2)
                .filter(|s| (0..61).contains(s))
                .ok_or_else(bad)?,
            None => 0,
        };
        if tp.next().is_some() {
            return Err(bad());
        }
        nanos = parse_fraction(frac).ok_or_else(bad)?;
        secs += h * 3600 + mi * 60 + se;
        if !zone.is_empty() && !zone.eq_ignore_ascii_case("z") {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let z = zone[1..].replace(':', "");
            let (zh, zm) = match z.len() {
                2 => (num(Some(&z), 2), Some(0)),
                4 => (num(Some(&z[..2]), 2), num(Some(&z[2..]), 2)),
                _ => (None, None),
            };
            let (zh, zm) = (
                zh.filter(|h| *h <= 23).ok_or_else(bad)?,
                zm.filter(|m| *m <= 59).ok_or_else(bad)?,
            );
            // Local time = UTC + offset, so UTC = local - offset.
            secs -= sign * (zh * 3600 + zm * 60);
        }
    }
    Ok(Timestamp { secs, nanos })
}

/// `5` -> 500000000 nanoseconds (at most 9 digits kept; more are ignored).
fn parse_fraction(frac: &str) -> Option<u32> {
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    digits.parse().ok()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `ls --time-style`: how `ls -l` shows a modification time. Times are UTC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeStyle {
    /// `2024-03-01 12:00 +0000` (the default: long-iso with the zone shown).
    Default,
    /// `2024-03-01 12:00:00.000000000 +0000`.
    FullIso,
    /// `2024-03-01 12:00`.
    LongIso,
    /// `03-01 12:00` within six months of now, else `2024-03-01`.
    Iso,
    /// `+FORMAT`: strftime-like (see [`strftime`]).
    Format(String),
}

impl TimeStyle {
    /// Parses a `--time-style` value (coreutils' names; `posix-` prefixes accepted).
    pub fn parse(s: &str) -> Result<TimeStyle> {
        let s = s.strip_prefix("posix-").unwrap_or(s);
        Ok(match s {
            "full-iso" => TimeStyle::FullIso,
            "long-iso" => TimeStyle::LongIso,
            "iso" => TimeStyle::Iso,
            "default" | "utc" => TimeStyle::Default,
            f if f.starts_with('+') => TimeStyle::Format(f[1..].to_string()),
            other => {
                anyhow::bail!("--time-style {other}: expected full-iso, long-iso, iso or +FORMAT")
            }
        })
    }

    /// Formats `t` (`now` decides what "recent" means for `iso`).
    pub fn format(&self, t: Timestamp, now: i64) -> String {
        match self {
            TimeStyle::Default => strftime("%Y-%m-%d %H:%M %z", t),
            TimeStyle::FullIso => strftime("%Y-%m-%d %H:%M:%S.%N %z", t),
            TimeStyle::LongIso => strftime("%Y-%m-%d %H:%M", t),
            TimeStyle::Iso => {
                // coreutils: "recent" is within the last six months (and not in the future).
                let six_months = 31_556_952 / 2;
                if t.secs <= now && now.saturating_sub(t.secs) < six_months {
                    strftime("%m-%d %H:%M", t)
                } else {
                    strftime("%Y-%m-%d ", t)
                }
            }
            TimeStyle::Format(f) => strftime(f, t),
        }
    }
}

/// A small strftime (UTC): `%Y %m %d %H %M %S %N %z %Z %s %F %T %e %j %%`; anything
/// else is copied as is.
pub fn strftime(fmt: &str, t: Timestamp) -> String {
    use std::fmt::Write as _;
    let (y, mo, d) = civil_from_days(t.secs.div_euclid(86_400));
    let s = t.secs.rem_euclid(86_400);
    let (h, mi, se) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut chars = fmt.chars();
    // Fields are written straight into `out` (`ls -l` formats one time per
    // entry); writing to a String cannot fail.
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let _ = match chars.next() {
            Some('Y') => push_zero_padded(&mut out, y, 4),
            Some('m') => push_zero_padded(&mut out, i64::from(mo), 2),
            Some('d') => push_zero_padded(&mut out, i64::from(d), 2),
            Some('e') => write!(out, "{d:>2}"),
            Some('H') => push_zero_padded(&mut out, h, 2),
            Some('M') => push_zero_padded(&mut out, mi, 2),
            Some('S') => push_zero_padded(&mut out, se, 2),
            Some('N') => write!(out, "{:09}", t.nanos),
            Some('z') => write!(out, "+0000"),
            Some('Z') => write!(out, "UTC"),
            Some('s') => write!(out, "{}", t.secs),
            Some('F') => write!(out, "{y:04}-{mo:02}-{d:02}"),
            Some('T') => write!(out, "{h:02}:{mi:02}:{se:02}"),
            Some('j') => {
                let doy = t.secs.div_euclid(86_400) - days_from_civil(y, 1, 1) + 1;
                write!(out, "{doy:03}")
            }
            Some('%') => write!(out, "%"),
            Some(other) => write!(out, "%{other}"),
            None => write!(out, "%"),
        };
    }
    out
}

/// Appends `v` as `format!("{v:0width$}")` would (`ls -l` formats five fields per
/// entry; the formatting machinery costs several times this loop). Negative
/// values take the general path.
fn push_zero_padded(out: &mut String, v: i64, width: usize) -> std::fmt::Result {
    let Ok(mut n) = u64::try_from(v) else {
        use std::fmt::Write as _;
        return write!(out, "{v:0width$}");
    };
    let mut digits = [0u8; 20];
    let mut len = 0;
    for slot in digits.iter_mut() {
        *slot = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for _ in len..width {
        out.push('0');
    }
    for &b in digits.iter().take(len).rev() {
        out.push(char::from(b));
    }
    Ok(())
}

/// A size as `ls -h` shows it: powers of 1024, rounded up, one decimal below 10
/// (`35`, `1.1K`, `9.0K`, `16K`, `1.0M`), as coreutils' human.c does with
/// `human_ceiling | human_autoscale | human_base_1024`.
pub fn human_size(n: u64) -> String {
    if n < 1024 {
        return n.to_string();
    }
    const UNITS: [char; 8] = ['K', 'M', 'G', 'T', 'P', 'E', 'Z', 'Y'];
    let n = u128::from(n);
    let mut unit: u128 = 1024;
    for u in UNITS {
        // Tenths, rounded up.
        let tenths = n.saturating_mul(10).div_ceil(unit);
        if tenths < 100 {
            return format!("{}.{}{u}", tenths / 10, tenths % 10);
        }
        let whole = n.div_ceil(unit);
        if whole < 1024 {
            return format!("{whole}{u}");
        }
        unit = unit.saturating_mul(1024);
    }
    format!("{}Y", n.div_ceil(unit / 1024))
}

/// How paths found under a SPEC are shown so that they can be pasted back as a
/// SPEC: with the volume as the user typed it (`sda1:/grub/grub.conf`), or as
/// the guest path the user typed (`/boot/grub/grub.conf` for `/boot`, which lives
/// on `sda1` as `/grub`).
#[derive(Clone, Debug)]
pub struct Shown {
    /// Put in front of a path inside the filesystem.
    prefix: Vec<u8>,
    /// True when `prefix` ends with `:` (a volume prefix).
    volume: bool,
}

impl Shown {
    /// For `spec` (as typed) resolved to `inner` (the path in the filesystem).
    pub fn new(spec: &str, inner: &[u8]) -> Shown {
        match Spec::parse(spec) {
            Ok(Spec::OnVolume { volume, .. }) => Shown {
                prefix: format!("{volume}:").into_bytes(),
                volume: true,
            },
            Ok(Spec::Guest { path }) => {
                // The guest path ends with the inner path, below the mount point.
                let prefix = if inner == b"/" {
                    path
                } else {
                    path.strip_suffix(inner)
                        .map(<[u8]>::to_vec)
                        .unwrap_or_default()
                };
                let prefix = if prefix == b"/" { Vec::new() } else { prefix };
                Shown {
                    prefix,
                    volume: false,
                }
            }
            Err(_) => Shown {
                prefix: Vec::new(),
                volume: false,
            },
        }
    }

    /// The SPEC for a path inside the filesystem.
    pub fn show(&self, path: &[u8]) -> Vec<u8> {
        if path == b"/" && !self.volume && !self.prefix.is_empty() {
            return self.prefix.clone();
        }
        let mut out = self.prefix.clone();
        out.extend_from_slice(path);
        out
    }
}

/// True when a path component holds shell glob characters (`*`, `?`, `[`).
pub fn has_glob(s: &[u8]) -> bool {
    s.iter().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// Expands shell globs in `path` against the filesystem's own directories (never
/// the host's): each component with `*`, `?` or `[...]` is matched against the
/// names in the directories reached so far (a leading `.` only by a pattern that
/// starts with `.`). Returns the matching paths in name order; a path without glob
/// characters, or one that exists as typed, is returned as is.
pub fn expand_glob(ofs: &OpenFs, path: &[u8]) -> Result<Vec<Vec<u8>>> {
    let fs = &*ofs.fs;
    if !has_glob(path) || fs.lookup(path).is_ok() {
        return Ok(vec![path.to_vec()]);
    }
    let mut current: Vec<Vec<u8>> = vec![b"/".to_vec()];
    for comp in path.split(|b| *b == b'/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        if !has_glob(comp) {
            for c in &current {
                next.push(join(c, comp));
            }
        } else {
            let pat = String::from_utf8_lossy(comp);
            let m = globset::GlobBuilder::new(&pat)
                .literal_separator(true)
                .backslash_escape(true)
                .build()?
                .compile_matcher();
            for c in &current {
                let Ok(ino) = fs.lookup(c) else { continue };
                let Ok(md) = fs.metadata(ino) else { continue };
                if md.file_type != FileType::Directory {
                    continue;
                }
                let Ok(entries) = fs.read_dir(ino) else {
                    continue;
                };
                ofs.print_new_warnings_in(Some(c), &eprint_line);
                let mut names = crate::names::DirNames::new();
                let mut hits: Vec<Vec<u8>> = entries
                    .into_iter()
                    .filter(|e| names.admit(&e.name).is_ok())
                    .filter(|e| !e.name.starts_with(b".") || comp.starts_with(b"."))
                    .filter(|e| m.is_match(String::from_utf8_lossy(&e.name).as_ref()))
                    .map(|e| join(c, &e.name))
                    .collect();
                hits.sort();
                next.extend(hits);
            }
        }
        current = next;
        if current.is_empty() {
            break;
        }
    }
    current.retain(|p| fs.lookup(p).is_ok());
    if current.is_empty() {
        anyhow::bail!("{}: no match", show_name(path));
    }
    Ok(current)
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
    /// SHA-256 of the contents (regular files, `ls --checksum` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
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
            sha256: None,
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
    walk_to_depth(ofs, root_path, root, None, visit, on_error)
}

/// [`walk`], descending at most `max_depth` levels below `root` (`Some(0)`: only
/// `root` itself), as `find -maxdepth`.
pub fn walk_to_depth(
    ofs: &OpenFs,
    root_path: &[u8],
    root: Metadata,
    max_depth: Option<usize>,
    visit: &mut dyn FnMut(&[u8], &Metadata) -> Result<()>,
    on_error: &mut dyn FnMut(&[u8], &anyhow::Error),
) -> Result<()> {
    let fs = &*ofs.fs;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![(root_path.to_vec(), root, 0usize)];
    while let Some((path, md, depth)) = stack.pop() {
        visit(&path, &md)?;
        if md.file_type != FileType::Directory
            || max_depth.is_some_and(|m| depth >= m)
            || !seen.insert(md.ino)
        {
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
                Ok(i) => children.push((p, i, depth + 1)),
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
    fn zero_padding_matches_std_formatting() {
        // The oracle is std's own `{:0width$}`, which strftime used before.
        for v in [
            0i64,
            1,
            9,
            10,
            59,
            99,
            100,
            999,
            1969,
            2024,
            9999,
            10_000,
            i64::MAX,
            -1,
            -5,
            -123,
            i64::MIN,
        ] {
            for width in [0usize, 1, 2, 4, 20] {
                let mut out = String::from("x");
                push_zero_padded(&mut out, v, width).unwrap();
                assert_eq!(out, format!("x{v:0width$}"), "{v} width {width}");
            }
        }
    }

    #[test]
    fn modes() {
        assert_eq!(mode_string(0o4755, FileType::Regular), "-rwsr-xr-x");
        assert_eq!(mode_string(0o1777, FileType::Directory), "drwxrwxrwt");
        assert_eq!(mode_string(0o777, FileType::Symlink), "lrwxrwxrwx");
    }
}
