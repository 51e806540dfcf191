//! The guest's `/etc/fstab`: which of its lines name a filesystem we can place in
//! the guest tree, and why the others are left out (swap, pseudo and network
//! filesystems, bind mounts).

/// One fstab line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    /// First field: `LABEL=x`, `UUID=x`, `PARTUUID=x`, `/dev/...`, `tmpfs`, `host:/path`.
    pub device: String,
    /// Second field, unescaped.
    pub mount_point: String,
    /// Third field.
    pub fs_type: String,
    /// Fourth field (may be empty).
    pub options: String,
}

/// fstab escapes blanks as octal (`\040` space, `\011` tab, `\134` backslash).
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\134", "\\")
}

/// Parses the text; comments, blank lines and lines with fewer than two fields are
/// skipped.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(device), Some(mp)) = (fields.next(), fields.next()) else {
            continue;
        };
        out.push(Entry {
            line: i.saturating_add(1),
            device: unescape(device),
            mount_point: unescape(mp),
            fs_type: fields.next().unwrap_or("auto").to_string(),
            options: fields.next().unwrap_or("").to_string(),
        });
    }
    out
}

/// Filesystem types that never live on a volume of the VM's disks.
const NOT_ON_DISK: &[&str] = &[
    "swap",
    "tmpfs",
    "proc",
    "sysfs",
    "devpts",
    "devtmpfs",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "hugetlbfs",
    "mqueue",
    "pstore",
    "efivarfs",
    "configfs",
    "autofs",
    "binfmt_misc",
    "fusectl",
    "rpc_pipefs",
    "nfs",
    "nfs4",
    "cifs",
    "smbfs",
    "smb3",
    "9p",
    "glusterfs",
    "ceph",
    "sshfs",
    "davfs",
    "overlay",
    "none",
];

impl Entry {
    /// Why this line is not a filesystem on the VM's disks to place in the tree, or
    /// `None` when it is one.
    pub fn not_placeable(&self) -> Option<String> {
        if self.fs_type == "swap" {
            return Some("swap space".into());
        }
        if !self.mount_point.starts_with('/') {
            return Some(format!("{} is not a mount point", self.mount_point));
        }
        let opts: Vec<&str> = self.options.split(',').collect();
        if opts.iter().any(|o| *o == "bind" || *o == "rbind") {
            return Some("bind mount".into());
        }
        let t = self.fs_type.as_str();
        if NOT_ON_DISK.contains(&t) || t.starts_with("fuse") {
            return Some(format!("{t}: not a filesystem on the VM's disks"));
        }
        let d = self.device.as_str();
        let by_name = ["LABEL=", "UUID=", "PARTUUID=", "PARTLABEL="]
            .iter()
            .any(|p| d.starts_with(p));
        if !by_name && !d.starts_with("/dev/") {
            return Some(format!("{d}: not a local device"));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_classifies() {
        let e = parse(
            "# c\n\nUUID=ab /boot xfs defaults 0 0\n/dev/mapper/rhel-root / xfs defaults 0 0\n\
             tmpfs /tmp tmpfs defaults 0 0\nnfs01:/x /mnt/x nfs defaults 0 0\n\
             /var/lib /opt none bind 0 0\nLABEL=my\\040disk /srv/my\\040data ext4\n\
             UUID=cd none swap defaults 0 0\n",
        );
        assert_eq!(e.len(), 7);
        assert_eq!(e[0].line, 3);
        assert_eq!(e[0].not_placeable(), None);
        assert_eq!(e[1].not_placeable(), None);
        assert!(e[2].not_placeable().unwrap().contains("tmpfs"));
        assert!(e[3].not_placeable().is_some());
        assert_eq!(e[4].not_placeable().unwrap(), "bind mount");
        assert_eq!(e[5].device, "LABEL=my disk");
        assert_eq!(e[5].mount_point, "/srv/my data");
        assert!(e[6].not_placeable().is_some());
    }
}
