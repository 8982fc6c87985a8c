//! Advisory locks: one per guest, one for host-wide configuration changes.
//!
//! `flock(2)` locks through std's `File::try_lock`/`lock`: they vanish with
//! the process, so a crashed command never leaves a guest locked.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use vs_config::{GuestName, Paths};

use crate::error::{Error, Result};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: File,
    path: PathBuf,
}

impl Lock {
    /// The lock of guest `name` (`/run/vservers/NAME/lock`), taken without
    /// waiting: a second command on the same guest fails with [`Error::Busy`].
    pub fn guest(paths: &Paths, name: &GuestName) -> Result<Lock> {
        let path = paths.guest_run(name).join("lock");
        Self::take(&path, format!("guest '{name}'"), false)
    }

    /// The lock of guest `name`, waiting up to `limit` for a command that
    /// holds it (a start, a stop) to finish; [`Error::Busy`] after that.
    pub fn guest_waiting(
        paths: &Paths,
        name: &GuestName,
        limit: std::time::Duration,
    ) -> Result<Lock> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            match Lock::guest(paths, name) {
                Err(Error::Busy { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// The host-wide lock (`/run/vservers/.lock`) that serialises context
    /// allocation and the creation of configuration directories; waits.
    pub fn host(paths: &Paths) -> Result<Lock> {
        let path = paths.rundir().join(".lock");
        Self::take(&path, "the host configuration".into(), true)
    }

    fn take(path: &Path, what: String, wait: bool) -> Result<Lock> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create directory", e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, "open lock", e))?;
        if wait {
            file.lock().map_err(|e| Error::io(path, "lock", e))?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Busy {
                        what,
                        path: path.to_owned(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(Error::io(path, "lock", e)),
            }
        }
        Ok(Lock {
            _file: file,
            path: path.to_owned(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let name = GuestName::new("demo").unwrap();
        let first = Lock::guest(&paths, &name).unwrap();
        let e = Lock::guest(&paths, &name).unwrap_err().to_string();
        assert!(e.starts_with("guest 'demo' is busy"), "{e}");
        drop(first);
        Lock::guest(&paths, &name).unwrap();
        let _host = Lock::host(&paths).unwrap();
    }

    #[test]
    fn a_waiting_guest_lock_waits_for_the_holder_and_gives_up_at_its_limit() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let name = GuestName::new("demo").unwrap();
        let first = Lock::guest(&paths, &name).unwrap();
        let t = Instant::now();
        let e = Lock::guest_waiting(&paths, &name, Duration::from_millis(200)).unwrap_err();
        assert!(e.to_string().contains("is busy"), "{e}");
        assert!(t.elapsed() >= Duration::from_millis(200));
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(first);
        });
        Lock::guest_waiting(&paths, &name, Duration::from_secs(10)).unwrap();
        holder.join().unwrap();
    }
}
