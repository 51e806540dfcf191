//! Deterministic mutation test: small fixture images with random bytes changed
//! (mostly in the metadata at the front) must open, walk and read without
//! panicking, with and without journal replay. A cheap stand-in for the fuzz
//! target (fuzz/fuzz_targets/extfs_walk.rs) that runs on every `cargo test`.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use common::*;
use extfs::{Filesystem, OpenOptions};

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const ITERATIONS: usize = 150;

#[test]
fn mutated_images_never_panic() {
    let mut failures = Vec::new();
    let mut opened = 0;
    for name in ["tiny-ext2", "tiny-ext4", "tiny-journal"] {
        let base = load_image(&data_dir().join(format!("{name}.img.gz"))).unwrap();
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
        for i in 0..ITERATIONS {
            let mut img = base.clone();
            let changes = 1 + rng.below(24);
            // Three in four changes land in the first 64 KiB (superblock, group
            // descriptors, bitmaps, inode tables, root directory, journal start).
            for _ in 0..changes {
                let span = if rng.below(4) == 0 {
                    img.len() as u64
                } else {
                    65536.min(img.len() as u64)
                };
                let pos = rng.below(span) as usize;
                img[pos] = match rng.below(4) {
                    0 => 0,
                    1 => 0xFF,
                    _ => rng.next() as u8,
                };
            }
            let result = catch_unwind(AssertUnwindSafe(|| {
                let src: bytesource::SharedSource = Arc::new(bytesource::MemSource::new(img));
                let mut n = 0;
                for replay in [true, false] {
                    if let Ok(fs) = Filesystem::open(
                        src.clone(),
                        &OpenOptions {
                            replay_journal: replay,
                        },
                    ) {
                        n += 1;
                        let _ = walk_bounded(&fs);
                        let _ = fs.lookup(b"/d/e/../numbers.txt");
                        let _ = fs.warnings();
                    }
                }
                n
            }));
            match result {
                Ok(n) => opened += n,
                Err(_) => failures.push(format!("{name} iteration {i}")),
            }
        }
    }
    eprintln!(
        "mutation test: {opened} opens of {} mutated images",
        3 * ITERATIONS
    );
    assert!(failures.is_empty(), "panics: {failures:?}");
}
