//! A guest's cgroups: `<parent>/vserver/NAME` in each hierarchy it uses.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::fixture::{V2_CONTROLLERS, read_words};
use crate::fs::read_file;
use crate::{CgroupFs, Error, Hierarchy, Result, V1Controller};

/// The directory level between a parent cgroup and the guests' cgroups.
pub const GUEST_LEVEL: &str = "vserver";
/// How long [`GuestCgroup::kill_all`] tries before giving up.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`GuestCgroup::freeze`] and [`GuestCgroup::thaw`] wait for the
/// kernel to report the new state.
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`GuestCgroup::remove`] retries a directory that is busy
/// (a killed process that has not quite left yet).
pub const REMOVE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one kill round waits for the cgroup to empty before signalling
/// again (new processes may have been forked between listing and killing).
const KILL_ROUND: Duration = Duration::from_millis(250);
/// How many pidfds one kill batch holds at a time (below the usual soft
/// RLIMIT_NOFILE of 1024).
const KILL_BATCH: usize = 256;

/// The cgroups of one guest: one directory `<parent>/vserver/NAME` per
/// hierarchy (see [`CgroupFs::guest_hierarchies`]).
///
/// This is a handle, not an owner: dropping it removes nothing. Another
/// process (a `stop` while the monitor is dead) finds the same cgroups with
/// [`GuestCgroup::open`] or [`GuestCgroup::from_paths`].
#[derive(Debug, Clone)]
pub struct GuestCgroup {
    fs: CgroupFs,
    name: String,
    /// Sorted by hierarchy, cgroup2 first.
    dirs: Vec<(Hierarchy, PathBuf)>,
    /// The cgroup2 controllers [`GuestCgroup::create`] could not enable
    /// (empty for a handle made otherwise).
    refused: Vec<Refusal>,
}

/// A cgroup2 controller the kernel would not enable for the guest.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    /// `memory`, `cpu` ...
    pub(crate) controller: &'static str,
    /// The write's error (names the `cgroup.subtree_control` file).
    pub(crate) error: String,
    /// The parent has processes of its own (`EBUSY`).
    pub(crate) busy: bool,
}

/// Checks that `name` can be a cgroup directory name.
fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not names");
    }
    if name.contains('/') || name.contains('\0') {
        return invalid("contains '/' or a NUL byte");
    }
    if name.len() > 255 {
        return invalid("longer than 255 bytes");
    }
    Ok(())
}

/// The parent cgroup path (`/a/b`) in `hierarchy`: `base` if given, else
/// the caller's cgroup there.
fn parent_dir(
    fs: &CgroupFs,
    hierarchy: Hierarchy,
    base: Option<&Path>,
    own: Option<&crate::Membership>,
) -> Result<PathBuf> {
    let path = match (base, own) {
        (Some(base), _) => base.to_str().ok_or_else(|| Error::InvalidCgroupPath {
            path: base.to_string_lossy().into_owned(),
            reason: "not valid UTF-8",
        })?,
        (None, Some(own)) => own.path(hierarchy).ok_or_else(|| Error::NotAMember {
            hierarchy: hierarchy.to_string(),
        })?,
        (None, None) => "/",
    };
    fs.cgroup_dir(hierarchy, path)
}

fn is_errno(e: &std::io::Error, errno: i32) -> bool {
    e.raw_os_error() == Some(errno)
}

