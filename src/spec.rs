//! SPECs (`VOLUME:PATH`, or a guest path resolved through the guest's own fstab) and
//! the filesystems behind them.

use crate::filesystems;
use crate::stack::{normalize_volume_name, Content, Stack, Volume};
use anyhow::{anyhow, bail, Context, Result};
use std::sync::{Arc, Mutex};

/// A parsed SPEC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// `VOLUME:PATH`.
    OnVolume {
        /// What the user typed for the volume.
        volume: String,
        /// Absolute path inside that filesystem.
        path: Vec<u8>,
    },
    /// `/some/path`: the guest's view, through its fstab.
    Guest {
        /// Absolute path as the guest sees it.
        path: Vec<u8>,
    },
}

impl Spec {
    /// Parses what the user typed.
    pub fn parse(s: &str) -> Result<Spec> {
        let split = |s: &str| -> Option<(String, Vec<u8>)> {
            let (v, p) = s.split_once(':')?;
            Some((v.to_string(), absolute(p.as_bytes())))
        };
        if s.starts_with("/dev/") {
            let (volume, path) = split(s)
                .ok_or_else(|| anyhow!("{s}: expected VOLUME:PATH, e.g. {s}:/etc/fstab"))?;
            return Ok(Spec::OnVolume { volume, path });
        }
        if s.starts_with('/') {
            return Ok(Spec::Guest {
                path: absolute(s.as_bytes()),
            });
        }
        match split(s) {
            Some((volume, path)) if !volume.is_empty() => Ok(Spec::OnVolume { volume, path }),
            _ => bail!(
                "{s}: expected VOLUME:PATH (e.g. VolGroup00/LogVol00:/etc/fstab, sda1:/grub/grub.conf) or an absolute guest path (/etc/fstab)"
            ),
        }
    }
}

/// `etc//x/` -> `/etc/x`; "" -> "/".
fn absolute(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len() + 1);
    for comp in p
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        out.push(b'/');
        out.extend_from_slice(comp);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// A filesystem opened on a volume, with the bookkeeping that prints each of its
/// warnings once (prefixed with the volume name) and counts those raised after
/// open, which decide the exit status (README, "Exit status").
pub struct OpenFs {
    /// Volume name (canonical).
    pub volume: String,
    /// The filesystem.
    pub fs: Arc<dyn fsapi::Filesystem>,
    warnings: Mutex<WarnState>,
}

#[derive(Default)]
struct WarnState {
    /// `warning_count()` when the filesystem had been opened.
    at_open: u64,
    /// `warning_count()` at the last look.
    seen: u64,
    /// Entries of `warnings()` already printed.
    printed: usize,
    /// Warnings the front end raised about this filesystem (refused names).
    own: u64,
}

impl OpenFs {
    /// Wraps an opened filesystem; nothing is printed yet.
    pub fn new(volume: String, fs: Arc<dyn fsapi::Filesystem>) -> Self {
        OpenFs {
            volume,
            fs,
            warnings: Mutex::new(WarnState::default()),
        }
    }

    /// Prints every warning not printed yet through `emit` (one line each, already
    /// prefixed `vmdkrecover: VOLUME: warning: `). Cheap when there is none.
    pub fn print_new_warnings(&self, emit: &dyn Fn(&str)) {
        self.print_new_warnings_in(None, emit);
    }

    /// Same, naming the path that was being read when they were raised (after a
    /// `read_dir`, the directory), since a reader names only its inode.
    pub fn print_new_warnings_in(&self, path: Option<&[u8]>, emit: &dyn Fn(&str)) {
        let count = self.fs.warning_count();
        let Ok(mut st) = self.warnings.lock() else {
            return;
        };
        if count <= st.seen {
            return;
        }
        st.seen = count;
        let list = self.fs.warnings();
        // Readers keep at most fsapi::MAX_WARNINGS and then append a line counting
        // the rest; that line is printed once, at the end (`finish_warnings`).
        let real = list
            .len()
            .min(usize::try_from(count).unwrap_or(usize::MAX))
            .min(fsapi::MAX_WARNINGS);
        let at = path
            .map(|p| format!("{}: ", crate::cmd::show_name(p)))
            .unwrap_or_default();
        for w in list.get(st.printed..real).unwrap_or_default() {
            emit(&format!("vmdkrecover: {}: warning: {at}{w}", self.volume));
        }
        st.printed = st.printed.max(real);
    }

    /// Marks everything raised so far as seen at open: printed now, never counted.
    pub fn opened(&self, emit: &dyn Fn(&str)) {
        self.print_new_warnings(emit);
        if let Ok(mut st) = self.warnings.lock() {
            st.at_open = self.fs.warning_count();
        }
    }

