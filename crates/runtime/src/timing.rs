//! Phase timestamps for profiling the start and exec paths: with
//! `VSERVER_TIMING=1` in the environment of `vserver`, the CLI, the monitor
//! and the guest's init side print `timing PID MICROSECONDS PHASE` lines
//! (CLOCK_REALTIME: the guest's init runs in its own time namespace, whose
//! monotonic clock is offset; lines of different processes compare) to their
//! stderr — the monitor's and the init's go to the guest's log.
//! `bench/profile-start` turns them into a table. Off, a mark is one load
//! of a cached flag.

use std::sync::OnceLock;

/// The environment variable that turns the marks on.
pub const ENV: &str = "VSERVER_TIMING";

/// Whether marks are printed (read once per process).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os(ENV).is_some_and(|v| v == "1"))
}

/// Prints one mark when [`enabled`].
pub fn mark(phase: &str) {
    if enabled() {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
        let us = t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1_000;
        eprintln!("timing {} {us} {phase}", std::process::id());
    }
}
