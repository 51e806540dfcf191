//! The public corpus images (../shared/corpus, see its README.md): every fact
//! asserted here is one the README states, from the source project's own tests,
//! xfs_db, or a kernel mount.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use common::{corpus, count, lookup, open, read_all, sha256_of, walk};
use fsapi::{Error, FileRun, FileType, Filesystem as _, Timestamp};

const XFUSE: &str = "xfuse/resources";
const DISSECT: &str = "dissect.xfs/tests/_data";

/// The README's offset pattern: each 16-byte record at offset k is `%016x` of k.
fn pattern(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 16);
    let mut k = 0usize;
    while v.len() < len {
        v.extend_from_slice(format!("{k:016x}").as_bytes());
        k += 16;
    }
    v.truncate(len);
    v
}

/// Resolves `path` fully, following a final symlink too (lookup follows only the
/// intermediate ones), and returns the inode reached.
fn resolve(fs: &xfs::Filesystem, path: &str) -> u64 {
    let mut p = path.to_string();
    for _ in 0..40 {
        let ino = lookup(fs, &p);
        if fs.metadata(ino).unwrap().file_type != FileType::Symlink {
            return ino;
        }
        let t = String::from_utf8(fs.read_link(ino).unwrap()).unwrap();
        p = if t.starts_with('/') {
            t
        } else {
            format!("{}/{t}", &p[..p.rfind('/').unwrap()])
        };
    }
    panic!("{path}: symlink loop");
}

fn has_feature(fs: &xfs::Filesystem, f: &str) -> bool {
    fs.info().features.iter().any(|x| x == f)
}

fn detail(fs: &xfs::Filesystem, k: &str) -> String {
    fs.info()
        .details
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn xattr_names(fs: &xfs::Filesystem, path: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs
        .xattrs(lookup(fs, path))
        .unwrap()
        .into_iter()
        .map(|x| (String::from_utf8(x.name).unwrap(), x.value))
        .collect();
    v.sort();
    v
}

/// `xattrs/local` and `xattrs/extents`: user.attr.%06d = value.%06d (README).
fn check_attr_pattern(fs: &xfs::Filesystem, path: &str, n: usize) {
    let got = xattr_names(fs, path);
    let want: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            (
                format!("user.attr.{i:06}"),
                format!("value.{i:06}").into_bytes(),
            )
        })
        .collect();
    assert_eq!(got, want, "{path}");
}

fn check_hello(fs: &xfs::Filesystem, ino: u64) {
    for p in ["/files/hello.txt", "/files/hello2.txt"] {
        assert_eq!(lookup(fs, p), ino, "{p}");
    }
    let m = fs.metadata(ino).unwrap();
    assert_eq!(
        (m.nlink, m.size, m.mode, m.uid, m.gid),
        (2, 14, 0o101234, 1234, 5678)
    );
    assert_eq!(
        m.mtime,
        Timestamp {
            secs: 401526123,
            nanos: 0
        }
    );
    assert_eq!(m.atime.secs, 1332497106);
    assert_eq!(read_all(fs, ino), b"Hello, World!\n");
}

fn check_pattern_file(fs: &xfs::Filesystem, path: &str, size: usize, sha_prefix: &str) {
    let ino = lookup(fs, path);
    assert_eq!(fs.metadata(ino).unwrap().size, size as u64, "{path}");
    assert!(
        sha256_of(fs, ino).unwrap().starts_with(sha_prefix),
        "{path}"
    );
    assert_eq!(read_all(fs, ino), pattern(size), "{path}");
}

fn check_links(fs: &xfs::Filesystem) {
    assert_eq!(fs.read_link(lookup(fs, "/links/sf")).unwrap(), b"dest");
    let max = fs.read_link(lookup(fs, "/links/max")).unwrap();
    let want: Vec<u8> = b"0123456789ABCDEF"
        .iter()
        .cycle()
        .take(1023)
        .copied()
        .collect();
    assert_eq!(max, want);
}