    /// A warning the front end raises about this filesystem (a refused name):
    /// printed now and counted like the filesystem's own.
    pub fn warn(&self, msg: &str, emit: &dyn Fn(&str)) {
        emit(&format!("vmdkrecover: {}: warning: {msg}", self.volume));
        if let Ok(mut st) = self.warnings.lock() {
            st.own = st.own.saturating_add(1);
        }
    }

    /// Prints what is left and returns how many warnings were raised since open
    /// (by the filesystem or the front end).
    pub fn finish_warnings(&self, emit: &dyn Fn(&str)) -> u64 {
        self.print_new_warnings(emit);
        let count = self.fs.warning_count();
        let Ok(st) = self.warnings.lock() else {
            return 0;
        };
        let shown = u64::try_from(st.printed).unwrap_or(u64::MAX);
        if count > shown {
            emit(&format!(
                "vmdkrecover: {}: warning: {} further warnings not shown",
                self.volume,
                count.saturating_sub(shown)
            ));
        }
        count.saturating_sub(st.at_open).saturating_add(st.own)
    }
}

/// Prints to standard error.
pub fn eprint_line(line: &str) {
    eprintln!("{line}");
}

/// Opens the filesystem on `vol` through the registry ([`crate::filesystems`]).
pub fn open_fs(vol: &Volume, replay_journal: bool) -> Result<OpenFs> {
    let src = vol.source.clone().map_err(|why| {
        let hint = if why.contains("missing") {
            "; if that PV is on another disk of the VM, add it with --disk"
        } else {
            ""
        };
        anyhow!("{}: cannot read this volume: {why}{hint}", vol.name)
    })?;
    let not_fs = || {
        let what = match vol.content() {
            Content::Lvm2Pv => "an LVM2 physical volume; name one of its logical volumes (VG/LV) instead".to_string(),
            Content::Extended => "the extended partition container; name a logical partition (sda5, ...)".to_string(),
            Content::Swap => "swap space, not a filesystem".to_string(),
            Content::Empty => "empty (all zeros at the start)".to_string(),
            Content::Unknown => {
                "no filesystem vmdkrecover recognises (no ext, LVM2, swap, XFS, btrfs, LUKS, NTFS or FAT signature; damaged superblock?)"
                    .to_string()
            }
            c => format!(
                "{}, which vmdkrecover does not read yet (only {})",
                c.name(),
                filesystems::readable_kinds()
            ),
        };
        anyhow!("{}: {what}", vol.name)
    };
    if filesystems::reader_for(vol.content()).is_none() {
        return Err(not_fs());
    }
    let opts = fsapi::OpenOptions::with_replay(replay_journal);
    let fs = filesystems::open(src, &opts)
        .with_context(|| vol.name.clone())?
        .ok_or_else(not_fs)?;
    Ok(OpenFs::new(vol.name.clone(), fs))
}

/// A SPEC resolved to a filesystem and a path in it.
pub struct Target {
    /// The filesystem.
    pub fs: OpenFs,
    /// Absolute path inside it.
    pub path: Vec<u8>,
    /// How to show this path to the user (`VolGroup00/LogVol00:/etc`).
    pub display: String,
    /// The guest tree behind `fs`, for a guest-path SPEC: which mounted filesystem
    /// holds an inode ([`crate::guest::GuestTree::owner`]).
    pub guest: Option<Arc<crate::guest::GuestTree>>,
}

/// Resolves a SPEC against the stack, opening the filesystem it lives on.
pub fn resolve(stack: &Stack, spec: &Spec, replay_journal: bool) -> Result<Target> {
    match spec {
        Spec::OnVolume { volume, path } => {
            let vol = stack.find_volume(volume)?;
            let fs = open_fs(vol, replay_journal)?;
            let display = format!("{}:{}", vol.name, String::from_utf8_lossy(path));
            Ok(Target {
                fs,
                path: path.clone(),
                display,
                guest: None,
            })
        }
        Spec::Guest { path } => {
            let (tree, layout) = open_guest_tree(stack, replay_journal)?;
            let fs = OpenFs::new("guest".into(), tree.clone());
            // A filesystem the guest would mount but that cannot be read leaves its
            // mount point showing what lies beneath: say so, once.
            // Once per process, although several SPECs (ls, cat, cp) resolve.
            static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());
            for s in layout.skipped.iter().filter(|s| s.unreadable) {
                let line = format!(
                    "vmdkrecover: guest: {} is not mounted: {}",
                    if s.mount_point.is_empty() {
                        "a mount point"
                    } else {
                        &s.mount_point
                    },
                    s.why
                );
                let new = SAID.lock().map(|mut said| {
                    let new = !said.contains(&line);
                    if new {
                        said.push(line.clone());
                    }
                    new
                });
                if new.unwrap_or(true) {
                    eprintln!("{line}");
                }
            }
            Ok(Target {
                fs,
                path: path.clone(),
                display: String::from_utf8_lossy(path).into_owned(),
                guest: Some(tree),
            })
        }
    }
}

