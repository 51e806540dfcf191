//! API contract checks: thread-safety, error messages that name the object,
//! path resolution rules, read coalescing, file runs, and hostile superblocks.

mod common;

use std::sync::Arc;

use bytesource::{ByteSource, Counting, MemSource, SharedSource};
use common::*;
use extfs::{Error, FileRun, FileType, Filesystem, OpenOptions};

fn fixture(name: &str) -> Vec<u8> {
    load_image(&data_dir().join(format!("{name}.img.gz"))).unwrap()
}

#[test]
fn filesystem_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Filesystem>();
    assert_send_sync::<extfs::Inode>();
    assert_send_sync::<Error>();
}

#[test]
fn concurrent_reads_agree() {
    let fs = Arc::new(open_mem(fixture("ext4"), true).unwrap());
    let ino = fs.lookup(b"/big/lines-3m.txt").unwrap();
    let inode = fs.inode(ino).unwrap();
    let want = sha256_file(&fs, &inode).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let fs = fs.clone();
            let inode = inode.clone();
            std::thread::spawn(move || sha256_file(&fs, &inode).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), want);
    }
}

#[test]
fn error_messages_name_the_object() {
    let fs = open_mem(fixture("ext4"), true).unwrap();
    let e = fs.lookup(b"/etc/foo").unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }));
    assert_eq!(e.to_string(), "path /etc: not found");
    let e = fs.lookup(b"/empty-file/x").unwrap_err();
    assert!(matches!(e, Error::NotADirectory { .. }));
    assert_eq!(e.to_string(), "/empty-file/x: not a directory");
    let e = fs.lookup(b"/links/loop1/x").unwrap_err();
    assert!(matches!(e, Error::SymlinkLoop { .. }), "{e}");

    let zeros: SharedSource = Arc::new(MemSource::new(vec![0u8; 8192]));
    assert!(!Filesystem::probe(&*zeros));
    let e = Filesystem::open(zeros, &OpenOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "superblock: bad magic 0x0000 (not an ext2/3/4 filesystem) (at byte 1024)"
    );
    let short: SharedSource = Arc::new(MemSource::new(vec![0u8; 100]));
    assert!(!Filesystem::probe(&*short));
    assert!(Filesystem::open(short, &OpenOptions::default()).is_err());
}

