//! Control groups for guests.
//!
//! This crate owns everything vserver does with cgroups: detecting how the
//! host mounted them ([`Layout`]: pure cgroup2, hybrid, pure v1), and each
//! running guest's own cgroups `<parent>/vserver/NAME` ([`GuestCgroup`]),
//! which track, freeze and kill all of the guest's processes even when its
//! monitor process is dead. Later it also owns limits (memory, pids, cpu,
//! cpuset, io) and the statistics `vserver-stat` reads; they go into the
//! directories [`GuestCgroup::dir`] names. Every file operation goes
//! through [`CgroupFs`], the seam that lets unit tests run against a
//! temp-dir fixture instead of `/sys/fs/cgroup`. It makes its system calls
//! through rustix and holds no policy about guests beyond where their
//! directories go.

mod error;
mod fs;
mod guest;
mod membership;

pub use error::{Error, Result};
pub use fs::{
    CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, CgroupFs, Hierarchy, Layout, SYSTEM_ROOT, TMPFS_MAGIC,
    V1Controller,
};
pub use guest::{FREEZE_TIMEOUT, GUEST_LEVEL, GuestCgroup, KILL_TIMEOUT, REMOVE_TIMEOUT};
pub use membership::Membership;
