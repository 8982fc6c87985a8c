//! The cgroup mount root: layout detection, hierarchies and the file
//! operations every other module goes through.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::membership::{Membership, relative_cgroup_path};
use crate::{Error, Result};

/// `CGROUP2_SUPER_MAGIC` from `<linux/magic.h>`.
pub const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
/// `CGROUP_SUPER_MAGIC` (a v1 hierarchy) from `<linux/magic.h>`.
pub const CGROUP_SUPER_MAGIC: u64 = 0x0027_e0eb;
/// `TMPFS_MAGIC` from `<linux/magic.h>`: what holds the v1 mount points.
pub const TMPFS_MAGIC: u64 = 0x0102_1994;

/// The mount point the system's cgroups live under.
pub const SYSTEM_ROOT: &str = "/sys/fs/cgroup";

/// How the host mounted its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// `/sys/fs/cgroup` is cgroup2.
    Unified,
    /// `/sys/fs/cgroup` is a tmpfs holding v1 hierarchies, and
    /// `/sys/fs/cgroup/unified` is a (usually controller-less) cgroup2.
    Hybrid,
    /// `/sys/fs/cgroup` is a tmpfs holding v1 hierarchies only.
    Legacy,
}

impl Layout {
    /// Decides the layout from file system magics: that of the mount root,
    /// that of `ROOT/unified` (if it exists) and whether any directory under
    /// the root is a v1 hierarchy. `None`: not a cgroup mount root.
    pub fn classify(root_magic: u64, unified_magic: Option<u64>, has_v1: bool) -> Option<Layout> {
        match root_magic {
            CGROUP2_SUPER_MAGIC => Some(Layout::Unified),
            TMPFS_MAGIC if unified_magic == Some(CGROUP2_SUPER_MAGIC) => Some(Layout::Hybrid),
            TMPFS_MAGIC if has_v1 => Some(Layout::Legacy),
            _ => None,
        }
    }

    /// Detects the layout of the cgroups mounted at `root` with statfs(2).
    pub fn detect(root: &Path) -> Result<Layout> {
        let root_magic = fs_magic(root)?;
        let unified_magic = fs_magic(&root.join("unified")).ok();
        let has_v1 = root_magic == TMPFS_MAGIC && {
            let entries = std::fs::read_dir(root).map_err(|e| Error::io(root, "list", e))?;
            entries
                .filter_map(|e| e.ok())
                .any(|e| fs_magic(&e.path()).ok() == Some(CGROUP_SUPER_MAGIC))
        };
        Layout::classify(root_magic, unified_magic, has_v1).ok_or(Error::NotCgroupFs {
            path: root.to_path_buf(),
            magic: root_magic,
        })
    }
}

fn fs_magic(path: &Path) -> Result<u64> {
    let st = rustix::fs::statfs(path).map_err(|e| Error::io(path, "statfs", e))?;
    // `f_type` is a signed word in the C ABI, but every magic is a positive
    // 32-bit number; the cast reinterprets, it never loses bits we need.
    Ok(st.f_type as u64)
}

/// A v1 controller this crate knows the hierarchy directory of
/// (`ROOT/NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum V1Controller {
    /// `freezer`: freeze, thaw and race-free kill in the legacy layout.
    Freezer,
    /// `pids`: process count limit.
    Pids,
    /// `memory`: memory limits and accounting.
    Memory,
    /// `cpu`: CFS quota, shares.
    Cpu,
    /// `cpuacct`: CPU accounting.
    Cpuacct,
    /// `cpuset`: CPU and memory-node masks (a new child starts empty).
    Cpuset,
    /// `blkio`: block I/O weight and throttles.
    Blkio,
    /// `devices`: device access lists.
    Devices,
}

impl V1Controller {
    /// Every controller, in the order guests' directories are listed.
    pub const ALL: [V1Controller; 8] = [
        V1Controller::Freezer,
        V1Controller::Pids,
        V1Controller::Memory,
        V1Controller::Cpu,
        V1Controller::Cpuacct,
        V1Controller::Cpuset,
        V1Controller::Blkio,
        V1Controller::Devices,
    ];

