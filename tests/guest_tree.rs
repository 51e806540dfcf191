//! The guest as one tree, on testdata/rhel9 (scripts/fixtures/guest.sh): GPT, /boot
//! XFS by PARTUUID, rhel/root XFS by /dev/mapper name, /home ext4 by LABEL, /var
//! XFS by /dev/VG/LV, /srv/data ext4 by UUID below a /srv the root filesystem does
//! not have. Every expected value comes from the kernel's read-only mount of each
//! filesystem (MANIFEST.<fs>.tsv, XATTRS.<fs>.txt) and from sgdisk/lvm2 (LAYOUT.txt).

mod common;
use common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn img() -> String {
    testdata("rhel9/rhel9.vmdk").display().to_string()
}

/// (mount point, manifest name) of every filesystem fstab places.
const MOUNTS: &[(&str, &str)] = &[
    ("/", "root"),
    ("/boot", "boot"),
    ("/home", "home"),
    ("/var", "var"),
    ("/srv/data", "data"),
];

/// One kernel-manifest line: path, type, mode, uid, gid, mtime, size, sha256,
/// target, nlink.
#[derive(Clone, Debug)]
struct Obj {
    kind: String,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: String,
    size: Option<u64>,
    sha: Option<String>,
    target: Option<String>,
}

/// Every object of the guest, keyed by its guest path.
fn guest() -> BTreeMap<String, Obj> {
    let mut out = BTreeMap::new();
    for (mp, name) in MOUNTS {
        let text =
            std::fs::read_to_string(testdata(&format!("rhel9/MANIFEST.{name}.tsv"))).unwrap();
        for line in text.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 10, "{line}");
            let path = if *mp == "/" {
                f[0].to_string()
            } else {
                format!("{mp}{}", f[0])
            };
            let opt = |s: &str| (s != "-").then(|| s.to_string());
            out.insert(
                path,
                Obj {
                    kind: f[1].to_string(),
                    mode: u32::from_str_radix(f[2], 8).unwrap(),
                    uid: f[3].parse().unwrap(),
                    gid: f[4].parse().unwrap(),
                    mtime: f[5].to_string(),
                    size: f[6].parse().ok(),
                    sha: opt(f[7]),
                    target: opt(f[8]),
                },
            );
        }
    }
    out
}

#[test]
fn ls_recursive_crosses_every_mount_and_prints_guest_paths() {
    let out = run_ok(&["ls", "-R", &img(), "/"]);
    let text = String::from_utf8(out.stdout).unwrap();
    // Every directory heading is a guest path, and every mounted filesystem shows.
    for dir in [
        "/boot/grub2:",
        "/home/alice:",
        "/var/lib/app:",
        "/srv/data:",
        "/etc/httpd/conf:",
    ] {
        assert!(text.lines().any(|l| l == dir), "{dir} missing in\n{text}");
    }
    // Every object of every filesystem is listed under its directory heading.
    let mut current = String::new();
    let mut listed = std::collections::BTreeSet::new();
    for l in text.lines() {
        if let Some(h) = l.strip_suffix(':') {
            current = h.to_string();
        } else if !l.is_empty() {
            let p = if current == "/" {
                format!("/{l}")
            } else {
                format!("{current}/{l}")
            };
            listed.insert(p);
        }
    }
    for p in guest().keys() {
        assert!(listed.contains(p), "{p} not listed");
    }
}

