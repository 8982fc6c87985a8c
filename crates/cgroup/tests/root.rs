//! Root integration tests on the host's real `/sys/fs/cgroup`.
//!
//! They need root and fail (never skip) without it. The legacy-layout tests
//! drive the v1 freezer, which the hybrid dev/CI host has (machine.md §1d).
//! Every test cleans up every cgroup and process it made, even when an
//! assertion fails: the [`Guard`] does it on drop.

use std::collections::BTreeSet;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

use vs_cgroup::{
    CgroupFs, CurrentLimits, Error, GUEST_LEVEL, GuestCgroup, Hierarchy, Layout, Limit, Limits,
    Membership, SYSTEM_ROOT, V1Controller,
};

/// The tests share the `vserver` level; run them one at a time so each can
/// check that its removal left nothing behind.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the vs-cgroup root tests must run as root (they create cgroups under {SYSTEM_ROOT} and \
         move processes into them); run `cargo test -p vs-cgroup --test root` as root"
    );
}

fn unique(label: &str) -> String {
    format!("vs-cgroup-test-{}-{label}", std::process::id())
}

/// Kills and reaps every process, then removes every cgroup and directory a
/// test made, on drop (so also after a failed assertion).
#[derive(Default)]
struct Guard {
    children: Vec<Child>,
    /// Children made with raw clone3 (not `std::process::Child`).
    raw: Vec<i32>,
    guests: Vec<GuestCgroup>,
    /// Extra cgroup directories (explicit bases), removed last, deepest
    /// first.
    dirs: Vec<PathBuf>,
}

impl Guard {
    fn sleeper(&mut self) -> i32 {
        let child = Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as i32;
        self.children.push(child);
        pid
    }

    fn spawn(&mut self, cmd: &mut Command) -> i32 {
        let child = cmd.spawn().expect("spawn");
        let pid = child.id() as i32;
        self.children.push(child);
        pid
    }

    fn child(&mut self, pid: i32) -> &mut Child {
        self.children
            .iter_mut()
            .find(|c| c.id() as i32 == pid)
            .expect("our child")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for g in &self.guests {
            let _ = g.kill_all_within(Duration::from_secs(5));
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for &pid in &self.raw {
            // SAFETY: plain syscalls on a pid we created and have not reaped;
            // no memory is shared.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        for g in &self.guests {
            let _ = g.remove();
            for p in g.paths() {
                rmdir_tree(&p);
                if let Some(level) = p.parent() {
                    let _ = std::fs::remove_dir(level);
                }
            }
        }
        for d in self.dirs.iter().rev() {
            rmdir_tree(d);
        }
    }
}

/// rmdir of `dir` and every directory below it, deepest first (best
/// effort: cleanup).
fn rmdir_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// `/proc/PID/stat` state letter.
fn proc_state(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let after = &stat[stat.rfind(')').expect("stat has comm") + 2..];
    after.chars().next().expect("state")
}

/// Asserts that `pid` is in the guest's directory in every hierarchy it
/// has, as the kernel reports it in `/proc/PID/cgroup`.
fn assert_member(fs: &CgroupFs, g: &GuestCgroup, pid: i32) {
    let m = Membership::of_pid(pid).expect("read /proc/PID/cgroup");
    for h in g.hierarchies() {
        let root = fs.hierarchy_root(h).expect("hierarchy root");
        let rel = g.dir(h).unwrap().strip_prefix(&root).unwrap();
        let want = format!("/{}", rel.display());
        assert_eq!(m.path(h), Some(want.as_str()), "pid {pid} in {h}");
    }
}

/// Every guest directory is gone; the `vserver` level is gone too unless
/// another guest (another test binary, a real guest) still has one there.
fn assert_removed(g: &GuestCgroup) {
    for p in g.paths() {
        assert!(!p.exists(), "{} still exists after remove", p.display());
        let level = p.parent().unwrap();
        assert_eq!(level.file_name().unwrap(), GUEST_LEVEL);
        if level.exists() {
            let others = std::fs::read_dir(level)
                .unwrap()
                .flatten()
                .any(|e| e.file_type().is_ok_and(|t| t.is_dir()));
            assert!(others, "{} is empty but was not removed", level.display());
        }
    }
}

fn assert_killed(guard: &mut Guard, pid: i32) {
    let status = guard.child(pid).wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "pid {pid}: {status}");
}

