//! `vmdkrecover tar`: a tree as a tar archive (GNU format for long names), with
//! modes, owners, mtimes, symlinks, hard links and fifos as they are in the guest.

use super::{show_name, walk, Common, Outcome};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::{Read, Write};

/// A `Read` over one file's bytes in the guest filesystem.
struct FileReader<'a> {
    fs: &'a dyn fsapi::Filesystem,
    inode: &'a fsapi::Metadata,
    pos: u64,
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.inode.size {
            return Ok(0);
        }
        let n = self
            .fs
            .read_at(self.inode.ino, self.pos, buf)
            .map_err(std::io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Runs `tar`.
pub fn run(common: &Common, spec: &str, output: &str, force: bool) -> Result<Outcome> {
    let stack = common.open()?;
    let target = common.target(&stack, spec)?;
    let fs = &*target.fs.fs;
    let top = fs.metadata(fs.lookup(&target.path)?)?;
    // Names in the archive are relative to the parent of the SPEC's path, like
    // `tar -C parent -c name`; for "/" the root's contents.
    let strip = match target.path.iter().rposition(|b| *b == b'/') {
        Some(i) if target.path.len() > 1 => i + 1,
        _ => 1,
    };
    let (sink, tmp): (Box<dyn Write>, Option<tempfile::NamedTempFile>) = if output == "-" {
        (
            Box::new(std::io::BufWriter::with_capacity(
                1 << 20,
                std::io::stdout().lock(),
            )),
            None,
        )
    } else {
        let path = std::path::Path::new(output);
        if !force && std::fs::symlink_metadata(path).is_ok() {
            bail!("{output}: already exists (use --force to replace)");
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let t = tempfile::Builder::new()
            .suffix(".vmdkrecover-partial")
            .tempfile_in(dir)?;
        (
            Box::new(std::io::BufWriter::with_capacity(1 << 20, t.reopen()?)),
            Some(t),
        )
    };
    let mut builder = tar::Builder::new(sink);
    builder.mode(tar::HeaderMode::Complete);
    let mut outcome = Outcome::default();
    let mut first_path: HashMap<u64, Vec<u8>> = HashMap::new();
    let failures = std::cell::Cell::new(0u64);
    walk(
        &target.fs,
        &target.path,
        top,
        &mut |path, inode| {
            let rel = path.get(strip..).unwrap_or_default();
            if rel.is_empty() {
                return Ok(());
            }
            let rel_path = std::path::Path::new(std::ffi::OsStr::from_bytes_compat(rel));
            let mut h = tar::Header::new_gnu();
            h.set_mode(inode.mode & 0o7777);
            h.set_uid(u64::from(inode.uid));
            h.set_gid(u64::from(inode.gid));
            h.set_mtime(u64::try_from(inode.mtime.secs).unwrap_or(0));
            let r: Result<()> = (|| {
                match inode.file_type {
                    fsapi::FileType::Directory => {
                        h.set_entry_type(tar::EntryType::Directory);
                        h.set_size(0);
                        builder.append_data(&mut h, rel_path, std::io::empty())?;
                    }
                    fsapi::FileType::Regular => {
                        if inode.nlink > 1 {
                            if let Some(first) = first_path.get(&inode.ino) {
                                h.set_entry_type(tar::EntryType::Link);
                                h.set_size(0);
                                let first =
                                    std::path::Path::new(std::ffi::OsStr::from_bytes_compat(first));
                                builder.append_link(&mut h, rel_path, first)?;
                                return Ok(());
                            }
                            first_path.insert(inode.ino, rel.to_vec());
                        }
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_size(inode.size);
                        builder.append_data(&mut h, rel_path, FileReader { fs, inode, pos: 0 })?;
                    }
                    fsapi::FileType::Symlink => {
                        let t = fs.read_link(inode.ino)?;
                        h.set_entry_type(tar::EntryType::Symlink);
                        h.set_size(0);
                        builder.append_link(
                            &mut h,
                            rel_path,
                            std::path::Path::new(std::ffi::OsStr::from_bytes_compat(&t)),
                        )?;
                    }
                    fsapi::FileType::Fifo
                    | fsapi::FileType::CharDevice
                    | fsapi::FileType::BlockDevice => {
                        h.set_entry_type(match inode.file_type {
                            fsapi::FileType::Fifo => tar::EntryType::Fifo,
                            fsapi::FileType::CharDevice => tar::EntryType::Char,
                            _ => tar::EntryType::Block,
                        });
                        if let Some((maj, min)) = inode.rdev {
                            h.set_device_major(maj)?;
                            h.set_device_minor(min)?;
                        }
                        h.set_size(0);
                        builder.append_data(&mut h, rel_path, std::io::empty())?;
                    }
                    _ => bail!(
                        "{}: sockets and unknown types are not archived",
                        show_name(path)
                    ),
                }
                Ok(())
            })();
            if let Err(e) = r {
                if e.chain().any(|c| {
                    c.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                }) {
                    return Err(e);
                }
                eprintln!("vmdkrecover: {}: {e:#}", show_name(path));
                failures.set(failures.get() + 1);
            }
            Ok(())
        },
        &mut |p, e| {
            eprintln!("vmdkrecover: {}: {e:#}", show_name(p));
            failures.set(failures.get() + 1);
        },
    )?;
    outcome.failures = failures.get();
    outcome.end_walk(&target);
    let mut sink = builder.into_inner().context("finishing the archive")?;
    sink.flush()?;
    drop(sink);
    if let Some(t) = tmp {
        let dest = std::path::Path::new(output);
        if force {
            t.persist(dest).map_err(|e| e.error)?;
        } else {
            t.persist_noclobber(dest).map_err(|e| e.error)?;
        }
    }
    Ok(outcome)
}

/// `OsStr::from_bytes` under a name that reads well at the call sites above.
trait FromBytesCompat {
    fn from_bytes_compat(b: &[u8]) -> &std::ffi::OsStr;
}
impl FromBytesCompat for std::ffi::OsStr {
    fn from_bytes_compat(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}
