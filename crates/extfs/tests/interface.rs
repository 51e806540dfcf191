//! The fixtures read through `fsapi::Filesystem` (what every front end uses:
//! `Arc<dyn Filesystem>`, u64 inode numbers, metadata, read_dir, read_at,
//! file_runs, read_link, the generic lookup) agree with the manifests
//! scripts/fixtures/extfs.sh wrote from a kernel mount of the same images.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use fsapi::{FileRun, FileType, Filesystem};
use sha2::{Digest, Sha256};

fn contents(fs: &dyn Filesystem, ino: u64, size: u64) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut off = 0;
    while off < size {
        let n = fs.read_at(ino, off, &mut buf).unwrap();
        assert!(n > 0, "inode {ino}: short read at {off} of {size}");
        h.update(&buf[..n]);
        off += n as u64;
    }
    // read_at never reads past the end.
    assert_eq!(fs.read_at(ino, size, &mut buf).unwrap(), 0);
    // The runs cover [0, size) in order, and the file assembled from them with
    // read_device_at (zeros for holes and unwritten runs) is the same file,
    // inline-data files included.
    let mut pos = 0;
    let mut assembled = Sha256::new();
    for r in fs.file_runs(ino).unwrap() {
        assert_eq!(r.offset(), pos, "inode {ino}: runs in order");
        pos += r.len();
        let mut part = vec![0u8; r.len() as usize];
        if let FileRun::Data { physical, .. } = r {
            fs.read_device_at(physical, &mut part).unwrap();
        }
        assembled.update(&part);
    }
    assert_eq!(pos, size, "inode {ino}: runs cover the file");
    let sum = hex(&h.finalize());
    assert_eq!(hex(&assembled.finalize()), sum, "inode {ino}: runs");
    sum
}

fn walk_dyn(fs: &dyn Filesystem) -> BTreeMap<Vec<u8>, Row> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(fs.root(), Vec::<u8>::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for e in fs.read_dir(dir).unwrap() {
            let mut path = prefix.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&e.name);
            if path == b"lost+found" {
                continue;
            }
            let md = fs.metadata(e.ino).unwrap();
            assert_eq!(md.ino, e.ino);
            assert_eq!(md.file_type, FileType::from_mode(md.mode));
            // The generic lookup finds the same inode by path (every directory and
            // a sample of the rest: each lookup reads every directory on the way).
            if md.file_type == FileType::Directory || out.len() % 97 == 0 {
                let mut abs = b"/".to_vec();
                abs.extend_from_slice(&path);
                assert_eq!(fs.lookup(&abs).unwrap(), e.ino, "{abs:?}");
            }
            let sha256 = if md.file_type == FileType::Regular {
                contents(fs, e.ino, md.size)
            } else {
                "-".into()
            };
            let target = if md.file_type == FileType::Symlink {
                fs.read_link(e.ino).unwrap()
            } else {
                Vec::new()
            };
            out.insert(
                path.clone(),
                Row {
                    kind: kind_char(md.file_type),
                    mode: md.mode & 0o7777,
                    size: md.size,
                    sha256,
                    target,
                    mtime: (md.mtime.secs, md.mtime.nanos),
                    ino: u32::try_from(md.ino).unwrap(),
                    nlink: md.nlink,
                    uid: md.uid,
                    gid: md.gid,
                    rdev: md.rdev,
                },
            );
            if md.file_type == FileType::Directory {
                stack.push((e.ino, path));
            }
        }
    }
    out
}

#[test]
fn fixtures_through_the_interface_match_the_kernel() {
    for name in ["ext2-1k", "ext4", "ext4-inline", "ext4-64bit-csum"] {
        let dir = data_dir();
        let bytes = load_image(&dir.join(format!("{name}.img.gz"))).unwrap();
        let fs: Arc<dyn Filesystem> = Arc::new(open_mem(bytes, true).unwrap());
        let expected = read_manifest(&dir.join(format!("{name}.tsv.gz")));
        let got = walk_dyn(&*fs);
        let d = diff(&expected, &got);
        assert!(
            d.is_empty(),
            "{name}: {} differences:\n{}",
            d.len(),
            d.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
        );
        assert_eq!(fs.warning_count(), 0, "{name}: {:?}", fs.warnings());
        if name == "ext4-inline" {
            // Inline files longer than i_block exercise the system.data run.
            const EXT4_INLINE_DATA_FL: u64 = 0x1000_0000;
            let long_inline = got
                .values()
                .filter(|r| r.kind == 'f' && r.size > 60)
                .filter(|r| fs.metadata(u64::from(r.ino)).unwrap().flags & EXT4_INLINE_DATA_FL != 0)
                .count();
            assert!(long_inline > 0, "no inline file longer than 60 bytes");
        }
        let info = fs.info();
        assert!(info.kind.starts_with("ext"), "{name}: {}", info.kind);
        // Numbers no ext filesystem has are errors, not panics or wrap-arounds.
        assert!(fs.metadata(0).is_err());
        assert!(fs.metadata(u64::from(u32::MAX) + 3).is_err());
        assert!(fs.read_dir(u64::MAX).is_err());
    }
}