fn legacy_fs() -> CgroupFs {
    let fs = CgroupFs::with_layout(PathBuf::from(SYSTEM_ROOT), Layout::Legacy);
    assert!(
        fs.is_mounted(Hierarchy::V1(V1Controller::Freezer)),
        "this test needs the v1 freezer hierarchy at {SYSTEM_ROOT}/freezer (the hybrid dev/CI \
         host of machine.md §1d has it)"
    );
    fs
}

#[test]
fn detects_the_host_layout() {
    require_root();
    // Independent evidence: the file system types in mountinfo.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let fstype = |mnt: &str| {
        mountinfo.lines().rev().find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            (pre.split(' ').nth(4)? == mnt).then(|| post.split(' ').next().unwrap().to_owned())
        })
    };
    let expected = match (
        fstype(SYSTEM_ROOT).as_deref(),
        fstype("/sys/fs/cgroup/unified").as_deref(),
    ) {
        (Some("cgroup2"), _) => Layout::Unified,
        (Some("tmpfs"), Some("cgroup2")) => Layout::Hybrid,
        (Some("tmpfs"), _) => Layout::Legacy,
        other => panic!("unexpected cgroup mounts {other:?}"),
    };
    let fs = CgroupFs::system().unwrap();
    assert_eq!(fs.layout(), expected);
    assert!(!fs.is_fixture());
    assert!(!fs.guest_hierarchies().unwrap().is_empty());
}

#[test]
fn lifecycle_track_freeze_kill_remove() {
    require_root();
    let _serial = serial();
    let mut guard = Guard::default();
    let fs = CgroupFs::system().unwrap();
    let name = unique("life");

    let g = GuestCgroup::create(&fs, None, &name).unwrap();
    guard.guests.push(g.clone());
    assert_eq!(g.hierarchies(), fs.guest_hierarchies().unwrap());
    for p in g.paths() {
        assert!(p.is_dir(), "{}", p.display());
        assert!(p.ends_with(Path::new(GUEST_LEVEL).join(&name)));
    }
    if fs.layout() == Layout::Hybrid {
        let r = fs.root();
        assert_eq!(
            g.v2_dir(),
            Some(r.join("unified").join(GUEST_LEVEL).join(&name).as_path())
        );
        for c in [
            V1Controller::Pids,
            V1Controller::Memory,
            V1Controller::Cpu,
            V1Controller::Cpuacct,
            V1Controller::Cpuset,
            V1Controller::Blkio,
        ] {
            if fs.is_mounted(Hierarchy::V1(c)) {
                assert!(g.dir(Hierarchy::V1(c)).is_some(), "{}", c.name());
            }
        }
        // A new v1 cpuset starts empty; joining needs it filled.
        if let Some(d) = g.dir(Hierarchy::V1(V1Controller::Cpuset)) {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let v = std::fs::read_to_string(d.join(f)).unwrap();
                assert!(!v.trim().is_empty(), "{f} of {} is empty", d.display());
            }
        }
    }
    assert!(!g.is_populated().unwrap());

    let outsider = guard.sleeper();
    let pids: Vec<i32> = (0..3).map(|_| guard.sleeper()).collect();
    for &pid in &pids {
        g.join(pid).unwrap();
    }
    for &pid in &pids {
        assert_member(&fs, &g, pid);
    }
    assert_eq!(
        g.procs().unwrap(),
        pids.iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert!(g.is_populated().unwrap());

    // Another process finds the same cgroups.
    let opened = GuestCgroup::open(&fs, None, &name).unwrap().expect("open");
    assert_eq!(opened.paths(), g.paths());
    let saved = GuestCgroup::from_paths(&fs, &g.paths()).unwrap();
    assert_eq!(saved.procs().unwrap(), g.procs().unwrap());

    // In use: neither created again nor removed.
    let err = GuestCgroup::create(&fs, None, &name).unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    let err = g.remove().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBUSY), "{err}");
    assert!(err.to_string().contains(&name), "{err}");
    assert!(g.paths().iter().all(|p| p.is_dir()));

    g.freeze().unwrap();
    assert!(g.is_frozen().unwrap());
    assert_eq!(g.stats().unwrap().frozen, Some(true));
    if let Some(v2) = g.v2_dir() {
        let events = std::fs::read_to_string(v2.join("cgroup.events")).unwrap();
        assert!(events.contains("frozen 1"), "{events}");
    } else {
        for &pid in &pids {
            assert_eq!(proc_state(pid), 'D', "pid {pid}");
        }
    }
    assert_ne!(proc_state(outsider), 'D');
    g.thaw().unwrap();
    assert!(!g.is_frozen().unwrap());
    for &pid in &pids {
        assert_ne!(proc_state(pid), 'D', "pid {pid}");
    }

    opened.kill_all().unwrap();
    for &pid in &pids {
        assert_killed(&mut guard, pid);
    }
    assert!(!g.is_populated().unwrap());
    assert!(g.procs().unwrap().is_empty());
    assert!(
        guard.child(outsider).try_wait().unwrap().is_none(),
        "kill_all killed a process outside the guest"
    );

    g.remove().unwrap();
    assert_removed(&g);
    g.remove().unwrap();
    assert!(GuestCgroup::open(&fs, None, &name).unwrap().is_none());
}

