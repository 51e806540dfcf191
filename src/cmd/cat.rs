//! `vmdkrecover cat`: stream files to standard output, in the order given, like
//! `cat`: a SPEC that cannot be read is reported and the others are still printed
//! (exit status 1); with a single SPEC that cannot be opened, exit status 2.

use super::{Common, Outcome};
use crate::spec::lookup_follow;
use anyhow::{bail, Context, Result};
use std::io::Write;

/// Size of each read: large enough that a contiguous file becomes few large reads.
const CHUNK: usize = 1 << 20;

/// Runs `cat`.
pub fn run(common: &Common, specs: &[String]) -> Result<Outcome> {
    let stack = common.open()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut outcome = Outcome::default();
    for spec in specs {
        match cat_one(common, &stack, spec, &mut out, &mut outcome) {
            Ok(()) => {}
            // A write error (a closed pipe, a full disk) ends everything.
            Err(e) if is_write_error(&e) => return Err(e),
            Err(e) if specs.len() > 1 => {
                // What was printed so far goes out before the message.
                out.flush().context("standard output")?;
                eprintln!("vmdkrecover: {e:#}");
                outcome.failures += 1;
            }
            Err(e) => return Err(e),
        }
    }
    out.flush().context("standard output")?;
    outcome.end_read_warnings(&stack);
    Ok(outcome)
}

/// Marks errors writing standard output, which stop `cat` whatever the SPECs.
#[derive(Debug, thiserror::Error)]
#[error("standard output: {0}")]
struct WriteError(#[source] std::io::Error);

fn is_write_error(e: &anyhow::Error) -> bool {
    e.downcast_ref::<WriteError>().is_some()
}

fn cat_one(
    common: &Common,
    stack: &crate::stack::Stack,
    spec: &str,
    out: &mut impl Write,
    outcome: &mut Outcome,
) -> Result<()> {
    let target = common.target(stack, spec)?;
    let fs = &*target.fs.fs;
    let (_, inode) = lookup_follow(fs, &target.path).with_context(|| target.display.clone())?;
    if inode.file_type == fsapi::FileType::Directory {
        bail!(
            "{}: is a directory (use ls, or cp to copy it out)",
            target.display
        );
    }
    if inode.file_type != fsapi::FileType::Regular {
        bail!(
            "{}: not a regular file ({})",
            target.display,
            super::type_name(inode.file_type)
        );
    }
    let mut buf = crate::io::AlignedBuf::new(
        CHUNK
            .min(usize::try_from(inode.size).unwrap_or(CHUNK))
            .max(1),
    );
    let mut offset = 0u64;
    while offset < inode.size {
        let n = fs
            .read_at(inode.ino, offset, &mut buf)
            .with_context(|| format!("{}: read at offset {offset}", target.display))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(WriteError)?;
        offset += n as u64;
    }
    outcome.end_walk(&target);
    Ok(())
}
