//! Shared by the `security_*` tests: each test runs its body in a fresh
//! process (this test binary re-executed with only that test selected), so
//! capabilities, seccomp filters, rlimits and personas it changes die with
//! that process and never leak into the other tests.
//!
//! Inside the child the body runs on libtest's test thread, not on the main
//! thread: per-thread state (capabilities, seccomp, no_new_privs, persona) is
//! read from `/proc/thread-self`, and whatever needs a single-threaded
//! process is done in a forked child (`Command` with `pre_exec`).

#![allow(dead_code)]

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::process::Command;

/// Names the test whose body the re-executed binary should run.
const ROLE: &str = "VS_SYS_SECURITY_TEST_CHILD";

/// Runs `body` in a child process (see the module documentation); `name` is
/// the test function's name. Fails the test with the child's output if the
/// body panicked there.
pub fn in_child(name: &str, body: impl FnOnce()) {
    if std::env::var(ROLE).as_deref() == Ok(name) {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, name)
        .output()
        .expect("re-run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child for {name} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    // Guard against a vacuous pass (a misspelt name runs no test).
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "child for {name} ran no test:\n{stdout}"
    );
}

/// Fails unless the effective uid is 0: tests that need root run as root
/// and are never skipped.
pub fn require_root(test: &str) {
    let euid = rustix::process::geteuid().as_raw();
    assert_eq!(
        euid, 0,
        "{test} needs root (euid 0, with CAP_SETPCAP and CAP_SYS_ADMIN) and runs as euid \
         {euid}: run `cargo test -p vs-sys --test security_root` as root; root tests are \
         never skipped"
    );
}

/// A field of `/proc/thread-self/status` ("CapBnd", "Seccomp" ...).
pub fn status_field(field: &str) -> String {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    field_of(&status, field)
}

/// A field of a `/proc/*/status` text.
pub fn field_of(status: &str, field: &str) -> String {
    let prefix = format!("{field}:");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {field} in status:\n{status}"))
        .trim()
        .to_owned()
}

/// A capability mask field (`CapBnd` ...) of `/proc/thread-self/status`.
pub fn cap_mask(field: &str) -> u64 {
    u64::from_str_radix(&status_field(field), 16).unwrap()
}

/// Removes `caps` from the calling thread's effective set, so root behaves
/// like an unprivileged caller for them (a no-op when they are not there).
pub fn drop_effective(caps: rustix::thread::CapabilitySet) {
    let mut sets = rustix::thread::capabilities(None).unwrap();
    sets.effective.remove(caps);
    rustix::thread::set_capabilities(None, sets).unwrap();
}

/// A raw system call: its return value or its errno.
pub fn sys(nr: libc::c_long, args: [libc::c_long; 5]) -> Result<libc::c_long, i32> {
    // SAFETY: the callers pass only integers and null pointers (or pointers
    // to live locals) for the calls they make, the same contract as the C
    // function; a call the filter denies touches nothing at all.
    let r = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4]) };
    if r == -1 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap())
    } else {
        Ok(r)
    }
}

/// Calls the i386 system call `nr` through `int 0x80` from this 64-bit
/// process and returns its raw result (a negative errno on failure).
#[cfg(target_arch = "x86_64")]
pub fn int80(nr: u32, arg1: u32, arg2: u32, arg3: u32) -> i32 {
    let ret: u64;
    // SAFETY: `int 0x80` enters the kernel's i386 compat system-call path
    // with eax = number and ebx, ecx, edx = arguments. Only integers are
    // passed (no pointers: ours do not fit in 32 bits), so the kernel reads
    // or writes none of our memory. rbx cannot be an asm operand (LLVM
    // reserves it), so its value is swapped in and restored around the
    // instruction. The kernel returns in eax and preserves the other
    // registers; r8-r11 are declared clobbered anyway (older kernels zeroed
    // them on this path). The user stack is not touched (the interrupt
    // switches to the kernel stack).
    unsafe {
        core::arch::asm!(
            "xchg {b}, rbx",
            "int 0x80",
            "xchg {b}, rbx",
            b = inout(reg) u64::from(arg1) => _,
            inlateout("rax") u64::from(nr) => ret,
            in("rcx") u64::from(arg2),
            in("rdx") u64::from(arg3),
            lateout("r8") _,
            lateout("r9") _,
            lateout("r10") _,
            lateout("r11") _,
        );
    }
    ret as u32 as i32
}

/// Makes a new pty the controlling terminal of this process (in a new
/// session) and returns (master, slave). TIOCSTI on a terminal that is not
/// the caller's controlling one fails with EPERM without CAP_SYS_ADMIN, which
/// the filter's EPERM could not be told apart from.
pub fn controlling_pty() -> (OwnedFd, OwnedFd) {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::OpenptFlags;
    rustix::process::setsid().expect("setsid");
    // Closing the master when the test ends hangs the terminal up, and the
    // kernel sends SIGHUP to this session: ignore it in this throwaway
    // process.
    // SAFETY: SIG_IGN installs no handler code; only the disposition of one
    // signal changes.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    rustix::pty::grantpt(&master).unwrap();
    rustix::pty::unlockpt(&master).unwrap();
    let name: CString = rustix::pty::ptsname(&master, Vec::new()).unwrap();
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    // Opening it as a session leader without one already made it ours;
    // TIOCSCTTY says so explicitly (and is a no-op then).
    let _ = rustix::process::ioctl_tiocsctty(&slave);
    (master, slave)
}

/// Spawns `/bin/true` with `pre_exec` unsharing `flags` in the forked (so
/// single-threaded) child: the spawn error is unshare's error.
pub fn unshare_in_forked_child(flags: libc::c_int) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("/bin/true");
    // SAFETY: the closure runs between fork and exec and calls only
    // unshare(2) and reads errno: both async-signal-safe, no allocation.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(flags) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let status = cmd.status()?;
    assert!(status.success(), "/bin/true: {status}");
    Ok(())
}
