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
    /// The last few [`WINDOW_BBS`]-block windows read for single blocks (newest
    /// last): finding the head reads one block at a time, by binary search and
    /// then backwards over up to 2 MiB (xlog_find_head); where the disk is far away
    /// (NFS) every one of those is a round trip, and a 256 KiB request costs what a
    /// 512-byte one does.
    pub window: std::cell::RefCell<Vec<(u64, Vec<u8>)>>,
}

/// Basic blocks read at once for a single-block read (128 KiB, aligned in the ring:
/// the largest request FUSE passes on by default, and NFS's usual rsize).
const WINDOW_BBS: u64 = 256;
/// Windows [`LogRing`] keeps (2.5 MiB: the 2 MiB that finding the head scans, and
/// a few more).
const WINDOWS_KEPT: usize = 20;
/// Windows [`LogRing::prefetch`] reads at once.
const PREFETCH_IN_FLIGHT: usize = 8;

impl LogRing<'_> {
    /// Reads the windows covering blocks `[blk, blk + n)` (at most [`WINDOWS_KEPT`]
    /// of them) into the window cache, [`PREFETCH_IN_FLIGHT`] requests at a time:
    /// finding the head then scans them from memory. Errors are left to the block
    /// reads that follow.
    pub(crate) fn prefetch(&self, blk: u64, n: u64) {
        let first = blk.saturating_sub(blk.checked_rem(WINDOW_BBS).unwrap_or(0));
        let end = blk.saturating_add(n).min(self.bbs);
        let mut starts = Vec::new();
        let mut w = first;
        while w < end && starts.len() < WINDOWS_KEPT {
            if !self.window.borrow().iter().any(|(s, _)| *s == w) {
                starts.push(w);
            }
            w = w.saturating_add(WINDOW_BBS);
        }
        // Nothing to overlap, or reads too fast for threads to pay.
        if starts.len() < 2 || !bytesource::parallel_reads_pay() {
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
            let mut cache = self.window.borrow_mut();
            for entry in read {
                if cache.len() >= WINDOWS_KEPT {
                    cache.remove(0);
                }
                cache.push(entry);
            }
        }
    }

    /// One basic block, through the window cache.
    pub(crate) fn block(&self, blk: u64) -> Result<Vec<u8>, Error> {
        let first = blk.saturating_sub(blk.checked_rem(WINDOW_BBS).unwrap_or(0));
        let at = |w: &[(u64, Vec<u8>)]| {
            w.iter().rev().find_map(|(start, data)| {
                let off = usize::try_from(blk.checked_sub(*start)?.checked_mul(512)?).ok()?;
                data.get(off..off.checked_add(512)?).map(<[u8]>::to_vec)
            })
        };
        if let Some(b) = at(&self.window.borrow()) {
            return Ok(b);
        }
        let n = WINDOW_BBS.min(self.bbs.saturating_sub(first));
        let Ok(data) = self.read(first, n) else {
            return self.read(blk, 1); // a bad sector nearby costs only itself
        };
        let mut w = self.window.borrow_mut();
        if w.len() >= WINDOWS_KEPT {
            w.remove(0);
        }
        w.push((first, data));
        at(&w).map_or_else(|| self.read(blk, 1), Ok)
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

    /// The cycle number of a block (`xlog_get_cycle`): the first word, or for a
    /// record header the second.
    pub(crate) fn cycle(&self, blk: u64) -> Result<u32, Error> {
        let b = self.block(blk)?;
        let word = |at: usize| {
            field::be_u32(&b, at).ok_or_else(|| {
                Error::corrupt(
                    format!("log block {blk}"),
                    format!("short block: no word at byte {at}"),
                )
            })
        };
        if word(0)? == XLOG_HEADER_MAGIC {
            word(4)
        } else {
            word(0)
        }
    }

    /// First word of a block.
    pub(crate) fn first_word(&self, blk: u64) -> Result<u32, Error> {
        field::be_u32(&self.block(blk)?, 0)
            .ok_or_else(|| Error::corrupt(format!("log block {blk}"), "short block: no first word"))
    }
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