    /// The kernel's name, which is also the directory under the mount root.
    pub fn name(self) -> &'static str {
        match self {
            V1Controller::Freezer => "freezer",
            V1Controller::Pids => "pids",
            V1Controller::Memory => "memory",
            V1Controller::Cpu => "cpu",
            V1Controller::Cpuacct => "cpuacct",
            V1Controller::Cpuset => "cpuset",
            V1Controller::Blkio => "blkio",
            V1Controller::Devices => "devices",
        }
    }

    /// The controller with this kernel name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// One cgroup hierarchy: the cgroup2 tree or a v1 controller's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hierarchy {
    /// The cgroup2 tree (`ROOT` in the unified layout, `ROOT/unified` in
    /// the hybrid one).
    V2,
    /// A v1 controller's tree, `ROOT/NAME`.
    V1(V1Controller),
}

impl fmt::Display for Hierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hierarchy::V2 => f.write_str("cgroup2"),
            Hierarchy::V1(c) => write!(f, "v1 {}", c.name()),
        }
    }
}

/// The cgroup mount root this crate works under: the seam between the
/// kernel and the unit tests.
///
/// [`CgroupFs::system`] is `/sys/fs/cgroup` with its layout detected.
/// [`CgroupFs::fixture`] is a plain directory tree posing as one, where a
/// "cgroup" is a directory holding a `cgroup.procs` file: there, creating a
/// cgroup also creates its `cgroup.procs` (and for cgroup2 `cgroup.events`
/// and `cgroup.freeze`), moving a process in appends to `cgroup.procs`,
/// removing one deletes those files first, and signals are never sent.
#[derive(Debug, Clone)]
pub struct CgroupFs {
    root: PathBuf,
    layout: Layout,
    fixture: bool,
    self_cgroup: Option<String>,
}

impl CgroupFs {
    /// `/sys/fs/cgroup`, layout detected.
    pub fn system() -> Result<Self> {
        Self::new(PathBuf::from(SYSTEM_ROOT))
    }

    /// The cgroups mounted at `root`, layout detected.
    pub fn new(root: PathBuf) -> Result<Self> {
        let layout = Layout::detect(&root)?;
        Ok(Self::with_layout(root, layout))
    }

    /// The cgroups mounted at `root`, used as if they had `layout` (no
    /// detection). E.g. a hybrid host can be driven as [`Layout::Legacy`] to
    /// use the v1 freezer.
    pub fn with_layout(root: PathBuf, layout: Layout) -> Self {
        CgroupFs {
            root,
            layout,
            fixture: false,
            self_cgroup: None,
        }
    }

    /// A plain directory tree at `root` posing as cgroups mounted in
    /// `layout` (for tests; see the type's documentation).
    pub fn fixture(root: PathBuf, layout: Layout) -> Self {
        CgroupFs {
            fixture: true,
            ..Self::with_layout(root, layout)
        }
    }

    /// Uses `text` instead of reading `/proc/self/cgroup` when the caller's
    /// own cgroups are needed (for tests).
    pub fn with_self_cgroup(mut self, text: impl Into<String>) -> Self {
        self.self_cgroup = Some(text.into());
        self
    }

    /// The mount root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Whether this is a fixture rather than the kernel's cgroups.
    pub fn is_fixture(&self) -> bool {
        self.fixture
    }

    /// The calling process's cgroups (or the text given to
    /// [`CgroupFs::with_self_cgroup`]).
    pub fn self_membership(&self) -> Result<Membership> {
        match &self.self_cgroup {
            Some(text) => Membership::parse(text),
            None => Membership::of_self(),
        }
    }

    /// Where `hierarchy` is mounted in this layout (whether or not it
    /// actually is mounted; see [`CgroupFs::is_mounted`]).
    pub fn hierarchy_root(&self, hierarchy: Hierarchy) -> Option<PathBuf> {
        match (hierarchy, self.layout) {
            (Hierarchy::V2, Layout::Unified) => Some(self.root.clone()),
            (Hierarchy::V2, Layout::Hybrid) => Some(self.root.join("unified")),
            (Hierarchy::V2, Layout::Legacy) | (Hierarchy::V1(_), Layout::Unified) => None,
            (Hierarchy::V1(c), _) => Some(self.root.join(c.name())),
        }
    }

    /// Whether `hierarchy` is mounted: its root has a `cgroup.procs`.
    pub fn is_mounted(&self, hierarchy: Hierarchy) -> bool {
        self.hierarchy_root(hierarchy)
            .is_some_and(|r| r.join("cgroup.procs").is_file())
    }

    /// Every hierarchy this layout can have that is mounted.
    pub fn mounted_hierarchies(&self) -> Vec<Hierarchy> {
        std::iter::once(Hierarchy::V2)
            .chain(V1Controller::ALL.into_iter().map(Hierarchy::V1))
            .filter(|h| self.is_mounted(*h))
            .collect()
    }

