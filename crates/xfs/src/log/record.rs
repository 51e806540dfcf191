//! Log records: the ring of 512-byte basic blocks, record headers
//! (`xlog_rec_header`, `xlog_rec_ext_header`), the cycle stamp in the first word of
//! every block, and the record checksum.
//!
//! Layouts from libxfs/xfs_log_format.h; the unpacking and checksum follow
//! `xlog_unpack_data` and `xlog_cksum` (fs/xfs/xfs_log_recover.c, fs/xfs/xfs_log.c).
//! Record headers and op headers are big-endian whatever the host.

use bytesource::ByteSource;
use fsapi::Error;

use super::overlay::BBSIZE;
use bytesource::field;

/// `XLOG_HEADER_MAGIC_NUM`: never a valid cycle number, so a header block is told
/// from a data block by its first word.
pub(crate) const XLOG_HEADER_MAGIC: u32 = 0xFEED_BABE;
/// `XLOG_HEADER_CYCLE_SIZE`: one header block carries the displaced words of 32 KiB.
pub(crate) const XLOG_HEADER_CYCLE_SIZE: u32 = 32 * 1024;
/// `XLOG_MAX_RECORD_BSIZE`.
pub(crate) const XLOG_MAX_RECORD_BSIZE: u32 = 256 * 1024;
/// `XLOG_BIG_RECORD_BSIZE`: the record size of a v1 log.
pub(crate) const XLOG_BIG_RECORD_BSIZE: u32 = 32 * 1024;
/// Cycle-data words per header block (`XLOG_HEADER_CYCLE_SIZE / BBSIZE`).
const CYCLE_WORDS: usize = 64;
/// `sizeof(struct xlog_rec_header)`: what the checksum covers of the first block
/// (324 bytes of fields padded to 328 by the struct's 8-byte alignment).
const REC_HEADER_SIZE: usize = 328;
/// `sizeof(struct xlog_rec_ext_header)`.
const REC_EXT_HEADER_SIZE: usize = 260;
/// Byte offset of `h_crc`.
const H_CRC_OFF: usize = 32;
/// Byte offset of `h_cycle_data[0]`.
const H_CYCLE_DATA_OFF: usize = 44;
/// `XLOG_FMT_LINUX_LE`: the item formats inside are little-endian (x86 and most hosts).
pub(crate) const XLOG_FMT_LINUX_LE: u32 = 1;

/// Cycle and block of an LSN (`CYCLE_LSN`, `BLOCK_LSN`).
pub(crate) fn lsn_block(lsn: u64) -> u64 {
    lsn & 0xFFFF_FFFF
}

/// The log as a ring of basic blocks on the data device.
pub(crate) struct LogRing<'a> {
    pub dev: &'a dyn ByteSource,
    /// Byte offset of log block 0 on the device.
    pub start: u64,
    /// Size of the ring in basic blocks (`l_logBBsize`).
    pub bbs: u64,
    /// The filesystem has LOGV2 (variable record sizes, extended headers).
    pub logv2: bool,
    pub uuid: [u8; 16],
    pub is_v5: bool,
    /// Windows of the ring read so far for single blocks (see [`Windows`]).
    pub window: std::cell::RefCell<Windows>,
}

/// The last few windows of the ring read for single blocks (newest last).
///
/// Finding the head reads one block at a time, by binary search and then
/// backwards over up to 2 MiB (xlog_find_head), and looks only at the first two
/// words of each block (the cycle stamp, or a record header's magic and cycle):
/// a window keeps those words of its blocks. Where reads are slow (NFS, FUSE:
/// [`bytesource::parallel_reads_pay`]) every request is a round trip, and a
/// 128 KiB request costs what a 512-byte one does: windows are then
/// [`WINDOW_BBS`] blocks and keep their data too, so the few whole blocks needed
/// afterwards (record headers near the head) cost no request. Where reads come
/// from the page cache, copying and faulting in data never looked at cost more than
/// the requests: the binary search reads [`SMALL_WINDOW_BBS`] blocks a step, the
/// 2 MiB scan reads [`WINDOW_BBS`] at a time into one reused buffer, and whole
/// blocks are read when asked for (a local `ls` of an XFS root read 3.2 MiB of log
/// into fresh buffers this way before, about two thirds of its run time).
#[derive(Default)]
pub(crate) struct Windows {
    kept: Vec<Window>,
    /// Index in `kept` of the window last found: scans ask for block after block
    /// of one window.
    last: std::cell::Cell<usize>,
    /// The buffer windows whose data is not kept are read into.
    scratch: Vec<u8>,
}

