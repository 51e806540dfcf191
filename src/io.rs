//! Adapters between our positional [`ByteSource`] and the `Read + Seek` world that
//! the partition-table crates (mbrman, gpt) expect.

use bytesource::ByteSource;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// A read-only cursor over a byte source, with a budget on the number of reads so
/// that a hostile partition table (an EBR chain thousands of links long) cannot
/// keep a parser busy: once the budget is spent every read fails.
pub struct Cursor<'a> {
    source: &'a dyn ByteSource,
    pos: u64,
    reads_left: u32,
}

impl std::fmt::Debug for Cursor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor").field("pos", &self.pos).finish()
    }
}

impl<'a> Cursor<'a> {
    /// A cursor at offset 0 that allows `max_reads` reads.
    pub fn new(source: &'a dyn ByteSource, max_reads: u32) -> Self {
        Self { source, pos: 0, reads_left: max_reads }
    }
}

impl Read for Cursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads_left = self
            .reads_left
            .checked_sub(1)
            .ok_or_else(|| io::Error::other("partition table: too many reads (looping or absurdly long chain)"))?;
        let remaining = self.source.len().saturating_sub(self.pos);
        let n = usize::try_from(remaining).unwrap_or(usize::MAX).min(buf.len());
        let Some(dst) = buf.get_mut(..n) else { return Ok(0) };
        self.source.read_at(self.pos, dst)?;
        self.pos = self.pos.saturating_add(n as u64);
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
        self.pos = new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}

/// The gpt crate wants a writable device even when opened read-only; every write
/// fails, so the source can never be modified through this path (rule 1).
impl Write for Cursor<'_> {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "vmdkrecover never writes to its input"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
