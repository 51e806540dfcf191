//! The crate's error type. Every variant names the file (descriptor or extent) it is
//! about, so a message reads like `web01-flat.vmdk: extent declares ...`.

use std::io;

/// What went wrong opening or reading a VMDK.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a named file.
    #[error("{file}: {source}")]
    Io {
        /// The file being read.
        file: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A text descriptor that does not parse; `line` is 1-based.
    #[error("{}descriptor line {line}: {msg}", prefix(file))]
    Descriptor {
        /// The descriptor file, when known.
        file: Option<String>,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A structure that is damaged or makes no sense (bad magic, tables past the end).
    #[error("{file}: {msg}")]
    Corrupt {
        /// The file holding the structure.
        file: String,
        /// What is wrong, with the byte position when there is one.
        msg: String,
    },
    /// A valid structure this crate does not read (RDM extents, unknown versions).
    #[error("{file}: {msg}")]
    Unsupported {
        /// The file.
        file: String,
        /// What is not supported.
        msg: String,
    },
    /// An extent or parent file named by a descriptor does not exist.
    #[error("{file}: {what} {name} not found (looked in {looked})")]
    NotFound {
        /// The descriptor that names the file.
        file: String,
        /// "extent file" or "parent".
        what: &'static str,
        /// The name as written in the descriptor.
        name: String,
        /// Where it was looked for.
        looked: String,
    },
    /// An extent or parent file named by a descriptor is missing, and a file beside the
    /// descriptor looks like its renamed copy; `hint` says what to run.
    #[error("{file}: {what} {name} not found beside it; {hint}")]
    Renamed {
        /// The descriptor that names the file.
        file: String,
        /// "extent file" or "parent".
        what: &'static str,
        /// The name as written in the descriptor.
        name: String,
        /// The likely renamed file and the command lines that use it.
        hint: String,
    },
    /// An input that is not a disk file at all (a FIFO, a character device, a
    /// directory): the message names the file and its type.
    #[error("{msg}")]
    NotADisk {
        /// `vm-flat.vmdk: is a FIFO, not a disk file`, with context.
        msg: String,
    },
    /// An extent file shorter than its descriptor line says.
    #[error("{file}: extent declares {sectors} sectors ({bytes} bytes), file has {actual} bytes")]
    ExtentTooShort {
        /// The extent file.
        file: String,
        /// Declared sectors.
        sectors: u64,
        /// Bytes needed (declared sectors * 512, plus the start offset).
        bytes: u64,
        /// Actual file size.
        actual: u64,
    },
    /// A file the caller's options do not allow opening (extent path leaves the folder).
    #[error("{file}: {msg}")]
    Refused {
        /// The descriptor naming the path.
        file: String,
        /// Why.
        msg: String,
    },
}

/// " (limit N)" when the open-file limit is known, else nothing.
/// A fixed-width field read with [`bytesource::field`] from bytes read at byte
/// `base` of `file`: `None` (the field at offset `off` does not lie inside the
/// bytes read) becomes a corrupt-structure error naming the file, the object and
/// the field's byte position, never a silent zero.
pub(crate) fn need<T>(
    v: Option<T>,
    file: &str,
    object: &str,
    base: u64,
    off: usize,
) -> Result<T, Error> {
    v.ok_or_else(|| {
        let pos = u64::try_from(off)
            .ok()
            .and_then(|o| base.checked_add(o))
            .map_or_else(|| "past 2^64".to_string(), |p| format!("{p:#x}"));
        Error::corrupt(
            file,
            format!("{object}: the field at byte {pos} lies past the end of what was read"),
        )
    })
}

fn nofile_limit_hint() -> String {
    bytesource::open_file_limit()
        .map(|n| format!(" (limit {n})"))
        .unwrap_or_default()
}

fn prefix(file: &Option<String>) -> String {
    match file {
        Some(f) => format!("{f}: "),
        None => String::new(),
    }
}

impl Error {
    pub(crate) fn corrupt(file: &str, msg: impl Into<String>) -> Self {
        Error::Corrupt {
            file: file.to_string(),
            msg: msg.into(),
        }
    }

    pub(crate) fn unsupported(file: &str, msg: impl Into<String>) -> Self {
        Error::Unsupported {
            file: file.to_string(),
            msg: msg.into(),
        }
    }

    pub(crate) fn io(file: &str, source: io::Error) -> Self {
        Error::Io {
            file: file.to_string(),
            source,
        }
    }

    /// An error opening input file `name` (`context` says how a descriptor names it):
    /// a FIFO or device refused by [`bytesource::open_input`] keeps its own message;
    /// running out of file descriptors says how to raise the limit.
    pub(crate) fn open(name: &str, context: Option<&str>, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::InvalidInput {
            return Error::NotADisk {
                msg: match context {
                    Some(c) => format!("{c} {source}"),
                    None => source.to_string(),
                },
            };
        }
        // EMFILE (24) and ENFILE (23), asm-generic/errno-base.h.
        if matches!(source.raw_os_error(), Some(23 | 24)) {
            let limit = nofile_limit_hint();
            return Error::io(
                name,
                io::Error::new(
                    source.kind(),
                    format!("{source}: too many files open at once{limit}; raise the limit (ulimit -n) and retry"),
                ),
            );
        }
        Error::io(name, source)
    }

    /// Attaches the descriptor's file name to a descriptor error that has none.
    pub(crate) fn in_file(self, name: &str) -> Self {
        match self {
            Error::Descriptor {
                file: None,
                line,
                msg,
            } => Error::Descriptor {
                file: Some(name.to_string()),
                line,
                msg,
            },
            other => other,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io { file, source } => {
                // Keep the kind (UnexpectedEof matters to callers) and the context.
                io::Error::new(source.kind(), format!("{file}: {source}"))
            }
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}