#[test]
fn cat_stat_and_find_use_guest_paths_across_mounts() {
    let g = guest();
    for p in [
        "/boot/grub2/grub.cfg",
        "/var/log/messages",
        "/srv/data/report.csv",
        "/etc/fstab",
    ] {
        let out = run_ok(&["cat", &img(), p]);
        assert_eq!(Some(sha256(&out.stdout)), g[p].sha, "{p}");
    }
    let out = run_ok(&["stat", "--json", &img(), "/home/alice/notes.txt"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let o = &g["/home/alice/notes.txt"];
    assert_eq!(v["uid"], o.uid);
    assert_eq!(v["size"], o.size.unwrap());
    // find prints paths that can be pasted back into cat.
    let out = run_ok(&["find", &img(), "/var", "--name", "*.db"]);
    let found = String::from_utf8(out.stdout).unwrap();
    assert_eq!(found.trim(), "/var/lib/app/state.db");
    run_ok(&["cat", &img(), found.trim()]);
}

#[test]
fn cp_of_the_whole_guest_equals_every_kernel_mount() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("guest");
    run_ok(&["cp", "-a", &img(), "/", dest.to_str().unwrap()]);
    let g = guest();
    for (path, o) in &g {
        let p = dest.join(path.trim_start_matches('/'));
        let md = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{path}: {e}"));
        let kind = if md.file_type().is_symlink() {
            "l"
        } else if md.is_dir() {
            "d"
        } else {
            "f"
        };
        assert_eq!(kind, o.kind, "{path}");
        // A mount point shows the mounted filesystem's root, whose metadata the
        // manifests (find -mindepth 1) do not record.
        if MOUNTS.iter().any(|(mp, _)| mp == path) {
            continue;
        }
        assert_eq!(md.permissions().mode() & 0o7777, o.mode, "{path} mode");
        if nix::unistd::geteuid().is_root() {
            assert_eq!((md.uid(), md.gid()), (o.uid, o.gid), "{path} owner");
        }
        let mtime = format!("{}.{:09}", md.mtime(), md.mtime_nsec());
        // find's %T@ prints 10 fractional digits.
        assert!(
            o.mtime.starts_with(&mtime),
            "{path} mtime {mtime} vs {}",
            o.mtime
        );
        match kind {
            "f" => {
                assert_eq!(Some(md.len()), o.size, "{path} size");
                assert_eq!(Some(sha256_file(&p)), o.sha, "{path} content");
            }
            "l" => assert_eq!(
                std::fs::read_link(&p).unwrap().to_str().map(str::to_string),
                o.target,
                "{path} target"
            ),
            _ => {}
        }
    }
    // Hard links inside one filesystem stay hard links.
    let a = std::fs::metadata(dest.join("etc/hostname")).unwrap();
    let b = std::fs::metadata(dest.join("etc/hostname.bak")).unwrap();
    assert_eq!(a.ino(), b.ino());
    // security.selinux survives where this process may set it (root).
    if nix::unistd::geteuid().is_root() {
        let v = xattr_of(&dest.join("etc/fstab"), "security.selinux");
        assert_eq!(v.as_deref(), Some(&b"system_u:object_r:etc_t:s0"[..]));
    }
}

fn xattr_of(p: &Path, name: &str) -> Option<Vec<u8>> {
    let out = std::process::Command::new("getfattr")
        .args(["--only-values", "-h", "-n", name])
        .arg(p)
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

#[test]
fn cp_of_a_mount_point_into_a_directory_creates_it_by_its_guest_name() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(&["cp", &img(), "/boot", dir.path().to_str().unwrap()]);
    assert!(dir.path().join("boot/grub2/grub.cfg").is_file());
}

#[test]
fn info_reads_every_xfs_and_ext_volume() {
    let out = run_ok(&["info", "--json", &img()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let layout = std::fs::read_to_string(testdata("rhel9/LAYOUT.txt")).unwrap();
    for vol in v["volumes"].as_array().unwrap() {
        let Some(fs) = vol.get("filesystem").filter(|f| !f.is_null()) else {
            continue;
        };
        assert!(fs.get("error").is_none_or(|e| e.is_null()), "{vol}");
        let uuid = fs["uuid"].as_str().unwrap();
        // blkid's UUID for the same filesystem (LAYOUT.txt's blkid section).
        assert!(
            layout.contains(&format!("UUID={uuid}")),
            "{uuid} not in LAYOUT.txt"
        );
    }
    let names: Vec<&str> = v["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|vol| vol["filesystem"]["kind"] == "xfs")
        .map(|vol| vol["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sda2", "rhel/root", "rhel/var"]);
}
