//! VIRT_MEM (DESIGN §1): the guest's `/proc/meminfo`, `/proc/cpuinfo`,
//! `/proc/stat`, `/proc/loadavg`, `/proc/swaps` and `/proc/diskstats` are
//! the files of [lxcfs](https://linuxcontainers.org/lxcfs/), a FUSE file
//! system that answers each read from the cgroups of the process reading.
//! `nproc` inside a guest then shows its cpuset. `/proc/meminfo` is ours
//! instead ([`crate::memfs`], which shows the rss soft limit): a guest with
//! VIRT_MEM gets lxcfs's other files only ([`Binds::without`]).
//!
//! One lxcfs instance serves every guest of the host. [`ensure_running`]
//! finds it or starts it, before the guest's init is cloned (the init's
//! mount namespace is a copy of the host's, and must contain the FUSE
//! mount); the init side then binds the files over its new `/proc`
//! ([`bind_into`], or [`open_binds`] + [`Binds::attach`]).
//!
//! The shared instance:
//! - is mounted on `DIR` = `<vdirbase>/.lxcfs` (`/var/lib/vservers/.lxcfs`,
//!   below `VSERVER_ROOT` if set) and runs as
//!   `lxcfs -f -l --enable-cfs -p DIR.pid DIR`: `-l` virtualises
//!   `/proc/loadavg`, `--enable-cfs` makes `cpuinfo`/`stat` follow a CPU
//!   quota (SCHED_HARD) as well as the cpuset; lxcfs writes its pid to
//!   `DIR.pid` and holds a lock on that file while it runs;
//! - runs in its own session, outside every guest cgroup (in the cgroups of
//!   the host's pid 1), with its output in a log file the caller names;
//! - **stays when guests stop**, like LXC's `lxcfs.service`: guests that
//!   run keep reading through it, and the next guest finds it. Stop it by
//!   hand with `umount -l DIR; kill $(cat DIR.pid)` once no guest with
//!   VIRT_MEM runs (or with [`stop`]); a guest whose lxcfs is gone reads
//!   "Transport endpoint is not connected" from those files until it is
//!   restarted;
//! - is not started twice: the start is serialised by `flock(2)` on
//!   `DIR.lock`, and a start re-checks under the lock.
//!
//! The distribution's own instance (`/var/lib/lxcfs`, Debian's
//! `lxcfs.service`) is used when it serves and ours does not. Other lxcfs
//! mounts are ignored on purpose: a test's private instance must not end
//! up serving real guests.
//!
//! What lxcfs 5.0.3 (Debian 12) shows, read in its source and measured on
//! the hybrid-cgroup host: `MemTotal` is the smallest v1
//! `memory.limit_in_bytes` (v2: `memory.max`) of the reader's memory cgroup
//! and its ancestors, capped at the host's; the soft limit
//! (`memory.soft_limit_in_bytes`, `memory.high`) is never read. lxcfs also
//! keeps `/run/lxcfs/{controllers,root}` (fixed in 5.0.3) for its private
//! cgroup mounts.
//!
//! The binds are not a security boundary: root in a guest may unmount them
//! and read the host's files (which VServer's VIRT_MEM never hid either).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vs_sys::mount::{self, Attr};
use vs_sys::root::{OFlags, RootDir};

use crate::error::{Error, Result};

/// The lxcfs files bound over the guest's, relative to the lxcfs mount and
/// to the guest root alike. Not `proc/uptime`: VIRT_UPTIME's time
/// namespace does that one.
pub const FILES: &[&str] = &[
    "proc/meminfo",
    "proc/cpuinfo",
    "proc/stat",
    "proc/loadavg",
    "proc/swaps",
    "proc/diskstats",
];

/// Where Debian's `lxcfs.service` mounts its instance.
pub const DISTRO_DIR: &str = "/var/lib/lxcfs";

/// How long a new instance may take until its files answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);

/// The message when the binary is missing.
pub const NOT_INSTALLED: &str =
    "VIRT_MEM needs lxcfs (Debian package lxcfs), which is not installed";

