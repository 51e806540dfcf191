//! The hostile-input harness: runs the built binary under GNU time (peak RSS),
//! in its own process group, killed after 30 s, with its stdout drained and
//! counted (never kept beyond 4 MiB), and a case directory whose contents and
//! inputs are fingerprinted before and compared after the run.
#![allow(dead_code)]

use super::sha256;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_vmdkrecover");

/// The binary under test: this crate's, or VMDKRECOVER_BIN (to run the suite
/// against another branch's build without merging it).
pub fn bin() -> String {
    std::env::var("VMDKRECOVER_BIN").unwrap_or_else(|_| BIN.to_string())
}
pub const TIME: &str = "/usr/bin/time";
pub const RSS_LIMIT_KB: u64 = 256 * 1024;
pub const TIME_LIMIT: Duration = Duration::from_secs(30);
/// More than this on stdout is "not bounded" (every input here is < 64 MiB).
pub const STDOUT_CAP: u64 = 256 << 20;
const STDOUT_KEEP: usize = 4 << 20;

/// True when a tool or input is there; panics (the test fails) when it is not,
/// unless VMDKRECOVER_SKIP_MISSING=1, then prints a loud SKIPPED line.
pub fn have(path: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    if std::env::var("VMDKRECOVER_SKIP_MISSING").as_deref() == Ok("1") {
        eprintln!("\n*** SKIPPED: {path} is missing (VMDKRECOVER_SKIP_MISSING=1) ***\n");
        return false;
    }
    panic!("{path} is missing (set VMDKRECOVER_SKIP_MISSING=1 to skip)");
}

/// `gzip -dc FILE` (the committed fixtures are gzip files; the root crate has
/// no decompressor).
pub fn gunzip(path: &Path) -> Vec<u8> {
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .expect("run gzip");
    assert!(out.status.success(), "gzip -dc {}", path.display());
    out.stdout
}

#[derive(Debug)]
pub struct Out {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stdout_len: u64,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub rss_kb: Option<u64>,
    pub secs: f64,
}

#[derive(Default, Clone)]
pub struct Opts {
    /// `ulimit -n N` before exec (through sh).
    pub nofile: Option<u32>,
    /// Send this signal (kill(1) name) to the process group after this long.
    pub signal_after: Option<(Duration, &'static str)>,
    /// Run without /usr/bin/time (for signal tests: time would die first).
    pub no_time: bool,
    pub cwd: Option<PathBuf>,
}

pub fn vr(args: &[&str]) -> Out {
    vr_with(args, &Opts::default())
}

pub fn vr_with(args: &[&str], o: &Opts) -> Out {
    let scratch = tempfile::tempdir().unwrap();
    let rss = scratch.path().join("rss");
    let errp = scratch.path().join("stderr");
    let mut argv: Vec<String> = Vec::new();
    if !o.no_time {
        argv.extend([
            TIME.to_string(),
            "-f".into(),
            "%M".into(),
            "-o".into(),
            rss.display().to_string(),
        ]);
    }
    argv.push(bin());
    argv.extend(args.iter().map(|s| s.to_string()));
    let mut cmd = if let Some(n) = o.nofile {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("ulimit -n {n} || exit 97; exec \"$@\""))
            .arg("sh")
            .args(&argv);
        c
    } else {
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c
    };
    if let Some(d) = &o.cwd {
        cmd.current_dir(d);
    }
    cmd.env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&errp).unwrap())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let pid = child.id();
    let mut so = child.stdout.take().unwrap();
    let counted = Arc::new(AtomicU64::new(0));
    let c2 = counted.clone();
    let reader = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match so.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    c2.fetch_add(n as u64, Ordering::Relaxed);
                    if kept.len() < STDOUT_KEEP {
                        kept.extend_from_slice(&buf[..n.min(STDOUT_KEEP - kept.len())]);
                    }
                }
            }
        }
        kept
    });
    let mut timed_out = false;
    let mut signalled = false;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if let Some((after, sig)) = o.signal_after {
            if !signalled && start.elapsed() >= after {
                signalled = true;
                kill_group(pid, sig);
            }
        }
        if start.elapsed() > TIME_LIMIT || counted.load(Ordering::Relaxed) > STDOUT_CAP {
            timed_out = start.elapsed() > TIME_LIMIT;
            kill_group(pid, "KILL");
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = reader.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    use std::os::unix::process::ExitStatusExt;
    let mut code = status.code();
    let mut signal = status.signal();
    let mut rss_kb = None;
    if let Ok(t) = fs::read_to_string(&rss) {
        for l in t.lines() {
            if let Some(s) = l.strip_prefix("Command terminated by signal ") {
                signal = s.trim().parse().ok();
                code = None;
            }
            if let Ok(v) = l.trim().parse::<u64>() {
                rss_kb = Some(v);
            }
        }
    }
    Out {
        args: args.iter().map(|s| s.to_string()).collect(),
        code,
        signal,
        timed_out,
        stdout_len: counted.load(Ordering::Relaxed),
        stdout,
        stderr: fs::read_to_string(&errp)
            .unwrap_or_else(|_| String::from_utf8_lossy(&fs::read(&errp).unwrap()).into()),
        rss_kb,
        secs,
    }
}

fn kill_group(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(format!("-{pid}"))
        .stderr(Stdio::null())
        .status();
}

impl Out {
    pub fn describe(&self) -> String {
        format!(
            "vmdkrecover {:?}: code {:?} signal {:?} timed_out {} {:.1}s rss {:?} KB stdout {} bytes\n--- stderr ---\n{}",
            self.args,
            self.code,
            self.signal,
            self.timed_out,
            self.secs,
            self.rss_kb,
            self.stdout_len,
            self.stderr.chars().take(4000).collect::<String>()
        )
    }

