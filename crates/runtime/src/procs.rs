//! The processes of a running guest, seen from the host: from its cgroup,
//! with each one's pid inside the guest (the last `NSpid` field).

use std::path::Path;

use vs_config::{GuestName, Paths};

use crate::error::Result;

/// One guest process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestProcess {
    /// Its pid on the host.
    pub host_pid: i32,
    /// Its pid inside the guest's pid namespace.
    pub guest_pid: i32,
}

/// The pid inside the innermost pid namespace of `host_pid`.
pub fn guest_pid(proc_root: &Path, host_pid: i32) -> Option<i32> {
    let status =
        std::fs::read_to_string(proc_root.join(host_pid.to_string()).join("status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// Whether `host_pid` lives in a pid namespace below ours (`NSpid` has
/// more than one field): a guest's processes do; its exec broker and a
/// helper that has not entered the guest yet, in the guest's cgroups but
/// in our pid namespace, do not.
fn inside_a_guest(proc_root: &Path, host_pid: i32) -> bool {
    std::fs::read_to_string(proc_root.join(host_pid.to_string()).join("status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("NSpid:"))
                .map(|l| l.split_whitespace().count() > 2)
        })
        .unwrap_or(false)
}

/// Field 23 (vsize, bytes) of `/proc/PID/stat`: what `vserver-stat` adds
/// up as VSZ.
pub fn vsize(proc_root: &Path, host_pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(proc_root.join(host_pid.to_string()).join("stat")).ok()?;
    // comm may hold spaces and parentheses: fields resume after the last
    // ')', with field 3 (state) first.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(23 - 3)?.parse().ok()
}

/// Every process of guest `name` (inside its pid namespace), by host pid.
pub fn list(paths: &Paths, name: &GuestName) -> Result<Vec<GuestProcess>> {
    let Some(cg) = crate::monitor::find_cgroup(paths, name)? else {
        return Ok(Vec::new());
    };
    let proc_root = Path::new("/proc");
    let mut out: Vec<GuestProcess> = cg
        .procs()?
        .into_iter()
        .filter(|&p| inside_a_guest(proc_root, p))
        .filter_map(|p| {
            guest_pid(proc_root, p).map(|g| GuestProcess {
                host_pid: p,
                guest_pid: g,
            })
        })
        .collect();
    out.sort_by_key(|p| p.host_pid);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nspid_is_the_innermost_pid() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("4711")).unwrap();
        std::fs::write(
            dir.path().join("4711/status"),
            "Name:\tsh\nNSpid:\t4711\t12\n",
        )
        .unwrap();
        assert_eq!(guest_pid(dir.path(), 4711), Some(12));
        assert_eq!(guest_pid(dir.path(), 1), None);
        assert!(inside_a_guest(dir.path(), 4711));
        std::fs::create_dir_all(dir.path().join("4712")).unwrap();
        std::fs::write(
            dir.path().join("4712/status"),
            "Name:\tvserver-exec\nNSpid:\t4712\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("4711/stat"),
            "4711 (a) b) S 1 4711 4711 0 -1 4194560 1 0 0 0 3 4 0 0 20 0 1 0 99 8675309 42 x\n",
        )
        .unwrap();
        assert_eq!(vsize(dir.path(), 4711), Some(8_675_309));
        assert_eq!(vsize(dir.path(), 4712), None);
        assert!(
            !inside_a_guest(dir.path(), 4712),
            "the broker is not a guest process"
        );
        let me = std::process::id() as i32;
        assert_eq!(guest_pid(Path::new("/proc"), me), Some(me));
    }
}
