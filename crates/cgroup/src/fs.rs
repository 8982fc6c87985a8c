//! The cgroup mount root: layout detection, hierarchies and the file
//! operations every other module goes through.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    /// `name=systemd`: the controller-less hierarchy systemd keeps its
    /// tree in on hybrid and legacy hosts (mounted at `ROOT/systemd`); a
    /// guest booting systemd needs its own, delegated, cgroup there.
    Systemd,
}

impl V1Controller {
    /// Every controller, in the order guests' directories are listed.
    pub const ALL: [V1Controller; 9] = [
        V1Controller::Freezer,
        V1Controller::Pids,
        V1Controller::Memory,
        V1Controller::Cpu,
        V1Controller::Cpuacct,
        V1Controller::Cpuset,
        V1Controller::Blkio,
        V1Controller::Devices,
        V1Controller::Systemd,
    ];

    /// The directory of its hierarchy under the mount root: its name, but
    /// `systemd` for `name=systemd`.
    pub fn dir_name(self) -> &'static str {
        match self {
            V1Controller::Systemd => "systemd",
            c => c.name(),
        }
    }

    /// The kernel's name (as `/proc/self/cgroup` lists it).
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
            V1Controller::Systemd => "name=systemd",
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
/// cgroup also creates its `cgroup.procs` (and for cgroup2 `cgroup.events`,
/// `cgroup.freeze`, `cgroup.controllers`, `cgroup.subtree_control`,
/// `cpu.stat`), plus the control files, with the kernel's initial values,
/// of each controller it has: in cgroup2 those its parent's
/// `cgroup.subtree_control` lists, in a v1 hierarchy those the hierarchy's
/// directory name lists (`memory`, `cpu,cpuacct`). Writing `+NAME` to a
/// fixture `cgroup.subtree_control` enables NAME if `cgroup.controllers`
/// lists it (else fails with `ENOENT`; with `EBUSY` in a non-root cgroup
/// whose `cgroup.procs` lists processes) and adds its files to the child
/// cgroups. Any other write replaces the file's content and is recorded
/// ([`CgroupFs::take_fixture_writes`]); moving a process in appends to
/// `cgroup.procs`; removing a cgroup deletes its files first; signals are
/// never sent.
#[derive(Debug, Clone)]
pub struct CgroupFs {
    root: PathBuf,
    layout: Layout,
    fixture: bool,
    self_cgroup: Option<String>,
    /// Fixture only: every control-file write, in order (shared by clones).
    writes: Arc<Mutex<Vec<(PathBuf, String)>>>,
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
            writes: Arc::default(),
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