/// The filesystem type lxcfs mounts (`/proc/self/mountinfo`).
const FSTYPE: &str = "fuse.lxcfs";

/// Where the binary is looked for when `PATH` does not have it.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A serving lxcfs mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LxcfsMount {
    /// Its mount point: the directory to give [`bind_into`].
    pub dir: PathBuf,
    /// The pid of the instance if this call started it; `None` if it was
    /// serving already.
    pub started: Option<i32>,
}

/// The shared instance's directory for guests under `vdirbase`
/// ([`vs_config::Paths::vdirbase`]): `<vdirbase>/.lxcfs`.
pub fn default_dir(vdirbase: &Path) -> PathBuf {
    vdirbase.join(".lxcfs")
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `DIR.pid`: the pid file lxcfs writes and keeps locked.
pub fn pid_file(dir: &Path) -> PathBuf {
    sibling(dir, ".pid")
}

/// `DIR.lock`: serialises starts.
pub fn lock_file(dir: &Path) -> PathBuf {
    sibling(dir, ".lock")
}

fn sys(e: vs_sys::Error) -> Error {
    Error::Sys(e)
}

/// Finds an lxcfs mount serving on `dir` or on [`DISTRO_DIR`], else starts
/// the shared instance on `dir` and waits (at most [`START_TIMEOUT`]) until
/// it serves. Its output goes to `log` (appended), or nowhere. `dir` and
/// the parents this creates are made mode 0755, so that a guest's root
/// (an unprivileged host uid) may reach the files.
pub fn ensure_running(dir: &Path, log: Option<&Path>) -> Result<LxcfsMount> {
    let dir = std::path::absolute(dir).map_err(|e| Error::io(dir, "make absolute", e))?;
    if let Some(m) = find_serving(&dir)? {
        return Ok(m);
    }
    let parent = dir
        .parent()
        .ok_or_else(|| Error::Setup(format!("{}: not a directory for lxcfs", dir.display())))?;
    create_dirs(parent)?;
    let lock_path = lock_file(&dir);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, "open lock", e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, "lock", e))?;
    // Another start may have finished while we waited for the lock.
    match state(&dir)? {
        State::Serving => {
            return Ok(LxcfsMount { dir, started: None });
        }
        // Its process is gone (killed without unmounting): take it away.
        State::Dead => detach(&dir)?,
        State::Absent => {}
    }
    if let Some(m) = find_serving(&dir)? {
        return Ok(m);
    }
    // An lxcfs holds the pid file, yet no mount serves here: it serves the
    // same directory in another mount namespace (a `vserver` run from a
    // private one, as bench/enter does). Ours gets its own directory.
    if let Some(holder) = pid_file_holder(&pid_file(&dir))? {
        let ns = std::fs::metadata("/proc/self/ns/mnt")
            .map_err(|e| Error::io("/proc/self/ns/mnt", "stat", e))?;
        let suffix = format!("-mnt{}", std::os::unix::fs::MetadataExt::ino(&ns));
        let alt = sibling(&dir, &suffix);
        if dir.as_os_str().as_bytes().ends_with(suffix.as_bytes()) {
            return Err(Error::Setup(format!(
                "{}: lxcfs {holder} holds its pid file but serves no mount here",
                dir.display()
            )));
        }
        drop(lock);
        return ensure_running(&alt, log);
    }
    let bin = find_binary(std::env::var_os("PATH").as_deref().map(OsStrExt::as_bytes))
        .ok_or_else(|| Error::Setup(NOT_INSTALLED.into()))?;
    create_dirs(&dir)?;
    let pid = start(&bin, &dir, log)?;
    drop(lock);
    Ok(LxcfsMount {
        dir,
        started: Some(pid),
    })
}

