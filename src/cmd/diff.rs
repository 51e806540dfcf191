//! `diff IMAGE_A IMAGE_B [SPEC]`: what changed between two images (two snapshots of
//! one VM) below SPEC (default: the whole guest tree), like `virt-diff`: paths added,
//! removed, and changed in type, size, mode, owner, mtime, symlink target, device
//! numbers or xattrs; `--content` compares file contents (sha256) too.

use super::{Common, Outcome};
use crate::manifest::{self, Manifest};
use crate::spec::{resolve, Spec};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Serialize)]
struct ChangeJson {
    path: String,
    /// added, removed, changed
    change: &'static str,
    /// What changed (changed entries only): `size 10 -> 12`, `content`, ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    what: Vec<String>,
}

#[derive(Serialize)]
struct DiffJson {
    schema: u32,
    a: String,
    b: String,
    path: String,
    changes: Vec<ChangeJson>,
    /// Paths that could not be read in A or B (not compared).
    errors: Vec<String>,
}

/// Builds the manifest of SPEC in one image.
fn side(common: &Common, image: &Path, spec: &Spec, content: bool) -> Result<Manifest> {
    let c = common.for_image(image);
    let stack = c.open()?;
    let t = resolve(&stack, spec, c.replay_journal)?;
    let fs = t.fs.fs.as_ref();
    let ino = fs
        .lookup(&t.path)
        .with_context(|| format!("{}: {}", image.display(), t.display))?;
    manifest::build(fs, ino, content)
}

/// Runs `diff`.
pub fn run(
    common: &Common,
    a: &Path,
    b: &Path,
    spec: Option<&str>,
    content: bool,
    json: bool,
) -> Result<Outcome> {
    let spec_text = spec.unwrap_or("/");
    let parsed = Spec::parse(spec_text)?;
    let (ma, mb) = std::thread::scope(|s| {
        let ha = s.spawn(|| side(common, a, &parsed, content));
        let mb = side(common, b, &parsed, content);
        let ma = ha
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("reader thread panicked")));
        (ma, mb)
    });
    let ma = ma.with_context(|| a.display().to_string())?;
    let mb = mb.with_context(|| b.display().to_string())?;
    let keys: BTreeSet<&Vec<u8>> = ma.objects.keys().chain(mb.objects.keys()).collect();
    let mut changes = Vec::new();
    for k in keys {
        let path = guest_path(spec_text, k);
        match (ma.objects.get(k), mb.objects.get(k)) {
            (Some(x), Some(y)) => {
                let what = manifest::changes(x, y);
                if !what.is_empty() {
                    changes.push(ChangeJson {
                        path,
                        change: "changed",
                        what,
                    });
                }
            }
            (None, Some(_)) => changes.push(ChangeJson {
                path,
                change: "added",
                what: Vec::new(),
            }),
            (Some(_), None) => changes.push(ChangeJson {
                path,
                change: "removed",
                what: Vec::new(),
            }),
            (None, None) => {}
        }
    }
    let errors: Vec<String> = ma
        .errors
        .iter()
        .map(|(p, e)| format!("{}: {}: {e}", a.display(), guest_path(spec_text, p)))
        .chain(
            mb.errors
                .iter()
                .map(|(p, e)| format!("{}: {}: {e}", b.display(), guest_path(spec_text, p))),
        )
        .collect();
    let out = DiffJson {
        schema: 1,
        a: a.display().to_string(),
        b: b.display().to_string(),
        path: spec_text.to_string(),
        changes,
        errors,
    };
    if json {
        print_json(&out)?;
    } else {
        for c in &out.changes {
            match c.change {
                "added" => println!("+ {}", c.path),
                "removed" => println!("- {}", c.path),
                _ => println!("= {}: {}", c.path, c.what.join(", ")),
            }
        }
    }
    for e in &out.errors {
        eprintln!("vmdkrecover: not compared: {e}");
    }
    Ok(Outcome {
        failures: u64::try_from(out.errors.len()).unwrap_or(u64::MAX),
        warnings: 0,
    })
}

/// The SPEC's path joined with a manifest path, as the user would type it back.
fn guest_path(spec: &str, rel: &[u8]) -> String {
    let mut s = spec.trim_end_matches('/').to_string();
    if rel.is_empty() {
        if s.is_empty() || s.ends_with(':') {
            s.push('/');
        }
        return s;
    }
    s.push_str(&super::show_name(rel));
    s
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
