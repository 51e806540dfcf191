//! Operations inside records and their reassembly into transactions.
//!
//! Each record's data is a sequence of `xlog_op_header` (12 bytes, big-endian:
//! oh_tid, oh_len, oh_clientid, oh_flags, pad) each followed by oh_len bytes. A
//! transaction starts with a START op, carries a transaction header region
//! (`xfs_trans_header`) and then the regions of its items (region 0 of an item is
//! its format structure, whose second u16 says how many regions follow), and ends
//! with a COMMIT op. A region may be split across records: the first part has
//! CONTINUE, the rest WAS_CONT. Only committed transactions are replayed.
//!
//! Follows xlog_recover_process_data / _process_ophdr / _ophdr_to_trans /
//! xlog_recovery_process_trans / xlog_recover_add_to_trans / _add_to_cont_trans in
//! fs/xfs/xfs_log_recover.c.

use std::collections::HashMap;

use bytesource::field;

pub(crate) const XLOG_START_TRANS: u8 = 0x01;
pub(crate) const XLOG_COMMIT_TRANS: u8 = 0x02;
pub(crate) const XLOG_CONTINUE_TRANS: u8 = 0x04;
pub(crate) const XLOG_WAS_CONT_TRANS: u8 = 0x08;
pub(crate) const XLOG_END_TRANS: u8 = 0x10;
pub(crate) const XLOG_UNMOUNT_TRANS: u8 = 0x20;
/// `XFS_TRANSACTION`, `XFS_LOG` client ids.
const XFS_TRANSACTION: u8 = 0x69;
const XFS_LOG: u8 = 0xaa;
/// `XFS_TRANS_HEADER_MAGIC` "TRAN", stored in host (little-endian) order.
const XFS_TRANS_HEADER_MAGIC: u32 = 0x5452_414e;
/// `sizeof(struct xfs_trans_header)`.
const TRANS_HEADER_SIZE: usize = 16;
/// `XLOG_MAX_REGIONS_IN_ITEM`: (XFS_MAX_BLOCKSIZE / XFS_BLF_CHUNK) / 2 + 1.
const MAX_REGIONS_IN_ITEM: usize = 65536 / 128 / 2 + 1;
const OP_HEADER_SIZE: usize = 12;

/// One logged item: its regions, region 0 being the format structure.
#[derive(Clone, Debug, Default)]
pub(crate) struct RawItem {
    pub total: usize,
    pub regions: Vec<Vec<u8>>,
}

/// A committed transaction.
#[derive(Debug)]
pub(crate) struct Transaction {
    pub tid: u32,
    /// LSN of the record holding the transaction's START op (`r_lsn`): the
    /// "current LSN" of the LSN ordering checks.
    pub lsn: u64,
    /// `th_num_items` of the transaction header (what `xfs_logprint` shows as #items).
    pub header_items: u32,
    pub items: Vec<RawItem>,
}

#[derive(Default)]
struct Open {
    lsn: u64,
    header: Vec<u8>,
    items: Vec<RawItem>,
}

/// Transactions being reassembled across records.
#[derive(Default)]
pub(crate) struct Assembler {
    open: HashMap<u32, Open>,
    /// Bytes held by open transactions (bounded by the log size: each is a copy of
    /// log bytes).
    held: usize,
    pub unmount_records: u32,
}

impl Assembler {
    /// Transactions started but never committed by the end of the log.
    pub(crate) fn uncommitted(&self) -> usize {
        self.open.len()
    }

    /// Processes the operations of one record (its unpacked data), pushing the
    /// transactions it commits onto `out`. `blk` names the record in errors.
    pub(crate) fn process_record(
        &mut self,
        data: &[u8],
        num_logops: u32,
        rec_lsn: u64,
        blk: u64,
        out: &mut Vec<Transaction>,
    ) -> Result<(), String> {
        let mut dp = 0usize;
        let end = data.len();
        let mut left = num_logops;
        while dp < end && left > 0 {
            let hdr = data
                .get(dp..dp.saturating_add(OP_HEADER_SIZE))
                .ok_or_else(|| {
                    format!(
                        "record at log block {blk}: op header at byte {dp} runs past the record"
                    )
                })?;
            // `hdr` is the OP_HEADER_SIZE (12) bytes of `struct xlog_op_header`
            // (oh_tid, oh_len, oh_clientid, oh_flags): all inside it.
            let (Some(tid), Some(len), Some(clientid), Some(flags)) = (
                field::be_u32(hdr, 0),
                field::be_u32(hdr, 4),
                field::u8_at(hdr, 8),
                field::u8_at(hdr, 9),
            ) else {
                return Err(format!(
                    "record at log block {blk}: op header at byte {dp} is short"
                ));
            };
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            dp = dp.saturating_add(OP_HEADER_SIZE);
            if clientid != XFS_TRANSACTION && clientid != XFS_LOG {
                return Err(format!(
                    "record at log block {blk}: op at byte {dp} has bad client id {clientid:#x}"
                ));
            }
            let op_end = dp.checked_add(len).filter(|&e| e <= end).ok_or_else(|| {
                format!("record at log block {blk}: op at byte {dp} has bad length {len}")
            })?;
            let region = data.get(dp..op_end).unwrap_or_default();
            self.process_op(tid, flags, region, rec_lsn, blk, out)?;
            dp = op_end;
            left = left.saturating_sub(1);
        }
        Ok(())
    }