/// Stops the instance serving on `dir`: detaches the mount (`umount -l`)
/// and ends the process holding `DIR.pid` (SIGTERM, SIGKILL after 2 s).
/// Returns its pid, `None` if no process held the pid file. Guests still
/// bound to its files read errors from then on.
pub fn stop(dir: &Path) -> Result<Option<i32>> {
    let dir = std::path::absolute(dir).map_err(|e| Error::io(dir, "make absolute", e))?;
    let pid = pid_file_holder(&pid_file(&dir))?;
    if state(&dir)? != State::Absent {
        detach(&dir)?;
    }
    if let Some(pid) = pid {
        // The holder of the lock is lxcfs itself: no stale pid is killed.
        let Ok(pidfd) = vs_sys::ns::pidfd_open(pid) else {
            return Ok(Some(pid));
        };
        let _ = vs_sys::ns::pidfd_signal(pidfd.as_fd(), libc::SIGTERM);
        if !wait_exit(&pidfd, Duration::from_secs(2)) {
            let _ = vs_sys::ns::pidfd_signal(pidfd.as_fd(), libc::SIGKILL);
            wait_exit(&pidfd, Duration::from_secs(2));
        }
    }
    Ok(pid)
}

/// The lxcfs files of [`FILES`], cloned from the mount at `lxcfs_dir` as
/// detached read-only mounts, ready for [`Binds::attach`].
#[derive(Debug)]
pub struct Binds {
    trees: Vec<(&'static str, OwnedFd)>,
}

/// Clones the lxcfs files (those of [`FILES`] that the instance has).
///
/// Call it on the init side while host paths are reachable. The host path
/// is walked with the caller's credentials: before `become_root` (still
/// host uid 0) any `VSERVER_ROOT` works; after it, as the guest's root (an
/// unprivileged host uid), `lxcfs_dir` and every parent must be searchable
/// by others, which [`ensure_running`] ensures for the directories it
/// creates.
pub fn open_binds(lxcfs_dir: &Path) -> Result<Binds> {
    let mut trees = Vec::new();
    for rel in FILES {
        let host = lxcfs_dir.join(rel);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(Error::Setup(format!(
                    "{}: not a file: is lxcfs mounted on {}?",
                    host.display(),
                    lxcfs_dir.display()
                )));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                return Err(Error::Setup(format!(
                    "lxcfs on {} no longer runs (restart it: umount -l {0} and start a guest with VIRT_MEM)",
                    lxcfs_dir.display()
                )));
            }
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                return Err(Error::Setup(format!(
                    "{}: permission denied: open the lxcfs files before becoming the guest's root, \
                     or make {} and the directories above it searchable by others (mode 0755)",
                    host.display(),
                    lxcfs_dir.display()
                )));
            }
            Err(e) => return Err(Error::io(&host, "look up lxcfs file", e)),
        }
        let tree = mount::clone_tree(rustix::fs::CWD, &host, false).map_err(sys)?;
        mount::set_attr(
            tree.as_fd(),
            Attr::MOUNT_ATTR_RDONLY
                | Attr::MOUNT_ATTR_NOSUID
                | Attr::MOUNT_ATTR_NODEV
                | Attr::MOUNT_ATTR_NOEXEC,
            Attr::empty(),
            false,
            None,
            &host,
        )
        .map_err(sys)?;
        trees.push((*rel, tree));
    }
    if trees.is_empty() {
        return Err(Error::Setup(format!(
            "{}: no lxcfs files (is lxcfs mounted there?)",
            lxcfs_dir.join("proc").display()
        )));
    }
    Ok(Binds { trees })
}

impl Binds {
    /// Attaches each file over the same file inside `root` (resolved in the
    /// root, never following a symlink); files the guest's `/proc` lacks
    /// are skipped. Call it after `/proc` is mounted and before the masks.
    /// Returns how many were bound.
    pub fn attach(self, root: &RootDir) -> Result<usize> {
        let mut n = 0;
        for (rel, tree) in self.trees {
            if !root.exists(rel).map_err(sys)? {
                continue;
            }
            let t = root
                .open_in(rel, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC)
                .map_err(sys)?;
            mount::attach(tree.as_fd(), t.as_fd(), &root.host_path(rel)).map_err(sys)?;
            n += 1;
        }
        Ok(n)
    }

