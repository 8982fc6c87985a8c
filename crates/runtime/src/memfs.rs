//! VIRT_MEM's `/proc/meminfo`: a FUSE filesystem of one read-only file,
//! made per guest by its monitor and bound over the guest's
//! `/proc/meminfo`. Each open renders the file afresh from the guest's
//! memory cgroup ([`vs_cgroup::MemoryView::meminfo`]): its rss soft limit
//! is the memory it sees, as util-vserver promised, which lxcfs (serving
//! the other VIRT_MEM files) cannot do — it reads only the hard limit.
//!
//! How it lives:
//! - The monitor opens `/dev/fuse` and makes the filesystem with the new
//!   mount API (`fsopen("fuse")`, `rootmode` a regular file, `allow_other`
//!   so the guest's users may read, `default_permissions` so the kernel
//!   checks the mode 0444), as a **detached** mount: nothing appears in the
//!   host's mount table, and nothing there has to be cleaned up.
//! - It forks a server process that answers the requests (fuser's session
//!   loop over the `/dev/fuse` descriptor). The server runs in the host's
//!   namespaces and the monitor's cgroups, without capabilities, and is
//!   not dumpable. The monitor ends it once the guest has ended
//!   ([`finish`]). It outlives a killed monitor, so the guest keeps its
//!   file, and then ends by itself when the filesystem goes: once the
//!   guest's mount namespace and the monitor's descriptor are gone, the
//!   kernel ends the connection and the server's read returns `ENODEV`
//!   (a stop without the monitor waits for that, [`await_end`]).
//! - Each init of the guest (a reboot makes a new one) clones the mount
//!   ([`open_bind`], on the init side while it is still host root) and
//!   attaches it over `/proc/meminfo` ([`attach`]).
//!
//! Written with the `fuser` crate; only the mount itself is done by hand,
//! because fuser mounts on a path (into the host's table), and we want a
//! detached mount.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, INodeNo, LockOwner, OpenFlags,
    ReplyAttr, ReplyData, ReplyEmpty, ReplyEntry, ReplyOpen, Request,
};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};
use vs_cgroup::MemoryView;
use vs_sys::mount;
use vs_sys::root::{OFlags, RootDir};

use crate::error::{Error, Result};

/// The file inside the guest root it goes over.
pub const TARGET: &str = "proc/meminfo";

/// Where the host's figures come from.
const HOST_MEMINFO: &str = "/proc/meminfo";

/// The detached mount and the server answering for it.
#[derive(Debug)]
pub struct MemInfo {
    /// The detached mount (the filesystem's root is the file).
    pub mount: OwnedFd,
    /// The server process.
    pub server: i32,
}

/// The guest's `/proc/meminfo`, as one FUSE file.
struct MemInfoFs {
    view: MemoryView,
    /// What each open file handle reads: rendered at open, so one reader
    /// sees one consistent text.
    open: Mutex<(u64, HashMap<u64, Vec<u8>>)>,
}

/// The root inode, which is the file.
const ROOT: INodeNo = INodeNo(1);

fn attr(size: u64) -> FileAttr {
    let now = SystemTime::now();
    FileAttr {
        ino: ROOT,
        // The text's length (as lxcfs does): a reader such as busybox cat
        // uses sendfile, which goes through the page cache and stops at
        // the size (plain reads are direct and do not look at it).
        size,
        blocks: 0,
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        kind: FileType::RegularFile,
        perm: 0o444,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl MemInfoFs {
    fn render(&self) -> std::result::Result<Vec<u8>, Errno> {
        let host = std::fs::read_to_string(HOST_MEMINFO).map_err(|_| Errno::EIO)?;
        self.view
            .meminfo(&host)
            .map(String::into_bytes)
            .map_err(|_| Errno::EIO)
    }
}

impl Filesystem for MemInfoFs {
    fn lookup(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::ENOTDIR);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino == ROOT {
            let size = self.render().map(|t| t.len() as u64).unwrap_or(0);
            reply.attr(&Duration::from_secs(1), &attr(size));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if ino != ROOT {
            return reply.error(Errno::ENOENT);
        }
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EACCES);
        }
        let text = match self.render() {
            Ok(t) => t,
            Err(e) => return reply.error(e),
        };
        let Ok(mut open) = self.open.lock() else {
            return reply.error(Errno::EIO);
        };
        open.0 += 1;
        let fh = open.0;
        open.1.insert(fh, text);
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Ok(open) = self.open.lock() else {
            return reply.error(Errno::EIO);
        };
        let Some(text) = open.1.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(text.len());
        let end = start.saturating_add(size as usize).min(text.len());
        reply.data(&text[start..end]);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Ok(mut open) = self.open.lock() {
            open.1.remove(&fh.0);
        }
        reply.ok();
    }
}

