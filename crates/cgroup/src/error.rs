//! The cgroup crate's one error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything this crate can fail with.
///
/// Each variant renders as one line that names the cgroup directory or file
/// concerned, so a message read in a log is enough to find the culprit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a path failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("create cgroup", "read" ...).
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Writing a cgroup control file failed.
    #[error("{path}: write {data:?}: {source}")]
    Write {
        /// The control file.
        path: PathBuf,
        /// What was written.
        data: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The mount root (or a hierarchy under it) is not a cgroup file system.
    #[error("{path}: not a cgroup file system (statfs magic {magic:#x})")]
    NotCgroupFs {
        /// The directory examined.
        path: PathBuf,
        /// Its file system magic.
        magic: u64,
    },
    /// A file the kernel wrote has content this crate does not understand.
    #[error("{path}: cannot parse {line:?}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The offending line.
        line: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A guest name that cannot be a cgroup directory name.
    #[error("invalid guest cgroup name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A base cgroup path that cannot be used.
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidCgroupPath {
        /// The path (as found in /proc/PID/cgroup or given by the caller).
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The calling process has no cgroup in a hierarchy it needs one in.
    #[error(
        "{hierarchy}: the calling process is in no cgroup of this hierarchy (/proc/self/cgroup)"
    )]
    NotAMember {
        /// The hierarchy ("cgroup2", "v1 memory" ...).
        hierarchy: String,
    },
    /// A hierarchy the layout needs is not mounted.
    #[error("{path}: {hierarchy} hierarchy is not mounted, but the {layout:?} layout needs it")]
    MissingHierarchy {
        /// Where it was expected.
        path: PathBuf,
        /// The hierarchy.
        hierarchy: String,
        /// The layout.
        layout: crate::Layout,
    },
    /// The guest's cgroup already exists and holds processes or sub-cgroups.
    #[error("{path}: guest cgroup already exists and is in use ({what})")]
    InUse {
        /// The guest's directory.
        path: PathBuf,
        /// What is in it.
        what: &'static str,
    },
    /// The operation needs a hierarchy or file this guest cgroup lacks.
    #[error("{path}: cannot {op}: {reason}")]
    Unsupported {
        /// The guest's (first) directory.
        path: PathBuf,
        /// The operation.
        op: &'static str,
        /// Why not.
        reason: &'static str,
    },
    /// The kernel did not reach the requested state in time.
    #[error("{path}: timed out after {timeout:?} waiting to {what}")]
    Timeout {
        /// The cgroup directory or control file.
        path: PathBuf,
        /// The state waited for ("freeze", "thaw" ...).
        what: &'static str,
        /// How long we waited.
        timeout: Duration,
    },
    /// Killing every process of a guest did not empty its cgroup.
    #[error("{path}: cgroup still has processes {pids:?} after {timeout:?} of killing")]
    StillPopulated {
        /// The guest's (first) directory.
        path: PathBuf,
        /// The processes still listed (may be empty if only the kernel's
        /// `populated` flag is still set).
        pids: Vec<i32>,
        /// How long we tried.
        timeout: Duration,
    },
    /// A path that is not the directory of a guest cgroup under this mount
    /// root.
    #[error("{path}: not a guest cgroup directory: {reason}")]
    NotAGuestCgroup {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// A limit value that cannot be applied (out of range, or in conflict
    /// with another limit of the same request).
    #[error("invalid {what} {value}: {reason}")]
    InvalidLimit {
        /// Which limit ("cpu weight", "memory+swap limit" ...).
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A process id that cannot be moved into a cgroup.
    #[error("invalid pid {0}: must be positive")]
    InvalidPid(i32),
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
            Error::Io { source, .. } | Error::Write { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