struct Window {
    /// First log block.
    start: u64,
    /// The first two big-endian words of each block.
    words: Vec<[u32; 2]>,
    /// The blocks, where reads are slow (see [`Windows`]).
    data: Option<Vec<u8>>,
}

impl Window {
    /// Index of `blk` in this window.
    fn index(&self, blk: u64) -> Option<usize> {
        let i = usize::try_from(blk.checked_sub(self.start)?).ok()?;
        (i < self.words.len()).then_some(i)
    }
}

impl Windows {
    /// The words of `blk`, from the newest window holding it.
    fn words(&self, blk: u64) -> Option<[u32; 2]> {
        let last = self.kept.get(self.last.get());
        // The last window found, unless a newer one holds `blk` too (its words are
        // the same: the device does not change).
        if let Some(v) = last.and_then(|w| w.words.get(w.index(blk)?)) {
            return Some(*v);
        }
        let (i, w) = self
            .kept
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| w.index(blk).is_some())?;
        self.last.set(i);
        w.words.get(w.index(blk)?).copied()
    }

    fn keep(&mut self, w: Window) {
        if self.kept.len() >= WINDOWS_KEPT {
            self.kept.remove(0);
        }
        self.kept.push(w);
    }
}

/// The first two words of each 512-byte block of `data`.
fn block_words(data: &[u8]) -> Vec<[u32; 2]> {
    data.chunks_exact(512)
        .map(|b| {
            let w = b.first_chunk::<8>().copied().unwrap_or_default();
            let [a0, a1, a2, a3, b0, b1, b2, b3] = w;
            [
                u32::from_be_bytes([a0, a1, a2, a3]),
                u32::from_be_bytes([b0, b1, b2, b3]),
            ]
        })
        .collect()
}

/// Basic blocks of a window where reads are slow, and of the 2 MiB scan (128 KiB,
/// aligned in the ring: the largest request FUSE passes on by default, and NFS's
/// usual rsize).
const WINDOW_BBS: u64 = 256;
/// Basic blocks of a window for a single block where reads are fast (4 KiB: a page).
const SMALL_WINDOW_BBS: u64 = 8;
/// Windows [`LogRing`] keeps (2.5 MiB of large windows: the 2 MiB that finding the
/// head scans, and a few more).
const WINDOWS_KEPT: usize = 20;
/// Windows [`LogRing::prefetch`] reads at once.
const PREFETCH_IN_FLIGHT: usize = 8;