    /// The hierarchies a guest gets a cgroup in: the tracking one (cgroup2,
    /// or the v1 freezer in the legacy layout), which must be mounted, and
    /// the v1 `pids` and `memory` hierarchies (hybrid and legacy layouts)
    /// where they are mounted, so that limits can be put there.
    pub fn guest_hierarchies(&self) -> Result<Vec<Hierarchy>> {
        let (tracking, extra): (Hierarchy, &[Hierarchy]) = match self.layout {
            Layout::Unified => (Hierarchy::V2, &[]),
            Layout::Hybrid => (
                Hierarchy::V2,
                &[
                    Hierarchy::V1(V1Controller::Pids),
                    Hierarchy::V1(V1Controller::Memory),
                ],
            ),
            Layout::Legacy => (
                Hierarchy::V1(V1Controller::Freezer),
                &[
                    Hierarchy::V1(V1Controller::Pids),
                    Hierarchy::V1(V1Controller::Memory),
                ],
            ),
        };
        if !self.is_mounted(tracking) {
            return Err(Error::MissingHierarchy {
                path: self.hierarchy_root(tracking).unwrap_or_default(),
                hierarchy: tracking.to_string(),
                layout: self.layout,
            });
        }
        let mut hs = vec![tracking];
        hs.extend(extra.iter().copied().filter(|h| self.is_mounted(*h)));
        Ok(hs)
    }

    /// The directory of the cgroup at `cgroup_path` (`/a/b`) in `hierarchy`.
    pub fn cgroup_dir(&self, hierarchy: Hierarchy, cgroup_path: &str) -> Result<PathBuf> {
        let root = self
            .hierarchy_root(hierarchy)
            .ok_or_else(|| Error::MissingHierarchy {
                path: self.root.clone(),
                hierarchy: hierarchy.to_string(),
                layout: self.layout,
            })?;
        Ok(root.join(relative_cgroup_path(cgroup_path)?))
    }

    // ----- file operations; the only place that knows about fixtures -----

    /// mkdir of one cgroup.
    pub(crate) fn make_cgroup(&self, hierarchy: Hierarchy, dir: &Path) -> std::io::Result<()> {
        std::fs::DirBuilder::new().mode(0o755).create(dir)?;
        if self.fixture {
            std::fs::write(dir.join("cgroup.procs"), "")?;
            if hierarchy == Hierarchy::V2 {
                std::fs::write(dir.join("cgroup.events"), "populated 0\nfrozen 0\n")?;
                std::fs::write(dir.join("cgroup.freeze"), "0\n")?;
            }
        }
        Ok(())
    }

    /// mkdir -p of `dir` inside `hierarchy`, each new level a cgroup.
    pub(crate) fn make_cgroup_all(&self, hierarchy: Hierarchy, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.make_cgroup_all(hierarchy, parent)?;
        }
        match self.make_cgroup(hierarchy, dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                Err(Error::io(dir, "create cgroup", e))
            }
            _ => Ok(()),
        }
    }

    /// rmdir of one cgroup (that has no children).
    pub(crate) fn remove_cgroup(&self, dir: &Path) -> std::io::Result<()> {
        if self.fixture {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    return Err(std::io::Error::from_raw_os_error(libc::ENOTEMPTY));
                }
                files.push(entry.path());
            }
            for f in files {
                std::fs::remove_file(f)?;
            }
        }
        std::fs::remove_dir(dir)
    }

    /// Moves process `pid` into the cgroup `dir`.
    pub(crate) fn attach(&self, dir: &Path, pid: i32) -> Result<()> {
        let path = dir.join("cgroup.procs");
        if self.fixture {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| Error::io(&path, "open", e))?;
            return writeln!(f, "{pid}").map_err(|e| Error::Write {
                path,
                data: pid.to_string(),
                source: e,
            });
        }
        write_file(&path, &pid.to_string())
    }
}