#[test]
fn lookup_follows_intermediate_symlinks_only() {
    let fs = open_mem(fixture("ext4"), true).unwrap();
    assert_eq!(fs.lookup(b"/").unwrap(), 2);
    assert_eq!(fs.lookup(b"//./").unwrap(), 2);
    let file = fs.lookup(b"/deep/a/b/c/file.txt").unwrap();
    // relative intermediate symlink: links/dir-symlink -> ../deep/a
    assert_eq!(fs.lookup(b"/links/dir-symlink/b/c/file.txt").unwrap(), file);
    // absolute intermediate symlink resolves from this filesystem's root
    assert_eq!(
        fs.lookup(b"/links/abs-dir-symlink/c/file.txt").unwrap(),
        file
    );
    // ".." walks up
    assert_eq!(fs.lookup(b"/deep/a/b/../b/c/file.txt").unwrap(), file);
    assert_eq!(fs.lookup(b"/../../deep/a/b/c/file.txt").unwrap(), file);
    // the final component is not followed
    let link = fs.lookup(b"/links/dir-symlink").unwrap();
    assert_eq!(fs.inode(link).unwrap().file_type, FileType::Symlink);
    let dangling = fs.lookup(b"/links/dangling").unwrap();
    assert_eq!(
        fs.read_link(&fs.inode(dangling).unwrap()).unwrap(),
        b"does-not-exist"
    );
    assert!(matches!(
        fs.lookup(b"/links/dangling/x"),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn contiguous_runs_are_one_device_read() {
    let bytes = fixture("ext4");
    let counting = Arc::new(Counting::new(MemSource::new(bytes)));
    let src: SharedSource = counting.clone();
    let fs = Filesystem::open(src, &OpenOptions::default()).unwrap();
    let inode = fs.inode(fs.lookup(b"/big/lines-3m.txt").unwrap()).unwrap();
    let runs = fs.file_runs(&inode).unwrap();
    let data_runs = runs
        .iter()
        .filter(|r| matches!(r, FileRun::Data { .. }))
        .count() as u64;
    // Warm the metadata cache, then count only the data read.
    let mut buf = vec![0u8; inode.size as usize];
    fs.read_at(&inode, 0, &mut buf[..1]).unwrap();
    let before = counting.reads();
    assert_eq!(fs.read_at(&inode, 0, &mut buf).unwrap(), buf.len());
    let reads = counting.reads() - before;
    assert!(
        reads <= data_runs + 4,
        "{reads} device reads for {data_runs} data runs"
    );
    // Contents agree with a read assembled from file_runs.
    let dev = MemSource::new(fixture("ext4"));
    let mut assembled = vec![0u8; inode.size as usize];
    for r in &runs {
        if let FileRun::Data {
            offset,
            len,
            physical,
        } = *r
        {
            dev.read_at(
                physical,
                &mut assembled[offset as usize..(offset + len) as usize],
            )
            .unwrap();
        }
    }
    assert_eq!(assembled, buf);
}

#[test]
fn file_runs_cover_holes() {
    for name in ["ext2-1k", "ext4"] {
        let fs = open_mem(fixture(name), true).unwrap();
        let inode = fs
            .inode(fs.lookup(b"/sparse/hole-middle").unwrap())
            .unwrap();
        let runs = fs.file_runs(&inode).unwrap();
        let mut pos = 0;
        for r in &runs {
            let (o, l) = match *r {
                FileRun::Data { offset, len, .. }
                | FileRun::Hole { offset, len }
                | FileRun::Unwritten { offset, len } => (offset, len),
            };
            assert_eq!(o, pos, "{name}: runs are contiguous");
            pos += l;
        }
        assert_eq!(pos, inode.size, "{name}: runs cover i_size");
        assert!(
            runs.iter().any(|r| matches!(r, FileRun::Hole { .. })),
            "{name}: {runs:?}"
        );
        let all = fs.inode(fs.lookup(b"/sparse/all-hole").unwrap()).unwrap();
        assert_eq!(
            fs.file_runs(&all).unwrap(),
            vec![FileRun::Hole {
                offset: 0,
                len: all.size
            }]
        );
        // read_at: short only at EOF, zeros in holes
        let mut buf = vec![0xAAu8; 100];
        assert_eq!(fs.read_at(&all, all.size - 10, &mut buf).unwrap(), 10);
        assert!(buf[..10].iter().all(|&b| b == 0));
        assert_eq!(fs.read_at(&all, all.size, &mut buf).unwrap(), 0);
        assert_eq!(fs.read_at(&all, u64::MAX, &mut buf).unwrap(), 0);
    }
}

#[test]
fn inode_metadata_matches_kernel() {
    // Fields the manifest does not cover: crtime presence, rdev, flags, blocks.
    let fs = open_mem(fixture("ext4"), true).unwrap();
    let null = fs.inode(fs.lookup(b"/special/null").unwrap()).unwrap();
    assert_eq!(null.rdev, Some((1, 3)));
    assert_eq!(null.file_type, FileType::CharDevice);
    let big = fs.inode(fs.lookup(b"/special/bigdev").unwrap()).unwrap();
    assert_eq!(big.rdev, Some((300, 70000)));
    let f = fs.inode(fs.lookup(b"/big/random-8k.bin").unwrap()).unwrap();
    assert_eq!(f.blocks, 16, "8 KiB in 512-byte sectors");
    assert_eq!((f.uid, f.gid), (4_000_000_000, 4_000_000_001));
    assert!(f.crtime.is_some());
    let old = open_mem(fixture("ext3-128"), true).unwrap();
    let f = old
        .inode(old.lookup(b"/big/random-8k.bin").unwrap())
        .unwrap();
    assert!(f.crtime.is_none(), "128-byte inodes have no crtime");
    let info = fs.info();
    assert_eq!(info.kind, "ext4");
    assert_eq!(info.uuid, "5a1e0000-0000-4000-8000-00000000e47f");
    assert_eq!(info.label, "ext4");
    assert!(info.features.iter().any(|f| f == "extent"));
    assert_eq!(
        open_mem(fixture("ext2-1k"), true).unwrap().info().kind,
        "ext2"
    );
    assert_eq!(old.info().kind, "ext3");
}

#[test]
fn read_dir_rejects_files_and_read_link_rejects_dirs() {
    let fs = open_mem(fixture("ext4"), true).unwrap();
    let f = fs.inode(fs.lookup(b"/empty-file").unwrap()).unwrap();
    assert!(fs.read_dir(&f).is_err());
    let root = fs.inode(2).unwrap();
    assert!(fs.read_link(&root).is_err());
    let entries = fs.read_dir(&root).unwrap();
    assert!(entries.iter().all(|e| e.name != b"." && e.name != b".."));
    assert!(fs.inode(0).is_err());
    assert!(fs.inode(u32::MAX).is_err());
}

/// The fixtures really exercise the features they are named after.
#[test]
fn fixtures_exercise_their_features() {
    const EXT4_INLINE_DATA_FL: u32 = 0x1000_0000;
    const EXT4_EXTENTS_FL: u32 = 0x80000;
    let fs = open_mem(fixture("ext4-inline"), true).unwrap();
    let all = walk(&fs);
    let inline: Vec<_> = all
        .values()
        .filter(|r| fs.inode(r.ino).unwrap().flags & EXT4_INLINE_DATA_FL != 0)
        .map(|r| r.kind)
        .collect();
    assert!(inline.contains(&'f'), "inline files");
    assert!(inline.contains(&'d'), "inline directories");
    let fs = open_mem(fixture("ext4"), true).unwrap();
    let big = fs.inode(fs.lookup(b"/big/lines-3m.txt").unwrap()).unwrap();
    assert!(big.flags & EXT4_EXTENTS_FL != 0);
    let fs = open_mem(fixture("ext2-1k"), true).unwrap();
    let big = fs.inode(fs.lookup(b"/big/lines-3m.txt").unwrap()).unwrap();
    assert_eq!(big.flags & EXT4_EXTENTS_FL, 0, "indirect map");
    assert!(
        big.size > 12 * 1024 + 256 * 1024,
        "needs double indirect blocks"
    );
    for (name, feature) in [
        ("ext4-bigalloc", "bigalloc"),
        ("ext4-meta-bg", "meta_bg"),
        ("ext4-64bit-csum", "metadata_csum"),
        ("ext4-inline", "inline_data"),
    ] {
        let info = open_mem(fixture(name), true).unwrap().info();
        assert!(
            info.features.iter().any(|f| f == feature),
            "{name}: {:?}",
            info.features
        );
    }
    let info = open_mem(fixture("ext4-meta-bg"), true).unwrap().info();
    // 64-byte descriptors, 1 KiB blocks: 16 per block; more groups than that
    // means descriptors in more than one meta group.
    assert!(info.blocks / 512 > 16, "{} blocks", info.blocks);
}

/// metadata_csum mismatches are reported as warnings and reading goes on.
#[test]
fn checksum_mismatches_warn_and_continue() {
    let mut bytes = fixture("ext4-64bit-csum");
    let fs = open_mem(bytes.clone(), true).unwrap();
    assert!(fs.warnings().is_empty(), "{:?}", fs.warnings());
    let root = fs.inode(2).unwrap();
    let FileRun::Data { physical, len, .. } = fs.file_runs(&root).unwrap()[0] else {
        panic!("root has no data block");
    };
    let block = &mut bytes[physical as usize..(physical + len) as usize];
    let at = block.windows(3).position(|w| w == b"acl").unwrap();
    block[at] = b'b';
    bytes[1024 + 0x78] ^= 0x20; // s_volume_name: "ext4-..." -> "Ext4-..."
    let fs = open_mem(bytes, true).unwrap();
    let names: Vec<Vec<u8>> = fs
        .read_dir(&fs.inode(2).unwrap())
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(names.contains(&b"bcl".to_vec()));
    let w = fs.warnings().join("\n");
    assert!(w.contains("superblock: checksum mismatch"), "{w}");
    assert!(
        w.contains("inode 2: directory block 0 checksum mismatch"),
        "{w}"
    );
}

/// An inode table entry's device offset, from the on-disk superblock and group
/// descriptor fields (Documentation/filesystems/ext4/super.rst, group_descr.rst).
fn inode_offset(img: &[u8], ino: u32) -> usize {
    let le32 = |o: usize| u32::from_le_bytes(img[o..o + 4].try_into().unwrap());
    let le16 = |o: usize| u16::from_le_bytes(img[o..o + 2].try_into().unwrap());
    let sb = 1024;
    let bs = 1024usize << le32(sb + 0x18);
    let first_data_block = le32(sb + 0x14) as usize;
    let ipg = le32(sb + 0x28);
    let isz = le16(sb + 0x58) as usize;
    let is64 = le32(sb + 0x60) & 0x80 != 0;
    let desc = if is64 { le16(sb + 0xFE) as usize } else { 32 };
    let group = ((ino - 1) / ipg) as usize;
    let index = ((ino - 1) % ipg) as usize;
    let gd = (first_data_block + 1) * bs + group * desc;
    let mut table = le32(gd + 8) as usize;
    if is64 && desc >= 64 {
        table |= (le32(gd + 0x28) as usize) << 32;
    }
    table * bs + index * isz
}

/// i_size 2^63-1 on a file without blocks: reading must stop with an error naming
/// the inode instead of streaming zeros for ever (the kernel's s_maxbytes is far
/// smaller, fs/ext4/super.c ext4_max_size).
#[test]
fn absurd_i_size_is_an_error_not_an_endless_read() {
    for name in ["ext4", "ext2-1k"] {
        let mut img = fixture(name);
        let ino = open_mem(img.clone(), true)
            .unwrap()
            .lookup(b"/empty-file")
            .unwrap();
        let at = inode_offset(&img, ino);
        let size: u64 = i64::MAX as u64;
        img[at + 0x4..at + 0x8].copy_from_slice(&(size as u32).to_le_bytes());
        img[at + 0x6C..at + 0x70].copy_from_slice(&((size >> 32) as u32).to_le_bytes());
        // The inode checksum (metadata_csum) may now mismatch: a warning, not a stop.
        let fs = open_mem(img, true).unwrap();
        let inode = fs.inode(ino).unwrap();
        assert_eq!(inode.size, size, "{name}: the patch landed on the inode");
        let mut buf = vec![0u8; 4096];
        let e = fs.read_at(&inode, 1 << 40, &mut buf).unwrap_err();
        assert!(
            e.to_string().contains(&format!("inode {ino}")),
            "{name}: {e}"
        );
        assert!(e.to_string().contains("exceeds"), "{name}: {e}");
        assert!(fs.file_runs(&inode).is_err(), "{name}");
    }
}
