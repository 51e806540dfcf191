//! The whole storage stack of a VM, assembled from its disk files: disks ->
//! partition tables -> LVM2 -> volumes, each volume probed for what it holds.
//!
//! Opening a stack reads only the metadata it needs: partition tables, LVM labels and
//! metadata areas, and the first 68 KiB of each partition for its signature; an LV's
//! signature is read only when something asks what the LV holds.

use crate::partitions::{self, Table, TableKind};
use anyhow::{bail, Context, Result};
use bytesource::{ByteSource, SharedSource, Window};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the user asked to open.
#[derive(Clone, Debug, Default)]
pub struct OpenRequest {
    /// IMAGE: a .vmdk, a .vmx or a raw image.
    pub image: PathBuf,
    /// `--disk` extras, in order.
    pub extra_disks: Vec<PathBuf>,
    /// `--lvm-metadata FILE`.
    pub lvm_metadata: Option<PathBuf>,
    /// Let extents and parents resolve outside the descriptor's folder.
    pub allow_outside_dir: bool,
    /// `--extent-map OLD=NEW`: read renamed extent/parent files.
    pub extent_map: Vec<(String, PathBuf)>,
    /// `--raw`: read an unrecognised .vmdk as a raw disk.
    pub raw: bool,
}

/// One virtual disk of the VM.
pub struct DiskEntry {
    /// Guest-style name: sda, sdb, ...
    pub name: String,
    /// Where it came from (`.vmx` slot, e.g. `scsi0:1`, when known).
    pub slot: Option<String>,
    /// The opened disk.
    pub disk: Arc<vmdk::Disk>,
    /// Its partition table.
    pub table: Table,
}

/// What a volume's first bytes say it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Content {
    /// ext2/3/4, readable.
    Ext,
    /// An LVM2 physical volume.
    Lvm2Pv,
    /// Linux swap.
    Swap,
    /// XFS v4/v5.
    Xfs,
    /// btrfs (not read yet).
    Btrfs,
    /// LUKS encrypted volume.
    Luks,
    /// NTFS (not read yet).
    Ntfs,
    /// FAT (not read yet).
    Fat,
    /// ISO 9660.
    Iso9660,
    /// The container of logical partitions.
    Extended,
    /// All zeros at the start: unused or wiped.
    Empty,
    /// Nothing recognised.
    Unknown,
}

impl Content {
    /// Short name for listings.
    pub fn name(&self) -> &'static str {
        match self {
            Content::Ext => "ext",
            Content::Lvm2Pv => "LVM2_member",
            Content::Swap => "swap",
            Content::Xfs => "xfs",
            Content::Btrfs => "btrfs",
            Content::Luks => "crypto_LUKS",
            Content::Ntfs => "ntfs",
            Content::Fat => "vfat",
            Content::Iso9660 => "iso9660",
            Content::Extended => "extended",
            Content::Empty => "empty",
            Content::Unknown => "unknown",
        }
    }
}

/// Bytes [`probe`] reads at the start of a volume in one request: past the btrfs
/// superblock magic (0x10040) and the ISO 9660 descriptor (0x8001), and enough to
/// hold an LVM label, its metadata area header and (usually) the metadata text, so
/// that the readers that follow find those bytes in the host's page cache: where
/// the disk is far away (NFS) a 68 KiB request costs what a 512-byte one does.
const PROBE_HEAD: usize = 0x11000;

/// Bytes [`probe`] reads first where reads are fast (the page cache, a local
/// disk): every signature tested before the far ones (btrfs, ISO 9660) lies in
/// them (the swap signature ends at 4096), and 8 KiB is what the sector-by-sector
/// fallback reads anyway. The rest of [`PROBE_HEAD`] is read only when nothing
/// near the start matched: 68 KiB zeroed, copied and faulted in per volume cost
/// more than the second request they save here.
const PROBE_HEAD_NEAR: usize = 8192;

