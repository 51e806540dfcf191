//! `vmdkrecover export`: a whole virtual disk, or one volume, as a raw image.
//! Runs of zeros are left as holes in a file output (as `qemu-img convert` does), so
//! a mostly empty 100 GiB disk exports in seconds and takes little space.

use super::{Common, Outcome};
use anyhow::{anyhow, bail, Context, Result};
use bytesource::{ByteSource, SharedSource};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::Instant;

const CHUNK: usize = 1 << 20;

/// Runs `export`.
pub fn run(common: &Common, volume: Option<&str>, output: &str, force: bool) -> Result<Outcome> {
    let stack = common.open()?;
    let (name, src): (String, SharedSource) = match volume {
        None => {
            let d = stack.disks.first().ok_or_else(|| anyhow!("no disk"))?;
            (d.name.clone(), d.disk.clone())
        }
        Some(v) => {
            if let Some(d) = stack
                .disks
                .iter()
                .find(|d| d.name == crate::stack::normalize_volume_name(v))
            {
                (d.name.clone(), d.disk.clone())
            } else {
                let vol = stack.find_volume(v)?;
                let s = vol
                    .source
                    .clone()
                    .map_err(|why| anyhow!("{}: cannot read this volume: {why}", vol.name))?;
                (vol.name.clone(), s)
            }
        }
    };
    let size = src.len();
    let started = Instant::now();
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(size),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut buf = crate::io::AlignedBuf::new(CHUNK);
    if output == "-" {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut pos = 0u64;
        while pos < size {
            let n = (size - pos).min(CHUNK as u64) as usize;
            src.read_at(pos, &mut buf[..n])
                .with_context(|| format!("{name}: read at offset {pos}"))?;
            out.write_all(&buf[..n])?;
            pos += n as u64;
            bar.inc(n as u64);
        }
        out.flush()?;
    } else {
        let path = std::path::Path::new(output);
        if !force && std::fs::symlink_metadata(path).is_ok() {
            bail!("{output}: already exists (use --force to replace)");
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let tmp = tempfile::Builder::new()
            .suffix(".vmdkrecover-partial")
            .tempfile_in(dir)
            .with_context(|| format!("{}: cannot create a temporary file", dir.display()))?;
        let f = tmp.as_file();
        let mut pos = 0u64;
        while pos < size {
            let n = (size - pos).min(CHUNK as u64) as usize;
            src.read_at(pos, &mut buf[..n])
                .with_context(|| format!("{name}: read at offset {pos}"))?;
            // Zero chunks become holes; everything else is written where it belongs.
            if buf[..n].iter().any(|b| *b != 0) {
                f.write_all_at(&buf[..n], pos)?;
            }
            pos += n as u64;
            bar.inc(n as u64);
        }
        f.set_len(size)?;
        if force {
            tmp.persist(path).map_err(|e| e.error)?;
        } else {
            tmp.persist_noclobber(path).map_err(|e| e.error)?;
        }
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let mib = size as f64 / (1024.0 * 1024.0);
    eprintln!(
        "vmdkrecover: exported {name} ({mib:.1} MiB) in {secs:.2} s ({:.0} MiB/s)",
        if secs > 0.0 { mib / secs } else { 0.0 }
    );
    Ok(Outcome::default())
}
