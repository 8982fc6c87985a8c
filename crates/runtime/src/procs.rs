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

/// Every process of guest `name`, by host pid.
pub fn list(paths: &Paths, name: &GuestName) -> Result<Vec<GuestProcess>> {
    let Some(cg) = crate::monitor::find_cgroup(paths, name)? else {
        return Ok(Vec::new());
    };
    let mut out: Vec<GuestProcess> = cg
        .procs()?
        .into_iter()
        .filter_map(|p| {
            guest_pid(Path::new("/proc"), p).map(|g| GuestProcess {
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
        let me = std::process::id() as i32;
        assert_eq!(guest_pid(Path::new("/proc"), me), Some(me));
    }
}
