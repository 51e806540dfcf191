//! `vmdkrecover ls`: list directories (or show files), like coreutils' `ls -1`,
//! `ls -l`, `ls -R`, `ls -a`/`-A`, `ls -d`, `ls -h`, `--time-style`; plus
//! `--checksum` and `--csv` as virt-ls has them, and `--json`.
//!
//! Operands are SPECs; shell globs (`*`, `?`, `[...]`) in their paths are expanded
//! against the image's directories ([`super::expand_glob`]), never the host's.
//! Names are shown so that they can be pasted back as a SPEC ([`super::Shown`]).
//! Times are UTC, and the default style says so (`2024-03-01 12:00 +0000`).

use super::{
    expand_glob, human_size, join, mode_string, show_name, Common, EntryJson, Outcome, Shown,
    TimeStyle,
};
use crate::spec::{eprint_line, OpenFs, Target};
use anyhow::Result;
use fsapi::{FileType, Metadata};
use std::io::Write;

/// Which names starting with `.` are listed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Hidden {
    /// Hide them (the default).
    #[default]
    Hide,
    /// `-A`: show them, but not `.` and `..`.
    AlmostAll,
    /// `-a`: show them, and `.` and `..`.
    All,
}

/// What `ls` was asked for.
#[derive(Clone, Debug)]
pub struct LsOptions {
    /// `-l`.
    pub long: bool,
    /// `-R`.
    pub recursive: bool,
    /// `--json`.
    pub json: bool,
    /// `--csv`.
    pub csv: bool,
    /// `-h`: sizes (and `total`) in powers of 1024.
    pub human: bool,
    /// `-a`, `-A`.
    pub hidden: Hidden,
    /// `-d`: list directories themselves, not their contents.
    pub directory: bool,
    /// `--checksum`: SHA-256 of every regular file.
    pub checksum: bool,
    /// `--time-style`.
    pub time_style: TimeStyle,
}

/// One thing to print: its name as shown, its path in the filesystem, its inode.
struct Item {
    name: Vec<u8>,
    path: Vec<u8>,
    md: Metadata,
}

