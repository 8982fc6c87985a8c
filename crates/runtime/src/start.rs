//! `start` and `run` from the CLI's side: spawn the monitor and wait for
//! its report.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use vs_config::{GuestName, GuestSpec, Paths};

use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::lock::Lock;
use crate::plan::Mode;

/// Where `run`'s monitor finds the caller's stdin, stdout and stderr.
pub const RUN_STDIO: [RawFd; 3] = [4, 5, 6];

/// A started guest.
#[derive(Debug)]
pub struct Started {
    /// The init's pid on the host.
    pub init_pid: i32,
    /// The monitor's report channel (for `run`: it reports `exit N`).
    pub report: Channel,
    /// The monitor process.
    pub monitor: std::process::Child,
}

/// The arguments of the hidden `--monitor NAME MODE...` command line
/// (the prefix comes in `VSERVER_ROOT`).
pub fn monitor_args(name: &GuestName, mode: &Mode) -> Vec<String> {
    let mut v = vec!["--monitor".to_string(), name.to_string()];
    match mode {
        Mode::Boot => v.push("boot".into()),
        Mode::Rescue(cmd) => {
            v.push("rescue".into());
            v.extend(cmd.iter().cloned());
        }
        Mode::Run(cmd) => {
            v.push("run".into());
            v.extend(cmd.iter().cloned());
        }
    }
    v
}

/// Parses what [`monitor_args`] made (after `--monitor NAME`).
pub fn parse_mode(args: &[String]) -> Option<Mode> {
    let (first, rest) = args.split_first()?;
    match first.as_str() {
        "boot" if rest.is_empty() => Some(Mode::Boot),
        "rescue" if !rest.is_empty() => Some(Mode::Rescue(rest.to_vec())),
        "run" if !rest.is_empty() => Some(Mode::Run(rest.to_vec())),
        _ => None,
    }
}

/// Refuses to start `spec` while another guest of this prefix that has
/// the same context or an overlapping id range runs, or is being started
/// or stopped (its guest lock is held): `build` checks this too, but
/// configuration files can be copied or edited afterwards.
fn check_clashes(paths: &Paths, spec: &GuestSpec) -> Result<()> {
    use vs_config::context::{self, Clash};
    let _host = Lock::host(paths)?;
    let (claims, _) = context::claims(paths)?;
    for other in &claims {
        let Some((their_file, what)) =
            context::clash(paths, &spec.name, spec.context, spec.idmap, other)
        else {
            continue;
        };
        let state = if crate::status(paths, &other.name)?.is_running() {
            "which is running"
        } else if guest_lock_held(paths, &other.name) {
            "which another vserver command is starting, stopping or changing"
        } else {
            continue;
        };
        let (theirs, ours) = (&other.name, &spec.name);
        let msg = match what {
            Clash::Context(x) => format!(
                "guest '{ours}' cannot start: its context {x} ({}) is also the context of guest '{theirs}' ({}), {state}: stop '{theirs}' or give one of them another context",
                spec.cfgdir.join("context").display(),
                their_file.display()
            ),
            Clash::Range(a, b) => {
                let our_file = if spec.config.uidmap.is_some() {
                    "uidmap"
                } else {
                    "context"
                };
                format!(
                    "guest '{ours}' cannot start: its id range {a} ({}) overlaps the range {b} of guest '{theirs}' ({}), {state}: stop '{theirs}' or change one of the ranges (uidmap: BASE COUNT, or another context)",
                    spec.cfgdir.join(our_file).display(),
                    their_file.display()
                )
            }
        };
        return Err(Error::Setup(msg));
    }
    Ok(())
}

