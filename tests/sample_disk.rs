//! End-to-end tests of the binary on the committed sample disks (testdata/, built by
//! scripts/make-testdata.sh with sfdisk, lvm2 and mke2fs -d). Every expected value
//! comes from the source trees (MANIFEST.*.tsv), lvm2's own reports (LAYOUT.txt) or
//! qemu-img (SHA256.qemu.txt), never from vmdkrecover itself.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;

fn vm() -> String {
    testdata("vm.vmdk").display().to_string()
}
fn vm1() -> String {
    testdata("vm_1.vmdk").display().to_string()
}

#[test]
fn cp_root_lv_matches_source_tree() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("root");
    run_ok(&["cp", &vm(), "VolGroup00/LogVol00:/", dest.to_str().unwrap()]);
    let entries: Vec<_> = manifest("MANIFEST.root.tsv").into_iter().collect();
    // lost+found exists in the filesystem but not in the source tree.
    std::fs::remove_dir(dest.join("lost+found")).unwrap();
    compare_tree(&dest, &entries);
}

/// The copy under umasks that clear some of the source's mode bits (077: the
/// copy sets them after creating each file) and none (000: each file is created
/// with its mode): the modes are the source tree's either way, set-uid included.
/// The oracle is the manifest.
#[test]
fn cp_root_lv_keeps_modes_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    for umask in ["077", "000"] {
        let dest = dir.path().join(format!("root-{umask}"));
        output_ok(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
                .arg(env!("CARGO_BIN_EXE_vmdkrecover"))
                .args(["cp", &vm(), "VolGroup00/LogVol00:/", dest.to_str().unwrap()]),
        );
        std::fs::remove_dir(dest.join("lost+found")).unwrap();
        compare_tree(&dest, &manifest("MANIFEST.root.tsv"));
    }
}

/// The same copy with directories read ahead of the walk by scanner threads
/// (`VMDKRECOVER_WALK_AHEAD`, what a far disk turns on): the same tree, and the
/// same summary line as reading in turn.
#[test]
fn cp_root_lv_with_directories_read_ahead_matches_source_tree() {
    let dir = tempfile::tempdir().unwrap();
    let mut summaries = Vec::new();
    for ahead in ["0", "4"] {
        let dest = dir.path().join(format!("root-{ahead}"));
        let out = output_ok(
            std::process::Command::new(env!("CARGO_BIN_EXE_vmdkrecover"))
                .env("VMDKRECOVER_WALK_AHEAD", ahead)
                .args(["cp", &vm(), "VolGroup00/LogVol00:/", dest.to_str().unwrap()]),
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        std::fs::remove_dir(dest.join("lost+found")).unwrap();
        compare_tree(&dest, &manifest("MANIFEST.root.tsv"));
        // The summary without its timing.
        let line = err
            .lines()
            .find(|l| l.contains("copied"))
            .unwrap_or_default();
        summaries.push(line.split(" in ").next().unwrap_or_default().to_string());
    }
    assert!(summaries[0].contains("files"), "{summaries:?}");
    assert_eq!(summaries[0], summaries[1]);
}

/// The copy with the kernel copying each file's bytes from the flat extent file
/// (`copy_file_range`/`sendfile`, through the partition and the linear LV) and
/// with every byte read and written by us (`VMDKRECOVER_KERNEL_COPY=0`): both
/// trees are the source tree, and the kernel's part is really taken only in the
/// first (`VMDKRECOVER_IO_STATS` counts it). The oracle is the manifest.
#[test]
fn cp_root_lv_by_the_kernel_and_by_reads_matches_source_tree() {
    let dir = tempfile::tempdir().unwrap();
    for kernel in ["1", "0"] {
        let dest = dir.path().join(format!("root-{kernel}"));
        let out = output_ok(
            std::process::Command::new(env!("CARGO_BIN_EXE_vmdkrecover"))
                .env("VMDKRECOVER_KERNEL_COPY", kernel)
                .env("VMDKRECOVER_IO_STATS", "1")
                .args(["cp", &vm(), "VolGroup00/LogVol00:/", dest.to_str().unwrap()]),
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        std::fs::remove_dir(dest.join("lost+found")).unwrap();
        compare_tree(&dest, &manifest("MANIFEST.root.tsv"));
        let copied: u64 = err
            .split("; ")
            .find_map(|p| {
                p.trim_end().strip_suffix(
                    " bytes copied by the kernel, which left 0 files to reads part-way",
                )
            })
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no kernel copy count in {err}"));
        let data: u64 = manifest("MANIFEST.root.tsv")
            .iter()
            .filter(|e| e.kind == 'f')
            .filter_map(|e| e.size)
            .sum();
        if kernel == "1" {
            // Every regular file's data runs lie in the flat file (the sparse
            // file's hole is not copied, so the count stays under the sizes).
            assert!(copied > 0 && copied <= data, "{copied} of {data}");
        } else {
            assert_eq!(copied, 0, "{err}");
        }
    }
}

#[test]
fn cp_boot_partition_matches_source_tree() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("boot");
    run_ok(&["cp", &vm(), "sda1:/", dest.to_str().unwrap()]);
    std::fs::remove_dir(dest.join("lost+found")).unwrap();
    compare_tree(&dest, &manifest("MANIFEST.boot.tsv"));
}

#[test]
fn cp_lv_spanning_two_disks_matches_source_tree() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("srv");
    run_ok(&[
        "cp",
        "--disk",
        &vm1(),
        &vm(),
        "VolGroup01/data:/",
        dest.to_str().unwrap(),
    ]);
    std::fs::remove_dir(dest.join("lost+found")).unwrap();
    compare_tree(&dest, &manifest("MANIFEST.srv.tsv"));
}

