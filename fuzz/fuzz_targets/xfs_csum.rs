//! Structure-aware XFS v5 fuzzing: the input is the start of a v5 filesystem
//! (seeded from the xfs fixtures, `scripts/fuzz.sh`), served as a device of the
//! size the superblock claims (zeros past the input, capped). After libFuzzer
//! mutates it, the harness recomputes the CRCs mkfs.xfs would have written, so the
//! reader gets past its gates into the fields behind them:
//!
//! - the superblock's `sb_crc` (offset 224, over `sb_sectsize` bytes);
//! - each AG's AGF (`agf_crc` at 216), AGI (`agi_crc` at 312) and AGFL
//!   (`agfl_crc` at 32), one sector each at sectors 1, 2, 3 of the AG
//!   (`libxfs/xfs_format.h`);
//! - the v3 inodes of the root inode's chunk (`di_crc` at 100, over `sb_inodesize`).
//!
//! XFS CRCs are crc32c seeded with ~0 over the buffer with the CRC field zeroed,
//! stored inverted, little-endian (`libxfs/xfs_cksum.h`); written out here, not
//! taken from the crate under test.
#![no_main]

#[path = "common/reflected_crc.rs"]
mod reflected_crc;

use std::sync::Arc;

use bytesource::{ByteSource, SharedSource};
use fsapi::{FileType, Filesystem as _, OpenOptions};
use libfuzzer_sys::fuzz_target;

const MAX_AGS: u64 = 64;
const CHUNK_INODES: u64 = 64;
const MAX_DEVICE: u64 = 1 << 30;

fn crc32c(crc: u32, data: &[u8]) -> u32 {
    reflected_crc::update(&reflected_crc::CASTAGNOLI, crc, data)
}

fn be(b: &[u8], i: usize, n: usize) -> u64 {
    b.get(i..i + n)
        .map_or(0, |x| x.iter().fold(0u64, |a, &c| (a << 8) | u64::from(c)))
}

/// Writes the XFS CRC of `buf` (CRC field at `off` zeroed first).
fn set_crc(buf: &mut [u8], off: usize) {
    if buf.len() < off + 4 {
        return;
    }
    buf[off..off + 4].fill(0);
    let crc = !crc32c(!0, buf);
    buf[off..off + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The input, then zeros up to `len`.
struct Padded {
    data: Vec<u8>,
    len: u64,
}

impl ByteSource for Padded {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|e| *e <= self.len)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        buf.fill(0);
        let have = self.data.len() as u64;
        if offset < have {
            let n = (end.min(have) - offset) as usize;
            let o = offset as usize;
            buf[..n].copy_from_slice(&self.data[o..o + n]);
        }
        Ok(())
    }
}

fn region(img: &mut [u8], at: u64, len: u64) -> Option<&mut [u8]> {
    let a = usize::try_from(at).ok()?;
    let n = usize::try_from(len).ok()?;
    img.get_mut(a..a.checked_add(n)?)
}

/// Recomputes the CRCs; returns the device size the superblock claims.
fn fix(img: &mut [u8]) -> u64 {
    let sb = img.get(..512).map(<[u8]>::to_vec).unwrap_or_default();
    if be(&sb, 0, 4) != 0x5846_5342 || be(&sb, 100, 2) & 0xf != 5 {
        return img.len() as u64;
    }
    let bsize = be(&sb, 4, 4);
    let dblocks = be(&sb, 8, 8);
    let device = dblocks
        .saturating_mul(bsize)
        .clamp(img.len() as u64, MAX_DEVICE);
    let agblocks = be(&sb, 84, 4);
    let agcount = be(&sb, 88, 4);
    let sect = be(&sb, 102, 2).clamp(512, 32768);
    let isize = be(&sb, 104, 2).clamp(256, 2048);
    let inopblog = be(&sb, 123, 1).min(7);
    let agblklog = be(&sb, 124, 1).min(31);
    for ag in 0..agcount.min(MAX_AGS) {
        let base = ag.saturating_mul(agblocks).saturating_mul(bsize);
        for (idx, off) in [(1u64, 216usize), (2, 312), (3, 32)] {
            if let Some(b) = region(img, base.saturating_add(idx * sect), sect) {
                set_crc(b, off);
            }
        }
    }
    // The root inode's chunk (the fixture trees' first inodes live there).
    let root = be(&sb, 56, 8);
    let first = root & !(CHUNK_INODES - 1);
    for ino in first..first + CHUNK_INODES {
        let agno = ino >> (agblklog + inopblog);
        let agbno = (ino >> inopblog) & ((1u64 << agblklog) - 1);
        let at = agno
            .saturating_mul(agblocks)
            .saturating_add(agbno)
            .saturating_mul(bsize)
            .saturating_add((ino & ((1u64 << inopblog) - 1)) * isize);
        if let Some(b) = region(img, at, isize) {
            if b[0] == b'I' && b[1] == b'N' && b[4] == 3 {
                set_crc(b, 100);
            }
        }
    }
    if let Some(b) = region(img, 0, sect) {
        set_crc(b, 224);
    }
    device
}

fuzz_target!(|data: &[u8]| {
    let mut img = data.to_vec();
    // FUZZ_CSUM_DEBUG=1: say how many bytes fix() changed (0 on an unmutated seed
    // shows the harness computes the checksums as the real tools wrote them).
    let unchanged = std::env::var_os("FUZZ_CSUM_DEBUG").map(|_| img.clone());
    let len = fix(&mut img);
    if let Some(unchanged) = &unchanged {
        let n = img.iter().zip(unchanged).filter(|(a, b)| a != b).count();
        eprintln!("fix() changed {n} bytes");
    }
    let src: SharedSource = Arc::new(Padded { data: img, len });
    if !xfs::Filesystem::probe(&*src) {
        return;
    }
    for replay in [true, false] {
        let Ok(fs) = xfs::Filesystem::open(src.clone(), &OpenOptions::with_replay(replay)) else {
            continue;
        };
        let _ = fs.warnings();
        let mut stack = vec![(fs.root(), 0usize)];
        let mut seen = std::collections::HashSet::new();
        let mut buf = vec![0u8; 4096];
        let mut entries = 0usize;
        while let Some((ino, depth)) = stack.pop() {
            if !seen.insert(ino) || entries > 512 {
                continue;
            }
            let Ok(list) = fs.read_dir(ino) else { continue };
            for e in list {
                entries += 1;
                let Ok(m) = fs.metadata(e.ino) else { continue };
                let _ = fs.xattrs(e.ino);
                match m.file_type {
                    FileType::Directory if depth < 8 => stack.push((e.ino, depth + 1)),
                    FileType::Symlink => {
                        let _ = fs.read_link(e.ino);
                    }
                    _ => {
                        let _ = fs.file_runs(e.ino);
                        let _ = fs.read_at(e.ino, 0, &mut buf);
                    }
                }
            }
        }
    }
});
