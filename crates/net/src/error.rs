//! The crate's error type.

use std::io;
use std::path::PathBuf;

use crate::bpf::asm::AsmError;

/// What went wrong in `vs-net`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The addresses cannot confine a guest.
    #[error("invalid guest addresses: {0}")]
    InvalidAddrs(String),
    /// A program did not assemble (a bug, or a list too long for the
    /// kernel's one million instructions).
    #[error("assembling the {prog} program: {source}")]
    Asm {
        /// Which program.
        prog: &'static str,
        /// Why.
        #[source]
        source: AsmError,
    },
    /// The kernel refused a program; `log` is the verifier's log.
    #[error("the kernel refused the {prog} program: {source}\nverifier log:\n{log}")]
    Load {
        /// Which program.
        prog: &'static str,
        /// The error of the load.
        #[source]
        source: io::Error,
        /// The verifier's log.
        log: String,
    },
    /// `BPF_PROG_ATTACH` failed.
    #[error("attaching the {prog} program to the cgroup: {source}")]
    Attach {
        /// Which program.
        prog: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `BPF_PROG_DETACH` failed.
    #[error("detaching the {prog} program from the cgroup: {source}")]
    Detach {
        /// Which program.
        prog: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `BPF_PROG_QUERY` failed.
    #[error("querying the cgroup's {prog} programs: {source}")]
    Query {
        /// Which hook.
        prog: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A BPF map call failed.
    #[error("{what}: {source}")]
    Map {
        /// What we were doing.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The kernel's BTF lacks what the unix programs need (BTF is needed:
    /// CONFIG_DEBUG_INFO_BTF, Linux ≥ 6.7 for the unix hooks).
    #[error("kernel BTF {path}: {reason}")]
    Btf {
        /// The BTF file.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
