//! Byte-level check of journal replay against e2fsck: every journal-needing image
//! (our fixtures and the corpus) is replayed by `e2fsck -E journal_only` on a
//! temporary copy, and every block we show after in-memory replay must equal
//! e2fsck's result, except the blocks e2fsck itself rewrites after replay (the
//! superblock, the group descriptor table, the journal superblock).
//!
//! Needs e2fsck on PATH; without it the test says so loudly and passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn e2fsck_available() -> bool {
    Command::new("e2fsck").arg("-V").output().is_ok()
}

fn e2fsck_replay(bytes: &[u8], tag: &str) -> Option<Vec<u8>> {
    let tmp = std::env::temp_dir().join(format!("extfs-replay-{}-{tag}.img", std::process::id()));
    std::fs::write(&tmp, bytes).ok()?;
    let out = Command::new("e2fsck")
        .args(["-y", "-E", "journal_only"])
        .arg(&tmp)
        .output()
        .ok()?;
    let _ = out;
    let result = std::fs::read(&tmp).ok();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Returns (blocks compared, differing blocks outside the allowed set).
fn compare(label: &str, bytes: Vec<u8>) -> Option<(usize, Vec<u64>)> {
    let fs = open_mem(bytes.clone(), true).ok()?;
    if !fs.info().needs_recovery {
        return None;
    }
    let theirs = e2fsck_replay(&bytes, &label.replace('/', "_"))?;
    let info = fs.info();
    let bs = u64::from(info.block_size);
    let replayed = fs.replayed_blocks();
    // Blocks e2fsck rewrites after replay: superblock, descriptor table (it
    // flushes both), and the journal superblock (s_start cleared).
    let sb_block = 1024 / bs;
    let mut bad = Vec::new();
    let mut ours = vec![0u8; bs as usize];
    let nblocks = (bytes.len() as u64 / bs).min(info.blocks);
    for b in 0..nblocks {
        let off = b * bs;
        if fs.read_device_at(off, &mut ours).is_err() {
            continue;
        }
        let t = &theirs[off as usize..(off + bs) as usize];
        if ours[..] != *t {
            bad.push(b);
        }
    }
    // Allowed: the superblock block and blocks right after it (primary GDT),
    // which e2fsck rewrites, and the first journal block.
    let jsb = journal_first_block(&fs);
    let gdt_end = sb_block + 1 + gdt_len(&bytes, &fs);
    bad.retain(|&b| !(b == sb_block || (b > sb_block && b < gdt_end) || Some(b) == jsb));
    eprintln!(
        "{label}: {} blocks replayed, {} differ from e2fsck outside sb/gdt/journal sb",
        replayed.len(),
        bad.len()
    );
    Some((nblocks as usize, bad))
}

/// Exact size in blocks of the primary group descriptor table, from the raw
/// superblock fields (s_blocks_count, s_first_data_block, s_blocks_per_group,
/// s_desc_size); reserved GDT blocks are not included (e2fsck does not write them).
fn gdt_len(bytes: &[u8], fs: &extfs::Filesystem) -> u64 {
    let le32 = |o: usize| u32::from_le_bytes(bytes[1024 + o..1024 + o + 4].try_into().unwrap());
    let info = fs.info();
    let bs = u64::from(info.block_size);
    let is64 = info.features.iter().any(|f| f == "64bit");
    let desc = if is64 {
        u64::from(u16::from_le_bytes(
            bytes[1024 + 0xFE..1024 + 0x100].try_into().unwrap(),
        ))
    } else {
        32
    };
    let groups = (info.blocks - u64::from(le32(0x14))).div_ceil(u64::from(le32(0x20)));
    (groups * desc).div_ceil(bs)
}

fn journal_first_block(fs: &extfs::Filesystem) -> Option<u64> {
    // The journal inode (8 on all our images) first data run.
    let ino = fs.inode(8).ok()?;
    let runs = fs.file_runs(&ino).ok()?;
    match runs.first()? {
        extfs::FileRun::Data { physical, .. } => Some(physical / u64::from(fs.info().block_size)),
        _ => None,
    }
}

/// Images where e2fsck -E journal_only does more than replay, so a byte
/// comparison cannot hold; each with the reason.
const NOT_COMPARABLE: &[(&str, &str)] = &[
    (
        "f_journal",
        "e2fsck also clears orphan inodes and moves /journal to a hidden inode",
    ),
    (
        "f_clear_orphan_file",
        "e2fsck also truncates the inodes listed in the orphan file",
    ),
    (
        "j_corrupt_sb_magic",
        "e2fsck deletes the invalid journal (extfs does not replay it either)",
    ),
    (
        "j_recover_fast_commit",
        "fast-commit blocks are not replayed by extfs (documented limitation)",
    ),
];

fn images() -> Vec<(String, PathBuf)> {
    let mut v = Vec::new();
    for name in ["journal-ext4", "journal-ext3"] {
        v.push((name.to_string(), data_dir().join(format!("{name}.img.gz"))));
    }
    let root = corpus_dir();
    if let Ok(rd) = std::fs::read_dir(root.join("e2fsprogs/tests")) {
        for e in rd.flatten() {
            if let Some(p) = e2fsprogs_image(&e.path()) {
                v.push((e.file_name().to_string_lossy().into_owned(), p));
            }
        }
    }
    let j = root.join("ext4-view-rs/test_data/test_disk_4k_block_journal.bin.zst");
    if j.exists() {
        v.push(("test_disk_4k_block_journal".into(), j));
    }
    v.sort();
    v
}

#[test]
fn replay_matches_e2fsck_block_for_block() {
    if !e2fsck_available() {
        common::missing("e2fsck not on PATH (apt-get install e2fsprogs)");
        return;
    }
    if !corpus_dir().is_dir() {
        common::missing("../shared/corpus not found (the corpus part)");
    }
    let mut compared = 0;
    let mut failures = Vec::new();
    for (label, path) in images() {
        if let Some((_, why)) = NOT_COMPARABLE.iter().find(|(n, _)| *n == label) {
            eprintln!("{label}: not compared: {why}");
            continue;
        }
        let Ok(bytes) = load_image(Path::new(&path)) else {
            continue;
        };
        if let Some((_, bad)) = compare(&label, bytes) {
            compared += 1;
            if !bad.is_empty() {
                failures.push(format!("{label}: blocks {:?}", &bad[..bad.len().min(10)]));
            }
        }
    }
    eprintln!("compared {compared} journal images with e2fsck");
    assert!(compared >= 2);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
