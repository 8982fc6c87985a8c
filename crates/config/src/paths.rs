//! Where everything lives (DESIGN §3), under an optional prefix.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Result};
use crate::values::GuestName;

/// The host-wide paths, all below one root (`/` unless `VSERVER_ROOT` or
/// `--root` says otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    /// Paths below `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Paths { root: root.into() }
    }

    /// `--root` if given, else `$VSERVER_ROOT` if set and not empty, else `/`.
    pub fn from_env(cli_root: Option<PathBuf>) -> Self {
        let root = cli_root
            .or_else(|| {
                std::env::var_os("VSERVER_ROOT")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from("/"));
        Paths::new(root)
    }

    /// The prefix.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `/etc/vservers`.
    pub fn confdir(&self) -> PathBuf {
        self.root.join("etc/vservers")
    }

    /// `/etc/vservers/.defaults`.
    pub fn defaults(&self) -> PathBuf {
        self.confdir().join(".defaults")
    }

    /// `/etc/vservers/NAME`.
    pub fn guest_cfg(&self, name: &GuestName) -> PathBuf {
        self.confdir().join(name)
    }

    /// Where guest roots go: `.defaults/vdirbase` if it exists, else
    /// `/var/lib/vservers`.
    pub fn vdirbase(&self) -> PathBuf {
        self.defaults_link("vdirbase")
            .unwrap_or_else(|| self.root.join("var/lib/vservers"))
    }

    /// `/var/cache/vservers`, or `.defaults/cachebase`.
    pub fn cachebase(&self) -> PathBuf {
        self.defaults_link("cachebase")
            .unwrap_or_else(|| self.root.join("var/cache/vservers"))
    }

    /// `/run/vservers`.
    pub fn rundir(&self) -> PathBuf {
        self.root.join("run/vservers")
    }

    /// `/run/vservers/NAME`: state, monitor socket, lock.
    pub fn guest_run(&self, name: &GuestName) -> PathBuf {
        self.rundir().join(name)
    }

    /// `/var/log/vservers`.
    pub fn logdir(&self) -> PathBuf {
        self.root.join("var/log/vservers")
    }

    /// `/var/log/vservers/NAME.log`.
    pub fn guest_log(&self, name: &GuestName) -> PathBuf {
        self.logdir().join(format!("{name}.log"))
    }

    /// `.defaults/cgroup/base`: the cgroup (a path such as `/vservers`,
    /// the same in every hierarchy) the guests' cgroups go under, as
    /// `<base>/vserver/NAME`; `None` (no file): the cgroup the `vserver`
    /// command runs in. On a pure cgroup2 host it must be a cgroup without
    /// processes of its own (e.g. a slice delegated to vserver), or the
    /// kernel refuses the controllers that limits need.
    pub fn cgroup_base(&self) -> Result<Option<PathBuf>> {
        let file = self.defaults().join("cgroup/base");
        let text = match fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ConfigError::io(&file, "read", e)),
        };
        let value = text.trim();
        let path = Path::new(value);
        // (Path::components drops inner `.`: check the words themselves.)
        let ok = value.starts_with('/')
            && !value.contains('\0')
            && value.split('/').all(|w| w != "." && w != "..");
        if !ok {
            return Err(ConfigError::invalid(
                &file,
                value,
                "an absolute cgroup path without '.' or '..' (e.g. /vservers)",
            ));
        }
        Ok(Some(path.to_path_buf()))
    }

    fn defaults_link(&self, name: &str) -> Option<PathBuf> {
        let p = self.defaults().join(name);
        let meta = fs::symlink_metadata(&p).ok()?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&p).ok()?;
            Some(if target.is_absolute() {
                target
            } else {
                self.defaults().join(target)
            })
        } else if meta.is_dir() {
            Some(p)
        } else {
            None
        }
    }

    /// Every configured guest, sorted: the directories of `/etc/vservers`
    /// with a valid guest name, except the `NAME.~EPOCH~` copies that
    /// `build --force` leaves.
    pub fn guests(&self) -> Result<Vec<GuestName>> {
        let dir = self.confdir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ConfigError::io(&dir, "read directory", e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ConfigError::io(&dir, "read directory", e))?;
            if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if is_backup_name(&name) {
                continue;
            }
            if let Ok(n) = GuestName::new(&name) {
                out.push(n);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// `NAME.~1700000000~`, as `build --force` renames an old guest.
pub fn is_backup_name(name: &str) -> bool {
    name.strip_suffix('~')
        .and_then(|s| s.rsplit_once(".~"))
        .is_some_and(|(_, n)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_under_a_prefix() {
        let p = Paths::new("/x");
        let n = GuestName::new("demo").unwrap();
        assert_eq!(p.guest_cfg(&n), Path::new("/x/etc/vservers/demo"));
        assert_eq!(p.vdirbase(), Path::new("/x/var/lib/vservers"));
        assert_eq!(p.guest_run(&n), Path::new("/x/run/vservers/demo"));
        assert_eq!(p.guest_log(&n), Path::new("/x/var/log/vservers/demo.log"));
    }

    #[test]
    fn cgroup_base_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = Paths::new(dir.path());
        assert_eq!(p.cgroup_base().unwrap(), None);
        let file = p.defaults().join("cgroup/base");
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, "/vservers.slice/x\n").unwrap();
        assert_eq!(
            p.cgroup_base().unwrap(),
            Some(PathBuf::from("/vservers.slice/x"))
        );
        for bad in ["machine", "/a/../b", "", "/a/./b"] {
            fs::write(&file, bad).unwrap();
            let err = p.cgroup_base().unwrap_err().to_string();
            assert!(
                err.contains("cgroup/base") && err.contains("absolute cgroup path"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn backups_are_not_guests() {
        assert!(is_backup_name("demo.~1700000000~"));
        assert!(!is_backup_name("demo"));
        assert!(!is_backup_name("demo.~x~"));
        let dir = tempfile::tempdir().unwrap();
        let p = Paths::new(dir.path());
        for d in ["b", "a", ".defaults", "a.~12~"] {
            fs::create_dir_all(p.confdir().join(d)).unwrap();
        }
        fs::write(p.confdir().join("file"), "").unwrap();
        let names: Vec<String> = p.guests().unwrap().iter().map(|n| n.to_string()).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
