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
        let what = match vol.content {
            Content::Lvm2Pv => "an LVM2 physical volume; name one of its logical volumes (VG/LV) instead".to_string(),
            Content::Extended => "the extended partition container; name a logical partition (sda5, ...)".to_string(),
            Content::Swap => "swap space, not a filesystem".to_string(),
            Content::Empty => "empty (all zeros at the start)".to_string(),
            Content::Unknown => {
                "no filesystem vmdkrecover recognises (no ext, LVM2, swap, XFS, btrfs, LUKS, NTFS or FAT signature; damaged superblock?)"
                    .to_string()
            }
            ref c => format!(
                "{}, which vmdkrecover does not read yet (only {})",
                c.name(),
                filesystems::readable_kinds()
            ),
        };
        anyhow!("{}: {what}", vol.name)
    };
    if filesystems::reader_for(&vol.content).is_none() {
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
            })
        }
        Spec::Guest { path } => {
            let mounts = guest_mounts(stack, replay_journal)?;
            let (mp, vol) = mounts
                .iter()
                .filter(|(mp, _)| is_under(path, mp.as_bytes()))
                .max_by_key(|(mp, _)| mp.len())
                .ok_or_else(|| anyhow!("no mount covers {}", String::from_utf8_lossy(path)))?;
            let inner = if mp == "/" {
                path.clone()
            } else {
                absolute(path.get(mp.len()..).unwrap_or_default())
            };
            let volume = stack.find_volume(vol)?;
            let fs = open_fs(volume, replay_journal)?;
            let display = format!("{}:{}", volume.name, String::from_utf8_lossy(&inner));
            Ok(Target {
                fs,
                path: inner,
                display,
            })
        }
    }
}

fn is_under(path: &[u8], mount: &[u8]) -> bool {
    mount == b"/"
        || path == mount
        || (path.starts_with(mount) && path.get(mount.len()) == Some(&b'/'))
}

/// The guest's mounts: the root is the ext volume with an /etc/fstab, and its fstab
/// places the others. Returns (mount point, canonical volume name).
pub fn guest_mounts(stack: &Stack, replay_journal: bool) -> Result<Vec<(String, String)>> {
    let mut root = None;
    for v in stack
        .volumes
        .iter()
        .filter(|v| filesystems::reader_for(&v.content).is_some())
    {
        let Ok(fs) = open_fs(v, replay_journal) else {
            continue;
        };
        if let Ok(text) = read_small_file(&*fs.fs, b"/etc/fstab", 1 << 20) {
            root = Some((v.name.clone(), text));
            break;
        }
    }
    let (root_name, fstab) = root.ok_or_else(|| {
        anyhow!(
            "no volume holds /etc/fstab, so there is no guest view; name a volume instead (VOLUME:PATH; volumes here: {})",
            stack.volume_names()
        )
    })?;
    let mut mounts = vec![("/".to_string(), root_name.clone())];
    for line in String::from_utf8_lossy(&fstab).lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(dev), Some(mp)) = (fields.first(), fields.get(1)) else {
            continue;
        };
        if !mp.starts_with('/') || *mp == "/" {
            continue;
        }
        let dev = fstab_unescape(dev);
        let found =
            if dev.starts_with("LABEL=") || dev.starts_with("UUID=") || dev.starts_with("/dev/") {
                stack.find_volume(&dev).ok().map(|v| v.name.clone())
            } else {
                None
            };
        if let Some(name) = found {
            if name != root_name {
                mounts.push((fstab_unescape(mp), name));
            }
        }
    }
    Ok(mounts)
}

/// fstab escapes spaces as `\040`.
fn fstab_unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t")
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
        assert!(is_under(b"/boot/grub", b"/boot"));
        assert!(!is_under(b"/bootx", b"/boot"));
    }
}
