//! The listing front ends (`ls`, `find`, `stat`), `mount`, `completions` and `man`,
//! driving the built binary on testdata/vm.vmdk.
//!
//! Oracles: the manifests scripts/make-testdata.sh wrote from the source trees
//! (find/stat/sha256sum), and the host's own GNU tools run on a mirror of the
//! source tree rebuilt from the manifest (same names, types, sizes, modes, mtimes
//! and symlink targets): GNU find for `find`'s filters, coreutils `ls -lh` for human
//! sizes, `stat -c` for stat's directives, `date -u` for time styles, the shell for
//! glob expansion, and the kernel's /proc/mounts for `mount`.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = "VolGroup00/LogVol00";

fn vm() -> String {
    testdata("vm.vmdk").to_string_lossy().into_owned()
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A host tool's output (it must be there: CI has coreutils and findutils).
fn host(cmd: &str, args: &[&str], dir: Option<&Path>) -> String {
    let mut c = Command::new(cmd);
    c.args(args).env("TZ", "UTC").env("LC_ALL", "C");
    if let Some(d) = dir {
        c.current_dir(d);
    }
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("{cmd} is needed as the oracle: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Rebuilds the source tree of a manifest under a new temporary directory: same
/// names, types, sizes (sparse), modes, mtimes and symlink targets.
fn mirror(manifest_name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let entries = manifest(manifest_name);
    for e in &entries {
        let p = root.join(e.path.trim_start_matches('/'));
        match e.kind {
            'd' => std::fs::create_dir_all(&p).unwrap(),
            'f' => {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                let f = std::fs::File::create(&p).unwrap();
                f.set_len(e.size.unwrap()).unwrap();
            }
            'l' => {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(e.target.as_ref().unwrap(), &p).unwrap();
            }
            'p' => {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                host("mkfifo", &[p.to_str().unwrap()], None);
            }
            k => panic!("unexpected kind {k}"),
        }
    }
    // Modes and times last, deepest first, so that creating children does not
    // change a directory's mtime afterwards.
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort_by_key(|e| std::cmp::Reverse(e.path.matches('/').count()));
    for e in sorted {
        let p = root.join(e.path.trim_start_matches('/'));
        if e.kind != 'l' {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(e.mode)).unwrap();
        }
        host(
            "touch",
            &["-h", "-d", &format!("@{}", e.mtime), p.to_str().unwrap()],
            None,
        );
    }
    (tmp, root)
}

// ---------------------------------------------------------------- ls

#[test]
fn ls_h_sizes_match_coreutils_ls() {
    for (spec, manifest_name, dir) in [
        (
            format!("{ROOT}:/etc/httpd/conf"),
            "MANIFEST.root.tsv",
            "etc/httpd/conf",
        ),
        (format!("{ROOT}:/etc"), "MANIFEST.root.tsv", "etc"),
        ("sda1:/".to_string(), "MANIFEST.boot.tsv", ""),
    ] {
        let (_tmp, root) = mirror(manifest_name);
        // coreutils' ls -lh on the mirror: regular files and symlinks have the
        // source's sizes (directories' sizes depend on the filesystem).
        let want: Vec<(String, String)> = host(
            "ls",
            &["-lh", "--time-style=+", root.join(dir).to_str().unwrap()],
            None,
        )
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with('d'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = f[5..].join(" ");
            let name = name.split(" -> ").next().unwrap().to_string();
            (name, f[4].to_string())
        })
        .collect();
        assert!(!want.is_empty());
        let out = run_ok(&["ls", "-lh", &vm(), &spec]);
        let got = text(&out);
        for (name, size) in &want {
            let line = got
                .lines()
                .find(|l| l.ends_with(&format!(" {name}")) || l.contains(&format!(" {name} -> ")))
                .unwrap_or_else(|| panic!("{name} missing:\n{got}"));
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(f[4], size, "{name}: {line}");
        }
    }
    // -h is human-readable, not help; --help is the help.
    let out = run_ok(&["ls", "--help"]);
    assert!(text(&out).contains("Usage"));
}

#[test]
fn ls_a_and_almost_all_and_directory() {
    let plain = text(&run_ok(&["ls", &vm(), "sda1:/"]));
    let almost = text(&run_ok(&["ls", "-A", &vm(), "sda1:/"]));
    let all = text(&run_ok(&["ls", "-a", &vm(), "sda1:/"]));
    // The source tree of sda1 plus lost+found, which mke2fs makes.
    let mut want: Vec<String> = manifest("MANIFEST.boot.tsv")
        .into_iter()
        .map(|e| e.path.trim_start_matches('/').to_string())
        .filter(|p| !p.contains('/'))
        .collect();
    want.push("lost+found".into());
    want.sort();
    let names = |t: &str| t.lines().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(names(&almost), want);
    // No name on sda1 starts with '.', so hiding them changes nothing here.
    assert_eq!(names(&plain), want);
    let mut with_dots = vec![".".to_string(), "..".to_string()];
    with_dots.extend(want);
    assert_eq!(names(&all), with_dots);
    // -d: the directory itself, with the source's mode.
    let out = text(&run_ok(&["ls", "-ld", &vm(), &format!("{ROOT}:/etc")]));
    let etc = manifest("MANIFEST.root.tsv")
        .into_iter()
        .find(|e| e.path == "/etc")
        .unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("drwxr-xr-x "), "{out}");
    assert_eq!(etc.mode, 0o755);
    assert!(out.trim_end().ends_with(&format!(" {ROOT}:/etc")), "{out}");
}

