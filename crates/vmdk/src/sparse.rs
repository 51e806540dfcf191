//! Opening hosted sparse extents (`KDMV`): monolithicSparse, twoGbMaxExtentSparse
//! pieces and streamOptimized files. The header is decoded by [`crate::kdmv`]; this
//! module checks its geometry, finds the grain directory (the primary, else the
//! redundant copy; a stream's footer or, without one, its markers via
//! [`crate::stream`]) and reads the embedded descriptor.

use crate::grain::{
    open_dir, Ahead, Dir, DirEncoding, Directory, Flavor, GrainMap, ALIGN, MAX_GRAIN_SECTORS,
};
use crate::kdmv::{Header, FLAG_MARKERS, GD_AT_END};
use crate::Error;
use bytesource::SharedSource;

/// Largest grain table accepted (VMware writes 512 entries; qemu refuses > 512).
const MAX_GTES_PER_GT: u64 = 4096;
/// Largest embedded descriptor read.
const MAX_EMBEDDED_DESCRIPTOR: u64 = 1024 * 1024;

/// An opened hosted sparse file.
pub(crate) struct Opened {
    pub(crate) map: GrainMap,
    /// The embedded descriptor text, if the file carries one.
    pub(crate) descriptor: Option<String>,
    pub(crate) warnings: Vec<String>,
    pub(crate) stream_optimized: bool,
}

fn sectors_to_bytes(name: &str, what: &str, s: u64) -> Result<u64, Error> {
    s.checked_mul(512)
        .ok_or_else(|| Error::corrupt(name, format!("{what} of {s} sectors overflows")))
}

