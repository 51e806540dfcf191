//! `vmdkrecover cp`: copy files and trees out of a guest filesystem, like `cp -r`.
//!
//! Guarantees (DESIGN.md, "Command line contract" and rules 1-2):
//! - nothing is written outside DEST: every name from the image is checked (no `/`,
//!   `.`, `..`, NUL, no duplicates) and an existing symlink in DEST is never followed;
//! - every object is made staged and put under its name only when complete, without
//!   replacing an existing one unless `--force` ([`crate::output`]);
//! - holes stay holes; symlinks are recreated verbatim, never followed; hard links stay
//!   hard links; mode, mtime and atime always, owner and xattrs with `-a`;
//! - a problem with one object (or one SPEC among several) is reported and counted,
//!   and the copy goes on.
//!
//! [`dest`] decides where each SPEC lands (coreutils' rules for DEST), [`walk`] walks
//! the source creating directories, symlinks and special files and queueing the
//! regular files, [`file`] copies file data (holes kept; `--retries` acts below,
//! in bytesource), [`meta`] sets owners, xattrs, modes and times.

mod ahead;
mod dest;
mod file;
mod meta;
mod prefetch;
mod walk;

pub use file::kernel_copy_stats;

/// The number in the environment variable `name`, read once into `cell` (`None`
/// when unset or not a number). These variables exist for A/B measurements
/// (BENCHMARKS.md names the one each measurement set) and for checks that force a
/// path; they are not options.
fn env_number<T: Copy + std::str::FromStr>(
    cell: &'static std::sync::OnceLock<Option<T>>,
    name: &str,
) -> Option<T> {
    *cell.get_or_init(|| std::env::var(name).ok().and_then(|v| v.parse().ok()))
}

/// Whether the switch in the environment variable `name` is on, read once into
/// `cell`: on unless it is `0` (see [`env_number`]).
fn env_switch(cell: &'static std::sync::OnceLock<bool>, name: &str) -> bool {
    *cell.get_or_init(|| std::env::var(name).map_or(true, |v| v != "0"))
}

use super::{Common, Outcome};
use crate::progress::{self, Progress};
use anyhow::{anyhow, Context, Result};
use std::sync::atomic::{AtomicU64, Ordering};

/// Options of `cp`.
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// Also owner/group (where permitted) and xattrs.
    pub archive: bool,
    /// Replace existing destination files.
    pub force: bool,
    /// `-n`: skip existing destination objects silently instead of reporting them.
    pub no_clobber: bool,
    /// `-v`: print `'SRC' -> 'DEST'` for every object made.
    pub verbose: bool,
    /// Worker threads for file data; None = number of CPUs.
    pub threads: Option<usize>,
    /// Write every readable byte of a file with unreadable ranges (zeros there),
    /// as `NAME.partial`.
    pub salvage: bool,
    /// With `salvage`, keep the file's own name.
    pub salvage_in_place: bool,
    /// Print a JSON summary on standard output.
    pub json: bool,
}

