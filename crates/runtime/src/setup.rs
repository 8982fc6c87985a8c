//! The init side: what the guest's first process does between clone3 and
//! exec, in this order (each step needs the one before):
//!
//! 1. wait for the monitor to write the id maps and hand over the guest
//!    root as a detached (idmapped) mount;
//! 2. make every mount private, attach the root (still as host root, see
//!    [`init_side`]), then become root of the user namespace;
//! 3. mount `/proc`, `/sys` (read-only), a minimal
//!    `/dev` with a new devpts, `/dev/shm` and the `fstab` entries — all
//!    while the host's `/proc` is still visible, which the kernel demands of
//!    a new proc mount in a user namespace ("mount_too_revealing");
//! 4. mask and write-protect the `/proc` and `/sys` paths of DESIGN §4;
//! 5. `pivot_root` and detach the old root;
//! 6. host name, personality, rlimits, bounding set, seccomp (see
//!    [`restrict`]), close every inherited fd;
//! 7. report ready, then exec the guest's init or run the reaper.
//!
//! Every target path is opened inside the guest root (`RESOLVE_IN_ROOT`)
//! and mounted onto by fd, so a guest's symlinks cannot redirect a mount to
//! the host. Errors travel back to the monitor with their context.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use vs_config::FstabEntry;
use vs_sys::mount::{self, Attr};
use vs_sys::root::{OFlags, RootDir};

use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::plan::{Init, Plan};

const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
const MASKED_FILES: &[&str] = &[
    "proc/kcore",
    "proc/keys",
    "proc/sysrq-trigger",
    "proc/timer_list",
    "proc/sched_debug",
    "proc/latency_stats",
];
const MASKED_DIRS: &[&str] = &["proc/acpi", "proc/scsi", "sys/firmware"];
const READ_ONLY: &[&str] = &["proc/sys", "proc/bus", "proc/fs", "proc/irq"];

fn sys(e: vs_sys::Error) -> Error {
    Error::Sys(e)
}

fn target(root: &RootDir, rel: &str, dir: bool) -> Result<OwnedFd> {
    if dir {
        root.mkdir_all(rel, 0o755).map_err(sys)?;
    } else if !root.exists(rel).map_err(sys)? {
        root.write_file(rel, b"", 0o644).map_err(sys)?;
    }
    root.open_in(rel, OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW)
        .map_err(sys)
}

fn mount_new(
    root: &RootDir,
    rel: &str,
    fstype: &str,
    source: &str,
    options: &[&str],
    attrs: Attr,
) -> Result<()> {
    let fs = mount::new_fs(fstype, source, options, attrs).map_err(sys)?;
    let t = target(root, rel, true)?;
    mount::attach(fs.as_fd(), t.as_fd(), &root.host_path(rel)).map_err(sys)
}

fn bind_host(root: &RootDir, host: &str, rel: &str, dir: bool, attrs: Attr) -> Result<()> {
    let tree = mount::clone_tree(rustix::fs::CWD, Path::new(host), dir).map_err(sys)?;
    if !attrs.is_empty() {
        mount::set_attr(
            tree.as_fd(),
            attrs,
            Attr::empty(),
            true,
            None,
            Path::new(host),
        )
        .map_err(sys)?;
    }
    let t = target(root, rel, dir)?;
    mount::attach(tree.as_fd(), t.as_fd(), &root.host_path(rel)).map_err(sys)
}

