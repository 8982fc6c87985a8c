//! The runtime crate's error type.

use std::path::PathBuf;

/// What can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another command holds the lock.
    #[error("{what} is busy: another vserver command holds {path}")]
    Busy {
        /// "guest 'demo'" or "the host configuration".
        what: String,
        /// The lock file.
        path: PathBuf,
    },
    /// A state file that cannot be parsed.
    #[error("{path}: corrupt run state: {message}")]
    CorruptState {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            op,
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