/// One fstab line placed in the guest tree.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PlacedMount {
    /// Guest mount point (`/`, `/boot`).
    pub mount_point: String,
    /// Canonical volume name (`sda2`, `rhel/root`).
    pub volume: String,
    /// What fstab named it (`UUID=...`, `/dev/mapper/rhel-root`).
    pub device: String,
}

/// One fstab line left out of the guest tree, and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SkippedMount {
    /// Guest mount point as fstab says it.
    pub mount_point: String,
    /// What fstab named.
    pub device: String,
    /// Why it is not in the tree.
    pub why: String,
    /// It names a volume of these disks that could not be read or found (as
    /// opposed to swap, pseudo, network or bind lines, which never are).
    pub unreadable: bool,
}

/// How the guest mounts its filesystems, from its own fstab.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GuestLayout {
    /// Every filesystem placed, the root first.
    pub mounts: Vec<PlacedMount>,
    /// fstab lines not placed.
    pub skipped: Vec<SkippedMount>,
}

/// Finds the root filesystem (the one whose `/etc/fstab` names itself as `/`, else
/// the first with an `/etc/fstab`) and places every fstab line that names a volume
/// of these disks.
pub fn guest_layout(stack: &Stack, replay_journal: bool) -> Result<GuestLayout> {
    crate::stack::probe_all(&stack.volumes);
    let mut candidates = Vec::new();
    for v in stack
        .volumes
        .iter()
        .filter(|v| filesystems::reader_for(v.content()).is_some())
    {
        let Ok(fs) = open_fs(v, replay_journal) else {
            continue;
        };
        if let Ok(text) = read_small_file(&*fs.fs, b"/etc/fstab", 1 << 20) {
            candidates.push((
                v.name.clone(),
                crate::fstab::parse(&String::from_utf8_lossy(&text)),
            ));
        }
    }
    let names_itself = |name: &str, entries: &[crate::fstab::Entry]| {
        entries.iter().any(|e| {
            e.mount_point == "/" && stack.find_volume(&e.device).is_ok_and(|v| v.name == name)
        })
    };
    let pick = candidates
        .iter()
        .position(|(n, e)| names_itself(n, e))
        .unwrap_or(0);
    if candidates.is_empty() {
        bail!(
            "no volume holds /etc/fstab, so there is no guest view; name a volume instead (VOLUME:PATH; volumes here: {})",
            stack.volume_names()
        );
    }
    let (root_name, entries) = candidates.swap_remove(pick);
    let mut layout = GuestLayout {
        mounts: vec![PlacedMount {
            mount_point: "/".into(),
            volume: root_name.clone(),
            device: entries
                .iter()
                .find(|e| e.mount_point == "/")
                .map(|e| e.device.clone())
                .unwrap_or_default(),
        }],
        skipped: Vec::new(),
    };
    for e in entries.iter().filter(|e| e.mount_point != "/") {
        let skip = |why: String| SkippedMount {
            mount_point: e.mount_point.clone(),
            device: e.device.clone(),
            why,
            unreadable: false,
        };
        if let Some(why) = e.not_placeable() {
            layout.skipped.push(skip(why));
            continue;
        }
        match stack.find_volume(&e.device) {
            Ok(v) if v.name == root_name => {
                layout
                    .skipped
                    .push(skip("the root filesystem again".into()));
            }
            Ok(v) if layout.mounts.iter().any(|m| m.mount_point == e.mount_point) => {
                layout
                    .skipped
                    .push(skip(format!("{} is mounted there already", v.name)));
            }
            Ok(v) => layout.mounts.push(PlacedMount {
                mount_point: absolute_str(&e.mount_point),
                volume: v.name.clone(),
                device: e.device.clone(),
            }),
            Err(err) => layout.skipped.push(SkippedMount {
                unreadable: true,
                ..skip(format!("{err:#}"))
            }),
        }
    }
    Ok(layout)
}

fn absolute_str(p: &str) -> String {
    String::from_utf8_lossy(&absolute(p.as_bytes())).into_owned()
}

/// Opens the guest as one tree ([`crate::guest::GuestTree`]): the root with every
/// placed filesystem mounted where fstab puts it. A filesystem that cannot be
/// opened is left out with a warning (its mount point shows what lies beneath).
pub fn open_guest(stack: &Stack, replay_journal: bool) -> Result<(OpenFs, GuestLayout)> {
    let (tree, layout) = open_guest_tree(stack, replay_journal)?;
    Ok((OpenFs::new("guest".into(), tree), layout))
}

