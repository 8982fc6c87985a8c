//! The sys crate's one error type.

use std::path::PathBuf;

/// Everything a wrapper in this crate can fail with.
///
/// Each variant renders as one line that names the path concerned (for paths
/// inside a guest root: the host path the root was opened with, joined with
/// the path inside it).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a path failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("create directory", "write" ...).
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Making a hard link failed.
    #[error("{path}: hard link to {target}: {source}")]
    Link {
        /// The new link.
        path: PathBuf,
        /// The existing file it should name.
        target: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A path inside a guest root that cannot be used for this operation.
    #[error("{path}: {reason}")]
    InvalidPath {
        /// The path.
        path: PathBuf,
        /// Why it cannot be used.
        reason: &'static str,
    },
}

impl Error {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        op: &'static str,
        source: impl Into<std::io::Error>,
    ) -> Self {
        Error::Io {
            path: path.into(),
            op,
            source: source.into(),
        }
    }

    /// The OS error number behind this error, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } | Error::Link { source, .. } => source.raw_os_error(),
            Error::InvalidPath { .. } => None,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
