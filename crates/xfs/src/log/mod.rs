//! XFS log recovery, in memory: find the head and tail of the log, reassemble the
//! committed transactions between them, and replay their items onto an overlay of
//! the data device, as the kernel does at mount (fs/xfs/xfs_log_recover.c). Nothing
//! is ever written to the device.
//!
//! What is replayed: buffer items (with the two-pass cancel table and the v5 LSN
//! ordering check; replayed v5 metadata gets its LSN and CRC restamped as the
//! kernel's write verifiers do), inode buffers (di_next_unlinked only), inode items
//! (the host-order `xfs_log_dinode` converted to the on-disk inode, data and attr
//! forks, bmbt roots converted to `xfs_bmdr`, device numbers, v5 CRC), and icreate
//! items (fresh inode chunks).
//!
//! Not replayed, each with a warning in [`Recovery::warnings`]: dquot and quotaoff
//! items (the kernel replays dquots only when quotas are enabled at mount); the
//! effects of intents (EFI, RUI, CUI, BUI, ATTRI, XMI) whose done item is missing,
//! which the kernel would finish at mount; the freeing of inodes left on the AGI
//! unlinked lists (deleted while open; the kernel frees them after replay, they
//! have no directory entry); the bmbt owner change of swapped extents. The kernel
//! also rewrites the superblock counters at mount, which is not done here.
//!
//! A damaged record stops replay at the last transaction committed before it, with
//! a warning saying what the kernel would do. Logs written by big-endian hosts
//! (`h_fmt` other than little-endian Linux) and external log devices are not read.
//! Head and tail are found as xfsprogs' libxlog does (what `xfs_logprint` prints);
//! the kernel's extra torn-write check at the head (`xlog_verify_head`) shows here
//! as a CRC warning on the last record instead of a moved head.
//!
//! Tested (crates/xfs/tests/log_recovery.rs) against dirty logs the kernel wrote
//! (scripts/fixtures/xfs-log.sh): head, tail, transactions and items by type equal
//! `xfs_logprint -t`'s, and every sector replay changes equals the kernel's own
//! recovery of the same image, except the sectors the kernel's unlinked-inode
//! processing changes afterwards. V4 dirty logs are implemented but untested (the
//! test kernel mounts no V4).
//!
//! Module map: `record` (ring, record headers, cycle data), `head_tail`,
//! `transaction` (op headers, reassembly), `items` (item formats), `replay`,
//! `overlay` (all private), plus `sb` (superblock fields); checksums come from the crate's `crc` module.

mod head_tail;
mod items;
mod overlay;
mod record;
mod replay;
mod sb;
mod transaction;

use std::sync::Arc;

use bytesource::{field, SharedSource};
use fsapi::Error;

pub use overlay::OverlaySource;

/// Largest log we read: the kernel's own limit is 2 GiB (XFS_MAX_LOG_BYTES).
const MAX_LOG_BYTES: u64 = 2 << 30;

/// Where the log is and how it is laid out, from the superblock.
#[derive(Clone, Debug)]
pub struct LogGeometry {
    /// 512-byte sector of the log start on the data device (XFS_FSB_TO_DADDR(sb_logstart)).
    pub log_start_daddr: u64,
    /// `sb_logblocks`.
    pub log_blocks: u32,
    /// `sb_blocksize`.
    pub block_size: u32,
    /// `sb_logsectsize`, or 512 when 0.
    pub log_sector_size: u32,
    /// 1 or 2 (LOGV2 in sb_versionnum).
    pub version: u32,
    /// `sb_logsunit`.
    pub log_stripe_unit: u32,
    /// A v5 (CRC) filesystem.
    pub is_v5: bool,
    /// `sb_uuid`.
    pub uuid: [u8; 16],
}

/// The outcome of recovery.
#[non_exhaustive]
pub struct Recovery {
    /// The log held changes that needed replay.
    pub was_dirty: bool,
    /// The data device with the replayed buffers in place (the input when clean).
    pub device: SharedSource,
    /// What could not be replayed, or what the kernel would do differently.
    pub warnings: Vec<String>,
    /// Log block of the head (as `xfs_logprint` prints it).
    pub head_block: u64,
    /// Log block of the tail.
    pub tail_block: u64,
    /// What replay did: transactions, items by type, skipped items.
    pub summary: Vec<String>,
    /// Daddrs (512-byte sectors) whose contents replay changed.
    pub changed_sectors: Vec<u64>,
}

