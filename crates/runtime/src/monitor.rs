//! The per-guest monitor (DESIGN §2): one small process per running guest,
//! named `vserver:[NAME]`. It creates the guest's cgroup, makes the guest's
//! init with clone3 into new namespaces (straight into the cgroup), writes
//! the id maps, hands over the idmapped root, and reports success or the
//! init side's error to the CLI. Then it waits: init killed by SIGHUP (a
//! `reboot` inside) → a new init; anything else → it removes what it made
//! and exits. If the monitor is killed the guest keeps running, and `stop`
//! cleans up in its place ([`cleanup`]).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use vs_cgroup::{CgroupFs, GuestCgroup};
use vs_config::{GuestName, GuestSpec, Paths};
use vs_sys::mount::{self, Attr};
use vs_sys::ns::{self, Exit, Forked};

use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::plan::{Init, Mode, Plan, ReaperMode};
use crate::state::{self, RunState, process_start_ticks};

fn log(msg: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    eprintln!("[{now}] {msg}");
}

/// The monitor's side of the init's setup: nice level, id maps, private
/// network, and the idmapped root it sends with `go`; returns once the
/// init says `ready`.
fn set_up_init(plan: &Plan, pid: i32, ours: &Channel) -> Result<()> {
    if let Some(nice) = plan.nice {
        // From the host: lowering the nice level needs CAP_SYS_NICE in the
        // host's user namespace, which the guest's root lacks.
        // SAFETY: setpriority on our own child.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, pid as libc::id_t, nice) };
    }
    let userns = match plan.idmap {
        Some(m) => {
            ns::write_id_maps(pid, &[m])?;
            let path = format!("/proc/{pid}/ns/user");
            Some(std::fs::File::open(&path).map_err(|e| Error::io(&path, "open", e))?)
        }
        None => None,
    };
    if let Some(net) = &plan.private_net {
        crate::net::setup_private(net, pid)?;
    }
    let tree = mount::clone_tree(rustix::fs::CWD, &plan.vdir, true)?;
    if let Some(ns) = &userns {
        mount::set_attr(
            tree.as_fd(),
            Attr::empty(),
            Attr::empty(),
            true,
            Some(ns.as_fd()),
            &plan.vdir,
        )?;
    }
    crate::timing::mark("monitor: id maps, network, idmapped root");
    ours.send("go", Some(tree.as_fd()))?;
    match ours.recv()? {
        Some((m, _)) if m == "ready" => {
            crate::timing::mark("monitor: init ready");
            Ok(())
        }
        Some((m, _)) => Err(Error::Setup(
            m.strip_prefix("error ").unwrap_or(&m).to_owned(),
        )),
        None => Err(Error::Setup(
            "the guest's init ended before it was ready".into(),
        )),
    }
}

/// Forks the exec broker ([`crate::broker`]) into the guest's cgroup2
/// directory; returns its pid and the pipe that tells it to serve (once
/// it is in the v1 cgroups too; it leaves when the pipe closes unused).
/// `None` when the socket path does not fit.
fn start_broker(
    paths: &Paths,
    name: &GuestName,
    plan: &Plan,
    cgroup: &GuestCgroup,
) -> Result<Option<(i32, OwnedFd)>> {
    let Some(listener) = crate::broker::listen(&crate::broker::socket_path(paths, name))? else {
        return Ok(None);
    };
    let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::io("pipe", "create", e.into()))?;
    let v2 = cgroup.v2_dir_fd().ok();
    // SAFETY: the monitor is single-threaded here; the child serves
    // requests and never returns.
    let forked = unsafe { ns::clone3(0, v2.as_ref().map(|f| f.as_fd()))? };
    match forked {
        Forked::Child => {
            // Keep only the listener (3) and the pipe (4): in particular
            // not the CLI's report channel, whose EOF `run` waits for.
            // Both copied high first, so neither dup2 below can land on
            // the other's original.
            let high = |fd: &OwnedFd| rustix::io::fcntl_dupfd_cloexec(fd, 10).ok();
            let ok = high(&listener).zip(high(&ready_r)).and_then(|(l, r)| {
                // SAFETY: dup2 onto low slots this process then owns.
                let (a, b) = unsafe {
                    (
                        libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&l), 3),
                        libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&r), 4),
                    )
                };
                (a == 3 && b == 4).then_some(())
            });
            std::mem::forget(listener);
            std::mem::forget(ready_r);
            std::mem::forget(ready_w);
            if ok.is_none() || vs_sys::ns::close_fds_from(5).is_err() {
                // SAFETY: leave the child.
                unsafe { libc::_exit(1) };
            }
            // SAFETY: 3 and 4 are the copies made above, owned from here.
            let (l, r) = unsafe {
                (
                    <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(3),
                    <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(4),
                )
            };
            crate::broker::serve(l, r, plan)
        }
        Forked::Parent { pid, .. } => Ok(Some((pid, ready_w))),
    }
}

