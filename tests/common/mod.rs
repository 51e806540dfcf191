//! Helpers for the integration tests: run the real binary, read the manifests that
//! scripts/make-testdata.sh wrote from the source trees, compare a copied tree.
#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn testdata(name: &str) -> PathBuf {
    root().join("testdata").join(name)
}

pub fn run(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_vmdkrecover"))
        .args(args)
        .output()
        .expect("run vmdkrecover");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "vmdkrecover panicked on {args:?}: {stderr}"
    );
    out
}

pub fn run_ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "vmdkrecover {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd` (a tool, a shell line, the binary with its environment) to the end;
/// panics unless it succeeded, with its exit status and stderr.
pub fn output_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn sha256(data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_file(p: &Path) -> String {
    sha256(&std::fs::read(p).unwrap())
}

/// One line of a MANIFEST.*.tsv: made by find/stat/sha256sum on the source tree.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub kind: char,
    pub mode: u32,
    pub mtime: i64,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub target: Option<String>,
    pub source_inode: u64,
}

pub fn manifest(name: &str) -> Vec<Entry> {
    let text = std::fs::read_to_string(testdata(name)).unwrap();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 8, "bad manifest line {l:?}");
            let opt = |s: &str| if s == "-" { None } else { Some(s.to_string()) };
            Entry {
                path: f[0].to_string(),
                kind: f[1].chars().next().unwrap(),
                mode: u32::from_str_radix(f[2], 8).unwrap(),
                mtime: f[3].parse().unwrap(),
                size: opt(f[4]).map(|s| s.parse().unwrap()),
                sha256: opt(f[5]),
                target: opt(f[6]),
                source_inode: f[7].parse().unwrap(),
            }
        })
        .collect()
}

/// Compares a copied tree at `dest` with the manifest entry by entry: type, mode,
/// mtime, size, content, symlink target and hard-link structure. With `check_dir_mtime`
/// directory mtimes are compared too.
pub fn compare_tree(dest: &Path, entries: &[Entry]) {
    let mut by_source_inode: HashMap<u64, u64> = HashMap::new();
    for e in entries {
        let p = dest.join(e.path.trim_start_matches('/'));
        let m = std::fs::symlink_metadata(&p)
            .unwrap_or_else(|err| panic!("{}: missing in the copy: {err}", e.path));
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        match e.kind {
            'f' => assert!(ft.is_file(), "{}: not a regular file", e.path),
            'd' => assert!(ft.is_dir(), "{}: not a directory", e.path),
            'l' => assert!(ft.is_symlink(), "{}: not a symlink", e.path),
            'p' => assert!(ft.is_fifo(), "{}: not a fifo", e.path),
            k => panic!("{}: unexpected kind {k}", e.path),
        }
        if e.kind != 'l' {
            assert_eq!(m.mode() & 0o7777, e.mode, "{}: mode", e.path);
        }
        assert_eq!(m.mtime(), e.mtime, "{}: mtime", e.path);
        if e.kind == 'f' {
            assert_eq!(Some(m.len()), e.size, "{}: size", e.path);
            assert_eq!(Some(sha256_file(&p)), e.sha256, "{}: content", e.path);
            // Hard links: every source name of one inode maps to one copied inode.
            let prev = by_source_inode.entry(e.source_inode).or_insert(m.ino());
            assert_eq!(*prev, m.ino(), "{}: hard link not kept", e.path);
        }
        if e.kind == 'l' {
            let t = std::fs::read_link(&p).unwrap();
            assert_eq!(
                Some(t.to_string_lossy().into_owned()),
                e.target,
                "{}: symlink target",
                e.path
            );
        }
    }
    // Nothing extra, and no partial files left behind.
    let mut count = 0;
    for entry in walk(dest) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.contains("vmdkrecover-partial"),
            "partial file left: {}",
            entry.display()
        );
        count += 1;
    }
    assert_eq!(
        count,
        entries.len(),
        "the copy has a different number of objects than the source tree"
    );
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// Parses testdata/LAYOUT.txt (lvm2's own reports) into
/// (pv name -> (pe_start, uuid)), and (lv name -> [(seg_start bytes, seg_size bytes, pv, first extent)]).
pub struct Layout {
    pub pvs: HashMap<String, (u64, String)>,
    pub extent_size: HashMap<String, u64>,
    pub segments: Vec<(String, String, u64, u64, String, u64)>, // lv, vg, seg_start, seg_size, pv, first_pe
}

pub fn layout() -> Layout {
    let text = std::fs::read_to_string(testdata("LAYOUT.txt")).unwrap();
    let mut section = "";
    let mut l = Layout {
        pvs: HashMap::new(),
        extent_size: HashMap::new(),
        segments: vec![],
    };
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("# ") {
            section = if h.starts_with("pvs") {
                "pvs"
            } else if h.starts_with("vgs") {
                "vgs"
            } else if h.starts_with("lvs") {
                "lvs"
            } else {
                ""
            };
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        match (section, f.len()) {
            ("pvs", 5) => {
                l.pvs
                    .insert(f[0].to_string(), (f[3].parse().unwrap(), f[4].to_string()));
            }
            ("vgs", 4) => {
                l.extent_size
                    .insert(f[0].to_string(), f[2].parse().unwrap());
            }
            ("lvs", 6) => {
                let (pv, range) = f[5].split_once(':').unwrap();
                let first = range.split('-').next().unwrap().parse().unwrap();
                l.segments.push((
                    f[0].into(),
                    f[1].into(),
                    f[3].parse().unwrap(),
                    f[4].parse().unwrap(),
                    pv.into(),
                    first,
                ));
            }
            _ => {}
        }
    }
    l
}

/// Partition starts (bytes) from the `sfdisk -d` dump at the top of LAYOUT.txt:
/// "vm-flat.vmdk2 : start= 18432, ..." -> ("sda2", 18432*512).
pub fn partition_starts() -> HashMap<String, u64> {
    let text = std::fs::read_to_string(testdata("LAYOUT.txt")).unwrap();
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some((dev, rest)) = line.split_once(" : start=") else {
            continue;
        };
        let num = dev.trim().rsplit("vmdk").next().unwrap();
        let start: u64 = rest.split(',').next().unwrap().trim().parse().unwrap();
        out.insert(format!("sda{num}"), start * 512);
    }
    out
}

/// The bytes of an LV, assembled from the flat files at the places lvm2's reports
/// give (pe_start, extent size, segment PE ranges) — independent of our lvm2 crate.
pub fn lv_bytes_from_reports(vg: &str, lv: &str) -> Vec<u8> {
    let l = layout();
    let parts = partition_starts();
    let ext = l.extent_size[vg];
    let disk1 = std::fs::read(testdata("vm-flat.vmdk")).unwrap();
    let disk2 = std::fs::read(testdata("vm_1-flat.vmdk")).unwrap();
    let mut segs: Vec<_> = l
        .segments
        .iter()
        .filter(|s| s.0 == lv && s.1 == vg)
        .collect();
    segs.sort_by_key(|s| s.2);
    let mut out = Vec::new();
    for (_, _, seg_start, seg_size, pv, first_pe) in segs {
        assert_eq!(*seg_start as usize, out.len());
        let (disk, base) = if pv == "sdb" {
            (&disk2, 0)
        } else {
            (&disk1, parts[pv.as_str()])
        };
        let pe_start = l.pvs[pv.as_str()].0;
        let from = (base + pe_start + first_pe * ext) as usize;
        out.extend_from_slice(&disk[from..from + *seg_size as usize]);
    }
    out
}