#[test]
fn cp_into_existing_directory_creates_named_subdirectory() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(&[
        "cp",
        &vm(),
        "VolGroup00/LogVol00:/etc",
        dir.path().to_str().unwrap(),
    ]);
    let etc: Vec<_> = manifest("MANIFEST.root.tsv")
        .into_iter()
        .filter(|e| e.path.starts_with("/etc/"))
        .collect();
    assert!(!etc.is_empty());
    for e in &etc {
        let p = dir.path().join(e.path.trim_start_matches('/'));
        assert!(
            std::fs::symlink_metadata(&p).is_ok(),
            "{} missing",
            p.display()
        );
    }
    // A single file into a directory, as in the restore procedure.
    run_ok(&[
        "cp",
        &vm(),
        "sda1:/grub/grub.conf",
        dir.path().to_str().unwrap(),
    ]);
    let grub = manifest("MANIFEST.boot.tsv")
        .into_iter()
        .find(|e| e.path == "/grub/grub.conf")
        .unwrap();
    assert_eq!(
        Some(sha256_file(&dir.path().join("grub.conf"))),
        grub.sha256
    );
}

#[test]
fn cp_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("fstab");
    std::fs::write(&dest, b"mine").unwrap();
    let out = run(&[
        "cp",
        &vm(),
        "VolGroup00/LogVol00:/etc/fstab",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&dest).unwrap(), b"mine");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    run_ok(&[
        "cp",
        "--force",
        &vm(),
        "VolGroup00/LogVol00:/etc/fstab",
        dest.to_str().unwrap(),
    ]);
    let want = manifest("MANIFEST.root.tsv")
        .into_iter()
        .find(|e| e.path == "/etc/fstab")
        .unwrap();
    assert_eq!(Some(sha256_file(&dest)), want.sha256);
    let leftovers: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn cp_keeps_symlinks_verbatim_and_sparse_files_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    run_ok(&["cp", &vm(), "VolGroup00/LogVol00:/etc/httpd.conf", d]);
    assert_eq!(
        std::fs::read_link(dir.path().join("httpd.conf"))
            .unwrap()
            .to_str(),
        Some("/etc/httpd/conf/httpd.conf")
    );
    run_ok(&["cp", &vm(), "VolGroup00/LogVol00:/var/log/sparse.img", d]);
    let m = std::fs::metadata(dir.path().join("sparse.img")).unwrap();
    let want = manifest("MANIFEST.root.tsv")
        .into_iter()
        .find(|e| e.path == "/var/log/sparse.img")
        .unwrap();
    assert_eq!(Some(m.len()), want.size);
    assert!(
        m.blocks() * 512 < m.len() / 2,
        "the 2 MiB hole was filled in: {} blocks",
        m.blocks()
    );
}