/// The guest makes sub-cgroups (as its systemd does): they are listed,
/// killed and removed.
#[test]
fn nested_sub_cgroups() {
    require_root();
    let _serial = serial();
    let mut guard = Guard::default();
    let fs = CgroupFs::system().unwrap();
    let g = GuestCgroup::create(&fs, None, &unique("nested")).unwrap();
    guard.guests.push(g.clone());

    let top = guard.sleeper();
    let mid = guard.sleeper();
    let deep = guard.sleeper();
    g.join(top).unwrap();
    for p in g.paths() {
        std::fs::create_dir_all(p.join("sub/deeper")).unwrap();
        std::fs::create_dir(p.join("empty")).unwrap();
        std::fs::write(p.join("sub/cgroup.procs"), mid.to_string()).unwrap();
        std::fs::write(p.join("sub/deeper/cgroup.procs"), deep.to_string()).unwrap();
    }
    let mut want = vec![top, mid, deep];
    want.sort();
    assert_eq!(g.procs().unwrap(), want);
    assert!(g.is_populated().unwrap());

    g.kill_all().unwrap();
    for pid in [top, mid, deep] {
        assert_killed(&mut guard, pid);
    }
    assert!(!g.is_populated().unwrap());
    g.remove().unwrap();
    assert_removed(&g);
}

/// `v2_dir_fd` is what `clone3(CLONE_INTO_CGROUP)` needs: the child starts
/// in the guest's cgroup2 directory.
#[test]
fn clone3_into_the_v2_cgroup() {
    require_root();
    let _serial = serial();
    let mut guard = Guard::default();
    let fs = CgroupFs::system().unwrap();
    assert!(
        fs.layout() != Layout::Legacy,
        "this test needs cgroup2 (unified or hybrid host)"
    );
    let name = unique("clone3");
    let g = GuestCgroup::create(&fs, None, &name).unwrap();
    guard.guests.push(g.clone());
    let fd = g.v2_dir_fd().unwrap();

    // SAFETY: the child only calls async-signal-safe pause(2) until it is
    // killed.
    let pid = match unsafe { vs_sys::ns::clone3(0, Some(fd.as_fd())) }.unwrap() {
        vs_sys::ns::Forked::Child => loop {
            // SAFETY: pause(2) takes no arguments and is async-signal-safe.
            unsafe { libc::pause() };
        },
        vs_sys::ns::Forked::Parent { pid, .. } => pid,
    };
    guard.raw.push(pid);

    let m = Membership::of_pid(pid).unwrap();
    let rel = g
        .v2_dir()
        .unwrap()
        .strip_prefix(fs.hierarchy_root(Hierarchy::V2).unwrap())
        .unwrap();
    assert_eq!(m.v2(), Some(format!("/{}", rel.display()).as_str()));
    assert!(g.procs().unwrap().contains(&pid));

    g.kill_all().unwrap();
    let mut status = 0;
    // SAFETY: waitpid on our own unreaped child with a valid status pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    guard.raw.clear();
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
    g.remove().unwrap();
    assert_removed(&g);
}

