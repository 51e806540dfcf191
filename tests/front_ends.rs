//! `ls -l`'s ACL/SELinux marker, `stat` of a guest path naming the filesystem that
//! holds it, and `versions`' shortcut for files held by the same backing bytes.
//!
//! Oracles: getfattr's dump of the kernel mount (crates/extfs/tests/data/ext4.xattrs,
//! testdata/rhel9/XATTRS.*.txt) for which inodes carry an ACL or an SELinux context,
//! read the way GNU ls reads them; `stat -c %i` on the kernel's mount of every
//! rhel9 filesystem (testdata/rhel9/INODES.*.txt, scripts/fixtures/guest-inodes.sh);
//! sha256sum of the files of the sample disk's manifest (testdata/MANIFEST.*.tsv).

mod common;
#[path = "common/harness.rs"]
mod harness;
use common::*;
use std::collections::{BTreeMap, BTreeSet};

fn rhel9() -> String {
    testdata("rhel9/rhel9.vmdk").display().to_string()
}

/// getfattr -d dump: path (relative, as getfattr prints it) -> attribute names.
fn getfattr_dump(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut cur = None;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("# file: ") {
            cur = Some(p.to_string());
            out.entry(p.to_string()).or_default();
        } else if let (Some(p), Some((name, _))) = (&cur, line.split_once('=')) {
            out.get_mut(p).unwrap().insert(name.to_string());
        }
    }
    out
}

/// The marker GNU ls shows for an inode with these attributes (coreutils ls.c with
/// gnulib's file_has_acl: an access ACL, or a default ACL on a directory, is `+`;
/// else an SELinux context is `.`).
fn gnu_marker(attrs: Option<&BTreeSet<String>>, is_dir: bool) -> char {
    let Some(a) = attrs else { return ' ' };
    if a.contains("system.posix_acl_access") || (is_dir && a.contains("system.posix_acl_default")) {
        '+'
    } else if a.contains("security.selinux") {
        '.'
    } else {
        ' '
    }
}

/// `ls -l` rows of one directory: name -> (mode column as printed, is directory).
fn long_rows(out: &str) -> BTreeMap<String, (String, bool)> {
    out.lines()
        .filter(|l| !l.starts_with("total") && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // mode[marker] nlink uid gid size date time zone name [-> target]; the
            // first 11 characters are the mode and the marker column (a space when
            // this row has none).
            let name = f[8].to_string();
            (name, (l[..11].to_string(), l.starts_with('d')))
        })
        .collect()
}

/// Checks every row's 11th column against the oracle: the marker where GNU ls puts
/// one, a space for the others when any row has one, nothing at all otherwise.
fn check_markers(
    listing: &str,
    dir_in_dump: &str,
    dump: &BTreeMap<String, BTreeSet<String>>,
) -> usize {
    let rows = long_rows(listing);
    assert!(!rows.is_empty(), "no rows in {listing}");
    let want: BTreeMap<&String, char> = rows
        .iter()
        .map(|(name, (_, dir))| {
            let key = if dir_in_dump.is_empty() {
                name.clone()
            } else {
                format!("{dir_in_dump}/{name}")
            };
            (name, gnu_marker(dump.get(&key), *dir))
        })
        .collect();
    let any = want.values().any(|c| *c != ' ');
    let mut marked = 0;
    for (name, (mode, _)) in &rows {
        let w = want[name];
        assert_eq!(mode.chars().nth(10), Some(w), "{name}: {mode:?}");
        if !any {
            // No marker column at all: the link count follows the mode directly
            // (right-aligned, so a space may come before it anyway).
            assert!(!mode.ends_with(['.', '+']), "{name}: {mode:?}");
        }
        if w != ' ' {
            marked += 1;
        }
    }
    marked
}

#[test]
fn ls_long_marks_acls_like_gnu_ls() {
    let gz = testdata("../crates/extfs/tests/data/ext4.img.gz");
    let dump_path = testdata("../crates/extfs/tests/data/ext4.xattrs");
    if !harness::have(&gz.display().to_string()) || !harness::have(&dump_path.display().to_string())
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("ext4.img");
    std::fs::write(&img, harness::gunzip(&gz)).unwrap();
    let img = img.display().to_string();
    let dump = getfattr_dump(&std::fs::read_to_string(dump_path).unwrap());
    // The root lists `acl` (a default ACL) among plain directories; `acl/` holds a
    // file with an access ACL; `xattr/` has only user./trusted. attributes.
    let root = String::from_utf8(run_ok(&["ls", "-l", &img, "sda:/"]).stdout).unwrap();
    assert_eq!(check_markers(&root, "", &dump), 1, "{root}");
    let acl = String::from_utf8(run_ok(&["ls", "-l", &img, "sda:/acl"]).stdout).unwrap();
    assert_eq!(check_markers(&acl, "acl", &dump), 1, "{acl}");
    let xattr = String::from_utf8(run_ok(&["ls", "-l", &img, "sda:/xattr"]).stdout).unwrap();
    assert_eq!(check_markers(&xattr, "xattr", &dump), 0, "{xattr}");
}