    /// The rules for every case: finished in time, no signal, no panic or
    /// backtrace, bounded stdout, peak RSS under 256 MB, an exit code from `codes`.
    pub fn sane(&self, codes: &[i32]) -> &Self {
        let d = self.describe();
        assert!(!self.timed_out, "not finished within 30 s: {d}");
        assert!(self.stdout_len <= STDOUT_CAP, "unbounded output: {d}");
        assert_eq!(self.signal, None, "killed by a signal: {d}");
        assert_ne!(self.code, Some(101), "panic (exit 101): {d}");
        for bad in [
            "panicked",
            "stack backtrace",
            "RUST_BACKTRACE",
            "memory allocation",
        ] {
            assert!(!self.stderr.contains(bad), "{bad:?} on stderr: {d}");
        }
        if let Some(kb) = self.rss_kb {
            assert!(kb < RSS_LIMIT_KB, "peak RSS {kb} KB >= 256 MB: {d}");
        }
        assert!(
            self.code.is_some_and(|c| codes.contains(&c)),
            "exit status not in {codes:?}: {d}"
        );
        self
    }

    /// Every needle must occur in stderr (case-insensitive); a needle may list
    /// alternatives separated by '|'.
    pub fn says(&self, needles: &[&str]) -> &Self {
        let low = self.stderr.to_lowercase();
        for n in needles {
            assert!(
                n.split('|').any(|alt| low.contains(&alt.to_lowercase())),
                "stderr does not name {n:?}: {}",
                self.describe()
            );
        }
        self
    }

    /// As `says`, but stdout counts too (info lists an unreadable volume
    /// with its reason in its report).
    pub fn mentions(&self, needles: &[&str]) -> &Self {
        let low = format!("{}\n{}", self.stderr, self.stdout_str()).to_lowercase();
        for n in needles {
            assert!(
                n.split('|').any(|alt| low.contains(&alt.to_lowercase())),
                "output does not name {n:?}: {}\n--- stdout ---\n{}",
                self.describe(),
                self.stdout_str().chars().take(3000).collect::<String>()
            );
        }
        self
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

#[derive(Debug, PartialEq)]
enum Print {
    File {
        size: u64,
        mtime: (i64, i64),
        sha: String,
    },
    Dir,
    Fifo,
    Other(u32),
}

fn fingerprint(p: &Path) -> Print {
    let m = fs::symlink_metadata(p).unwrap();
    let ft = m.file_type();
    if ft.is_file() {
        Print::File {
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            sha: sha256(&fs::read(p).unwrap()),
        }
    } else if ft.is_dir() {
        Print::Dir
    } else if ft.is_fifo() {
        Print::Fifo
    } else {
        Print::Other(m.mode())
    }
}

/// A temp dir holding a case's inputs, DEST (`dest`, not created) and nothing
/// else; `seal` fingerprints it (and any outside inputs), `check` compares.
pub struct Case {
    pub dir: tempfile::TempDir,
    before: BTreeMap<PathBuf, Print>,
    outside: Vec<PathBuf>,
}

impl Case {
    pub fn new() -> Case {
        Case {
            dir: tempfile::tempdir().unwrap(),
            before: BTreeMap::new(),
            outside: Vec::new(),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
    pub fn write(&self, name: &str, data: &[u8]) -> String {
        fs::write(self.path(name), data).unwrap();
        self.p(name)
    }
    pub fn dest(&self) -> PathBuf {
        self.path("dest")
    }
    pub fn d(&self) -> String {
        self.dest().display().to_string()
    }

    fn scan(&self) -> BTreeMap<PathBuf, Print> {
        let mut m = BTreeMap::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p == self.dest() {
                    continue;
                }
                let f = fingerprint(&p);
                if f == Print::Dir {
                    stack.push(p.clone());
                }
                m.insert(p, f);
            }
        }
        for p in &self.outside {
            m.insert(p.clone(), fingerprint(p));
        }
        m
    }

    /// Fingerprints the case dir and `outside` inputs (committed fixtures read
    /// in place).
    pub fn seal(&mut self, outside: &[PathBuf]) {
        self.outside = outside.to_vec();
        self.before = self.scan();
    }

    /// Inputs unchanged, nothing created outside DEST, DEST holds at most
    /// `limit` bytes (regular files, allocated blocks).
    pub fn check(&self, limit: u64) {
        let after = self.scan();
        for (p, f) in &self.before {
            assert_eq!(after.get(p), Some(f), "input {} changed", p.display());
        }
        for p in after.keys() {
            assert!(
                self.before.contains_key(p),
                "{} created outside DEST",
                p.display()
            );
        }
        let used = dest_bytes(&self.dest());
        assert!(
            used <= limit,
            "DEST holds {used} bytes, more than the image's {limit}"
        );
    }
}

impl Default for Case {
    fn default() -> Self {
        Self::new()
    }
}

/// Bytes allocated to regular files under `dir` (st_blocks * 512, so holes
/// count as nothing and a claimed size counts only when written).
pub fn dest_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if !dir.exists() {
        return 0;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let m = fs::symlink_metadata(&d).unwrap();
        if m.is_file() {
            total += m.blocks() * 512;
            continue;
        }
        if !m.is_dir() {
            continue;
        }
        for e in fs::read_dir(&d).unwrap() {
            stack.push(e.unwrap().path());
        }
    }
    total
}

/// Every path under `dir`, relative.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}
