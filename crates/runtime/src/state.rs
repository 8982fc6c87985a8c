//! The run-state record of a guest (`/run/vservers/NAME/state.json`).

use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use vs_config::{GuestName, Paths, Xid};

use crate::error::{Error, Result};

/// What a running guest's monitor records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunState {
    /// The context.
    pub context: Xid,
    /// The guest init's pid in the host's pid namespace.
    pub init_pid: i32,
    /// Its start time, in clock ticks since boot (field 22 of
    /// `/proc/PID/stat`), so a recycled pid is never mistaken for it.
    pub init_start_ticks: u64,
    /// The monitor's pid.
    pub monitor_pid: i32,
    /// The monitor's start time in clock ticks since boot.
    #[serde(default)]
    pub monitor_start_ticks: u64,
    /// The guest's cgroup directories (so any command finds them, whatever
    /// cgroup it runs in).
    #[serde(default)]
    pub cgroups: Vec<std::path::PathBuf>,
    /// Host addresses the guest's start added (shared network mode), to
    /// remove at stop.
    #[serde(default)]
    pub addresses: Vec<crate::net::Address>,
    /// The host end of a private-mode guest's veth, whose NAT rules go at stop.
    #[serde(default)]
    pub private_if: Option<String>,
    /// VIRT_MEM's meminfo server (crates/runtime/src/memfs.rs): pid and
    /// start time, for a stop without the monitor to wait for its end.
    #[serde(default)]
    pub meminfo_server: Option<(i32, u64)>,
    /// How it was started: the mode words of the monitor's command line
    /// (`boot`, `rescue CMD...`, `run CMD...`; empty: `boot`), so `stop`
    /// treats a rescue or run instance as one.
    #[serde(default)]
    pub mode: Vec<String>,
    /// What its processes got (namespaces, limits, filter), for `exec`
    /// whatever the configuration says now.
    #[serde(default)]
    pub exec: Option<Box<crate::plan::Recorded>>,
}

impl RunState {
    /// Whether the monitor that wrote this is still alive.
    pub fn monitor_alive(&self) -> bool {
        process_start_ticks(Path::new("/proc"), self.monitor_pid) == Some(self.monitor_start_ticks)
    }

    /// The mode the guest was started in.
    pub fn start_mode(&self) -> crate::plan::Mode {
        crate::start::parse_mode(&self.mode).unwrap_or_default()
    }
}

/// The state file of guest `name`.
pub fn state_file(paths: &Paths, name: &GuestName) -> std::path::PathBuf {
    paths.guest_run(name).join("state.json")
}

/// Records the state of a running guest (atomically).
pub fn write_state(paths: &Paths, name: &GuestName, state: &RunState) -> Result<()> {
    let file = state_file(paths, name);
    let tmp = file.with_extension("json.tmp");
    let text = serde_json::to_string(state).map_err(|e| Error::CorruptState {
        path: file.clone(),
        message: e.to_string(),
    })?;
    fs::write(&tmp, text)
        .and_then(|_| fs::rename(&tmp, &file))
        .map_err(|e| Error::io(&file, "write", e))
}

/// The marker `stop` leaves while it stops a guest, so that a guest init
/// that answers a stop signal with reboot(2) is not restarted.
pub fn stopping_file(paths: &Paths, name: &GuestName) -> std::path::PathBuf {
    paths.guest_run(name).join("stopping")
}

/// Removes the state record (no error if it is gone).
pub fn remove_state(paths: &Paths, name: &GuestName) -> Result<()> {
    for file in [stopping_file(paths, name), state_file(paths, name)] {
        match fs::remove_file(&file) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(Error::io(&file, "remove", e)),
            _ => {}
        }
    }
    Ok(())
}

/// The recorded state, whether or not its processes still live.
pub fn read_state(paths: &Paths, name: &GuestName) -> Result<Option<RunState>> {
    let file = state_file(paths, name);
    match fs::read_to_string(&file) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| Error::CorruptState {
                path: file.clone(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&file, "read", e)),
    }
}

/// Whether a guest runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// No live init.
    Stopped,
    /// Running.
    Running {
        /// The recorded state.
        state: RunState,
        /// Time since the init started.
        uptime: Duration,
    },
}