#[test]
fn ls_long_marks_selinux_contexts_in_the_guest() {
    let dump = getfattr_dump(
        &std::fs::read_to_string(testdata("rhel9/XATTRS.root.txt")).expect("XATTRS.root.txt"),
    );
    let etc = String::from_utf8(run_ok(&["ls", "-lA", &rhel9(), "/etc"]).stdout).unwrap();
    assert!(check_markers(&etc, "etc", &dump) >= 5, "{etc}");
    // Every entry of /etc carries a context on this guest, so every row has `.`.
    assert!(
        long_rows(&etc).values().all(|(m, _)| m.ends_with('.')),
        "{etc}"
    );
}

/// (guest mount point, volume, INODES.<name>.txt) of every filesystem fstab places.
const RHEL9_MOUNTS: &[(&str, &str, &str)] = &[
    ("/", "rhel/root", "root"),
    ("/boot", "sda2", "boot"),
    ("/home", "rhel/home", "home"),
    ("/var", "rhel/var", "var"),
    ("/srv/data", "rhel/data", "data"),
];

#[test]
fn stat_of_a_guest_path_names_its_filesystem_and_real_inode() {
    let img = rhel9();
    let mut checked = 0;
    for (mp, volume, name) in RHEL9_MOUNTS {
        let text = std::fs::read_to_string(testdata(&format!("rhel9/INODES.{name}.txt")))
            .unwrap_or_else(|e| panic!("INODES.{name}.txt: {e}"));
        for line in text.lines() {
            let (ino, path) = line.split_once('\t').unwrap();
            let ino: u64 = ino.parse().unwrap();
            let guest = match (*mp, path) {
                ("/", p) => p.to_string(),
                (m, "/") => m.to_string(),
                (m, p) => format!("{m}{p}"),
            };
            // The root filesystem's own mount-point directories are covered.
            if *mp == "/"
                && RHEL9_MOUNTS
                    .iter()
                    .any(|(m, _, _)| *m != "/" && *m == guest)
            {
                continue;
            }
            let out = run_ok(&["stat", "--json", &img, &guest]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["volume"], "guest", "{guest}");
            let fs = &v["filesystem"];
            assert_eq!(fs["volume"], *volume, "{guest}: {v}");
            assert_eq!(fs["mount_point"], *mp, "{guest}: {v}");
            assert_eq!(fs["ino"], ino, "{guest}: {v}");
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked}");
    // The text form says the same; the guest's own number stays on the Inode line.
    let text = String::from_utf8(run_ok(&["stat", &img, "/home/alice/notes.txt"]).stdout).unwrap();
    let home = std::fs::read_to_string(testdata("rhel9/INODES.home.txt")).unwrap();
    let notes = home
        .lines()
        .find_map(|l| l.strip_suffix("\t/alice/notes.txt"))
        .unwrap();
    assert!(
        text.contains(&format!(
            "Volume: rhel/home (ext4, mounted at /home)  Inode there: {notes}\n"
        )),
        "{text}"
    );
    // /srv exists only as the parent of the /srv/data mount point.
    let srv: serde_json::Value =
        serde_json::from_slice(&run_ok(&["stat", "--json", &img, "/srv"]).stdout).unwrap();
    assert!(srv.get("filesystem").is_none(), "{srv}");
    // A VOLUME:PATH SPEC: the volume itself, the number unchanged.
    let var: serde_json::Value =
        serde_json::from_slice(&run_ok(&["stat", "--json", &img, "rhel/var:/log/messages"]).stdout)
            .unwrap();
    let want = std::fs::read_to_string(testdata("rhel9/INODES.var.txt")).unwrap();
    let want: u64 = want
        .lines()
        .find_map(|l| l.strip_suffix("\t/log/messages"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(var["filesystem"]["volume"], "rhel/var");
    assert_eq!(var["filesystem"]["kind"], "xfs");
    assert_eq!(var["filesystem"]["ino"], want);
    assert_eq!(var["ino"], want);
}

/// A tool the test needs as its oracle or to make its input: missing fails the test
/// unless VMDKRECOVER_SKIP_MISSING=1.
fn tool(name: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("VMDKRECOVER_SKIP_MISSING").as_deref() == Ok("1") {
            eprintln!("\n*** SKIPPED: {name} is not installed (VMDKRECOVER_SKIP_MISSING=1) ***\n");
        } else {
            panic!("{name} is needed (set VMDKRECOVER_SKIP_MISSING=1 to skip)");
        }
    }
    found
}

fn sh(cmd: &str) -> Vec<u8> {
    output_ok(std::process::Command::new("sh").args(["-c", cmd])).stdout
}

#[test]
fn versions_reads_a_file_once_per_backing_bytes_and_says_so() {
    if !tool("debugfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let vmdk = testdata("vm.vmdk");
    let flat = testdata("vm-flat.vmdk");
    // sda1 (/boot, ext3) on the flat file, where sfdisk put it (LAYOUT.txt).
    let layout = std::fs::read_to_string(testdata("LAYOUT.txt")).unwrap();
    let start: u64 = layout
        .lines()
        .find(|l| l.starts_with("vm-flat.vmdk1 "))
        .and_then(|l| l.split("start=").nth(1))
        .and_then(|s| s.split(',').next())
        .map(|s| s.trim().parse().unwrap())
        .unwrap();
    for d in ["base", "link", "copy", "changed", "gone"] {
        std::fs::create_dir(t.join(d)).unwrap();
    }
    let q = |p: &std::path::Path| format!("'{}'", p.display());
    sh(&format!(
        "cp --reflink=never {} {} {}",
        q(&vmdk),
        q(&flat),
        q(&t.join("base"))
    ));
    for f in ["vm.vmdk", "vm-flat.vmdk"] {
        std::fs::hard_link(t.join("base").join(f), t.join("link").join(f)).unwrap();
        for d in ["copy", "changed", "gone"] {
            sh(&format!(
                "cp --reflink=never {} {}",
                q(&t.join("base").join(f)),
                q(&t.join(d))
            ));
        }
    }
    // Change /boot/grub/grub.conf with debugfs -w on the partition's bytes, and
    // put them back: one copy with new content, one without the file.
    let new_conf = t.join("grub.conf.new");
    std::fs::write(&new_conf, b"default=1\ntimeout=0\n# restored by the test\n").unwrap();
    let part = t.join("sda1.img");
    for (d, cmds) in [
        (
            "changed",
            format!(
                "rm /grub/grub.conf\nwrite {} /grub/grub.conf\n",
                new_conf.display()
            ),
        ),
        ("gone", "rm /grub/grub.conf\n".to_string()),
    ] {
        let f = t.join(d).join("vm-flat.vmdk");
        let script = t.join("debugfs.cmds");
        std::fs::write(&script, cmds).unwrap();
        sh(&format!(
            "dd if={f} of={p} bs=512 skip={start} count=16384 status=none && \
             debugfs -w -f {c} {p} >/dev/null 2>&1 && \
             dd if={p} of={f} bs=512 seek={start} conv=notrunc status=none",
            f = q(&f),
            p = q(&part),
            c = q(&script)
        ));
    }
    // The oracle: what debugfs reads in the changed copy, and sha256sum of it.
    sh(&format!(
        "dd if={} of={} bs=512 skip={start} count=16384 status=none",
        q(&t.join("changed").join("vm-flat.vmdk")),
        q(&part)
    ));
    let changed = sh(&format!(
        "debugfs -R 'cat /grub/grub.conf' {} 2>/dev/null",
        q(&part)
    ));
    assert_eq!(changed, std::fs::read(&new_conf).unwrap());
    let base_sha = std::fs::read_to_string(testdata("MANIFEST.boot.tsv"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("/grub/grub.conf\t"))
        .map(|l| l.split('\t').nth(5).unwrap().to_string())
        .unwrap();

    let img = |d: &str| t.join(d).join("vm.vmdk").display().to_string();
    let out = run(&[
        "versions",
        "--json",
        &img("base"),
        &img("link"),
        &img("copy"),
        &img("changed"),
        &img("gone"),
        "/boot/grub/grub.conf",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let versions = v["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{v}");
    let strings = |x: &serde_json::Value| -> Vec<String> {
        x.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    // Newest: the rewritten file (debugfs stamped it now).
    assert_eq!(versions[0]["sha256"], sha256(&changed));
    assert_eq!(strings(&versions[0]["images"]), vec![img("changed")]);
    assert_eq!(strings(&versions[0]["hashed"]), vec![img("changed")]);
    // The original: base and its hard links hold the same backing bytes (one is
    // read, the other not); the --reflink=never copy is another file, so read.
    let old = &versions[1];
    assert_eq!(old["sha256"], base_sha.as_str());
    assert_eq!(
        strings(&old["images"]),
        vec![img("base"), img("link"), img("copy")]
    );
    let hashed = strings(&old["hashed"]);
    let shortcut = old["shortcut"].as_array().unwrap();
    assert_eq!(hashed.len(), 2, "{old}");
    assert!(hashed.contains(&img("copy")), "{old}");
    assert_eq!(shortcut.len(), 1, "{old}");
    let (s, first) = (
        shortcut[0]["image"].as_str().unwrap(),
        shortcut[0]["same_as"].as_str().unwrap(),
    );
    let pair = [img("base"), img("link")];
    assert!(pair.contains(&s.to_string()) && pair.contains(&first.to_string()) && s != first);
    assert_eq!(strings(&v["missing"]), vec![img("gone")]);
    assert!(v["errors"].as_array().unwrap().is_empty());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for s in shortcut {
        assert_eq!(s["by"], "backing", "{old}");
    }

    // --quick also takes the copy (other host files, the same guest inode, size,
    // mtime and ctime) as unchanged without reading it; the rewritten file (new
    // inode and times) is still read and still its own version.
    let quick: serde_json::Value = serde_json::from_slice(
        &run_ok(&[
            "versions",
            "--json",
            "--quick",
            &img("base"),
            &img("copy"),
            &img("changed"),
            "/boot/grub/grub.conf",
        ])
        .stdout,
    )
    .unwrap();
    let qv = quick["versions"].as_array().unwrap();
    assert_eq!(qv.len(), 2, "{quick}");
    assert_eq!(qv[0]["sha256"], sha256(&changed));
    assert_eq!(strings(&qv[0]["hashed"]), vec![img("changed")]);
    assert_eq!(qv[1]["sha256"], base_sha.as_str());
    assert_eq!(strings(&qv[1]["hashed"]).len(), 1, "{quick}");
    let qs = qv[1]["shortcut"].as_array().unwrap();
    assert_eq!(qs.len(), 1, "{quick}");
    assert_eq!(qs[0]["by"], "metadata", "{quick}");
}

#[test]
fn cp_of_a_directory_to_a_missing_dest_slash_creates_it_as_gnu_cp_does() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // The oracle: GNU cp -r of a directory to a missing `x/` makes x the copy, and
    // refuses a file there.
    std::fs::create_dir(t.join("src")).unwrap();
    std::fs::write(t.join("src/f"), b"x").unwrap();
    std::fs::write(t.join("file"), b"x").unwrap();
    let gnu = |args: &[&str]| {
        std::process::Command::new("cp")
            .args(args)
            .current_dir(t)
            .env("LC_ALL", "C")
            .output()
            .unwrap()
    };
    assert!(gnu(&["-r", "src", "gnu-dir/"]).status.success());
    assert!(t.join("gnu-dir/f").is_file());
    let refused = gnu(&["file", "gnu-file/"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Not a directory"));
    assert!(!t.join("gnu-file").exists());

    let vm = testdata("vm.vmdk").display().to_string();
    let dest = format!("{}/restore/", t.display());
    run_ok(&["cp", &vm, "VolGroup00/LogVol00:/etc", &dest]);
    let etc: Vec<_> = manifest("MANIFEST.root.tsv")
        .into_iter()
        .filter(|e| e.kind == 'f' && e.path.starts_with("/etc/"))
        .collect();
    assert!(!etc.is_empty());
    for e in &etc {
        let p = t
            .join("restore")
            .join(e.path.strip_prefix("/etc/").unwrap());
        assert_eq!(Some(sha256_file(&p)), e.sha256, "{}", e.path);
    }
    assert!(!t.join("restore/etc").exists());
    // A file to a missing DEST/ is refused and creates nothing, as GNU cp.
    let nodir = format!("{}/nodir/", t.display());
    let out = run(&["cp", &vm, "VolGroup00/LogVol00:/etc/passwd", &nodir]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Not a directory"));
    assert!(!t.join("nodir").exists());
}