    /// These binds but the one of `rel` (a file served otherwise).
    pub fn without(mut self, rel: &str) -> Binds {
        self.trees.retain(|(r, _)| *r != rel);
        self
    }

    /// The files cloned, relative.
    pub fn files(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.trees.iter().map(|(rel, _)| *rel)
    }
}

/// [`open_binds`] then [`Binds::attach`]: binds the lxcfs files of
/// `lxcfs_dir` over the guest's `/proc` files.
pub fn bind_into(root: &RootDir, lxcfs_dir: &Path) -> Result<()> {
    open_binds(lxcfs_dir)?.attach(root).map(|_| ())
}

// ----- finding an instance -----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No lxcfs mount on top of the directory.
    Absent,
    /// Mounted, and its files answer.
    Serving,
    /// Mounted, but its process is gone (reads fail with ENOTCONN).
    Dead,
}

fn find_serving(dir: &Path) -> Result<Option<LxcfsMount>> {
    if state(dir)? == State::Serving {
        return Ok(Some(LxcfsMount {
            dir: dir.to_owned(),
            started: None,
        }));
    }
    // The distribution's instance is a bonus: whatever is wrong with it
    // must not stop ours from starting.
    let distro = Path::new(DISTRO_DIR);
    if dir != distro && matches!(state(distro), Ok(State::Serving)) {
        return Ok(Some(LxcfsMount {
            dir: distro.to_owned(),
            started: None,
        }));
    }
    Ok(None)
}

/// The directory as mountinfo names it: the parent resolved (the mount
/// point itself cannot be stat'ed when its daemon is gone).
fn mount_point(dir: &Path) -> Option<PathBuf> {
    let parent = fs::canonicalize(dir.parent()?).ok()?;
    Some(parent.join(dir.file_name()?))
}

fn state(dir: &Path) -> Result<State> {
    let Some(point) = mount_point(dir) else {
        return Ok(State::Absent);
    };
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("/proc/self/mountinfo", "read", e))?;
    if top_fstype(&info, &point).as_deref() != Some(FSTYPE) {
        return Ok(State::Absent);
    }
    let meminfo = dir.join("proc/meminfo");
    let mut buf = [0u8; 64];
    match File::open(&meminfo).and_then(|mut f| f.read(&mut buf)) {
        Ok(n) if n > 0 => Ok(State::Serving),
        Ok(_) => Ok(State::Dead),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(State::Dead),
        Err(e) => Err(Error::io(meminfo, "read", e)),
    }
}

/// The filesystem type of the topmost mount on `point` in the text of
/// `/proc/self/mountinfo` (later lines are mounted over earlier ones).
fn top_fstype(mountinfo: &str, point: &Path) -> Option<String> {
    let mut top = None;
    for line in mountinfo.lines() {
        let mut fields = line.split(' ');
        let Some(mp) = fields.nth(4) else { continue };
        if Path::new(std::ffi::OsStr::from_bytes(&unescape(mp))) != point {
            continue;
        }
        // Optional fields end with a lone "-"; the type comes next.
        if let Some(fstype) = fields.skip_while(|f| *f != "-").nth(1) {
            top = Some(String::from_utf8_lossy(&unescape(fstype)).into_owned());
        }
    }
    top
}

/// Undoes mountinfo's octal escapes (`\040` for a space, proc(5)).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The `lxcfs` executable in `path` (a `PATH` value) or the system
/// directories.
fn find_binary(path: Option<&[u8]>) -> Option<PathBuf> {
    let dirs = path
        .unwrap_or_default()
        .split(|&c| c == b':')
        .chain(SYSTEM_PATH.as_bytes().split(|&c| c == b':'))
        .filter(|d| d.first() == Some(&b'/'));
    for d in dirs {
        let p = Path::new(std::ffi::OsStr::from_bytes(d)).join("lxcfs");
        if fs::metadata(&p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0) {
            return Some(p);
        }
    }
    None
}

