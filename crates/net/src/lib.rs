//! Guest networking.
//!
//! This crate owns the confinement of a shared-mode guest (one that stays
//! in the host's network namespace, as Linux-VServer's guests did): cgroup
//! BPF `sock_addr` programs, hand-assembled here and attached to the guest's
//! cgroup v2 directory, that keep its sockets on its own addresses, turn
//! `bind(ANY)` into its first address and `127.0.0.1` into its own loopback
//! address, give its outgoing connections its source address, and refuse
//! its unix connections to abstract names ([`bpf::progs`] lists every rule),
//! and count its traffic ([`bpf::count`]). The device filter every guest
//! gets ([`bpf::devices`]) shares the assembler and loader.
//! Later also netlink (addresses, links, veth, bridges) and nftables NAT for
//! private mode. It depends on `vs-sys` and `vs-config`.

mod addrs;
pub mod bpf;
mod error;

pub use addrs::{GuestAddrs, default_lback4};
pub use bpf::count::{Traffic, read as read_traffic};
pub use bpf::{Attached, Hook, Prog, UnixLayout, attach, attach_with, attached_count, detach_all};
pub use error::{Error, Result};