#[test]
fn ls_time_styles_match_date() {
    let e = manifest("MANIFEST.root.tsv")
        .into_iter()
        .find(|e| e.path == "/etc/fstab")
        .unwrap();
    let at = format!("@{}", e.mtime);
    for (style, date_fmt) in [
        (None, "+%Y-%m-%d %H:%M %z"),
        (Some("long-iso"), "+%Y-%m-%d %H:%M"),
        (Some("full-iso"), "+%Y-%m-%d %H:%M:%S.%N %z"),
        (Some("+%Y/%m/%d %H.%M.%S %s"), "+%Y/%m/%d %H.%M.%S %s"),
        // 2019 is more than six months ago: iso shows the date only.
        (Some("iso"), "+%Y-%m-%d "),
    ] {
        let want = host("date", &["-u", "-d", &at, date_fmt], None);
        let mut args = vec!["ls", "-l"];
        let s;
        if let Some(st) = style {
            s = format!("--time-style={st}");
            args.push(&s);
        }
        let v = vm();
        let spec = format!("{ROOT}:/etc/fstab");
        args.extend([v.as_str(), spec.as_str()]);
        let got = text(&run_ok(&args));
        assert!(
            got.contains(&format!(
                " {} {ROOT}:/etc/fstab",
                want.trim_end_matches('\n')
            )),
            "{style:?}: want {want:?} in {got:?}"
        );
    }
    let out = run(&["ls", "-l", "--time-style=bogus", &vm(), "sda1:/"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn ls_checksum_csv_several_specs_and_globs() {
    let m = manifest("MANIFEST.root.tsv");
    let by_path = |p: &str| m.iter().find(|e| e.path == p).unwrap().clone();
    // --checksum: the manifest's sha256sum of every regular file.
    let out = text(&run_ok(&[
        "ls",
        "--checksum",
        &vm(),
        &format!("{ROOT}:/etc"),
    ]));
    for line in out.lines() {
        let (sum, name) = line.split_once("  ").unwrap();
        let e = by_path(&format!("/etc/{name}"));
        match e.kind {
            'f' => assert_eq!(Some(sum.to_string()), e.sha256, "{name}"),
            _ => assert_eq!(sum, "-", "{name}"),
        }
    }
    // --csv -R: one row per object below /etc, with the manifest's facts.
    let out = text(&run_ok(&[
        "ls",
        "--csv",
        "-R",
        "--checksum",
        &vm(),
        &format!("{ROOT}:/etc"),
    ]));
    let want: Vec<_> = m.iter().filter(|e| e.path.starts_with("/etc/")).collect();
    assert_eq!(out.lines().count(), want.len());
    for line in out.lines() {
        // No name in /etc holds a comma or a quote, so a plain split is exact.
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 10, "{line}");
        let path = f[0].strip_prefix(&format!("{ROOT}:")).unwrap();
        let e = by_path(path);
        let kind = match e.kind {
            'f' => "file",
            'd' => "directory",
            'l' => "symlink",
            'p' => "fifo",
            _ => unreachable!(),
        };
        assert_eq!(f[1], kind, "{line}");
        if e.kind != 'l' {
            assert_eq!(u32::from_str_radix(f[2], 8).unwrap(), e.mode, "{line}");
        }
        if e.kind == 'f' || e.kind == 'l' {
            assert_eq!(Some(f[6].parse::<u64>().unwrap()), e.size, "{line}");
        }
        assert_eq!(f[7], format!("{}.000000000", e.mtime), "{line}");
        assert_eq!(
            (!f[8].is_empty()).then(|| f[8].to_string()),
            e.target,
            "{line}"
        );
        assert_eq!(
            (!f[9].is_empty()).then(|| f[9].to_string()),
            e.sha256,
            "{line}"
        );
    }
    // Globs are expanded against the image; the shell expanding the same glob in
    // the mirror of the source tree is the oracle.
    let (_tmp, root) = mirror("MANIFEST.root.tsv");
    for glob in ["etc/h*", "etc/*/conf", "etc/[ps]?ss*", "usr/*/zoneinfo/*"] {
        let want: Vec<String> = host(
            "sh",
            &["-c", &format!("printf '%s\\n' {glob}")],
            Some(&root),
        )
        .lines()
        .map(|l| format!("/{l}"))
        .collect();
        let got = text(&run_ok(&["ls", "-d", &vm(), &format!("/{glob}")]));
        let got: Vec<&str> = got.lines().collect();
        assert_eq!(got, want, "glob {glob}");
    }
    let out = run(&["ls", &vm(), "/etc/nothing-like-this*"]);
    assert_eq!(out.status.code(), Some(2));
    // Several SPECs: files first (sorted), then each directory under a header.
    let out = text(&run_ok(&[
        "ls",
        &vm(),
        "/etc/passwd",
        "sda1:/grub",
        "/etc/hosts",
    ]));
    let boot = manifest("MANIFEST.boot.tsv");
    let mut grub: Vec<String> = boot
        .iter()
        .filter_map(|e| e.path.strip_prefix("/grub/").map(str::to_string))
        .collect();
    grub.sort();
    let mut want = vec![
        "/etc/hosts".to_string(),
        "/etc/passwd".into(),
        String::new(),
        "sda1:/grub:".into(),
    ];
    want.extend(grub);
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
}

// ---------------------------------------------------------------- find

/// Our find and GNU find (on the mirror) with the same filters print the same
/// paths, ours carrying the SPEC as typed in front.
fn find_agrees_in(root: &Path, start: &str, ours: &[&str], gnu: &[&str]) {
    let mut args = vec!["find".to_string(), vm(), format!("{ROOT}:{start}")];
    args.extend(ours.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut got: Vec<String> = text(&run_ok(&args)).lines().map(str::to_string).collect();
    got.sort();
    let mut gargs = vec![root
        .join(start.trim_start_matches('/'))
        .to_string_lossy()
        .into_owned()];
    gargs.extend(gnu.iter().map(|s| s.to_string()));
    let gargs: Vec<&str> = gargs.iter().map(String::as_str).collect();
    let prefix = root.to_string_lossy().into_owned();
    let mut want: Vec<String> = host("find", &gargs, None)
        .lines()
        .map(|l| format!("{ROOT}:{}", l.strip_prefix(&prefix).unwrap()))
        .collect();
    want.sort();
    assert!(!want.is_empty() || ours.is_empty(), "{gnu:?} found nothing");
    assert_eq!(got, want, "find {ours:?} vs GNU find {gnu:?}");
}

#[test]
fn find_filters_agree_with_gnu_find() {
    let (_tmp, root) = mirror("MANIFEST.root.tsv");
    let find_agrees = |ours: &[&str], gnu: &[&str]| find_agrees_in(&root, "/etc", ours, gnu);
    find_agrees(&["--type", "l,d"], &["-type", "l,d"]);
    find_agrees_in(&root, "/var", &["--type", "p,l"], &["-type", "p,l"]);
    find_agrees(&["--iname", "HOSTS*"], &["-iname", "HOSTS*"]);
    find_agrees(&["--name", "*.conf"], &["-name", "*.conf"]);
    find_agrees(
        &["--size", "-1k", "--type", "f"],
        &["-size", "-1k", "-type", "f"],
    );
    find_agrees(
        &["--size", "+1", "--type", "f"],
        &["-size", "+1", "-type", "f"],
    );
    find_agrees(
        &["--size", "9k", "--type", "f"],
        &["-size", "9k", "-type", "f"],
    );
    find_agrees(
        &["--size", "+30c", "--type", "f"],
        &["-size", "+30c", "-type", "f"],
    );
    find_agrees(&["--maxdepth", "1"], &["-maxdepth", "1"]);
    find_agrees(&["--maxdepth", "0"], &["-maxdepth", "0"]);
    // Dates: GNU find's -newermt parses the same ISO 8601 forms.
    for d in [
        "2024-03-01T12:00:00+02:00",
        "2024-03-01T11:59:59Z",
        "2024-03-01",
        "2019-06-15 08:30",
        "@1709294399",
    ] {
        find_agrees(&["--newer-than", d], &["-newermt", d]);
        // No manifest mtime equals these instants, so "not newer" is "older".
        if d != "2019-06-15 08:30" {
            find_agrees(&["--older-than", d], &["!", "-newermt", d]);
        }
    }
    let out = run(&["find", &vm(), "/etc", "--newer-than", "2024-02-30"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn find_prints_pasteable_paths_and_print0() {
    // A guest path: printed as the guest path (sda1's /grub is the guest's /boot/grub).
    let got = text(&run_ok(&["find", &vm(), "/boot", "--name", "grub*"]));
    let mut want: Vec<String> = manifest("MANIFEST.boot.tsv")
        .into_iter()
        .filter(|e| e.path.rsplit('/').next().unwrap().starts_with("grub"))
        .map(|e| format!("/boot{}", e.path))
        .collect();
    want.sort();
    assert_eq!(got.lines().collect::<Vec<_>>(), want);
    // Each pastes back into cat.
    for p in &want {
        let e = manifest("MANIFEST.boot.tsv")
            .into_iter()
            .find(|e| format!("/boot{}", e.path) == *p)
            .unwrap();
        if e.kind == 'f' {
            let out = run_ok(&["cat", &vm(), p]);
            assert_eq!(Some(sha256(&out.stdout)), e.sha256, "{p}");
        }
    }
    // A volume SPEC: printed with the volume as typed.
    let got = text(&run_ok(&["find", &vm(), "/dev/sda1:/grub", "--type", "f"]));
    assert_eq!(got, "/dev/sda1:/grub/grub.conf\n");
    let out = run_ok(&["cat", &vm(), got.trim_end()]);
    assert_eq!(
        Some(sha256(&out.stdout)),
        manifest("MANIFEST.boot.tsv")
            .into_iter()
            .find(|e| e.path == "/grub/grub.conf")
            .unwrap()
            .sha256
    );
    // --print0: the same paths, NUL-terminated, the name's exact bytes.
    let out = run_ok(&[
        "find",
        &vm(),
        &format!("{ROOT}:/etc"),
        "--print0",
        "--name",
        "caf*",
    ]);
    assert_eq!(
        out.stdout,
        format!("{ROOT}:/etc/café menu.txt\0").into_bytes()
    );
}

// ---------------------------------------------------------------- stat

#[test]
fn stat_format_and_dereference_match_coreutils_stat() {
    let (_tmp, root) = mirror("MANIFEST.root.tsv");
    // Directives whose values the mirror shares with the image (not %i %h %U %b).
    let fmt = "%n|%s|%a|%A|%F|%Y|%y|%N";
    for (path, follow) in [
        ("/etc/passwd", false),
        ("/etc/empty-file", false),
        ("/etc/shadow", false),
        ("/etc/localtime", false),
        ("/etc/localtime", true),
        ("/etc/httpd.conf", false),
    ] {
        let mirror_path = root.join(path.trim_start_matches('/'));
        let mut args = vec!["-c", fmt];
        if follow {
            args.insert(0, "-L");
        }
        let mp = mirror_path.to_str().unwrap().to_string();
        args.push(&mp);
        let want = host("stat", &args, Some(&root))
            .replace(&root.to_string_lossy().into_owned(), "")
            .replace('\'', "");
        let mut ours = vec!["stat", "-c", fmt];
        if follow {
            ours.push("-L");
        }
        let v = vm();
        ours.push(&v);
        ours.push(path);
        let got = text(&run_ok(&ours)).replace('\'', "");
        // httpd.conf's target is absolute: on the host it points outside the mirror.
        if path == "/etc/httpd.conf" || (follow && path == "/etc/localtime") {
            let strip = |s: &str| s.split('|').take(6).collect::<Vec<_>>().join("|");
            assert_eq!(strip(&got), strip(&want), "{path}");
        } else {
            assert_eq!(got, want, "{path} -L={follow}");
        }
    }
    let v: serde_json::Value =
        serde_json::from_slice(&run_ok(&["stat", "--json", &vm(), "/etc/passwd"]).stdout).unwrap();
    // docs/json.md: every object-shaped output carries "schema": 1.
    assert_eq!(v["schema"], 1);
}

// ---------------------------------------------------------------- completions, man

#[test]
fn completions_and_man_page_load_in_their_tools() {
    let script = run_ok(&["completions", "bash"]).stdout;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.bash");
    std::fs::write(&f, &script).unwrap();
    let out = host(
        "bash",
        &[
            "-c",
            &format!("source {} && complete -p vmdkrecover", f.display()),
        ],
        None,
    );
    assert!(out.contains("vmdkrecover"), "{out}");
    for sh in ["zsh", "fish"] {
        let out = run_ok(&["completions", sh]);
        assert!(!out.stdout.is_empty());
    }
    assert_eq!(run(&["completions", "tcsh-nope"]).status.code(), Some(2));
    let man = run_ok(&["man"]).stdout;
    let f = dir.path().join("vmdkrecover.1");
    std::fs::write(&f, &man).unwrap();
    // groff renders it without warnings (-ww: all warnings; -z: no output).
    let out = Command::new("groff")
        .args(["-man", "-ww", "-z"])
        .arg(&f)
        .output()
        .expect("groff is needed to check the man page");
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = host(
        "groff",
        &["-man", "-Tascii", "-P-cbou", f.to_str().unwrap()],
        None,
    );
    for sub in ["ls", "find", "stat", "mount", "completions"] {
        assert!(rendered.contains(sub), "man page lacks {sub}");
    }
    // One command's page: its options are there, and groff takes it too.
    let page = run_ok(&["man", "ls"]).stdout;
    std::fs::write(&f, &page).unwrap();
    let rendered = host(
        "groff",
        &["-man", "-Tascii", "-P-cbou", "-ww", f.to_str().unwrap()],
        None,
    );
    for opt in [
        "--human-readable",
        "--time-style",
        "--checksum",
        "vmdkrecover-ls",
    ] {
        assert!(
            rendered.contains(opt),
            "vmdkrecover-ls(1) lacks {opt}:\n{rendered}"
        );
    }
    assert_eq!(run(&["man", "nope"]).status.code(), Some(2));
}

// ---------------------------------------------------------------- mount

fn is_root() -> bool {
    host("id", &["-u"], None).trim() == "0"
}

fn mounted(mp: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let mp = mp.to_string_lossy();
    mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(&*mp))
}

#[test]
fn mount_unmounts_on_sigterm_and_refuses_a_non_empty_mount_point() {
    if !is_root() || !Path::new("/dev/fuse").exists() {
        assert!(
            std::env::var("VMDKRECOVER_SKIP_MISSING").as_deref() == Ok("1"),
            "mount test needs root and /dev/fuse (set VMDKRECOVER_SKIP_MISSING=1 to skip)"
        );
        eprintln!("\n*** SKIPPED: mount test needs root and /dev/fuse ***\n");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mp = dir.path().join("mnt");
    std::fs::create_dir(&mp).unwrap();
    for (volume, signal) in [
        ("/", "TERM"),
        ("sda1", "HUP"),
        ("/boot", "INT"),
        ("VolGroup00/LogVol00:/etc", "TERM"),
    ] {
        let vm1 = testdata("vm_1.vmdk").to_string_lossy().into_owned();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vmdkrecover"))
            .args(["mount", "--disk", &vm1, &vm(), volume])
            .arg(&mp)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        while !mounted(&mp) {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(20),
                "{volume}: not mounted after 20 s"
            );
            if let Some(st) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("{volume}: mount exited ({st}) as root: {err}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // Served through the mount: the source tree's contents.
        // (manifest, path in it, path under the mount point)
        let (m, file, under) = match volume {
            "/" => ("MANIFEST.root.tsv", "/etc/passwd", "etc/passwd"),
            "VolGroup00/LogVol00:/etc" => ("MANIFEST.root.tsv", "/etc/passwd", "passwd"),
            _ => ("MANIFEST.boot.tsv", "/grub/grub.conf", "grub/grub.conf"),
        };
        let want = manifest(m).into_iter().find(|e| e.path == file).unwrap();
        let got = std::fs::read(mp.join(under)).unwrap();
        assert_eq!(Some(sha256(&got)), want.sha256, "{volume}{file}");
        if volume == "/" {
            // The whole guest tree: its fstab's mounts in place, served with the
            // tree's own (large, 64-bit) inode numbers.
            for (m, file, under) in [
                (
                    "MANIFEST.boot.tsv",
                    "/grub/grub.conf",
                    "boot/grub/grub.conf",
                ),
                (
                    "MANIFEST.srv.tsv",
                    "/www/html/index.html",
                    "srv/www/html/index.html",
                ),
            ] {
                let want = manifest(m).into_iter().find(|e| e.path == file).unwrap();
                let got = std::fs::read(mp.join(under)).unwrap();
                assert_eq!(Some(sha256(&got)), want.sha256, "/{under}");
            }
        }
        let pid = child.id().to_string();
        host("kill", &[&format!("-{signal}"), &pid], None);
        let st = child.wait().unwrap();
        assert!(
            st.success(),
            "{volume}: exit status after SIG{signal}: {st}"
        );
        assert!(
            !mounted(&mp),
            "{volume}: still in /proc/mounts after SIG{signal}"
        );
        // And not a dead mount either: the directory reads as an empty one.
        assert_eq!(std::fs::read_dir(&mp).unwrap().count(), 0);
    }
    // A non-empty mount point is refused, and nothing is mounted.
    std::fs::write(mp.join("keep"), b"x").unwrap();
    let out = run(&["mount", &vm(), "sda1", mp.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!mounted(&mp));
    assert_eq!(std::fs::read(mp.join("keep")).unwrap(), b"x");
    // Options that would make the mount writable or executable are refused.
    std::fs::remove_file(mp.join("keep")).unwrap();
    for o in ["rw", "exec", "suid", "dev", "bogus"] {
        let out = run(&["mount", &vm(), "sda1", mp.to_str().unwrap(), "-o", o]);
        assert_eq!(out.status.code(), Some(2), "-o {o}");
        assert!(!mounted(&mp));
    }
}
