//! Control groups for guests.
//!
//! This crate owns everything vserver does with cgroups: detecting how the
//! host mounted them ([`Layout`]: pure cgroup2, hybrid, pure v1), and each
//! running guest's own cgroups `<parent>/vserver/NAME` ([`GuestCgroup`]),
//! which track, freeze and kill all of the guest's processes even when its
//! monitor process is dead. It also owns limits (memory, pids, cpu,
//! cpuset, io: [`GuestCgroup::apply`], [`GuestCgroup::limits`]) and the
//! usage figures `vserver-stat` reads ([`GuestCgroup::stats`]), on
//! whichever of cgroup2 and the v1 hierarchies has the controller. Every
//! file operation goes through [`CgroupFs`], the seam that lets unit tests
//! run against a temp-dir fixture instead of `/sys/fs/cgroup`. It makes its
//! system calls through rustix and holds no policy about guests beyond
//! where their directories go and which controllers they get.

mod error;
mod fixture;
mod fs;
mod guest;
mod limits;
mod membership;
mod meminfo;
mod stats;

pub use error::{Error, Result};
pub use fs::{
    CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, CgroupFs, Hierarchy, Layout, SYSTEM_ROOT, TMPFS_MAGIC,
    V1Controller,
};
pub use guest::{FREEZE_TIMEOUT, GUEST_LEVEL, GuestCgroup, KILL_TIMEOUT, REMOVE_TIMEOUT};
pub use limits::{CurrentLimits, Limit, Limits, Unsupported};
pub use membership::Membership;
pub use meminfo::{MemoryFigures, MemoryKind, MemoryView};
pub use stats::Stats;
