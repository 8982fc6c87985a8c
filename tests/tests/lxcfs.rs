//! VIRT_MEM through lxcfs (issue: "free inside shows the guest's memory
//! limit"). The runtime's functions are tested in
//! `crates/runtime/src/lxcfs.rs` (root unit tests: one shared instance,
//! binds from a user namespace); here, what the design relies on, with
//! lxcfs started the way `vs_runtime::lxcfs::ensure_running` starts it, in a
//! private `VSERVER_ROOT`:
//! - a process in a v1 memory cgroup with a 256 MiB limit that has the
//!   lxcfs `meminfo` bound over `/proc/meminfo` (in its own mount
//!   namespace, `unshare -m`) sees 256 MiB in `free -m`;
//! - lxcfs 5.0.3 shows the hard limit (`memory.limit_in_bytes`), never the
//!   soft one (`memory.soft_limit_in_bytes`): that is why a guest's
//!   `/proc/meminfo` is served by its monitor instead (the rss soft limit
//!   as the size, util-vserver's promise), checked through the binary in
//!   [`a_virt_mem_guest_shows_its_memory_limit_in_meminfo`].

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vs_tests::{Env, Run, unique};

const MIB: u64 = 1024 * 1024;

/// An lxcfs this test started on `dir`; unmounted (`umount -l`) and killed
/// on drop, even after a failed assertion.
struct Lxcfs {
    dir: PathBuf,
    child: Child,
}

