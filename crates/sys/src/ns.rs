//! Processes and namespaces: `clone3` into new namespaces, user-namespace id
//! maps, joining a running guest through its pidfd, time-namespace offsets,
//! and the small per-process settings (name, dumpable, host name).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use crate::{Error, Result};

/// One line of a `uid_map`/`gid_map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    /// First id inside the namespace.
    pub inside: u32,
    /// First id outside.
    pub outside: u32,
    /// Number of ids.
    pub count: u32,
}

/// Namespace flags for [`clone3`] and [`join`] (the kernel's `CLONE_NEW*`).
pub mod flags {
    /// User namespace.
    pub const USER: u64 = libc::CLONE_NEWUSER as u64;
    /// Mount namespace.
    pub const MOUNT: u64 = libc::CLONE_NEWNS as u64;
    /// PID namespace.
    pub const PID: u64 = libc::CLONE_NEWPID as u64;
    /// UTS namespace.
    pub const UTS: u64 = libc::CLONE_NEWUTS as u64;
    /// IPC namespace.
    pub const IPC: u64 = libc::CLONE_NEWIPC as u64;
    /// Network namespace.
    pub const NET: u64 = libc::CLONE_NEWNET as u64;
    /// Cgroup namespace.
    pub const CGROUP: u64 = libc::CLONE_NEWCGROUP as u64;
    /// Time namespace (only through [`super::join`]; a new one is made with
    /// [`super::new_time_namespace_for_children`]).
    pub const TIME: u64 = libc::CLONE_NEWTIME as u64;
}

/// Which side of [`clone3`] we are on.
#[derive(Debug)]
pub enum Forked {
    /// The new process.
    Child,
    /// The caller, with the child's pid and a pidfd for it.
    Parent {
        /// The child's pid in our pid namespace.
        pid: i32,
        /// A pidfd for the child.
        pidfd: OwnedFd,
    },
}

/// `struct clone_args` of clone3(2), version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Creates a process in new namespaces (`ns` is a set of [`flags`]), like
/// fork(2) otherwise, returning a pidfd to the parent; with `cgroup` the
/// child starts in that cgroup v2 directory (`CLONE_INTO_CGROUP`), so not
/// one instruction of it runs outside the guest's cgroup.
///
/// Written by hand because neither rustix nor nix wraps clone3.
///
/// # Safety
/// As for fork(2): the caller must be single-threaded (or the child must
/// only call async-signal-safe functions before exec or exit).
pub unsafe fn clone3(ns: u64, cgroup: Option<BorrowedFd<'_>>) -> Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: ns | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(cg) = cgroup {
        // CLONE_INTO_CGROUP (linux/sched.h); libc's constant is an overflowing c_int.
        args.flags |= 0x2_0000_0000;
        args.cgroup = cg.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid clone_args of the size passed; no CLONE_VM,
    // so the child gets its own copy of memory as with fork. The caller
    // upholds the single-thread requirement.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Error::io(
            "clone3",
            "create guest process",
            std::io::Error::last_os_error(),
        )),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as i32,
            // SAFETY: with CLONE_PIDFD the kernel stored a new, owned fd.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// Writes a child's uid and gid maps (`/proc/PID/{uid,gid}_map`).
pub fn write_id_maps(pid: i32, maps: &[IdMapping]) -> Result<()> {
    let text: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect();
    for file in ["uid_map", "gid_map"] {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, &text).map_err(|e| Error::io(&path, "write id map", e))?;
    }
    Ok(())
}