/// Waits until the init or the broker ends; true if the broker did (the
/// init may still run).
fn wait_init_or_broker(init: BorrowedFd<'_>, broker: BorrowedFd<'_>) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    loop {
        let mut fds = [
            PollFd::from_borrowed_fd(init, PollFlags::IN),
            PollFd::from_borrowed_fd(broker, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {
                if fds[0].revents().contains(PollFlags::IN) {
                    return false;
                }
                if fds[1].revents().contains(PollFlags::IN) {
                    return true;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            // Cannot wait on both: the init alone is what matters.
            Err(_) => return false,
        }
    }
}

/// Creates the guest's init; returns its pid and pidfd once it is ready.
fn launch(plan: &Plan, cgroup: &GuestCgroup, also: Option<i32>) -> Result<(i32, OwnedFd)> {
    if plan.virt_uptime {
        ns::new_time_namespace_for_children()?;
    }
    let (ours, theirs) = Channel::pair()?;
    let cg_fd = cgroup.v2_dir_fd()?;
    crate::timing::mark("monitor: clone3");
    // SAFETY: the monitor is single-threaded; the child runs the init side
    // and leaves with _exit or exec.
    // The cgroup namespace comes later, from the init itself, once it is in
    // the guest's v1 cgroups (see `setup::ready`): made here it would be
    // rooted at the monitor's v1 cgroups, above every guest.
    let forked = unsafe { ns::clone3(plan.namespaces & !ns::flags::CGROUP, Some(cg_fd.as_fd()))? };
    let (pid, pidfd) = match forked {
        Forked::Child => {
            drop(ours);
            let err = match crate::setup::init_side(plan, &theirs) {
                Err(e) => e,
                Ok(never) => match never {},
            };
            let _ = theirs.send(&format!("error {err}"), None);
            // SAFETY: leave the child without the monitor's destructors.
            unsafe { libc::_exit(1) };
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(theirs);
    // clone3 put the init in the cgroup2 directory; each v1 hierarchy takes
    // a migration, and the first in a while costs an RCU grace period (5 ms
    // and more here): done on a thread while the init sets itself up, and
    // finished before the init may run guest code (it waits for `run`).
    let result = std::thread::scope(|s| {
        // `also`: the exec broker, moved with the init (one grace period).
        let joining = s.spawn(|| {
            cgroup.join_besides_v2(pid)?;
            also.map_or(Ok(()), |b| cgroup.join_besides_v2(b))
        });
        let set_up = set_up_init(plan, pid, &ours);
        let joined = joining
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        crate::timing::mark("monitor: joined cgroups");
        set_up?;
        joined?;
        ours.send("run", None)
    });
    if let Err(e) = result {
        let _ = ns::pidfd_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = ns::wait_pidfd(pidfd.as_fd(), false);
        return Err(e);
    }
    Ok((pid, pidfd))
}

/// The cgroups of guest `name`: those its state records, else where its
/// monitor would make them from here (under `.defaults/cgroup/base`).
pub fn find_cgroup(paths: &Paths, name: &GuestName) -> Result<Option<GuestCgroup>> {
    let fs = CgroupFs::system()?;
    if let Some(st) = state::read_state(paths, name)?
        && !st.cgroups.is_empty()
    {
        let cg = GuestCgroup::from_paths(&fs, &st.cgroups)?;
        if cg.paths().iter().any(|p| p.exists()) {
            return Ok(Some(cg));
        }
    }
    let base = paths.cgroup_base()?;
    Ok(GuestCgroup::open(&fs, base.as_deref(), name.as_str())?)
}

/// Removes what a guest leaves when it is gone: processes, cgroups (and
/// with them its BPF programs), host addresses, state.
pub fn cleanup(paths: &Paths, name: &GuestName) -> Result<()> {
    cleanup_with(paths, name, None)
}

/// [`cleanup`] with the state the monitor holds in memory (`known`), which
/// does not depend on the state file (it may be missing: its write failed).
fn cleanup_with(paths: &Paths, name: &GuestName, known: Option<&RunState>) -> Result<()> {
    if let Some(cg) = find_cgroup(paths, name)? {
        cg.kill_all()?;
        cg.remove()?;
    }
    // What the start made on the host, as its state recorded it (the
    // configuration may have changed since).
    let st = match known {
        Some(st) => Some(st.clone()),
        None => state::read_state(paths, name).ok().flatten(),
    };
    if let Some(st) = st {
        crate::net::remove_addresses(&st.addresses);
        if let Some(host_if) = &st.private_if {
            crate::net::teardown_private(name.as_str(), host_if);
        }
        // Without its monitor, nobody else waits for the meminfo server.
        if let Some((pid, ticks)) = st.meminfo_server {
            crate::memfs::await_end(pid, ticks);
        }
    }
    let _ = std::fs::remove_file(crate::broker::socket_path(paths, name));
    state::remove_state(paths, name)
}

/// The monitor's life: returns its exit code.
pub fn run(paths: &Paths, name: &GuestName, mode: Mode, report: Channel) -> i32 {
    let mut report = Some(report);
    let fail = |report: &mut Option<Channel>, e: &Error| {
        log(&format!("error: {e}"));
        if let Some(r) = report.take() {
            let _ = r.send(&format!("error {e}"), None);
        }
    };
    crate::timing::mark("monitor: started");
    let _ = ns::set_name(&format!("vserver:{name}"));
    let spec = match GuestSpec::load(paths, name) {
        Ok(s) => s,
        Err(e) => {
            fail(&mut report, &e.into());
            return 1;
        }
    };
    // What only the host can judge (cpuset members), before lxcfs or the
    // cgroups exist: a bad value changes nothing.
    if let Err(e) = crate::limits::check(&spec) {
        fail(&mut report, &e);
        return 1;
    }
    let mut plan = Plan::new(&spec, &mode);
    // `run`: the caller's stdio (start.rs), for the init to hand on; kept
    // from everything else the monitor starts (lxcfs, ip).
    // SAFETY: F_GETFD only reads the descriptor's flags.
    let is_open = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
    let mut run_stdio: Vec<OwnedFd> =
        if matches!(mode, Mode::Run(_)) && crate::start::RUN_STDIO.into_iter().all(is_open) {
            crate::start::RUN_STDIO
                .into_iter()
                // SAFETY: open (checked above), put there by the CLI for us
                // alone; nothing else in this process owns them.
                .map(|fd| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
                .map(|fd| rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC).map(|()| fd))
                .collect::<std::result::Result<_, _>>()
                .unwrap_or_default()
        } else {
            Vec::new()
        };
    plan.stdio = run_stdio.len() == 3;
    if spec.cflags.contains(&vs_config::CFlag::VirtMem) {
        // Before clone3: the guest's mount namespace must contain the mount.
        let dir = crate::lxcfs::default_dir(&paths.vdirbase());
        let lxcfs_log = paths.logdir().join("lxcfs.log");
        match crate::lxcfs::ensure_running(&dir, Some(&lxcfs_log)) {
            Ok(m) => {
                if let Some(pid) = m.started {
                    log(&format!("started lxcfs on {} (pid {pid})", m.dir.display()));
                }
                plan.lxcfs = Some(m.dir);
            }
            Err(e) => {
                fail(&mut report, &e);
                return 1;
            }
        }
    }
    crate::timing::mark("monitor: config read, lxcfs checked");
    let made = paths.cgroup_base().map_err(Error::from).and_then(|base| {
        let fs = CgroupFs::system()?;
        Ok(GuestCgroup::create(&fs, base.as_deref(), name.as_str())?)
    });
    let cgroup = match made {
        Ok(c) => c,
        Err(e) => {
            fail(&mut report, &e);
            return 1;
        }
    };
    match crate::limits::apply(&cgroup, &spec) {
        Ok(unsupported) => {
            for u in &unsupported {
                log(&format!("warning: {u}"));
            }
            // `as` is memory+swap where the host accounts swap; else it
            // stays the per-process RLIMIT_AS the plan carries.
            let swap_limited = spec
                .config
                .rlimits
                .contains_key(&vs_config::RlimitResource::As)
                && !unsupported.iter().any(|u| u.contains("swap"));
            if swap_limited {
                plan.rlimits
                    .retain(|l| l.resource != vs_sys::security::rlimit::Resource::As);
            }
        }
        Err(e) => {
            fail(&mut report, &e);
            let _ = cleanup(paths, name);
            return 1;
        }
    }
    crate::timing::mark("monitor: cgroups made, limits applied");
    // A user-namespace guest's root gets its cgroup2 and name=systemd
    // directories to build its own tree in (systemd needs that).
    if let Some(m) = plan.idmap
        && let Err(e) = cgroup.delegate(m.outside, m.outside)
    {
        fail(&mut report, &e.into());
        let _ = cleanup(paths, name);
        return 1;
    }
    crate::timing::mark("monitor: delegated");
    // Secure device nodes: before the init exists, so no guest process ever
    // runs without the filter. It goes with the cgroup.
    if let Some(fd) = cgroup.v2_dir().map(|_| cgroup.v2_dir_fd()) {
        let attached = fd.map_err(Error::from).and_then(|fd| {
            vs_net::bpf::devices::attach(fd.as_fd())
                .map_err(|e| Error::Setup(format!("device filter: {e}")))
        });
        if let Err(e) = attached {
            fail(&mut report, &e);
            let _ = cleanup(paths, name);
            return 1;
        }
    } else {
        // A pure v1 host: the v1 device lists, with the BPF filter's list.
        match cgroup.restrict_devices_v1(vs_net::bpf::devices::ALLOWED) {
            Ok(true) => {}
            Ok(false) => log("warning: no cgroup2 and no v1 devices hierarchy: no device filter"),
            Err(e) => {
                fail(&mut report, &e.into());
                let _ = cleanup(paths, name);
                return 1;
            }
        }
    }
    crate::timing::mark("monitor: device filter");
    // VIRT_MEM's /proc/meminfo (the rss soft limit as the memory size):
    // served from now on, by a process of its own (memfs).
    let mut meminfo = match spec
        .cflags
        .contains(&vs_config::CFlag::VirtMem)
        .then(|| cgroup.memory_view())
        .flatten()
        .map(|view| crate::memfs::start(view, name.as_str()))
        .transpose()
    {
        Ok(m) => m,
        Err(e) => {
            fail(&mut report, &e);
            let _ = cleanup(paths, name);
            return 1;
        }
    };
    plan.meminfo = meminfo.as_ref().map(|m| m.mount.as_raw_fd());
    crate::timing::mark("monitor: meminfo");
    let mut added = Vec::new();
    if let Some(net) = &plan.shared_net {
        if spec.nflags.contains(&vs_config::NFlag::HideNetif) {
            log(
                "warning: hide_netif: a guest sharing the host's network namespace sees its interfaces (use netns/ to hide them)",
            );
        }
        let attach = || -> Result<Vec<crate::net::Address>> {
            let added = crate::net::add_addresses(net)?;
            crate::timing::mark("monitor: addresses added");
            let fd = cgroup.v2_dir_fd()?;
            // The programs live as long as the cgroup: its removal at stop
            // detaches them.
            let unix =
                vs_net::UnixLayout::running_kernel_cached(&paths.rundir().join(".unix-layout"))
                    .map_err(|e| Error::Setup(format!("network confinement: {e}")))?;
            if let Err(e) = vs_net::attach_with(fd.as_fd(), &net.guest_addrs(), &unix) {
                crate::net::remove_addresses(&added);
                return Err(Error::Setup(format!("network confinement: {e}")));
            }
            Ok(added)
        };
        match attach() {
            Ok(a) => added = a,
            Err(e) => {
                fail(&mut report, &e);
                let _ = cleanup(paths, name);
                return 1;
            }
        }
    }
    let me = std::process::id() as i32;
    let my_ticks = process_start_ticks(std::path::Path::new("/proc"), me).unwrap_or(0);
    // The exec broker: forked now (single-threaded), moved into the v1
    // cgroups with the first init, then told to serve. Not for `run`,
    // whose instance lives for one command (exec into it still works,
    // without the broker).
    crate::timing::mark("monitor: network");
    let with_broker = !matches!(mode, Mode::Run(_));
    let mut broker = match with_broker.then(|| start_broker(paths, name, &plan, &cgroup)) {
        Some(Ok(b)) => b,
        Some(Err(e)) => {
            log(&format!("warning: no exec broker: {e}"));
            None
        }
        None => None,
    };
    // A guest that ends by itself (halt, poweroff, the end of `run` or of
    // a rescue command) or reboots gets util-vserver's hooks as vshelper's
    // `vserver NAME stop`/`restart` gave them; a `stop` (its marker) runs
    // them itself. `rebooted`: the start hooks of a new init are ours too.
    let hooks = |list: &[vs_config::Hook]| {
        if let Err(e) = crate::sequence::run_hooks(paths, &spec, list) {
            log(&format!("warning: {e}"));
            return false;
        }
        true
    };
    let mut rebooted = false;
    // The guest's lock, held from the stop hooks of a guest that ended by
    // itself to the end of its restart or stop: after the post-start hook
    // of the `start` or `run` that made it, before any other command.
    let mut held: Option<crate::lock::Lock>;
    // The broker's pidfd: the monitor reaps it when it ends (killed), so it
    // does not stay a zombie for the guest's whole life.
    let mut broker_pidfd = broker.as_ref().and_then(|b| ns::pidfd_open(b.0).ok());
    let (exit, stop_hooks) = loop {
        let launched = launch(&plan, &cgroup, broker.as_ref().map(|b| b.0));
        if let Some((_, go)) = broker.take()
            && launched.is_ok()
        {
            let _ = rustix::io::write(&go, b"g");
        }
        let (pid, pidfd) = match launched {
            Ok(p) => p,
            Err(e) => {
                fail(&mut report, &e);
                let _ = cleanup(paths, name);
                crate::net::remove_addresses(&added);
                if let Some(n) = &plan.private_net {
                    crate::net::teardown_private(&n.name, &n.host_if);
                }
                return 1;
            }
        };
        // The init has the caller's stdio now; the monitor lets go of it.
        run_stdio.clear();
        let st = RunState {
            context: spec.context,
            init_pid: pid,
            init_start_ticks: process_start_ticks(std::path::Path::new("/proc"), pid).unwrap_or(0),
            monitor_pid: me,
            monitor_start_ticks: my_ticks,
            cgroups: cgroup.paths(),
            addresses: added.clone(),
            private_if: plan.private_net.as_ref().map(|n| n.host_if.clone()),
            meminfo_server: meminfo.as_ref().map(|m| {
                let ticks = process_start_ticks(std::path::Path::new("/proc"), m.server);
                (m.server, ticks.unwrap_or(0))
            }),
            mode: crate::start::monitor_args(name, &mode).split_off(2),
            exec: Some(Box::new(plan.record())),
        };
        if let Err(e) = state::write_state(paths, name, &st) {
            fail(&mut report, &e);
            let _ = ns::pidfd_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = ns::wait_pidfd(pidfd.as_fd(), false);
            if let Some(m) = meminfo.take() {
                crate::memfs::finish(m);
            }
            let _ = cleanup_with(paths, name, Some(&st));
            return 1;
        }
        log(&format!("guest '{name}' started: init pid {pid}"));
        if spec.cflags.contains(&vs_config::CFlag::SchedPause) {
            // SCHED_PAUSE: the guest starts frozen (`vserver NAME resume`).
            if let Err(e) = cgroup.freeze() {
                log(&format!("warning: sched_pause: {e}"));
            }
        }
        crate::timing::mark("monitor: state written");
        if let Some(r) = &report {
            let _ = r.send(&format!("ok {pid}"), None);
        }
        if !matches!(
            plan.init,
            Init::Reaper {
                mode: ReaperMode::Run,
                ..
            }
        ) {
            report = None;
        }
        if rebooted && !hooks(&[vs_config::Hook::PostStart]) {
            // As a failing post-start hook of `start`: stopped again.
            let _ = ns::pidfd_signal(pidfd.as_fd(), libc::SIGKILL);
        }
        held = None;
        if let Some(b) = &broker_pidfd
            && wait_init_or_broker(pidfd.as_fd(), b.as_fd())
        {
            let _ = ns::wait_pidfd(b.as_fd(), false);
            broker_pidfd = None;
            let _ = std::fs::remove_file(crate::broker::socket_path(paths, name));
            log("warning: the exec broker ended; exec works without it");
        }
        let exit = match ns::wait_pidfd(pidfd.as_fd(), false) {
            Ok(Some(x)) => x,
            Ok(None) | Err(_) => Exit::Signal(libc::SIGKILL),
        };
        crate::timing::mark("monitor: init ended");
        log(&format!("guest '{name}' init ended: {exit:?}"));
        let by_stop = state::stopping_file(paths, name).exists();
        if !by_stop {
            held = crate::lock::Lock::guest_waiting(paths, name, crate::sequence::LOCK_WAIT).ok();
            hooks(crate::sequence::BEFORE_STOP);
        }
        if exit == Exit::Signal(libc::SIGHUP) && matches!(mode, Mode::Boot) && !by_stop {
            // reboot(2) inside: the kernel killed every process of the
            // guest's pid namespace with its init. No cgroup.kill here:
            // observed on 6.18, an init cloned into the cgroup right after
            // a cgroup.kill was itself SIGKILLed.
            log(&format!("guest '{name}' rebooting"));
            hooks(crate::sequence::AFTER_STOP);
            if !hooks(crate::sequence::BEFORE_START) {
                break (exit, false);
            }
            rebooted = true;
            continue;
        }
        break (exit, !by_stop);
    };
    // The guest's mount namespace is gone with its init: the meminfo
    // server ends now (before cleanup, which would wait for it).
    if let Some(m) = meminfo {
        crate::memfs::finish(m);
    }
    if let Err(e) = cleanup(paths, name) {
        log(&format!("cleanup: {e}"));
    }
    crate::timing::mark("monitor: cleaned up");
    log(&format!("guest '{name}' stopped"));
    if stop_hooks {
        hooks(crate::sequence::AFTER_STOP);
    }
    drop(held);
    if let Some(r) = report {
        let _ = r.send(&format!("exit {}", exit.shell_status()), None);
    }
    0
}