fn make_dev(root: &RootDir) -> Result<()> {
    let nosuid = Attr::MOUNT_ATTR_NOSUID;
    mount_new(
        root,
        "dev",
        "tmpfs",
        "tmpfs",
        &["mode=755", "size=1024k"],
        nosuid | Attr::MOUNT_ATTR_NOEXEC,
    )?;
    for n in DEV_NODES {
        bind_host(
            root,
            &format!("/dev/{n}"),
            &format!("dev/{n}"),
            false,
            Attr::empty(),
        )?;
    }
    for (target, link) in [
        ("/proc/self/fd", "dev/fd"),
        ("/proc/self/fd/0", "dev/stdin"),
        ("/proc/self/fd/1", "dev/stdout"),
        ("/proc/self/fd/2", "dev/stderr"),
        ("pts/ptmx", "dev/ptmx"),
    ] {
        root.symlink(target, link).map_err(sys)?;
    }
    mount_new(
        root,
        "dev/pts",
        "devpts",
        "devpts",
        &["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        nosuid | Attr::MOUNT_ATTR_NOEXEC,
    )?;
    mount_new(
        root,
        "dev/shm",
        "tmpfs",
        "shm",
        &["mode=1777", "size=65536k"],
        nosuid | Attr::MOUNT_ATTR_NODEV,
    )
}

/// Mounts one `fstab` line inside the guest.
fn mount_fstab(root: &RootDir, n: usize, e: &FstabEntry) -> Result<()> {
    let rel = e.file.trim_start_matches('/');
    // The runtime makes these itself (util-vserver's default fstab lists them).
    if matches!(
        (e.vfstype.as_str(), rel),
        ("proc", "proc") | ("devpts", "dev/pts") | ("sysfs", "sys")
    ) {
        return Ok(());
    }
    let mut attrs = Attr::empty();
    let mut options = Vec::new();
    let mut bind = false;
    for o in e.options.split(',').filter(|o| !o.is_empty()) {
        match o {
            "defaults" | "rw" | "auto" | "noauto" | "nofail" | "user" | "nouser" => {}
            "ro" => attrs |= Attr::MOUNT_ATTR_RDONLY,
            "nosuid" => attrs |= Attr::MOUNT_ATTR_NOSUID,
            "nodev" => attrs |= Attr::MOUNT_ATTR_NODEV,
            "noexec" => attrs |= Attr::MOUNT_ATTR_NOEXEC,
            "noatime" => attrs |= Attr::MOUNT_ATTR_NOATIME,
            "bind" | "rbind" => bind = true,
            other => options.push(other),
        }
    }
    let what = || format!("fstab line {}: {} on {}", n + 1, e.vfstype, e.file);
    if bind || e.vfstype == "bind" {
        // The source is a host path, as util-vserver mounted fstab in the
        // host's context; the target is resolved inside the guest.
        let src = Path::new(&e.spec);
        let is_dir = std::fs::metadata(src)
            .map_err(|err| Error::io(src, "bind source", err))?
            .is_dir();
        return bind_host(root, &e.spec, rel, is_dir, attrs);
    }
    match e.vfstype.as_str() {
        "tmpfs" | "proc" | "sysfs" | "devpts" | "mqueue" => {
            let fs = mount::new_fs(
                &e.vfstype,
                &e.spec,
                &options,
                attrs | Attr::MOUNT_ATTR_NODEV,
            )
            .map_err(|err| Error::Setup(format!("{}: {err}", what())))?;
            let t = target(root, rel, true)?;
            mount::attach(fs.as_fd(), t.as_fd(), &root.host_path(rel)).map_err(sys)
        }
        other => Err(Error::Setup(format!(
            "{}: filesystem type '{other}' is not supported in a guest (tmpfs, proc, sysfs, devpts, mqueue or bind)",
            what()
        ))),
    }
}

/// What masks the files of [`MASKED_FILES`]: an empty regular file of a
/// private tmpfs, bound read-only, nodev, nosuid, noexec (as LXC and runc
/// keep `/proc/sysrq-trigger` read-only): it reads empty, every write fails
/// with EROFS, and it is no device. A bind of the host's `/dev/null` would
/// be a writable char device the device filter allows.
fn empty_file_mount(fs: Option<&OwnedFd>) -> Result<OwnedFd> {
    let masked = Attr::MOUNT_ATTR_RDONLY
        | Attr::MOUNT_ATTR_NODEV
        | Attr::MOUNT_ATTR_NOSUID
        | Attr::MOUNT_ATTR_NOEXEC;
    // A clone of a file of a detached tmpfs (kernels since 6.15); else the
    // host's /dev/null, nodev: unreadable, unwritable, still masked.
    let tree = match fs.and_then(|fs| mount::clone_tree(fs.as_fd(), Path::new("empty"), false).ok())
    {
        Some(t) => t,
        None => mount::clone_tree(rustix::fs::CWD, Path::new("/dev/null"), false).map_err(sys)?,
    };
    mount::set_attr(
        tree.as_fd(),
        masked,
        Attr::empty(),
        false,
        None,
        Path::new("masked file"),
    )
    .map_err(sys)?;
    Ok(tree)
}

/// A detached tmpfs holding one empty file, `empty`, mode 0444.
fn empty_fs() -> Option<OwnedFd> {
    let fs = mount::new_fs("tmpfs", "tmpfs", &["size=4k", "mode=555"], Attr::empty()).ok()?;
    rustix::fs::openat(
        fs.as_fd(),
        "empty",
        rustix::fs::OFlags::CREATE | rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::from_raw_mode(0o444),
    )
    .ok()?;
    Some(fs)
}

fn protect(root: &RootDir) -> Result<()> {
    let empty = empty_fs();
    for rel in MASKED_FILES {
        if root.exists(rel).map_err(sys)? {
            let m = empty_file_mount(empty.as_ref())?;
            let t = target(root, rel, false)?;
            mount::attach(m.as_fd(), t.as_fd(), &root.host_path(rel)).map_err(sys)?;
        }
    }
    for rel in MASKED_DIRS {
        if root.exists(rel).map_err(sys)? {
            mount_new(
                root,
                rel,
                "tmpfs",
                "tmpfs",
                &["size=0", "mode=555"],
                Attr::MOUNT_ATTR_RDONLY,
            )?;
        }
    }
    for rel in READ_ONLY {
        if root.exists(rel).map_err(sys)? {
            let t = target(root, rel, true)?;
            let tree = mount::clone_tree(t.as_fd(), Path::new(""), true).map_err(sys)?;
            let ro = Attr::MOUNT_ATTR_RDONLY
                | Attr::MOUNT_ATTR_NOSUID
                | Attr::MOUNT_ATTR_NODEV
                | Attr::MOUNT_ATTR_NOEXEC;
            mount::set_attr(
                tree.as_fd(),
                ro,
                Attr::empty(),
                true,
                None,
                &root.host_path(rel),
            )
            .map_err(sys)?;
            mount::attach(tree.as_fd(), t.as_fd(), &root.host_path(rel)).map_err(sys)?;
        }
    }
    Ok(())
}

/// Builds the guest's filesystem view and pivots into it.
fn build_root(
    plan: &Plan,
    rootfs: OwnedFd,
    lxcfs: Option<crate::lxcfs::Binds>,
    meminfo: Option<OwnedFd>,
) -> Result<()> {
    // The (formerly detached) tree's fd names the root of the attached mount.
    let root = RootDir::from_fd(rootfs, &plan.vdir);
    let noexec = Attr::MOUNT_ATTR_NOSUID | Attr::MOUNT_ATTR_NODEV | Attr::MOUNT_ATTR_NOEXEC;
    mount_new(&root, "proc", "proc", "proc", &[], noexec)?;
    if let Some(binds) = lxcfs {
        // VIRT_MEM: meminfo, cpuinfo, stat, loadavg, swaps, diskstats of
        // the guest's cgroup, over the fresh /proc (before `protect`).
        binds.attach(&root)?;
    }
    if let Some(bind) = meminfo {
        // VIRT_MEM's own meminfo, in place of lxcfs's.
        crate::memfs::attach(&root, bind)?;
    }
    if plan.namespaces & vs_sys::ns::flags::NET != 0 {
        mount_new(
            &root,
            "sys",
            "sysfs",
            "sysfs",
            &[],
            noexec | Attr::MOUNT_ATTR_RDONLY,
        )?;
    } else {
        // Shared network mode: sysfs cannot be mounted without a network
        // namespace of the guest's own; the host's takes its place,
        // read-only all through. Recursive: in a user namespace the kernel
        // refuses a bind that would uncover what locked submounts hide.
        let tree = mount::clone_tree(rustix::fs::CWD, Path::new("/sys"), true).map_err(sys)?;
        let ro = noexec | Attr::MOUNT_ATTR_RDONLY;
        mount::set_attr(
            tree.as_fd(),
            ro,
            Attr::empty(),
            true,
            None,
            Path::new("/sys"),
        )
        .map_err(sys)?;
        let t = target(&root, "sys", true)?;
        mount::attach(tree.as_fd(), t.as_fd(), &root.host_path("sys")).map_err(sys)?;
        // The host's cgroup trees came along: hidden under an empty tmpfs
        // of the guest's, where a systemd guest mounts its own (rooted at
        // its cgroups by its cgroup namespace).
        mount_new(
            &root,
            "sys/fs/cgroup",
            "tmpfs",
            "tmpfs",
            &["mode=755", "size=64k"],
            noexec | Attr::MOUNT_ATTR_NODEV,
        )?;
    }
    make_dev(&root)?;
    for (n, e) in plan.fstab.iter().enumerate() {
        mount_fstab(&root, n, e)?;
    }
    protect(&root)?;
    mount::pivot_into(root.as_fd()).map_err(sys)
}

/// The privilege limits every guest process gets before exec: host-side
/// settings first, then the bounding set, then seccomp (which must come
/// last: it may forbid what the steps before it use).
pub fn restrict(plan: &Plan) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    if let Some(p) = plan.personality {
        vs_sys::security::personality::set_personality(p)
            .map_err(|e| Error::Setup(e.to_string()))?;
    }
    for c in
        vs_sys::security::rlimit::apply(&plan.rlimits).map_err(|e| Error::Setup(e.to_string()))?
    {
        notes.push(format!("{c:?}"));
    }
    vs_sys::security::caps::limit_bounding_set(&plan.bcaps)
        .map_err(|e| Error::Setup(e.to_string()))?;
    if !plan.bcaps.contains(&(crate::plan::CAP_SYS_RESOURCE as u8)) {
        // Not only after exec: the reaper (pid 1) and the exec helper run on
        // as they are, and must not raise a hard rlimit either.
        drop_sys_resource()?;
    }
    vs_sys::security::seccomp::install(&plan.seccomp).map_err(|e| Error::Setup(e.to_string()))?;
    Ok(notes)
}

