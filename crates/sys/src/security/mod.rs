//! Privilege limits applied to a guest's processes before they exec:
//! capability bounding set, seccomp filter, resource limits, personality.
//!
//! The guest's init side and the `exec`/`enter` helpers call these after they
//! joined the guest's namespaces, in the single-threaded child, right before
//! `execve`. A sensible order is [`rlimit::apply`], [`personality::set_personality`],
//! [`caps::limit_bounding_set`], then [`seccomp::install`] last (it needs
//! `CAP_SYS_ADMIN` in the effective set unless `no_new_privs` is set, and once
//! it is loaded the denied system calls fail for the helper too).
//!
//! Everything here acts on the calling *thread* (capabilities, seccomp,
//! personality) or process (rlimits); nothing is global policy: the caller
//! decides which capabilities to keep and which options to allow.

use std::io;

pub mod caps;
pub mod personality;
pub mod rlimit;
pub mod seccomp;

/// Everything the security wrappers can fail with.
///
/// Separate from [`crate::Error`] because most of these failures concern a
/// process attribute, not a path.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// Reading a kernel setting from `/proc` failed.
    #[error(transparent)]
    Sys(#[from] crate::Error),
    /// A prctl/capget/capset on one capability failed.
    #[error("capability {cap}: {op}: {source}")]
    Capability {
        /// The capability number (`CAP_*`).
        cap: u8,
        /// What was being done ("drop from the bounding set" ...).
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Reading or writing the thread's capability sets failed.
    #[error("capabilities: {op}: {source}")]
    Capabilities {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// libseccomp refused to build or export the filter.
    #[error("seccomp: {op}: {source}")]
    Seccomp {
        /// What was being done.
        op: &'static str,
        /// libseccomp's error.
        source: libseccomp::error::SeccompError,
    },
    /// The kernel refused the filter because the caller has neither
    /// `no_new_privs` set nor `CAP_SYS_ADMIN` in its user namespace.
    #[error(
        "seccomp: the kernel refused the filter: without no_new_privs, loading one needs \
         CAP_SYS_ADMIN in the caller's user namespace (load it before dropping that \
         capability or changing to a non-root user)"
    )]
    SeccompNotPermitted,
    /// The kernel refused the filter for another reason.
    #[error("seccomp: load the filter: {source}")]
    SeccompLoad {
        /// The OS error.
        source: io::Error,
    },
    /// setrlimit(2) failed for another reason than a too high hard limit.
    #[error(
        "rlimit {resource}: set soft {} hard {}: {source}",
        rlimit::show(.soft),
        rlimit::show(.hard)
    )]
    Rlimit {
        /// The resource.
        resource: rlimit::Resource,
        /// The soft limit asked for (`None`: unlimited).
        soft: Option<u64>,
        /// The hard limit asked for (`None`: unlimited).
        hard: Option<u64>,
        /// The OS error.
        source: io::Error,
    },
    /// personality(2) failed or did not take effect.
    #[error("personality {value:#x}: {reason}")]
    Personality {
        /// The persona asked for.
        value: u32,
        /// Why it was not applied.
        reason: String,
    },
}

impl SecurityError {
    /// The OS error number behind this error, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            SecurityError::Sys(e) => e.raw_os_error(),
            SecurityError::Capability { source, .. }
            | SecurityError::Capabilities { source, .. }
            | SecurityError::SeccompLoad { source }
            | SecurityError::Rlimit { source, .. } => source.raw_os_error(),
            SecurityError::SeccompNotPermitted => Some(libc::EACCES),
            SecurityError::Seccomp { .. } | SecurityError::Personality { .. } => None,
        }
    }
}

/// The security module's result type.
pub type Result<T, E = SecurityError> = std::result::Result<T, E>;