/// Identifies what a volume holds from its signature bytes. Reads the first
/// [`PROBE_HEAD`] bytes in one request (where reads are fast, the first
/// [`PROBE_HEAD_NEAR`], and the rest only when nothing near the start matched),
/// and a few small pieces further in (backup superblocks) only when nothing
/// matched there.
///
/// A bad sector near the start (e.g. an LVM metadata area at 4 KiB, whose other
/// copy is at the end of the PV) must not hide what the volume is: when the whole
/// read fails, the first 8 KiB are read sector by sector and the unreadable
/// sectors stay zero (the signature readers below read what they need themselves).
pub fn probe(src: &dyn ByteSource) -> Content {
    let len = usize::try_from(src.len()).unwrap_or(usize::MAX);
    let first = if bytesource::parallel_reads_pay() {
        PROBE_HEAD
    } else {
        PROBE_HEAD_NEAR
    };
    let mut head = vec![0u8; first.min(len)];
    let mut head_complete = true;
    if src.read_at(0, &mut head).is_err() {
        head_complete = false;
        head.truncate(8192.min(len));
        head.fill(0);
        let mut any = false;
        for (i, sector) in head.chunks_mut(512).enumerate() {
            let off = u64::try_from(i.saturating_mul(512)).unwrap_or(u64::MAX);
            if src.read_at(off, sector).is_ok() {
                any = true;
            } else {
                sector.fill(0);
            }
        }
        if !any {
            return Content::Unknown;
        }
    }
    let at = |buf: &[u8], off: usize, sig: &[u8]| buf.get(off..off + sig.len()) == Some(sig);
    let far = |off: u64, sig: &[u8]| {
        if let Some(b) = usize::try_from(off)
            .ok()
            .and_then(|o| head.get(o..o.checked_add(sig.len())?))
        {
            return b == sig;
        }
        let mut b = vec![0u8; sig.len()];
        src.read_at(off, &mut b).is_ok() && b == sig
    };
    if let Some(reader) = crate::filesystems::probe(src) {
        reader.content.clone()
    } else if lvm2::probe(src) {
        Content::Lvm2Pv
    } else if at(&head, 4086, b"SWAPSPACE2") || at(&head, 4086, b"SWAP-SPACE") {
        Content::Swap
    } else if at(&head, 0, b"XFSB") {
        Content::Xfs
    } else if at(&head, 0, b"LUKS\xba\xbe") {
        Content::Luks
    } else if at(&head, 3, b"NTFS    ") {
        Content::Ntfs
    } else if at(&head, 54, b"FAT1") || at(&head, 82, b"FAT32   ") {
        Content::Fat
    } else if far(0x10040, b"_BHRfS_M") {
        Content::Btrfs
    } else if far(0x8001, b"CD001") {
        Content::Iso9660
    } else if let Some(reader) = crate::filesystems::probe_damaged(src) {
        // E.g. the primary ext superblock is gone but a backup is where mke2fs puts it.
        reader.content.clone()
    } else if head_complete && head.iter().all(|b| *b == 0) && {
        // All of PROBE_HEAD must be zeros, as where it was read in one request.
        let whole = PROBE_HEAD.min(len);
        head.len() >= whole || {
            let mut rest = vec![0u8; whole.saturating_sub(head.len())];
            let at = u64::try_from(head.len()).unwrap_or(u64::MAX);
            src.read_at(at, &mut rest).is_ok() && rest.iter().all(|b| *b == 0)
        }
    } {
        Content::Empty
    } else {
        Content::Unknown
    }
}

/// Volumes probed at once by [`probe_all`].
const PROBES_IN_FLIGHT: usize = 8;

/// Probes every volume of `volumes` not probed yet, up to [`PROBES_IN_FLIGHT`] at a
/// time, each on its own thread.
pub fn probe_all(volumes: &[Volume]) {
    let todo: Vec<&Volume> = volumes
        .iter()
        .filter(|v| v.content.get().is_none())
        .collect();
    // Threads pay only where reads are slow (bytesource::parallel_reads_pay).
    if todo.len() < 2 || !bytesource::parallel_reads_pay() {
        todo.iter().for_each(|v| {
            v.content();
        });
        return;
    }
    for batch in todo.chunks(PROBES_IN_FLIGHT) {
        std::thread::scope(|scope| {
            for v in batch {
                scope.spawn(move || {
                    v.content();
                });
            }
        });
    }
}

/// Where a volume comes from.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Origin {
    /// A whole disk without a partition table.
    Disk {
        /// Disk name.
        disk: String,
    },
    /// A partition.
    Partition {
        /// Disk name.
        disk: String,
        /// Partition number.
        number: u32,
    },
    /// An LVM logical volume.
    Lv {
        /// Volume group.
        vg: String,
        /// Logical volume.
        lv: String,
    },
}

