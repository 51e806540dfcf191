//! The error type: every message names the object it is about.

use std::io;

/// What can go wrong while reading an ext2/3/4 filesystem.
///
/// `Corrupt` and `Unsupported` carry the object (`"superblock"`, `"inode 1234"`,
/// `"group 7 descriptor"`, `"journal"`) and a detail, and display as
/// `"<object>: <detail>"`; `Corrupt` adds ` (at byte N)` when the device
/// position of the object is known. The layer (ext2/3/4) is named by the caller
/// that opened the filesystem, as the `fsapi` conversion does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A path component does not exist.
    #[error("path {path}: not found")]
    NotFound {
        /// The path as given, up to and including the missing component.
        path: String,
    },
    /// A path component that must be a directory is not one.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path up to and including the offending component.
        path: String,
    },
    /// Resolving a path followed more than 40 symbolic links.
    #[error("{path}: too many levels of symbolic links")]
    SymlinkLoop {
        /// The path being resolved.
        path: String,
    },
    /// An operation was asked of an inode of the wrong type (e.g. `read_link` on a file).
    #[error("inode {ino}: {detail}")]
    WrongType {
        /// The inode number.
        ino: u32,
        /// What was expected.
        detail: String,
    },
    /// The device could not be read.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The device could not be read at a known position.
    #[error("I/O error: device read of {len} bytes at byte {offset}: {source}")]
    DeviceRead {
        /// Device byte offset of the failed read.
        offset: u64,
        /// Bytes asked for.
        len: usize,
        /// The error from the layer below.
        source: io::Error,
    },
    /// On-disk data is inconsistent.
    #[error("{object}: {detail}{}", at_suffix(*.offset))]
    Corrupt {
        /// Which structure ("superblock", "inode 12", "journal block 40").
        object: String,
        /// Device byte offset of the structure, where known.
        offset: Option<u64>,
        /// What is wrong with it.
        detail: String,
    },
    /// The filesystem or object uses a feature this reader does not read.
    #[error("{object}: unsupported: {detail}")]
    Unsupported {
        /// Which structure.
        object: String,
        /// Which feature.
        detail: String,
    },
}

impl Error {
    /// Builds a [`Error::Corrupt`].
    pub(crate) fn corrupt(object: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            object: object.into(),
            offset: None,
            detail: detail.into(),
        }
    }

    /// Builds a [`Error::Corrupt`] about the structure at device byte `offset`.
    pub(crate) fn corrupt_at(
        object: impl Into<String>,
        offset: u64,
        detail: impl Into<String>,
    ) -> Self {
        Error::Corrupt {
            object: object.into(),
            offset: Some(offset),
            detail: detail.into(),
        }
    }

    /// Builds an [`Error::Unsupported`].
    pub(crate) fn unsupported(object: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Unsupported {
            object: object.into(),
            detail: detail.into(),
        }
    }

    /// Builds a [`Error::Corrupt`] about inode `ino`.
    pub(crate) fn inode(ino: u32, detail: impl Into<String>) -> Self {
        Error::corrupt(format!("inode {ino}"), detail)
    }
}

fn at_suffix(offset: Option<u64>) -> String {
    match offset {
        Some(o) => format!(" (at byte {o})"),
        None => String::new(),
    }
}