/// An explicit base replaces the caller's cgroup; `remove` leaves the base.
#[test]
fn explicit_base() {
    require_root();
    let _serial = serial();
    let mut guard = Guard::default();
    let fs = CgroupFs::system().unwrap();
    let base = format!("/{}", unique("base"));
    let name = unique("based");
    for h in fs.guest_hierarchies().unwrap() {
        guard.dirs.push(fs.cgroup_dir(h, &base).unwrap());
    }
    let g = GuestCgroup::create(&fs, Some(Path::new(&base)), &name).unwrap();
    guard.guests.push(g.clone());
    for h in g.hierarchies() {
        let want = fs
            .cgroup_dir(h, &base)
            .unwrap()
            .join(GUEST_LEVEL)
            .join(&name);
        assert_eq!(g.dir(h), Some(want.as_path()));
        assert!(want.is_dir());
    }
    assert!(GuestCgroup::open(&fs, None, &name).unwrap().is_none());
    let opened = GuestCgroup::open(&fs, Some(Path::new(&base)), &name)
        .unwrap()
        .expect("open with base");
    assert_eq!(opened.paths(), g.paths());

    let pid = guard.sleeper();
    g.join(pid).unwrap();
    assert_member(&fs, &g, pid);
    g.kill_all().unwrap();
    assert_killed(&mut guard, pid);
    g.remove().unwrap();
    assert_removed(&g);
    for d in &guard.dirs {
        assert!(d.is_dir(), "remove took the base {} too", d.display());
    }
}

/// An empty leftover (a crashed monitor) is reused.
#[test]
fn empty_leftover_is_reused() {
    require_root();
    let _serial = serial();
    let mut guard = Guard::default();
    let fs = CgroupFs::system().unwrap();
    let name = unique("reuse");
    let g = GuestCgroup::create(&fs, None, &name).unwrap();
    guard.guests.push(g.clone());
    let again = GuestCgroup::create(&fs, None, &name).unwrap();
    assert_eq!(again.paths(), g.paths());
    again.remove().unwrap();
    assert_removed(&g);
}

/// The host driven as a legacy (v1-only) layout: the v1 freezer freezes
/// (tasks in state D), and the kill falls back to freeze + SIGKILL
/// through pidfds + thaw.
#[test]
fn legacy_freezer_freeze_and_kill() {
    require_root();
    let _serial = serial();
    let mut guard = Guard::default();
    let fs = legacy_fs();
    let g = GuestCgroup::create(&fs, None, &unique("legacy")).unwrap();
    guard.guests.push(g.clone());
    assert_eq!(g.v2_dir(), None);
    assert!(g.dir(Hierarchy::V1(V1Controller::Freezer)).is_some());

    let pids: Vec<i32> = (0..2).map(|_| guard.sleeper()).collect();
    for &pid in &pids {
        g.join(pid).unwrap();
        assert_member(&fs, &g, pid);
    }
    g.freeze().unwrap();
    let state = g
        .dir(Hierarchy::V1(V1Controller::Freezer))
        .unwrap()
        .join("freezer.state");
    assert_eq!(std::fs::read_to_string(&state).unwrap().trim(), "FROZEN");
    for &pid in &pids {
        assert_eq!(proc_state(pid), 'D', "pid {pid}");
    }
    // Killing a frozen guest works (the kill thaws it).
    g.kill_all().unwrap();
    for &pid in &pids {
        assert_killed(&mut guard, pid);
    }
    assert_eq!(std::fs::read_to_string(&state).unwrap().trim(), "THAWED");
    g.remove().unwrap();
    assert_removed(&g);
}

