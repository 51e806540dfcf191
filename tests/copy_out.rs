//! The copy-out commands (`cp`, `tar`, `export`, `cat`) behaving like the tools
//! sysadmins know. Oracles: the manifests scripts/make-testdata.sh wrote from the
//! source trees (MANIFEST.*.tsv, XATTRS.*.txt from getfattr), GNU tar and bsdtar
//! extracting our archives, and coreutils' documented DEST rules.

mod common;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

fn vm() -> String {
    testdata("vm.vmdk").display().to_string()
}
fn rhel9() -> String {
    testdata("rhel9/rhel9.vmdk").display().to_string()
}
fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vmdkrecover")
}

/// A host tool, or None (a loud SKIPPED when VMDKRECOVER_SKIP_MISSING=1, else a
/// failure: CI provides the tools).
fn tool(name: &str) -> Option<String> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p.display().to_string()),
        None if std::env::var("VMDKRECOVER_SKIP_MISSING").as_deref() == Ok("1") => {
            eprintln!("\n*** SKIPPED: {name} is not installed ***\n");
            None
        }
        None => panic!("{name} is not installed (set VMDKRECOVER_SKIP_MISSING=1 to skip)"),
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn root_entries() -> Vec<Entry> {
    manifest("MANIFEST.root.tsv")
}

/// Extracts `archive` with `cmd` into a fresh directory and compares it with the
/// root manifest (lost+found is in the filesystem but not in the source tree).
fn extract_and_compare(archive: &Path, cmd: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .arg(archive)
        .arg("-C")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
    std::fs::remove_dir(dir.path().join("lost+found")).unwrap();
    compare_tree(dir.path(), &root_entries());
    // The 2 MiB hole of sparse.img came back as a hole.
    let m = std::fs::metadata(dir.path().join("var/log/sparse.img")).unwrap();
    assert!(
        m.blocks() * 512 < m.len() / 2,
        "{cmd:?}: the hole was filled in ({} blocks)",
        m.blocks()
    );
}