/// Lowers CAP_SYS_RESOURCE in the effective and permitted sets (needs no
/// privilege).
fn drop_sys_resource() -> Result<()> {
    use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
    let mut sets = capabilities(None).map_err(|e| Error::io("capget", "read", e.into()))?;
    if sets.permitted.contains(CapabilitySet::SYS_RESOURCE) {
        sets.effective.remove(CapabilitySet::SYS_RESOURCE);
        sets.permitted.remove(CapabilitySet::SYS_RESOURCE);
        sets.inheritable.remove(CapabilitySet::SYS_RESOURCE);
        set_capabilities(None, sets)
            .map_err(|e| Error::io("capset", "drop CAP_SYS_RESOURCE", e.into()))?;
    }
    Ok(())
}

/// Tells the monitor the init is set up, then waits for its `run`: the
/// monitor moves the init into the guest's v1 cgroups while the init sets
/// itself up, and no guest code may run before that is done. Then the
/// init's cgroup namespace, rooted at the guest's own cgroups in every
/// hierarchy (in cgroup2 the init was born there; in v1 it is only now).
fn ready(chan: &Channel) -> Result<()> {
    chan.send("ready", None)?;
    match chan.recv()? {
        Some((m, _)) if m == "run" => vs_sys::ns::new_cgroup_namespace().map_err(sys),
        Some((m, _)) => Err(Error::Setup(format!(
            "unexpected message from the monitor: {m}"
        ))),
        None => Err(Error::Setup(
            "the monitor went away before the guest could run".into(),
        )),
    }
}

