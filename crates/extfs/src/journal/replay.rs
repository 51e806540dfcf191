//! The scan of the log from `s_start`: transactions in sequence order, each
//! applied to the overlay when its commit block is found (fs/jbd2/recovery.c
//! `do_one_pass`, whose separate scan, revoke and replay passes give the same
//! result as applying each committed transaction in order: a revoke in
//! transaction T cancels copies from T and earlier, never later ones).

use std::collections::{BTreeMap, HashSet};

use crate::{Error, Filesystem};
use bytesource::field;

use super::descriptor::{self, Tag};
use super::superblock::JournalSuper;
use super::{commit, revoke, JournalMap, Redirect, Replay, JBD2_MAGIC_NUMBER};

// h_blocktype values (journal.rst, "Block Header").
const JBD2_DESCRIPTOR_BLOCK: u32 = 1;
const JBD2_COMMIT_BLOCK: u32 = 2;
const JBD2_REVOKE_BLOCK: u32 = 5;
/// Most distinct revoked blocks pending in one transaction (bounds memory on a
/// hostile journal: one 4 KiB revoke block lists at most 1023).
const MAX_PENDING_REVOKES: usize = 1 << 20;

/// Scans the log of the journal `jsb` (not clean) and builds the overlay.
pub(super) fn scan(fs: &Filesystem, jsb: &JournalSuper, map: &JournalMap) -> Result<Replay, Error> {
    let bsz = fs.sb.block_size.as_usize();
    let log_len = jsb.log_len();
    let blocks_count = fs.sb.s_blocks_count;
    let mut blk = jsb.start;
    let mut seq = jsb.sequence;
    let mut scanned: u64 = 0;
    let mut transactions: u64 = 0;
    let mut pending_tags: Vec<Tag> = Vec::new();
    let mut pending_revokes: HashSet<u64> = HashSet::new();
    let mut overlay: BTreeMap<u64, Redirect> = BTreeMap::new();
    let mut buf = vec![0u8; bsz];
    let mut dbuf = vec![0u8; bsz];
    let stop = |why: String| {
        fs.warn(format!("journal: replay stopped: {why}"));
    };

    // Each pass of the loop consumes at least one log block: at most one lap.
    'scan: while scanned < log_len {
        if map.read(fs, blk, &mut buf).is_err() {
            stop(format!("journal block {blk} cannot be read"));
            break;
        }
        // journal_header_t: h_magic, h_blocktype, h_sequence. `buf` is one journal
        // block (>= 1024 bytes), so the fields are inside it; `None` could only
        // mean no header, which ends the log as a wrong magic does.
        let (Some(JBD2_MAGIC_NUMBER), Some(blocktype), Some(h_seq)) = (
            field::be_u32(&buf, 0),
            field::be_u32(&buf, 4),
            field::be_u32(&buf, 8),
        ) else {
            break; // the normal end of the log
        };
        if h_seq != seq {
            break; // the normal end of the log
        }
        match blocktype {
            JBD2_DESCRIPTOR_BLOCK => {
                if jsb.has_csum() && !commit::tail_ok(jsb, &buf) {
                    stop(format!(
                        "descriptor block {blk} (transaction {seq}) checksum mismatch"
                    ));
                    break;
                }
                let tags = descriptor::tags(jsb, &buf, blk);
                let consumed = u64::try_from(tags.len())
                    .unwrap_or(u64::MAX)
                    .saturating_add(1);
                // A transaction's tags each own a log block.
                let total = pending_tags.len().saturating_add(tags.len());
                if u64::try_from(total).unwrap_or(u64::MAX) > log_len {
                    stop(format!(
                        "transaction {seq} has more tags than the journal's {log_len} log blocks"
                    ));
                    break;
                }
                pending_tags.extend(tags);
                scanned = scanned.saturating_add(consumed);
                blk = jsb.wrap(blk.saturating_add(consumed));
            }
            JBD2_COMMIT_BLOCK => {
                if jsb.has_csum() && !commit::commit_ok(jsb, &buf) {
                    stop(format!(
                        "commit block {blk} (transaction {seq}) checksum mismatch; transaction dropped"
                    ));
                    break;
                }
                for tag in pending_tags.drain(..) {
                    if jsb.has_csum() {
                        if map.read(fs, tag.jblk, &mut dbuf).is_err() {
                            stop(format!("journal block {} cannot be read", tag.jblk));
                            break 'scan;
                        }
                        if !commit::data_ok(jsb, seq, &tag, &dbuf) {
                            fs.warn(format!(
                                "journal: block {} of transaction {seq} (for filesystem block {}) fails its checksum; skipped",
                                tag.jblk, tag.fs_block
                            ));
                            continue;
                        }
                    }
                    if tag.fs_block >= blocks_count {
                        fs.warn(format!(
                            "journal: transaction {seq} logs block {}, beyond the filesystem; skipped",
                            tag.fs_block
                        ));
                        continue;
                    }
                    let Ok(phys) = map.phys(tag.jblk) else {
                        stop(format!("journal block {} is not mapped", tag.jblk));
                        break 'scan;
                    };
                    // Newest copy wins: one entry per filesystem block.
                    overlay.insert(
                        tag.fs_block,
                        Redirect {
                            phys,
                            escaped: tag.escaped,
                        },
                    );
                }
                for b in pending_revokes.drain() {
                    overlay.remove(&b);
                }
                transactions = transactions.saturating_add(1);
                seq = seq.wrapping_add(1);
                scanned = scanned.saturating_add(1);
                blk = jsb.wrap(blk.saturating_add(1));
            }
            JBD2_REVOKE_BLOCK => {
                if jsb.has_csum() && !commit::tail_ok(jsb, &buf) {
                    stop(format!(
                        "revoke block {blk} (transaction {seq}) checksum mismatch"
                    ));
                    break;
                }
                if !jsb.revoke {
                    fs.warn(format!(
                        "journal: revoke block {blk} without the revoke feature"
                    ));
                }
                // Blocks past the filesystem are never replayed: no need to keep them.
                pending_revokes.extend(
                    revoke::records(jsb, &buf)
                        .into_iter()
                        .filter(|&b| b < blocks_count),
                );
                if pending_revokes.len() > MAX_PENDING_REVOKES {
                    stop(format!(
                        "transaction {seq} revokes more than {MAX_PENDING_REVOKES} blocks"
                    ));
                    break;
                }
                scanned = scanned.saturating_add(1);
                blk = jsb.wrap(blk.saturating_add(1));
            }
            other => {
                stop(format!("journal block {blk} has unknown type {other}"));
                break;
            }
        }
    }
    if !pending_tags.is_empty() {
        fs.warn(format!(
            "journal: transaction {seq} has no commit block; its {} blocks are not replayed",
            pending_tags.len()
        ));
    }
    Ok(Replay {
        overlay,
        transactions,
    })
}