#[test]
fn ls_l_etc_lists_the_source_entries() {
    let out = run_ok(&["ls", "-l", &vm(), "VolGroup00/LogVol00:/etc"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let names: Vec<String> = manifest("MANIFEST.root.tsv")
        .into_iter()
        .filter_map(|e| {
            e.path
                .strip_prefix("/etc/")
                .filter(|r| !r.contains('/'))
                .map(str::to_string)
        })
        .collect();
    for n in &names {
        assert!(
            text.lines().any(|l| l.contains(&format!(" {n}"))),
            "ls -l misses {n}:\n{text}"
        );
    }
    assert!(
        text.contains("localtime -> ../usr/share/zoneinfo/UTC"),
        "{text}"
    );
    assert!(
        text.contains("-rwsr-xr-x"),
        "setuid bit of empty-file not shown:\n{text}"
    );
    assert!(text.contains("2019-06-15 08:30 +0000 fstab"), "{text}");
}

#[test]
fn ls_json_and_recursive() {
    let out = run_ok(&["ls", "--json", "-R", &vm(), "VolGroup00/LogVol00:/etc"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let want: Vec<String> = manifest("MANIFEST.root.tsv")
        .into_iter()
        .filter(|e| e.path.starts_with("/etc/"))
        .map(|e| e.path)
        .collect();
    for w in &want {
        assert!(paths.contains(&w.as_str()), "{w} missing from ls -R --json");
    }
    assert_eq!(paths.len(), want.len());
}

#[test]
fn cat_and_guest_paths() {
    let want = |p: &str, m: &str| {
        manifest(m)
            .into_iter()
            .find(|e| e.path == p)
            .unwrap()
            .sha256
            .unwrap()
    };
    let out = run_ok(&["cat", &vm(), "VolGroup00/LogVol00:/etc/fstab"]);
    assert_eq!(sha256(&out.stdout), want("/etc/fstab", "MANIFEST.root.tsv"));
    // Other names for the same volume.
    for vol in [
        "/dev/VolGroup00/LogVol00",
        "/dev/mapper/VolGroup00-LogVol00",
        "LABEL=root",
        "UUID=5f1b6d52-8f0e-4c37-9a57-3f0f3a4c1d01",
    ] {
        let out = run_ok(&["cat", &vm(), &format!("{vol}:/etc/hosts")]);
        assert_eq!(
            sha256(&out.stdout),
            want("/etc/hosts", "MANIFEST.root.tsv"),
            "{vol}"
        );
    }
    // Guest view through /etc/fstab: / on LogVol00, /boot on LABEL=boot, /srv on VolGroup01/data.
    let out = run_ok(&["cat", &vm(), "/boot/grub/grub.conf"]);
    assert_eq!(
        sha256(&out.stdout),
        want("/grub/grub.conf", "MANIFEST.boot.tsv")
    );
    let out = run_ok(&["cat", "--disk", &vm1(), &vm(), "/srv/www/html/index.html"]);
    assert_eq!(
        sha256(&out.stdout),
        want("/www/html/index.html", "MANIFEST.srv.tsv")
    );
    // A symlink is followed inside the guest, never on the host.
    let out = run_ok(&["cat", &vm(), "VolGroup00/LogVol00:/etc/localtime"]);
    assert_eq!(
        sha256(&out.stdout),
        want("/usr/share/zoneinfo/UTC", "MANIFEST.root.tsv")
    );
    let out = run_ok(&["cat", &vm(), "p1:/grub/menu.lst"]);
    assert_eq!(
        sha256(&out.stdout),
        want("/grub/grub.conf", "MANIFEST.boot.tsv")
    );
}

#[test]
fn stat_json_matches_source() {
    let out = run_ok(&["stat", "--json", &vm(), "VolGroup00/LogVol00:/etc/passwd"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = manifest("MANIFEST.root.tsv")
        .into_iter()
        .find(|e| e.path == "/etc/passwd")
        .unwrap();
    assert_eq!(v["mode"].as_u64(), Some(u64::from(e.mode)));
    assert_eq!(v["size"].as_u64(), e.size);
    assert_eq!(v["mtime"].as_i64(), Some(e.mtime));
    assert_eq!(v["type"], "file");
    let out = run_ok(&["stat", &vm(), "VolGroup00/LogVol00:/etc/passwd"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("(0644/-rw-r--r--)"));
}

#[test]
fn find_by_name_type_and_time() {
    let out = run_ok(&[
        "find",
        &vm(),
        "VolGroup00/LogVol00:/",
        "--name",
        "*.conf",
        "--type",
        "f",
    ]);
    let mut got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        // Printed paths start with the SPEC as typed, so that they paste back.
        .map(|l| l.strip_prefix("VolGroup00/LogVol00:").unwrap().to_string())
        .collect();
    got.sort();
    let mut want: Vec<String> = manifest("MANIFEST.root.tsv")
        .into_iter()
        .filter(|e| e.kind == 'f' && e.path.ends_with(".conf"))
        .map(|e| e.path)
        .collect();
    want.sort();
    assert_eq!(got, want);
    let out = run_ok(&[
        "find",
        &vm(),
        "VolGroup00/LogVol00:/etc",
        "--newer-than",
        "2024-03-02",
    ]);
    let got = String::from_utf8(out.stdout).unwrap();
    let want: Vec<String> = manifest("MANIFEST.root.tsv")
        .into_iter()
        .filter(|e| e.path.starts_with("/etc/") && e.mtime > 1_709_337_600)
        .map(|e| e.path)
        .collect();
    assert_eq!(
        got.lines()
            .map(|l| l.strip_prefix("VolGroup00/LogVol00:").unwrap())
            .collect::<Vec<_>>(),
        want.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[test]
fn tar_contains_the_source_tree() {
    let out = run_ok(&["tar", &vm(), "sda1:/grub"]);
    let mut ar = tar::Archive::new(&out.stdout[..]);
    let boot = manifest("MANIFEST.boot.tsv");
    let mut seen = 0;
    for entry in ar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = format!("/{}", entry.path().unwrap().display())
            .trim_end_matches('/')
            .to_string();
        let e = boot
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("unexpected {path}"));
        assert_eq!(entry.header().mtime().unwrap() as i64, e.mtime, "{path}");
        if e.kind == 'f' {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            assert_eq!(Some(sha256(&data)), e.sha256, "{path}");
        }
        if e.kind == 'l' {
            assert_eq!(
                entry.link_name().unwrap().unwrap().to_string_lossy(),
                e.target.clone().unwrap()
            );
        }
        seen += 1;
    }
    assert_eq!(
        seen,
        boot.iter().filter(|e| e.path.starts_with("/grub")).count()
    );
}

#[test]
fn export_matches_qemu_img_and_lvm2_reports() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    run_ok(&["export", &vm(), "-o", raw.to_str().unwrap()]);
    let qemu = std::fs::read_to_string(testdata("SHA256.qemu.txt")).unwrap();
    let want = qemu
        .lines()
        .find(|l| l.ends_with("vm.vmdk (qemu-img convert -O raw)"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(sha256_file(&raw), want);
    // Refuses to overwrite.
    let out = run(&["export", &vm(), "-o", raw.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    for (vg, lv, extra) in [
        ("VolGroup00", "LogVol00", false),
        ("VolGroup00", "LogVol01", false),
        ("VolGroup01", "data", true),
    ] {
        let img = dir.path().join(format!("{lv}.img"));
        let mut args = vec!["export"];
        let v1 = vm1();
        if extra {
            args.extend(["--disk", &v1]);
        }
        let v = vm();
        let name = format!("{vg}/{lv}");
        args.extend([v.as_str(), name.as_str(), "-o", img.to_str().unwrap()]);
        run_ok(&args);
        assert_eq!(
            sha256_file(&img),
            sha256(&lv_bytes_from_reports(vg, lv)),
            "{vg}/{lv}"
        );
    }
}

#[test]
fn info_json_agrees_with_lvm2_reports() {
    let out = run_ok(&["info", "--json", "--disk", &vm1(), &vm()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], 1);
    let l = layout();
    for (dev, (_, uuid)) in &l.pvs {
        let pv = v["physical_volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["device"] == dev.as_str());
        let pv = pv.unwrap_or_else(|| panic!("PV {dev} not found"));
        assert_eq!(pv["uuid"].as_str(), Some(uuid.as_str()), "{dev}");
    }
    let vols: Vec<&str> = v["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    for want in [
        "sda1",
        "sda2",
        "sda5",
        "sdb",
        "VolGroup00/LogVol00",
        "VolGroup00/LogVol01",
        "VolGroup01/data",
    ] {
        assert!(vols.contains(&want), "{want} not in {vols:?}");
    }
    let swap = v["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "VolGroup00/LogVol01")
        .unwrap();
    assert_eq!(swap["content"]["type"], "swap");
    // Without its second disk VolGroup01/data cannot be read: exit status 1.
    let out = run(&["info", &vm()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("MISSING"),
        "the second PV of VolGroup01 must show as missing:\n{text}"
    );
}

#[test]
fn descriptor_rewrite_changes_only_the_extent_name() {
    let dir = tempfile::tempdir().unwrap();
    let flat = dir.path().join("restored-flat.vmdk");
    std::fs::copy(testdata("vm-flat.vmdk"), &flat).unwrap();
    let out_desc = dir.path().join("restored.vmdk");
    run_ok(&[
        "descriptor",
        "rewrite",
        &vm(),
        "--extent",
        "restored-flat.vmdk",
        "-o",
        out_desc.to_str().unwrap(),
    ]);
    let before = std::fs::read_to_string(testdata("vm.vmdk")).unwrap();
    let after = std::fs::read_to_string(&out_desc).unwrap();
    assert_eq!(
        before.replace("\"vm-flat.vmdk\"", "\"restored-flat.vmdk\""),
        after
    );
    // The rewritten pair is a working disk: same bytes as the original per qemu-img.
    let out = run_ok(&[
        "cat",
        out_desc.to_str().unwrap(),
        "VolGroup00/LogVol00:/etc/fstab",
    ]);
    assert!(!out.stdout.is_empty());
    // Never overwrites; checks the new extent's size.
    let again = run(&[
        "descriptor",
        "rewrite",
        &vm(),
        "--extent",
        "restored-flat.vmdk",
        "-o",
        out_desc.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
    std::fs::write(dir.path().join("short-flat.vmdk"), vec![0u8; 4096]).unwrap();
    let short = run(&[
        "descriptor",
        "rewrite",
        &vm(),
        "--extent",
        "short-flat.vmdk",
        "-o",
        dir.path().join("x.vmdk").to_str().unwrap(),
    ]);
    assert_eq!(short.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&short.stderr).contains("65536 sectors"));
    assert!(!dir.path().join("x.vmdk").exists());
}

/// Damaged inputs: exit status 2, one clear line naming the layer and the object.
mod damaged {
    use super::*;

    fn one_line_error(args: &[&str], must_contain: &[&str]) {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let last = err.lines().last().unwrap_or_default();
        for m in must_contain {
            assert!(
                last.contains(m),
                "error for {args:?} should mention {m:?}: {err}"
            );
        }
    }

    fn copy_sample(dir: &std::path::Path) -> std::path::PathBuf {
        for f in ["vm.vmdk", "vm-flat.vmdk"] {
            std::fs::copy(testdata(f), dir.join(f)).unwrap();
        }
        dir.join("vm.vmdk")
    }

    fn patch(path: &std::path::Path, offset: u64, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .write_all_at(bytes, offset)
            .unwrap();
    }

    #[test]
    fn bad_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let d = copy_sample(dir.path());
        let text = std::fs::read_to_string(&d)
            .unwrap()
            .replace("RW 65536 VMFS", "RW 65536 BOGUS");
        std::fs::write(&d, text).unwrap();
        one_line_error(&["ls", d.to_str().unwrap(), "sda1:/"], &["vm.vmdk", "line"]);
    }

    #[test]
    fn truncated_flat_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = copy_sample(dir.path());
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("vm-flat.vmdk"))
            .unwrap();
        f.set_len(20 * 1024 * 1024).unwrap();
        one_line_error(
            &["ls", d.to_str().unwrap(), "sda1:/"],
            &["vm-flat.vmdk", "65536"],
        );
    }

    #[test]
    fn missing_flat_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = copy_sample(dir.path());
        std::fs::remove_file(dir.path().join("vm-flat.vmdk")).unwrap();
        one_line_error(&["info", d.to_str().unwrap()], &["vm-flat.vmdk"]);
    }

    #[test]
    fn corrupted_lvm_label() {
        let dir = tempfile::tempdir().unwrap();
        let d = copy_sample(dir.path());
        // sda2 starts at sector 18432; its label sits in sector 1 ("LABELONE").
        let sda2 = partition_starts()["sda2"];
        patch(
            &dir.path().join("vm-flat.vmdk"),
            sda2 + 512 + 20,
            b"\xde\xad\xbe\xef",
        );
        one_line_error(
            &["ls", d.to_str().unwrap(), "VolGroup00/LogVol00:/etc"],
            &["VolGroup00/LogVol00"],
        );
    }

    #[test]
    fn lv_whose_pv_is_missing() {
        one_line_error(
            &["ls", &vm(), "VolGroup01/data:/"],
            &["VolGroup01/data", "missing"],
        );
    }

    #[test]
    fn corrupted_superblock() {
        let dir = tempfile::tempdir().unwrap();
        let d = copy_sample(dir.path());
        // sda1 starts at sector 2048; the ext magic is at byte 1080 of the partition.
        patch(
            &dir.path().join("vm-flat.vmdk"),
            2048 * 512 + 1024,
            &[0xff; 200],
        );
        one_line_error(&["ls", d.to_str().unwrap(), "sda1:/"], &["sda1"]);
    }

    #[test]
    fn no_such_path_or_volume() {
        one_line_error(
            &["ls", &vm(), "VolGroup00/LogVol00:/nonexistent"],
            &["nonexistent"],
        );
        one_line_error(
            &["ls", &vm(), "VolGroup99/x:/"],
            &["VolGroup99/x", "VolGroup00/LogVol00"],
        );
        one_line_error(&["cat", &vm(), "VolGroup00/LogVol01:/"], &["swap"]);
    }
}