/// Runs `cp`.
pub fn run(common: &Common, args: &[String], opts: &CopyOptions) -> Result<Outcome> {
    crate::output::install_signal_cleanup();
    let (dest_arg, specs) = args
        .split_last()
        .ok_or_else(|| anyhow!("cp: need SPEC... DEST"))?;
    if specs.is_empty() {
        anyhow::bail!("cp: need at least one SPEC before DEST {dest_arg}");
    }
    let dest = dest::Dest::check(dest_arg, specs.len())?;
    let stack = common.open()?;
    let progress = Progress::new(0, true);
    if dest.is_dir {
        crate::output::warn_stale_partials(&dest.path, &|l| progress.eprintln(l));
    }
    let mut total = Stats::default();
    let mut failures = 0u64;
    let mut warnings = 0u64;
    // Read errors the disk layers survived (backup GPT, redundant grain table):
    // printed once each and counted like filesystem warnings (README, "Exit status").
    let mut disk_warned = std::collections::HashSet::new();
    let mut disk_warnings = |progress: &Progress| -> u64 {
        let mut n = 0u64;
        for w in stack.read_warnings() {
            if disk_warned.insert(w.clone()) {
                progress.eprintln(&format!("vmdkrecover: warning: {w}"));
                n += 1;
            }
        }
        n
    };
    let mut disk_read_errors = disk_warnings(&progress);
    let mut salvaged = Vec::new();
    let mut bad_specs = Vec::new();
    for spec in specs {
        // One bad SPEC among several is reported and the others are still copied.
        let planned = (|| -> Result<_> {
            let given = dest::given_path(spec)?;
            let target = common.target(&stack, spec)?;
            let ino = target
                .fs
                .fs
                .lookup(&target.path)
                .with_context(|| target.display.clone())?;
            let inode = target.fs.fs.metadata(ino)?;
            dest.accepts(dest_arg, inode.file_type)?;
            let (dst, merge_root) = dest.place_for(&given)?;
            Ok((given, target, inode, dst, merge_root))
        })();
        let (given, target, inode, dst, merge_root) = match planned {
            Ok(p) => p,
            Err(e) if specs.len() > 1 => {
                progress.eprintln(&format!("vmdkrecover: {spec}: {e:#}"));
                failures += 1;
                bad_specs.push(serde_json::json!({"spec": spec, "error": format!("{e:#}")}));
                continue;
            }
            Err(e) => return Err(e),
        };
        let shown = dest::shown_prefix(spec, &given);
        let copier = walk::Copier::new(&target.fs, opts, &progress, &target.path, &shown);
        copier.copy(&target.path, inode, &dst, merge_root);
        failures += copier.failures.load(Ordering::Relaxed);
        warnings += target.fs.finish_warnings(&|l| progress.eprintln(l));
        disk_read_errors += disk_warnings(&progress);
        total.add(&copier.stats);
        if let Ok(s) = copier.salvaged.into_inner() {
            salvaged.extend(s);
        }
    }
    let secs = progress.finish();
    warnings += disk_read_errors;
    progress::summary(&format!(
        "vmdkrecover: copied {} files, {} directories, {} symlinks, {} other {}{}{}{}{}",
        total.files.load(Ordering::Relaxed),
        total.dirs.load(Ordering::Relaxed),
        total.symlinks.load(Ordering::Relaxed),
        total.other.load(Ordering::Relaxed),
        progress::rate(total.bytes.load(Ordering::Relaxed), secs),
        match total.skipped.load(Ordering::Relaxed) {
            0 => String::new(),
            n => format!("; {n} existing skipped (-n)"),
        },
        if failures > 0 {
            format!("; {failures} failed (see above)")
        } else {
            String::new()
        },
        match warnings - disk_read_errors {
            0 => String::new(),
            n => format!("; {n} filesystem warnings (something may be missing; see above)"),
        },
        match disk_read_errors {
            0 => String::new(),
            n => format!("; {n} disk read errors survived through redundant copies (see above)"),
        }
    ));
    if opts.json {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let v = serde_json::json!({
            "schema": 1,
            "files": n(&total.files),
            "directories": n(&total.dirs),
            "symlinks": n(&total.symlinks),
            "other": n(&total.other),
            "bytes": n(&total.bytes),
            "skipped": n(&total.skipped),
            "failures": failures,
            "warnings": warnings,
            "seconds": secs,
            "bad_specs": bad_specs,
            "salvaged": salvaged.iter().map(|(path, ranges)| serde_json::json!({
                "path": path,
                "unreadable": ranges.iter().map(|(o, l)| serde_json::json!({"offset": o, "length": l})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    }
    Ok(Outcome { failures, warnings })
}

/// What one copy made.
#[derive(Default)]
pub(crate) struct Stats {
    pub files: AtomicU64,
    pub dirs: AtomicU64,
    pub symlinks: AtomicU64,
    pub other: AtomicU64,
    pub bytes: AtomicU64,
    pub skipped: AtomicU64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        for (a, b) in [
            (&self.files, &o.files),
            (&self.dirs, &o.dirs),
            (&self.symlinks, &o.symlinks),
            (&self.other, &o.other),
            (&self.bytes, &o.bytes),
            (&self.skipped, &o.skipped),
        ] {
            a.fetch_add(b.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// Re-exported for tests that check names the copier refuses ([`crate::names`]).
pub fn name_is_safe(name: &[u8]) -> bool {
    crate::names::is_safe(name)
}