impl Status {
    /// Whether this is [`Status::Running`].
    pub fn is_running(&self) -> bool {
        matches!(self, Status::Running { .. })
    }
}

/// Field 22 (starttime) of `/proc/PID/stat`, or `None` if there is no such
/// process.
pub fn process_start_ticks(proc_root: &Path, pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    // comm may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn uptime_ticks(proc_root: &Path) -> Option<f64> {
    let up = fs::read_to_string(proc_root.join("uptime")).ok()?;
    up.split_whitespace().next()?.parse().ok()
}

/// Reads the state of guest `name`: running only if its recorded init is
/// alive and started when recorded.
pub fn status(paths: &Paths, name: &GuestName) -> Result<Status> {
    status_in(paths, name, Path::new("/proc"))
}

fn status_in(paths: &Paths, name: &GuestName, proc_root: &Path) -> Result<Status> {
    let file = paths.guest_run(name).join("state.json");
    let text = match fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Status::Stopped),
        Err(e) => return Err(Error::io(&file, "read", e)),
    };
    let state: RunState = serde_json::from_str(&text).map_err(|e| Error::CorruptState {
        path: file.clone(),
        message: e.to_string(),
    })?;
    match process_start_ticks(proc_root, state.init_pid) {
        Some(t) if t == state.init_start_ticks => {
            let hz = rustix::param::clock_ticks_per_second() as f64;
            let since_boot = uptime_ticks(proc_root).unwrap_or(0.0);
            let secs = (since_boot - t as f64 / hz).max(0.0);
            Ok(Status::Running {
                state,
                uptime: Duration::from_secs_f64(secs),
            })
        }
        _ => Ok(Status::Stopped),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_proc(dir: &Path, pid: i32, start: u64) {
        let p = dir.join(pid.to_string());
        fs::create_dir_all(&p).unwrap();
        let fields: Vec<String> = (3..=21).map(|n| n.to_string()).collect();
        fs::write(
            p.join("stat"),
            format!("{pid} (we ird) name) {} {start} 0 0\n", fields.join(" ")),
        )
        .unwrap();
        fs::write(dir.join("uptime"), "1000.00 10.00\n").unwrap();
    }

    #[test]
    fn status_follows_the_recorded_init() {
        let root = tempfile::tempdir().unwrap();
        let proc_root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path());
        let name = GuestName::new("demo").unwrap();
        assert_eq!(
            status_in(&paths, &name, proc_root.path()).unwrap(),
            Status::Stopped
        );

        let state = RunState {
            context: Xid::new(42).unwrap(),
            init_pid: 4321,
            init_start_ticks: 500,
            monitor_pid: 4320,
            monitor_start_ticks: 1,
            cgroups: Vec::new(),
            addresses: Vec::new(),
            private_if: None,
            meminfo_server: None,
            mode: Vec::new(),
            exec: None,
        };
        let dir = paths.guest_run(&name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("state.json"),
            serde_json::to_string(&state).unwrap(),
        )
        .unwrap();
        // No such process: a stale file means stopped.
        assert_eq!(
            status_in(&paths, &name, proc_root.path()).unwrap(),
            Status::Stopped
        );
        // A recycled pid with another start time: stopped.
        fake_proc(proc_root.path(), 4321, 999);
        assert_eq!(
            status_in(&paths, &name, proc_root.path()).unwrap(),
            Status::Stopped
        );
        // The recorded process: running.
        fake_proc(proc_root.path(), 4321, 500);
        let s = status_in(&paths, &name, proc_root.path()).unwrap();
        assert!(s.is_running(), "{s:?}");

        fs::write(dir.join("state.json"), "{").unwrap();
        let e = status_in(&paths, &name, proc_root.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("state.json: corrupt run state"), "{e}");
    }

    #[test]
    fn start_ticks_of_this_process() {
        let me = std::process::id() as i32;
        assert!(process_start_ticks(Path::new("/proc"), me).is_some());
        assert!(process_start_ticks(Path::new("/proc"), -1).is_none());
    }
}