impl GuestCgroup {
    /// Creates the guest's cgroups `<parent>/vserver/NAME` in every
    /// hierarchy of [`CgroupFs::guest_hierarchies`]. `<parent>` is `base`
    /// (a cgroup path such as `/machine`, the same in every hierarchy) or
    /// else the calling process's own cgroup in that hierarchy.
    ///
    /// The `vserver` level is created if missing. A guest directory that
    /// already exists is reused if it holds no process and no sub-cgroup
    /// (left over from a crash); otherwise this fails with
    /// [`Error::InUse`]. On failure, whatever this call created is removed.
    pub fn create(fs: &CgroupFs, base: Option<&Path>, name: &str) -> Result<GuestCgroup> {
        validate_name(name)?;
        let hierarchies = fs.guest_hierarchies()?;
        let own = match base {
            Some(_) => None,
            None => Some(fs.self_membership()?),
        };
        let mut guest = GuestCgroup {
            fs: fs.clone(),
            name: name.to_owned(),
            dirs: Vec::new(),
            refused: Vec::new(),
        };
        let mut created = Vec::new();
        for h in hierarchies {
            let made = parent_dir(fs, h, base, own.as_ref())
                .and_then(|parent| guest.create_one(h, &parent.join(GUEST_LEVEL)));
            match made {
                Ok((dir, new, refused)) => {
                    guest.refused.extend(refused);
                    if new {
                        created.push(dir.clone());
                    }
                    guest.dirs.push((h, dir));
                }
                Err(e) => {
                    // Roll back: best effort, the first error is the one
                    // worth reporting.
                    for dir in created.iter().rev() {
                        let _ = fs.remove_cgroup(dir);
                        if let Some(level) = dir.parent() {
                            let _ = fs.remove_cgroup(level);
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(guest)
    }

    /// mkdir of `level/NAME` (and mkdir -p of `level`). Returns the
    /// directory, whether it is new and the cgroup2 controllers the kernel
    /// refused to enable.
    fn create_one(&self, h: Hierarchy, level: &Path) -> Result<(PathBuf, bool, Vec<Refusal>)> {
        let dir = level.join(&self.name);
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.fs.make_cgroup_all(h, level)?;
            let mut refused = Vec::new();
            if h == Hierarchy::V2 {
                refused = self.enable_v2_controllers(level);
            } else {
                self.fs.inherit_cpuset(h, level)?;
            }
            match self.fs.make_cgroup(h, &dir) {
                Ok(()) => {
                    let filled = self
                        .fs
                        .inherit_cpuset(h, &dir)
                        .and_then(|()| self.fs.cpuset_clone_children(h, &dir));
                    if let Err(e) = filled {
                        let _ = self.fs.remove_cgroup(&dir);
                        return Err(e);
                    }
                    return Ok((dir, true, refused));
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if cgroup_tree(&dir)?.len() > 1 {
                        return Err(Error::InUse {
                            path: dir,
                            what: "it has sub-cgroups",
                        });
                    }
                    if !read_procs(&dir)?.is_empty() {
                        return Err(Error::InUse {
                            path: dir,
                            what: "it has processes",
                        });
                    }
                    self.fs.inherit_cpuset(h, &dir)?;
                    self.fs.cpuset_clone_children(h, &dir)?;
                    return Ok((dir, false, refused));
                }
                // Another guest's removal took away the (then empty)
                // `vserver` level between our two mkdirs: make it again.
                Err(e) if e.kind() == ErrorKind::NotFound && attempts < 5 => continue,
                Err(e) => return Err(Error::io(dir, "create cgroup", e)),
            }
        }
    }

    /// Makes the cgroup2 controllers a guest's limits need
    /// ([`V2_CONTROLLERS`]) available in the guests' directories: enables
    /// each in `level/cgroup.subtree_control` where `level/cgroup.controllers`
    /// lists it, first enabling it in the parent's `cgroup.subtree_control`
    /// if only the parent's `cgroup.controllers` lists it. A controller the
    /// host does not offer (the hybrid layout's cgroup2 has none) is left
    /// out; one the kernel refuses to enable (a parent that is not the root
    /// and has processes of its own refuses with `EBUSY`) is returned. The
    /// limits that need either are reported unsupported by
    /// [`GuestCgroup::apply`], the refusal as the reason.
    fn enable_v2_controllers(&self, level: &Path) -> Vec<Refusal> {
        let mut refused = Vec::new();
        let mut enable = |file: &Path, c: &'static str| {
            if let Err(e) = self.fs.write(file, &format!("+{c}")) {
                let busy = matches!(&e, Error::Write { source, .. }
                    if source.raw_os_error() == Some(libc::EBUSY));
                refused.push(Refusal {
                    controller: c,
                    error: e.to_string(),
                    busy,
                });
            }
        };
        let mut have = read_words(&level.join("cgroup.controllers"));
        if let Some(parent) = level.parent() {
            let offered = read_words(&parent.join("cgroup.controllers"));
            let enabled = read_words(&parent.join("cgroup.subtree_control"));
            for c in V2_CONTROLLERS {
                if !have.contains(c) && offered.contains(c) && !enabled.contains(c) {
                    enable(&parent.join("cgroup.subtree_control"), c);
                }
            }
            have = read_words(&level.join("cgroup.controllers"));
        }
        let enabled = read_words(&level.join("cgroup.subtree_control"));
        for c in V2_CONTROLLERS {
            if have.contains(c) && !enabled.contains(c) {
                enable(&level.join("cgroup.subtree_control"), c);
            }
        }
        refused
    }

    /// Finds the guest's existing cgroups `<parent>/vserver/NAME` (parent as
    /// in [`GuestCgroup::create`]) in every mounted hierarchy. `None` if
    /// there is none.
    pub fn open(fs: &CgroupFs, base: Option<&Path>, name: &str) -> Result<Option<GuestCgroup>> {
        validate_name(name)?;
        let own = match base {
            Some(_) => None,
            None => Some(fs.self_membership()?),
        };
        let mut dirs = Vec::new();
        for h in fs.mounted_hierarchies() {
            let parent = match parent_dir(fs, h, base, own.as_ref()) {
                Ok(p) => p,
                // The caller is in no cgroup of a hierarchy we would not
                // have used either.
                Err(Error::NotAMember { .. }) => continue,
                Err(e) => return Err(e),
            };
            let dir = parent.join(GUEST_LEVEL).join(name);
            if dir.is_dir() {
                dirs.push((h, dir));
            }
        }
        if dirs.is_empty() {
            return Ok(None);
        }
        Ok(Some(GuestCgroup {
            fs: fs.clone(),
            name: name.to_owned(),
            dirs,
            refused: Vec::new(),
        }))
    }

    /// Rebuilds the handle from the directories [`GuestCgroup::paths`]
    /// returned (e.g. saved in the guest's run state), so a later process
    /// finds the cgroups even if it runs in another cgroup itself. Each path
    /// must be `HIERARCHY-ROOT/.../vserver/NAME` under this mount root, with
    /// the same NAME and at most one per hierarchy. The directories need not
    /// exist any more.
    pub fn from_paths(fs: &CgroupFs, paths: &[PathBuf]) -> Result<GuestCgroup> {
        let mut name: Option<String> = None;
        let mut dirs: Vec<(Hierarchy, PathBuf)> = Vec::new();
        let mut candidates: Vec<(Hierarchy, PathBuf)> = Vec::new();
        for h in
            std::iter::once(Hierarchy::V2).chain(V1Controller::ALL.into_iter().map(Hierarchy::V1))
        {
            // Co-mounted controllers share a root: the first names it.
            if let Some(r) = fs.hierarchy_root(h)
                && !candidates.iter().any(|(_, c)| *c == r)
            {
                candidates.push((h, r));
            }
        }
        for path in paths {
            let not = |reason| Error::NotAGuestCgroup {
                path: path.clone(),
                reason,
            };
            // The longest hierarchy root that is a prefix: in the unified
            // layout the cgroup2 root is the mount root itself.
            let (h, _) = candidates
                .iter()
                .filter(|(_, r)| path.starts_with(r) && path != r)
                .max_by_key(|(_, r)| r.components().count())
                .ok_or_else(|| not("under no hierarchy of this mount root"))?;
            let this = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| not("no UTF-8 final component"))?;
            validate_name(this)?;
            if path.components().any(|c| {
                matches!(
                    c,
                    std::path::Component::ParentDir | std::path::Component::CurDir
                )
            }) {
                return Err(not("contains '.' or '..'"));
            }
            if path.parent().and_then(|p| p.file_name()) != Some(GUEST_LEVEL.as_ref()) {
                return Err(not("parent directory is not 'vserver'"));
            }
            match &name {
                None => name = Some(this.to_owned()),
                Some(n) if n != this => return Err(not("names a different guest")),
                Some(_) => {}
            }
            if dirs.iter().any(|(d, _)| d == h) {
                return Err(not("a second directory in the same hierarchy"));
            }
            dirs.push((*h, path.clone()));
        }
        let name = name.ok_or_else(|| Error::NotAGuestCgroup {
            path: fs.root().to_path_buf(),
            reason: "no directories given",
        })?;
        dirs.sort();
        Ok(GuestCgroup {
            fs: fs.clone(),
            name,
            dirs,
            refused: Vec::new(),
        })
    }

    /// The cgroup2 controllers the kernel refused to enable when
    /// [`GuestCgroup::create`] made this handle.
    pub(crate) fn refused(&self, controller: &str) -> Option<&Refusal> {
        self.refused.iter().find(|r| r.controller == controller)
    }

    /// The guest's name (the last component of every directory).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The mount root this guest's cgroups live under.
    pub fn cgroup_fs(&self) -> &CgroupFs {
        &self.fs
    }

    /// Every directory of the guest, cgroup2 first.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(_, d)| d.clone()).collect()
    }

    /// The hierarchies the guest has a directory in, cgroup2 first.
    pub fn hierarchies(&self) -> Vec<Hierarchy> {
        self.dirs.iter().map(|(h, _)| *h).collect()
    }

    /// The guest's directory in `hierarchy`.
    pub fn dir(&self, hierarchy: Hierarchy) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(h, _)| *h == hierarchy)
            .map(|(_, d)| d.as_path())
    }

    /// The guest's cgroup2 directory (for BPF programs and
    /// `CLONE_INTO_CGROUP`), absent in the legacy layout.
    pub fn v2_dir(&self) -> Option<&Path> {
        self.dir(Hierarchy::V2)
    }

    /// The first directory: what error messages about the guest name.
    fn primary(&self) -> PathBuf {
        self.dirs
            .first()
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| self.fs.root().join(&self.name))
    }

    /// Opens the cgroup2 directory `O_RDONLY | O_DIRECTORY | O_CLOEXEC`, as
    /// `clone3(2)` wants for `CLONE_INTO_CGROUP`.
    pub fn v2_dir_fd(&self) -> Result<OwnedFd> {
        let dir = self.v2_dir().ok_or_else(|| Error::Unsupported {
            path: self.primary(),
            op: "open the cgroup2 directory",
            reason: "the guest has no cgroup2 directory (legacy layout)",
        })?;
        rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(dir, "open", e))
    }

    /// Moves process `pid` (all its threads) into the guest's cgroup in
    /// every hierarchy.
    pub fn join(&self, pid: i32) -> Result<()> {
        if pid <= 0 {
            return Err(Error::InvalidPid(pid));
        }
        for (_, dir) in &self.dirs {
            self.fs.attach(dir, pid)?;
        }
        Ok(())
    }

    /// Puts the v1 device lists on the guest (the legacy layout's stand-in
    /// for the cgroup2 BPF device filter): everything denied, then `mknod`
    /// of any node allowed (creating one still needs CAP_MKNOD) and read
    /// and write of exactly the char devices `allowed` names
    /// (`(major, Some(minor))`, `None` for every minor) — the same list the
    /// BPF filter uses. Written before any process joins; sub-cgroups
    /// inherit it and can only narrow it. Returns `false` (nothing done)
    /// when the guest has no v1 `devices` directory.
    pub fn restrict_devices_v1(&self, allowed: &[(u32, Option<u32>)]) -> Result<bool> {
        let Some(dir) = self.dir(Hierarchy::V1(V1Controller::Devices)) else {
            return Ok(false);
        };
        self.fs.write(&dir.join("devices.deny"), "a")?;
        let allow = dir.join("devices.allow");
        for rule in ["c *:* m", "b *:* m"] {
            self.fs.write(&allow, rule)?;
        }
        for (major, minor) in allowed {
            let minor = minor.map_or_else(|| "*".to_owned(), |m| m.to_string());
            self.fs.write(&allow, &format!("c {major}:{minor} rw"))?;
        }
        Ok(true)
    }

    /// Delegates the guest's cgroup2 and `name=systemd` directories to the
    /// guest's root (`uid`:`gid` on the host), as systemd's delegation
    /// contract and LXC do: the directory and the files that make and fill
    /// sub-cgroups (`cgroup.procs`, `cgroup.threads`,
    /// `cgroup.subtree_control`, `tasks`, `cgroup.clone_children`,
    /// `notify_on_release`). A systemd guest in a user namespace needs this
    /// to make its own tree (`init.scope`, `system.slice`, ...); everything
    /// else (limits, `cgroup.kill`, `cgroup.freeze`, the v1 controllers)
    /// stays the host's, and the BPF programs on the directory apply to
    /// every sub-cgroup too.
    pub fn delegate(&self, uid: u32, gid: u32) -> Result<()> {
        if self.fs.is_fixture() {
            return Ok(());
        }
        const FILES: &[&str] = &[
            "",
            "cgroup.procs",
            "cgroup.threads",
            "cgroup.subtree_control",
            "tasks",
            "cgroup.clone_children",
            "notify_on_release",
        ];
        for (h, dir) in &self.dirs {
            if !matches!(h, Hierarchy::V2 | Hierarchy::V1(V1Controller::Systemd)) {
                continue;
            }
            for f in FILES {
                let p = if f.is_empty() {
                    dir.clone()
                } else {
                    dir.join(f)
                };
                match std::os::unix::fs::chown(&p, Some(uid), Some(gid)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(p, "delegate to the guest's root", e)),
                }
            }
        }
        Ok(())
    }

    /// Moves process `pid` into the guest's cgroup in every hierarchy but
    /// cgroup2: for a child that `clone3(CLONE_INTO_CGROUP)` already put
    /// in [`GuestCgroup::v2_dir`]. (A migration costs an RCU grace period
    /// on the first write in a while — 5 ms and more here — so none is
    /// spent where the kernel placed the process already.)
    pub fn join_besides_v2(&self, pid: i32) -> Result<()> {
        if pid <= 0 {
            return Err(Error::InvalidPid(pid));
        }
        for (h, dir) in &self.dirs {
            if *h != Hierarchy::V2 {
                self.fs.attach(dir, pid)?;
            }
        }
        Ok(())
    }

    /// Every process in the guest's cgroups and the sub-cgroups it made,
    /// in every hierarchy; sorted, without duplicates.
    pub fn procs(&self) -> Result<Vec<i32>> {
        let mut all = BTreeSet::new();
        for (_, dir) in &self.dirs {
            for cg in cgroup_tree(dir)? {
                all.extend(read_procs(&cg)?);
            }
        }
        Ok(all.into_iter().collect())
    }

    /// Whether any process is in the guest's cgroups (recursively): the
    /// cgroup2 `populated` flag, and the process lists of v1 directories.
    pub fn is_populated(&self) -> Result<bool> {
        for (h, dir) in &self.dirs {
            let populated = match h {
                Hierarchy::V2 => match read_event(dir, "populated") {
                    Ok(v) => v != 0,
                    // Removed already: nothing can be in it.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => false,
                    Err(e) => return Err(e),
                },
                Hierarchy::V1(_) => {
                    let mut any = false;
                    for cg in cgroup_tree(dir)? {
                        if !read_procs(&cg)?.is_empty() {
                            any = true;
                            break;
                        }
                    }
                    any
                }
            };
            if populated {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Freezes every process of the guest and waits (up to
    /// [`FREEZE_TIMEOUT`]) until the kernel reports it frozen: cgroup2
    /// `cgroup.freeze`, else the v1 freezer.
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true, FREEZE_TIMEOUT)
    }

    /// Thaws the guest and waits (up to [`FREEZE_TIMEOUT`]) until the
    /// kernel reports it thawed.
    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false, FREEZE_TIMEOUT)
    }

    /// Whether the kernel reports the guest frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        if let Some(dir) = self.v2_dir() {
            return Ok(read_event(dir, "frozen")? != 0);
        }
        if let Some(dir) = self.dir(Hierarchy::V1(V1Controller::Freezer)) {
            return Ok(read_file(&dir.join("freezer.state"))?.trim() == "FROZEN");
        }
        Err(self.no_freezer("read the freezer state"))
    }

    fn no_freezer(&self, op: &'static str) -> Error {
        Error::Unsupported {
            path: self.primary(),
            op,
            reason: "the guest has neither a cgroup2 nor a v1 freezer directory",
        }
    }

    fn set_frozen(&self, frozen: bool, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        if let Some(dir) = self.v2_dir() {
            // cgroup-v2.rst, "cgroup.freeze": the write only requests the
            // state; "cgroup.events" says `frozen 1` once every descendant
            // task has actually stopped.
            self.fs
                .write(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
            let want = u64::from(frozen);
            let what = if frozen { "freeze" } else { "thaw" };
            return wait_until(deadline, || Ok(read_event(dir, "frozen")? == want)).and_then(
                |done| {
                    done.then_some(()).ok_or_else(|| Error::Timeout {
                        path: dir.join("cgroup.events"),
                        what,
                        timeout,
                    })
                },
            );
        }
        if let Some(dir) = self.dir(Hierarchy::V1(V1Controller::Freezer)) {
            // freezer-subsystem.rst: the state reads FREEZING until every
            // task is frozen; writing FROZEN again retries the tasks that
            // were not.
            let state = dir.join("freezer.state");
            let (data, what) = if frozen {
                ("FROZEN", "freeze")
            } else {
                ("THAWED", "thaw")
            };
            let done = wait_until(deadline, || {
                self.fs.write(&state, data)?;
                Ok(read_file(&state)?.trim() == data)
            })?;
            return done.then_some(()).ok_or(Error::Timeout {
                path: state,
                what,
                timeout,
            });
        }
        Err(self.no_freezer(if frozen { "freeze" } else { "thaw" }))
    }

    /// Kills every process of the guest, including those in sub-cgroups it
    /// made, and waits until its cgroups are empty (up to
    /// [`KILL_TIMEOUT`]). See [`GuestCgroup::kill_all_within`].
    pub fn kill_all(&self) -> Result<()> {
        self.kill_all_within(KILL_TIMEOUT)
    }

    /// Kills every process of the guest and waits until its cgroups are
    /// empty; after `timeout`, fails with [`Error::StillPopulated`].
    ///
    /// With cgroup2's `cgroup.kill` (Linux 5.14) the kernel kills the whole
    /// subtree at once, forks included. Otherwise (and for processes that
    /// are only in a v1 directory): freeze (so nothing forks or exits
    /// meanwhile), SIGKILL every listed process through a pidfd, thaw, and
    /// repeat until empty.
    pub fn kill_all_within(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        if let Some(dir) = self.v2_dir() {
            let kill = dir.join("cgroup.kill");
            if kill.exists() {
                loop {
                    self.fs.write(&kill, "1")?;
                    let round = deadline.min(Instant::now() + KILL_ROUND);
                    if wait_until(round, || Ok(read_event(dir, "populated")? == 0))? {
                        break;
                    }
                    if Instant::now() >= deadline {
                        return Err(self.still_populated(timeout));
                    }
                }
            }
        }
        loop {
            if !self.is_populated()? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.still_populated(timeout));
            }
            if self.fs.is_fixture() {
                return Err(Error::Unsupported {
                    path: self.primary(),
                    op: "kill",
                    reason: "processes listed in a fixture are never signalled",
                });
            }
            let has_freezer =
                self.v2_dir().is_some() || self.dir(Hierarchy::V1(V1Controller::Freezer)).is_some();
            // A freeze that does not complete (a task stuck in the kernel)
            // must not stop us from killing the rest: go on and thaw.
            let froze = has_freezer
                && match self.set_frozen(true, KILL_ROUND) {
                    Ok(()) | Err(Error::Timeout { .. }) => true,
                    Err(e) => return Err(e),
                };
            let killed = self.signal_all(Signal::KILL);
            // Killed tasks in a v1-frozen cgroup only die once thawed.
            let thawed = if froze {
                self.set_frozen(false, FREEZE_TIMEOUT)
            } else {
                Ok(())
            };
            killed?;
            thawed?;
            let round = deadline.min(Instant::now() + KILL_ROUND);
            wait_until(round, || Ok(!self.is_populated()?))?;
        }
    }

    fn still_populated(&self, timeout: Duration) -> Error {
        Error::StillPopulated {
            path: self.primary(),
            pids: self.procs().unwrap_or_default(),
            timeout,
        }
    }

    /// Sends `signal` to every listed process, race-free against pid reuse:
    /// take a pidfd for each listed pid, list again, and signal only the
    /// pidfds whose pid is still listed (so the pidfd is the listed
    /// process, not a new one that got its number).
    fn signal_all(&self, signal: Signal) -> Result<()> {
        self.signal_listed(signal, self.procs()?)
    }

    /// Sends signal number `signal` to those of `pids` (host pids) that are
    /// processes of the guest, with the same guard against pid reuse: a
    /// pid that is not, or no longer, in the guest's cgroups is skipped, so
    /// a host process that got a guest's old number is never signalled.
    pub fn signal(&self, signal: i32, pids: &[i32]) -> Result<()> {
        if !(1..=64).contains(&signal) || (32..=33).contains(&signal) {
            return Err(Error::io(
                PathBuf::from(format!("signal {signal}")),
                "send signal",
                Errno::INVAL,
            ));
        }
        // SAFETY: `signal` is non-zero and not one of the real-time signals
        // glibc reserves for itself (32, 33), checked just above.
        let sig = unsafe { Signal::from_raw_unchecked(signal) };
        let guest: BTreeSet<i32> = self.procs()?.into_iter().collect();
        self.signal_listed(
            sig,
            pids.iter().copied().filter(|p| guest.contains(p)).collect(),
        )
    }

    fn signal_listed(&self, signal: Signal, pids: Vec<i32>) -> Result<()> {
        if self.cgroup_fs().is_fixture() {
            return Ok(());
        }
        for batch in pids.chunks(KILL_BATCH) {
            let mut fds = Vec::with_capacity(batch.len());
            for &pid in batch {
                let Some(p) = Pid::from_raw(pid) else {
                    continue;
                };
                match rustix::process::pidfd_open(p, PidfdFlags::empty()) {
                    Ok(fd) => fds.push((pid, Some(fd))),
                    Err(Errno::SRCH) => {}
                    // No pidfds (Linux < 5.3): fall back to kill(2).
                    Err(Errno::NOSYS) => fds.push((pid, None)),
                    Err(e) => {
                        return Err(Error::io(
                            PathBuf::from(format!("/proc/{pid}")),
                            "pidfd_open",
                            e,
                        ));
                    }
                }
            }
            let still: BTreeSet<i32> = self.procs()?.into_iter().collect();
            for (pid, fd) in fds {
                if !still.contains(&pid) {
                    continue;
                }
                let sent = match (&fd, Pid::from_raw(pid)) {
                    (Some(fd), _) => rustix::process::pidfd_send_signal(fd, signal),
                    (None, Some(p)) => rustix::process::kill_process(p, signal),
                    (None, None) => Ok(()),
                };
                match sent {
                    Ok(()) | Err(Errno::SRCH) => {}
                    Err(e) => {
                        return Err(Error::io(
                            PathBuf::from(format!("/proc/{pid}")),
                            "send signal",
                            e,
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes the guest's directories, deepest sub-cgroup first, then the
    /// `vserver` level above each if that became empty (other guests may
    /// still be there: that is not an error). Retries busy directories for
    /// up to [`REMOVE_TIMEOUT`]; a cgroup that still has processes then
    /// fails with `EBUSY`. Removing cgroups that are already gone is `Ok`.
    pub fn remove(&self) -> Result<()> {
        let deadline = Instant::now() + REMOVE_TIMEOUT;
        for (_, dir) in &self.dirs {
            self.remove_tree(dir, deadline)?;
            if let Some(level) = dir.parent() {
                match self.fs.remove_cgroup(level) {
                    Ok(()) => {}
                    Err(e)
                        if [libc::ENOENT, libc::EBUSY, libc::ENOTEMPTY]
                            .into_iter()
                            .any(|n| is_errno(&e, n)) => {}
                    Err(e) => return Err(Error::io(level, "remove cgroup", e)),
                }
            }
        }
        Ok(())
    }

    fn remove_tree(&self, dir: &Path, deadline: Instant) -> Result<()> {
        loop {
            // Deepest first; a fresh walk each round in case a sub-cgroup
            // appeared (a dying guest's systemd) or vanished meanwhile.
            let mut busy = None;
            for cg in cgroup_tree(dir)? {
                match self.fs.remove_cgroup(&cg) {
                    Ok(()) => {}
                    Err(e) if is_errno(&e, libc::ENOENT) => {}
                    Err(e) if is_errno(&e, libc::EBUSY) || is_errno(&e, libc::ENOTEMPTY) => {
                        busy = Some((cg, e));
                        break;
                    }
                    Err(e) => return Err(Error::io(cg, "remove cgroup", e)),
                }
            }
            match busy {
                None => return Ok(()),
                Some((cg, e)) if Instant::now() >= deadline => {
                    return Err(Error::io(cg, "remove cgroup", e));
                }
                Some(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

/// The cgroup `dir` and every cgroup below it, deepest first (post-order).
/// Empty if `dir` does not exist; sub-cgroups that vanish during the walk
/// are skipped.
pub(crate) fn cgroup_tree(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<bool> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(dir, "list", e)),
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(dir, "list", e)),
            };
            // d_type, never following a link (cgroupfs has none; a fixture
            // might).
            let is_dir = match entry.file_type() {
                Ok(t) => t.is_dir(),
                Err(e) if e.kind() == ErrorKind::NotFound => false,
                Err(e) => return Err(Error::io(entry.path(), "stat", e)),
            };
            if is_dir {
                walk(&entry.path(), out)?;
            }
        }
        out.push(dir.to_path_buf());
        Ok(true)
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    Ok(out)
}

/// The pids listed in `dir/cgroup.procs` (empty if the cgroup is gone).
pub(crate) fn read_procs(dir: &Path) -> Result<Vec<i32>> {
    let path = dir.join("cgroup.procs");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        // cgroup-v2.rst: a threaded cgroup's cgroup.procs cannot be read
        // (EOPNOTSUPP); its cgroup.threads lists the threads, and every
        // thread id is also a valid target for kill(2).
        Err(e) if is_errno(&e, libc::EOPNOTSUPP) => {
            return read_ids(&dir.join("cgroup.threads"));
        }
        Err(e) => return Err(Error::io(path, "read", e)),
    };
    parse_ids(&path, &text)
}

fn read_ids(path: &Path) -> Result<Vec<i32>> {
    match std::fs::read_to_string(path) {
        Ok(t) => parse_ids(path, &t),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(path, "read", e)),
    }
}

fn parse_ids(path: &Path, text: &str) -> Result<Vec<i32>> {
    text.split_whitespace()
        .map(|w| {
            w.parse::<i32>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| Error::Parse {
                    path: path.to_path_buf(),
                    line: w.to_owned(),
                    reason: "not a process id",
                })
        })
        .collect()
}

/// The value of `key` in `dir/cgroup.events` (`populated 0\nfrozen 0\n`).
fn read_event(dir: &Path, key: &'static str) -> Result<u64> {
    let path = dir.join("cgroup.events");
    let text = read_file(&path)?;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some(key) {
            return words
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| Error::Parse {
                    path: path.clone(),
                    line: line.to_owned(),
                    reason: "expected KEY NUMBER",
                });
        }
    }
    Err(Error::Parse {
        path,
        line: String::new(),
        reason: if key == "frozen" {
            "no 'frozen' key (kernel older than 5.2?)"
        } else {
            "no 'populated' key"
        },
    })
}

/// Polls `done` with a short, growing sleep until it says yes (`true`) or
/// `deadline` passes (`false`). Checks at least once.
fn wait_until(deadline: Instant, mut done: impl FnMut() -> Result<bool>) -> Result<bool> {
    let mut pause = Duration::from_millis(1);
    loop {
        if done()? {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layout;

    const HYBRID_SELF: &str = "\
9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/abc
0::/
";

    /// A temp dir posing as a cgroup mount root with the given hierarchy
    /// roots (each a directory with an empty `cgroup.procs`), plus extra
    /// existing cgroups.
    fn fixture(layout: Layout, dirs: &[&str]) -> (tempfile::TempDir, CgroupFs) {
        let tmp = tempfile::tempdir().unwrap();
        for d in dirs {
            let p = tmp.path().join(d);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("cgroup.procs"), "").unwrap();
        }
        let fs = CgroupFs::fixture(tmp.path().to_path_buf(), layout).with_self_cgroup(HYBRID_SELF);
        (tmp, fs)
    }

    fn hybrid() -> (tempfile::TempDir, CgroupFs) {
        fixture(
            Layout::Hybrid,
            &[
                "unified",
                "pids",
                "memory",
                "memory/process_api/abc",
                "freezer",
            ],
        )
    }

    #[test]
    fn hybrid_paths_follow_own_cgroups() {
        let (tmp, fs) = hybrid();
        let r = tmp.path();
        let g = GuestCgroup::create(&fs, None, "web").unwrap();
        assert_eq!(g.name(), "web");
        assert_eq!(
            g.paths(),
            vec![
                r.join("unified/vserver/web"),
                r.join("pids/vserver/web"),
                r.join("memory/process_api/abc/vserver/web"),
            ]
        );
        assert_eq!(g.v2_dir(), Some(r.join("unified/vserver/web").as_path()));
        assert_eq!(
            g.dir(Hierarchy::V1(V1Controller::Memory)),
            Some(r.join("memory/process_api/abc/vserver/web").as_path())
        );
        // No freezer cgroup in the hybrid layout, though it is mounted.
        assert_eq!(g.dir(Hierarchy::V1(V1Controller::Freezer)), None);
        for p in g.paths() {
            assert!(p.join("cgroup.procs").is_file(), "{}", p.display());
            assert!(p.parent().unwrap().join("cgroup.procs").is_file());
        }
        assert!(!g.is_populated().unwrap());
        assert!(g.procs().unwrap().is_empty());
    }

    #[test]
    fn legacy_and_unified_paths() {
        let (tmp, fs) = fixture(Layout::Legacy, &["freezer", "pids", "memory", "memory/m"]);
        let fs = fs.with_self_cgroup("3:freezer:/\n2:pids:/p\n1:memory:/m\n");
        let g = GuestCgroup::create(&fs, None, "a").unwrap();
        let r = tmp.path();
        assert_eq!(
            g.paths(),
            vec![
                r.join("freezer/vserver/a"),
                r.join("pids/p/vserver/a"),
                r.join("memory/m/vserver/a"),
            ]
        );
        assert_eq!(g.v2_dir(), None);
        assert!(g.v2_dir_fd().is_err());

        let (tmp, fs) = fixture(Layout::Unified, &[""]);
        let fs = fs.with_self_cgroup("0::/user.slice/s.scope\n");
        let g = GuestCgroup::create(&fs, None, "a").unwrap();
        assert_eq!(
            g.paths(),
            vec![tmp.path().join("user.slice/s.scope/vserver/a")]
        );
        // Every new level is a cgroup.
        assert!(tmp.path().join("user.slice/cgroup.procs").is_file());
        assert!(g.v2_dir_fd().is_ok());
    }

    #[test]
    fn explicit_base_replaces_own_cgroups() {
        let (tmp, fs) = hybrid();
        let g = GuestCgroup::create(&fs, Some(Path::new("/machine")), "a").unwrap();
        let r = tmp.path();
        assert_eq!(
            g.paths(),
            vec![
                r.join("unified/machine/vserver/a"),
                r.join("pids/machine/vserver/a"),
                r.join("memory/machine/vserver/a"),
            ]
        );
        let err = GuestCgroup::create(&fs, Some(Path::new("../x")), "b").unwrap_err();
        assert!(matches!(err, Error::InvalidCgroupPath { .. }), "{err}");
    }

    #[test]
    fn own_cgroup_missing_is_an_error() {
        let (_tmp, fs) = hybrid();
        let fs = fs.with_self_cgroup("8:pids:/\n0::/\n");
        let err = GuestCgroup::create(&fs, None, "a").unwrap_err();
        assert!(matches!(err, Error::NotAMember { .. }), "{err}");
        assert!(err.to_string().contains("v1 memory"), "{err}");
        // Rolled back: nothing left behind.
        assert!(!fs.root().join("unified/vserver").exists());
        assert!(!fs.root().join("pids/vserver").exists());
    }

    #[test]
    fn invalid_names() {
        let (_tmp, fs) = hybrid();
        for name in ["", ".", "..", "a/b", "a\0b"] {
            let err = GuestCgroup::create(&fs, None, name).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{name:?}: {err}");
        }
        assert!(GuestCgroup::open(&fs, None, "a/b").is_err());
    }

    #[test]
    fn existing_guest_cgroup_reused_only_when_empty() {
        let (tmp, fs) = hybrid();
        let g = GuestCgroup::create(&fs, None, "a").unwrap();
        // Empty: reused.
        let again = GuestCgroup::create(&fs, None, "a").unwrap();
        assert_eq!(again.paths(), g.paths());
        // With a process: refused, and the existing cgroups stay.
        g.join(4242).unwrap();
        let err = GuestCgroup::create(&fs, None, "a").unwrap_err();
        assert!(matches!(err, Error::InUse { .. }), "{err}");
        assert!(err.to_string().contains("unified/vserver/a"), "{err}");
        assert!(g.paths().iter().all(|p| p.is_dir()));
        // With a sub-cgroup: refused.
        let (_t2, fs2) = hybrid();
        let h = GuestCgroup::create(&fs2, None, "b").unwrap();
        std::fs::create_dir(h.paths()[1].join("sub")).unwrap();
        let err = GuestCgroup::create(&fs2, None, "b").unwrap_err();
        assert!(matches!(err, Error::InUse { .. }), "{err}");
        drop(tmp);
    }

    #[test]
    fn join_and_procs_are_recursive() {
        let (_tmp, fs) = hybrid();
        let g = GuestCgroup::create(&fs, None, "a").unwrap();
        g.join(10).unwrap();
        g.join(11).unwrap();
        for p in g.paths() {
            assert_eq!(
                std::fs::read_to_string(p.join("cgroup.procs")).unwrap(),
                "10\n11\n"
            );
        }
        // The guest made sub-cgroups (its systemd): listed too.
        let v2 = g.v2_dir().unwrap().to_path_buf();
        let sub = v2.join("init.scope/deeper");
        fs.make_cgroup_all(Hierarchy::V2, &sub).unwrap();
        fs.attach(&sub, 30).unwrap();
        fs.attach(&v2.join("init.scope"), 20).unwrap();
        assert_eq!(g.procs().unwrap(), vec![10, 11, 20, 30]);
        assert!(g.is_populated().unwrap());
        assert!(matches!(g.join(0), Err(Error::InvalidPid(0))));
        assert!(matches!(g.join(-5), Err(Error::InvalidPid(-5))));
    }

    #[test]
    fn populated_reads_cgroup_events() {
        let (_tmp, fs) = fixture(Layout::Unified, &[""]);
        let fs = fs.with_self_cgroup("0::/\n");
        let g = GuestCgroup::create(&fs, None, "a").unwrap();
        let v2 = g.v2_dir().unwrap();
        assert!(!g.is_populated().unwrap());
        std::fs::write(v2.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        assert!(g.is_populated().unwrap());
        assert!(g.is_frozen().unwrap());
        std::fs::write(v2.join("cgroup.events"), "garbage\n").unwrap();
        let err = g.is_populated().unwrap_err();
        assert!(err.to_string().contains("cgroup.events"), "{err}");
        // A fixture never signals anything.
        std::fs::write(v2.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        let err = g.kill_all_within(Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    }

    #[test]
    fn freeze_without_freezer_is_unsupported() {
        let (_tmp, fs) = hybrid();
        let g = GuestCgroup::create(&fs, None, "a").unwrap();
        // Only the v1 memory directory: no way to freeze.
        let only_memory = GuestCgroup::from_paths(&fs, &g.paths()[2..]).unwrap();
        let err = only_memory.freeze().unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        // An empty guest needs no killing, freezer or not.
        only_memory.kill_all().unwrap();
    }

    #[test]
    fn open_finds_what_create_made() {
        let (_tmp, fs) = hybrid();
        assert!(GuestCgroup::open(&fs, None, "a").unwrap().is_none());
        let g = GuestCgroup::create(&fs, None, "a").unwrap();
        let o = GuestCgroup::open(&fs, None, "a").unwrap().unwrap();
        assert_eq!(o.paths(), g.paths());
        assert_eq!(o.hierarchies(), g.hierarchies());
        assert!(GuestCgroup::open(&fs, None, "b").unwrap().is_none());
        assert!(
            GuestCgroup::open(&fs, Some(Path::new("/other")), "a")
                .unwrap()
                .is_none()
        );
        // A stray freezer cgroup of the same guest is found as well.
        let f = fs.root().join("freezer/vserver/a");
        fs.make_cgroup_all(Hierarchy::V1(V1Controller::Freezer), &f)
            .unwrap();
        let o = GuestCgroup::open(&fs, None, "a").unwrap().unwrap();
        assert_eq!(
            o.dir(Hierarchy::V1(V1Controller::Freezer)),
            Some(f.as_path())
        );
        o.remove().unwrap();
        assert!(!fs.root().join("freezer/vserver").exists());
        assert!(GuestCgroup::open(&fs, None, "a").unwrap().is_none());
    }

    #[test]
    fn from_paths_round_trips_and_checks_shape() {
        let (tmp, fs) = hybrid();
        let g = GuestCgroup::create(&fs, None, "a").unwrap();
        let back = GuestCgroup::from_paths(&fs, &g.paths()).unwrap();
        assert_eq!(back.paths(), g.paths());
        assert_eq!(back.name(), "a");
        assert_eq!(back.hierarchies(), g.hierarchies());
        let r = tmp.path();
        let bad: &[&[PathBuf]] = &[
            &[],
            &[PathBuf::from("/elsewhere/vserver/a")],
            &[r.join("unified/x/a")],
            &[r.join("unified/vserver/a"), r.join("pids/vserver/b")],
            &[r.join("unified/vserver/a"), r.join("unified/x/vserver/a")],
            &[r.join("unified")],
            &[r.join("unified/../pids/vserver/a")],
        ];
        for paths in bad {
            assert!(GuestCgroup::from_paths(&fs, paths).is_err(), "{paths:?}");
        }
    }

    #[test]
    fn remove_is_bottom_up_and_idempotent() {
        let (_tmp, fs) = hybrid();
        let g = GuestCgroup::create(&fs, None, "a").unwrap();
        let v2 = g.v2_dir().unwrap().to_path_buf();
        fs.make_cgroup_all(Hierarchy::V2, &v2.join("x/y/z"))
            .unwrap();
        fs.make_cgroup_all(Hierarchy::V2, &v2.join("w")).unwrap();
        g.remove().unwrap();
        for p in g.paths() {
            assert!(!p.exists(), "{}", p.display());
            // The vserver level went too (no other guest).
            assert!(!p.parent().unwrap().exists(), "{}", p.display());
            // The parent cgroup stays.
            assert!(p.parent().unwrap().parent().unwrap().is_dir());
        }
        g.remove().unwrap();
    }

    #[test]
    fn remove_keeps_other_guests() {
        let (_tmp, fs) = hybrid();
        let a = GuestCgroup::create(&fs, None, "a").unwrap();
        let b = GuestCgroup::create(&fs, None, "b").unwrap();
        a.remove().unwrap();
        for p in a.paths() {
            assert!(!p.exists());
        }
        for p in b.paths() {
            assert!(p.is_dir());
        }
        b.remove().unwrap();
        for p in b.paths() {
            assert!(!p.parent().unwrap().exists());
        }
    }

    #[test]
    fn tree_walk_is_post_order() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::write(r.join("a/cgroup.procs"), "").unwrap();
        let t = cgroup_tree(r).unwrap();
        assert_eq!(t, vec![r.join("a/b"), r.join("a"), r.to_path_buf()]);
        assert!(cgroup_tree(&r.join("missing")).unwrap().is_empty());
    }

    #[test]
    fn procs_parse_errors_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("cgroup.procs"), "12\nx\n").unwrap();
        let err = read_procs(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("cgroup.procs"), "{err}");
        assert!(read_procs(&tmp.path().join("gone")).unwrap().is_empty());
    }
}