/// A volume a SPEC can name.
pub struct Volume {
    /// Canonical name: `sda1`, `sdb`, `VolGroup00/LogVol00`.
    pub name: String,
    /// Where it is.
    pub origin: Origin,
    /// Size in bytes.
    pub size: u64,
    /// Its bytes, or why they cannot be read (missing PV, unsupported segment type).
    pub source: Result<SharedSource, String>,
    /// What it holds: probed on first use ([`Volume::content`]), so opening a stack
    /// with hundreds of LVs does not read the head of every one of them, and naming
    /// one volume reads only that volume (where the disk is far away, every probe of
    /// an unformatted LV is a chain of round trips).
    content: std::sync::OnceLock<Content>,
}

impl Volume {
    fn new(name: String, origin: Origin, size: u64, source: Result<SharedSource, String>) -> Self {
        Volume {
            name,
            origin,
            size,
            source,
            content: std::sync::OnceLock::new(),
        }
    }

    fn with_content(mut self, content: Content) -> Self {
        self.content = std::sync::OnceLock::from(content);
        self
    }

    /// What the volume holds (its signature bytes are read the first time).
    pub fn content(&self) -> &Content {
        self.content.get_or_init(|| match &self.source {
            Ok(s) => probe(&**s),
            Err(_) => Content::Unknown,
        })
    }
}

/// The VM's storage, assembled.
pub struct Stack {
    /// Disks in guest order.
    pub disks: Vec<DiskEntry>,
    /// Result of the LVM scan over every partition and whole disk.
    pub lvm: lvm2::Scan,
    /// Every volume: partitions, whole disks, LVs.
    pub volumes: Vec<Volume>,
    /// Problems worth telling the user about.
    pub warnings: Vec<String>,
}

