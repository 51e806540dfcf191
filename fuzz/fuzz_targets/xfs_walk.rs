//! Opens arbitrary bytes as XFS (with and without log replay), walks the tree
//! with bounds, reads every file, link and xattr, and resolves a few paths.
//! Errors are expected and ignored; panics, hangs and runaway allocations are the
//! bugs this looks for.
#![no_main]

use std::sync::Arc;

use bytesource::{MemSource, SharedSource};
use fsapi::{FileType, Filesystem as _, OpenOptions};
use libfuzzer_sys::fuzz_target;

const MAX_ENTRIES: usize = 4096;
const MAX_DEPTH: usize = 16;
const MAX_READ: u64 = 1 << 20;

fn walk(fs: &xfs::Filesystem) {
    let _ = fs.info();
    let _ = fs.warnings();
    let mut stack = vec![(fs.root(), 0usize)];
    let mut seen = std::collections::HashSet::new();
    let mut entries = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while let Some((ino, depth)) = stack.pop() {
        if !seen.insert(ino) {
            continue;
        }
        let Ok(list) = fs.read_dir(ino) else { continue };
        for e in list {
            entries += 1;
            if entries > MAX_ENTRIES {
                return;
            }
            let Ok(m) = fs.metadata(e.ino) else { continue };
            let _ = fs.xattrs(e.ino);
            match m.file_type {
                FileType::Directory if depth < MAX_DEPTH => stack.push((e.ino, depth + 1)),
                FileType::Symlink => {
                    let _ = fs.read_link(e.ino);
                }
                _ => {
                    let _ = fs.file_runs(e.ino);
                    let mut off = 0u64;
                    while off < m.size.min(MAX_READ) {
                        match fs.read_at(e.ino, off, &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => off += n as u64,
                        }
                    }
                }
            }
        }
    }
    for p in [&b"/"[..], b"/a/b/../c", b"/etc/passwd"] {
        let _ = fs.lookup(p);
    }
}

fuzz_target!(|data: &[u8]| {
    let src: SharedSource = Arc::new(MemSource::new(data.to_vec()));
    if !xfs::Filesystem::probe(&*src) {
        return;
    }
    for replay in [true, false] {
        if let Ok(fs) = xfs::Filesystem::open(src.clone(), &OpenOptions::with_replay(replay)) {
            walk(&fs);
        }
    }
});