fn io(what: &str, op: &'static str, e: impl Into<std::io::Error>) -> Error {
    Error::io(what, op, e.into())
}

/// Makes the guest's meminfo filesystem for `view` as a detached mount and
/// forks its server (`name` names it in `ps`). Call it in the monitor,
/// single-threaded, before the init is cloned.
pub fn start(view: MemoryView, name: &str) -> Result<MemInfo> {
    let dev = rustix::fs::open(
        "/dev/fuse",
        OFlags::RDWR | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| io("/dev/fuse", "open", e))?;
    let fs = rustix::mount::fsopen("fuse", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| io("fuse", "open filesystem context", e))?;
    let fd_opt = dev.as_raw_fd().to_string();
    let strings = [
        ("source", "vserver-meminfo"),
        ("subtype", "vserver"),
        ("fd", fd_opt.as_str()),
        // A regular file, read-only for all: the mount is the file.
        ("rootmode", "100444"),
        ("user_id", "0"),
        ("group_id", "0"),
    ];
    for (k, v) in strings {
        rustix::mount::fsconfig_set_string(fs.as_fd(), k, v)
            .map_err(|e| io(&format!("fuse option {k}={v}"), "set mount option", e))?;
    }
    for flag in ["allow_other", "default_permissions"] {
        rustix::mount::fsconfig_set_flag(fs.as_fd(), flag)
            .map_err(|e| io(&format!("fuse option {flag}"), "set mount option", e))?;
    }
    rustix::mount::fsconfig_create(fs.as_fd()).map_err(|e| io("fuse", "create filesystem", e))?;
    let mnt = rustix::mount::fsmount(
        fs.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY
            | MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC,
    )
    .map_err(|e| io("fuse", "mount filesystem", e))?;
    drop(fs);
    // SAFETY: the monitor is single-threaded here (start is called before
    // any thread); the child only serves and leaves with _exit.
    match unsafe { libc::fork() } {
        -1 => Err(io(
            "meminfo server",
            "fork",
            std::io::Error::last_os_error(),
        )),
        0 => {
            drop(mnt);
            let code = match serve(view, dev, name) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            // SAFETY: leave the child without running the parent's exit
            // handlers or destructors.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(MemInfo {
            mount: mnt,
            server: pid,
        }),
    }
}

/// How long [`await_end`] waits for the server to see the filesystem go.
const FINISH_TIMEOUT: Duration = Duration::from_secs(2);

/// At the guest's end (its processes gone, so nobody reads the file any
/// more): lets go of the mount and ends the server now, rather than
/// waiting for the kernel to tear the guest's mount namespace down and
/// the server to see its connection close, so that nothing of the guest
/// outlives its monitor.
pub fn finish(m: MemInfo) {
    drop(m.mount);
    let mut status = 0;
    // SAFETY: signalling and reaping our own child, not reaped before (so
    // its pid cannot have been reused), with a valid status pointer.
    unsafe {
        libc::kill(m.server, libc::SIGKILL);
        libc::waitpid(m.server, &mut status, 0);
    }
}