/// Turns `sda` + 1 into `sdb`; beyond `sdz`, `sdaa` as Linux does.
pub fn disk_name(index: usize) -> String {
    let mut n = index;
    let mut s = Vec::new();
    loop {
        s.push(b'a' + (n % 26) as u8);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    s.reverse();
    format!("sd{}", String::from_utf8_lossy(&s))
}

fn open_disk(path: &Path, req: &OpenRequest) -> Result<vmdk::Disk> {
    let opts = vmdk::OpenOptions {
        allow_extents_outside_dir: req.allow_outside_dir,
        extent_map: req.extent_map.clone(),
        raw: req.raw,
    };
    vmdk::Disk::open_with(path, &opts).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Expands IMAGE and `--disk` into (path, slot) pairs: a `.vmx` lists its disks.
fn disk_paths(req: &OpenRequest) -> Result<Vec<(PathBuf, Option<String>)>> {
    let mut out = Vec::new();
    for p in std::iter::once(&req.image).chain(req.extra_disks.iter()) {
        let is_vmx = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("vmx"));
        if is_vmx {
            let disks = vmdk::vmx::disk_paths(p).map_err(|e| anyhow::anyhow!("{e}"))?;
            if disks.is_empty() {
                bail!("{}: the .vmx lists no present disk", p.display());
            }
            out.extend(disks.into_iter().map(|(slot, path)| (path, Some(slot))));
        } else {
            out.push((p.clone(), None));
        }
    }
    Ok(out)
}

impl Stack {
    /// Opens every disk and discovers every volume. Fails only when a disk cannot be
    /// opened at all; everything further down is reported per object.
    pub fn open(req: &OpenRequest) -> Result<Stack> {
        let mut disks = Vec::new();
        let mut warnings = Vec::new();
        for (i, (path, slot)) in disk_paths(req)?.into_iter().enumerate() {
            let disk = open_disk(&path, req)?;
            warnings.extend(disk.warnings());
            let name = disk_name(i);
            let table = partitions::read_table(&disk);
            warnings.extend(table.warnings.iter().map(|w| format!("{name}: {w}")));
            disks.push(DiskEntry {
                name,
                slot,
                disk: Arc::new(disk),
                table,
            });
        }

        let mut volumes: Vec<Volume> = Vec::new();
        for d in &disks {
            let disk_src: SharedSource = d.disk.clone();
            if d.table.kind == TableKind::None || d.table.partitions.is_empty() {
                volumes.push(Volume::new(
                    d.name.clone(),
                    Origin::Disk {
                        disk: d.name.clone(),
                    },
                    disk_src.len(),
                    Ok(disk_src),
                ));
                continue;
            }
            for p in &d.table.partitions {
                let name = format!("{}{}", d.name, p.number);
                let origin = Origin::Partition {
                    disk: d.name.clone(),
                    number: p.number,
                };
                if !p.readable {
                    // Listed by the table but past the end of the disk: shown, never read.
                    let content = if p.extended {
                        Content::Extended
                    } else {
                        Content::Unknown
                    };
                    volumes.push(
                        Volume::new(
                            name,
                            origin,
                            p.size,
                            Err("the partition runs past the end of the disk".to_string()),
                        )
                        .with_content(content),
                    );
                    continue;
                }
                let src: SharedSource = match Window::new(disk_src.clone(), p.start, p.size) {
                    Ok(w) => Arc::new(w),
                    Err(e) => {
                        warnings.push(format!("{name}: {e}"));
                        continue;
                    }
                };
                let v = Volume::new(name, origin, p.size, Ok(src));
                volumes.push(if p.extended {
                    v.with_content(Content::Extended)
                } else {
                    v
                });
            }
        }
        // Every partition and whole disk is probed (the LVM scan needs to know which
        // are PVs), all at once: where the disk is far away each probe is a round trip.
        probe_all(&volumes);
        let lvm_devices: Vec<lvm2::Device> = volumes
            .iter()
            .filter(|v| *v.content() == Content::Lvm2Pv)
            .filter_map(|v| {
                Some(lvm2::Device {
                    name: v.name.clone(),
                    source: v.source.as_ref().ok()?.clone(),
                })
            })
            .collect();

        let lvm = match &req.lvm_metadata {
            Some(file) => {
                // Non-blocking, regular files only, capped: a FIFO or /dev/zero is refused.
                let bytes = bytesource::read_small_file(file, 16 << 20)
                    .with_context(|| format!("--lvm-metadata {}: cannot read", file.display()))?;
                let text = String::from_utf8_lossy(&bytes);
                lvm2::scan_with_metadata(&lvm_devices, &text)
                    .map_err(|e| anyhow::anyhow!("--lvm-metadata {}: {e}", file.display()))?
            }
            None => lvm2::scan(&lvm_devices),
        };
        warnings.extend(lvm.warnings.iter().cloned());
        warnings.extend(lvm.errors.iter().cloned());
        for vg in &lvm.vgs {
            for lv in vg.lvs().iter().filter(|lv| lv.visible) {
                let name = format!("{}/{}", vg.name(), lv.name);
                let source = match &lv.readable {
                    Err(why) => Err(why.clone()),
                    Ok(()) => vg
                        .open_lv(&lv.name)
                        .map(|l| Arc::new(l) as SharedSource)
                        .map_err(|e| e.to_string()),
                };
                // Probed when first asked ([`Volume::content`]), not here.
                volumes.push(Volume::new(
                    name,
                    Origin::Lv {
                        vg: vg.name().to_string(),
                        lv: lv.name.clone(),
                    },
                    lv.size,
                    source,
                ));
            }
        }
        // Read errors the disks survived while the tables, LVM and filesystems above
        // were probed (a grain table read from its redundant copy).
        for d in &disks {
            for w in d.disk.read_warnings() {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
        }
        Ok(Stack {
            disks,
            lvm,
            volumes,
            warnings,
        })
    }

    /// Read errors survived so far, one line each: bad sectors under a partition
    /// table that its other copy made good (backup GPT), grain tables read from
    /// their redundant copies and LVM metadata areas whose other copy served. Nothing is lost, but the disk is failing, so a
    /// copying command prints these and counts them in its exit status. Grows as
    /// the disks are read (grain tables are read on demand).
    pub fn read_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in &self.disks {
            out.extend(
                d.table
                    .warnings
                    .iter()
                    .filter(|w| w.is_read_error())
                    .map(|w| format!("{}: {w}", d.name)),
            );
            out.extend(d.disk.read_warnings());
        }
        // Bad sectors in an LVM metadata area (the other copy served, or none did).
        out.extend(self.lvm.read_errors.iter().cloned());
        out
    }

    /// Finds a volume by any of the names a user may type for it.
    pub fn find_volume(&self, spec: &str) -> Result<&Volume> {
        if let Some(label) = spec.strip_prefix("LABEL=") {
            return self.find_by_fs(spec, |i| i.label == label);
        }
        if let Some(uuid) = spec.strip_prefix("UUID=") {
            let uuid = uuid.to_ascii_lowercase();
            return self.find_by_fs(spec, |i| i.uuid == uuid);
        }
        if let Some(uuid) = spec.strip_prefix("PARTUUID=") {
            let uuid = uuid.to_ascii_lowercase();
            return self
                .find_partition(spec, |p| p.part_uuid.is_some_and(|g| g.to_string() == uuid));
        }
        if let Some(name) = spec.strip_prefix("PARTLABEL=") {
            return self.find_partition(spec, |p| p.gpt_name.as_deref() == Some(name));
        }
        let want = normalize_volume_name(spec);
        if let Some(v) = self.volumes.iter().find(|v| v.name == want) {
            return Ok(v);
        }
        // A disk that has partitions is still addressable as a whole.
        if let Some(d) = self.disks.iter().find(|d| d.name == want) {
            let _ = d;
            bail!(
                "{spec}: this disk has a partition table; name a partition ({}) or an LV",
                self.volume_names()
            );
        }
        let mut hint = String::new();
        if !self.lvm.errors.is_empty() {
            hint = format!(" (LVM problems seen: {})", self.lvm.errors.join("; "));
        }
        bail!(
            "{spec}: no such volume; volumes here: {}{hint}",
            self.volume_names()
        )
    }

    /// The volume of the partition `pred` picks (GPT `PARTUUID=` / `PARTLABEL=`).
    fn find_partition(
        &self,
        spec: &str,
        pred: impl Fn(&partitions::Partition) -> bool,
    ) -> Result<&Volume> {
        for d in &self.disks {
            if let Some(p) = d.table.partitions.iter().find(|p| pred(p)) {
                let name = format!("{}{}", d.name, p.number);
                if let Some(v) = self.volumes.iter().find(|v| v.name == name) {
                    return Ok(v);
                }
            }
        }
        bail!("{spec}: no partition with that GPT unique GUID or name; see `vmdkrecover info`")
    }

    fn find_by_fs(&self, spec: &str, pred: impl Fn(&fsapi::FsInfo) -> bool) -> Result<&Volume> {
        probe_all(&self.volumes);
        for v in &self.volumes {
            if crate::filesystems::reader_for(v.content()).is_none() {
                continue;
            }
            let Ok(src) = &v.source else { continue };
            if crate::filesystems::identify(src.clone()).is_some_and(|i| pred(&i)) {
                return Ok(v);
            }
        }
        bail!("{spec}: no filesystem with that label or UUID; see `vmdkrecover info`")
    }

    /// "sda1, VolGroup00/LogVol00, ..." for error messages.
    pub fn volume_names(&self) -> String {
        let names: Vec<&str> = self
            .volumes
            .iter()
            .filter(|v| !matches!(v.content(), Content::Extended | Content::Lvm2Pv))
            .map(|v| v.name.as_str())
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    }
}

/// Maps the spellings a user may type to our canonical volume names:
/// `/dev/VG/LV` and `/dev/mapper/VG-LV` to `VG/LV`, `/dev/sda1` and `/dev/vda1`,
/// `/dev/hda1`, `/dev/xvda1` to `sda1`, `p1` to `sda1`.
pub fn normalize_volume_name(spec: &str) -> String {
    let s = spec.strip_prefix("/dev/").unwrap_or(spec);
    if let Some(dm) = s.strip_prefix("mapper/") {
        // device-mapper doubles dashes inside VG and LV names and joins with one.
        return match lvm2::split_mapper_name(dm) {
            Some((vg, lv)) => format!("{vg}/{lv}"),
            None => dm.to_string(),
        };
    }
    if let Some(num) = s.strip_prefix('p') {
        if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) {
            return format!("sda{num}");
        }
    }
    for prefix in ["xvd", "vd", "hd"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            if rest.starts_with(|c: char| c.is_ascii_lowercase()) {
                return format!("sd{rest}");
            }
        }
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(disk_name(0), "sda");
        assert_eq!(disk_name(25), "sdz");
        assert_eq!(disk_name(26), "sdaa");
        assert_eq!(
            normalize_volume_name("/dev/VolGroup00/LogVol00"),
            "VolGroup00/LogVol00"
        );
        assert_eq!(
            normalize_volume_name("/dev/mapper/VolGroup00-LogVol00"),
            "VolGroup00/LogVol00"
        );
        assert_eq!(
            normalize_volume_name("/dev/mapper/my--vg-my--lv"),
            "my-vg/my-lv"
        );
        assert_eq!(normalize_volume_name("p1"), "sda1");
        assert_eq!(normalize_volume_name("/dev/vda2"), "sda2");
        assert_eq!(normalize_volume_name("/dev/sdb"), "sdb");
    }
}