/// Writes `data` to a control file in one write(2) (cgroup files act on
/// each write separately); never creates or truncates.
pub(crate) fn write_file(path: &Path, data: &str) -> Result<()> {
    let werr = |e| Error::Write {
        path: path.to_path_buf(),
        data: data.to_owned(),
        source: e,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(werr)?;
    f.write_all(data.as_bytes()).map_err(werr)
}

/// Reads a control file.
pub(crate) fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, "read", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_layouts() {
        assert_eq!(
            Layout::classify(CGROUP2_SUPER_MAGIC, None, false),
            Some(Layout::Unified)
        );
        assert_eq!(
            Layout::classify(TMPFS_MAGIC, Some(CGROUP2_SUPER_MAGIC), true),
            Some(Layout::Hybrid)
        );
        assert_eq!(
            Layout::classify(TMPFS_MAGIC, Some(TMPFS_MAGIC), true),
            Some(Layout::Legacy)
        );
        assert_eq!(
            Layout::classify(TMPFS_MAGIC, None, true),
            Some(Layout::Legacy)
        );
        assert_eq!(Layout::classify(TMPFS_MAGIC, None, false), None);
        assert_eq!(Layout::classify(0xEF53, None, true), None);
    }

    #[test]
    fn detect_refuses_a_plain_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Layout::detect(tmp.path()).unwrap_err();
        assert!(matches!(err, Error::NotCgroupFs { .. }), "{err}");
        assert!(err.to_string().contains(&tmp.path().display().to_string()));
        let err = CgroupFs::new(tmp.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("statfs"), "{err}");
    }

    #[test]
    fn layout_override_and_hierarchy_roots() {
        let r = PathBuf::from("/x");
        let fs = CgroupFs::with_layout(r.clone(), Layout::Unified);
        assert_eq!(fs.layout(), Layout::Unified);
        assert!(!fs.is_fixture());
        assert_eq!(fs.hierarchy_root(Hierarchy::V2), Some(r.clone()));
        assert_eq!(fs.hierarchy_root(Hierarchy::V1(V1Controller::Memory)), None);
        let fs = CgroupFs::fixture(r.clone(), Layout::Hybrid);
        assert!(fs.is_fixture());
        assert_eq!(fs.hierarchy_root(Hierarchy::V2), Some(r.join("unified")));
        assert_eq!(
            fs.hierarchy_root(Hierarchy::V1(V1Controller::Pids)),
            Some(r.join("pids"))
        );
        let fs = CgroupFs::fixture(r.clone(), Layout::Legacy);
        assert_eq!(fs.hierarchy_root(Hierarchy::V2), None);
        assert_eq!(
            fs.hierarchy_root(Hierarchy::V1(V1Controller::Freezer)),
            Some(r.join("freezer"))
        );
    }

    #[test]
    fn guest_hierarchies_follow_layout_and_mounts() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        for d in ["unified", "pids", "freezer"] {
            std::fs::create_dir(root.join(d)).unwrap();
            std::fs::write(root.join(d).join("cgroup.procs"), "").unwrap();
        }
        let hybrid = CgroupFs::fixture(root.clone(), Layout::Hybrid);
        // memory is not mounted in this fixture: skipped.
        assert_eq!(
            hybrid.guest_hierarchies().unwrap(),
            vec![Hierarchy::V2, Hierarchy::V1(V1Controller::Pids)]
        );
        let legacy = CgroupFs::fixture(root.clone(), Layout::Legacy);
        assert_eq!(
            legacy.guest_hierarchies().unwrap(),
            vec![
                Hierarchy::V1(V1Controller::Freezer),
                Hierarchy::V1(V1Controller::Pids)
            ]
        );
        assert_eq!(
            legacy.mounted_hierarchies(),
            vec![
                Hierarchy::V1(V1Controller::Freezer),
                Hierarchy::V1(V1Controller::Pids)
            ]
        );
        // The unified layout needs ROOT itself to be a cgroup2 root.
        let err = CgroupFs::fixture(root.clone(), Layout::Unified)
            .guest_hierarchies()
            .unwrap_err();
        assert!(matches!(err, Error::MissingHierarchy { .. }), "{err}");
        std::fs::write(root.join("cgroup.procs"), "").unwrap();
        assert_eq!(
            CgroupFs::fixture(root, Layout::Unified)
                .guest_hierarchies()
                .unwrap(),
            vec![Hierarchy::V2]
        );
    }

    #[test]
    fn controller_names_round_trip() {
        for c in V1Controller::ALL {
            assert_eq!(V1Controller::from_name(c.name()), Some(c));
        }
        assert_eq!(V1Controller::from_name("hugetlb"), None);
        assert_eq!(Hierarchy::V1(V1Controller::Memory).to_string(), "v1 memory");
        assert_eq!(Hierarchy::V2.to_string(), "cgroup2");
    }

    #[test]
    fn write_errors_name_path_and_data() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("nope").join("cgroup.procs");
        let err = write_file(&p, "42").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&p.display().to_string()) && msg.contains("\"42\""),
            "{msg}"
        );
    }
}
