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
