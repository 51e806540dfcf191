//! The one registry of filesystem readers: which ones exist, how each is recognised
//! on a volume, and how it is opened. Everything else in the front end sees only
//! [`fsapi::Filesystem`]; this is the only module that names a reader crate.
//!
//! Adding a reader is one entry in [`READERS`] (the XFS reader goes where the
//! comment in that table says), plus its `Content` variant in `stack.rs` if it has
//! none yet.

use crate::stack::Content;
use anyhow::{Context, Result};
use bytesource::{ByteSource, SharedSource};
use std::sync::Arc;

/// One filesystem reader.
pub struct Reader {
    /// Short name used in messages (`sda1: ext filesystem: ...`).
    pub name: &'static str,
    /// The versions it reads, for "only ext2/3/4" style messages.
    pub reads: &'static str,
    /// What `stack::probe` reports for a volume this reader recognises.
    pub content: Content,
    /// Cheap signature test (a few bytes at a fixed place); tried before the
    /// signatures of things no reader reads (LVM2, swap, LUKS, ...).
    pub probe: fn(&dyn ByteSource) -> bool,
    /// Slower test for a damaged filesystem (e.g. a backup superblock where the
    /// primary is gone); tried only when no signature at all matched.
    pub probe_damaged: Option<fn(&dyn ByteSource) -> bool>,
    /// Opens the filesystem.
    pub open: fn(SharedSource, &fsapi::OpenOptions) -> fsapi::Result<Arc<dyn fsapi::Filesystem>>,
}

/// Every reader, in probe order. Each entry is the whole of what the front end
/// knows about a reader.
pub static READERS: &[Reader] = &[
    Reader {
        name: "ext",
        reads: "ext2/3/4",
        content: Content::Ext,
        probe: |src| extfs::Filesystem::probe(src),
        probe_damaged: Some(|src| extfs::Filesystem::probe_backup(src)),
        open: |src, opts| {
            let fs = extfs::Filesystem::open(src, &extfs::OpenOptions::from(opts))?;
            Ok(Arc::new(fs))
        },
    },
    Reader {
        name: "xfs",
        reads: "XFS v4/v5",
        content: Content::Xfs,
        probe: |src| xfs::Filesystem::probe(src),
        probe_damaged: None,
        open: |src, opts| Ok(Arc::new(xfs::Filesystem::open(src, opts)?)),
    },
];

/// The reader whose signature `src` carries (only the cheap probes).
pub fn probe(src: &dyn ByteSource) -> Option<&'static Reader> {
    READERS.iter().find(|r| (r.probe)(src))
}

/// The reader that recognises a damaged filesystem on `src` (the slower probes).
pub fn probe_damaged(src: &dyn ByteSource) -> Option<&'static Reader> {
    READERS
        .iter()
        .find(|r| r.probe_damaged.is_some_and(|p| p(src)))
}

/// The reader for a volume `stack::probe` classified as `content`.
pub fn reader_for(content: &Content) -> Option<&'static Reader> {
    READERS.iter().find(|r| r.content == *content)
}

/// "ext2/3/4, XFS v4/v5": what can be read, for messages.
pub fn readable_kinds() -> String {
    READERS
        .iter()
        .map(|r| r.reads)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Probes `src` and opens the filesystem on it. `Ok(None)` when no reader
/// recognises it; an error (naming the reader) when one does but cannot open it.
pub fn open(
    src: SharedSource,
    opts: &fsapi::OpenOptions,
) -> Result<Option<Arc<dyn fsapi::Filesystem>>> {
    let Some(reader) = probe(&*src).or_else(|| probe_damaged(&*src)) else {
        return Ok(None);
    };
    let fs = (reader.open)(src, opts).with_context(|| format!("{} filesystem", reader.name))?;
    Ok(Some(fs))
}

/// The summary of the filesystem on `src` as it is on disk (no journal or log
/// replay), for `LABEL=`/`UUID=` resolution. `None` when there is none or it cannot
/// be opened.
pub fn identify(src: SharedSource) -> Option<fsapi::FsInfo> {
    open(src, &fsapi::OpenOptions::with_replay(false))
        .ok()
        .flatten()
        .map(|fs| fs.info())
}
