//! Adapters between our positional [`ByteSource`] and the `Read + Seek` world that
//! the partition-table crates (mbrman, gpt) expect.

use bytesource::ByteSource;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Size of the block a [`Cursor`] reads and keeps: the table parsers read their
/// structures a byte or a field at a time, which must not become one `pread` each.
const BLOCK: u64 = 4096;

/// A read-only, buffered cursor over a byte source, with a budget on the number of
/// blocks read so that a hostile partition table (an EBR chain thousands of links
/// long) cannot keep a parser busy: once the budget is spent every read fails.
pub struct Cursor<'a> {
    source: &'a dyn ByteSource,
    pos: u64,
    reads_left: u32,
    /// (block-aligned offset, bytes) of the last block read.
    block: Option<(u64, Vec<u8>)>,
}

impl std::fmt::Debug for Cursor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor").field("pos", &self.pos).finish()
    }
}

impl<'a> Cursor<'a> {
    /// A cursor at offset 0 that allows `max_reads` reads.
    pub fn new(source: &'a dyn ByteSource, max_reads: u32) -> Self {
        Self {
            source,
            pos: 0,
            reads_left: max_reads,
            block: None,
        }
    }
}

impl Read for Cursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.source.len() || buf.is_empty() {
            return Ok(0);
        }
        let base = self.pos - self.pos % BLOCK;
        if self.block.as_ref().map(|(b, _)| *b) != Some(base) {
            self.reads_left = self.reads_left.checked_sub(1).ok_or_else(|| {
                io::Error::other("partition table: too many reads (looping or absurdly long chain)")
            })?;
            let n = (self.source.len() - base).min(BLOCK) as usize;
            let mut data = vec![0u8; n];
            self.source.read_at(base, &mut data)?;
            self.block = Some((base, data));
        }
        let Some((_, data)) = &self.block else {
            return Ok(0);
        };
        let from = (self.pos - base) as usize;
        let avail = data.get(from..).unwrap_or_default();
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Cursor<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.source.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}

/// The gpt crate wants a writable device even when opened read-only; every write
/// fails, so the source can never be modified through this path (rule 1).
impl Write for Cursor<'_> {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "vmdkrecover never writes to its input",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