/// Runs `ls` on one or more SPECs.
pub fn run(common: &Common, specs: &[String], opts: &LsOptions) -> Result<Outcome> {
    let stack = common.open()?;
    let mut outcome = Outcome::default();
    let mut first_error = None;
    // Each operand: (index of its target, shown name, path, metadata).
    let mut targets: Vec<(Target, Shown)> = Vec::new();
    let mut operands: Vec<(usize, Item)> = Vec::new();
    for spec in specs {
        let r = (|| -> Result<()> {
            let target = common.target(&stack, spec)?;
            let shown = Shown::new(spec, &target.path);
            let paths = expand_glob(&target.fs, &target.path)?;
            let idx = targets.len();
            for p in paths {
                let fs = &*target.fs.fs;
                let mut md = fs.metadata(fs.lookup(&p)?)?;
                let name = shown.show(&p);
                let mut p = p;
                // coreutils: without -l or -d, a symlink to a directory named on
                // the command line is followed (inside the guest).
                if md.file_type == FileType::Symlink && !opts.long && !opts.directory {
                    if let Ok((to, tmd)) = crate::spec::lookup_follow(fs, &p) {
                        if tmd.file_type == FileType::Directory {
                            (p, md) = (to, tmd);
                        }
                    }
                }
                operands.push((idx, Item { name, path: p, md }));
            }
            targets.push((target, shown));
            Ok(())
        })();
        if let Err(e) = r {
            if specs.len() == 1 {
                return Err(e);
            }
            eprintln!("vmdkrecover: {spec}: {e:#}");
            outcome.failures += 1;
            first_error.get_or_insert(e);
        }
    }
    if operands.is_empty() {
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let mut p = Printer {
        opts,
        now,
        outcome: &mut outcome,
        json: Vec::new(),
    };

    if opts.json || opts.csv {
        for (idx, item) in &operands {
            let (target, shown) = &targets[*idx];
            if item.md.file_type != FileType::Directory || opts.directory {
                p.machine(&mut out, &target.fs, shown, item)?;
            } else if opts.recursive {
                let mut errs = 0;
                super::walk(
                    &target.fs,
                    &item.path,
                    item.md.clone(),
                    &mut |path, md| {
                        if path != item.path.as_slice() {
                            let it = Item {
                                name: shown.show(path),
                                path: path.to_vec(),
                                md: md.clone(),
                            };
                            p.machine(&mut out, &target.fs, shown, &it)?;
                        }
                        Ok(())
                    },
                    &mut |path, e| {
                        eprintln!("vmdkrecover: {}: {e:#}", show_name(&shown.show(path)));
                        errs += 1;
                    },
                )?;
                p.outcome.failures += errs;
            } else {
                for it in p.entries(&target.fs, shown, item, Hidden::AlmostAll) {
                    p.machine(&mut out, &target.fs, shown, &it)?;
                }
            }
        }
        if opts.json {
            serde_json::to_writer_pretty(&mut out, &p.json)?;
            writeln!(out)?;
        }
        out.flush()?;
        for (t, _) in &targets {
            outcome.end_walk(t);
        }
        outcome.end_read_warnings(&stack);
        exit_without_drop(stack, targets);
        return Ok(outcome);
    }

    // coreutils: files first (as one listing), then each directory.
    let (mut files, mut dirs): (Vec<_>, Vec<_>) = operands
        .into_iter()
        .partition(|(_, it)| it.md.file_type != FileType::Directory || opts.directory);
    files.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    dirs.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    let many = files.len() + dirs.len() > 1 || opts.recursive;
    if !files.is_empty() {
        let rows: Vec<_> = files
            .iter()
            .map(|(idx, it)| (&targets[*idx].0.fs, it))
            .collect();
        p.print_rows(&mut out, &rows, false)?;
    }
    let mut first = files.is_empty();
    for (idx, top) in dirs {
        let (target, shown) = &targets[idx];
        let mut stack = vec![top];
        let mut seen = std::collections::HashSet::new();
        while let Some(dir) = stack.pop() {
            if !seen.insert(dir.md.ino) {
                continue;
            }
            if many {
                if !first {
                    writeln!(out)?;
                }
                writeln!(out, "{}:", show_name(&dir.name))?;
            }
            first = false;
            let entries = p.entries(&target.fs, shown, &dir, opts.hidden);
            // The warnings this directory raised, after what was printed before it.
            out.flush()?;
            let rows: Vec<_> = entries.iter().map(|it| (&target.fs, it)).collect();
            p.print_rows(&mut out, &rows, true)?;
            if opts.recursive {
                let mut subdirs: Vec<Item> = entries
                    .into_iter()
                    .filter(|it| {
                        it.md.file_type == FileType::Directory
                            && it.path.len() > dir.path.len()
                            && !is_dot(&it.name)
                    })
                    .map(|it| Item {
                        name: shown.show(&it.path),
                        ..it
                    })
                    .collect();
                subdirs.reverse();
                stack.extend(subdirs);
            }
        }
    }
    out.flush()?;
    for (t, _) in &targets {
        outcome.end_walk(t);
    }
    outcome.end_read_warnings(&stack);
    exit_without_drop(stack, targets);
    Ok(outcome)
}

/// Leaves the opened disks and filesystems to the process's exit instead of
/// dropping them: `ls` is the last thing the process does, and freeing every
/// cached block and parsed structure one by one only for the kernel to unmap the
/// heap right after cost a local `ls -l /etc` about 5% of its instructions. Their
/// files are closed by the exit all the same.
fn exit_without_drop<T>(stack: crate::stack::Stack, targets: T) {
    std::mem::forget(targets);
    std::mem::forget(stack);
}

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

struct Printer<'a> {
    opts: &'a LsOptions,
    now: i64,
    outcome: &'a mut Outcome,
    json: Vec<EntryJson>,
}

