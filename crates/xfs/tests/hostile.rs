//! Damaged images: copies of real XFS images with bytes flipped in their
//! metadata blocks (found by their on-disk magic numbers, xfs_format.h) must
//! open or fail cleanly, and walk and read completely without a panic, a hang
//! or a runaway allocation; every error names the object it is about.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fsapi::{FileType, Filesystem as _};

/// A small deterministic generator (xorshift64*), so every failure replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Starts of metadata blocks: superblock/AG headers, inode chunks ("IN"), btree
/// blocks, directory, attribute and symlink blocks, by magic at offset 0 or 8.
fn metadata_blocks(img: &[u8], bs: usize) -> Vec<usize> {
    const AT0: [&[u8]; 16] = [
        b"XFSB", b"XAGF", b"XAGI", b"IN", b"BMAP", b"BMA3", b"XD2B", b"XDB3", b"XD2D", b"XDD3",
        b"XD2F", b"XDF3", b"XSLM", b"XARM", b"IAB3", b"FIB3",
    ];
    const AT8: [[u8; 2]; 8] = [
        [0xfb, 0xee],
        [0x3b, 0xee],
        [0xfe, 0xbe],
        [0x3e, 0xbe],
        [0xd2, 0xf1],
        [0x3d, 0xf1],
        [0xd2, 0xff],
        [0x3d, 0xff],
    ];
    (0..img.len() / bs)
        .map(|i| i * bs)
        .filter(|&o| {
            let b = &img[o..o + bs];
            AT0.iter().any(|m| b.starts_with(m)) || AT8.iter().any(|m| &b[8..10] == m)
        })
        .collect()
}

fn names_object(msg: &str) -> bool {
    [
        "inode",
        "superblock",
        "AG",
        "block",
        "device",
        "directory",
        "symlink",
        "attribute",
        "bmbt",
        "log",
    ]
    .iter()
    .any(|w| msg.contains(w))
}

