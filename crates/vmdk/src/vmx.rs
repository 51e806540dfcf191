//! The disks a `.vmx` (VMware virtual machine configuration) lists.
//!
//! A `.vmx` is `key = "value"` lines; keys are case-insensitive. A disk is a device
//! `<kind><bus>:<unit>` (kind `scsi`, `sata`, `ide`, `nvme`) with `.fileName`; it
//! counts when its `.present` (and its controller's `<kind><bus>.present`) is not
//! `FALSE` and its `.deviceType` is not a CD-ROM. Disks are returned in the order a
//! Linux guest names them `sda`, `sdb`, ...: SCSI controllers first, then SATA, IDE,
//! NVMe; within a kind by bus, then unit.

use crate::Error;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Largest `.vmx` read.
const MAX_VMX_BYTES: u64 = 10 * 1024 * 1024;

fn kind_rank(kind: &str) -> Option<u8> {
    match kind {
        "scsi" => Some(0),
        "sata" => Some(1),
        "ide" => Some(2),
        "nvme" => Some(3),
        _ => None,
    }
}

/// Parses `.vmx` text into lower-cased keys and unquoted values.
pub fn parse(text: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .map(|r| r.strip_suffix('"').unwrap_or(r))
            .unwrap_or(v);
        map.insert(k.trim().to_ascii_lowercase(), v.to_string());
    }
    map
}

/// Splits `scsi0:1` into (`scsi`, 0, 1).
fn device(dev: &str) -> Option<(&str, u32, u32)> {
    let (ctl, unit) = dev.split_once(':')?;
    let digits = ctl.find(|c: char| c.is_ascii_digit())?;
    let (kind, bus) = ctl.split_at(digits);
    Some((kind, bus.parse().ok()?, unit.parse().ok()?))
}

/// Lists the present hard disks of the `.vmx` at `vmx_path`, as (`"scsi0:0"`, path),
/// in guest order; relative file names resolve beside the `.vmx`.
pub fn disk_paths(vmx_path: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let name = crate::file_name(vmx_path);
    // Opened like every input: a FIFO or device is refused, the size is capped.
    let bytes = bytesource::read_small_file(vmx_path, MAX_VMX_BYTES)
        .map_err(|e| Error::open(&name, None, e))?;
    let text = String::from_utf8_lossy(&bytes);
    let map = parse(&text);
    let dir = vmx_path.parent().unwrap_or(Path::new("."));
    let mut disks: Vec<((u8, u32, u32), String, PathBuf)> = Vec::new();
    for (key, value) in &map {
        let Some(dev) = key.strip_suffix(".filename") else {
            continue;
        };
        let Some((kind, bus, unit)) = device(dev) else {
            continue;
        };
        let Some(rank) = kind_rank(kind) else {
            continue;
        };
        let off = |k: &str| map.get(k).is_some_and(|v| v.eq_ignore_ascii_case("false"));
        if off(&format!("{dev}.present")) || off(&format!("{kind}{bus}.present")) {
            continue;
        }
        let dtype = map
            .get(&format!("{dev}.devicetype"))
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default();
        if dtype.contains("cdrom") || value.to_ascii_lowercase().ends_with(".iso") {
            continue;
        }
        if value.is_empty() || dtype.contains("passthru") {
            continue;
        }
        let p = Path::new(value);
        let path = if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        };
        disks.push(((rank, bus, unit), dev.to_string(), path));
    }
    disks.sort_by_key(|d| d.0);
    Ok(disks.into_iter().map(|(_, d, p)| (d, p)).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn lists_present_disks_in_guest_order() {
        let dir = tempfile::tempdir().unwrap();
        let vmx = dir.path().join("vm.vmx");
        std::fs::write(
            &vmx,
            "config.version = \"8\"\n\
             scsi0.present = \"TRUE\"\n\
             scsi0:1.fileName = \"data.vmdk\"\n\
             scsi0:0.fileName = \"web01.vmdk\"\n\
             scsi0:0.present = \"TRUE\"\n\
             ide1:0.fileName = \"/iso/centos.iso\"\n\
             ide1:0.deviceType = \"cdrom-image\"\n\
             ide0:0.fileName = \"old.vmdk\"\n\
             sata0:0.fileName = \"gone.vmdk\"\n\
             sata0:0.present = \"FALSE\"\n\
             scsi1.present = \"FALSE\"\n\
             scsi1:0.fileName = \"off.vmdk\"\n\
             SCSI2:0.FILENAME = \"/vmfs/volumes/x/abs.vmdk\"\n",
        )
        .unwrap();
        let disks = disk_paths(&vmx).unwrap();
        let names: Vec<&str> = disks.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(names, ["scsi0:0", "scsi0:1", "scsi2:0", "ide0:0"]);
        assert_eq!(disks[0].1, dir.path().join("web01.vmdk"));
        assert_eq!(disks[2].1, PathBuf::from("/vmfs/volumes/x/abs.vmdk"));
    }
}