/// Opens a `KDMV` file.
pub(crate) fn open(file: SharedSource, name: &str) -> Result<Opened, Error> {
    let mut warnings = Vec::new();
    if file.len() < 512 {
        return Err(Error::corrupt(
            name,
            format!(
                "{} bytes is too short for a sparse extent header",
                file.len()
            ),
        ));
    }
    let mut sector = [0u8; 512];
    file.read_at(0, &mut sector)
        .map_err(|e| Error::io(name, e))?;
    let mut h = Header::parse(&sector, name, 0)?
        .ok_or_else(|| Error::corrupt(name, "no KDMV sparse extent magic at byte 0"))?;
    // (Reading the embedded descriptor in the same 64 KiB request was tried: LS1 at
    // 1 ms 26.5 ms against 23.9 ms for main; dropped.)
    let embedded = read_embedded_descriptor(&file, name, &h, &mut warnings);
    let mut stream_optimized = false;
    let mut footer_error = None;
    // A stream's last bytes, where the file is far: footer and, just before it,
    // the grain directory (VMware "Virtual Disk Format 5.0", "Stream-Optimized
    // Compressed Sparse Extents": directory marker and directory, then the footer
    // marker, footer and end-of-stream marker) in one request.
    let mut tail = None;
    if h.gd_offset == GD_AT_END {
        if crate::grain::read_ahead_at_open() {
            let from = file
                .len()
                .saturating_sub(Ahead::WINDOW.saturating_sub(ALIGN));
            tail = Ahead::read(&file, name, from, Ahead::WINDOW);
        }
        // streamOptimized: the footer holds the real grain directory offset. Without
        // one (a stream cut short) the first header's geometry is used and the grain
        // map is rebuilt from the markers below.
        match crate::stream::read_footer(&file, name, tail.as_ref()) {
            Ok(f) => h = f,
            Err(e) => footer_error = Some(e),
        }
        stream_optimized = true;
    }
    if h.version == 0 || h.version > 3 {
        return Err(Error::unsupported(
            name,
            format!("sparse extent version {} (1 to 3 are read)", h.version),
        ));
    }
    if h.grain_size == 0 || !h.grain_size.is_power_of_two() || h.grain_size > MAX_GRAIN_SECTORS {
        return Err(Error::corrupt(
            name,
            format!(
                "grain size of {} sectors is not a power of two between 1 and {MAX_GRAIN_SECTORS}",
                h.grain_size
            ),
        ));
    }
    let gtes = u64::from(h.num_gtes_per_gt);
    if gtes == 0 || gtes > MAX_GTES_PER_GT {
        return Err(Error::corrupt(
            name,
            format!("{gtes} grain table entries per table (1 to {MAX_GTES_PER_GT} are sane)"),
        ));
    }
    let compressed = match h.compress_algorithm {
        0 => false,
        1 => true,
        other => {
            return Err(Error::unsupported(
                name,
                format!("compression algorithm {other} (only deflate is known)"),
            ))
        }
    };
    stream_optimized |= compressed;
    if h.overhead.checked_mul(512).is_none_or(|o| o > file.len()) {
        // qemu refuses such a file ("File truncated"); grains that are present still
        // read, a grain past the end fails when it is read.
        warnings.push(format!(
            "{name}: file is truncated: the header says grain data starts at sector {}, the file has {} bytes",
            h.overhead,
            file.len()
        ));
    }
    let markers = h.flags & FLAG_MARKERS != 0;
    let capacity = sectors_to_bytes(name, "capacity", h.capacity)?;
    let grain = sectors_to_bytes(name, "grain size", h.grain_size)?;
    let span = grain
        .checked_mul(gtes)
        .ok_or_else(|| Error::corrupt(name, "grain table span overflows"))?;
    let gd_entries = capacity.div_ceil(span);
    let table_bytes = gtes.saturating_mul(4);

    let load = |gd_sector: u64, what: &str, ahead: Option<&Ahead>| -> Result<Dir, Error> {
        if gd_sector == 0 {
            return Err(Error::corrupt(name, format!("{what} offset is 0")));
        }
        let at = sectors_to_bytes(name, what, gd_sector)?;
        open_dir(
            &file,
            name,
            what,
            at,
            gd_entries,
            4,
            DirEncoding::Sector,
            table_bytes,
            ahead,
        )
    };
    // The stream's tail window serves when it holds the directory's start.
    let tail = tail.filter(|t| {
        h.gd_offset
            .checked_mul(512)
            .is_some_and(|at| t.get(at, 4).is_some())
    });
    // Else, where the file is far, the primary directory is read together with
    // what follows it (the grain tables, where qemu-img and VMware put them), in
    // one request: see GrainMap::seed.
    let primary = || -> (Result<Dir, Error>, Option<Ahead>) {
        let ahead = if tail.is_some() || !crate::grain::read_ahead_at_open() {
            None
        } else {
            h.gd_offset
                .checked_mul(512)
                .and_then(|at| Ahead::read(&file, name, at, Ahead::WINDOW))
        };
        let dir = load(
            h.gd_offset,
            "grain directory",
            ahead.as_ref().or(tail.as_ref()),
        );
        (dir, ahead)
    };
    let has_redundant = h.rgd_offset != 0 && h.rgd_offset != h.gd_offset;
    // The redundant directory (flag bit 1, rgdOffset) stands in for the primary when
    // that cannot be used, and else backs it up table by table (a grain table or a
    // directory piece that cannot be read is read from it; see grain.rs).
    let mut redundant = None;
    let mut read_warning = None;
    // Where reads are slow, both directories are checked at once (two round trips
    // in flight instead of one after the other); else the redundant one only when
    // it is needed or there.
    type Both = (
        (Result<Dir, Error>, Option<Ahead>),
        Option<Result<Dir, Error>>,
    );
    let both = |with_redundant: bool| -> Both {
        if with_redundant && bytesource::parallel_reads_pay() {
            std::thread::scope(|scope| {
                let r = scope.spawn(|| load(h.rgd_offset, "redundant grain directory", None));
                let p = primary();
                (p, r.join().ok())
            })
        } else {
            (primary(), None)
        }
    };
    let mut ahead = None;
    let loaded = match footer_error {
        Some(e) => Err(e),
        None => {
            let ((primary, read_ahead), second) = both(has_redundant);
            ahead = read_ahead;
            let second =
                || second.unwrap_or_else(|| load(h.rgd_offset, "redundant grain directory", None));
            match primary {
                Ok(gd) => {
                    if has_redundant {
                        // A redundant directory that does not check out is not used.
                        redundant = second().ok();
                    }
                    Ok(gd)
                }
                Err(primary) if has_redundant => match second() {
                    Ok(gd) => {
                        let w = format!("{primary}; using the redundant grain directory instead");
                        if matches!(primary, Error::Io { .. }) {
                            // A read error survived: reported as such (counted by
                            // the front ends), not only at open.
                            read_warning = Some(w);
                        } else {
                            warnings.push(w);
                        }
                        Ok(gd)
                    }
                    Err(_) => Err(primary),
                },
                Err(primary) => Err(primary),
            }
        }
    };
    let dir = match loaded {
        Ok(d) => Directory::OnDisk(d),
        Err(e) if compressed && markers => {
            // A stream with markers describes itself: rebuild the map from them.
            let s = crate::stream::scan(
                &file,
                name,
                h.overhead.saturating_mul(512),
                h.grain_size,
                h.capacity,
            )?;
            warnings.push(format!(
                "{e}; rebuilt the grain map from the stream's markers ({} grains found{})",
                s.grains_at.len(),
                s.stopped
                    .as_deref()
                    .map(|w| format!("; stopped: {w}"))
                    .unwrap_or_default()
            ));
            Directory::Scanned(s.grains_at)
        }
        Err(e) => return Err(e),
    };
    let map = GrainMap::new(
        file,
        name.to_string(),
        capacity,
        grain,
        gtes,
        4,
        dir,
        Flavor::Hosted {
            compressed,
            markers,
        },
    )
    .with_redundant(redundant);
    if let Some(a) = ahead.as_ref().or(tail.as_ref()) {
        map.seed(a);
    }
    if let Some(w) = read_warning {
        map.note_read_warning(w);
    }
    Ok(Opened {
        map,
        descriptor: embedded,
        warnings,
        stream_optimized,
    })
}

/// Reads the descriptor embedded in a sparse file (descriptorOffset/Size, sectors).
pub(crate) fn read_embedded_descriptor(
    file: &dyn bytesource::ByteSource,
    name: &str,
    h: &Header,
    warnings: &mut Vec<String>,
) -> Option<String> {
    if h.descriptor_offset == 0 || h.descriptor_size == 0 {
        return None;
    }
    let at = h.descriptor_offset.checked_mul(512)?;
    let len = h
        .descriptor_size
        .checked_mul(512)?
        .min(MAX_EMBEDDED_DESCRIPTOR)
        .min(file.len().saturating_sub(at));
    if len == 0 {
        warnings.push(format!(
            "{name}: embedded descriptor at sector {} lies past the end of the file",
            h.descriptor_offset
        ));
        return None;
    }
    let mut buf = vec![0u8; usize::try_from(len).ok()?];
    if let Err(e) = file.read_at(at, &mut buf) {
        warnings.push(format!("{name}: embedded descriptor unreadable: {e}"));
        return None;
    }
    if let Some(nul) = buf.iter().position(|&b| b == 0) {
        buf.truncate(nul);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}