/// The process holding the (`fcntl`) lock lxcfs keeps on its pid file.
fn pid_file_holder(path: &Path) -> Result<Option<i32>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, "open", e)),
    };
    // SAFETY: flock is plain data; zeroed is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: F_GETLK on an open fd writes into the valid flock.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl) } != 0 {
        return Err(Error::io(
            path,
            "test lock",
            std::io::Error::last_os_error(),
        ));
    }
    Ok((fl.l_type != libc::F_UNLCK as libc::c_short && fl.l_pid > 0).then_some(fl.l_pid))
}

// ----- starting one -----

/// `mkdir -p` that leaves every directory it creates mode 0755 (whatever
/// the umask).
fn create_dirs(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(dir, "set mode", e)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(Error::io(dir, "create directory", e)),
    }
}

/// `umount -l`.
fn detach(dir: &Path) -> Result<()> {
    match rustix::mount::unmount(dir, rustix::mount::UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) => Ok(()),
        Err(e) => Err(Error::io(dir, "unmount lxcfs", e.into())),
    }
}

/// Whether the process behind `pidfd` ends within `limit` (a pidfd polls
/// readable once its process has exited, child or not).
fn wait_exit(pidfd: &OwnedFd, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let mut fds = [rustix::event::PollFd::new(
            pidfd,
            rustix::event::PollFlags::IN,
        )];
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return true,
        }
    }
}

/// The log's last lines from byte `from` on, for an error message.
fn log_tail(log: Option<&Path>, from: u64) -> String {
    let Some(path) = log else {
        return String::new();
    };
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.seek(SeekFrom::Start(from));
        let _ = f.take(64 * 1024).read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join("; ");
    if tail.is_empty() {
        format!(" (see {})", path.display())
    } else {
        format!(": {tail} (see {})", path.display())
    }
}

/// Moves `pid` into the host's pid 1's cgroups, so that lxcfs belongs to
/// no guest and to no command's cgroup that may be torn down. Best effort:
/// where that fails it stays in the caller's cgroups.
fn leave_caller_cgroups(pid: i32) {
    let Ok(fs) = vs_cgroup::CgroupFs::system() else {
        return;
    };
    let Ok(init) = vs_cgroup::Membership::of_pid(1) else {
        return;
    };
    for h in fs.mounted_hierarchies() {
        if let Some(path) = init.path(h)
            && let Ok(dir) = fs.cgroup_dir(h, path)
        {
            let _ = fs::write(dir.join("cgroup.procs"), pid.to_string());
        }
    }
}

