//! `vmdkrecover tar`: a tree as a POSIX pax archive (POSIX.1-2008 `pax` format,
//! "pax Extended Header"): ustar headers, with an extended header before a member
//! whenever ustar cannot say something — a path or link target over ustar's
//! limits, an mtime with nanoseconds (`mtime=SECS.NNNNNNNNN`), large ids, and the
//! extended attributes as `SCHILY.xattr.NAME` records (the names GNU tar and bsdtar
//! read and write; security.selinux and system.posix_acl_* are ordinary xattrs
//! there). Hard links, symlinks, fifos and device nodes are members of their own
//! type. Files with holes are written as GNU sparse format 1.0 members (pax records
//! `GNU.sparse.major=1`, `minor=0`, `name`, `realsize`, and the map at the start of
//! the member's data; GNU tar's "Sparse Formats" documentation), so holes are
//! neither read nor stored; GNU tar and bsdtar restore them as holes.
//!
//! Output goes to a file (`-o FILE`, staged and placed without replacing anything
//! unless `--force`, [`crate::output`]) or to standard output, which must not be a
//! terminal (as GNU tar refuses). `-z` compresses with gzip.

use super::{show_name, walk, Common, Outcome};
use crate::output::os;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};

/// Options of `tar`.
#[derive(Clone, Debug, Default)]
pub struct TarOptions {
    /// Replace an existing output file.
    pub force: bool,
    /// Compress with gzip.
    pub gzip: bool,
}

/// Most xattr bytes of one inode put into its extended header (ext4 keeps at most
/// a block of them; this only bounds what a hostile reader could hand us).
const MAX_XATTR_BYTES: usize = 1 << 20;

/// A `Read` over one file's bytes in the guest filesystem, holes read as zeros.
struct FileReader<'a> {
    fs: &'a dyn fsapi::Filesystem,
    ino: u64,
    pos: u64,
    end: u64,
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.end {
            return Ok(0);
        }
        let want = usize::try_from(self.end - self.pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self
            .fs
            .read_at(self.ino, self.pos, &mut buf[..want])
            .map_err(std::io::Error::other)?;
        if n == 0 {
            return Err(std::io::Error::other(format!(
                "file ends at offset {} before its size",
                self.pos
            )));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// The data of a sparse member: the map, padded to a block, then the data regions.
struct SparseReader<'a> {
    map: std::io::Cursor<Vec<u8>>,
    fs: &'a dyn fsapi::Filesystem,
    ino: u64,
    regions: std::vec::IntoIter<(u64, u64)>,
    current: Option<FileReader<'a>>,
}

impl Read for SparseReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.map.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        loop {
            if let Some(r) = self.current.as_mut() {
                let n = r.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
            }
            match self.regions.next() {
                Some((off, len)) => {
                    self.current = Some(FileReader {
                        fs: self.fs,
                        ino: self.ino,
                        pos: off,
                        end: off.saturating_add(len),
                    })
                }
                None => return Ok(0),
            }
        }
    }
}

/// One pax record: "LEN KEY=VALUE\n", LEN counting the whole record.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Writes a pax extended header ('x') holding `records`.
fn write_pax(out: &mut dyn Write, name: &[u8], records: &[u8]) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    let mut hname = b"PaxHeaders/".to_vec();
    hname.extend(name.iter().rev().take(80).rev());
    set_name_bytes(&mut h, &hname);
    h.set_mode(0o644);
    h.set_size(records.len() as u64);
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_cksum();
    out.write_all(h.as_bytes())?;
    out.write_all(records)?;
    pad(out, records.len() as u64)
}

fn pad(out: &mut dyn Write, len: u64) -> std::io::Result<()> {
    let rem = (512 - len % 512) % 512;
    out.write_all(&[0u8; 512][..rem as usize])
}

/// Puts a name into the ustar name field, cut to its 100 bytes (a pax `path`
/// record then carries the whole name).
fn set_name_bytes(h: &mut tar::Header, name: &[u8]) {
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    for (d, s) in field.iter_mut().zip(name) {
        *d = *s;
    }
}

fn set_link_bytes(h: &mut tar::Header, name: &[u8]) {
    let field = &mut h.as_old_mut().linkname;
    field.fill(0);
    for (d, s) in field.iter_mut().zip(name) {
        *d = *s;
    }
}

