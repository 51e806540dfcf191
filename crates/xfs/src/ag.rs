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

pub(crate) fn check(fs: &Filesystem) {
    let sb = &fs.sb;
    let sect = u64::from(sb.sect_size);
    for agno in 0..sb.agcount.min(MAX_CHECKED) {
        let Some(base) = sb.fsb_to_byte(u64::from(agno) << sb.agblklog) else {
            continue;
        };
        for (idx, magic, crc_off, what) in [
            (1u64, AGF_MAGIC, AGF_CRC_OFF, "AGF"),
            (2, AGI_MAGIC, AGI_CRC_OFF, "AGI"),
        ] {
            let pos = base.saturating_add(sect.saturating_mul(idx));
            let obj = || format!("AG {agno} {what}");
            let b = match fs.read_meta(pos, us(u32::from(sb.sect_size)), &obj) {
                Ok(b) => b,
                Err(e) => {
                    fs.warn(e.to_string());
                    continue;
                }
            };
            if be_u32(&b, 0) != Some(magic) || be_u32(&b, 8) != Some(agno) {
                fs.warn(format!(
                    "{}: bad magic or sequence number (at byte {pos})",
                    obj()
                ));
            } else if sb.is_v5() && !crc::verify(&b, crc_off) {
                fs.warn(format!("{}: CRC mismatch (at byte {pos})", obj()));
            }
        }
    }
}
