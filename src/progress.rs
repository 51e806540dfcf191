//! The progress display and the one-line summaries of the long commands (`cp`, `tar`,
//! `export`; `versions` shows the bar only, counting images): a bar with bytes and files done of the totals known so far, speed and
//! ETA, on standard error when it is a terminal; nothing when it is not, when
//! `TERM=dumb`, or with `-q/--quiet` (which also drops the summary line). The
//! display uses no colours at all, so `NO_COLOR` holds trivially.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

static QUIET: AtomicBool = AtomicBool::new(false);

/// The bar: bytes done of the total, the counts, speed, ETA.
const BAR_TEMPLATE: &str = "{bytes}/{total_bytes} {msg} {bytes_per_sec} ETA {eta} {wide_bar}";
/// Before any byte total is known.
const EMPTY_TEMPLATE: &str = "{msg} {elapsed}";

fn style(template: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
}

/// Sets `-q/--quiet` for the whole process.
pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

/// True with `-q/--quiet`: no progress and no summary line.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether a progress bar may be drawn on standard error.
fn shown() -> bool {
    !quiet()
        && std::io::stderr().is_terminal()
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// A progress bar for bytes and files; hidden where [`shown`] says so. Totals may
/// grow while the work runs (the walk finds files as the copy goes).
pub struct Progress {
    bar: indicatif::ProgressBar,
    files_done: AtomicU64,
    files_total: AtomicU64,
    count_files: bool,
    /// What the counted objects are called ("files", "images").
    unit: &'static str,
    /// The bar style is on (a byte total is known).
    has_bar: AtomicBool,
    started: Instant,
}

impl Progress {
    /// A bar for `total_bytes` (growing with [`Progress::add_total`]); `count_files`
    /// adds "files N/M" to it.
    pub fn new(total_bytes: u64, count_files: bool) -> Self {
        Self::counting(total_bytes, count_files, "files")
    }

    /// A bar for `total_bytes` that counts `unit` ("images 2/5") instead of files.
    pub fn with_unit(total_bytes: u64, unit: &'static str) -> Self {
        Self::counting(total_bytes, true, unit)
    }

    fn counting(total_bytes: u64, count_files: bool, unit: &'static str) -> Self {
        let target = if shown() {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        };
        let bar = indicatif::ProgressBar::with_draw_target(Some(total_bytes), target);
        // Until some bytes are known, a bar of 0 of 0 would be drawn full: show the
        // counts and the time only, and the bar once there is a total.
        bar.set_style(style(if total_bytes == 0 {
            EMPTY_TEMPLATE
        } else {
            BAR_TEMPLATE
        }));
        if !bar.is_hidden() {
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        Progress {
            bar,
            files_done: AtomicU64::new(0),
            files_total: AtomicU64::new(0),
            count_files,
            unit,
            has_bar: AtomicBool::new(total_bytes > 0),
            started: Instant::now(),
        }
    }

    fn update_msg(&self) {
        if self.count_files && !self.bar.is_hidden() {
            self.bar.set_message(format!(
                "{} {}/{}",
                self.unit,
                self.files_done.load(Ordering::Relaxed),
                self.files_total.load(Ordering::Relaxed)
            ));
        }
    }

    /// More work found: `files` objects holding `bytes` bytes.
    pub fn add_total(&self, files: u64, bytes: u64) {
        self.files_total.fetch_add(files, Ordering::Relaxed);
        if bytes > 0 {
            self.bar.inc_length(bytes);
            if !self.has_bar.swap(true, Ordering::Relaxed) {
                self.bar.set_style(style(BAR_TEMPLATE));
            }
        }
        self.update_msg();
    }

    /// `n` more bytes done.
    pub fn bytes(&self, n: u64) {
        self.bar.inc(n);
    }

    /// One more object done.
    pub fn file_done(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.update_msg();
    }

    /// Runs `f` (which prints to stderr) with the bar out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Prints a line on stderr without tearing the bar.
    pub fn eprintln(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    /// Removes the bar; returns the seconds since it was made.
    pub fn finish(&self) -> f64 {
        self.bar.finish_and_clear();
        self.started.elapsed().as_secs_f64()
    }
}

/// "(12.3 MiB) in 0.52 s (24 MiB/s)": the size, time and throughput of a summary.
pub fn rate(bytes: u64, secs: f64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    format!(
        "({mib:.1} MiB) in {secs:.2} s ({:.0} MiB/s)",
        if secs > 0.0 { mib / secs } else { 0.0 }
    )
}

/// Prints a summary line on stderr unless `-q`.
pub fn summary(line: &str) {
    if !quiet() {
        eprintln!("{line}");
    }
}