/// The data regions of a file, clipped to its size; None when it has no holes.
fn sparse_regions(
    fs: &dyn fsapi::Filesystem,
    inode: &fsapi::Metadata,
) -> Result<Option<Vec<(u64, u64)>>> {
    let mut regions = Vec::new();
    let mut data = 0u64;
    for run in fs.file_runs(inode.ino)? {
        if let fsapi::FileRun::Data { offset, len, .. } = run {
            let end = offset.saturating_add(len).min(inode.size);
            if end > offset {
                regions.push((offset, end - offset));
                data = data.saturating_add(end - offset);
            }
        }
    }
    if data >= inode.size {
        return Ok(None);
    }
    Ok(Some(regions))
}

/// Runs `tar`.
pub fn run(common: &Common, spec: &str, output: &str, opts: &TarOptions) -> Result<Outcome> {
    crate::output::install_signal_cleanup();
    let to_stdout = output == "-";
    if to_stdout && std::io::stdout().is_terminal() {
        bail!("Refusing to write archive contents to terminal (use -o FILE, or redirect standard output)");
    }
    let file_out = if to_stdout {
        None
    } else {
        Some(crate::output::Output::create(
            std::path::Path::new(output),
            opts.force,
        )?)
    };
    let stack = common.open()?;
    let target = common.target(&stack, spec)?;
    let fs = &*target.fs.fs;
    let top = fs.metadata(fs.lookup(&target.path)?)?;
    // Names in the archive are relative to the parent of the SPEC's path as the
    // user typed it, like `tar -C parent -c name` (so the guest path `/boot`, the
    // root of its own filesystem, gives `boot/...`); for "/" the root's contents.
    let given = match crate::spec::Spec::parse(spec)? {
        crate::spec::Spec::OnVolume { path, .. } | crate::spec::Spec::Guest { path } => path,
    };
    let top_name: Vec<u8> = if given == b"/" {
        Vec::new()
    } else {
        given
            .rsplit(|b| *b == b'/')
            .next()
            .unwrap_or_default()
            .to_vec()
    };
    if !top_name.is_empty() && !crate::names::is_safe(&top_name) {
        bail!(
            "{spec}: \"{}\" cannot be a member name",
            show_name(&top_name)
        );
    }
    let archive_name = |path: &[u8]| -> Vec<u8> {
        let below = path
            .strip_prefix(target.path.as_slice())
            .unwrap_or_default();
        let below = below.strip_prefix(b"/").unwrap_or(below);
        let mut name = top_name.clone();
        if !name.is_empty() && !below.is_empty() {
            name.push(b'/');
        }
        name.extend_from_slice(below);
        name
    };
    let raw: Box<dyn Write> = match &file_out {
        None => Box::new(std::io::stdout().lock()),
        Some(o) => Box::new(o.file().try_clone()?),
    };
    let buffered = std::io::BufWriter::with_capacity(1 << 20, raw);
    let mut sink: Box<dyn Write> = if opts.gzip {
        Box::new(flate2::write::GzEncoder::new(
            buffered,
            flate2::Compression::default(),
        ))
    } else {
        Box::new(buffered)
    };
    let progress = crate::progress::Progress::new(0, true);
    let mut first_path: HashMap<u64, Vec<u8>> = HashMap::new();
    let failures = std::cell::Cell::new(0u64);
    let bytes = std::cell::Cell::new(0u64);
    walk(
        &target.fs,
        &target.path,
        top,
        &mut |path, inode| {
            let rel = archive_name(path);
            if rel.is_empty() {
                return Ok(());
            }
            progress.add_total(1, inode.size);
            let r = member(&mut *sink, fs, &rel, inode, &mut first_path, &bytes);
            progress.file_done();
            progress.bytes(if inode.file_type == fsapi::FileType::Regular {
                inode.size
            } else {
                0
            });
            if let Err(e) = r {
                // A write error (a closed pipe, a full disk) ends the archive.
                if e.chain().any(|c| c.downcast_ref::<WriteFailed>().is_some()) {
                    return Err(e);
                }
                progress.eprintln(&format!("vmdkrecover: {}: {e:#}", show_name(path)));
                failures.set(failures.get() + 1);
            }
            Ok(())
        },
        &mut |p, e| {
            progress.eprintln(&format!("vmdkrecover: {}: {e:#}", show_name(p)));
            failures.set(failures.get() + 1);
        },
    )?;
    let mut outcome = Outcome {
        failures: failures.get(),
        ..Outcome::default()
    };
    outcome.end_walk(&target);
    // The end-of-archive marker: two zero blocks.
    sink.write_all(&[0u8; 1024])
        .context("writing the archive")?;
    sink.flush().context("writing the archive")?;
    drop(sink);
    if let Some(o) = file_out {
        o.commit()?;
    }
    let secs = progress.finish();
    crate::progress::summary(&format!(
        "vmdkrecover: archived {} {}",
        show_name(&target.path),
        crate::progress::rate(bytes.get(), secs)
    ));
    outcome.end_read_warnings(&stack);
    Ok(outcome)
}