impl Printer<'_> {
    /// A directory's entries in name order (names [`crate::names`] refuses are
    /// left out with a warning naming the directory), filtered by `hidden`, with
    /// `.` and `..` for `-a`. Each entry's `name` is its name in the directory.
    fn entries(&mut self, ofs: &OpenFs, shown: &Shown, dir: &Item, hidden: Hidden) -> Vec<Item> {
        let fs = &*ofs.fs;
        let list = fs.read_dir(dir.md.ino);
        // Warnings name the directory inside the volume, as README's "Warnings" shows.
        ofs.print_new_warnings_in(Some(&dir.path), &eprint_line);
        let mut list = match list {
            Ok(l) => l,
            Err(e) => {
                eprintln!("vmdkrecover: {}: {e}", show_name(&shown.show(&dir.path)));
                self.outcome.failures += 1;
                return Vec::new();
            }
        };
        let mut names = crate::names::DirNames::new();
        list.retain(|e| match names.admit(&e.name) {
            Ok(()) => true,
            Err(why) => {
                ofs.warn(&format!("{}: {why}", show_name(&dir.path)), &eprint_line);
                false
            }
        });
        if hidden == Hidden::Hide {
            list.retain(|e| !e.name.starts_with(b"."));
        }
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let mut items = Vec::with_capacity(list.len() + 2);
        if hidden == Hidden::All {
            items.push(Item {
                name: b".".to_vec(),
                path: dir.path.clone(),
                md: dir.md.clone(),
            });
            let parent = parent_of(&dir.path);
            let pmd = fs
                .lookup(&parent)
                .and_then(|i| fs.metadata(i))
                .unwrap_or_else(|_| dir.md.clone());
            items.push(Item {
                name: b"..".to_vec(),
                path: parent,
                md: pmd,
            });
        }
        for e in list {
            let path = join(&dir.path, &e.name);
            match fs.metadata(e.ino) {
                Ok(md) => items.push(Item {
                    name: e.name,
                    path,
                    md,
                }),
                Err(err) => {
                    eprintln!("vmdkrecover: {}: {err}", show_name(&shown.show(&path)));
                    self.outcome.failures += 1;
                }
            }
        }
        items
    }

    /// SHA-256 of a regular file's contents, or None (and a failure) when it
    /// cannot be read.
    fn checksum(&mut self, ofs: &OpenFs, it: &Item) -> Option<String> {
        if !self.opts.checksum || it.md.file_type != FileType::Regular {
            return None;
        }
        match sha256_of(&*ofs.fs, &it.md) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("vmdkrecover: {}: checksum: {e}", show_name(&it.name));
                self.outcome.failures += 1;
                None
            }
        }
    }

    /// One `--json` or `--csv` record.
    fn machine(
        &mut self,
        out: &mut dyn Write,
        ofs: &OpenFs,
        shown: &Shown,
        it: &Item,
    ) -> Result<()> {
        let sum = self.checksum(ofs, it);
        let mut e = EntryJson::new(&*ofs.fs, &it.path, &it.md);
        e.sha256 = sum;
        if self.opts.json {
            self.json.push(e);
            return Ok(());
        }
        let mut fields = vec![
            csv_field(&shown.show(&it.path)),
            e.kind.to_string(),
            format!("{:04o}", e.mode),
            e.nlink.to_string(),
            e.uid.to_string(),
            e.gid.to_string(),
            e.size.to_string(),
            format!("{}.{:09}", e.mtime, e.mtime_nsec),
            e.target
                .as_deref()
                .map(|t| csv_field(t.as_bytes()))
                .unwrap_or_default(),
        ];
        if self.opts.checksum {
            fields.push(e.sha256.unwrap_or_default());
        }
        writeln!(out, "{}", fields.join(","))?;
        Ok(())
    }

    /// Prints entries, one per line or as `ls -l` columns (aligned like coreutils);
    /// `total` (1 KiB blocks, from st_blocks) when listing a directory.
    fn print_rows(
        &mut self,
        out: &mut dyn Write,
        rows: &[(&OpenFs, &Item)],
        total: bool,
    ) -> Result<()> {
        let opts = self.opts;
        let sums: Vec<Option<String>> = rows.iter().map(|(o, it)| self.checksum(o, it)).collect();
        let sum_col = |s: &Option<String>, ft: FileType| match s {
            Some(s) => s.clone(),
            None if ft == FileType::Regular => "?".to_string(),
            None => "-".to_string(),
        };
        if !opts.long {
            for ((_, it), s) in rows.iter().zip(&sums) {
                if opts.checksum {
                    write!(out, "{}  ", sum_col(s, it.md.file_type))?;
                }
                write_name(out, &it.name)?;
                writeln!(out)?;
            }
            return Ok(());
        }
        if total {
            // coreutils adds the entries' 512-byte blocks, then rounds up to KiB.
            let sectors: u128 = rows.iter().map(|(_, it)| u128::from(it.md.blocks)).sum();
            let bytes = sectors.saturating_mul(512);
            if opts.human {
                writeln!(
                    out,
                    "total {}",
                    human_size(u64::try_from(bytes).unwrap_or(u64::MAX))
                )?;
            } else {
                writeln!(out, "total {}", bytes.div_ceil(1024))?;
            }
        }
        // Numbers are kept as numbers and written padded (no String per column
        // and row: a local `ls -l /etc` spent a fifth of its instructions here).
        let cells: Vec<Cells> = rows
            .iter()
            .map(|(_, it)| {
                let md = &it.md;
                let size = match md.rdev {
                    Some((maj, min))
                        if matches!(md.file_type, FileType::CharDevice | FileType::BlockDevice) =>
                    {
                        Size::Text(format!("{maj}, {min}"))
                    }
                    _ if opts.human => Size::Text(human_size(md.size)),
                    _ => Size::Bytes(md.size),
                };
                Cells {
                    mode: mode_string(md.mode, md.file_type),
                    size,
                    time: opts.time_style.format(md.mtime, self.now),
                }
            })
            .collect();
        // coreutils' marker after the mode: `+` for a POSIX ACL, `.` for only an
        // SELinux context; when one entry of the listing has one, the others get a
        // space there so the columns stay aligned (ls.c, print_long_format).
        let markers: Vec<char> = rows
            .iter()
            .map(|(o, it)| acl_marker(&*o.fs, &it.md))
            .collect();
        let any_marker = markers.iter().any(|m| *m != ' ');
        let cells: Vec<Cells> = cells
            .into_iter()
            .zip(&markers)
            .map(|(mut c, m)| {
                if any_marker {
                    c.mode.push(*m);
                }
                c
            })
            .collect();
        let width = |f: &dyn Fn(&Metadata) -> u64| {
            rows.iter()
                .map(|(_, it)| digits(f(&it.md)))
                .max()
                .unwrap_or(0)
        };
        let w1 = width(&|md| u64::from(md.nlink));
        let w2 = width(&|md| u64::from(md.uid));
        let w3 = width(&|md| u64::from(md.gid));
        let w4 = cells.iter().map(|c| c.size.width()).max().unwrap_or(0);
        for (((ofs, it), c), s) in rows.iter().zip(&cells).zip(&sums) {
            let md = &it.md;
            out.write_all(c.mode.as_bytes())?;
            write_padded(out, u64::from(md.nlink), w1)?;
            write_padded(out, u64::from(md.uid), w2)?;
            write_padded(out, u64::from(md.gid), w3)?;
            match &c.size {
                Size::Bytes(n) => write_padded(out, *n, w4)?,
                Size::Text(t) => write!(out, " {t:>w4$}")?,
            }
            out.write_all(b" ")?;
            out.write_all(c.time.as_bytes())?;
            out.write_all(b" ")?;
            if opts.checksum {
                write!(out, "{} ", sum_col(s, it.md.file_type))?;
            }
            write_name(out, &it.name)?;
            if it.md.file_type == FileType::Symlink {
                match ofs.fs.read_link(it.md.ino) {
                    Ok(t) => {
                        out.write_all(b" -> ")?;
                        write_name(out, &t)?;
                    }
                    Err(e) => write!(out, " -> (unreadable: {e})")?,
                }
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

/// The columns of one `ls -l` row that are not numbers of the metadata.
struct Cells {
    /// Mode string, with the ACL marker when the listing has any.
    mode: String,
    size: Size,
    time: String,
}

/// The size column: bytes, or text (`-h`, a device's `major, minor`).
enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    /// Characters it takes (sizes and device numbers are ASCII).
    fn width(&self) -> usize {
        match self {
            Size::Bytes(n) => digits(*n),
            Size::Text(t) => t.len(),
        }
    }
}

/// Decimal digits of `n`.
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Writes a space, then `n` right-aligned in `width` columns (as `{:>width$}`).
fn write_padded(out: &mut dyn Write, n: u64, width: usize) -> std::io::Result<()> {
    if width > 40 {
        return write!(out, " {n:>width$}");
    }
    let mut buf = [b' '; 64];
    let mut at = buf.len();
    let mut v = n;
    loop {
        at = at.saturating_sub(1);
        if let Some(d) = buf.get_mut(at) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let used = buf.len().saturating_sub(at);
    // Leading spaces: one separator and the padding (fits: 20 digits at most,
    // 41 columns at most).
    let pad = width.saturating_sub(used).saturating_add(1);
    at = at.saturating_sub(pad);
    out.write_all(buf.get(at..).unwrap_or_default())
}

/// Writes a name as [`show_name`] shows it; printable ASCII (most names) as is.
fn write_name(out: &mut dyn Write, name: &[u8]) -> std::io::Result<()> {
    if name.iter().all(|b| (0x20..0x7f).contains(b)) {
        out.write_all(name)
    } else {
        out.write_all(show_name(name).as_bytes())
    }
}

/// The character GNU ls prints after the mode: `+` when the inode has a POSIX ACL
/// (`system.posix_acl_access`, or `system.posix_acl_default` on a directory, as
/// gnulib's file_has_acl tests them), else `.` when it has an SELinux context
/// (`security.selinux`), else a space. Unreadable attributes count as none.
pub fn acl_marker(fs: &dyn fsapi::Filesystem, md: &Metadata) -> char {
    let Ok(xattrs) = fs.xattrs(md.ino) else {
        return ' ';
    };
    let has = |n: &[u8]| xattrs.iter().any(|x| x.name == n);
    if has(b"system.posix_acl_access")
        || (md.file_type == FileType::Directory && has(b"system.posix_acl_default"))
    {
        '+'
    } else if has(b"security.selinux") {
        '.'
    } else {
        ' '
    }
}

/// `/etc/x` -> `/etc`; `/etc` -> `/`; `/` -> `/`.
fn parent_of(path: &[u8]) -> Vec<u8> {
    match path.iter().rposition(|b| *b == b'/') {
        Some(0) | None => b"/".to_vec(),
        Some(i) => path.get(..i).unwrap_or(b"/").to_vec(),
    }
}

/// RFC 4180: quoted when it holds a comma, a quote or a line break.
fn csv_field(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.into_owned()
    }
}

/// SHA-256 of a regular file, read through the filesystem in 1 MiB pieces.
pub fn sha256_of(fs: &dyn fsapi::Filesystem, md: &Metadata) -> Result<String> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    while offset < md.size {
        let n = fs.read_at(md.ino, offset, &mut buf)?;
        if n == 0 {
            anyhow::bail!("short read at byte {offset} of {}", md.size);
        }
        h.update(buf.get(..n).unwrap_or_default());
        offset += n as u64;
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
