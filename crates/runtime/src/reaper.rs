//! The built-in pid 1 of the `sysv` and `cmd` init styles, of `start
//! --rescue` and of `run`: it starts one command, reaps every orphan, and on
//! SIGTERM/SIGINT/SIGPWR passes SIGTERM to everyone and leaves once they are
//! gone (util-vserver's "fakeinit"). In `run` mode the guest ends with the
//! command, with its exit status.
//!
//! It runs in the guest's namespaces after `pivot_root`, non-dumpable, with
//! all signals blocked and taken synchronously with sigwaitinfo(2): blocked
//! signals count as handled, so the host's `stop` can reach a pid 1 that the
//! kernel otherwise shields from signals of other namespaces.

use std::convert::Infallible;
use std::ffi::CString;

use crate::error::{Error, Result};
use crate::plan::ReaperMode;

/// The command to start, checked inside the guest: the sysv style falls
/// back from `/etc/init.d/rc` to `/etc/rc.d/rc` as util-vserver does, and
/// a guest with neither (a Debian minbase tree has no init scripts at all)
/// gets no command: the reaper alone keeps the context alive, for `exec`
/// and `enter`.
pub fn resolve_main(main: &[String]) -> Result<Option<Vec<String>>> {
    let Some(first) = main.first() else {
        return Err(Error::Setup(
            "no command for the guest's init to run".into(),
        ));
    };
    let exists = |p: &str| std::fs::metadata(p).is_ok();
    if exists(first) || !first.starts_with('/') {
        return Ok(Some(main.to_vec()));
    }
    if first == "/etc/init.d/rc" {
        if exists("/etc/rc.d/rc") {
            let mut m = main.to_vec();
            m[0] = "/etc/rc.d/rc".into();
            return Ok(Some(m));
        }
        eprintln!("vserver init: no /etc/init.d/rc in the guest: nothing to start");
        return Ok(None);
    }
    Err(Error::Setup(format!("{first} does not exist in the guest")))
}

fn cstrings(v: &[String]) -> Result<Vec<CString>> {
    v.iter()
        .map(|s| CString::new(s.as_str()).map_err(|_| Error::Setup(format!("'{s}' contains NUL"))))
        .collect()
}

/// execve(2) with `argv` and exactly `env`, searching PATH of `env` for a
/// name without '/'. Returns only on failure.
pub fn exec(argv: &[String], env: &[String]) -> Error {
    let (Ok(args), Ok(envs)) = (cstrings(argv), cstrings(env)) else {
        return Error::Setup("argument contains NUL".into());
    };
    let mut candidates = Vec::new();
    if argv[0].contains('/') {
        candidates.push(argv[0].clone());
    } else {
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/bin:/usr/bin:/sbin:/usr/sbin");
        candidates.extend(path.split(':').map(|d| format!("{d}/{}", argv[0])));
    }
    let mut argp: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argp.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = envs.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // Ignored signals survive exec: whatever the host side ignored (Rust's
    // runtime ignores SIGPIPE; a shell's background job ignores SIGINT and
    // SIGQUIT) must not reach a guest program, which expects defaults.
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: restoring the default disposition of a valid signal.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    let mut last = std::io::Error::from_raw_os_error(libc::ENOENT);
    for c in candidates {
        let Ok(prog) = CString::new(c) else { continue };
        // SAFETY: argp and envp are NULL-terminated arrays of valid C
        // strings that outlive the call.
        unsafe { libc::execve(prog.as_ptr(), argp.as_ptr(), envp.as_ptr()) };
        last = std::io::Error::last_os_error();
    }
    Error::io(&argv[0], "execute in the guest", last)
}

fn sigset_all() -> libc::sigset_t {
    // SAFETY: sigfillset initialises the zeroed set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        set
    }
}

fn set_mask(how: libc::c_int, set: &libc::sigset_t) {
    // SAFETY: valid set pointer; old mask not needed.
    unsafe { libc::sigprocmask(how, set, std::ptr::null_mut()) };
}

/// Runs pid 1 (with `main` started, if any). Never returns on success.
pub fn run(main: Option<&[String]>, env: &[String], mode: ReaperMode) -> Result<Infallible> {
    let all = sigset_all();
    set_mask(libc::SIG_BLOCK, &all);
    let child = match main {
        None => 0,
        Some(main) => {
            // SAFETY: single-threaded process; the child only resets its
            // signal mask and execs.
            let child = unsafe { libc::fork() };
            if child < 0 {
                return Err(Error::io(&main[0], "fork", std::io::Error::last_os_error()));
            }
            if child == 0 {
                set_mask(libc::SIG_UNBLOCK, &all);
                let e = exec(main, env);
                eprintln!("vserver init: {e}");
                // SAFETY: leave the forked child without running the parent's destructors.
                unsafe { libc::_exit(127) };
            }
            child
        }
    };
    let mut main_status: Option<i32> = None;
    let mut stopping = false;
    loop {
        // Reap everything that has ended.
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes into the valid status.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                if pid < 0
                    && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)
                    && stopping
                {
                    // SAFETY: pid 1 leaving; the kernel kills what is left.
                    unsafe { libc::_exit(0) };
                }
                break;
            }
            if child > 0 && pid == child {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
                main_status = Some(code);
                if mode == ReaperMode::Run {
                    // SAFETY: as above: the guest ends with its command.
                    unsafe { libc::_exit(code) };
                }
            }
        }
        let _ = main_status;
        // SAFETY: the siginfo out-pointer may be NULL.
        let sig = unsafe { libc::sigwaitinfo(&all, std::ptr::null_mut()) };
        match sig {
            libc::SIGTERM | libc::SIGINT | libc::SIGPWR if !stopping => {
                stopping = true;
                // SAFETY: kill(-1) signals every process of the guest's pid
                // namespace except pid 1 itself.
                unsafe { libc::kill(-1, libc::SIGTERM) };
            }
            _ => {}
        }
    }
}
