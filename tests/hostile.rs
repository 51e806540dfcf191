//! Hostile directory contents on a copy of the sample disk: a directory entry whose
//! `rec_len` is 0 (the reader must drop the rest of that block) and a name that is
//! not a single path component. What is inside the sample's boot partition (sda1)
//! comes from MANIFEST.boot.tsv (the source tree mke2fs -d was given); the byte
//! positions are found by searching the image for the on-disk entry layout
//! (Documentation/filesystems/ext4/directory.rst: inode, rec_len, name_len,
//! file_type, name), never through vmdkrecover.

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// sda1 spans sectors 2048..18432 (LAYOUT.txt, sfdisk).
const SDA1: std::ops::Range<usize> = 2048 * 512..(2048 + 16384) * 512;

/// A copy of the sample disk in `dir`, with `edit` applied to the flat file's bytes.
fn patched_copy(dir: &Path, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    std::fs::copy(testdata("vm.vmdk"), dir.join("vm.vmdk")).unwrap();
    let mut flat = std::fs::read(testdata("vm-flat.vmdk")).unwrap();
    edit(&mut flat);
    std::fs::write(dir.join("vm-flat.vmdk"), flat).unwrap();
    dir.join("vm.vmdk")
}

/// Position of the name_len byte of the sda1 entry `name` of type `ft`.
fn entry(flat: &[u8], name: &[u8], ft: u8) -> usize {
    let mut pat = vec![name.len() as u8, ft];
    pat.extend_from_slice(name);
    let at = flat[SDA1]
        .windows(pat.len())
        .position(|w| w == pat.as_slice())
        .unwrap_or_else(|| panic!("entry {name:?} not found in sda1"));
    SDA1.start + at
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// rec_len 0 on the root directory's `lost+found` entry: the entries after it in
/// the block (grub, vmlinuz-...) are salvaged as e2fsck's salvage_directory would
/// (the source tree lists them), and ls -R and cp say what was damaged, naming the
/// volume and the directory, and exit 1.
#[test]
fn rec_len_zero_is_reported_and_fails_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    let img = patched_copy(dir.path(), |flat| {
        let at = entry(flat, b"lost+found", 2);
        // rec_len is the 16-bit field just before name_len.
        flat[at - 2..at].copy_from_slice(&[0, 0]);
    });
    let img = img.to_str().unwrap();
    let boot = manifest("MANIFEST.boot.tsv");
    assert!(boot.iter().any(|e| e.path == "/grub"), "oracle lists /grub");

    let out = run(&["ls", "-R", img, "sda1:/"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l == "grub"),
        "grub is salvaged: {text}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("vmdkrecover: sda1: warning: /: ") && l.contains("rec_len")),
        "{err}"
    );

    let out = run(&["ls", "--json", "-R", img, "sda1:/"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("rec_len"));

    let out = run(&["find", img, "sda1:/"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let dest = dir.path().join("out");
    let out = run(&["cp", img, "sda1:/", dest.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("vmdkrecover: sda1: warning: /: "), "{err}");
    assert!(err.contains("rec_len"), "{err}");
    assert!(err.contains("filesystem warnings"), "summary line: {err}");
    // With directories read ahead by scanner threads (what a far disk turns on),
    // the warning is still printed for the directory that raised it.
    let ahead = std::process::Command::new(env!("CARGO_BIN_EXE_vmdkrecover"))
        .env("VMDKRECOVER_WALK_AHEAD", "4")
        .args([
            "cp",
            img,
            "sda1:/",
            dir.path().join("out-ahead").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err_ahead = stderr(&ahead);
    assert_eq!(ahead.status.code(), Some(1), "{err_ahead}");
    let warnings = |e: &str| -> Vec<String> {
        e.lines()
            .filter(|l| l.contains("warning"))
            .map(|l| l.split(" in ").next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(warnings(&err), warnings(&err_ahead));
    // The salvaged entries are copied, byte-identical to the source tree.
    let grub = manifest("MANIFEST.boot.tsv")
        .into_iter()
        .find(|e| e.path == "/grub/grub.conf")
        .unwrap();
    assert_eq!(
        Some(sha256_file(&dest.join("grub/grub.conf"))),
        grub.sha256.clone()
    );

    let out = run(&["tar", img, "sda1:/", "-o", "-"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // The same commands on the untouched disk: exit 0, no warning.
    let out = run_ok(&[
        "ls",
        "-R",
        &testdata("vm.vmdk").display().to_string(),
        "sda1:/",
    ]);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

/// `grub.conf` renamed to `menu.lst/x` beside the symlink `menu.lst -> grub.conf`:
/// an archive holding `grub/menu.lst` (symlink) then `grub/menu.lst/x` would make
/// an extracting tar write through the symlink. tar, cp and find refuse the name.
#[test]
fn names_with_a_slash_are_refused_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let img = patched_copy(dir.path(), |flat| {
        let at = entry(flat, b"grub.conf", 1);
        let rec_len = u16::from_le_bytes([flat[at - 2], flat[at - 1]]) as usize;
        let new = b"menu.lst/x";
        assert!(8 + new.len() <= rec_len, "the new name fits the entry");
        flat[at] = new.len() as u8;
        flat[at + 2..at + 2 + new.len()].copy_from_slice(new);
    });
    let img = img.to_str().unwrap();

    let out = run(&["tar", img, "sda1:/grub", "-o", "-"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unsafe file name"), "{err}");
    assert!(err.contains("sda1: warning: /grub: "), "{err}");
    let mut ar = tar::Archive::new(&out.stdout[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.contains(&"grub/menu.lst".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("grub/menu.lst/")),
        "{names:?}"
    );

    let dest = dir.path().join("out");
    let out = run(&["cp", img, "sda1:/grub", dest.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unsafe file name"), "{err}");
    // menu.lst is still the symlink the manifest describes, and nothing went through it.
    assert_eq!(
        std::fs::read_link(dest.join("menu.lst")).unwrap(),
        PathBuf::from("grub.conf")
    );
    assert!(!dest.join("grub.conf").exists());

    let out = run(&["find", img, "sda1:/"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("menu.lst/x"));
}
