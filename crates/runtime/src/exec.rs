//! `exec`, `suexec` and `enter`: a new process inside a running guest,
//! without a round trip through the monitor (DESIGN §2). A helper forked
//! from the CLI into the guest's cgroup2 directory (clone3) makes itself
//! non-dumpable, joins the guest's v1 cgroups (hybrid and legacy hosts),
//! then all of init's namespaces at once through its pidfd, takes the guest's
//! rlimits, bounding set and seccomp filter, closes every host fd, and
//! forks the command (which is then inside the guest's pid namespace).

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use vs_cgroup::GuestCgroup;
use vs_config::{GuestSpec, Paths};
use vs_sys::ns::{self, flags};

use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::plan::{Mode, Plan};
use crate::state::{self, process_start_ticks};

/// Who runs the command.
#[derive(Debug, Default)]
pub struct ExecOptions {
    /// A user name or uid of the guest (`suexec`); root when `None`.
    pub user: Option<String>,
    /// Give the command a new pty from the guest's devpts and send its
    /// master over this channel (`enter`).
    pub pty: Option<OwnedFd>,
}

/// A user of the guest, from its own `/etc/passwd`.
struct GuestUser {
    uid: u32,
    gid: u32,
    name: String,
    home: String,
}

/// Looks `who` up in the guest's `/etc/passwd` (read after joining its
/// mount namespace, so the file is the guest's).
fn lookup_user(who: &str) -> Result<GuestUser> {
    let text = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| Error::io("/etc/passwd (in the guest)", "read", e))?;
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            continue;
        }
        let (Ok(uid), Ok(gid)) = (f[2].parse::<u32>(), f[3].parse::<u32>()) else {
            continue;
        };
        if f[0] == who || who.parse::<u32>() == Ok(uid) {
            return Ok(GuestUser {
                uid,
                gid,
                name: f[0].to_owned(),
                home: f[5].to_owned(),
            });
        }
    }
    if let Ok(uid) = who.parse::<u32>() {
        return Ok(GuestUser {
            uid,
            gid: uid,
            name: who.to_owned(),
            home: "/".into(),
        });
    }
    Err(Error::Setup(format!(
        "no user '{who}' in the guest's /etc/passwd"
    )))
}

/// The running guest's init: pidfd, checked against the recorded start.
fn open_init(paths: &Paths, spec: &GuestSpec) -> Result<(OwnedFd, state::RunState)> {
    let name = &spec.name;
    let st = state::read_state(paths, name)?.ok_or_else(|| Error::NotRunning(name.to_string()))?;
    let pidfd = ns::pidfd_open(st.init_pid).map_err(|_| Error::NotRunning(name.to_string()))?;
    // Checked after opening the pidfd: if the pid was recycled before, the
    // start time differs; after, the pidfd stays with the old process.
    if process_start_ticks(Path::new("/proc"), st.init_pid) != Some(st.init_start_ticks) {
        return Err(Error::NotRunning(name.to_string()));
    }
    Ok((pidfd, st))
}

/// The helper's work after fork; returns the command's exit status.
fn helper(
    plan: &Plan,
    cg: &GuestCgroup,
    in_v2: bool,
    init: &OwnedFd,
    argv: &[String],
    opts: &ExecOptions,
) -> Result<i32> {
    vs_sys::ns::set_non_dumpable()?;
    let me = std::process::id() as i32;
    crate::timing::mark("exec helper: started");
    if in_v2 {
        cg.join_besides_v2(me)?;
    } else {
        cg.join(me)?;
    }
    crate::timing::mark("exec helper: joined cgroups");
    helper_in_cgroups(plan, init, argv, opts, std::env::var("TERM").ok())
}

/// The helper's work once it is in the guest's cgroups (here, or as a fork
/// of the guest's exec broker): namespaces, root, limits, the command.
/// `term` is the caller's `TERM`, the one variable of its environment the
/// command gets.
pub(crate) fn helper_in_cgroups(
    plan: &Plan,
    init: &OwnedFd,
    argv: &[String],
    opts: &ExecOptions,
    term: Option<String>,
) -> Result<i32> {
    vs_sys::ns::set_non_dumpable()?;
    let mut nsflags = plan.namespaces;
    if plan.virt_uptime {
        nsflags |= flags::TIME;
    }
    ns::join(init.as_fd(), nsflags)?;
    if plan.idmap.is_some() {
        ns::become_root()?;
    }
    rustix::process::chdir("/").map_err(|e| Error::io("/", "change directory", e.into()))?;
    let user = opts.user.as_deref().map(lookup_user).transpose()?;
    crate::setup::restrict(plan)?;
    crate::timing::mark("exec helper: namespaces joined, restricted");
    let mut env = plan.env_strings();
    if let Some(term) = term {
        env.push(format!("TERM={term}"));
    }
    match &user {
        Some(u) => {
            env.push(format!("HOME={}", u.home));
            env.push(format!("USER={}", u.name));
            env.push(format!("LOGNAME={}", u.name));
            let gids = [u.gid];
            // SAFETY: plain id-changing system calls with a valid group list.
            let failed = unsafe {
                libc::setgroups(1, gids.as_ptr()) != 0
                    || libc::setresgid(u.gid, u.gid, u.gid) != 0
                    || libc::setresuid(u.uid, u.uid, u.uid) != 0
            };
            if failed {
                return Err(Error::io(
                    &u.name,
                    "switch user",
                    std::io::Error::last_os_error(),
                ));
            }
            let _ = rustix::process::chdir(u.home.as_str());
        }
        None => {
            env.push("HOME=/root".into());
            env.push("USER=root".into());
            env.push("LOGNAME=root".into());
        }
    }
    // The pty (enter): opened in the guest's devpts, its master goes back
    // to the CLI; the slave becomes the command's controlling terminal.
    let slave = match &opts.pty {
        Some(sock) => {
            let master = rustix::pty::openpt(
                rustix::pty::OpenptFlags::RDWR
                    | rustix::pty::OpenptFlags::NOCTTY
                    | rustix::pty::OpenptFlags::CLOEXEC,
            )
            .map_err(|e| Error::io("/dev/ptmx (in the guest)", "open", e.into()))?;
            let slave = crate::console::peer_of(master.as_fd())?;
            Channel::from_fd(
                sock.try_clone()
                    .map_err(|e| Error::io("channel", "dup", e))?,
            )
            .send("pty", Some(master.as_fd()))?;
            Some(slave)
        }
        None => None,
    };
    // SAFETY: the helper is single-threaded; the child execs or _exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(Error::io(&argv[0], "fork", std::io::Error::last_os_error()));
    }
    if child == 0 {
        if let Some(s) = &slave
            && let Err(e) = crate::console::make_controlling_tty(s.as_fd())
        {
            eprintln!("vserver: {e}");
            // SAFETY: leave the child.
            unsafe { libc::_exit(125) };
        }
        let _ = vs_sys::ns::close_fds_from(3);
        let e = crate::reaper::exec(argv, &env);
        eprintln!("vserver: {e}");
        // SAFETY: leave the child after a failed exec.
        unsafe { libc::_exit(127) };
    }
    drop(slave);
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes into the valid status.
        let r = unsafe { libc::waitpid(child, &mut status, 0) };
        if r == child {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(Error::io(&argv[0], "wait", std::io::Error::last_os_error()));
        }
    }
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    })
}

