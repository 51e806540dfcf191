//! Structure-aware ext4 fuzzing: the input is the start of an ext4 image with
//! metadata_csum (seeded from the extfs fixtures, `scripts/fuzz.sh`), served as a
//! device of the size the superblock claims (zeros past the input, capped). After
//! libFuzzer mutates it, the harness recomputes the checksums mke2fs would have
//! written, so the reader gets past its gates into the fields behind them:
//!
//! - the superblock's `s_checksum` (crc32c over bytes 0..0x3FC);
//! - each group descriptor's `bg_checksum` (crc32c(seed, group, descriptor with
//!   the checksum zeroed) & 0xFFFF; kernel `fs/ext4/super.c`,
//!   `ext4_group_desc_csum`);
//! - the first inodes of each group's table (`i_checksum_lo`/`_hi`: crc32c(seed,
//!   inode number, i_generation, inode with both fields zeroed); `fs/ext4/inode.c`,
//!   `ext4_inode_csum`).
//!
//! The seed is `s_checksum_seed` (incompat csum_seed) or crc32c(~0, s_uuid), as
//! `ext4_fill_super` computes it. The crc32c (Castagnoli, reflected, no final
//! inversion, as the kernel's `crc32c()`) is written out here, not taken from the
//! crate under test.
#![no_main]

#[path = "common/reflected_crc.rs"]
mod reflected_crc;

use std::sync::Arc;

use bytesource::{ByteSource, SharedSource};
use extfs::{Filesystem, OpenOptions};
use libfuzzer_sys::fuzz_target;

/// Groups and inodes per group whose checksums are recomputed (time per input).
const MAX_GROUPS: u64 = 64;
const MAX_INODES: u64 = 32;
/// Largest device served (zeros past the input cost nothing).
const MAX_DEVICE: u64 = 1 << 30;

fn crc32c(crc: u32, data: &[u8]) -> u32 {
    reflected_crc::update(&reflected_crc::CASTAGNOLI, crc, data)
}

fn le16(b: &[u8], i: usize) -> u64 {
    b.get(i..i + 2)
        .map_or(0, |x| u64::from(u16::from_le_bytes([x[0], x[1]])))
}

fn le32(b: &[u8], i: usize) -> u64 {
    b.get(i..i + 4).map_or(0, |x| {
        u64::from(u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
    })
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

/// Recomputes the checksums; returns the device size the superblock claims.
fn fix(img: &mut [u8]) -> u64 {
    const SB: usize = 1024;
    let Some(sb) = img.get(SB..SB + 1024).map(<[u8]>::to_vec) else {
        return img.len() as u64;
    };
    let log = le32(&sb, 0x18);
    if le16(&sb, 0x38) != 0xEF53 || log > 6 {
        return img.len() as u64;
    }
    let bs = 1024u64 << log;
    let incompat = le32(&sb, 0x60);
    let is64 = incompat & 0x80 != 0;
    let blocks = le32(&sb, 0x04) | if is64 { le32(&sb, 0x150) << 32 } else { 0 };
    let device = blocks
        .saturating_mul(bs)
        .clamp(img.len() as u64, MAX_DEVICE);
    if le32(&sb, 0x64) & 0x400 == 0 {
        return device; // no metadata_csum
    }
    let seed = if incompat & 0x2000 != 0 {
        le32(&sb, 0x270) as u32
    } else {
        crc32c(!0, &sb[0x68..0x78])
    };
    // Group descriptors (not with meta_bg, whose layout differs).
    let first = le32(&sb, 0x14);
    let bpg = le32(&sb, 0x20).max(1);
    let ipg = le32(&sb, 0x28);
    let isz = le16(&sb, 0x58).max(128) as usize;
    let dsz = if is64 {
        le16(&sb, 0xFE).max(32) as usize
    } else {
        32
    };
    let groups = blocks.saturating_sub(first).div_ceil(bpg).min(MAX_GROUPS);
    if incompat & 0x10 == 0 && dsz <= 1024 {
        let gdt = (first + 1).saturating_mul(bs);
        for g in 0..groups {
            let at = gdt.saturating_add(g * dsz as u64) as usize;
            let Some(d) = img.get_mut(at..at.saturating_add(dsz)) else {
                break;
            };
            d[0x1E] = 0;
            d[0x1F] = 0;
            let mut crc = crc32c(seed, &(g as u32).to_le_bytes());
            crc = crc32c(crc, d);
            d[0x1E..0x20].copy_from_slice(&((crc & 0xFFFF) as u16).to_le_bytes());
            // This group's first inodes.
            let table = le32(d, 0x08) | if dsz >= 64 { le32(d, 0x28) << 32 } else { 0 };
            for i in 0..ipg.min(MAX_INODES) {
                let ino = g * ipg + i + 1;
                let at = table.saturating_mul(bs).saturating_add(i * isz as u64) as usize;
                let Some(raw) = img.get_mut(at..at.saturating_add(isz)) else {
                    break;
                };
                if raw.iter().all(|b| *b == 0) {
                    continue; // never used (lazy itable init): mke2fs writes no checksum
                }
                // i_checksum_hi exists when i_extra_isize reaches past it.
                let hi = isz > 128 && 128 + le16(raw, 0x80) as usize >= 0x84;
                raw[0x7C] = 0;
                raw[0x7D] = 0;
                if hi {
                    raw[0x82] = 0;
                    raw[0x83] = 0;
                }
                let mut crc = crc32c(seed, &(ino as u32).to_le_bytes());
                crc = crc32c(crc, &raw[0x64..0x68]);
                crc = crc32c(crc, raw);
                raw[0x7C..0x7E].copy_from_slice(&((crc & 0xFFFF) as u16).to_le_bytes());
                if hi {
                    raw[0x82..0x84].copy_from_slice(&((crc >> 16) as u16).to_le_bytes());
                }
            }
        }
    }
    let crc = crc32c(!0, &img[SB..SB + 0x3FC]);
    img[SB + 0x3FC..SB + 0x400].copy_from_slice(&crc.to_le_bytes());
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
    if !Filesystem::probe(&*src) {
        return;
    }
    for replay in [true, false] {
        let Ok(fs) = Filesystem::open(
            src.clone(),
            &OpenOptions {
                replay_journal: replay,
            },
        ) else {
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
            let Ok(dir) = fs.inode(ino) else { continue };
            let Ok(list) = fs.read_dir(&dir) else {
                continue;
            };
            for e in list {
                entries += 1;
                let Ok(inode) = fs.inode(e.ino) else { continue };
                let _ = fs.xattrs(&inode);
                match inode.file_type {
                    extfs::FileType::Directory if depth < 8 => stack.push((e.ino, depth + 1)),
                    extfs::FileType::Symlink => {
                        let _ = fs.read_link(&inode);
                    }
                    _ => {
                        let _ = fs.file_runs(&inode);
                        let _ = fs.read_at(&inode, 0, &mut buf);
                    }
                }
            }
        }
        let _ = fs.lookup(b"/lost+found");
    }
});