impl std::fmt::Debug for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovery")
            .field("was_dirty", &self.was_dirty)
            .field("head_block", &self.head_block)
            .field("tail_block", &self.tail_block)
            .field("warnings", &self.warnings)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

/// Recovers the log described by `geom` on `dev` in memory.
pub fn recover(dev: SharedSource, geom: &LogGeometry) -> Result<Recovery, Error> {
    let log_bytes = u64::from(geom.log_blocks)
        .checked_mul(u64::from(geom.block_size))
        .ok_or_else(|| Error::corrupt("log", "size overflows"))?;
    if log_bytes > MAX_LOG_BYTES {
        return Err(Error::unsupported(
            "log",
            format!("log of {log_bytes} bytes is larger than 2 GiB"),
        ));
    }
    if geom.block_size < 512 || !geom.block_size.is_power_of_two() || log_bytes < 1024 {
        return Err(Error::corrupt("log", "block size or log size out of range"));
    }
    let start = geom
        .log_start_daddr
        .checked_mul(512)
        .ok_or_else(|| Error::corrupt("log", "start overflows"))?;
    match start.checked_add(log_bytes) {
        Some(end) if end <= dev.len() => {}
        _ => {
            return Err(Error::corrupt_at(
                "log",
                start,
                format!("log of {log_bytes} bytes runs past the end of the device"),
            ))
        }
    }
    let ring = record::LogRing {
        dev: &*dev,
        start,
        bbs: log_bytes / 512,
        logv2: geom.version == 2,
        uuid: geom.uuid,
        is_v5: geom.is_v5,
        window: Default::default(),
    };
    let ht = head_tail::find_tail(&ring)?;
    let mut warnings = Vec::new();
    let mut summary = Vec::new();
    if ht.clean || ht.head == ht.tail {
        return Ok(Recovery {
            was_dirty: false,
            device: dev,
            warnings,
            head_block: ht.head,
            tail_block: ht.tail,
            summary: vec![if ht.empty {
                "log: never written".into()
            } else {
                "log: clean".into()
            }],
            changed_sectors: Vec::new(),
        });
    }

    // Read the records from tail to head, reassembling transactions.
    let dist = if ht.head >= ht.tail {
        ht.head.saturating_sub(ht.tail)
    } else {
        ring.bbs.saturating_sub(ht.tail).saturating_add(ht.head)
    };
    let mut asm = transaction::Assembler::default();
    let mut committed = Vec::new();
    let mut walked = 0u64;
    let mut blk = ht.tail;
    let mut records = 0u64;
    while walked < dist {
        let rec = match record::read_record(&ring, blk) {
            Ok(r) => r,
            Err(e) => {
                warnings.push(format!(
                    "log: {e}; replay stops at the last transaction committed before it (the kernel would refuse to mount)"
                ));
                break;
            }
        };
        if rec.bad_crc {
            if ring.is_v5 {
                warnings.push(format!(
                    "log: record at log block {blk} has a bad CRC; replay stops at the last transaction committed before it \
                     (the kernel treats a bad record among the last 8 before the head as a torn write and recovers up to it, \
                     and refuses to mount otherwise)"
                ));
                break;
            }
            warnings.push(format!(
                "log: record at log block {blk} has a bad CRC (advisory on a v4 filesystem)"
            ));
        }
        if walked.saturating_add(rec.total_blocks) > dist {
            warnings.push(format!(
                "log: record at log block {blk} runs past the head (block {}); replay stops before it",
                ht.head
            ));
            break;
        }
        if let Err(e) = asm.process_record(
            &rec.data,
            rec.header.num_logops,
            rec.header.lsn,
            blk,
            &mut committed,
        ) {
            warnings.push(format!("log: {e}; replay stops at the last transaction committed before it (the kernel would refuse to mount)"));
            break;
        }
        records = records.saturating_add(1);
        walked = walked.saturating_add(rec.total_blocks);
        blk = blk
            .saturating_add(rec.total_blocks)
            .checked_rem(ring.bbs)
            .unwrap_or(0);
    }

    // Parse items; a transaction with a bad item stops replay there.
    let mut parsed = Vec::new();
    for t in committed {
        let mut its = Vec::new();
        let mut bad = None;
        for raw in &t.items {
            match items::parse(raw) {
                Ok(p) => its.push(p),
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = bad {
            warnings.push(format!(
                "log: transaction {:#x} at LSN {}/{}: {e}; replay stops before it (the kernel would refuse to mount)",
                t.tid,
                t.lsn >> 32,
                t.lsn & 0xffff_ffff
            ));
            break;
        }
        parsed.push((t, its));
    }

    let sbi = sb::read_sb(&*dev, geom.is_v5)?;
    // Replay cannot change more than the log holds, except icreate, which
    // initialises whole inode chunks from a 28-byte item: cap the overlay at the log
    // size, at least 64 MiB, at most 2 GiB.
    let mut ov = overlay::Overlay::new(dev.clone(), log_bytes.clamp(64 << 20, MAX_LOG_BYTES));
    let mut rp = replay::Replayer::new(&mut ov, &sbi, geom.is_v5);
    rp.pass1(&parsed);
    for (t, its) in &parsed {
        if let Err(e) = rp.pass2(t, its) {
            rp.warnings.push(format!(
                "{e}; replay stops in transaction {:#x} at LSN {}/{} (the kernel would refuse to mount)",
                t.tid,
                t.lsn >> 32,
                t.lsn & 0xffff_ffff
            ));
            break;
        }
    }
    let intents = rp.unfinished_intents();
    let unlinked = unlinked_inodes(rp.ov, &sbi);
    warnings.append(&mut rp.warnings);
    warnings.extend(intents);
    let st = &rp.stats;
    summary.push(format!(
        "log: {records} records, {} transactions replayed, {} left uncommitted",
        st.transactions,
        asm.uncommitted()
    ));
    let by_type: Vec<String> = st.items.iter().map(|(k, v)| format!("{k} {v}")).collect();
    summary.push(format!("log: items: {}", by_type.join(", ")));
    summary.push(format!(
        "log: transaction headers count {} items",
        st.header_items
    ));
    summary.push(format!(
        "log: buffers replayed {}, cancelled {}, newer on disk {}; inodes replayed {}, cancelled {}, newer on disk {}; icreate {}; quota items skipped {}",
        st.bufs_replayed, st.bufs_cancelled, st.bufs_newer_on_disk, st.inodes_replayed, st.inodes_cancelled,
        st.inodes_newer_on_disk, st.icreates, st.skipped_quota
    ));
    if st.skipped_quota > 0 {
        warnings.push(format!(
            "log: {} dquot/quotaoff items not replayed (quota accounting may be stale)",
            st.skipped_quota
        ));
    }
    warnings.extend(unlinked);
    let changed = ov.daddrs();
    summary.push(format!("log: {} sectors changed", ov.sector_count()));
    let src = ov.into_source();
    Ok(Recovery {
        was_dirty: true,
        device: Arc::new(src),
        warnings,
        head_block: ht.head,
        tail_block: ht.tail,
        summary,
        changed_sectors: changed,
    })
}

/// Most AGs whose AGI is checked for unlinked inodes.
const MAX_AGI_SCAN: u32 = 65536;

/// After replay the kernel frees the inodes left on the AGI unlinked lists (open
/// files deleted before the crash: xlog_recover_process_iunlinks). That runs
/// transactions, which a read-only recovery does not; such inodes have no
/// directory entry, so they are invisible in the tree. Report them.
fn unlinked_inodes(ov: &overlay::Overlay, sbi: &sb::SbInfo) -> Vec<String> {
    let mut out = Vec::new();
    let sect = u64::from(sbi.sectsize.max(512));
    let bb_per_block = u64::from(sbi.blocksize / 512);
    for ag in 0..sbi.agcount.min(MAX_AGI_SCAN) {
        // XFS_AGI_DADDR: the third sector of the AG.
        let off = u64::from(ag)
            .saturating_mul(u64::from(sbi.agblocks))
            .saturating_mul(bb_per_block)
            .saturating_mul(512)
            .saturating_add(sect.saturating_mul(2));
        let mut agi = [0u8; 512];
        // `agi` is one 512-byte sector: agi_magicnum and agi_unlinked[64]
        // (bytes 40..296) are inside it.
        if ov.read(off, &mut agi).is_err() || field::be_u32(&agi, 0) != Some(0x5841_4749) {
            continue;
        }
        // agi_unlinked[64] at byte 40, NULLAGINO when empty.
        let heads = (0..64usize)
            .filter(|i| {
                field::be_u32(&agi, 40usize.saturating_add(i.saturating_mul(4)))
                    .is_some_and(|v| v != u32::MAX)
            })
            .count();
        if heads > 0 {
            out.push(format!(
                "log: AG {ag} has {heads} non-empty unlinked inode list(s): inodes deleted while open; \
                 the kernel frees them after replay at mount, this recovery leaves them allocated (they have no directory entry)"
            ));
        }
    }
    out
}