/// Whether another command holds the guest lock of `name` (without making
/// the lock file if it is not there).
fn guest_lock_held(paths: &Paths, name: &GuestName) -> bool {
    let path = paths.guest_run(name).join("lock");
    match std::fs::File::open(&path) {
        Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

/// Starts guest `spec` in `mode`: takes the guest lock, spawns the monitor
/// (the `vserver` binary itself, as `vserver:[NAME]`, in its own session,
/// output to the guest's log) and waits until it reports.
pub fn start(paths: &Paths, spec: &GuestSpec, mode: &Mode) -> Result<Started> {
    let lock = Lock::guest(paths, &spec.name)?;
    start_locked(paths, spec, mode, &lock)
}

/// [`start`] for a caller that holds the guest's lock already.
pub fn start_locked(paths: &Paths, spec: &GuestSpec, mode: &Mode, _lock: &Lock) -> Result<Started> {
    let name = &spec.name;
    if crate::status(paths, name)?.is_running() {
        return Err(Error::Running(name.to_string()));
    }
    check_clashes(paths, spec)?;
    // Leftovers of a guest that ended without its monitor (crash, SIGKILL).
    crate::monitor::cleanup(paths, name)?;
    let log_path = paths.guest_log(name);
    if let Some(d) = log_path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, "create directory", e))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io(&log_path, "open log", e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io(&log_path, "open log", e))?;
    let (ours, theirs) = Channel::pair()?;
    let theirs_fd = theirs.fd().as_raw_fd();
    // `run`: the command gets our stdin, stdout and stderr (the monitor's
    // own stay the log). Copies above the range the child's dup2s write.
    let stdio: Vec<OwnedFd> = if matches!(mode, Mode::Run(_)) {
        (0..3)
            .map(|fd| {
                // SAFETY: F_GETFD only reads the descriptor's flags.
                if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                    // A closed stdio (a daemon's): the command gets /dev/null.
                    // Moved above 10, where the child's own stdio set-up
                    // cannot overwrite it.
                    let null = std::fs::OpenOptions::new()
                        .read(fd == 0)
                        .write(fd != 0)
                        .open("/dev/null")
                        .map_err(|e| Error::io("/dev/null", "open", e))?;
                    return rustix::io::fcntl_dupfd_cloexec(&null, 10)
                        .map_err(|e| Error::io("/dev/null", "duplicate", e.into()));
                }
                rustix::io::fcntl_dupfd_cloexec(
                    // SAFETY: open (checked above) for the rest of this call.
                    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
                    10,
                )
                .map_err(|e| Error::io(format!("fd {fd}"), "duplicate", e.into()))
            })
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    let stdio_fds: Vec<RawFd> = stdio.iter().map(|f| f.as_raw_fd()).collect();
    let exe = Path::new("/proc/self/exe");
    let mut cmd = Command::new(exe);
    // The prefix travels in the environment, not in argv: the guest's init
    // is a fork of the monitor and its argv is visible inside the guest.
    cmd.arg0(format!("vserver:[{name}]"))
        .args(monitor_args(name, mode))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("VSERVER_ROOT", paths.root())
        .envs(std::env::var_os(crate::timing::ENV).map(|v| (crate::timing::ENV, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: between fork and exec only async-signal-safe calls: setsid
    // and dup2 onto fds 3 (and 4..6 for `run`), which clears close-on-exec
    // for the copies.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::dup2(theirs_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for (&from, to) in stdio_fds.iter().zip(RUN_STDIO) {
                if libc::dup2(from, to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    crate::timing::mark("cli: spawn monitor");
    let monitor = cmd
        .spawn()
        .map_err(|e| Error::io(exe, "start the monitor", e))?;
    drop(theirs);
    drop(stdio);
    let mut monitor = monitor;
    // A monitor that failed removes what it made, then exits: waited for,
    // so a failed start returns with nothing of the guest left.
    let mut failed = |m: String| {
        let _ = monitor.wait();
        Err(Error::Setup(m))
    };
    match ours.recv()? {
        Some((m, _)) if m.starts_with("ok ") => {
            crate::timing::mark("cli: guest started");
            Ok(Started {
                init_pid: m[3..].trim().parse().unwrap_or(0),
                report: ours,
                monitor,
            })
        }
        Some((m, _)) => failed(format!(
            "guest '{name}' did not start: {}",
            m.strip_prefix("error ").unwrap_or(&m)
        )),
        None => failed(format!(
            "guest '{name}' did not start: the monitor ended without a report (see {})",
            log_path.display()
        )),
    }
}