#[test]
fn xfuse_xfs4096() {
    let Some(p) = corpus(&format!("{XFUSE}/xfs4096.img.zst")) else {
        return;
    };
    let fs = open(&p);
    let info = fs.info();
    assert_eq!((info.kind.as_str(), info.block_size), ("xfs", 4096));
    for f in [
        "crc",
        "ftype",
        "finobt",
        "sparse",
        "reflink",
        "inobtcount",
        "bigtime",
    ] {
        assert!(has_feature(&fs, f), "{f}");
    }
    assert_eq!(fs.root(), 128);
    assert_eq!(detail(&fs, "agcount"), "4");
    assert_eq!(detail(&fs, "directory block size"), "8192");
    assert!(info.clean && !info.needs_recovery);
    assert_eq!(info.inodes - info.free_inodes, 750, "statfs used inodes");
    for (d, n) in [
        ("/sf", 2),
        ("/block", 32),
        ("/leaf", 384),
        ("/block-with-hash-collisions", 40),
        ("/all_name_lengths", 255),
        ("/files", 23),
        ("/links", 2),
        ("/xattrs", 2),
    ] {
        assert_eq!(count(&fs, d), n, "{d}");
    }
    let names: Vec<Vec<u8>> = fs
        .read_dir(lookup(&fs, "/all_name_lengths"))
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    for n in 1..=255usize {
        assert!(
            names.contains(&format!("{:0n$}", 0, n = n).into_bytes())
                || names.iter().any(|x| x.len() == n),
            "name of length {n}"
        );
    }
    check_hello(&fs, 142530);
    let old = fs.metadata(lookup(&fs, "/files/old.txt")).unwrap();
    assert_eq!((old.mtime.secs, old.atime.secs), (-1613800129, -1613800129));
    for (p, t) in [("fifo", FileType::Fifo), ("sock", FileType::Socket)] {
        assert_eq!(
            fs.metadata(lookup(&fs, &format!("/files/{p}")))
                .unwrap()
                .file_type,
            t
        );
    }
    let b = fs.metadata(lookup(&fs, "/files/blockdev")).unwrap();
    assert_eq!((b.file_type, b.rdev), (FileType::BlockDevice, Some((1, 2))));
    let c = fs.metadata(lookup(&fs, "/files/chardev")).unwrap();
    assert_eq!((c.file_type, c.rdev), (FileType::CharDevice, Some((1, 2))));
    let x = fs.metadata(lookup(&fs, "/files/executable")).unwrap();
    assert_eq!((x.mode & 0o7777, x.size), (0o755, 0));
    for (f, size, sha) in [
        ("large_extent", 1 << 20, "8d6f2c70"),
        ("partial_extent", 8448, "8c3d976c"),
        ("single_extent", 4096, "2485c503"),
        ("four_extents", 16384, "5b79dabd"),
        ("btree2", 65536, "e49e44f6"),
        ("btree2.4", 8 << 20, "2d71f577"),
        ("btree3", 16 << 20, "4a056f0b"),
        ("reflink_a", 16384, "5b79dabd"),
        ("reflink_b", 16384, "5b79dabd"),
        ("reflink_partial", 16384, "5b79dabd"),
    ] {
        check_pattern_file(&fs, &format!("/files/{f}.txt"), size, sha);
    }
    // large_extent is one extent: one data run.
    let runs = fs
        .file_runs(lookup(&fs, "/files/large_extent.txt"))
        .unwrap();
    assert!(
        matches!(
            runs[..],
            [FileRun::Data {
                offset: 0,
                len: 1048576,
                ..
            }]
        ),
        "{runs:?}"
    );
    check_sparse(&fs);
    assert_eq!(lookup(&fs, "/links/sf"), 65698);
    assert_eq!(lookup(&fs, "/links/max"), 65699);
    check_links(&fs);
    check_attr_pattern(&fs, "/xattrs/local", 4);
    check_attr_pattern(&fs, "/xattrs/extents", 64);
    // Every regular file outside files/ is empty.
    for (path, (ino, t)) in walk(&fs) {
        if t == FileType::Regular && !path.starts_with(b"/files/") {
            assert_eq!(
                fs.metadata(ino).unwrap().size,
                0,
                "{}",
                String::from_utf8_lossy(&path)
            );
        }
    }
    assert!(fs.warnings().is_empty(), "{:?}", fs.warnings());
}

