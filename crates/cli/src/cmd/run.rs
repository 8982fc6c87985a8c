//! `start`, `stop`, `restart`, `condrestart`, `run`, `exec`, `suexec`,
//! `enter`: guests in motion.

use std::os::fd::AsFd;
use std::process::ExitCode;

use clap::Args;
use vs_config::{GuestName, GuestSpec, Paths};
use vs_runtime::Mode;
use vs_runtime::exec::ExecOptions;

use crate::cmd::status::load;

/// `start` options.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Run CMD [ARGS...] instead of the guest's init (default /bin/sleep 900);
    /// the guest ends with it
    #[arg(long, num_args = 0.., value_name = "CMD", allow_hyphen_values = true)]
    rescue: Option<Vec<String>>,
}

/// A command and its arguments.
#[derive(Debug, Args)]
pub struct CommandArgs {
    /// The command and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    cmd: Vec<String>,
}

/// `suexec USER CMD...`.
#[derive(Debug, Args)]
pub struct SuexecArgs {
    /// A user name or uid of the guest
    user: String,
    /// The command and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    cmd: Vec<String>,
}

fn code(n: i32) -> ExitCode {
    ExitCode::from(n.clamp(0, 255) as u8)
}

/// `start`.
pub fn start(paths: &Paths, name: &GuestName, a: StartArgs) -> anyhow::Result<ExitCode> {
    let spec = load(paths, name)?;
    let mode = match a.rescue {
        None => Mode::Boot,
        Some(cmd) if cmd.is_empty() => Mode::Rescue(vec!["/bin/sleep".into(), "900".into()]),
        Some(cmd) => Mode::Rescue(cmd),
    };
    if let Some(w) = spec.init.style.unsupported() {
        anyhow::bail!("{}: {w}", spec.cfgdir.join("apps/init/style").display());
    }
    if start_with_hooks(paths, &spec, &mode)?.is_none() {
        already_running(name);
    }
    Ok(ExitCode::SUCCESS)
}

/// The start sequence with util-vserver's hooks around it, under the
/// guest's lock; `None` when the guest is running already.
fn start_with_hooks(
    paths: &Paths,
    spec: &GuestSpec,
    mode: &Mode,
) -> anyhow::Result<Option<vs_runtime::start::Started>> {
    Ok(vs_runtime::sequence::start_with_hooks(paths, spec, mode)?)
}

/// util-vserver's words (and exit status 0) for a start of a running guest.
fn already_running(name: &GuestName) {
    eprintln!("Vserver '{name}' is already running");
}

/// The stop sequence with its hooks; false if the guest was not running.
fn stop_with_hooks(paths: &Paths, spec: &GuestSpec) -> anyhow::Result<bool> {
    Ok(vs_runtime::sequence::stop_with_hooks(paths, spec)?)
}

/// `stop`.
pub fn stop(paths: &Paths, name: &GuestName) -> anyhow::Result<ExitCode> {
    let spec = load(paths, name)?;
    if !stop_with_hooks(paths, &spec)? {
        eprintln!("vserver: guest '{name}' is not running");
    }
    Ok(ExitCode::SUCCESS)
}

/// `restart`; with `only_if_running`, `condrestart`.
pub fn restart(paths: &Paths, name: &GuestName, only_if_running: bool) -> anyhow::Result<ExitCode> {
    let spec = load(paths, name)?;
    let was = stop_with_hooks(paths, &spec)?;
    if only_if_running && !was {
        return Ok(ExitCode::SUCCESS);
    }
    if start_with_hooks(paths, &spec, &Mode::Boot)?.is_none() {
        already_running(name);
    }
    Ok(ExitCode::SUCCESS)
}

/// `run`: the command is in the guest's session, not in our terminal's
/// foreground group, so Ctrl-C and a `kill` of this process would not
/// reach it. From here on SIGINT goes to the guest's init as SIGINT, and
/// SIGTERM, SIGHUP and SIGQUIT as SIGTERM (its reaper passes SIGTERM to
/// everyone and ends the run), through a pidfd, as lxc-execute does.
fn forward_signals(init_pid: i32, set: libc::sigset_t) {
    let Ok(init) = vs_sys::ns::pidfd_open(init_pid) else {
        return;
    };
    std::thread::spawn(move || {
        loop {
            let mut sig = 0;
            // SAFETY: sigwait on a valid set; the signals are blocked in
            // every thread (the mask was set before this one started).
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                return;
            }
            let to = if sig == libc::SIGINT {
                libc::SIGINT
            } else {
                libc::SIGTERM
            };
            let _ = vs_sys::ns::pidfd_signal(init.as_fd(), to);
        }
    });
}