impl Lxcfs {
    /// `lxcfs -f -l --enable-cfs -p DIR.pid DIR`, in its own process group,
    /// output to `log`; waits until `DIR/proc/meminfo` answers.
    fn start(dir: &Path, log: &Path) -> Self {
        fs::create_dir_all(dir).unwrap();
        let out = fs::File::create(log).unwrap();
        let mut pid_file = dir.as_os_str().to_owned();
        pid_file.push(".pid");
        let child = Command::new("lxcfs")
            .args(["-f", "-l", "--enable-cfs", "-p"])
            .arg(&pid_file)
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("lxcfs is missing: run scripts/install-deps (Debian package lxcfs)");
        let mut me = Lxcfs {
            dir: dir.to_owned(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if fs::read_to_string(dir.join("proc/meminfo")).is_ok_and(|t| !t.is_empty()) {
                return me;
            }
            if let Ok(Some(st)) = me.child.try_wait() {
                panic!(
                    "lxcfs ended ({st}): {}",
                    fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "lxcfs did not serve {} within 5 s: {}",
                dir.display(),
                fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lxcfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A v1 memory cgroup, removed on drop.
struct MemCg(PathBuf);

impl MemCg {
    fn new(name: &str, files: &[(&str, u64)]) -> Self {
        let dir = Path::new("/sys/fs/cgroup/memory").join(name);
        fs::create_dir(&dir).unwrap();
        let cg = MemCg(dir);
        for (file, value) in files {
            fs::write(cg.0.join(file), value.to_string()).unwrap();
        }
        cg
    }
}

impl Drop for MemCg {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

/// `free -m` in `cg`, in a new mount namespace with the lxcfs `meminfo`
/// bound over `/proc/meminfo`; returns the `Mem:` total in MiB.
fn free_total_in(cg: &MemCg, lxcfs: &Lxcfs) -> u64 {
    let script = format!(
        "echo $$ > {}/cgroup.procs && mount --bind {}/proc/meminfo /proc/meminfo && free -m",
        cg.0.display(),
        lxcfs.dir.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    mem_total(&stdout)
}

fn mem_total(free_m: &str) -> u64 {
    free_m
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Mem: total in: {free_m}"))
}

fn lxcfs_mounts() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" - fuse.lxcfs "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn free_inside_shows_the_memory_cgroup_hard_limit() {
    let env = Env::new();
    let dir = env.path("var/lib/vservers/.lxcfs");
    {
        let lxcfs = Lxcfs::start(&dir, &env.path("lxcfs.log"));
        let name = unique("vs-lxcfs");

        // rss hard 65536 pages (4 KiB): 256 MiB.
        let hard = MemCg::new(
            &format!("{name}-hard"),
            &[
                ("memory.limit_in_bytes", 256 * MIB),
                ("memory.soft_limit_in_bytes", 128 * MIB),
            ],
        );
        assert_eq!(free_total_in(&hard, &lxcfs), 256);

        // A soft limit alone changes nothing: the host's total shows.
        let soft = MemCg::new(
            &format!("{name}-soft"),
            &[("memory.soft_limit_in_bytes", 256 * MIB)],
        );
        let host = Command::new("free").arg("-m").output().unwrap();
        let host = mem_total(&String::from_utf8_lossy(&host.stdout));
        assert_eq!(free_total_in(&soft, &lxcfs), host);
        assert_ne!(host, 256);
    }
    // Nothing left: the instance and its mount are gone.
    let ours = dir.to_str().unwrap();
    assert!(
        !lxcfs_mounts().iter().any(|l| l.contains(ours)),
        "{:?}",
        lxcfs_mounts()
    );
}

/// The processes whose parent is `ppid` and whose name starts `prefix`.
fn children_named(ppid: i32, prefix: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or("");
        let parent = tail.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if parent == Some(ppid) && comm.starts_with(prefix) {
            out.push(pid);
        }
    }
    out
}

/// The "Done when" through the `vserver` binary: the monitor
/// starts lxcfs and the init side binds its files over the guest's /proc;
/// `/proc/meminfo` is the monitor's own (crates/runtime/src/memfs.rs),
/// which shows the rss **soft** limit as the memory size, as util-vserver
/// promised, and follows `vlimit` at once.
///
/// A busybox guest's `free` takes the total from sysinfo(2), which no file
/// can change (its "available" column does come from `/proc/meminfo`);
/// procps' `free` reads `/proc/meminfo` (the debootstrap test checks it in
/// a Debian guest). So this checks the file, read with busybox `cat`
/// (sendfile: it trusts the file's size).
#[test]
fn a_virt_mem_guest_shows_its_memory_limit_in_meminfo() {
    let env = Env::new();
    let name = unique("virtmem");
    env.run(&[&name, "build", "-m", "busybox"]).ok();
    let cfg = env.path(&format!("etc/vservers/{name}"));
    let cflags = fs::read_to_string(cfg.join("cflags")).unwrap_or_default();
    fs::write(cfg.join("cflags"), format!("{cflags}virt_mem\n")).unwrap();
    fs::create_dir_all(cfg.join("rlimits")).unwrap();
    // Soft 65536 pages of 4 KiB (256 MiB) under a hard 512 MiB: the soft
    // limit is the size the guest sees.
    fs::write(cfg.join("rlimits/rss.soft"), "65536\n").unwrap();
    fs::write(cfg.join("rlimits/rss.hard"), "131072\n").unwrap();
    let lxcfs_dir = env.path("var/lib/vservers/.lxcfs");
    struct StopAll<'a>(&'a Env, String, PathBuf);
    impl Drop for StopAll<'_> {
        fn drop(&mut self) {
            let _ = self.0.run(&[&self.1, "stop"]);
            // The shared instance stays after guests stop: stop it here, or
            // the prefix cannot be removed.
            let _ = Command::new("umount").arg("-l").arg(&self.2).status();
            let mut pid_file = self.2.as_os_str().to_owned();
            pid_file.push(".pid");
            if let Ok(pid) = fs::read_to_string(&pid_file) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
    let _stop = StopAll(&env, name.clone(), lxcfs_dir.clone());
    env.run(&[&name, "start"]).ok();
    let meminfo: Run = env.run(&[&name, "exec", "cat", "/proc/meminfo"]).ok();
    assert!(
        meminfo.stdout.starts_with("MemTotal:         262144 kB\n"),
        "{}",
        meminfo.stdout
    );
    // Every host line is there, in the host's layout (same length).
    let host = fs::read_to_string("/proc/meminfo").unwrap();
    let keys = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.split(':').next().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(keys(&meminfo.stdout), keys(&host));
    // A soft limit changed from the host shows at once.
    env.run(&[&name, "limit", "-S", "--rss", "32768"]).ok();
    let after = env
        .run(&[&name, "exec", "head", "-1", "/proc/meminfo"])
        .ok();
    assert_eq!(after.stdout, "MemTotal:         131072 kB\n");
    let mounts = env
        .run(&[&name, "exec", "cat", "/proc/self/mountinfo"])
        .ok()
        .stdout;
    let fstype = |f: &str| -> String {
        let line = mounts
            .lines()
            .find(|l| {
                let v: Vec<&str> = l.split_whitespace().collect();
                v.get(4) == Some(&format!("/proc/{f}").as_str())
                    && v.get(5).is_some_and(|o| o.starts_with("ro,"))
            })
            .unwrap_or_else(|| panic!("/proc/{f} is not bound: {mounts}"));
        let (_, after) = line.split_once(" - ").unwrap();
        after.split_whitespace().next().unwrap().to_owned()
    };
    assert_eq!(fstype("meminfo"), "fuse.vserver", "{mounts}");
    for f in ["cpuinfo", "stat", "loadavg", "swaps", "diskstats"] {
        assert_eq!(fstype(f), "fuse.lxcfs", "{mounts}");
    }
    // One meminfo mount only (not stacked on lxcfs's).
    let on_meminfo = mounts
        .lines()
        .filter(|l| l.split_whitespace().nth(4) == Some("/proc/meminfo"))
        .count();
    assert_eq!(on_meminfo, 1, "{mounts}");
    assert!(!mounts.contains(" /proc/uptime /proc/uptime "), "{mounts}");
    assert!(
        lxcfs_mounts()
            .iter()
            .any(|l| l.contains(lxcfs_dir.to_str().unwrap())),
        "the shared instance serves {}",
        lxcfs_dir.display()
    );
    // The meminfo server is the monitor's child, and ends with the guest.
    let state: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(env.path(&format!("run/vservers/{name}/state.json"))).unwrap(),
    )
    .unwrap();
    let monitor = state["monitor_pid"].as_i64().unwrap() as i32;
    let servers = children_named(monitor, "meminfo:");
    assert_eq!(
        servers.len(),
        1,
        "one meminfo server under monitor {monitor}"
    );
    env.run(&[&name, "stop"]).ok();
    let gone = Path::new("/proc").join(servers[0].to_string());
    assert!(
        !gone.exists(),
        "meminfo server {} outlived stop",
        servers[0]
    );
}

#[test]
fn guests_started_from_two_mount_namespaces_each_get_an_lxcfs() {
    let env = Env::new();
    let (a, b) = (unique("vmnsa"), unique("vmnsb"));
    for g in [&a, &b] {
        env.run(&[g, "build", "-m", "busybox"]).ok();
        env.write_cfg(g, "rlimits/rss.hard", "65536\n");
    }
    // Env's drop stops both lxcfs instances; these stop the guests first.
    let _sa = vs_tests::Stopper(&env, a.clone());
    let _sb = vs_tests::Stopper(&env, b.clone());
    // a starts from one private mount namespace: its lxcfs mount lives
    // there (its lxcfs keeps the namespace) and holds `.lxcfs.pid`.
    let in_private_ns = |g: &str| {
        Command::new("unshare")
            .args(["-m", "--propagation", "private"])
            .arg(vs_tests::vserver_bin())
            .args([g, "start"])
            .env("VSERVER_ROOT", env.root())
            .output()
            .unwrap()
    };
    let ra = in_private_ns(&a);
    assert!(ra.status.success(), "{ra:?}");
    // b, from another one, cannot see that mount: it gets its own lxcfs
    // instead of failing on the locked pid file.
    let rb = in_private_ns(&b);
    assert!(rb.status.success(), "{rb:?}");
    for g in [&a, &b] {
        let m = env.run(&[g, "exec", "head", "-1", "/proc/meminfo"]).ok();
        assert_eq!(m.stdout, "MemTotal:         262144 kB\n", "{g}");
    }
    let base = env.path("var/lib/vservers");
    let pid_files: Vec<String> = fs::read_dir(&base)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".lxcfs") && n.ends_with(".pid"))
        .collect();
    assert_eq!(pid_files.len(), 2, "{pid_files:?}");
}
