//! `versions IMAGE... SPEC`: the state of one path in every image (typically every
//! storage snapshot of the same VM), grouped by content, newest first.
//!
//! A file's version is its type and contents (sha256; a symlink's target); a
//! directory's is the digest of its whole manifest, and each older version lists
//! the paths that differ from the newest one. Images are opened and read in
//! parallel, since each is typically on a different snapshot of an NFS export.
//!
//! A regular file is read once for all the images that resolve it to the same
//! bytes of the same unchanged host files ([`backing`]: same extent-file identity
//! and the same physical runs); `--json` says which images were read (`hashed`)
//! and which took another's digest (`shortcut`). Nothing is inferred from the
//! guest's metadata unless `--quick` asks for it (the same inode number, size,
//! mtime and ctime on the same volume taken as the same file: fast, not exact,
//! and marked `by: "metadata"`). A progress bar (images and bytes hashed) shows on
//! a terminal.

mod backing;

use super::{mode_string, type_name, Common, Outcome};
use crate::manifest::{self, Manifest};
use crate::spec::{resolve, Spec};
use anyhow::{anyhow, Result};
use fsapi::{FileType, Timestamp};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// Images read at once.
const PARALLEL_IMAGES: usize = 4;

/// What one image says about the path.
enum Seen {
    Present(State),
    Missing,
    Error(String),
}

/// The path's state in one image.
struct State {
    file_type: FileType,
    /// sha256 of a file, digest of a directory's manifest, sha256 of a symlink's target.
    digest: [u8; 32],
    size: u64,
    mtime: Timestamp,
    mode: u32,
    target: Option<Vec<u8>>,
    /// The whole tree, for directories.
    tree: Option<Manifest>,
    /// How the digest was had.
    read: Read,
}

/// How an image's digest was had.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Its contents were read.
    Hashed,
    /// Image `n` resolved the file to the same backing bytes and read them.
    Shortcut(usize),
    /// `--quick`: image `n` has an inode with the same number, size, mtime and
    /// ctime on the same volume, and was read; taken as the same, not known.
    Assumed(usize),
}

/// What makes two images' files share one digest.
#[derive(PartialEq, Eq, Hash)]
enum CacheKey {
    /// The same backing bytes ([`backing`]): exact.
    Backing(backing::Key),
    /// `--quick`: the same guest metadata. Not exact: a file rewritten in place
    /// with its times reset (or a restored snapshot) looks the same.
    Metadata {
        volume: String,
        ino: u64,
        size: u64,
        mtime: fsapi::Timestamp,
        ctime: fsapi::Timestamp,
    },
}

/// A digest computed once per backing key: (image that read it, its result).
type Digested = Arc<OnceLock<(usize, std::result::Result<[u8; 32], String>)>>;

/// Digests by backing key, shared by the reader threads: the first image with a
/// key reads the file, the others with that key wait for its result.
#[derive(Default)]
struct Shared {
    digests: Mutex<HashMap<CacheKey, Digested>>,
    /// `--quick`: also share digests between files whose metadata agree.
    quick: bool,
}

/// One version in the JSON output.
#[derive(Serialize)]
struct VersionJson {
    #[serde(rename = "type")]
    kind: &'static str,
    sha256: String,
    size: u64,
    mtime: i64,
    mtime_nsec: u32,
    mode: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    images: Vec<String>,
    /// The images whose contents were read for this version.
    hashed: Vec<String>,
    /// The images not read again: each resolved the file to the same backing bytes
    /// as `same_as`, which was.
    shortcut: Vec<ShortcutJson>,
    /// Directories: paths (relative to SPEC) that differ from the newest version.
    #[serde(skip_serializing_if = "Option::is_none")]
    differs_from_newest: Option<Vec<String>>,
}

#[derive(Serialize)]
struct ShortcutJson {
    image: String,
    same_as: String,
    /// `backing` (the same bytes of the same host files: exact) or `metadata`
    /// (`--quick`: the same inode number, size, mtime and ctime; not exact).
    by: &'static str,
}

#[derive(Serialize)]
struct ErrorJson {
    image: String,
    error: String,
}

