//! Guest networking.
//!
//! This crate will own netlink (addresses, links, veth, bridges), the cgroup
//! BPF `sock_addr` programs that confine a shared-mode guest to its
//! addresses, and nftables NAT for private mode. It depends on `vs-sys` and
//! `vs-config`. Nothing is implemented yet: the network issue fills it.
