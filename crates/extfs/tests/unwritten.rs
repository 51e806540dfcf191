//! Unwritten (preallocated) extents made by the kernel's fallocate
//! (scripts/fixtures/extfs-unwritten.sh): `file_runs` reports them as
//! `FileRun::Unwritten` exactly where `filefrag -v` on the kernel mount says
//! "unwritten", written blocks as data, and the contents read like the kernel's
//! (sha256sum through the mount).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::*;
use extfs::FileRun;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/unwritten")
}

/// Per file: logical block -> 'u' (unwritten) or 'd' (data), from filefrag -v.
fn filefrag() -> BTreeMap<String, BTreeMap<u64, char>> {
    let text = std::fs::read_to_string(dir().join("filefrag.txt")).unwrap();
    let mut out: BTreeMap<String, BTreeMap<u64, char>> = BTreeMap::new();
    let mut file = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("File size of ") {
            file = rest.split(" is ").next().unwrap().to_string();
            out.entry(file.clone()).or_default();
            continue;
        }
        // "   1:       64..      65:        419..       420:      2:            "
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 5 || f[0].trim().parse::<u32>().is_err() {
            continue;
        }
        let (a, b) = f[1].split_once("..").unwrap();
        let (a, b): (u64, u64) = (a.trim().parse().unwrap(), b.trim().parse().unwrap());
        let kind = if line.contains("unwritten") { 'u' } else { 'd' };
        let m = out.get_mut(&file).unwrap();
        for blk in a..=b {
            m.insert(blk, kind);
        }
    }
    out
}

#[test]
fn unwritten_extents_match_filefrag_and_read_as_zeros() {
    let img = load_image(&dir().join("unwritten.img.gz")).unwrap();
    let fs = open_mem(img, true).unwrap();
    let bs = u64::from(fs.info().block_size);
    let frag = filefrag();
    let sizes = std::fs::read_to_string(dir().join("sizes.txt")).unwrap();
    let sums = std::fs::read_to_string(dir().join("sha256.txt")).unwrap();
    assert_eq!(frag.len(), 3);
    let mut saw_unwritten = false;
    for (name, blocks) in &frag {
        let size: u64 = sizes
            .lines()
            .find_map(|l| l.strip_suffix(&format!(" {name}")))
            .unwrap()
            .parse()
            .unwrap();
        let ino = fs.lookup(format!("/{name}").as_bytes()).unwrap();
        let inode = fs.inode(ino).unwrap();
        assert_eq!(inode.size, size, "{name}");
        let runs = fs.file_runs(&inode).unwrap();
        let mut pos = 0;
        for r in &runs {
            assert_eq!(r.offset(), pos, "{name}: runs in order: {runs:?}");
            pos += r.len();
            let kind = match r {
                FileRun::Data { .. } => 'd',
                FileRun::Unwritten { .. } => {
                    saw_unwritten = true;
                    'u'
                }
                FileRun::Hole { .. } => 'h',
            };
            for blk in r.offset() / bs..(r.offset() + r.len()).div_ceil(bs) {
                let want = blocks.get(&blk).copied().unwrap_or('h');
                assert_eq!(kind, want, "{name}: block {blk}: {runs:?}");
            }
        }
        assert_eq!(pos, size, "{name}: runs cover i_size");
        // The same runs through the shared interface.
        let dynfs: &dyn fsapi::Filesystem = &fs;
        assert_eq!(dynfs.file_runs(u64::from(ino)).unwrap(), runs, "{name}");
        let want = sums
            .lines()
            .find_map(|l| l.strip_suffix(&format!("  {name}")))
            .unwrap();
        assert_eq!(sha256_file(&fs, &inode).unwrap(), want, "{name}");
    }
    assert!(saw_unwritten, "the fixture has unwritten extents");
    assert!(fs.warnings().is_empty(), "{:?}", fs.warnings());
}
