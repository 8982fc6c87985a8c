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
    /// A system call wrapper failed.
    #[error(transparent)]
    Sys(#[from] vs_sys::Error),
    /// Setting the guest up failed (the message says where).
    #[error("{0}")]
    Setup(String),
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] vs_cgroup::Error),
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] vs_config::ConfigError),
    /// The guest is running when it should not be.
    #[error("guest '{0}' is already running")]
    Running(String),
    /// The guest is not running when it should be.
    #[error("guest '{0}' is not running")]
    NotRunning(String),
    /// The guest refuses to be entered (cflags PRIVATE).
    #[error("guest '{0}' is private (cflags PRIVATE): exec and enter are refused")]
    Private(String),
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
