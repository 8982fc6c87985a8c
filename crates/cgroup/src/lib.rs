//! Control groups for guests.
//!
//! This crate will own cgroup layout detection (pure v2, hybrid, pure v1),
//! the per-guest cgroups under `<parent>/vserver/NAME`, limits (memory, pids,
//! cpu, cpuset, io) and the statistics `vserver-stat` reads. It depends only
//! on `vs-sys`. Nothing is implemented yet: the context-limits issue fills it.