#[derive(Serialize)]
struct VersionsJson {
    schema: u32,
    path: String,
    versions: Vec<VersionJson>,
    missing: Vec<String>,
    errors: Vec<ErrorJson>,
}

/// Runs `versions`.
pub fn run(
    common: &Common,
    images: &[PathBuf],
    spec: &str,
    json: bool,
    quick: bool,
) -> Result<Outcome> {
    let parsed = Spec::parse(spec)?;
    let shared = Shared {
        quick,
        ..Shared::default()
    };
    let progress = crate::progress::Progress::with_unit(0, "images");
    progress.add_total(u64::try_from(images.len()).unwrap_or(u64::MAX), 0);
    let results: Mutex<Vec<(usize, Seen)>> = Mutex::new(Vec::new());
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_IMAGES.min(images.len()) {
            s.spawn(|| loop {
                let i = {
                    let Ok(mut n) = next.lock() else { return };
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(image) = images.get(i) else { return };
                let seen = look(common, i, image, &parsed, &shared, &progress);
                progress.file_done();
                if let Ok(mut r) = results.lock() {
                    r.push((i, seen));
                }
            });
        }
    });
    let mut results = results
        .into_inner()
        .map_err(|_| anyhow!("a reader thread panicked"))?;
    progress.finish();
    results.sort_by_key(|(i, _)| *i);
    let shown = |i: usize| {
        images
            .get(i)
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };

    // Group by (type, digest); newest mtime first.
    let mut groups: Vec<(State, Vec<usize>)> = Vec::new();
    let mut missing = Vec::new();
    let mut errors = Vec::new();
    let mut reads: HashMap<usize, Read> = HashMap::new();
    for (i, seen) in results {
        match seen {
            Seen::Present(st) => {
                reads.insert(i, st.read);
                match groups
                    .iter_mut()
                    .find(|(g, _)| g.file_type == st.file_type && g.digest == st.digest)
                {
                    Some((_, imgs)) => imgs.push(i),
                    None => groups.push((st, vec![i])),
                }
            }
            Seen::Missing => missing.push(shown(i)),
            Seen::Error(e) => errors.push(ErrorJson {
                image: shown(i),
                error: e,
            }),
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.0.mtime));

    let newest_tree = groups.first().and_then(|(s, _)| s.tree.as_ref());
    let versions: Vec<VersionJson> = groups
        .iter()
        .enumerate()
        .map(|(n, (st, imgs))| VersionJson {
            kind: type_name(st.file_type),
            sha256: manifest::hex(&st.digest),
            size: st.size,
            mtime: st.mtime.secs,
            mtime_nsec: st.mtime.nanos,
            mode: st.mode & 0o7777,
            target: st
                .target
                .as_deref()
                .map(|t| String::from_utf8_lossy(t).into_owned()),
            images: imgs.iter().map(|&i| shown(i)).collect(),
            hashed: imgs
                .iter()
                .filter(|&&i| reads.get(&i) == Some(&Read::Hashed))
                .map(|&i| shown(i))
                .collect(),
            shortcut: imgs
                .iter()
                .filter_map(|&i| match reads.get(&i) {
                    Some(Read::Shortcut(n)) => Some(ShortcutJson {
                        image: shown(i),
                        same_as: shown(*n),
                        by: "backing",
                    }),
                    Some(Read::Assumed(n)) => Some(ShortcutJson {
                        image: shown(i),
                        same_as: shown(*n),
                        by: "metadata",
                    }),
                    _ => None,
                })
                .collect(),
            differs_from_newest: match (&st.tree, newest_tree) {
                (Some(t), Some(newest)) if n > 0 => Some(tree_differences(spec, newest, t)),
                (Some(_), _) => Some(Vec::new()),
                _ => None,
            },
        })
        .collect();
    let out = VersionsJson {
        schema: 1,
        path: spec.to_string(),
        versions,
        missing,
        errors,
    };
    let failures = u64::try_from(out.errors.len()).unwrap_or(u64::MAX);
    if json {
        print_json(&out)?;
    } else {
        print_text(&out, &groups);
    }
    Ok(Outcome {
        failures,
        warnings: 0,
    })
}