/// Sparse files in xfs4096 (README: holes at [0,4096) and [8192,12288); data
/// elsewhere is the pattern; `sparse.fully.txt` is 1 TiB of hole).
fn check_sparse(fs: &xfs::Filesystem) {
    for (f, size) in [
        ("sparse.extents.txt", 16384usize),
        ("sparse.btree.txt", 65536),
    ] {
        let ino = lookup(fs, &format!("/files/{f}"));
        let mut want = pattern(size);
        want[..4096].fill(0);
        want[8192..12288].fill(0);
        assert_eq!(read_all(fs, ino), want, "{f}");
        let runs = fs.file_runs(ino).unwrap();
        assert_eq!(
            runs[0],
            FileRun::Hole {
                offset: 0,
                len: 4096
            },
            "{f}"
        );
        assert!(
            runs.contains(&FileRun::Hole {
                offset: 8192,
                len: 4096
            }),
            "{f} {runs:?}"
        );
    }
    for (f, size, data) in [
        ("hole_at_end.extents.txt", 20480usize, 16384usize),
        ("hole_at_end.btree.txt", 69632, 65536),
    ] {
        let ino = lookup(fs, &format!("/files/{f}"));
        let mut want = pattern(size);
        want[data..].fill(0);
        assert_eq!(read_all(fs, ino), want, "{f}");
        let runs = fs.file_runs(ino).unwrap();
        assert_eq!(
            *runs.last().unwrap(),
            FileRun::Hole {
                offset: data as u64,
                len: (size - data) as u64
            },
            "{f}"
        );
    }
    let ino = lookup(fs, "/files/sparse.fully.txt");
    assert_eq!(fs.metadata(ino).unwrap().size, 1 << 40);
    assert_eq!(
        fs.file_runs(ino).unwrap(),
        vec![FileRun::Hole {
            offset: 0,
            len: 1 << 40
        }]
    );
    let mut buf = vec![0xaau8; 4096];
    assert_eq!(fs.read_at(ino, (1 << 40) - 100, &mut buf).unwrap(), 100);
    assert!(buf[..100].iter().all(|&b| b == 0));
}

#[test]
fn xfuse_xfsv4() {
    let Some(p) = corpus(&format!("{XFUSE}/xfsv4.img.zst")) else {
        return;
    };
    let fs = open(&p);
    let info = fs.info();
    assert_eq!(info.block_size, 512);
    assert!(!has_feature(&fs, "crc"));
    for f in ["attr", "attr2", "ftype", "lazy-count", "projid32bit"] {
        assert!(has_feature(&fs, f), "{f}");
    }
    assert_eq!(
        (detail(&fs, "version"), detail(&fs, "agcount")),
        ("4".into(), "4".into())
    );
    assert_eq!(detail(&fs, "inode size"), "256");
    assert_eq!(detail(&fs, "directory block size"), "4096");
    assert_eq!(fs.root(), 32);
    for (d, n) in [
        ("/sf", 2),
        ("/block", 4),
        ("/leaf", 128),
        ("/node", 512),
        ("/btree2.2", 2048),
        ("/btree3", 16384),
        ("/btree_with_single_leaf", 204),
        ("/sparse_leaf", 4),
        ("/sparse_btree", 10),
    ] {
        assert_eq!(count(&fs, d), n, "{d}");
    }
    for e in fs.read_dir(lookup(&fs, "/block")).unwrap() {
        assert_eq!(e.name.len(), 255);
    }
    check_hello(&fs, 100551);
    for (f, size, sha) in [
        ("large_extent", 1 << 20, "8d6f2c70"),
        ("btree2.2", 32768, "f24e37f3"),
        ("btree3", 1 << 20, "8d6f2c70"),
        ("btree3.3", 4 << 20, "f78b7066"),
    ] {
        check_pattern_file(&fs, &format!("/files/{f}.txt"), size, sha);
    }
    check_links(&fs);
    check_attr_pattern(&fs, "/xattrs/local", 4);
    check_attr_pattern(&fs, "/xattrs/extents", 64);
    assert!(fs.warnings().is_empty(), "{:?}", fs.warnings());
}

