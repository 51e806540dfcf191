//! Allocation group headers: the AGF ("XAGF", free space) and AGI ("XAGI", inodes)
//! in the second and third sectors of each AG (xfs_format.h struct xfs_agf,
//! struct xfs_agi). Only checked at open (magic, sequence number, V5 CRC), so
//! `info` can warn about damaged AGs; listing and reading never need them. Free
//! counts in `info` come from the superblock instead.

use crate::bytes::us;
use crate::crc;
use crate::Filesystem;
use bytesource::field::be_u32;

const AGF_MAGIC: u32 = 0x5841_4746;
const AGI_MAGIC: u32 = 0x5841_4749;
/// offsetof(struct xfs_agf, agf_crc) and offsetof(struct xfs_agi, agi_crc).
const AGF_CRC_OFF: usize = 216;
const AGI_CRC_OFF: usize = 312;
/// AGs checked at open (more would make open slow on a huge filesystem).
const MAX_CHECKED: u32 = 256;

/// AG headers read at once: where the disk is far away (NFS) each read is a round
/// trip, and open must not cost one per AG.
const IN_FLIGHT: usize = 16;

pub(crate) fn check(fs: &Filesystem) {
    let sb = &fs.sb;
    let sect = u64::from(sb.sect_size);
    let sect_len = us(u32::from(sb.sect_size));
    let ags: Vec<u32> = (0..sb.agcount.min(MAX_CHECKED)).collect();
    // One read of the AGF and AGI sectors of an AG.
    let read_head = |agno: u32| -> Option<(u32, u64, Result<Vec<u8>, fsapi::Error>)> {
        let base = sb.fsb_to_byte(u64::from(agno) << sb.agblklog)?;
        let pos = base.saturating_add(sect);
        let mut buf = vec![0u8; sect_len.saturating_mul(2)];
        let r = fs
            .read_dev(pos, &mut buf, &|| format!("AG {agno} AGF and AGI"))
            .map(|()| buf);
        Some((agno, pos, r))
    };
    // In parallel only where reads are slow: from the page cache, threads cost
    // more than the reads.
    let in_flight = if bytesource::parallel_reads_pay() {
        IN_FLIGHT
    } else {
        1
    };
    for batch in ags.chunks(in_flight) {
        let heads: Vec<(u32, u64, Result<Vec<u8>, fsapi::Error>)> = if in_flight < 2 {
            batch.iter().filter_map(|&agno| read_head(agno)).collect()
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = batch
                    .iter()
                    .map(|&agno| scope.spawn(move || read_head(agno)))
                    .collect();
                handles
                    .into_iter()
                    .filter_map(|h| h.join().ok().flatten())
                    .collect()
            })
        };
        for (agno, first, head) in heads {
            let head = match head {
                Ok(h) => h,
                Err(e) => {
                    fs.warn(e.to_string());
                    continue;
                }
            };
            for (idx, magic, crc_off, what) in [
                (0usize, AGF_MAGIC, AGF_CRC_OFF, "AGF"),
                (1, AGI_MAGIC, AGI_CRC_OFF, "AGI"),
            ] {
                let pos = first.saturating_add(sect.saturating_mul(idx as u64));
                let obj = || format!("AG {agno} {what}");
                let at = sect_len.saturating_mul(idx);
                let Some(b) = head.get(at..at.saturating_add(sect_len)) else {
                    continue;
                };
                if be_u32(b, 0) != Some(magic) || be_u32(b, 8) != Some(agno) {
                    fs.warn(format!(
                        "{}: bad magic or sequence number (at byte {pos})",
                        obj()
                    ));
                } else if sb.is_v5() && !crc::verify(b, crc_off) {
                    fs.warn(format!("{}: CRC mismatch (at byte {pos})", obj()));
                }
            }
        }
    }
}
