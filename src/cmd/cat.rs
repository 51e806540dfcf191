//! `vmdkrecover cat`: stream one file to standard output.

use super::{Common, Outcome};
use crate::spec::lookup_follow;
use anyhow::{bail, Result};
use std::io::Write;

/// Size of each read: large enough that a contiguous file becomes few large reads.
const CHUNK: usize = 1 << 20;

/// Runs `cat`.
pub fn run(common: &Common, spec: &str) -> Result<Outcome> {
    let stack = common.open()?;
    let target = common.target(&stack, spec)?;
    let fs = &*target.fs.fs;
    let (_, inode) = lookup_follow(fs, &target.path)?;
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
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut buf = crate::io::AlignedBuf::new(
        CHUNK
            .min(usize::try_from(inode.size).unwrap_or(CHUNK))
            .max(1),
    );
    let mut offset = 0u64;
    while offset < inode.size {
        let n = fs.read_at(inode.ino, offset, &mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        offset += n as u64;
    }
    out.flush()?;
    let mut outcome = Outcome::default();
    outcome.end_walk(&target);
    Ok(outcome)
}