fn print_text(out: &VersionsJson, groups: &[(State, Vec<usize>)]) {
    let total = out
        .versions
        .iter()
        .map(|v| v.images.len())
        .sum::<usize>()
        .saturating_add(out.missing.len())
        .saturating_add(out.errors.len());
    println!(
        "{}: {} version{} in {} image{}",
        out.path,
        out.versions.len(),
        if out.versions.len() == 1 { "" } else { "s" },
        total,
        if total == 1 { "" } else { "s" }
    );
    for (n, (v, (st, _))) in out.versions.iter().zip(groups).enumerate() {
        let what = match st.file_type {
            FileType::Directory => "tree".to_string(),
            FileType::Symlink => format!("-> {}", v.target.as_deref().unwrap_or_default()),
            _ => format!("{} bytes", v.size),
        };
        println!(
            "\nversion {}{}: sha256 {}  {}  mtime {}  {}",
            n + 1,
            if n == 0 { " (newest)" } else { "" },
            v.sha256,
            what,
            super::format_time_ns(st.mtime),
            mode_string(st.mode, st.file_type),
        );
        for i in &v.images {
            match v.shortcut.iter().find(|s| &s.image == i) {
                Some(s) if s.by == "metadata" => println!(
                    "    {i}  (--quick: same inode, size, mtime and ctime as {}: assumed the same, not read)",
                    s.same_as
                ),
                Some(s) => println!(
                    "    {i}  (same backing bytes as {}: not read again)",
                    s.same_as
                ),
                None => println!("    {i}"),
            }
        }
        if let Some(d) = &v.differs_from_newest {
            if n > 0 {
                println!("  differs from the newest in {} path(s):", d.len());
                for p in d.iter().take(50) {
                    println!("    {p}");
                }
                if d.len() > 50 {
                    println!("    ... and {} more (see --json)", d.len() - 50);
                }
            }
        }
    }
    if !out.missing.is_empty() {
        println!("\nmissing in:");
        for m in &out.missing {
            println!("    {m}");
        }
    }
    if !out.errors.is_empty() {
        println!("\ncould not read:");
        for e in &out.errors {
            println!("    {}: {}", e.image, e.error);
        }
    }
}

/// Paths added, removed or changed between two trees, as paths the user can paste
/// back (SPEC joined with the path below it).
fn tree_differences(spec: &str, newest: &Manifest, other: &Manifest) -> Vec<String> {
    let keys: BTreeSet<&Vec<u8>> = newest.objects.keys().chain(other.objects.keys()).collect();
    let mut out = Vec::new();
    let top = spec.trim_end_matches('/');
    for k in keys {
        let shown = if k.is_empty() {
            if top.is_empty() || top.ends_with(':') {
                format!("{top}/")
            } else {
                top.to_string()
            }
        } else {
            format!("{top}{}", super::show_name(k))
        };
        match (newest.objects.get(k), other.objects.get(k)) {
            (Some(a), Some(b)) => {
                let c = manifest::changes(b, a);
                if !c.is_empty() {
                    out.push(format!("{shown} ({})", c.join(", ")));
                }
            }
            (Some(_), None) => out.push(format!("{shown} (only in the newest)")),
            (None, Some(_)) => out.push(format!("{shown} (not in the newest)")),
            (None, None) => {}
        }
    }
    out
}