/// Starts `lxcfs` on `dir` as a daemon and waits until it serves; returns
/// its pid.
fn start(bin: &Path, dir: &Path, log: Option<&Path>) -> Result<i32> {
    let (out, log_start) = match log {
        Some(p) => {
            if let Some(d) = p.parent() {
                fs::create_dir_all(d).map_err(|e| Error::io(d, "create directory", e))?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(p)
                .map_err(|e| Error::io(p, "open log", e))?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            (f, len)
        }
        None => (
            OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .map_err(|e| Error::io("/dev/null", "open", e))?,
            0,
        ),
    };
    let err = out
        .try_clone()
        .map_err(|e| Error::io(log.unwrap_or(Path::new("/dev/null")), "duplicate", e))?;
    // The grandchild that becomes lxcfs reports its pid through this pipe.
    let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::io("pipe", "create", e.into()))?;
    let wr_fd = wr.as_raw_fd();
    let mut cmd = Command::new(bin);
    cmd.args(["-f", "-l", "--enable-cfs", "-p"])
        .arg(pid_file(dir))
        .arg(dir)
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: the closure runs in the forked child before exec and calls
    // only async-signal-safe functions (signal, setsid, fork, _exit,
    // getpid, write) on values prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // libfuse installs its SIGTERM/SIGINT/SIGHUP handlers only over
            // the default disposition: an ignored SIGTERM inherited from
            // the caller would make lxcfs unstoppable.
            for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGQUIT] {
                libc::signal(sig, libc::SIG_DFL);
            }
            // Its own session: no controlling terminal, out of the caller's
            // process group.
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Double fork: lxcfs is nobody's child but init's, so no caller
            // (a long-lived monitor) keeps its zombie. The intermediate
            // leaves at once; spawn() still reports a failed exec of the
            // grandchild through std's close-on-exec pipe.
            match libc::fork() {
                -1 => return Err(std::io::Error::last_os_error()),
                0 => {}
                _ => libc::_exit(0),
            }
            let pid = libc::getpid().to_ne_bytes();
            if libc::write(wr_fd, pid.as_ptr().cast(), pid.len()) != pid.len() as isize {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    drop(wr);
    let mut child = spawned.map_err(|e| Error::io(bin, "start lxcfs", e))?;
    let _ = child.wait();
    let mut buf = [0u8; 4];
    File::from(rd)
        .read_exact(&mut buf)
        .map_err(|e| Error::io(bin, "read the pid of lxcfs", e))?;
    let pid = i32::from_ne_bytes(buf);
    leave_caller_cgroups(pid);
    // Debian's init script does the same; it needs CAP_SYS_RESOURCE, which
    // not every host's root has.
    let _ = fs::write(format!("/proc/{pid}/oom_score_adj"), "-1000");
    let pidfd = vs_sys::ns::pidfd_open(pid).ok();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let exited = pidfd
            .as_ref()
            .is_none_or(|fd| wait_exit(fd, Duration::ZERO));
        if exited {
            return Err(Error::Setup(format!(
                "lxcfs ended while starting on {}{}",
                dir.display(),
                log_tail(log, log_start)
            )));
        }
        if state(dir)? == State::Serving {
            return Ok(pid);
        }
        if Instant::now() >= deadline {
            if let Some(fd) = &pidfd {
                let _ = vs_sys::ns::pidfd_signal(fd.as_fd(), libc::SIGKILL);
                wait_exit(fd, Duration::from_secs(2));
            }
            let _ = detach(dir);
            return Err(Error::Setup(format!(
                "lxcfs did not serve {} within {} s{}",
                dir.display(),
                START_TIMEOUT.as_secs(),
                log_tail(log, log_start)
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_procs_and_leave_uptime_to_the_time_namespace() {
        assert!(FILES.iter().all(|f| f.starts_with("proc/")));
        assert!(!FILES.contains(&"proc/uptime"));
        assert!(FILES.contains(&"proc/meminfo"));
    }

    #[test]
    fn side_files_sit_beside_the_directory() {
        let d = default_dir(Path::new("/x/var/lib/vservers"));
        assert_eq!(d, Path::new("/x/var/lib/vservers/.lxcfs"));
        assert_eq!(pid_file(&d), Path::new("/x/var/lib/vservers/.lxcfs.pid"));
        assert_eq!(lock_file(&d), Path::new("/x/var/lib/vservers/.lxcfs.lock"));
    }

    #[test]
    fn mountinfo_names_the_topmost_type_with_escapes_undone() {
        let info = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
43 27 0:41 / /var/lib/my\\040dir rw,nosuid shared:5 - tmpfs tmpfs rw
44 43 0:42 / /var/lib/my\\040dir rw,nosuid,nodev,relatime - fuse.lxcfs lxcfs rw,user_id=0
45 22 0:43 / /var/lib/lxcfs rw master:1 shared:2 - fuse.lxcfs lxcfs rw
";
        assert_eq!(
            top_fstype(info, Path::new("/var/lib/my dir")).as_deref(),
            Some("fuse.lxcfs")
        );
        assert_eq!(
            top_fstype(info, Path::new("/var/lib/lxcfs")).as_deref(),
            Some("fuse.lxcfs")
        );
        assert_eq!(
            top_fstype(info, Path::new("/proc")).as_deref(),
            Some("proc")
        );
        assert_eq!(top_fstype(info, Path::new("/var/lib")), None);
        assert_eq!(unescape("a\\134b\\011"), b"a\\b\t");
        assert_eq!(unescape("end\\04"), b"end\\04");
    }

    #[test]
    fn the_binary_is_found_in_path_and_its_absence_is_plain() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("lxcfs");
        fs::write(&bin, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("relative:{}", tmp.path().display());
        assert_eq!(find_binary(Some(path.as_bytes())), Some(bin));
        assert!(NOT_INSTALLED.contains("Debian package lxcfs"));
    }

    #[test]
    fn a_missing_pid_file_has_no_holder_and_a_free_one_neither() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.pid");
        assert_eq!(pid_file_holder(&p).unwrap(), None);
        fs::write(&p, "123\n").unwrap();
        assert_eq!(pid_file_holder(&p).unwrap(), None);
    }

    #[test]
    fn created_directories_are_world_searchable() {
        // (The umask is process-wide and tests run in parallel: not
        // changed here; create_dirs sets the mode explicitly.)
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("a/b/.lxcfs");
        create_dirs(&d).unwrap();
        create_dirs(&d).unwrap();
        for p in [tmp.path().join("a"), tmp.path().join("a/b"), d] {
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o755
            );
        }
    }

    // ----- as root (CI): a real lxcfs on a private directory -----

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// A private instance's directory; stops what the test started, even
    /// after a failed assertion.
    struct Instance {
        _tmp: tempfile::TempDir,
        dir: PathBuf,
        log: PathBuf,
    }

    impl Instance {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            // A guest's root must be able to walk down to the files.
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
            let dir = default_dir(&tmp.path().join("var/lib/vservers"));
            let log = tmp.path().join("lxcfs.log");
            Instance {
                _tmp: tmp,
                dir,
                log,
            }
        }
    }

    impl Drop for Instance {
        fn drop(&mut self) {
            let _ = stop(&self.dir);
        }
    }

    fn require_lxcfs() {
        assert!(
            find_binary(None).is_some(),
            "{NOT_INSTALLED}: run scripts/install-deps"
        );
    }

    fn distro_serves() -> bool {
        state(Path::new(DISTRO_DIR)).unwrap() == State::Serving
    }

    #[test]
    #[ignore = "needs root: scripts/test runs it (cargo test -- --ignored root_)"]
    fn root_ensure_running_starts_one_instance_and_then_finds_it() {
        assert!(is_root(), "this test needs root");
        require_lxcfs();
        let inst = Instance::new();
        // Two guests starting at once.
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| ensure_running(&inst.dir, Some(&inst.log)));
            let b = s.spawn(|| ensure_running(&inst.dir, Some(&inst.log)));
            (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
        });
        if distro_serves() {
            assert_eq!((a.started, b.started), (None, None));
            assert_eq!(a.dir, Path::new(DISTRO_DIR));
            return;
        }
        assert_eq!(a.dir, inst.dir);
        assert_eq!(b.dir, inst.dir);
        let pid = match (a.started, b.started) {
            (Some(p), None) | (None, Some(p)) => p,
            other => panic!("expected exactly one start, got {other:?}"),
        };
        assert_eq!(pid_file_holder(&pid_file(&inst.dir)).unwrap(), Some(pid));
        let again = ensure_running(&inst.dir, Some(&inst.log)).unwrap();
        assert_eq!(
            again,
            LxcfsMount {
                dir: inst.dir.clone(),
                started: None
            }
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(inst.dir.parent().unwrap()), 0o755);
        // A new session it does not lead (so it can never get a controlling
        // terminal), outside the test's memory cgroup.
        // Read from /proc: a session led from outside our pid namespace (a CI
        // container) has id 0 here, which rustix's getsid cannot represent.
        let sid_of = |p: &str| -> i32 {
            let stat = fs::read_to_string(format!("/proc/{p}/stat")).unwrap();
            stat[stat.rfind(')').unwrap() + 2..]
                .split(' ')
                .nth(3)
                .unwrap()
                .parse()
                .unwrap()
        };
        let (sid, ours) = (sid_of(&pid.to_string()), sid_of("self"));
        assert!(sid != ours && sid != pid, "session of lxcfs {pid}: {sid}");
        assert_eq!(
            vs_cgroup::Membership::of_pid(pid).unwrap().v1("memory"),
            vs_cgroup::Membership::of_pid(1).unwrap().v1("memory")
        );
        // Stopped: gone, unmounted; a dead mount is replaced on the next start.
        assert_eq!(stop(&inst.dir).unwrap(), Some(pid));
        assert_eq!(state(&inst.dir).unwrap(), State::Absent);
        // Ended (init may take a moment to reap it).
        let ended = fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |st| st[st.rfind(')').unwrap() + 2..].starts_with('Z'));
        assert!(ended, "lxcfs {pid} still runs");
        let third = ensure_running(&inst.dir, None).unwrap();
        let pid3 = third.started.expect("a new instance");
        // SAFETY: SIGKILL to the lxcfs this test started.
        unsafe { libc::kill(pid3, libc::SIGKILL) };
        let pidfd = vs_sys::ns::pidfd_open(pid3);
        if let Ok(fd) = pidfd {
            wait_exit(&fd, Duration::from_secs(2));
        }
        assert_eq!(state(&inst.dir).unwrap(), State::Dead);
        let fourth = ensure_running(&inst.dir, None).unwrap();
        assert!(fourth.started.is_some_and(|p| p != pid3));
        assert_eq!(state(&inst.dir).unwrap(), State::Serving);
    }

    /// Environment variables that turn [`userns_helper`] on.
    const HELPER_DIR: &str = "VS_LXCFS_TEST_DIR";

    /// Run by [`root_a_guest_root_binds_the_files_and_free_shows_the_limit`] in
    /// a user namespace whose root is an unprivileged host uid, like a
    /// guest's init after `become_root`; does nothing otherwise.
    #[test]
    #[ignore = "helper, run in a user namespace by another test"]
    fn userns_helper() {
        let Some(dir) = std::env::var_os(HELPER_DIR) else {
            return;
        };
        let root = RootDir::open("/").unwrap();
        let binds = open_binds(Path::new(&dir)).unwrap();
        let files: Vec<_> = binds.files().collect();
        let n = binds.attach(&root).unwrap();
        println!("bound {n} of {files:?}");
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap();
        println!("{}", meminfo.lines().next().unwrap());
        let free = Command::new("free").arg("-m").output().unwrap();
        print!("{}", String::from_utf8_lossy(&free.stdout));
    }

    #[test]
    #[ignore = "needs root: scripts/test runs it (cargo test -- --ignored root_)"]
    fn root_a_guest_root_binds_the_files_and_free_shows_the_limit() {
        assert!(is_root(), "this test needs root");
        require_lxcfs();
        let inst = Instance::new();
        let m = ensure_running(&inst.dir, Some(&inst.log)).unwrap();
        let cg = PathBuf::from(format!(
            "/sys/fs/cgroup/memory/vs-lxcfs-test-{}",
            std::process::id()
        ));
        fs::create_dir(&cg).unwrap();
        struct Cg(PathBuf);
        impl Drop for Cg {
            fn drop(&mut self) {
                let _ = fs::remove_dir(&self.0);
            }
        }
        let cg = Cg(cg);
        fs::write(cg.0.join("memory.limit_in_bytes"), "256M").unwrap();
        let exe = std::env::current_exe().unwrap();
        // Root of a user namespace mapped to host uid 100000: what a
        // guest's init is after become_root, in its own mount namespace.
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec setpriv --reuid=100000 --regid=100000 --clear-groups \
             unshare --user --map-root-user --mount --propagation private \
             {} --exact lxcfs::tests::userns_helper --ignored --nocapture --test-threads=1",
            cg.0.display(),
            exe.display()
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .env(HELPER_DIR, &m.dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("bound 6 of"), "{stdout}");
        assert!(stdout.contains("MemTotal:         262144 kB"), "{stdout}");
        let mem = stdout
            .lines()
            .find(|l| l.starts_with("Mem:"))
            .unwrap_or_else(|| panic!("no Mem: line from free -m: {stdout}"));
        assert_eq!(mem.split_whitespace().nth(1), Some("256"), "{mem}");
    }
}