/// Marks an error writing the archive (not reading the image), which stops `tar`.
#[derive(Debug, thiserror::Error)]
#[error("writing the archive: {0}")]
struct WriteFailed(#[source] std::io::Error);

/// Writes one member (and its extended header when needed).
fn member(
    out: &mut dyn Write,
    fs: &dyn fsapi::Filesystem,
    rel: &[u8],
    inode: &fsapi::Metadata,
    first_path: &mut HashMap<u64, Vec<u8>>,
    bytes: &std::cell::Cell<u64>,
) -> Result<()> {
    use fsapi::FileType as T;
    let mut name = rel.to_vec();
    if inode.file_type == T::Directory {
        name.push(b'/');
    }
    let mut h = tar::Header::new_ustar();
    let mut records = Vec::new();
    if h.set_path(os(&name)).is_err() || name.len() > 100 || !name.is_ascii() {
        set_name_bytes(&mut h, &name);
        pax_record(&mut records, "path", &name);
    }
    h.set_mode(inode.mode & 0o7777);
    for (key, id) in [("uid", inode.uid), ("gid", inode.gid)] {
        if u64::from(id) > 0o7777777 {
            pax_record(&mut records, key, id.to_string().as_bytes());
        }
    }
    h.set_uid(u64::from(inode.uid).min(0o7777777));
    h.set_gid(u64::from(inode.gid).min(0o7777777));
    h.set_mtime(u64::try_from(inode.mtime.secs).unwrap_or(0));
    if inode.mtime.nanos != 0 || inode.mtime.secs < 0 {
        let t = if inode.mtime.secs < 0 && inode.mtime.nanos != 0 {
            // -1.25 s is secs -2 + 0.75 s: pax wants the decimal value.
            let s = inode.mtime.secs.saturating_add(1);
            let n = 1_000_000_000u32.saturating_sub(inode.mtime.nanos);
            format!("{}{}.{n:09}", if s == 0 { "-" } else { "" }, s)
        } else {
            format!("{}.{:09}", inode.mtime.secs, inode.mtime.nanos)
        };
        pax_record(&mut records, "mtime", t.as_bytes());
    }
    let attrs = match fs.xattrs(inode.ino) {
        Ok(a) => a,
        Err(e) => {
            // The member is still worth having; its attributes are missing.
            eprintln!(
                "vmdkrecover: warning: {}: extended attributes not archived: {e}",
                show_name(rel)
            );
            Vec::new()
        }
    };
    let mut xbytes = 0usize;
    for a in &attrs {
        xbytes = xbytes.saturating_add(a.value.len());
        if xbytes > MAX_XATTR_BYTES {
            bail!("more than {MAX_XATTR_BYTES} bytes of extended attributes");
        }
        let key = format!("SCHILY.xattr.{}", String::from_utf8_lossy(&a.name));
        pax_record(&mut records, &key, &a.value);
    }
    let link_to = |h: &mut tar::Header, records: &mut Vec<u8>, target: &[u8]| {
        if h.set_link_name(os(target)).is_err() || target.len() > 100 || !target.is_ascii() {
            set_link_bytes(h, target);
            pax_record(records, "linkpath", target);
        }
    };
    let mut data: Box<dyn Read + '_> = Box::new(std::io::empty());
    let mut size = 0u64;
    match inode.file_type {
        T::Directory => h.set_entry_type(tar::EntryType::Directory),
        T::Regular => {
            let first = if inode.nlink > 1 {
                let f = first_path.get(&inode.ino).cloned();
                if f.is_none() {
                    first_path.insert(inode.ino, rel.to_vec());
                }
                f
            } else {
                None
            };
            if let Some(first) = first {
                h.set_entry_type(tar::EntryType::Link);
                link_to(&mut h, &mut records, &first);
            } else {
                h.set_entry_type(tar::EntryType::Regular);
                match sparse_regions(fs, inode)? {
                    None => {
                        size = inode.size;
                        data = Box::new(FileReader {
                            fs,
                            ino: inode.ino,
                            pos: 0,
                            end: inode.size,
                        });
                    }
                    Some(mut regions) => {
                        // GNU sparse 1.0: the real name and size in the extended
                        // header, the map as decimal lines at the start of the data.
                        pax_record(&mut records, "GNU.sparse.major", b"1");
                        pax_record(&mut records, "GNU.sparse.minor", b"0");
                        pax_record(&mut records, "GNU.sparse.name", rel);
                        pax_record(
                            &mut records,
                            "GNU.sparse.realsize",
                            inode.size.to_string().as_bytes(),
                        );
                        // A trailing hole is a last empty region at the end.
                        if regions.last().is_none_or(|(o, l)| o + l < inode.size) {
                            regions.push((inode.size, 0));
                        }
                        let mut map = format!("{}\n", regions.len());
                        for (o, l) in &regions {
                            map.push_str(&format!("{o}\n{l}\n"));
                        }
                        let mut map = map.into_bytes();
                        map.resize(map.len().div_ceil(512) * 512, 0);
                        let stored: u64 = regions.iter().map(|r| r.1).sum();
                        size = (map.len() as u64).saturating_add(stored);
                        let mut hidden = b"GNUSparseFile.0/".to_vec();
                        hidden.extend(name.rsplit(|b| *b == b'/').next().unwrap_or_default());
                        set_name_bytes(&mut h, &hidden);
                        data = Box::new(SparseReader {
                            map: std::io::Cursor::new(map),
                            fs,
                            ino: inode.ino,
                            regions: regions.into_iter(),
                            current: None,
                        });
                    }
                }
            }
        }
        T::Symlink => {
            let t = fs.read_link(inode.ino)?;
            h.set_entry_type(tar::EntryType::Symlink);
            link_to(&mut h, &mut records, &t);
        }
        T::Fifo | T::CharDevice | T::BlockDevice => {
            h.set_entry_type(match inode.file_type {
                T::Fifo => tar::EntryType::Fifo,
                T::CharDevice => tar::EntryType::Char,
                _ => tar::EntryType::Block,
            });
            if let Some((maj, min)) = inode.rdev {
                h.set_device_major(maj)?;
                h.set_device_minor(min)?;
            }
        }
        _ => bail!("sockets and unknown types are not archived"),
    }
    h.set_size(size);
    h.set_cksum();
    // The data is streamed after its header; if the image fails mid-member the
    // header's size cannot be kept, so the archive stops there.
    if !records.is_empty() {
        write_pax(out, &name, &records).map_err(WriteFailed)?;
    }
    out.write_all(h.as_bytes()).map_err(WriteFailed)?;
    let mut counted = CountingWriter {
        out,
        n: 0,
        write_failed: false,
    };
    let copied = std::io::copy(&mut data, &mut counted);
    let n = counted.n;
    match copied {
        Ok(_) if n == size => {}
        Ok(_) => {
            return Err(WriteFailed(std::io::Error::other(format!(
                "{}: {n} bytes instead of {size}; archive is damaged",
                show_name(rel)
            )))
            .into())
        }
        Err(e) if counted.write_failed => return Err(WriteFailed(e).into()),
        Err(e) => {
            // The image failed mid-member: the header promised `size` bytes, so the
            // archive cannot go on.
            return Err(WriteFailed(std::io::Error::other(format!(
                "{}: reading failed after {n} of {size} bytes ({e}); archive is incomplete",
                show_name(rel)
            )))
            .into());
        }
    }
    pad(counted.out, size).map_err(WriteFailed)?;
    bytes.set(bytes.get().saturating_add(size));
    Ok(())
}

/// Counts bytes written and tells write errors from read errors in `io::copy`.
struct CountingWriter<'a> {
    out: &'a mut dyn Write,
    n: u64,
    write_failed: bool,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.out.write(buf) {
            Ok(n) => {
                self.n += n as u64;
                Ok(n)
            }
            Err(e) => {
                self.write_failed = true;
                Err(e)
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::pax_record;

    /// POSIX.1-2008 pax, "pax Extended Header": "%d %s=%s\n", the length counting
    /// the whole record including its own digits.
    #[test]
    fn pax_records_count_their_own_length() {
        let mut r = Vec::new();
        pax_record(&mut r, "mtime", b"1350244992.023960108");
        assert_eq!(r, b"30 mtime=1350244992.023960108\n");
        // Where the length gains a digit: 98 bytes of text need "101 ".
        let mut r = Vec::new();
        pax_record(&mut r, "k", &[b'v'; 94]);
        assert_eq!(r.len(), 101);
        assert!(r.starts_with(b"101 k="));
    }
}
