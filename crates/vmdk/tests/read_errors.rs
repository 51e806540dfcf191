//! Bad sectors under a sparse extent's metadata (issue 9): the monolithicSparse
//! fixture qemu-img wrote (`scripts/fixtures/vmdk.sh`, msparse.vmdk) carries a
//! redundant grain directory and tables (header flag bit 1, rgdOffset; VMware
//! "Virtual Disk Format 1.1"/"5.0", "Hosted Sparse Extent Header"). Reads of
//! chosen byte ranges fail with EIO, as a failing disk's would. Where the
//! primary grain table or directory cannot be read its redundant copy must be
//! used, with a read warning naming the table, and the bytes must still be the
//! ones `qemu-img convert -O raw` read from the intact file (expected.sha256);
//! where neither copy can be read, reads of the grains it maps fail with an
//! error naming the grain table.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use bytesource::{ByteSource, MemSource, SharedSource};
use common::*;
use std::io;
use std::sync::Arc;
use vmdk::Disk;

/// A file whose reads fail with EIO where they touch one of `bad` (start, len).
struct Failing {
    inner: MemSource,
    bad: Vec<(u64, u64)>,
}

impl ByteSource for Failing {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        if self.bad.iter().any(|&(s, l)| offset < s + l && s < end) {
            return Err(io::Error::from_raw_os_error(5));
        }
        self.inner.read_at(offset, buf)
    }
}

/// The fields of the sparse header that locate the directories (read here with
/// the published offsets, independently of the crate).
struct Layout {
    bytes: Vec<u8>,
    /// Byte offsets of the primary and redundant directories.
    gd: u64,
    rgd: u64,
    /// Byte offsets of grain table 0, primary and redundant.
    gt0: u64,
    rgt0: u64,
    /// Bytes of one grain table.
    gt_bytes: u64,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn msparse() -> Layout {
    let dir = fixtures();
    let bytes = std::fs::read(dir.path().join("msparse.vmdk")).unwrap();
    assert_eq!(&bytes[..4], b"KDMV");
    assert_ne!(u32_at(&bytes, 8) & 2, 0, "qemu-img wrote no redundant GD");
    let gtes = u64::from(u32_at(&bytes, 44));
    let rgd = u64_at(&bytes, 48) * 512;
    let gd = u64_at(&bytes, 56) * 512;
    let gt0 = u64::from(u32_at(&bytes, gd as usize)) * 512;
    let rgt0 = u64::from(u32_at(&bytes, rgd as usize)) * 512;
    assert!(gt0 != 0 && rgt0 != 0 && gt0 != rgt0);
    Layout {
        bytes,
        gd,
        rgd,
        gt0,
        rgt0,
        gt_bytes: gtes * 4,
    }
}

fn open_failing(l: &Layout, bad: &[(u64, u64)]) -> Result<Disk, vmdk::Error> {
    let src: SharedSource = Arc::new(Failing {
        inner: MemSource::new(l.bytes.clone()),
        bad: bad.to_vec(),
    });
    Disk::from_source(src)
}

#[test]
fn unreadable_grain_table_is_read_from_its_redundant_copy() {
    let l = msparse();
    let d = open_failing(&l, &[(l.gt0, l.gt_bytes)]).unwrap();
    assert!(d.read_warnings().is_empty(), "{:?}", d.read_warnings());
    assert_eq!(sha_of(&d, 1 << 20), expected_for("msparse.vmdk"));
    let w = d.read_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("grain table 0"), "{}", w[0]);
    assert!(w[0].contains(&format!("{:#x}", l.gt0)), "{}", w[0]);
    assert!(w[0].contains(&format!("{:#x}", l.rgt0)), "{}", w[0]);
    assert!(w[0].contains("redundant"), "{}", w[0]);
    // Also among the disk's warnings (what `info` shows).
    assert!(d.warnings().contains(&w[0]));
    // Read again: still one warning (the table is cached or warned once).
    assert_eq!(sha_of(&d, 3000), expected_for("msparse.vmdk"));
    assert_eq!(d.read_warnings().len(), 1);
}

#[test]
fn unreadable_grain_directory_is_read_from_the_redundant_one() {
    let l = msparse();
    let d = open_failing(&l, &[(l.gd, 512)]).unwrap();
    assert_eq!(sha_of(&d, 1 << 20), expected_for("msparse.vmdk"));
    let w = d.read_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("redundant grain directory"), "{}", w[0]);
}

#[test]
fn both_copies_unreadable_fail_naming_the_grain_table() {
    let l = msparse();
    let d = open_failing(&l, &[(l.gt0, l.gt_bytes), (l.rgt0, l.gt_bytes)]).unwrap();
    let mut b = vec![0u8; 4096];
    let e = d.read_at(0, &mut b).unwrap_err().to_string();
    assert!(e.contains("grain table 0"), "{e}");
    assert!(e.contains(&format!("{:#x}", l.gt0)), "{e}");
    assert!(e.contains(&format!("{:#x}", l.rgt0)), "{e}");
    // Not silent zeros, and no warning claims a copy was used.
    assert!(d.read_warnings().is_empty());
    // Both directories unreadable: the open fails, naming the directory.
    let e = open_failing(&l, &[(l.gd, 512), (l.rgd, 512)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("grain directory"), "{e}");
}