/// [`open_guest`], keeping the tree's own type (to ask which mount owns an inode).
pub fn open_guest_tree(
    stack: &Stack,
    replay_journal: bool,
) -> Result<(Arc<crate::guest::GuestTree>, GuestLayout)> {
    let mut layout = guest_layout(stack, replay_journal)?;
    let mut mounts = Vec::new();
    let mut placed = Vec::new();
    for m in std::mem::take(&mut layout.mounts) {
        let opened = stack
            .find_volume(&m.volume)
            .and_then(|v| open_fs(v, replay_journal));
        match opened {
            Ok(fs) => {
                mounts.push(crate::guest::Mount {
                    path: m.mount_point.as_bytes().to_vec(),
                    volume: m.volume.clone(),
                    fs: fs.fs,
                });
                placed.push(m);
            }
            Err(e) if placed.is_empty() => return Err(e),
            Err(e) => layout.skipped.push(SkippedMount {
                mount_point: m.mount_point,
                device: m.device,
                why: format!("{e:#}"),
                unreadable: true,
            }),
        }
    }
    let tree = crate::guest::GuestTree::new(mounts).map_err(|e| anyhow!("guest tree: {e}"))?;
    for s in tree.skipped() {
        layout.skipped.push(SkippedMount {
            mount_point: String::new(),
            device: String::new(),
            why: s.clone(),
            unreadable: true,
        });
    }
    layout.mounts = placed;
    Ok((Arc::new(tree), layout))
}

/// Reads a whole file of at most `cap` bytes.
pub fn read_small_file(fs: &dyn fsapi::Filesystem, path: &[u8], cap: u64) -> Result<Vec<u8>> {
    let ino = fs.lookup(path)?;
    let md = fs.metadata(ino)?;
    if md.size > cap {
        bail!("{}: larger than {cap} bytes", String::from_utf8_lossy(path));
    }
    let mut buf = vec![0u8; usize::try_from(md.size)?];
    let n = fs.read_at(ino, 0, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Looks up `path`, following symlinks in the last component too (bounded), the way
/// `cat` and `stat -L` would inside the guest.
pub fn lookup_follow(
    fs: &dyn fsapi::Filesystem,
    path: &[u8],
) -> Result<(Vec<u8>, fsapi::Metadata)> {
    let mut path = path.to_vec();
    for _ in 0..fsapi::MAX_SYMLINK_HOPS {
        let ino = fs.lookup(&path)?;
        let md = fs.metadata(ino)?;
        if md.file_type != fsapi::FileType::Symlink {
            return Ok((path, md));
        }
        let target = fs.read_link(ino)?;
        path = if target.starts_with(b"/") {
            absolute(&target)
        } else {
            let parent = match path.iter().rposition(|b| *b == b'/') {
                Some(i) => path.get(..i).unwrap_or_default().to_vec(),
                None => Vec::new(),
            };
            let mut joined = parent;
            joined.push(b'/');
            joined.extend_from_slice(&target);
            normalize_dots(&joined)
        };
    }
    bail!(
        "{}: too many levels of symbolic links",
        String::from_utf8_lossy(&path)
    )
}

/// Resolves `.` and `..` lexically (used for symlink targets inside the guest).
fn normalize_dots(p: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in p.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::new();
    for c in parts {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Volume name normalisation re-exported for callers that parse names themselves.
pub fn canonical_volume(s: &str) -> String {
    normalize_volume_name(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_specs() {
        assert_eq!(
            Spec::parse("VolGroup00/LogVol00:/etc").unwrap(),
            Spec::OnVolume {
                volume: "VolGroup00/LogVol00".into(),
                path: b"/etc".to_vec()
            }
        );
        assert_eq!(
            Spec::parse("sda1:").unwrap(),
            Spec::OnVolume {
                volume: "sda1".into(),
                path: b"/".to_vec()
            }
        );
        assert_eq!(
            Spec::parse("/dev/sda1:grub//grub.conf").unwrap(),
            Spec::OnVolume {
                volume: "/dev/sda1".into(),
                path: b"/grub/grub.conf".to_vec()
            }
        );
        assert_eq!(
            Spec::parse("/etc/fstab").unwrap(),
            Spec::Guest {
                path: b"/etc/fstab".to_vec()
            }
        );
        assert!(Spec::parse("etc/fstab").is_err());
        assert_eq!(
            normalize_dots(b"/etc/../usr/./share"),
            b"/usr/share".to_vec()
        );
    }
}
