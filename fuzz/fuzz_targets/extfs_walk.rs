//! Opens arbitrary bytes as an ext2/3/4 filesystem (with and without journal
//! replay), walks the tree with bounds, reads every file, link and xattr, and
//! resolves a few paths. Errors are expected and ignored; panics, hangs and
//! runaway allocations are the bugs this looks for, and so are broken bounds:
//! file runs that do not tile `[0, i_size)` or map more than the filesystem
//! holds, and directories listing more entries than their size allows.
#![no_main]

use std::sync::Arc;

use bytesource::{MemSource, SharedSource};
use extfs::{FileRun, FileType, Filesystem, OpenOptions};
use libfuzzer_sys::fuzz_target;

const MAX_ENTRIES: usize = 4096;
const MAX_DEPTH: usize = 16;
const MAX_READ: u64 = 1 << 20;

/// Runs tile `[0, size)` in order, and data never exceeds the filesystem.
fn check_runs(fs: &Filesystem, size: u64, runs: &[FileRun]) {
    let info = fs.info();
    let fs_bytes = info.blocks.saturating_mul(u64::from(info.block_size));
    let (mut pos, mut data) = (0u64, 0u64);
    for r in runs {
        let (offset, len) = match *r {
            FileRun::Data { offset, len, .. } => {
                data += len;
                (offset, len)
            }
            FileRun::Hole { offset, len } | FileRun::Unwritten { offset, len } => (offset, len),
        };
        assert_eq!(offset, pos, "runs are not contiguous: {runs:?}");
        pos += len;
    }
    assert!(
        runs.is_empty() || pos == size,
        "runs end at {pos}, i_size {size}"
    );
    // Inline data is at most one inode; everything else is bounded by the filesystem.
    assert!(
        data <= fs_bytes.max(65536),
        "{data} bytes mapped on a {fs_bytes}-byte filesystem"
    );
}

fn walk(fs: &Filesystem) {
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
        let Ok(dir) = fs.inode(ino) else { continue };
        let Ok(list) = fs.read_dir(&dir) else {
            continue;
        };
        // Every entry takes at least 12 bytes of the whole blocks read (inline
        // directories add . and ..).
        let bs = u64::from(fs.info().block_size);
        let covered = dir.size.div_ceil(bs) * bs;
        assert!(
            list.len() as u64 <= covered / 12 + 2,
            "{} entries in {} bytes",
            list.len(),
            dir.size
        );
        for e in list {
            entries += 1;
            if entries > MAX_ENTRIES {
                return;
            }
            let Ok(inode) = fs.inode(e.ino) else { continue };
            let _ = fs.xattrs(&inode);
            match inode.file_type {
                FileType::Directory if depth < MAX_DEPTH => stack.push((e.ino, depth + 1)),
                FileType::Symlink => {
                    let _ = fs.read_link(&inode);
                }
                _ => {
                    if let Ok(runs) = fs.file_runs(&inode) {
                        check_runs(fs, inode.size, &runs);
                    }
                    let mut off = 0u64;
                    while off < inode.size.min(MAX_READ) {
                        match fs.read_at(&inode, off, &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                assert!(n <= buf.len());
                                off += n as u64;
                            }
                        }
                    }
                }
            }
        }
    }
    for p in [&b"/"[..], b"/lost+found", b"/a/b/../c", b"/etc/passwd"] {
        let _ = fs.lookup(p);
    }
    // The same filesystem through the interface the front end uses.
    let dynfs: &dyn fsapi::Filesystem = fs;
    let root = dynfs.root();
    if let Ok(list) = dynfs.read_dir(root) {
        for e in list.iter().take(64) {
            let _ = dynfs.metadata(e.ino);
            let _ = dynfs.file_runs(e.ino);
            let _ = dynfs.read_at(e.ino, 0, &mut buf);
        }
    }
    for p in [&b"/lost+found/.."[..], b"/a/../../b/c"] {
        let _ = dynfs.lookup(p);
    }
    let _ = dynfs.warning_count();
}

fuzz_target!(|data: &[u8]| {
    let src: SharedSource = Arc::new(MemSource::new(data.to_vec()));
    if !Filesystem::probe(&*src) {
        return;
    }
    for replay in [true, false] {
        if let Ok(fs) = Filesystem::open(
            src.clone(),
            &OpenOptions {
                replay_journal: replay,
            },
        ) {
            walk(&fs);
        }
    }
});
