//! The capability bounding set: the upper bound for every capability a
//! process and its descendants can gain through `execve` (util-vserver's
//! `bcapabilities`).
//!
//! Capabilities are named by number (`CAP_CHOWN` is 0, see capabilities(7);
//! the `caps` crate's `Capability::index()` gives them), not by an enum: the
//! running kernel may know more capabilities than any enum compiled into this
//! program, and every one of them that is not kept must go. The numbers come
//! from `/proc/sys/kernel/cap_last_cap`.
//!
//! Everything here acts on the calling thread (capabilities are per thread);
//! call it in the single-threaded child right before exec.

use std::path::Path;

use rustix::thread::{self, CapabilitySet};

use super::{Result, SecurityError};

/// Where the kernel tells its highest capability number.
const CAP_LAST_CAP: &str = "/proc/sys/kernel/cap_last_cap";

/// The highest capability number the running kernel knows
/// (`/proc/sys/kernel/cap_last_cap`; 40, `CAP_CHECKPOINT_RESTORE`, on 5.9+).
pub fn last_cap() -> Result<u8> {
    let path = Path::new(CAP_LAST_CAP);
    let text = std::fs::read_to_string(path).map_err(|e| crate::Error::io(path, "read", e))?;
    let bad = || {
        crate::Error::io(
            path,
            "parse",
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a capability number below 64: {:?}", text.trim()),
            ),
        )
    };
    let last: u8 = text.trim().parse().map_err(|_| bad())?;
    // The kernel's capability sets are 64 bits wide (capget/capset version 3).
    if last > 63 {
        return Err(bad().into());
    }
    Ok(last)
}

/// One capability as the one-bit set rustix takes.
fn bit(cap: u8) -> CapabilitySet {
    CapabilitySet::from_bits_retain(1u64 << cap)
}

/// Drops every capability the kernel knows (0 ..= [`last_cap`]) that is not
/// in `keep` from the calling thread's bounding set, and removes the dropped
/// ones from its inheritable and ambient sets too.
///
/// Why all three: at `execve` the new permitted set is
/// `(inheritable & file inheritable) | (file permitted & bounding) | ambient`
/// (capabilities(7)); the bounding set masks only the middle term, so a
/// dropped capability left in the inheritable or ambient set could come back.
/// The thread's own permitted and effective sets are left as they are (exec
/// recomputes them); numbers in `keep` that the kernel does not know are
/// ignored, so a configuration naming a newer capability still starts.
///
/// Dropping needs `CAP_SETPCAP` in the caller's user namespace; without it
/// this fails with `EPERM` naming the first capability it could not drop
/// (capabilities already outside the bounding set are not dropped again, so
/// an unprivileged caller whose set is already small enough succeeds).
pub fn limit_bounding_set(keep: &[u8]) -> Result<()> {
    let last = last_cap()?;
    let mut dropped = CapabilitySet::empty();
    for cap in (0..=last).filter(|cap| !keep.contains(cap)) {
        dropped |= bit(cap);
        let present = thread::capability_is_in_bounding_set(bit(cap)).map_err(|e| {
            SecurityError::Capability {
                cap,
                op: "read the bounding set",
                source: e.into(),
            }
        })?;
        if present {
            thread::remove_capability_from_bounding_set(bit(cap)).map_err(|e| {
                SecurityError::Capability {
                    cap,
                    op: "drop from the bounding set",
                    source: e.into(),
                }
            })?;
        }
    }

    // Ambient first: lowering an ambient capability needs no privilege, and
    // the kernel keeps ambient ⊆ inheritable anyway (prctl(2) PR_CAP_AMBIENT).
    for cap in (0..=last).filter(|cap| !keep.contains(cap)) {
        // PR_CAP_AMBIENT_IS_SET fails with EINVAL on kernels without ambient
        // capabilities (before 4.3): there is nothing to lower then.
        if thread::capability_is_in_ambient_set(bit(cap)).unwrap_or(false) {
            thread::configure_capability_in_ambient_set(bit(cap), false).map_err(|e| {
                SecurityError::Capability {
                    cap,
                    op: "lower in the ambient set",
                    source: e.into(),
                }
            })?;
        }
    }

    let mut sets = thread::capabilities(None).map_err(|e| SecurityError::Capabilities {
        op: "read (capget)",
        source: e.into(),
    })?;
    if sets.inheritable.intersects(dropped) {
        // Lowering the inheritable set never needs privilege (capset(2)).
        sets.inheritable.remove(dropped);
        thread::set_capabilities(None, sets).map_err(|e| SecurityError::Capabilities {
            op: "clear dropped capabilities from the inheritable set (capset)",
            source: e.into(),
        })?;
    }
    Ok(())
}

/// The capability numbers in the calling thread's bounding set, ascending.
pub fn bounding_set() -> Result<Vec<u8>> {
    let last = last_cap()?;
    let mut set = Vec::new();
    for cap in 0..=last {
        let present = thread::capability_is_in_bounding_set(bit(cap)).map_err(|e| {
            SecurityError::Capability {
                cap,
                op: "read the bounding set",
                source: e.into(),
            }
        })?;
        if present {
            set.push(cap);
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_cap_is_plausible() {
        let last = last_cap().unwrap();
        // CAP_AUDIT_READ (37) exists since 3.16.
        assert!((37..64).contains(&last), "cap_last_cap {last}");
    }

    #[test]
    fn bounding_set_matches_proc_status() {
        let set = bounding_set().unwrap();
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .unwrap()
            .trim();
        let mask = u64::from_str_radix(hex, 16).unwrap();
        let from_proc: Vec<u8> = (0..64).filter(|c| mask & (1 << c) != 0).collect();
        assert_eq!(set, from_proc);
    }

    #[test]
    fn keeping_everything_changes_nothing() {
        // Needs no privilege: nothing is dropped.
        let before = bounding_set().unwrap();
        let all: Vec<u8> = (0..=last_cap().unwrap()).collect();
        limit_bounding_set(&all).unwrap();
        assert_eq!(bounding_set().unwrap(), before);
    }
}
