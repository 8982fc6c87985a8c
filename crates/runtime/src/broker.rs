//! The exec broker: a process the monitor keeps in the guest's cgroups (all
//! hierarchies), in the host's namespaces, listening on
//! `run/vservers/NAME/exec.sock` (root only). `exec`, `suexec` and `enter`
//! ask it for their helper: a fork of the broker is born in the guest's
//! cgroups, so it needs no cgroup migration. On a host with v1 hierarchies
//! the first migration after a quiet spell waits for an RCU grace period
//! (5-20 ms here; see bench/profile-start.sh), which made up most of an
//! exec. The helper then does what [`crate::exec`]'s does: join the init's
//! namespaces (through the init's pidfd the CLI sends), become the guest's
//! root, restrict itself, fork the command.
//!
//! The guest cannot reach the broker: it is in the host's pid namespace
//! (invisible, unsignalable from inside), non-dumpable (no ptrace, no
//! /proc/PID/fd), and its socket lives in the host's root-only run
//! directory. It counts as one process and its memory in the guest's
//! cgroups. When it is gone (killed, OOM, a guest started by an older
//! version) the CLI does the work itself, as before (a killed broker stays
//! a zombie of the monitor until the guest stops).
//!
//! Protocol (SEQPACKET, one fd per message): the CLI sends `exec JSON` with
//! the init's pidfd, `stdin`/`stdout`/`stderr` with its own descriptors,
//! optionally `pty` with the channel the pty master goes back on, then
//! `end`; the helper answers `status N` or `error TEXT`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use vs_config::{GuestName, Paths};

use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::exec::ExecOptions;
use crate::plan::Plan;

/// The broker's socket of guest `name`.
pub fn socket_path(paths: &Paths, name: &GuestName) -> PathBuf {
    paths.guest_run(name).join("exec.sock")
}

/// What the CLI asks for.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Request {
    argv: Vec<String>,
    user: Option<String>,
    term: Option<String>,
}

fn net<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(rustix::io::Errno) -> Error + 'a {
    move |e| Error::io(path, op, e.into())
}

/// Binds the listening socket (before the broker is forked). `None` when
/// the path does not fit a socket address: guests then exec without it.
pub fn listen(path: &Path) -> Result<Option<OwnedFd>> {
    let Ok(addr) = SocketAddrUnix::new(path) else {
        return Ok(None);
    };
    let _ = std::fs::remove_file(path);
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(net(path, "socket"))?;
    rustix::net::bind(&fd, &addr).map_err(net(path, "bind"))?;
    // Connecting takes write permission on the socket: root's alone.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| Error::io(path, "chmod", e))?;
    rustix::net::listen(&fd, 16).map_err(net(path, "listen"))?;
    Ok(Some(fd))
}

/// The broker's life, in a fork of the monitor that the monitor has put
/// in the guest's cgroups (it waits on `ready` for that): accepts, forks a
/// helper per request. Never returns.
pub fn serve(listener: OwnedFd, ready: OwnedFd, plan: &Plan) -> ! {
    let _ = vs_sys::ns::set_non_dumpable();
    let _ = vs_sys::ns::set_name("vserver-exec");
    // SAFETY: SIG_IGN for SIGCHLD: helpers are reaped by the kernel.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    // Go once the monitor says the cgroup moves are done (EOF: they failed,
    // or the monitor is gone: leave).
    let mut b = [0u8; 1];
    if !matches!(rustix::io::read(&ready, &mut b), Ok(1)) {
        // SAFETY: leave the broker without the monitor's destructors.
        unsafe { libc::_exit(0) };
    }
    drop(ready);
    loop {
        let conn = match rustix::net::accept_with(&listener, SocketFlags::CLOEXEC) {
            Ok(c) => c,
            Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::CONNABORTED) => continue,
            // SAFETY: as above.
            Err(_) => unsafe { libc::_exit(1) },
        };
        // SAFETY: the broker is single-threaded; the child handles the
        // request and leaves with _exit.
        match unsafe { libc::fork() } {
            0 => {
                // The helper waits for its command, and an ignored SIGCHLD
                // would survive into the command's exec.
                // SAFETY: restoring the default disposition.
                unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
                drop(listener);
                let chan = Channel::from_fd(conn);
                let reply = match handle(&chan, plan) {
                    Ok(code) => format!("status {code}"),
                    Err(e) => format!("error {e}"),
                };
                let _ = chan.send(&reply, None);
                // SAFETY: leave the helper without destructors.
                unsafe { libc::_exit(0) };
            }
            _ => drop(conn),
        }
    }
}