/// Opens one image and looks at the path.
fn look(
    common: &Common,
    index: usize,
    image: &std::path::Path,
    spec: &Spec,
    shared: &Shared,
    progress: &crate::progress::Progress,
) -> Seen {
    let c = common.for_image(image);
    let result = (|| -> Result<Option<State>> {
        let stack = c.open()?;
        let t = match resolve(&stack, spec, c.replay_journal) {
            Ok(t) => t,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let fs = t.fs.fs.as_ref();
        let ino = match fs.lookup(&t.path) {
            Ok(i) => i,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let m = fs.metadata(ino)?;
        let mut read = Read::Hashed;
        let (digest, tree) = match m.file_type {
            FileType::Directory => {
                let tree = manifest::build(fs, ino, true)?;
                if let Some((p, e)) = tree.errors.first() {
                    return Err(anyhow!(
                        "{}: {e} ({} objects unreadable)",
                        super::show_name(p),
                        tree.errors.len()
                    ));
                }
                (tree.digest(), Some(tree))
            }
            FileType::Regular => {
                progress.add_total(0, m.size);
                let hash = || {
                    manifest::hash_file_with(fs, ino, m.size, &|n| progress.bytes(n))
                        .map_err(|e| format!("{e:#}"))
                };
                // The filesystem and inode that hold the file, for its backing key.
                let holder = match &t.guest {
                    Some(tree) => tree
                        .owner(ino)
                        .map(|(mnt, inner)| (mnt.volume.clone(), mnt.fs.clone(), inner)),
                    None => Some((t.fs.volume.clone(), t.fs.fs.clone(), ino)),
                };
                let backing_key = holder.as_ref().and_then(|(vol, hfs, inner)| {
                    backing::key(&stack, vol, hfs.as_ref(), *inner).map(CacheKey::Backing)
                });
                let quick_key = holder
                    .as_ref()
                    .filter(|_| shared.quick)
                    .map(|(vol, _, inner)| CacheKey::Metadata {
                        volume: vol.clone(),
                        ino: *inner,
                        size: m.size,
                        mtime: m.mtime,
                        ctime: m.ctime,
                    });
                // An exact match first; with --quick, a metadata match; else this
                // image reads the file, under both keys for the images after it.
                let found = {
                    let mut map = shared
                        .digests
                        .lock()
                        .map_err(|_| anyhow!("a reader thread panicked"))?;
                    let by = |k: &Option<CacheKey>, exact: bool| {
                        k.as_ref()
                            .and_then(|k| map.get(k))
                            .map(|c| (c.clone(), exact))
                    };
                    match by(&backing_key, true).or_else(|| by(&quick_key, false)) {
                        Some(f) => Some(f),
                        None if backing_key.is_some() || quick_key.is_some() => {
                            let cell = Digested::default();
                            for k in [backing_key, quick_key].into_iter().flatten() {
                                map.insert(k, cell.clone());
                            }
                            Some((cell, true))
                        }
                        None => None,
                    }
                };
                let digest = match found {
                    Some((cell, exact)) => {
                        let mut ran = false;
                        let (first, got) = cell.get_or_init(|| {
                            ran = true;
                            (index, hash())
                        });
                        match got {
                            Ok(d) if !ran => {
                                read = if exact {
                                    Read::Shortcut(*first)
                                } else {
                                    Read::Assumed(*first)
                                };
                                progress.bytes(m.size);
                                *d
                            }
                            Ok(d) => *d,
                            // The first reader failed: read it here too.
                            Err(_) if !ran => hash().map_err(|e| anyhow!(e))?,
                            Err(e) => return Err(anyhow!(e.clone())),
                        }
                    }
                    None => hash().map_err(|e| anyhow!(e))?,
                };
                (digest, None)
            }
            _ => {
                let o = manifest::object(fs, &m, false)?;
                let mut one = Manifest::default();
                one.objects.insert(Vec::new(), o);
                (one.digest(), None)
            }
        };
        let target = if m.file_type == FileType::Symlink {
            Some(fs.read_link(ino)?)
        } else {
            None
        };
        let mtime = match &tree {
            Some(t) => t.objects.values().map(|o| o.mtime).max().unwrap_or(m.mtime),
            None => m.mtime,
        };
        Ok(Some(State {
            file_type: m.file_type,
            digest,
            size: m.size,
            mtime,
            mode: m.mode,
            target,
            tree,
            read,
        }))
    })();
    match result {
        Ok(Some(s)) => Seen::Present(s),
        Ok(None) => Seen::Missing,
        Err(e) => Seen::Error(format!("{e:#}")),
    }
}

/// True when the error chain says a path component does not exist.
fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<fsapi::Error>()
            .is_some_and(fsapi::Error::is_not_found)
    })
}

/// Writes pretty JSON and a newline to standard output.
fn print_json<T: Serialize>(v: &T) -> Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}