/// Walks everything with bounds; returns the number of objects visited.
fn walk_all(fs: &xfs::Filesystem, deadline: Instant) -> usize {
    let mut seen = HashSet::new();
    let mut stack = vec![(fs.root(), 0usize)];
    let mut buf = vec![0u8; 1 << 20];
    let check = |r: Result<(), fsapi::Error>| {
        if let Err(e) = r {
            let m = e.to_string();
            assert!(names_object(&m), "error names no object: {m}");
        }
    };
    while let Some((ino, depth)) = stack.pop() {
        assert!(Instant::now() < deadline, "walk takes too long");
        if !seen.insert(ino) || seen.len() > 100_000 {
            continue;
        }
        let list = match fs.read_dir(ino) {
            Ok(l) => l,
            Err(e) => {
                check(Err(e));
                continue;
            }
        };
        for e in list {
            let m = match fs.metadata(e.ino) {
                Ok(m) => m,
                Err(err) => {
                    check(Err(err));
                    continue;
                }
            };
            check(fs.xattrs(e.ino).map(|_| ()));
            match m.file_type {
                FileType::Directory if depth < 32 => stack.push((e.ino, depth + 1)),
                FileType::Symlink => check(fs.read_link(e.ino).map(|_| ())),
                _ => {
                    check(fs.file_runs(e.ino).map(|_| ()));
                    let mut off = 0u64;
                    while off < m.size.min(64 << 20) {
                        match fs.read_at(e.ino, off, &mut buf) {
                            Ok(0) => break,
                            Ok(n) => off += n as u64,
                            Err(err) => {
                                check(Err(err));
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    seen.len()
}

fn trash(name: &str, image: Vec<u8>, bs: usize, rounds: u64, flips: usize) {
    let blocks = metadata_blocks(&image, bs);
    assert!(blocks.len() > 4, "{name}: too few metadata blocks found");
    let clean = common::open_bytes(image.clone(), false).unwrap();
    assert!(walk_all(&clean, Instant::now() + Duration::from_secs(60)) > 1);
    for seed in 1..=rounds {
        let mut img = image.clone();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        for _ in 0..flips {
            let o = blocks[rng.below(blocks.len())] + rng.below(bs);
            img[o] ^= 1 << rng.below(8);
            if rng.below(4) == 0 {
                img[o] = rng.next() as u8;
            }
        }
        for replay in [false, true] {
            match common::open_bytes(img.clone(), replay) {
                Ok(fs) => {
                    walk_all(&fs, Instant::now() + Duration::from_secs(30));
                    let _ = fs.info();
                    let _ = fs.warnings();
                }
                Err(e) => assert!(names_object(&e.to_string()), "{name} seed {seed}: {e}"),
            }
        }
    }
}

#[test]
fn trashed_v5_fixture() {
    let Some(p) = common::need(common::data_dir().join("v5_1k.img.zst")) else {
        return;
    };
    trash("v5_1k", common::load_image(&p), 1024, 20, 200);
}

#[test]
fn trashed_v4_fixture() {
    let Some(p) = common::need(common::data_dir().join("v4.img.zst")) else {
        return;
    };
    trash("v4", common::load_image(&p), 4096, 20, 200);
}

#[test]
fn trashed_corpus_v4_512() {
    let Some(p) = common::corpus("xfuse/resources/xfs_noftype.img.zst") else {
        return;
    };
    trash("xfs_noftype", common::load_image(&p), 512, 20, 300);
}

#[test]
fn trashed_dissect_symlinks() {
    let Some(p) = common::corpus("dissect.xfs/tests/_data/xfs_symlink_long.bin.gz") else {
        return;
    };
    trash("xfs_symlink_long", common::load_image(&p), 4096, 25, 100);
}

/// A superblock claiming absurd geometry is refused with an error naming it.
#[test]
fn absurd_superblock_fields() {
    let Some(p) = common::corpus("dissect.xfs/tests/_data/xfs.bin.gz") else {
        return;
    };
    let image = common::load_image(&p);
    // (offset, bytes): blocksize 0, agcount 0, agblocks 1, inodesize 3, dblocks 2^60.
    for (off, bytes) in [
        (4usize, &[0u8, 0, 0, 0][..]),
        (88, &[0, 0, 0, 0]),
        (84, &[0, 0, 0, 1]),
        (104, &[0, 3]),
        (8, &[0x10, 0, 0, 0, 0, 0, 0, 0]),
    ] {
        let mut img = image.clone();
        img[off..off + bytes.len()].copy_from_slice(bytes);
        let err = common::open_bytes(img, false).unwrap_err().to_string();
        assert!(err.contains("superblock"), "{off}: {err}");
    }
}

/// The copies xfs_db's `blocktrash` damaged (scripts/fixtures/xfs.sh stores them
/// as patches): each opens or fails cleanly and walks without a panic or hang.
fn blocktrashed(name: &str) {
    let Some(img) = common::need(common::data_dir().join(format!("{name}.img.zst"))) else {
        return;
    };
    let Some(patches) = common::need(common::data_dir().join(format!("{name}.trash.txt.zst")))
    else {
        return;
    };
    let image = common::load_image(&img);
    let text = String::from_utf8(common::load_image(&patches)).unwrap();
    let mut copies: Vec<Vec<(usize, u8)>> = Vec::new();
    for line in text.lines() {
        if line.starts_with("seed ") {
            copies.push(Vec::new());
        } else {
            let (o, b) = line.split_once(' ').unwrap();
            let patch = (
                usize::from_str_radix(o, 16).unwrap(),
                u8::from_str_radix(b, 16).unwrap(),
            );
            copies.last_mut().unwrap().push(patch);
        }
    }
    assert_eq!(copies.len(), 8, "{name}: eight damaged copies");
    assert!(
        copies.iter().all(|c| !c.is_empty()),
        "{name}: blocktrash changed nothing"
    );
    for (i, c) in copies.iter().enumerate() {
        let mut img = image.clone();
        for &(o, b) in c {
            img[o] = b;
        }
        for replay in [false, true] {
            match common::open_bytes(img.clone(), replay) {
                Ok(fs) => {
                    walk_all(&fs, Instant::now() + Duration::from_secs(30));
                }
                Err(e) => assert!(names_object(&e.to_string()), "{name} copy {i}: {e}"),
            }
        }
    }
}

#[test]
fn blocktrashed_v5_1k() {
    blocktrashed("v5_1k");
}

#[test]
fn blocktrashed_v4() {
    blocktrashed("v4");
}