    fn process_op(
        &mut self,
        tid: u32,
        flags: u8,
        region: &[u8],
        rec_lsn: u64,
        blk: u64,
        out: &mut Vec<Transaction>,
    ) -> Result<(), String> {
        // xlog_recover_ophdr_to_trans
        if let std::collections::hash_map::Entry::Vacant(e) = self.open.entry(tid) {
            if flags & XLOG_START_TRANS != 0 {
                e.insert(Open {
                    lsn: rec_lsn,
                    ..Open::default()
                });
            }
            // A non-start op of an unknown transaction is slack before the tail's
            // first whole transaction: skipped, as the kernel does.
            return Ok(());
        }
        let mut f = flags & !XLOG_END_TRANS;
        if f & XLOG_WAS_CONT_TRANS != 0 {
            f &= !XLOG_CONTINUE_TRANS;
        }
        let res = match f {
            0 | XLOG_CONTINUE_TRANS => self.add_to_trans(tid, region, blk),
            XLOG_WAS_CONT_TRANS => self.add_to_cont_trans(tid, region, blk),
            XLOG_COMMIT_TRANS => {
                if let Some(t) = self.open.remove(&tid) {
                    let bytes: usize = t
                        .items
                        .iter()
                        .flat_map(|i| i.regions.iter())
                        .map(Vec::len)
                        .sum();
                    self.held = self.held.saturating_sub(bytes);
                    let mut items = t.items;
                    // An item allocated after a full header but never filled.
                    items.retain(|i| !i.regions.is_empty());
                    out.push(Transaction {
                        tid,
                        lsn: t.lsn,
                        // th_num_items feeds a statistic only; a header cut
                        // short of it counts as 0 items, it decides nothing.
                        header_items: field::le_u32(&t.header, 12).unwrap_or(0),
                        items,
                    });
                }
                return Ok(());
            }
            XLOG_UNMOUNT_TRANS => {
                self.unmount_records = self.unmount_records.saturating_add(1);
                self.drop_trans(tid);
                return Ok(());
            }
            _ => Err(format!(
                "record at log block {blk}: transaction {tid:#x} op has bad flags {flags:#x}"
            )),
        };
        if res.is_err() {
            self.drop_trans(tid);
        }
        res
    }

    fn drop_trans(&mut self, tid: u32) {
        if let Some(t) = self.open.remove(&tid) {
            let bytes: usize = t
                .items
                .iter()
                .flat_map(|i| i.regions.iter())
                .map(Vec::len)
                .sum();
            self.held = self.held.saturating_sub(bytes);
        }
    }

    fn add_to_trans(&mut self, tid: u32, dp: &[u8], blk: u64) -> Result<(), String> {
        if dp.is_empty() {
            return Ok(());
        }
        let t = self.open.get_mut(&tid).ok_or("no transaction")?;
        if t.items.is_empty() {
            if field::le_u32(dp, 0) != Some(XFS_TRANS_HEADER_MAGIC) {
                return Err(format!(
                    "record at log block {blk}: transaction {tid:#x}: bad transaction header magic"
                ));
            }
            if dp.len() > TRANS_HEADER_SIZE {
                return Err(format!(
                    "record at log block {blk}: transaction {tid:#x}: transaction header too long"
                ));
            }
            if dp.len() == TRANS_HEADER_SIZE {
                t.items.push(RawItem::default());
            }
            t.header = dp.to_vec();
            return Ok(());
        }
        let needs_new = match t.items.last() {
            Some(it) => it.total != 0 && it.total == it.regions.len(),
            None => true,
        };
        if needs_new {
            t.items.push(RawItem::default());
        }
        let item = t.items.last_mut().ok_or("no item")?;
        if item.total == 0 {
            // The second u16 of every item format structure is its region count
            // (ilf_size, blf_size, ...), little-endian.
            // Too short for the count reads as 0 regions, which is rejected below.
            let n = field::le_u16(dp, 2).map_or(0, usize::from);
            if dp.len() < 4 || n == 0 || n > MAX_REGIONS_IN_ITEM {
                return Err(format!(
                    "record at log block {blk}: transaction {tid:#x}: bad number of regions ({n}) in a log item"
                ));
            }
            item.total = n;
        }
        if item.regions.len() >= item.total {
            return Err(format!(
                "record at log block {blk}: transaction {tid:#x}: log item region count overflowed its size ({})",
                item.total
            ));
        }
        item.regions.push(dp.to_vec());
        self.held = self.held.saturating_add(dp.len());
        Ok(())
    }

    fn add_to_cont_trans(&mut self, tid: u32, dp: &[u8], blk: u64) -> Result<(), String> {
        let t = self.open.get_mut(&tid).ok_or("no transaction")?;
        if t.items.is_empty() {
            // The rest of a split transaction header.
            if t.header.len().saturating_add(dp.len()) > TRANS_HEADER_SIZE {
                return Err(format!(
                    "record at log block {blk}: transaction {tid:#x}: transaction header too long"
                ));
            }
            t.header.extend_from_slice(dp);
            t.items.push(RawItem::default());
            return Ok(());
        }
        let last = t
            .items
            .last_mut()
            .and_then(|i| i.regions.last_mut())
            .ok_or_else(|| format!("record at log block {blk}: transaction {tid:#x}: continuation without a region"))?;
        last.extend_from_slice(dp);
        self.held = self.held.saturating_add(dp.len());
        Ok(())
    }
}