    /// Takes the list of control-file writes made so far through this
    /// fixture (and its clones, such as the [`crate::GuestCgroup`]s made
    /// with it): `(file, data)` in order, moves of processes into
    /// `cgroup.procs` included. Always empty for the kernel's cgroups.
    pub fn take_fixture_writes(&self) -> Vec<(PathBuf, String)> {
        std::mem::take(&mut *self.writes.lock().unwrap_or_else(|e| e.into_inner()))
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
    ///
    /// A v1 controller's hierarchy is `ROOT/NAME` if that exists (a mount
    /// point, or the symlink distributions put next to a co-mount), else the
    /// co-mounted `ROOT/A,B` whose name lists it (`cpu,cpuacct`), else
    /// `ROOT/NAME` (not mounted).
    pub fn hierarchy_root(&self, hierarchy: Hierarchy) -> Option<PathBuf> {
        match (hierarchy, self.layout) {
            (Hierarchy::V2, Layout::Unified) => Some(self.root.clone()),
            (Hierarchy::V2, Layout::Hybrid) => Some(self.root.join("unified")),
            (Hierarchy::V2, Layout::Legacy) | (Hierarchy::V1(_), Layout::Unified) => None,
            (Hierarchy::V1(c), _) => Some(self.v1_root(c)),
        }
    }

    fn v1_root(&self, c: V1Controller) -> PathBuf {
        let plain = self.root.join(c.dir_name());
        if plain.exists() {
            return plain;
        }
        let comounted = std::fs::read_dir(&self.root).ok().and_then(|entries| {
            entries.flatten().map(|e| e.path()).find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains(',') && n.split(',').any(|x| x == c.name()))
            })
        });
        comounted.unwrap_or(plain)
    }

    /// Whether `hierarchy` is mounted: its root has a `cgroup.procs`.
    pub fn is_mounted(&self, hierarchy: Hierarchy) -> bool {
        self.hierarchy_root(hierarchy)
            .is_some_and(|r| r.join("cgroup.procs").is_file())
    }

    /// Every hierarchy this layout can have that is mounted. Co-mounted v1
    /// controllers (`cpu,cpuacct`) are one hierarchy, listed once under the
    /// first of them in [`V1Controller::ALL`] order.
    pub fn mounted_hierarchies(&self) -> Vec<Hierarchy> {
        let mut seen: Vec<PathBuf> = Vec::new();
        let mut out = Vec::new();
        for h in
            std::iter::once(Hierarchy::V2).chain(V1Controller::ALL.into_iter().map(Hierarchy::V1))
        {
            let Some(root) = self.hierarchy_root(h) else {
                continue;
            };
            if !root.join("cgroup.procs").is_file() {
                continue;
            }
            let real = std::fs::canonicalize(&root).unwrap_or(root);
            if seen.contains(&real) {
                continue;
            }
            seen.push(real);
            out.push(h);
        }
        out
    }

    /// The hierarchies a guest gets a cgroup in: the tracking one (cgroup2,
    /// or the v1 freezer in the legacy layout), which must be mounted, and
    /// in the hybrid and legacy layouts the v1 `pids`, `memory`, `cpu`,
    /// `cpuacct`, `cpuset`, `blkio` and `name=systemd` hierarchies where
    /// they are mounted
    /// (co-mounted ones once, see [`CgroupFs::mounted_hierarchies`]), so
    /// that limits can be put there and usage read. In the legacy layout
    /// also v1 `devices`: without cgroup2 there is no BPF device filter,
    /// and the v1 device lists take its place
    /// ([`crate::GuestCgroup::restrict_devices_v1`]).
    pub fn guest_hierarchies(&self) -> Result<Vec<Hierarchy>> {
        const V1_EXTRA: &[Hierarchy] = &[
            Hierarchy::V1(V1Controller::Pids),
            Hierarchy::V1(V1Controller::Memory),
            Hierarchy::V1(V1Controller::Cpu),
            Hierarchy::V1(V1Controller::Cpuacct),
            Hierarchy::V1(V1Controller::Cpuset),
            Hierarchy::V1(V1Controller::Blkio),
            Hierarchy::V1(V1Controller::Systemd),
        ];
        let (tracking, extra): (Hierarchy, &[Hierarchy]) = match self.layout {
            Layout::Unified => (Hierarchy::V2, &[]),
            Layout::Hybrid => (Hierarchy::V2, V1_EXTRA),
            Layout::Legacy => (Hierarchy::V1(V1Controller::Freezer), V1_EXTRA),
        };
        if !self.is_mounted(tracking) {
            return Err(Error::MissingHierarchy {
                path: self.hierarchy_root(tracking).unwrap_or_default(),
                hierarchy: tracking.to_string(),
                layout: self.layout,
            });
        }
        let mounted = self.mounted_hierarchies();
        let mut hs = vec![tracking];
        hs.extend(extra.iter().copied().filter(|h| mounted.contains(h)));
        let devices = Hierarchy::V1(V1Controller::Devices);
        if self.layout == Layout::Legacy && mounted.contains(&devices) {
            hs.push(devices);
            hs.sort();
        }
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
                crate::fixture::populate_v2(dir)?;
            } else if let Some(root) = self.hierarchy_root(hierarchy) {
                crate::fixture::populate_v1(dir, &root)?;
            }
        }
        Ok(())
    }

    /// Fills an empty `cpuset.cpus` / `cpuset.mems` of the v1 cgroup `dir`
    /// from its parent's: a new v1 cpuset starts empty, and no task can join
    /// it until both are set (machine.md §1e). Nothing to do for a
    /// directory without these files (other hierarchies, cgroup2, whose
    /// empty cpuset means "inherit") or a parent without values.
    pub(crate) fn inherit_cpuset(&self, hierarchy: Hierarchy, dir: &Path) -> Result<()> {
        if hierarchy == Hierarchy::V2 {
            return Ok(());
        }
        let Some(parent) = dir.parent() else {
            return Ok(());
        };
        for name in ["cpuset.cpus", "cpuset.mems"] {
            let file = dir.join(name);
            if !file.is_file() || !read_file(&file)?.trim().is_empty() {
                continue;
            }
            let from = parent.join(name);
            if !from.is_file() {
                continue;
            }
            let value = read_file(&from)?;
            let value = value.trim();
            if !value.is_empty() {
                self.write(&file, value)?;
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
            _ => self.inherit_cpuset(hierarchy, dir),
        }
    }

    /// Sets `cgroup.clone_children` of the v1 cpuset cgroup `dir`, so that
    /// the kernel fills the cpus and mems of sub-cgroups made in it (by a
    /// guest's own systemd, which does not know that a v1 cpuset starts
    /// empty). Nothing to do outside a v1 cpuset hierarchy.
    pub(crate) fn cpuset_clone_children(&self, hierarchy: Hierarchy, dir: &Path) -> Result<()> {
        let flag = dir.join("cgroup.clone_children");
        if hierarchy == Hierarchy::V2 || !dir.join("cpuset.cpus").is_file() || !flag.is_file() {
            return Ok(());
        }
        if read_file(&flag)?.trim() == "1" {
            return Ok(());
        }
        self.write(&flag, "1")
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
            self.record(&path, &pid.to_string());
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

    /// Writes `data` to the control file `path` (see [`write_file`]); in a
    /// fixture, replaces the file's content (which must exist, as a
    /// kernel's control file must) and records the write.
    pub(crate) fn write(&self, path: &Path, data: &str) -> Result<()> {
        if !self.fixture {
            return write_file(path, data);
        }
        self.record(path, data);
        let werr = |e| Error::Write {
            path: path.to_path_buf(),
            data: data.to_owned(),
            source: e,
        };
        if path.file_name() == Some("cgroup.subtree_control".as_ref()) && path.is_file() {
            let dir = path.parent().unwrap_or(Path::new("/"));
            let is_root = self.hierarchy_root(Hierarchy::V2).as_deref() == Some(dir);
            return crate::fixture::write_subtree_control(dir, data, is_root).map_err(werr);
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(werr)?;
        f.write_all(data.as_bytes()).map_err(werr)
    }

    fn record(&self, path: &Path, data: &str) {
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((path.to_path_buf(), data.to_owned()));
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