/// One request, in a fork of the broker.
fn handle(chan: &Channel, plan: &Plan) -> Result<i32> {
    let (msg, init) = chan
        .recv()?
        .ok_or_else(|| Error::Setup("exec broker: no request".into()))?;
    let req: Request = msg
        .strip_prefix("exec ")
        .and_then(|j| serde_json::from_str(j).ok())
        .ok_or_else(|| Error::Setup("exec broker: malformed request".into()))?;
    let init = init.ok_or_else(|| Error::Setup("exec broker: no init pidfd".into()))?;
    let mut pty = None;
    loop {
        let Some((m, fd)) = chan.recv()? else {
            return Err(Error::Setup("exec broker: request cut short".into()));
        };
        let target = match m.as_str() {
            "stdin" => 0,
            "stdout" => 1,
            "stderr" => 2,
            "pty" => {
                pty = fd;
                continue;
            }
            "end" => break,
            other => return Err(Error::Setup(format!("exec broker: unexpected {other}"))),
        };
        let fd = fd.ok_or_else(|| Error::Setup(format!("exec broker: {m} without fd")))?;
        // SAFETY: dup2 of a descriptor we own onto a stdio slot.
        if unsafe { libc::dup2(fd.as_raw_fd(), target) } != target {
            return Err(Error::io(m, "dup2", std::io::Error::last_os_error()));
        }
    }
    let opts = ExecOptions {
        user: req.user,
        pty,
    };
    crate::exec::helper_in_cgroups(plan, &init, &req.argv, &opts, req.term)
}

/// Asks guest `name`'s broker to run `argv`: connects, then forks a small
/// proxy that sends the request with this process's stdio and exits with
/// the command's status, so callers wait for it like for a helper.
/// `Ok(None)`: no broker answers (the caller does the work itself).
pub fn spawn(
    paths: &Paths,
    name: &GuestName,
    init: BorrowedFd<'_>,
    argv: &[String],
    opts: &ExecOptions,
) -> Result<Option<i32>> {
    let path = socket_path(paths, name);
    let Ok(addr) = SocketAddrUnix::new(&path) else {
        return Ok(None);
    };
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(net(&path, "socket"))?;
    if rustix::net::connect(&sock, &addr).is_err() {
        return Ok(None);
    }
    let req = Request {
        argv: argv.to_vec(),
        user: opts.user.clone(),
        term: std::env::var("TERM").ok(),
    };
    let json =
        serde_json::to_string(&req).map_err(|e| Error::Setup(format!("exec request: {e}")))?;
    // One message carries the request: a command line beyond what the
    // channel reads at once (64 KiB) goes the direct way.
    if json.len() > 60 * 1024 {
        return Ok(None);
    }
    let chan = Channel::from_fd(sock);
    // SAFETY: the CLI is single-threaded here; the child only talks to the
    // broker and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::io(
            "fork",
            "start the exec proxy",
            std::io::Error::last_os_error(),
        ));
    }
    if pid > 0 {
        return Ok(Some(pid));
    }
    let code = (|| -> Result<i32> {
        chan.send(&format!("exec {json}"), Some(init))?;
        for (i, m) in ["stdin", "stdout", "stderr"].into_iter().enumerate() {
            // SAFETY: 0..2 are open (Rust's runtime opens /dev/null for
            // closed ones at start) for the life of this process.
            let fd = unsafe { BorrowedFd::borrow_raw(i as i32) };
            chan.send(m, Some(fd))?;
        }
        if let Some(p) = &opts.pty {
            chan.send("pty", Some(p.as_fd()))?;
        }
        chan.send("end", None)?;
        match chan.recv()? {
            Some((m, _)) if m.starts_with("status ") => {
                Ok(m[7..].trim().parse::<i32>().unwrap_or(1))
            }
            Some((m, _)) => Err(Error::Setup(
                m.strip_prefix("error ").unwrap_or(&m).to_owned(),
            )),
            None => Err(Error::Setup(
                "the exec broker ended without the command's status".into(),
            )),
        }
    })();
    let code = code.unwrap_or_else(|e| {
        eprintln!("vserver: {e}");
        125
    });
    // SAFETY: leave the proxy without the CLI's destructors.
    unsafe { libc::_exit(code) }
}