#[test]
fn tar_extracts_with_gnu_tar_and_bsdtar_as_the_source_tree() {
    let (Some(gnu), Some(bsd)) = (tool("tar"), tool("bsdtar")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("root.tar");
    run_ok(&[
        "tar",
        &vm(),
        "VolGroup00/LogVol00:/",
        "-o",
        archive.to_str().unwrap(),
    ]);
    // The holes are not stored: the archive is smaller than the sparse file alone.
    let sparse = root_entries()
        .into_iter()
        .find(|e| e.path == "/var/log/sparse.img")
        .unwrap();
    assert!(std::fs::metadata(&archive).unwrap().len() < sparse.size.unwrap());
    extract_and_compare(&archive, &[&gnu, "--xattrs", "--xattrs-include=*", "-xpf"]);
    extract_and_compare(&archive, &[&bsd, "-xpf"]);
    // gzip: GNU tar -z reads it.
    let gz = dir.path().join("root.tar.gz");
    run_ok(&[
        "tar",
        "-z",
        &vm(),
        "VolGroup00/LogVol00:/",
        "-o",
        gz.to_str().unwrap(),
    ]);
    extract_and_compare(&gz, &[&gnu, "-xzpf"]);
}

#[test]
fn tar_carries_xattrs_that_gnu_tar_restores() {
    let (Some(gnu), Some(getfattr)) = (tool("tar"), tool("getfattr")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("home.tar");
    run_ok(&[
        "tar",
        &rhel9(),
        "rhel/home:/",
        "-o",
        archive.to_str().unwrap(),
    ]);
    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let out = Command::new(&gnu)
        .args(["--xattrs", "--xattrs-include=*", "-xpf"])
        .arg(&archive)
        .arg("-C")
        .arg(&x)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let want = std::fs::read_to_string(testdata("rhel9/XATTRS.home.txt")).unwrap();
    // getfattr as the fixture script ran it, on every path the fixture lists.
    for block in want.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut lines = block.lines();
        let file = lines.next().unwrap().strip_prefix("# file: ").unwrap();
        let out = Command::new(&getfattr)
            .args(["-h", "-d", "-m", "-", "-e", "hex"])
            .arg(x.join(file))
            .output()
            .unwrap();
        let got = String::from_utf8_lossy(&out.stdout);
        for attr in lines {
            assert!(got.contains(attr), "{file}: {attr} missing in {got}");
        }
    }
}

/// Runs the binary with stdout into `head -c 10`; returns its exit code.
fn into_head(args: &[&str]) -> Option<i32> {
    let mut child = Command::new(bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 10];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    drop(out);
    child.wait().unwrap().code()
}

#[test]
fn a_closed_pipe_is_not_success() {
    assert_eq!(into_head(&["export", &vm(), "-o", "-"]), Some(1));
    assert_eq!(into_head(&["tar", &vm(), "VolGroup00/LogVol00:/"]), Some(1));
}

#[test]
fn outputs_respect_the_umask_and_never_replace() {
    let dir = tempfile::tempdir().unwrap();
    for (umask, want) in [("022", 0o644), ("027", 0o640)] {
        let img = dir.path().join(format!("sda1-{umask}.img"));
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
            .arg(bin())
            .args(["export", &vm(), "sda1", "-o", img.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let mode = std::fs::metadata(&img).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, want, "umask {umask}");
    }
    // An existing output is kept, and the refusal names --force.
    let img = dir.path().join("sda1-022.img");
    let before = std::fs::metadata(&img).unwrap().ino();
    let out = run(&["export", &vm(), "sda1", "-o", img.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&img).unwrap().ino(), before);
    let leftovers: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn cp_dest_with_trailing_slash_must_be_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let nodir = format!("{}/nodir/", dir.path().display());
    let out = run(&["cp", &vm(), "VolGroup00/LogVol00:/etc/passwd", &nodir]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("Not a directory"), "{}", stderr(&out));
    assert!(!dir.path().join("nodir").exists());
    // Several SPECs need a directory too.
    let file = dir.path().join("file");
    let out = run(&[
        "cp",
        &vm(),
        "VolGroup00/LogVol00:/etc/passwd",
        "VolGroup00/LogVol00:/etc/fstab",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!file.exists());
}

#[test]
fn cp_several_specs_one_bad_copies_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "cp",
        &vm(),
        "VolGroup00/LogVol00:/etc/passwd",
        "VolGroup00/LogVol00:/no/such/file",
        "VolGroup00/LogVol00:/etc/fstab",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("/no/such/file"), "{}", stderr(&out));
    for name in ["passwd", "fstab"] {
        let e = root_entries()
            .into_iter()
            .find(|e| e.path == format!("/etc/{name}"))
            .unwrap();
        assert_eq!(Some(sha256_file(&dir.path().join(name))), e.sha256);
    }
}

#[test]
fn cp_guest_mount_point_lands_under_its_guest_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = format!("{}/", dir.path().display());
    let out = run_ok(&["cp", "-v", &vm(), "/boot", &d]);
    std::fs::remove_dir(dir.path().join("boot/lost+found")).unwrap();
    compare_tree(&dir.path().join("boot"), &manifest("MANIFEST.boot.tsv"));
    // -v names the guest path and the destination, as cp -v does.
    let text = String::from_utf8_lossy(&out.stdout);
    let line = format!(
        "'/boot/grub/grub.conf' -> '{}'",
        dir.path().join("boot/grub/grub.conf").display()
    );
    assert!(text.lines().any(|l| l == line), "{line} not in {text}");
}

#[test]
fn cp_no_clobber_skips_silently_and_force_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("fstab");
    std::fs::write(&dest, b"mine").unwrap();
    let spec = "VolGroup00/LogVol00:/etc/fstab";
    let out = run_ok(&["cp", "-n", &vm(), spec, dest.to_str().unwrap()]);
    assert!(!stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&dest).unwrap(), b"mine");
    run_ok(&["cp", "-f", "-r", &vm(), spec, dest.to_str().unwrap()]);
    let want = root_entries()
        .into_iter()
        .find(|e| e.path == "/etc/fstab")
        .unwrap();
    assert_eq!(Some(sha256_file(&dest)), want.sha256);
}