/// The init side, from the child of clone3 up to exec. Returns only on
/// error; the caller reports it to the monitor and exits.
pub fn init_side(plan: &Plan, chan: &Channel) -> Result<std::convert::Infallible> {
    let (msg, rootfs) = chan
        .recv()?
        .ok_or_else(|| Error::Setup("the monitor went away before the guest was set up".into()))?;
    crate::timing::mark("init: go");
    let rootfs = match (msg.as_str(), rootfs) {
        ("go", Some(fd)) => fd,
        _ => {
            return Err(Error::Setup(format!(
                "unexpected message from the monitor: {msg}"
            )));
        }
    };
    // Attach the root while we still have the host's root uid (unmapped in
    // the new user namespace, but it is what the kernel compares for DAC):
    // the way to the guest tree may lead through directories only host root
    // may search. The mount namespace is ours already, owned by the guest's
    // user namespace, so nothing of this reaches the host.
    mount::make_private().map_err(sys)?;
    mount::attach_at(rootfs.as_fd(), &plan.vdir).map_err(sys)?;
    // lxcfs's files are opened now too, for the same reason.
    let lxcfs = plan
        .lxcfs
        .as_deref()
        .map(crate::lxcfs::open_binds)
        .transpose()?
        .map(|b| match plan.meminfo {
            Some(_) => b.without(crate::memfs::TARGET),
            None => b,
        });
    let meminfo = plan
        .meminfo
        // SAFETY: the monitor's meminfo mount, inherited through clone3
        // and open for the whole of this process's set-up.
        .map(|fd| crate::memfs::open_bind(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }))
        .transpose()?;
    if plan.idmap.is_some() {
        vs_sys::ns::become_root().map_err(sys)?;
    }
    build_root(plan, rootfs, lxcfs, meminfo)?;
    crate::timing::mark("init: root built");
    vs_sys::ns::set_uts(&plan.hostname, plan.domainname.as_deref()).map_err(sys)?;
    vs_sys::ns::set_name("init").map_err(sys)?;
    // Nothing of the host may reach the guest: keep only the channel.
    let keep = chan.fd().as_raw_fd();
    // SAFETY: dup2 onto fd 3, which we then keep; every other fd >= 4 is
    // closed below and nothing in this process uses them afterwards.
    if keep != 3 && unsafe { libc::dup2(keep, 3) } != 3 {
        return Err(Error::io(
            "fd 3",
            "keep the channel",
            std::io::Error::last_os_error(),
        ));
    }
    if plan.stdio {
        for (i, from) in crate::start::RUN_STDIO.into_iter().enumerate() {
            // SAFETY: dup2 of a descriptor the monitor checked onto 0..2,
            // which nothing in this process holds as an owned fd.
            if unsafe { libc::dup2(from, i as i32) } != i as i32 {
                return Err(Error::io(
                    format!("fd {from}"),
                    "take the caller's stdio",
                    std::io::Error::last_os_error(),
                ));
            }
        }
    }
    vs_sys::ns::close_fds_from(4).map_err(sys)?;
    // SAFETY: fd 3 is the duplicate made above and owned from here on.
    let chan = Channel::from_fd(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(3) });
    rustix::io::fcntl_setfd(chan.fd(), rustix::io::FdFlags::CLOEXEC)
        .map_err(|e| Error::io("fd 3", "set close-on-exec", e.into()))?;
    // The channel the caller holds was closed with the other fds: errors
    // from here to `ready` go back on fd 3.
    let report = |e: Error| {
        let _ = chan.send(&format!("error {e}"), None);
        e
    };
    match &plan.init {
        Init::Exec(argv) => {
            let prog = std::ffi::CString::new(argv[0].as_str())
                .map_err(|_| report(Error::Setup("init path contains NUL".into())))?;
            // SAFETY: access(2) with a valid C string.
            if unsafe { libc::access(prog.as_ptr(), libc::X_OK) } != 0 {
                return Err(report(Error::Setup(format!(
                    "{} is not an executable in the guest (init style plain)",
                    argv[0]
                ))));
            }
            restrict(plan).map_err(report)?;
            crate::timing::mark("init: restricted, ready");
            ready(&chan)?;
            Err(crate::reaper::exec(argv, &plan.env_strings()))
        }
        Init::Reaper { main, mode } => {
            vs_sys::ns::set_non_dumpable().map_err(|e| report(sys(e)))?;
            let main = crate::reaper::resolve_main(main).map_err(report)?;
            if main.is_none() && *mode == crate::plan::ReaperMode::Run {
                return Err(report(Error::Setup("no command to run".into())));
            }
            restrict(plan).map_err(report)?;
            crate::timing::mark("init: restricted, ready");
            ready(&chan)?;
            drop(chan);
            crate::reaper::run(main.as_deref(), &plan.env_strings(), *mode)
        }
    }
}
