//! The storage crate's one error type.

use std::path::PathBuf;

/// Everything creating, building or removing a guest root can fail with.
///
/// Each variant renders as one line naming the path (or archive entry, or
/// option) concerned, except [`Error::CommandFailed`], which adds the last
/// lines of the command's output.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operation inside a guest root failed.
    #[error(transparent)]
    Sys(#[from] vs_sys::Error),
    /// A host-side file operation failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("create directory", "read" ...).
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The guest root to create exists already.
    #[error("{path}: guest root already exists")]
    Exists {
        /// The guest root.
        path: PathBuf,
    },
    /// A build method was given a guest root that is not empty.
    #[error("{path}: guest root is not empty")]
    NotEmpty {
        /// The guest root.
        path: PathBuf,
    },
    /// `remove_root` refused to remove a path.
    #[error("{path}: refusing to remove: {reason}")]
    RefuseRemove {
        /// The path given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Another filesystem is mounted inside a guest root to remove.
    #[error("{path}: refusing to remove: {mount} is a mount point inside it; unmount it first")]
    MountInside {
        /// The guest root.
        path: PathBuf,
        /// The mount point found inside it.
        mount: PathBuf,
    },
    /// No such build method.
    #[error("unknown build method '{0}' (known: skeleton, busybox, debootstrap, template)")]
    UnknownMethod(String),
    /// A build method was given an option it does not know.
    #[error("unknown option '{option}' for method {method}")]
    UnknownOption {
        /// The option as given.
        option: String,
        /// The method.
        method: &'static str,
    },
    /// A build method's options are incomplete or malformed.
    #[error("method {method}: {message}")]
    BadArgs {
        /// The method.
        method: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A host tool that a build method runs is missing or unusable.
    #[error("{what}: install the Debian package {package}")]
    MissingTool {
        /// What is wrong, naming the path or command.
        what: String,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// No mirror was given and none could be found in the host's apt sources.
    #[error(
        "no Debian mirror in the host's apt sources ({dir}/sources.list, {dir}/sources.list.d): pass -m MIRROR"
    )]
    NoMirror {
        /// The apt configuration directory searched.
        dir: PathBuf,
    },
    /// A command exited unsuccessfully.
    #[error("{command} failed ({status}); its last lines of output:\n{tail}")]
    CommandFailed {
        /// The command.
        command: String,
        /// How it ended.
        status: String,
        /// Its last lines of output, indented.
        tail: String,
    },
    /// A template archive cannot be read or holds an entry that is refused.
    #[error("{archive}: {at}: {message}")]
    Archive {
        /// The archive.
        archive: PathBuf,
        /// Which entry ("entry 'etc/passwd'", "after entry 'etc'" ...).
        at: String,
        /// What is wrong.
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