impl LogRing<'_> {
    /// Reads the windows covering blocks `[blk, blk + n)` (at most [`WINDOWS_KEPT`]
    /// of them) into the window cache, [`PREFETCH_IN_FLIGHT`] requests at a time
    /// where reads are slow: finding the head then scans them from memory. Errors
    /// are left to the block reads that follow.
    pub(crate) fn prefetch(&self, blk: u64, n: u64) {
        let first = blk.saturating_sub(blk.checked_rem(WINDOW_BBS).unwrap_or(0));
        let end = blk.saturating_add(n).min(self.bbs);
        let mut starts = Vec::new();
        let mut w = first;
        while w < end && starts.len() < WINDOWS_KEPT {
            let len = WINDOW_BBS.min(self.bbs.saturating_sub(w));
            let have = self.window.borrow().kept.iter().any(|k| {
                k.start <= w && k.index(w.saturating_add(len).saturating_sub(1)).is_some()
            });
            if !have {
                starts.push(w);
            }
            w = w.saturating_add(WINDOW_BBS);
        }
        if starts.is_empty() {
            return;
        }
        if !bytesource::parallel_reads_pay() {
            // Reads from the page cache: one after the other, into the one buffer.
            let mut ws = self.window.borrow_mut();
            let mut scratch = std::mem::take(&mut ws.scratch);
            for &s in &starts {
                let n = WINDOW_BBS.min(self.bbs.saturating_sub(s));
                let Ok(len) = usize::try_from(n.saturating_mul(512)) else {
                    break;
                };
                scratch.resize(len, 0);
                let Some(off) = s.checked_mul(512).and_then(|o| self.start.checked_add(o)) else {
                    break;
                };
                if self.dev.read_at(off, &mut scratch).is_ok() {
                    ws.keep(Window {
                        start: s,
                        words: block_words(&scratch),
                        data: None,
                    });
                }
            }
            ws.scratch = scratch;
            return;
        }
        // Nothing to overlap.
        if starts.len() < 2 {
            return;
        }
        for batch in starts.chunks(PREFETCH_IN_FLIGHT) {
            let read: Vec<(u64, Vec<u8>)> = std::thread::scope(|scope| {
                let handles: Vec<_> = batch
                    .iter()
                    .map(|&s| {
                        let n = WINDOW_BBS.min(self.bbs.saturating_sub(s));
                        let (dev, start) = (self.dev, self.start);
                        scope.spawn(move || {
                            let len = usize::try_from(n.saturating_mul(512)).ok()?;
                            let mut buf = vec![0u8; len];
                            let off = start.checked_add(s.checked_mul(512)?)?;
                            dev.read_at(off, &mut buf).ok()?;
                            Some((s, buf))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .filter_map(|h| h.join().ok().flatten())
                    .collect()
            });
            let mut ws = self.window.borrow_mut();
            for (start, data) in read {
                ws.keep(Window {
                    start,
                    words: block_words(&data),
                    data: Some(data),
                });
            }
        }
    }

    /// The first two words of a block, through the window cache.
    fn words(&self, blk: u64) -> Result<[u32; 2], Error> {
        if let Some(v) = self.window.borrow().words(blk) {
            return Ok(v);
        }
        let slow = bytesource::parallel_reads_pay();
        let size = if slow { WINDOW_BBS } else { SMALL_WINDOW_BBS };
        let first = blk.saturating_sub(blk.checked_rem(size).unwrap_or(0));
        let n = size.min(self.bbs.saturating_sub(first));
        let words_of = |data: &[u8]| -> Result<[u32; 2], Error> {
            block_words(data).first().copied().ok_or_else(|| {
                Error::corrupt(format!("log block {blk}"), "short block: no first words")
            })
        };
        let Ok(data) = self.read(first, n) else {
            // A bad sector nearby costs only itself.
            return words_of(&self.read(blk, 1)?);
        };
        let w = Window {
            start: first,
            words: block_words(&data),
            data: slow.then_some(data),
        };
        let v = w.index(blk).and_then(|i| w.words.get(i).copied());
        self.window.borrow_mut().keep(w);
        match v {
            Some(v) => Ok(v),
            None => words_of(&self.read(blk, 1)?),
        }
    }

    /// One basic block: from a window that kept its data, else read.
    pub(crate) fn block(&self, blk: u64) -> Result<Vec<u8>, Error> {
        let cached = |ws: &Windows| ws.kept.iter().rev().find_map(|w| cached_one(w, blk));
        if let Some(b) = cached(&self.window.borrow()) {
            return Ok(b);
        }
        if !bytesource::parallel_reads_pay() {
            return self.read(blk, 1);
        }
        let first = blk.saturating_sub(blk.checked_rem(WINDOW_BBS).unwrap_or(0));
        let n = WINDOW_BBS.min(self.bbs.saturating_sub(first));
        let Ok(data) = self.read(first, n) else {
            return self.read(blk, 1); // a bad sector nearby costs only itself
        };
        let w = Window {
            start: first,
            words: block_words(&data),
            data: Some(data),
        };
        let b = cached_one(&w, blk);
        self.window.borrow_mut().keep(w);
        b.map_or_else(|| self.read(blk, 1), Ok)
    }

    /// Reads `n` basic blocks from log block `blk`, wrapping at the end of the ring
    /// (records and their headers may straddle it: xlog_do_recovery_pass).
    pub(crate) fn read(&self, blk: u64, n: u64) -> Result<Vec<u8>, Error> {
        if n > self.bbs || blk >= self.bbs {
            return Err(Error::corrupt(
                "log",
                format!(
                    "read of {n} blocks at log block {blk} is outside the log ({} blocks)",
                    self.bbs
                ),
            ));
        }
        let total = usize::try_from(n.saturating_mul(512))
            .map_err(|_| Error::corrupt("log", "read too large"))?;
        let mut out = vec![0u8; total];
        let first = n.min(self.bbs.saturating_sub(blk));
        let first_bytes = usize::try_from(first.saturating_mul(512)).unwrap_or(total);
        let (a, b) = out.split_at_mut(first_bytes.min(total));
        let off = self.start.saturating_add(blk.saturating_mul(512));
        self.dev
            .read_at(off, a)
            .map_err(|e| Error::io(format!("log block {blk}"), off, e))?;
        if !b.is_empty() {
            self.dev
                .read_at(self.start, b)
                .map_err(|e| Error::io("log block 0", self.start, e))?;
        }
        Ok(out)
    }

    /// The first block in `[blk, blk + n)` whose cycle (see [`LogRing::cycle`]) is
    /// `stop`: the blocks of each cached window are looked at in one pass, the
    /// others one by one.
    pub(crate) fn find_cycle(&self, blk: u64, n: u64, stop: u32) -> Result<Option<u64>, Error> {
        let end = blk.saturating_add(n);
        let mut at = blk;
        while at < end {
            let hit = {
                let ws = self.window.borrow();
                ws.kept.iter().rev().find_map(|w| {
                    let i = w.index(at)?;
                    let upto = usize::try_from(end.saturating_sub(w.start))
                        .unwrap_or(usize::MAX)
                        .min(w.words.len());
                    let words = w.words.get(i..upto)?;
                    let found = words
                        .iter()
                        .position(|&[w0, w1]| {
                            (if w0 == XLOG_HEADER_MAGIC { w1 } else { w0 }) == stop
                        })
                        .map(|k| at.saturating_add(k as u64));
                    Some((found, at.saturating_add(words.len() as u64)))
                })
            };
            match hit {
                Some((Some(b), _)) => return Ok(Some(b)),
                Some((None, next)) if next > at => at = next,
                _ => {
                    if self.cycle(at)? == stop {
                        return Ok(Some(at));
                    }
                    at = at.saturating_add(1);
                }
            }
        }
        Ok(None)
    }

    /// The cycle number of a block (`xlog_get_cycle`): the first word, or for a
    /// record header the second.
    pub(crate) fn cycle(&self, blk: u64) -> Result<u32, Error> {
        let [w0, w1] = self.words(blk)?;
        Ok(if w0 == XLOG_HEADER_MAGIC { w1 } else { w0 })
    }

    /// First word of a block.
    pub(crate) fn first_word(&self, blk: u64) -> Result<u32, Error> {
        Ok(self.words(blk)?[0])
    }
}

/// Block `blk` from window `w`'s data.
fn cached_one(w: &Window, blk: u64) -> Option<Vec<u8>> {
    let off = w.index(blk)?.checked_mul(512)?;
    w.data
        .as_ref()?
        .get(off..off.checked_add(512)?)
        .map(<[u8]>::to_vec)
}

/// The fields of a record header that recovery uses.
#[derive(Clone, Debug)]
pub(crate) struct RecHeader {
    pub version: u32,
    pub len: u32,
    pub lsn: u64,
    pub tail_lsn: u64,
    pub crc: u32,
    pub num_logops: u32,
    pub fmt: u32,
    pub uuid: [u8; 16],
    pub size: u32,
}

impl RecHeader {
    /// `struct xlog_rec_header` (libxfs/xfs_log_format.h) from the first log
    /// block of a record; `None` when `b` is shorter than its 324 bytes (a log
    /// block is 512, so callers pass a whole block).
    pub(crate) fn parse(b: &[u8]) -> Option<RecHeader> {
        Some(RecHeader {
            version: field::be_u32(b, 8)?,
            len: field::be_u32(b, 12)?,
            lsn: field::be_u64(b, 16)?,
            tail_lsn: field::be_u64(b, 24)?,
            crc: field::le_u32(b, H_CRC_OFF)?,
            num_logops: field::be_u32(b, 40)?,
            fmt: field::be_u32(b, 300)?,
            uuid: field::array_at(b, 304)?,
            size: field::be_u32(b, 320)?,
        })
    }

    /// Header blocks of this record (`xlog_logrec_hblks`).
    pub(crate) fn hblks(&self, logv2: bool) -> u64 {
        if logv2 && self.version & 2 != 0 && self.size > XLOG_HEADER_CYCLE_SIZE {
            u64::from(self.size.div_ceil(XLOG_HEADER_CYCLE_SIZE))
        } else {
            1
        }
    }

    /// Data blocks of this record (`BTOBB(h_len)`).
    pub(crate) fn bblks(&self) -> u64 {
        u64::from(self.len.div_ceil(512))
    }
}

/// One record read from the ring, its data unpacked (cycle words restored).
pub(crate) struct Record {
    pub header: RecHeader,
    /// Header blocks + data blocks.
    pub total_blocks: u64,
    /// The `h_len` bytes of operations.
    pub data: Vec<u8>,
    /// The checksum did not match (v5: fatal for the kernel; v4: advisory).
    pub bad_crc: bool,
}

/// Validates a record header (`xlog_valid_rec_header`) at log block `blk`.
pub(crate) fn validate_header(ring: &LogRing<'_>, h: &RecHeader, blk: u64) -> Result<(), String> {
    let _ = ring;
    if h.version == 0 || h.version & !3 != 0 {
        return Err(format!(
            "record at log block {blk}: unrecognised log version {}",
            h.version
        ));
    }
    let bufsize = if ring.logv2 {
        h.size
    } else {
        XLOG_BIG_RECORD_BSIZE
    };
    let bufsize = if bufsize == 0 {
        XLOG_BIG_RECORD_BSIZE
    } else {
        bufsize
    };
    if h.len == 0 || h.len > bufsize || h.len > XLOG_MAX_RECORD_BSIZE {
        return Err(format!(
            "record at log block {blk}: length {} is outside 1..={bufsize}",
            h.len
        ));
    }
    if ring.logv2 && h.size > XLOG_MAX_RECORD_BSIZE {
        return Err(format!(
            "record at log block {blk}: record size {} over 256 KiB",
            h.size
        ));
    }
    Ok(())
}

/// Reads and unpacks the record whose header is at log block `blk`.
pub(crate) fn read_record(ring: &LogRing<'_>, blk: u64) -> Result<Record, String> {
    let first = ring.block(blk).map_err(|e| e.to_string())?;
    if field::be_u32(&first, 0) != Some(XLOG_HEADER_MAGIC) {
        return Err(format!("log block {blk}: no record header (bad magic)"));
    }
    let h = RecHeader::parse(&first)
        .ok_or_else(|| format!("log block {blk}: record header cut short"))?;
    validate_header(ring, &h, blk)?;
    if h.fmt != XLOG_FMT_LINUX_LE {
        return Err(format!(
            "record at log block {blk}: format {} is not little-endian Linux (only LE logs are read)",
            h.fmt
        ));
    }
    if h.uuid != ring.uuid && h.uuid != [0u8; 16] {
        return Err(format!(
            "record at log block {blk}: filesystem UUID does not match the superblock"
        ));
    }
    let hblks = h.hblks(ring.logv2);
    let bblks = h.bblks();
    let total_blocks = hblks.saturating_add(bblks);
    if total_blocks > ring.bbs {
        return Err(format!("record at log block {blk} is larger than the log"));
    }
    let hdr = ring.read(blk, hblks).map_err(|e| e.to_string())?;
    let dblk = blk.saturating_add(hblks).checked_rem(ring.bbs).unwrap_or(0);
    let mut data = ring.read(dblk, bblks).map_err(|e| e.to_string())?;
    let len = usize::try_from(h.len).unwrap_or(usize::MAX);

    // xlog_cksum: the header block (328 bytes, h_crc as zero), the extended headers
    // (260 bytes each) that h_len needs, then the packed payload.
    let mut crc = crate::crc::digest();
    crc.update(hdr.get(..H_CRC_OFF).unwrap_or_default());
    crc.update(&[0u8; 4]);
    crc.update(hdr.get(H_CRC_OFF + 4..REC_HEADER_SIZE).unwrap_or_default());
    if ring.logv2 {
        let xheads = usize::try_from(h.len.div_ceil(XLOG_HEADER_CYCLE_SIZE)).unwrap_or(1);
        for i in 1..xheads {
            let off = i.saturating_mul(BBSIZE);
            let ext = hdr
                .get(off..off.saturating_add(REC_EXT_HEADER_SIZE))
                .ok_or_else(|| format!("record at log block {blk}: missing extended header {i}"))?;
            crc.update(ext);
        }
    }
    crc.update(data.get(..len).unwrap_or_default());
    let bad_crc = crc.finalize() != h.crc && (h.crc != 0 || ring.is_v5);

    // xlog_unpack_data: put back the first word of every data block.
    let nblocks = usize::try_from(bblks).unwrap_or(0);
    for i in 0..nblocks {
        let (j, k) = (i / CYCLE_WORDS, i % CYCLE_WORDS);
        let src = if j == 0 {
            H_CYCLE_DATA_OFF.saturating_add(k.saturating_mul(4))
        } else {
            if !ring.logv2 {
                return Err(format!("record at log block {blk}: v1 record over 32 KiB"));
            }
            j.saturating_mul(BBSIZE)
                .saturating_add(4)
                .saturating_add(k.saturating_mul(4))
        };
        let word = hdr.get(src..src.saturating_add(4)).ok_or_else(|| {
            format!("record at log block {blk}: cycle data for block {i} is missing")
        })?;
        let dst = i.saturating_mul(BBSIZE);
        if let Some(d) = data.get_mut(dst..dst.saturating_add(4)) {
            d.copy_from_slice(word);
        }
    }
    data.truncate(len);
    Ok(Record {
        header: h,
        total_blocks,
        data,
        bad_crc,
    })
}