/// Forks the helper; returns its pid.
pub fn spawn(paths: &Paths, spec: &GuestSpec, argv: &[String], opts: &ExecOptions) -> Result<i32> {
    spawn_as(paths, spec, argv, opts, false)
}

/// The plan a running guest's processes got: the one its state recorded
/// (the monitor's, RLIMIT_AS adjustment included), else today's config.
fn started_plan(spec: &GuestSpec, st: &state::RunState) -> Plan {
    let mut plan = Plan::new(spec, &st.start_mode());
    if let Some(r) = &st.exec {
        plan.apply_recorded(r);
    }
    plan
}

/// [`spawn`]; `internal`: for the runtime's own commands (a style's stop
/// script), which PRIVATE does not refuse (it refuses users' exec/enter).
fn spawn_as(
    paths: &Paths,
    spec: &GuestSpec,
    argv: &[String],
    opts: &ExecOptions,
    internal: bool,
) -> Result<i32> {
    if argv.is_empty() {
        return Err(Error::Setup("no command given".into()));
    }
    if !internal && Plan::new(spec, &Mode::Boot).private {
        return Err(Error::Private(spec.name.to_string()));
    }
    let (init, st) = open_init(paths, spec)?;
    let plan = started_plan(spec, &st);
    if plan.private && !internal {
        return Err(Error::Private(spec.name.to_string()));
    }
    for a in argv {
        CString::new(a.as_str())
            .map_err(|_| Error::Setup(format!("argument '{a}' contains NUL")))?;
    }
    // The guest's exec broker, when it runs: no cgroup migration.
    if let Some(pid) = crate::broker::spawn(paths, &spec.name, init.as_fd(), argv, opts)? {
        return Ok(pid);
    }
    let cg = crate::monitor::find_cgroup(paths, &spec.name)?
        .ok_or_else(|| Error::NotRunning(spec.name.to_string()))?;
    // Born in the guest's cgroup2 directory (CLONE_INTO_CGROUP): no
    // migration there, only into the v1 hierarchies of a hybrid host.
    let v2 = cg.v2_dir_fd().ok();
    // SAFETY: the CLI is single-threaded here; the child runs `helper` and
    // leaves with _exit.
    let forked = unsafe { ns::clone3(0, v2.as_ref().map(|f| f.as_fd())) }?;
    match forked {
        ns::Forked::Parent { pid, .. } => Ok(pid),
        ns::Forked::Child => {
            let code = match helper(&plan, &cg, v2.is_some(), &init, argv, opts) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("vserver: {e}");
                    125
                }
            };
            // SAFETY: leave the helper without the CLI's destructors.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Waits for a helper; `limit` bounds the wait (then it is killed).
pub fn wait(pid: i32, limit: Option<Duration>) -> Result<i32> {
    let deadline = limit.map(|l| Instant::now() + l);
    loop {
        let mut status = 0;
        let flags = if deadline.is_some() { libc::WNOHANG } else { 0 };
        // SAFETY: waitpid writes into the valid status.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == pid {
            return Ok(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(Error::io("exec helper", "wait", e));
        }
        if let Some(d) = deadline {
            if Instant::now() >= d {
                // SAFETY: kill and reap our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                return Ok(137);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Runs `argv` in the guest as root and returns its exit status.
pub fn run(paths: &Paths, spec: &GuestSpec, argv: &[String], opts: &ExecOptions) -> Result<i32> {
    let pid = spawn(paths, spec, argv, opts)?;
    wait(pid, None)
}

/// Runs `argv` in the guest with a time limit: the runtime's own stop
/// scripts (also in a PRIVATE guest).
pub fn run_with_timeout(
    paths: &Paths,
    spec: &GuestSpec,
    argv: &[String],
    limit: Duration,
) -> Result<i32> {
    let pid = spawn_as(paths, spec, argv, &ExecOptions::default(), true)?;
    wait(pid, Some(limit))
}
