//! `stop`: the style's stop command, then `apps/init/killseq`, then
//! whatever is left through the cgroup. Works with or without a live
//! monitor.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use vs_config::{GuestSpec, InitStyle, Paths};
use vs_sys::ns;

use crate::error::{Error, Result};
use crate::lock::Lock;
use crate::plan::{Init, Mode, Plan};
use crate::state::{self, process_start_ticks};

/// Waits until the process behind `pidfd` ends, at most `limit`.
fn wait_exit(pidfd: BorrowedFd<'_>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )];
        let ts = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

/// Stops guest `spec`. Returns false if it was not running.
pub fn stop(paths: &Paths, spec: &GuestSpec) -> Result<bool> {
    let lock = Lock::guest(paths, &spec.name)?;
    stop_locked(paths, spec, &lock)
}

/// [`stop`] for a caller that holds the guest's lock already.
pub fn stop_locked(paths: &Paths, spec: &GuestSpec, _lock: &Lock) -> Result<bool> {
    let name = &spec.name;
    let Some(st) = state::read_state(paths, name)? else {
        crate::monitor::cleanup(paths, name)?;
        return Ok(false);
    };
    let pidfd = match ns::pidfd_open(st.init_pid) {
        Ok(fd)
            if process_start_ticks(std::path::Path::new("/proc"), st.init_pid)
                == Some(st.init_start_ticks) =>
        {
            fd
        }
        _ => {
            crate::monitor::cleanup(paths, name)?;
            return Ok(false);
        }
    };
    // The mode it was started in: a rescue or run instance has no style
    // to stop, only its command.
    let mode = st.start_mode();
    let plan = Plan::new(spec, &mode);
    let killseq = &spec.init.killseq;
    let marker = state::stopping_file(paths, name);
    std::fs::write(&marker, b"").map_err(|e| Error::io(&marker, "write", e))?;
    // The whole stop is bounded (README): the style's stop gets at most the
    // first kill-sequence wait, the kill sequence its own waits, then
    // SIGKILL and a short wait for the monitor's cleanup.
    let style_limit =
        Duration::from_secs(u64::from(killseq.then.first().map_or(5, |w| w.0)).max(1));
    // 1. The style's own stop.
    let boot = matches!(mode, Mode::Boot);
    let stop_cmd: Option<Vec<String>> = match (&plan.init, plan.style) {
        (Init::Reaper { .. }, InitStyle::Sysv) if boot => Some(vec![
            "/etc/init.d/rc".into(),
            spec.init.runlevel_stop.clone(),
        ]),
        (_, InitStyle::Cmd) if boot => spec.init.cmd_stop.clone(),
        _ => None,
    };
    if let Some(cmd) = stop_cmd {
        let exists = cmd[0] != "/etc/init.d/rc" || spec.vdir.join("etc/init.d/rc").exists();
        if exists {
            // Through the runtime's own exec path: PRIVATE refuses only
            // users' exec and enter.
            let _ = crate::exec::run_with_timeout(paths, spec, &cmd, style_limit);
        }
    } else if boot && plan.style == InitStyle::Plain {
        // systemd halts on SIGRTMIN+3; sysvinit's telinit path comes later.
        let _ = ns::pidfd_signal(pidfd.as_fd(), libc::SIGRTMIN() + 3);
        wait_exit(pidfd.as_fd(), style_limit);
    }
    // 2. The kill sequence: each signal to init and every guest process.
    let cg = crate::monitor::find_cgroup(paths, name)?;
    let signal_all = |sig: i32| {
        let _ = ns::pidfd_signal(pidfd.as_fd(), sig);
        if let Some(cg) = &cg {
            // Through the cgroup's pidfd-guarded signal: a pid that left
            // the guest and was reused by a host process is skipped.
            let pids: Vec<i32> = cg
                .procs()
                .unwrap_or_default()
                .into_iter()
                .filter(|p| *p != st.init_pid)
                .collect();
            let _ = cg.signal(sig, &pids);
        }
    };
    let mut done = wait_exit(pidfd.as_fd(), Duration::ZERO);
    if !done {
        signal_all(killseq.first);
        for (wait, sig) in &killseq.then {
            if wait_exit(pidfd.as_fd(), Duration::from_secs(u64::from(*wait))) {
                done = true;
                break;
            }
            signal_all(*sig);
        }
    }
    if !done && !wait_exit(pidfd.as_fd(), Duration::from_millis(500)) {
        // A kill sequence that does not end in SIGKILL, or an init that
        // did not go: everything, now.
        let _ = ns::pidfd_signal(pidfd.as_fd(), libc::SIGKILL);
        if let Some(cg) = &cg {
            let _ = cg.kill_all();
        }
        wait_exit(pidfd.as_fd(), Duration::from_secs(2));
    }
    // 3. The monitor cleans up when it sees init go, then exits: wait for
    // that on its pidfd (checked against its recorded start, so a reused
    // pid is never waited for). If it is dead, or does not finish, we do it.
    if let Ok(monitor) = ns::pidfd_open(st.monitor_pid)
        && st.monitor_alive()
    {
        wait_exit(monitor.as_fd(), Duration::from_secs(5));
    }
    crate::monitor::cleanup(paths, name)?;
    if state::state_file(paths, name).exists() {
        return Err(Error::Setup(format!("guest '{name}' did not stop")));
    }
    Ok(true)
}
