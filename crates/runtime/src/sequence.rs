//! util-vserver's start and stop sequences with their host hooks
//! (`UV scripts/vserver.start`, `vserver.stop`), for `start`, `stop`,
//! `restart`, `condrestart` and `run`. Each holds the guest's lock from
//! its status check to its last hook, so of two starts one starts the
//! guest and the other finds it running, and every hook runs once.

use std::time::Duration;

use vs_config::{GuestSpec, Hook, Paths};

use crate::error::{Error, Result};
use crate::lock::Lock;
use crate::plan::Mode;
use crate::start::Started;

/// How long a start or stop waits for another command on the same guest.
pub const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Runs `hooks` in order; the first failure is the error.
pub fn run_hooks(paths: &Paths, spec: &GuestSpec, hooks: &[Hook]) -> Result<()> {
    hooks
        .iter()
        .try_for_each(|h| crate::hooks::run(paths, spec, *h))
}

/// The stop hooks before the guest goes.
pub const BEFORE_STOP: &[Hook] = &[Hook::PreStop];
/// The stop hooks after it went.
pub const AFTER_STOP: &[Hook] = &[Hook::PostStop, Hook::PostpostStop];
/// The start hooks before the guest is made.
pub const BEFORE_START: &[Hook] = &[Hook::PrepreStart, Hook::PreStart];

/// The start sequence: `Ok(None)` if the guest is running already. A
/// failing prepre-start or pre-start hook aborts before anything is made;
/// a failing post-start hook stops the guest again (with its stop hooks).
pub fn start_with_hooks(paths: &Paths, spec: &GuestSpec, mode: &Mode) -> Result<Option<Started>> {
    let lock = Lock::guest_waiting(paths, &spec.name, LOCK_WAIT)?;
    if crate::status(paths, &spec.name)?.is_running() {
        return Ok(None);
    }
    run_hooks(paths, spec, BEFORE_START)?;
    let started = crate::start::start_locked(paths, spec, mode, &lock)?;
    if let Err(e) = crate::hooks::run(paths, spec, Hook::PostStart) {
        if let Err(s) = stop_locked(paths, spec, &lock) {
            return Err(Error::Setup(format!("{e}; stopping the guest again: {s}")));
        }
        return Err(Error::Setup(format!("{e}; the guest was stopped again")));
    }
    Ok(Some(started))
}

/// The stop sequence; false if the guest was not running.
pub fn stop_with_hooks(paths: &Paths, spec: &GuestSpec) -> Result<bool> {
    let lock = Lock::guest_waiting(paths, &spec.name, LOCK_WAIT)?;
    stop_locked(paths, spec, &lock)
}

fn stop_locked(paths: &Paths, spec: &GuestSpec, lock: &Lock) -> Result<bool> {
    let running = crate::status(paths, &spec.name)?.is_running();
    if running {
        run_hooks(paths, spec, BEFORE_STOP)?;
    }
    let was = crate::stop::stop_locked(paths, spec, lock)?;
    if was {
        run_hooks(paths, spec, AFTER_STOP)?;
    }
    Ok(was)
}