/// Waits (at most [`FINISH_TIMEOUT`]) for the server `pid` that started at
/// `ticks` to end once its filesystem is gone, then kills it: for a stop
/// whose guest lost its monitor (the server is no child of ours then).
pub fn await_end(pid: i32, ticks: u64) {
    let proc_root = Path::new("/proc");
    if crate::state::process_start_ticks(proc_root, pid) != Some(ticks) {
        return; // gone already (or the pid is another process's now)
    }
    let Ok(pidfd) = vs_sys::ns::pidfd_open(pid) else {
        return;
    };
    // The pidfd pins the pid: checked again, it cannot be reused from here.
    if crate::state::process_start_ticks(proc_root, pid) != Some(ticks) {
        return;
    }
    let mut fds = [rustix::event::PollFd::new(
        &pidfd,
        rustix::event::PollFlags::IN,
    )];
    let timeout = rustix::event::Timespec {
        tv_sec: FINISH_TIMEOUT.as_secs() as _,
        tv_nsec: 0,
    };
    let ended = matches!(rustix::event::poll(&mut fds, Some(&timeout)), Ok(n) if n > 0);
    if !ended {
        let _ = vs_sys::ns::pidfd_signal(pidfd.as_fd(), libc::SIGKILL);
    }
}

/// The server's life: sheds what it does not need, answers until the
/// filesystem is gone.
fn serve(view: MemoryView, dev: OwnedFd, name: &str) -> std::io::Result<()> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let _ = vs_sys::ns::set_name(&format!("meminfo:{name}"));
    // Nothing but the device (at 3) and /dev/null as stdio: no report
    // channel, no descriptor of the CLI.
    let high = rustix::io::fcntl_dupfd_cloexec(&dev, 10)?.into_raw_fd();
    drop(dev);
    let null =
        rustix::fs::open("/dev/null", OFlags::RDWR, rustix::fs::Mode::empty())?.into_raw_fd();
    // SAFETY: dup2 between descriptors this forked child owns (raw from
    // here on: `null`, `high` and 0-3 are closed or kept by hand below).
    let ok = unsafe { (0..3).all(|fd| libc::dup2(null, fd) == fd) && libc::dup2(high, 3) == 3 };
    if !ok {
        return Err(std::io::Error::last_os_error());
    }
    vs_sys::ns::close_fds_from(4).map_err(|e| std::io::Error::other(e.to_string()))?;
    vs_sys::ns::set_non_dumpable().map_err(|e| std::io::Error::other(e.to_string()))?;
    rustix::thread::set_no_new_privs(true)?;
    rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets {
            effective: rustix::thread::CapabilitySet::empty(),
            permitted: rustix::thread::CapabilitySet::empty(),
            inheritable: rustix::thread::CapabilitySet::empty(),
        },
    )?;
    // SAFETY: 3 is the device's copy made above, owned by nothing else.
    let dev = unsafe { OwnedFd::from_raw_fd(3) };
    let fs = MemInfoFs {
        view,
        open: Mutex::new((0, HashMap::new())),
    };
    let mut config = fuser::Config::default();
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(1);
    fuser::Session::from_fd(fs, dev, fuser::SessionACL::All, config)?.run()
}

/// A detached copy of the meminfo mount `mount` (the monitor's, inherited
/// by the init), to attach with [`attach`].
pub fn open_bind(mount: BorrowedFd<'_>) -> Result<OwnedFd> {
    mount::clone_tree(mount, Path::new(""), false).map_err(Error::Sys)
}

/// Attaches `bind` over the guest's `/proc/meminfo` (resolved in the root;
/// skipped if the guest's `/proc` has none).
pub fn attach(root: &RootDir, bind: OwnedFd) -> Result<()> {
    if !root.exists(TARGET).map_err(Error::Sys)? {
        return Ok(());
    }
    let t = root
        .open_in(TARGET, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC)
        .map_err(Error::Sys)?;
    mount::attach(bind.as_fd(), t.as_fd(), &root.host_path(TARGET)).map_err(Error::Sys)
}