#[test]
fn xfuse_noftype() {
    let Some(p) = corpus(&format!("{XFUSE}/xfs_noftype.img.zst")) else {
        return;
    };
    let fs = open(&p);
    assert!(!has_feature(&fs, "ftype"));
    assert_eq!(fs.info().block_size, 512);
    assert_eq!((count(&fs, "/sf"), count(&fs, "/block")), (2, 4));
    for d in ["/sf", "/block", "/"] {
        for e in fs.read_dir(lookup(&fs, d)).unwrap() {
            assert_eq!(e.file_type, FileType::Unknown, "{d}");
        }
    }
}

#[test]
fn xfuse_xattr_v1() {
    let Some(p) = corpus(&format!("{XFUSE}/xfs_xattr_v1.img.zst")) else {
        return;
    };
    let fs = open(&p);
    assert!(has_feature(&fs, "attr") && !has_feature(&fs, "attr2"));
    check_attr_pattern(&fs, "/xattrs/local", 4);
    check_attr_pattern(&fs, "/xattrs/extents", 64);
}

#[test]
fn xfuse_4kn() {
    let Some(p) = corpus(&format!("{XFUSE}/xfs_4kn.img.zst")) else {
        return;
    };
    let fs = open(&p);
    assert_eq!(detail(&fs, "sector size"), "4096");
    for (d, n) in [("/sf", 2), ("/block", 4), ("/leaf", 16), ("/node", 512)] {
        assert_eq!(count(&fs, d), n, "{d}");
    }
    check_attr_pattern(&fs, "/xattrs/local", 4);
    let got = xattr_names(&fs, "/xattrs/extents4");
    let want: Vec<(String, Vec<u8>)> = (0..16)
        .map(|i| {
            (
                format!("user.remote_attr.{i:06}"),
                format!("{}.{i:06}", "_".repeat(951)).into_bytes(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert!(fs.warnings().is_empty(), "{:?}", fs.warnings());
}

#[test]
fn xfuse_preallocated() {
    let Some(p) = corpus(&format!("{XFUSE}/xfs_preallocated.img.zst")) else {
        return;
    };
    let fs = open(&p);
    let ino = lookup(&fs, "/files/preallocated");
    assert_eq!(fs.metadata(ino).unwrap().size, 8 << 20);
    assert_eq!(
        fs.file_runs(ino).unwrap(),
        vec![FileRun::Unwritten {
            offset: 0,
            len: 8 << 20
        }]
    );
    assert!(sha256_of(&fs, ino).unwrap().starts_with("2daeb1f3"));
    assert!(read_all(&fs, ino).iter().all(|&b| b == 0));
}

#[test]
fn xfuse_realtime_refused_by_name() {
    let Some(p) = corpus(&format!("{XFUSE}/xfs_rt1.img.zst")) else {
        return;
    };
    let fs = open(&p);
    for (f, size) in [
        ("/files/rtfile.txt", 33558528u64),
        ("/files/btree2.txt", 262144),
    ] {
        let ino = lookup(&fs, f);
        let m = fs.metadata(ino).unwrap();
        assert_eq!(m.size, size, "{f}");
        assert_eq!(m.flags & 1, 1, "{f}: realtime flag");
        let mut buf = [0u8; 16];
        match fs.read_at(ino, 0, &mut buf) {
            Err(Error::Unsupported { object, .. }) => assert_eq!(object, format!("inode {ino}")),
            other => panic!("{f}: {other:?}"),
        }
        assert!(matches!(fs.file_runs(ino), Err(Error::Unsupported { .. })));
    }
}

const SELINUX: &[u8] = b"unconfined_u:object_r:unlabeled_t:s0\0";

#[test]
fn dissect_basic() {
    let Some(p) = corpus(&format!("{DISSECT}/xfs.bin.gz")) else {
        return;
    };
    let fs = open(&p);
    let info = fs.info();
    assert_eq!(info.uuid, "3fb8342e-e144-4f0c-8bd7-725e78966200");
    assert!(info.clean);
    assert_eq!(fs.root(), 11072);
    for f in ["crc", "ftype", "finobt", "sparse", "reflink"] {
        assert!(has_feature(&fs, f), "{f}");
    }
    assert_eq!(read_all(&fs, lookup(&fs, "/test_file")), b"test content\n");
    assert_eq!(fs.metadata(lookup(&fs, "/test_file")).unwrap().blocks, 8);
    // The README gives 15 bytes and the text "test content2\n" (14 bytes): the
    // size and the text's ends are asserted, the one byte between is not.
    let c2 = read_all(&fs, lookup(&fs, "/test_dir/test_file"));
    assert_eq!(c2.len(), 15);
    assert!(c2.starts_with(b"test content") && c2.ends_with(b"2\n"));
    let link = lookup(&fs, "/test_link");
    assert_eq!(fs.read_link(link).unwrap(), b"test_dir/test_file");
    assert_eq!(fs.metadata(link).unwrap().blocks, 0);
    let crt = fs.metadata(fs.root()).unwrap().crtime.unwrap();
    assert_eq!((crt.secs, crt.nanos / 1000), (1650637449, 264560));
    for (path, (ino, _)) in walk(&fs) {
        let x = fs.xattrs(ino).unwrap();
        assert_eq!(x.len(), 1, "{}", String::from_utf8_lossy(&path));
        assert_eq!(
            (&x[0].name[..], &x[0].value[..]),
            (&b"security.selinux"[..], SELINUX)
        );
    }
    assert!(fs.xattrs(fs.root()).unwrap().is_empty());
    assert!(fs.warnings().is_empty(), "{:?}", fs.warnings());
}

#[test]
fn dissect_bigtime() {
    let Some(p) = corpus(&format!("{DISSECT}/xfs_bigtime.bin.gz")) else {
        return;
    };
    let fs = open(&p);
    assert!(has_feature(&fs, "bigtime"));
    let ino = lookup(&fs, "/file");
    assert_eq!(read_all(&fs, ino), "What’s Up, Choom?\n".as_bytes());
    let crt = fs.metadata(ino).unwrap().crtime.unwrap();
    assert_eq!(
        crt,
        Timestamp {
            secs: 1680858909,
            nanos: 223364005
        }
    );
    assert_eq!(fs.xattrs(ino).unwrap()[0].value, SELINUX);
}

#[test]
fn dissect_sparse() {
    let Some(p) = corpus(&format!("{DISSECT}/xfs_sparse.bin.gz")) else {
        return;
    };
    let fs = open(&p);
    const B: u64 = 4096;
    let data = |blk: u64, n: u64, at: u64| FileRun::Data {
        offset: at * B,
        len: n * B,
        physical: blk * B,
    };
    let hole = |n: u64, at: u64| FileRun::Hole {
        offset: at * B,
        len: n * B,
    };
    for (f, size, runs) in [
        (
            "sparse_start",
            0x258000u64,
            vec![hole(400, 0), data(1392, 200, 400)],
        ),
        (
            "sparse_hole",
            0x258000,
            vec![data(1792, 200, 0), hole(200, 200), data(2192, 200, 400)],
        ),
        (
            "sparse_end",
            0x190000,
            vec![data(2392, 200, 0), hole(200, 200)],
        ),
        ("sparse_all", 0x500000, vec![hole(0x500, 0)]),
    ] {
        let ino = lookup(&fs, &format!("/{f}"));
        assert_eq!(fs.metadata(ino).unwrap().size, size, "{f}");
        assert_eq!(fs.file_runs(ino).unwrap(), runs, "{f}");
        let content = read_all(&fs, ino);
        for r in &runs {
            let want = if r.is_zero() { 0 } else { 1 };
            let s = &content[r.offset() as usize..(r.offset() + r.len()) as usize];
            assert!(s.iter().all(|&b| b == want), "{f} run {r:?}");
        }
    }
}

#[test]
fn dissect_symlink_chains() {
    for rel in [
        format!("{DISSECT}/xfs_symlink_test.bin.gz"),
        "dissect.xfs/history-962ea73/tests/data/xfs_symlink_test2.bin.gz".to_string(),
        "dissect.xfs/history-962ea73/tests/data/xfs_symlink_test3.bin.gz".to_string(),
    ] {
        let Some(p) = corpus(&rel) else { return };
        let fs = open(&p);
        let ino = resolve(&fs, "/path/to/dir/with/file.ext");
        assert_eq!(read_all(&fs, ino), b"resolved!\n", "{rel}");
    }
    let Some(p) = corpus(&format!("{DISSECT}/xfs_symlink_test.bin.gz")) else {
        return;
    };
    let fs = open(&p);
    assert_eq!(
        fs.read_link(lookup(&fs, "/path/to/dir/with/file.ext"))
            .unwrap(),
        b"../../../../other/path/source/to/my/file.ext"
    );
    assert_eq!(
        fs.read_link(lookup(&fs, "/other/path/source/to")).unwrap(),
        b"../target/to"
    );
}

fn long_target() -> Vec<u8> {
    format!(
        "../../../../{}/{}/{}/target",
        "a".repeat(255),
        "b".repeat(255),
        "c".repeat(255)
    )
    .into_bytes()
}

/// The dirty-log image read without replay: the on-disk state (README).
#[test]
fn dissect_symlink_long_no_replay() {
    let Some(p) = corpus(&format!("{DISSECT}/xfs_symlink_long.bin.gz")) else {
        return;
    };
    let fs = open(&p);
    let link = lookup(&fs, "/path/to/dir/with/file.ext");
    let m = fs.metadata(link).unwrap();
    assert_eq!((m.size, m.blocks), (786, 8));
    assert_eq!(fs.read_link(link).unwrap(), long_target());
    assert_eq!(
        read_all(&fs, resolve(&fs, "/path/to/dir/with/file.ext")),
        b"resolved!\n"
    );
    let swp: Vec<_> = walk(&fs)
        .into_iter()
        .filter(|(p, _)| p.ends_with(b"/.file.ext.swp"))
        .collect();
    assert_eq!(swp.len(), 1);
    let ino = swp[0].1 .0;
    assert_eq!(fs.metadata(ino).unwrap().size, 1024);
    assert!(sha256_of(&fs, ino).unwrap().starts_with("3c03a30a"));
}

/// With the log replayed the swap file is gone and the log was dirty (README).

#[test]
fn dissect_symlink_long_replayed() {
    let Some(p) = corpus(&format!("{DISSECT}/xfs_symlink_long.bin.gz")) else {
        return;
    };
    let fs = common::open_bytes(common::load_image(&p), true).unwrap();
    let info = fs.info();
    assert!(info.needs_recovery && info.journal_replayed && !info.clean);
    assert!(!walk(&fs).keys().any(|p| p.ends_with(b"/.file.ext.swp")));
    assert_eq!(
        fs.read_link(lookup(&fs, "/path/to/dir/with/file.ext"))
            .unwrap(),
        long_target()
    );
    let t3 = corpus("dissect.xfs/history-962ea73/tests/data/xfs_symlink_test3.bin.gz").unwrap();
    let fs3 = common::open_bytes(common::load_image(&t3), false).unwrap();
    assert!(fs3.info().needs_recovery);
}

#[test]
fn util_linux_v5_empty() {
    let Some(p) = corpus("util-linux/tests/ts/blkid/images-fs/xfs-v5.img.xz") else {
        return;
    };
    let fs = open(&p);
    let info = fs.info();
    assert_eq!(info.label, "test-xfs-v5");
    assert_eq!(info.uuid, "3fdcb214-0f39-466d-a81a-a1fb114fe7cd");
    assert!(!has_feature(&fs, "reflink"));
    assert!(fs.read_dir(fs.root()).unwrap().is_empty());
}

/// V4 without NLINK (v1 inodes): read, not refused (README allows either).
#[test]
fn util_linux_v1_inodes() {
    let Some(p) = corpus("util-linux/tests/ts/blkid/images-fs/xfs.img.xz") else {
        return;
    };
    let fs = open(&p);
    let info = fs.info();
    assert_eq!(info.label, "test-xfs");
    assert_eq!(info.uuid, "8c8a0a5a-9f57-492e-9610-45a61f38f58a");
    assert!(!has_feature(&fs, "nlink"));
    assert_eq!(fs.root(), 19328);
    assert!(fs.read_dir(fs.root()).unwrap().is_empty());
    assert_eq!(
        fs.metadata(fs.root()).unwrap().file_type,
        FileType::Directory
    );
}

#[test]
fn util_linux_external_log_is_not_a_filesystem() {
    let Some(p) = corpus("util-linux/tests/ts/blkid/images-fs/xfs-log.img.xz") else {
        return;
    };
    let bytes = common::load_image(&p);
    let src = common::source(bytes.clone());
    assert!(!xfs::Filesystem::probe(&*src));
    assert!(common::open_bytes(bytes, true).is_err());
}
