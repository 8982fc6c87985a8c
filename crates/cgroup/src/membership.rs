//! Which cgroups a process is in: `/proc/PID/cgroup`.
//!
//! Each line is `HIERARCHY-ID:CONTROLLER-LIST:PATH` (cgroups(7)). The cgroup2
//! line is `0::PATH`; a v1 line lists its controllers separated by commas
//! (`4:cpu,cpuacct:/x`) or names a named hierarchy (`9:name=systemd:/`). The
//! path may itself contain `:`, so a line is split at the first two colons
//! only.

use std::path::{Component, Path, PathBuf};

use crate::{Error, Hierarchy, Result};

/// Suffix the kernel appends to the cgroup2 path of a removed cgroup.
const DELETED: &str = " (deleted)";

/// One parsed line of `/proc/PID/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    id: u32,
    controllers: Vec<String>,
    path: String,
}

/// The parsed content of `/proc/PID/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Membership {
    entries: Vec<Entry>,
}

impl Membership {
    /// Parses the text of `/proc/self/cgroup` (a pure function; errors name
    /// `/proc/self/cgroup`).
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_file(text, Path::new("/proc/self/cgroup"))
    }

    /// Reads and parses `/proc/self/cgroup`.
    pub fn of_self() -> Result<Self> {
        Self::read(Path::new("/proc/self/cgroup"))
    }

    /// Reads and parses `/proc/PID/cgroup`. Paths are relative to the
    /// caller's cgroup namespace.
    pub fn of_pid(pid: i32) -> Result<Self> {
        Self::read(&PathBuf::from(format!("/proc/{pid}/cgroup")))
    }

    fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read", e))?;
        Self::parse_file(&text, path)
    }

    fn parse_file(text: &str, file: &Path) -> Result<Self> {
        let bad = |line: &str, reason| Error::Parse {
            path: file.to_path_buf(),
            line: line.to_owned(),
            reason,
        };
        let mut entries = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad(line, "expected ID:CONTROLLERS:PATH"));
            };
            let id: u32 = id
                .parse()
                .map_err(|_| bad(line, "hierarchy id is not a number"))?;
            if !path.starts_with('/') {
                return Err(bad(line, "cgroup path is not absolute"));
            }
            let controllers: Vec<String> = if controllers.is_empty() {
                Vec::new()
            } else {
                controllers.split(',').map(str::to_owned).collect()
            };
            if (id == 0) != controllers.is_empty() {
                return Err(bad(
                    line,
                    "only the cgroup2 line (id 0) may have no controllers",
                ));
            }
            entries.push(Entry {
                id,
                controllers,
                path: path.to_owned(),
            });
        }
        Ok(Membership { entries })
    }

    /// The cgroup2 path (the `0::` line), as written by the kernel.
    pub fn v2(&self) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.id == 0)
            .map(|e| e.path.as_str())
    }

    /// The path in the v1 hierarchy that carries `controller` (a controller
    /// name such as `memory`, or `name=systemd` for a named hierarchy).
    pub fn v1(&self, controller: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.id != 0 && e.controllers.iter().any(|c| c == controller))
            .map(|e| e.path.as_str())
    }

    /// The path in `hierarchy`.
    pub fn path(&self, hierarchy: Hierarchy) -> Option<&str> {
        match hierarchy {
            Hierarchy::V2 => self.v2(),
            Hierarchy::V1(c) => self.v1(c.name()),
        }
    }
}

/// Turns a cgroup path (`/a/b`, as in `/proc/PID/cgroup` or a configured
/// base) into a path relative to the hierarchy's mount point.
///
/// Refuses `..` (a cgroup outside our cgroup namespace shows as `/../x`, and
/// we cannot place anything correctly relative to it) and the kernel's
/// ` (deleted)` marker.
pub(crate) fn relative_cgroup_path(path: &str) -> Result<PathBuf> {
    let invalid = |reason| Error::InvalidCgroupPath {
        path: path.to_owned(),
        reason,
    };
    if path.ends_with(DELETED) {
        return Err(invalid("the cgroup has been removed"));
    }
    if path.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    let mut rel = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => rel.push(n),
            Component::ParentDir => {
                return Err(invalid(
                    "contains '..' (outside the caller's cgroup namespace?)",
                ));
            }
            Component::Prefix(_) => return Err(invalid("not a unix path")),
        }
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::V1Controller;

    /// `/proc/self/cgroup` of a shell on the dev VM (machine.md §0).
    const HYBRID_HOST: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/4d81563fb618732e68e057140c76b4ea
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn parses_the_hybrid_host() {
        let m = Membership::parse(HYBRID_HOST).unwrap();
        assert_eq!(m.v2(), Some("/"));
        assert_eq!(
            m.v1("memory"),
            Some("/process_api/4d81563fb618732e68e057140c76b4ea")
        );
        assert_eq!(m.v1("pids"), Some("/"));
        assert_eq!(m.v1("name=systemd"), Some("/"));
        assert_eq!(m.v1("hugetlb"), None);
        assert_eq!(
            m.path(Hierarchy::V1(V1Controller::Memory)),
            Some("/process_api/4d81563fb618732e68e057140c76b4ea")
        );
        assert_eq!(m.path(Hierarchy::V2), Some("/"));
    }

    #[test]
    fn parses_unified_and_comounted_controllers() {
        let m = Membership::parse("0::/user.slice/user-0.slice/session-3.scope\n").unwrap();
        assert_eq!(m.v2(), Some("/user.slice/user-0.slice/session-3.scope"));
        assert_eq!(m.v1("memory"), None);

        let m = Membership::parse("4:cpu,cpuacct:/a\n3:net_cls,net_prio:/b\n").unwrap();
        assert_eq!(m.v1("cpu"), Some("/a"));
        assert_eq!(m.v1("cpuacct"), Some("/a"));
        assert_eq!(m.v1("net_prio"), Some("/b"));
        assert_eq!(m.v2(), None);
    }

    #[test]
    fn path_may_contain_colons() {
        let m = Membership::parse("0::/a:b/c\n").unwrap();
        assert_eq!(m.v2(), Some("/a:b/c"));
    }

    #[test]
    fn rejects_malformed_lines() {
        for text in [
            "garbage\n",
            "x::/\n",
            "0::relative\n",
            "3::/\n",
            "0:memory:/\n",
        ] {
            let err = Membership::parse(text).unwrap_err();
            assert!(matches!(err, Error::Parse { .. }), "{text:?}: {err}");
            assert!(err.to_string().contains("/proc/self/cgroup"), "{err}");
        }
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_cgroup_path("/").unwrap(), PathBuf::new());
        assert_eq!(relative_cgroup_path("/a/b").unwrap(), PathBuf::from("a/b"));
        assert_eq!(relative_cgroup_path("a//b/").unwrap(), PathBuf::from("a/b"));
        assert!(relative_cgroup_path("/../x").is_err());
        assert!(relative_cgroup_path("/a (deleted)").is_err());
    }

    #[test]
    fn reads_own_cgroup_file() {
        // Every Linux kernel with cgroups has this file; it must parse.
        Membership::of_self().unwrap();
        Membership::of_pid(std::process::id() as i32).unwrap();
    }
}