/// A guest that keeps forking while it is killed: everything goes,
/// grandchildren included.
fn kill_forking_guest(fs: &CgroupFs, label: &str) {
    let mut guard = Guard::default();
    let g = GuestCgroup::create(fs, None, &unique(label)).unwrap();
    guard.guests.push(g.clone());
    // Joins itself first so that every sleep it forks starts inside.
    let script = format!(
        "for d in {}; do echo $$ > $d/cgroup.procs; done; \
         while :; do sleep 100 & sleep 0.01; done",
        g.paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let sh = guard.spawn(Command::new("sh").arg("-c").arg(script));
    std::thread::sleep(Duration::from_millis(300));
    let before = g.procs().unwrap();
    assert!(before.contains(&sh), "{before:?}");
    assert!(before.len() > 3, "the guest did not fork: {before:?}");
    g.kill_all().unwrap();
    assert_killed(&mut guard, sh);
    assert!(!g.is_populated().unwrap());
    assert!(g.procs().unwrap().is_empty());
    g.remove().unwrap();
    assert_removed(&g);
}

#[test]
fn kill_forking_guest_system_layout() {
    require_root();
    let _serial = serial();
    kill_forking_guest(&CgroupFs::system().unwrap(), "fork");
}

#[test]
fn kill_forking_guest_legacy_freezer() {
    require_root();
    let _serial = serial();
    kill_forking_guest(&legacy_fs(), "fork-legacy");
}

// ----- limits and statistics -----

const MIB: u64 = 1 << 20;

/// `sh -c` text that moves the shell into every directory of the guest and
/// then runs `cmd` (so that everything it does is inside from the start).
fn in_guest(g: &GuestCgroup, cmd: &str) -> String {
    format!(
        "for d in {}; do echo $$ > $d/cgroup.procs || exit 99; done; {cmd}",
        g.paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn new_guest(guard: &mut Guard, label: &str) -> (CgroupFs, GuestCgroup) {
    let fs = CgroupFs::system().unwrap();
    let g = GuestCgroup::create(&fs, None, &unique(label)).unwrap();
    guard.guests.push(g.clone());
    (fs, g)
}

/// Kills the guest, reaps those of our children it had, removes it.
fn finish(guard: &mut Guard, g: &GuestCgroup) {
    let inside = g.procs().unwrap();
    g.kill_all().unwrap();
    for c in &mut guard.children {
        if inside.contains(&(c.id() as i32)) {
            let _ = c.wait();
        }
    }
    g.remove().unwrap();
    assert_removed(g);
}

/// Over the memory limit the OOM killer kills inside the guest only: the
/// 200 MiB allocation dies, its sibling in the same guest and a process
/// outside live on; the statistics count the kill.
#[test]
fn memory_limit_oom_kills_inside_the_guest() {
    require_root();
    let _serial = serial();
    let mut guard = Guard::default();
    let (_fs, g) = new_guest(&mut guard, "oom");
    let unsupported = g
        .apply(&Limits {
            memory_max: Some(Limit::Value(64 * MIB)),
            ..Limits::default()
        })
        .unwrap();
    assert!(unsupported.is_empty(), "{unsupported:?}");
    assert_eq!(g.limits().unwrap().memory_max, Some(Limit::Value(64 * MIB)));

    let outsider = guard.sleeper();
    let sibling = guard.sleeper();
    g.join(sibling).unwrap();
    // dd allocates a buffer of `bs` bytes and fills it from /dev/zero.
    let dd = guard.spawn(Command::new("sh").arg("-c").arg(in_guest(
        &g,
        "exec dd if=/dev/zero of=/dev/null bs=200M count=1",
    )));
    let status = guard.child(dd).wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "dd: {status}");
    assert!(guard.child(sibling).try_wait().unwrap().is_none());
    assert!(guard.child(outsider).try_wait().unwrap().is_none());
    assert!(g.procs().unwrap().contains(&sibling));

    let s = g.stats().unwrap();
    assert!(s.oom_kills.unwrap() >= 1, "{s:?}");
    assert!(s.memory_limit_hits.unwrap() > 0, "{s:?}");
    let peak = s.memory_peak.unwrap();
    assert!(peak > 32 * MIB && peak <= 64 * MIB, "{s:?}");
    assert!(s.memory_current.unwrap() < 64 * MIB, "{s:?}");
    assert!(s.memory_rss.is_some(), "{s:?}");
    assert_eq!(s.processes, Some(1), "{s:?}");
    finish(&mut guard, &g);
}

/// The kernel checks memory <= memory+swap after every write: raising
/// and lowering both must come in the right order.
#[test]
fn memory_and_swap_limits_raise_and_lower() {
    require_root();
    let _serial = serial();
    let mut guard = Guard::default();
    let (_fs, g) = new_guest(&mut guard, "memsw");
    let pid = guard.sleeper();
    g.join(pid).unwrap();
    let steps = [
        (Limit::Value(64 * MIB), Limit::Value(96 * MIB)),
        (Limit::Value(1024 * MIB), Limit::Value(2048 * MIB)),
        (Limit::Value(32 * MIB), Limit::Value(48 * MIB)),
        (Limit::Value(40 * MIB), Limit::Value(200 * MIB)),
        (Limit::Max, Limit::Max),
        (Limit::Value(16 * MIB), Limit::Value(16 * MIB)),
    ];
    for (memory, total) in steps {
        let l = Limits {
            memory_max: Some(memory),
            memory_soft: Some(memory),
            memory_swap_max: Some(total),
            ..Limits::default()
        };
        let unsupported = g
            .apply(&l)
            .unwrap_or_else(|e| panic!("{memory}/{total}: {e}"));
        let back = g.limits().unwrap();
        assert_eq!(back.memory_max, Some(memory));
        assert_eq!(back.memory_soft, Some(memory));
        if unsupported.is_empty() {
            assert_eq!(back.memory_swap_max, Some(total));
        } else {
            // No swap accounting on this host.
            assert_eq!(unsupported.len(), 1, "{unsupported:?}");
            assert_eq!(unsupported[0].what, "memory+swap limit");
        }
    }
    let s = g.stats().unwrap();
    assert!(
        s.memory_current.is_some() && s.memory_peak.is_some(),
        "{s:?}"
    );
    finish(&mut guard, &g);
}

/// A shell forking 50 sleeps in a guest limited to 20 tasks: forks fail,
/// and the statistics count them.
#[test]
fn pids_limit_stops_forks() {
    require_root();
    let _serial = serial();
    let mut guard = Guard::default();
    let (_fs, g) = new_guest(&mut guard, "pids");
    let u = g
        .apply(&Limits {
            pids_max: Some(Limit::Value(20)),
            ..Limits::default()
        })
        .unwrap();
    assert!(u.is_empty(), "{u:?}");
    assert_eq!(g.limits().unwrap().pids_max, Some(Limit::Value(20)));
    let sh = guard.spawn(Command::new("sh").arg("-c").arg(in_guest(
        &g,
        "i=0; while [ $i -lt 50 ]; do sleep 100 & i=$((i+1)); done; wait",
    )));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let s = loop {
        let s = g.stats().unwrap();
        if s.pids_limit_hits.unwrap_or(0) > 0 || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(s.pids_limit_hits.unwrap() > 0, "{s:?}");
    assert!(s.pids_current.unwrap() <= 20, "{s:?}");
    if let Some(peak) = s.pids_peak {
        assert!(peak <= 20, "{s:?}");
    }
    assert!(g.procs().unwrap().len() <= 20);
    let _ = sh;
    finish(&mut guard, &g);
}

/// 25 ms of CPU per 100 ms: a 2 s busy loop gets about 0.5 s.
#[test]
fn cpu_quota_throttles() {
    require_root();
    let _serial = serial();
    let mut guard = Guard::default();
    let (_fs, g) = new_guest(&mut guard, "cpu");
    let u = g
        .apply(&Limits {
            cpu_max: Some((25_000, 100_000)),
            ..Limits::default()
        })
        .unwrap();
    assert!(u.is_empty(), "{u:?}");
    let back = g.limits().unwrap();
    assert_eq!(back.cpu_quota_us, Some(Limit::Value(25_000)));
    assert_eq!(back.cpu_period_us, Some(100_000));
    let busy = guard.spawn(
        Command::new("sh")
            .arg("-c")
            .arg(in_guest(&g, "exec timeout 2 sh -c 'while :; do :; done'")),
    );
    let status = guard.child(busy).wait().unwrap();
    assert_eq!(status.code(), Some(124), "timeout: {status}");
    let s = g.stats().unwrap();
    let used = s.cpu_user_usec.unwrap() + s.cpu_system_usec.unwrap();
    assert!(
        (100_000..1_000_000).contains(&used),
        "{used} µs of CPU in 2 s at 25 %: {s:?}"
    );
    assert!(s.cpu_throttled_periods.unwrap() > 0, "{s:?}");
    assert!(s.cpu_periods.unwrap() >= s.cpu_throttled_periods.unwrap());
    assert!(s.cpu_throttled_usec.unwrap() > 0, "{s:?}");

    // Cleared: no quota any more.
    g.apply(&Limits {
        cpu_max_clear: true,
        ..Limits::default()
    })
    .unwrap();
    assert_eq!(g.limits().unwrap().cpu_quota_us, Some(Limit::Max));
    finish(&mut guard, &g);
}

fn cpus_allowed(pid: i32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim()
        .to_owned()
}

/// The cpuset confines the guest's processes, those already in and those
/// joining later; a CPU the host does not have is refused, naming the file
/// and the value.
#[test]
fn cpuset_confines_and_bad_cpus_are_refused() {
    require_root();
    let _serial = serial();
    let mut guard = Guard::default();
    let (_fs, g) = new_guest(&mut guard, "cpuset");
    let before = guard.sleeper();
    g.join(before).unwrap();
    let u = g
        .apply(&Limits {
            cpuset_cpus: Some("0".to_owned()),
            cpuset_mems: Some("0".to_owned()),
            ..Limits::default()
        })
        .unwrap();
    assert!(u.is_empty(), "{u:?}");
    let after = guard.sleeper();
    g.join(after).unwrap();
    assert_eq!(cpus_allowed(before), "0");
    assert_eq!(cpus_allowed(after), "0");
    let back = g.limits().unwrap();
    assert_eq!(back.cpuset_cpus.as_deref(), Some("0"));
    assert_eq!(back.cpuset_mems.as_deref(), Some("0"));

    let err = g
        .apply(&Limits {
            cpuset_cpus: Some("99".to_owned()),
            ..Limits::default()
        })
        .unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("cpuset.cpus") && msg.contains("\"99\""),
        "{msg}"
    );
    assert_eq!(g.limits().unwrap().cpuset_cpus.as_deref(), Some("0"));
    finish(&mut guard, &g);
}

/// Everything at once, read back; on this host (hybrid, all v1
/// controllers) nothing is unsupported.
#[test]
fn all_limits_read_back() {
    require_root();
    let _serial = serial();
    let mut guard = Guard::default();
    let (fs, g) = new_guest(&mut guard, "all");
    let l = Limits {
        memory_max: Some(Limit::Value(256 * MIB)),
        memory_soft: Some(Limit::Value(128 * MIB)),
        // (No minimum on this host's v1 memory controller.)
        memory_low: None,
        memory_swap_max: Some(Limit::Value(512 * MIB)),
        pids_max: Some(Limit::Value(100)),
        cpu_max: Some((50_000, 100_000)),
        cpu_max_clear: false,
        cpu_burst_us: Some(25_000),
        cpu_weight: Some(200),
        cpuset_cpus: Some("0".to_owned()),
        cpuset_mems: Some("0".to_owned()),
        io_weight: Some(300),
    };
    let unsupported = g.apply(&l).unwrap();
    let back = g.limits().unwrap();
    if fs.layout() == Layout::Hybrid && fs.mounted_hierarchies().len() >= 8 {
        assert!(unsupported.is_empty(), "{unsupported:?}");
        assert_eq!(
            back,
            CurrentLimits {
                memory_max: l.memory_max,
                memory_soft: l.memory_soft,
                memory_low: None,
                memory_swap_max: l.memory_swap_max,
                pids_max: l.pids_max,
                cpu_quota_us: Some(Limit::Value(50_000)),
                cpu_period_us: Some(100_000),
                cpu_burst_us: Some(25_000),
                cpu_weight: Some(200),
                cpuset_cpus: Some("0".to_owned()),
                cpuset_mems: Some("0".to_owned()),
                io_weight: Some(300),
            }
        );
        let shares = g
            .dir(Hierarchy::V1(V1Controller::Cpu))
            .unwrap()
            .join("cpu.shares");
        assert_eq!(std::fs::read_to_string(shares).unwrap().trim(), "2048");
    }
    // Lowering the quota below the current burst lowers the burst too.
    g.apply(&Limits {
        cpu_max: Some((10_000, 100_000)),
        ..Limits::default()
    })
    .unwrap();
    let back = g.limits().unwrap();
    assert_eq!(back.cpu_quota_us, Some(Limit::Value(10_000)));
    assert_eq!(back.cpu_burst_us, Some(10_000));
    // A process runs fine under all of it.
    let pid = guard.sleeper();
    g.join(pid).unwrap();
    assert_member(&fs, &g, pid);
    let s = g.stats().unwrap();
    assert_eq!(s.processes, Some(1));
    assert!(s.pids_current.unwrap() >= 1, "{s:?}");
    finish(&mut guard, &g);
}

/// The legacy layout's device lists on this host's v1 `devices` hierarchy
/// (the hybrid layout does not use it: its guests get the BPF filter):
/// the listed device opens, another does not, and `mknod` stays allowed
/// by the lists.
#[test]
fn legacy_device_lists_allow_only_the_listed_devices() {
    require_root();
    let _serial = serial();
    let mut guard = Guard::default();
    let fs = legacy_fs();
    assert!(
        fs.is_mounted(Hierarchy::V1(V1Controller::Devices)),
        "this test needs the v1 devices hierarchy at {SYSTEM_ROOT}/devices"
    );
    let g = GuestCgroup::create(&fs, None, &unique("devices")).unwrap();
    guard.guests.push(g.clone());
    let dir = g.dir(Hierarchy::V1(V1Controller::Devices)).unwrap();
    assert!(g.restrict_devices_v1(&[(1, Some(3)), (136, None)]).unwrap());
    let list = std::fs::read_to_string(dir.join("devices.list")).unwrap();
    let list: BTreeSet<&str> = list.lines().collect();
    assert_eq!(
        list,
        BTreeSet::from(["c *:* m", "b *:* m", "c 1:3 rw", "c 136:* rw"])
    );
    let script = in_guest(
        &g,
        "cat /dev/null && echo null-ok; head -c1 /dev/zero >/dev/null 2>&1 || echo zero-refused",
    );
    let sh = guard.spawn(
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdout(std::process::Stdio::piped()),
    );
    let out = guard.child(sh).wait_with_output_ref();
    assert_eq!(out, "null-ok\nzero-refused\n");
    finish(&mut guard, &g);
}

trait WaitOutput {
    fn wait_with_output_ref(&mut self) -> String;
}

impl WaitOutput for Child {
    /// Reads the child's piped stdout to the end and reaps it.
    fn wait_with_output_ref(&mut self) -> String {
        use std::io::Read;
        let mut out = String::new();
        if let Some(mut o) = self.stdout.take() {
            o.read_to_string(&mut out).unwrap();
        }
        self.wait().unwrap();
        out
    }
}