#[test]
fn cp_names_stale_partial_files_and_quiet_drops_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".passwd.1.vmdkrecover-partial"), b"x").unwrap();
    let out = run_ok(&[
        "cp",
        "-q",
        &vm(),
        "VolGroup00/LogVol00:/etc/passwd",
        dir.path().to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(err.contains(".passwd.1.vmdkrecover-partial"), "{err}");
    assert!(!err.contains("copied"), "{err}");
}

#[test]
fn cat_several_specs_in_order_bad_one_reported() {
    let out = run(&[
        "cat",
        &vm(),
        "VolGroup00/LogVol00:/etc/passwd",
        "VolGroup00/LogVol00:/nonexistent",
        "VolGroup00/LogVol00:/etc/fstab",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nonexistent"));
    let e = |p: &str| {
        root_entries()
            .into_iter()
            .find(|e| e.path == p)
            .unwrap()
            .size
            .unwrap() as usize
    };
    let (a, b) = (e("/etc/passwd"), e("/etc/fstab"));
    assert_eq!(out.stdout.len(), a + b);
    let want = |p: &str| {
        root_entries()
            .into_iter()
            .find(|e| e.path == p)
            .unwrap()
            .sha256
    };
    assert_eq!(Some(sha256(&out.stdout[..a])), want("/etc/passwd"));
    assert_eq!(Some(sha256(&out.stdout[a..])), want("/etc/fstab"));
}

/// The sample disk copied into `dir` with one block pointer of
/// /vmlinuz-2.6.18-398.el5 on sda1 (ext3, 1 KiB blocks, indirect map) pointed
/// outside the filesystem by debugfs. Returns the descriptor and the original
/// bytes of the lost block (read at the physical block debugfs lists for logical
/// block 3).
fn damaged_boot_copy(dir: &Path, debugfs: &str) -> (String, Vec<u8>) {
    let flat = dir.join("vm-flat.vmdk");
    std::fs::copy(testdata("vm.vmdk"), dir.join("vm.vmdk")).unwrap();
    std::fs::copy(testdata("vm-flat.vmdk"), &flat).unwrap();
    // sda1 starts at sector 2048 and is 8 MiB (LAYOUT.txt, sfdisk).
    let disk = std::fs::read(&flat).unwrap();
    let part = &disk[2048 * 512..2048 * 512 + 8 * 1024 * 1024];
    let p1 = dir.join("p1.img");
    std::fs::write(&p1, part).unwrap();
    let out = Command::new(debugfs)
        .args(["-R", "blocks /vmlinuz-2.6.18-398.el5"])
        .arg(&p1)
        .output()
        .unwrap();
    let blocks: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|b| b.parse().unwrap())
        .collect();
    let phys = blocks[3] as usize;
    let original = part[phys * 1024..(phys + 1) * 1024].to_vec();
    let out = Command::new(debugfs)
        .args(["-w", "-R", "sif /vmlinuz-2.6.18-398.el5 block[3] 99999999"])
        .arg(&p1)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut disk = disk;
    disk[2048 * 512..2048 * 512 + 8 * 1024 * 1024].copy_from_slice(&std::fs::read(&p1).unwrap());
    std::fs::write(&flat, disk).unwrap();
    (dir.join("vm.vmdk").display().to_string(), original)
}

#[test]
fn cp_salvage_keeps_every_readable_byte_and_names_the_lost_range() {
    let Some(debugfs) = tool("debugfs") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (img, original) = damaged_boot_copy(dir.path(), &debugfs);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let spec = "sda1:/vmlinuz-2.6.18-398.el5";
    // Without --salvage the file is reported and nothing is written.
    let out = run(&["cp", &img, spec, out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
    let out = run(&[
        "cp",
        "--salvage",
        "--json",
        &img,
        spec,
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("3072-4096"), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["salvaged"][0];
    assert_eq!(s["unreadable"][0]["offset"], 3072);
    assert_eq!(s["unreadable"][0]["length"], 1024);
    // Under NAME.partial; with the lost block put back it is the source file.
    assert!(!out_dir.join("vmlinuz-2.6.18-398.el5").exists());
    let mut data = std::fs::read(out_dir.join("vmlinuz-2.6.18-398.el5.partial")).unwrap();
    assert!(data[3072..4096].iter().all(|b| *b == 0));
    data[3072..4096].copy_from_slice(&original);
    let want = manifest("MANIFEST.boot.tsv")
        .into_iter()
        .find(|e| e.path == "/vmlinuz-2.6.18-398.el5")
        .unwrap();
    assert_eq!(Some(sha256(&data)), want.sha256);
    // --salvage-in-place keeps the name.
    let out = run(&[
        "cp",
        "--salvage",
        "--salvage-in-place",
        &img,
        spec,
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out_dir.join("vmlinuz-2.6.18-398.el5").exists());
}

#[test]
fn tar_of_a_guest_mount_point_names_members_by_the_guest_path() {
    let out = run_ok(&["tar", "-q", &vm(), "/boot"]);
    let mut ar = tar::Archive::new(&out.stdout[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    for e in manifest("MANIFEST.boot.tsv") {
        let want = format!("boot{}", e.path);
        assert!(
            names.iter().any(|n| n.trim_end_matches('/') == want),
            "{want} not in the archive"
        );
    }
    assert!(names.iter().all(|n| n.starts_with("boot/")), "{names:?}");
}

#[test]
fn sigterm_exits_143() {
    // export to a pipe nobody reads blocks once the pipe is full.
    let child = Command::new(bin())
        .args(["export", &vm(), "-o", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert!(stderr(&out).contains("SIGTERM"), "{}", stderr(&out));
}

/// Runs `cp` of the root LV with stderr on a pseudo-terminal (util-linux `script`)
/// and returns what the terminal showed.
fn cp_on_a_terminal(script: &str, term: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = format!("{} cp", bin());
    for a in extra {
        cmd.push_str(&format!(" {a}"));
    }
    cmd.push_str(&format!(
        " {} VolGroup00/LogVol00:/ {}/r",
        vm(),
        dir.path().display()
    ));
    let out = Command::new(script)
        .args(["-qec", &cmd, "/dev/null"])
        .env("TERM", term)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn progress_only_on_a_capable_terminal() {
    // Not a terminal: the summary, no bar.
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(&[
        "cp",
        &vm(),
        "sda1:/",
        dir.path().join("b").to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(err.contains("vmdkrecover: copied"), "{err}");
    assert!(!err.contains("ETA") && !err.contains('\r'), "{err}");
    let Some(script) = tool("script") else {
        return;
    };
    let shown = cp_on_a_terminal(&script, "xterm", &[]);
    assert!(
        shown.contains("ETA"),
        "no progress bar on a terminal: {shown}"
    );
    assert!(shown.contains("vmdkrecover: copied"), "{shown}");
    let dumb = cp_on_a_terminal(&script, "dumb", &[]);
    assert!(!dumb.contains("ETA"), "{dumb}");
    let quiet = cp_on_a_terminal(&script, "xterm", &["-q"]);
    assert!(
        !quiet.contains("ETA") && !quiet.contains("copied"),
        "{quiet}"
    );
}

#[test]
fn archives_and_images_are_never_written_to_a_terminal() {
    let Some(script) = tool("script") else {
        return;
    };
    for (cmd, says) in [
        (
            format!("{} tar {} sda1:/", bin(), vm()),
            "Refusing to write archive contents to terminal",
        ),
        (
            format!("{} export {} -o -", bin(), vm()),
            "refusing to write a disk image to a terminal",
        ),
    ] {
        let out = Command::new(&script)
            .args(["-qec", &cmd, "/dev/null"])
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {shown}");
        assert!(shown.contains(says), "{cmd}: {shown}");
        // Nothing but the message: no archive bytes reached the terminal.
        assert!(shown.len() < 300, "{cmd}: {shown}");
    }
}