/// Blocks the signals [`forward_signals`] passes on (children that
/// `Command` starts get an empty mask again) and returns their set.
fn block_forwarded_signals() -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is valid storage for sigemptyset, which
    // initialises it; sigaddset and pthread_sigmask take it by pointer.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// `run -- CMD`: a new instance whose only job is CMD.
pub fn run(paths: &Paths, name: &GuestName, a: CommandArgs) -> anyhow::Result<ExitCode> {
    let spec = load(paths, name)?;
    // Blocked before the start, so a signal that comes while it runs waits
    // for the forwarder instead of ending us with the guest left running.
    let signals = block_forwarded_signals();
    // A new instance: a running guest is an error here, not a no-op.
    let Some(mut started) = start_with_hooks(paths, &spec, &Mode::Run(a.cmd))? else {
        anyhow::bail!("guest '{name}' is already running");
    };
    forward_signals(started.init_pid, signals);
    let status = loop {
        match started.report.recv()? {
            Some((m, _)) if m.starts_with("exit ") => {
                break m[5..].trim().parse::<i32>().unwrap_or(1);
            }
            Some(_) => continue,
            None => anyhow::bail!(
                "guest '{name}': the monitor ended without reporting the command's status"
            ),
        }
    };
    let _ = started.monitor.wait();
    vs_runtime::timing::mark("cli: exit reported, monitor gone");
    Ok(code(status))
}

fn exec_in(
    paths: &Paths,
    spec: &GuestSpec,
    cmd: &[String],
    user: Option<String>,
) -> anyhow::Result<ExitCode> {
    let opts = ExecOptions { user, pty: None };
    Ok(code(vs_runtime::exec::run(paths, spec, cmd, &opts)?))
}

/// `exec CMD...`.
pub fn exec(paths: &Paths, name: &GuestName, a: CommandArgs) -> anyhow::Result<ExitCode> {
    let spec = load(paths, name)?;
    exec_in(paths, &spec, &a.cmd, None)
}

/// `suexec USER CMD...`.
pub fn suexec(paths: &Paths, name: &GuestName, a: SuexecArgs) -> anyhow::Result<ExitCode> {
    let spec = load(paths, name)?;
    exec_in(paths, &spec, &a.cmd, Some(a.user))
}

/// The shell of `enter`: `shell`, else the first of bash and sh the guest has.
fn enter_shell(spec: &GuestSpec) -> Vec<String> {
    if let Some(s) = &spec.shell {
        return s.split_whitespace().map(str::to_owned).collect();
    }
    let root = vs_sys::root::RootDir::open(&spec.vdir).ok();
    let has = |p: &str| root.as_ref().is_some_and(|r| r.exists(p).unwrap_or(false));
    if has("bin/bash") {
        vec!["/bin/bash".into(), "-login".into()]
    } else {
        vec!["/bin/sh".into(), "-l".into()]
    }
}

/// `enter`: a login shell on a new pty of the guest, proxied.
pub fn enter(paths: &Paths, name: &GuestName) -> anyhow::Result<ExitCode> {
    let spec = load(paths, name)?;
    let (ours, theirs) = vs_runtime::channel::Channel::pair()?;
    let opts = ExecOptions {
        user: None,
        pty: Some(theirs.into_fd()),
    };
    let pid = vs_runtime::exec::spawn(paths, &spec, &enter_shell(&spec), &opts)?;
    drop(opts);
    let master = match ours.recv()? {
        Some((m, Some(fd))) if m == "pty" => fd,
        _ => {
            let status = vs_runtime::exec::wait(pid, None)?;
            return Ok(code(status));
        }
    };
    {
        let stdin = std::io::stdin();
        let stdout = std::io::stdout();
        let helper = vs_sys::ns::pidfd_open(pid)?;
        let _raw = vs_runtime::console::RawMode::enable(stdin.as_fd())?;
        vs_runtime::console::proxy(master, stdin.as_fd(), stdout.as_fd(), Some(helper.as_fd()))?;
    }
    Ok(code(vs_runtime::exec::wait(pid, None)?))
}

/// `pause` (SCHED_PAUSE): freeze every process of the guest.
pub fn pause(paths: &Paths, name: &GuestName, freeze: bool) -> anyhow::Result<ExitCode> {
    load(paths, name)?;
    if !vs_runtime::status(paths, name)?.is_running() {
        anyhow::bail!("guest '{name}' is not running");
    }
    let cg = vs_runtime::monitor::find_cgroup(paths, name)?
        .ok_or_else(|| anyhow::anyhow!("guest '{name}' has no cgroup"))?;
    if freeze {
        cg.freeze()?;
    } else {
        cg.thaw()?;
    }
    Ok(ExitCode::SUCCESS)
}