/// Makes the calling process root of its (user) namespace: no
/// supplementary groups, gid 0, uid 0. After clone3 into a new user
/// namespace the process keeps its old kernel ids, which are unmapped there,
/// until it does this.
pub fn become_root() -> Result<()> {
    // SAFETY: plain system calls without pointers (setgroups gets an empty list).
    let failed = unsafe {
        libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(0, 0, 0) != 0
            || libc::setresuid(0, 0, 0) != 0
    };
    if failed {
        return Err(Error::io(
            "setresuid",
            "become root in the guest",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Joins the namespaces `ns` (a set of [`flags`]) of the process behind
/// `pidfd`, all at once (setns(2) with a pidfd, Linux ≥ 5.8).
pub fn join(pidfd: BorrowedFd<'_>, ns: u64) -> Result<()> {
    // SAFETY: setns with a valid pidfd and a flag set; no pointers.
    let ret = unsafe { libc::setns(pidfd.as_raw_fd(), ns as libc::c_int) };
    if ret != 0 {
        return Err(Error::io(
            "setns",
            "join the guest's namespaces",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Puts the caller in a new cgroup namespace rooted at the cgroups it is
/// in now, in every hierarchy.
pub fn new_cgroup_namespace() -> Result<()> {
    // SAFETY: unshare with one flag; changes only the caller's view of
    // /proc/self/cgroup and of cgroup mounts.
    if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
        return Err(Error::io(
            "unshare",
            "new cgroup namespace",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Makes the children of the caller start in a new time namespace whose
/// monotonic and boot-time clocks read about zero: the guest's uptime then
/// counts from its start (VIRT_UPTIME). The caller itself stays where it is.
pub fn new_time_namespace_for_children() -> Result<()> {
    // SAFETY: unshare with one flag; affects only the time namespace that
    // children of this (single-threaded) process will get.
    if unsafe { libc::unshare(libc::CLONE_NEWTIME) } != 0 {
        return Err(Error::io(
            "unshare",
            "new time namespace",
            std::io::Error::last_os_error(),
        ));
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    let boot = ts.tv_sec;
    // SAFETY: as above.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let mono = ts.tv_sec;
    let path = PathBuf::from("/proc/self/timens_offsets");
    std::fs::write(
        &path,
        format!("monotonic {} 0\nboottime {} 0\n", -mono, -boot),
    )
    .map_err(|e| Error::io(&path, "write time offsets", e))
}

/// Sets the process name (`/proc/PID/comm`, 15 bytes at most).
pub fn set_name(name: &str) -> Result<()> {
    let mut bytes: Vec<u8> = name.bytes().filter(|b| *b != 0).take(15).collect();
    bytes.push(0);
    let c = std::ffi::CStr::from_bytes_with_nul(&bytes).map_err(|_| Error::InvalidPath {
        path: name.into(),
        reason: "not a process name",
    })?;
    rustix::thread::set_name(c).map_err(|e| Error::io("prctl", "set process name", e))
}

/// Makes the process non-dumpable: no ptrace, no `/proc/PID/{mem,exe,fd}`
/// for anyone without CAP_SYS_PTRACE in the host's user namespace.
pub fn set_non_dumpable() -> Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| Error::io("prctl", "set non-dumpable", e))
}

/// Sets host name and (NIS) domain name in the caller's UTS namespace.
pub fn set_uts(hostname: &str, domainname: Option<&str>) -> Result<()> {
    rustix::system::sethostname(hostname.as_bytes())
        .map_err(|e| Error::io(hostname, "set host name", e))?;
    if let Some(d) = domainname {
        rustix::system::setdomainname(d.as_bytes())
            .map_err(|e| Error::io(d, "set domain name", e))?;
    }
    Ok(())
}

/// Closes every file descriptor from `first` up.
pub fn close_fds_from(first: u32) -> Result<()> {
    // SAFETY: close_range closes fds; the caller owns all fds >= first
    // (nothing else in this process uses them after this call).
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
    if ret != 0 {
        return Err(Error::io(
            "close_range",
            "close inherited files",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Opens a pidfd for `pid`.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    let p = rustix::process::Pid::from_raw(pid).ok_or_else(|| Error::InvalidPath {
        path: pid.to_string().into(),
        reason: "not a process id",
    })?;
    rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
        .map_err(|e| Error::io(format!("/proc/{pid}"), "open pidfd", e))
}

/// Sends `signal` through a pidfd (never hits a recycled pid).
pub fn pidfd_signal(pidfd: BorrowedFd<'_>, signal: i32) -> Result<()> {
    // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret != 0 {
        return Err(Error::io(
            "pidfd_send_signal",
            "signal",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// exit(code).
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
}

impl Exit {
    /// The shell's convention: the code, or 128 + signal.
    pub fn shell_status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Waits for the child behind `pidfd` to end (`waitid(P_PIDFD)`); with
/// `nohang`, returns `None` if it still runs.
pub fn wait_pidfd(pidfd: BorrowedFd<'_>, nohang: bool) -> Result<Option<Exit>> {
    loop {
        // SAFETY: siginfo_t is plain data; zeroed is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let options = libc::WEXITED | if nohang { libc::WNOHANG } else { 0 };
        // SAFETY: waitid writes into the valid siginfo_t.
        let ret = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                options,
            )
        };
        if ret != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(Error::io("waitid", "wait for child", e));
        }
        // SAFETY: after a successful waitid, si_pid/si_status are valid to read.
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        return Ok(Some(match info.si_code {
            libc::CLD_EXITED => Exit::Code(status),
            _ => Exit::Signal(status),
        }));
    }
}

/// Borrows an fd, for callers holding an `OwnedFd`.
pub fn borrow(fd: &OwnedFd) -> BorrowedFd<'_> {
    fd.as_fd()
}
