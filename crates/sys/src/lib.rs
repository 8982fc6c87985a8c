//! Thin, safe wrappers around the Linux system calls the rest of vserver
//! needs and the standard library does not offer safely. Now: resolving
//! paths inside a guest root without ever leaving it (`openat2` with
//! `RESOLVE_IN_ROOT`, [`root::RootDir`]) and inode flags ([`inode`]); later
//! also the mount API, `pivot_root`, pidfds, capabilities, seccomp and
//! reflinks. It holds no policy: callers decide what to do, this crate makes
//! doing it safe and reports every failure with the path it concerns.

mod error;
pub mod inode;
pub mod mount;
pub mod ns;
pub mod root;
pub mod security;

pub use error::{Error, Result};
