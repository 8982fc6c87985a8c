//! Context limits, the token bucket, accounting, vlimit, vserver-stat and
//! the guest's view of memory (issue 4's "Done when").

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vs_tests::{Env, Stopper, unique};

fn guest(env: &Env, prefix: &str, ctx: &str) -> String {
    let name = unique(prefix);
    env.run(&[&name, "build", "-m", "busybox", "--context", ctx])
        .ok();
    name
}

/// Each cgroup hierarchy this test process is in: its mount directory and
/// the process's own cgroup path there, from `/proc/self/cgroup` (the
/// `vserver` commands the test runs inherit them).
fn own_cgroups() -> Vec<(PathBuf, String)> {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap();
    let root = Path::new("/sys/fs/cgroup");
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            let mount = if ctrls.is_empty() {
                if root.join("cgroup.controllers").exists() {
                    root.to_path_buf()
                } else {
                    root.join("unified")
                }
            } else {
                let first = ctrls.split(',').next()?.trim_start_matches("name=");
                [root.join(ctrls), root.join(first)]
                    .into_iter()
                    .find(|p| p.join("cgroup.procs").is_file())?
            };
            Some((mount, path.to_owned()))
        })
        .collect()
}

/// Where guest `name`'s cgroup would be in every hierarchy this process is
/// in, parent = this process's own cgroup (no `.defaults/cgroup/base`).
fn guest_cgroup_dirs(name: &str) -> Vec<PathBuf> {
    own_cgroups()
        .into_iter()
        .map(|(m, p)| m.join(p.trim_start_matches('/')).join("vserver").join(name))
        .collect()
}

/// Cgroup directories a test made: removed (deepest first) when dropped.
struct CgroupDirs(Vec<PathBuf>);

impl Drop for CgroupDirs {
    fn drop(&mut self) {
        let mut dirs = self.0.clone();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = fs::remove_dir(d);
        }
    }
}

/// The `vlimit -a -d` line of `res`: [min, soft, hard, current, max, hits].
fn vlimit(env: &Env, name: &str, res: &str) -> Vec<String> {
    let out = env.run(&[name, "limit", "-a", "-d"]).ok().stdout;
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(res))
        .unwrap_or_else(|| panic!("{res} in {out}"));
    line.split_whitespace().skip(1).map(str::to_owned).collect()
}

#[test]
fn rss_hard_oom_kills_inside_only_and_counts_the_hit() {
    let env = Env::new();
    let name = guest(&env, "oom", "4601");
    env.write_cfg(&name, "rlimits/rss.hard", "16384\n");
    env.run(&[&name, "start"]).ok();
    let _s = Stopper(&env, name.clone());
    let before: u64 = vlimit(&env, &name, "rss")[5].parse().unwrap();
    let r = env.exec(
        &name,
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"],
    );
    assert_eq!(r.code, 137, "{r:#?}");
    // The guest and its other processes live on.
    assert_eq!(env.run(&[&name, "status"]).code, 0);
    assert_eq!(
        env.exec(&name, &["cat", "/proc/1/comm"]).ok().stdout,
        "init\n"
    );
    let line = vlimit(&env, &name, "rss");
    assert_eq!(line[2], "16384", "{line:?}");
    let after: u64 = line[5].parse().unwrap();
    assert!(after > before, "hits {before} -> {after}");
    let json: serde_json::Value =
        serde_json::from_str(&env.run(&[&name, "stats", "--json"]).ok().stdout).unwrap();
    assert!(json["stats"]["oom_kills"].as_u64().unwrap() >= 1, "{json}");
    assert_eq!(json["limits"]["memory_max"], 16384u64 * 4096, "{json}");
}

#[test]
fn nproc_stops_a_fork_bomb_and_reports_the_hit() {
    let env = Env::new();
    let name = guest(&env, "npr", "4602");
    env.write_cfg(&name, "rlimits/nproc", "40\n");
    env.run(&[&name, "start"]).ok();
    let _s = Stopper(&env, name.clone());
    let r = env.exec(
        &name,
        &["sh", "-c", "for i in $(seq 100); do sleep 3 & done; wait"],
    );
    assert!(r.stderr.contains("can't fork") || r.code != 0, "{r:#?}");
    let line = vlimit(&env, &name, "nproc");
    assert_eq!(line[2], "40");
    assert!(line[4].parse::<u64>().unwrap() <= 40, "{line:?}");
    assert!(line[5].parse::<u64>().unwrap() >= 1, "{line:?}");
    // The host is unaffected: it forks fine.
    assert!(
        std::process::Command::new("true")
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn fill_rate_1_interval_4_is_a_quarter_of_a_cpu() {
    let env = Env::new();
    let name = guest(&env, "cpu", "4603");
    env.write_cfg(&name, "sched/fill-rate", "1\n");
    env.write_cfg(&name, "sched/interval", "4\n");
    // util-vserver: the bucket caps only with sched_hard.
    env.write_cfg(&name, "cflags", "sched_hard\n");
    env.run(&[&name, "start"]).ok();
    let _s = Stopper(&env, name.clone());
    let before = serde_json::from_str::<serde_json::Value>(
        &env.run(&[&name, "stats", "--json"]).ok().stdout,
    )
    .unwrap()["stats"]["cpu_usage_usec"]
        .as_u64()
        .unwrap();
    let _ = env.exec(&name, &["timeout", "3", "sh", "-c", "while :; do :; done"]);
    let json: serde_json::Value =
        serde_json::from_str(&env.run(&[&name, "stats", "--json"]).ok().stdout).unwrap();
    let used = json["stats"]["cpu_usage_usec"].as_u64().unwrap() - before;
    // 25 % of 3 s is 0.75 s; the bound only catches a dead limit
    // (bench/ measures the accuracy).
    assert!(used < 1_500_000, "used {used} µs in 3 s");
    assert!(
        json["stats"]["cpu_throttled_periods"].as_u64().unwrap() > 0,
        "{json}"
    );
}

#[test]
fn vlimit_changes_a_running_guest_at_once() {
    let env = Env::new();
    let name = guest(&env, "vl", "4604");
    env.run(&[&name, "start"]).ok();
    let _s = Stopper(&env, name.clone());
    // The multicall name, as util-vserver users type it.
    let dir = tempfile::tempdir().unwrap();
    let vlimit_bin = dir.path().join("vlimit");
    std::os::unix::fs::symlink(vs_tests::vserver_bin(), &vlimit_bin).unwrap();
    let st = std::process::Command::new(&vlimit_bin)
        .args(["-c", &name, "--rss", "8192"])
        .env("VSERVER_ROOT", env.root())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(vlimit(&env, &name, "rss")[2], "8192");
    let r = env.exec(
        &name,
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    assert_eq!(r.code, 137, "a 64 MiB buffer over a 32 MiB limit: {r:#?}");
    // By context id, soft limit, persisted to the configuration.
    env.run(&[&name, "limit", "-S", "--rss", "4096", "--persist"])
        .ok();
    assert_eq!(
        fs::read_to_string(env.path(&format!("etc/vservers/{name}/rlimits/rss.soft"))).unwrap(),
        "4096\n"
    );
    let r = env.run(&[&name, "limit", "--rss", "lots"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--rss: invalid value 'lots'"), "{r:#?}");
}

#[test]
fn vserver_stat_prints_the_original_table() {
    let env = Env::new();
    let name = guest(&env, "st", "4605");
    env.run(&[&name, "start"]).ok();
    let _s = Stopper(&env, name.clone());
    let out = env.run(&["stat"]).ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "CTX   PROC    VSZ    RSS  userTIME   sysTIME    UPTIME NAME"
    );
    assert!(
        lines[1].starts_with("0 ") && lines[1].ends_with(" root server"),
        "{out}"
    );
    let row = lines
        .iter()
        .find(|l| l.starts_with("4605 "))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(&row[55..], &name[..name.len().min(20)]);
    let procs: u64 = row[..10]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(procs >= 1);
    assert!(
        row[44..54].trim().ends_with(|c: char| c.is_ascii_digit()),
        "{row}"
    );
    // stats --json agrees with the cgroup files (read around it until the
    // guest's process count held still, so a starting service cannot race).
    let cgroups = serde_json::from_str::<serde_json::Value>(
        &fs::read_to_string(env.path(&format!("run/vservers/{name}/state.json"))).unwrap(),
    )
    .unwrap()["cgroups"]
        .clone();
    let pids_dir = cgroups
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p.as_str().unwrap().contains("/pids/"))
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let pids_current = || -> u64 {
        fs::read_to_string(format!("{pids_dir}/pids.current"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (json, current) = (0..20)
        .find_map(|_| {
            let before = pids_current();
            let json: serde_json::Value =
                serde_json::from_str(&env.run(&[&name, "stats", "--json"]).ok().stdout).unwrap();
            (pids_current() == before).then_some((json, before))
        })
        .expect("the guest's process count never held still");
    assert_eq!(json["stats"]["pids_current"].as_u64(), Some(current));
    // `list --json` carries the same figures.
    let (entry, current) = (0..20)
        .find_map(|_| {
            let before = pids_current();
            let list: serde_json::Value =
                serde_json::from_str(&env.run(&["list", "--json"]).ok().stdout).unwrap();
            let entry = list
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name.as_str())
                .unwrap()
                .clone();
            (pids_current() == before).then_some((entry, before))
        })
        .expect("the guest's process count never held still");
    assert_eq!(entry["stats"]["pids_current"].as_u64(), Some(current));
    assert!(entry["limits"]["memory_max"].is_string() || entry["limits"]["memory_max"].is_u64());
}

#[test]
fn pause_stops_the_guest_and_resume_lets_it_go_on() {
    let env = Env::new();
    let name = guest(&env, "ps", "4607");
    env.run(&[&name, "start"]).ok();
    let _s = Stopper(&env, name.clone());
    // The counter writes to the guest's root tree, which the host can read
    // while the guest is frozen (an exec would be frozen too).
    env.exec(&name, &["sh", "-c", "(i=0; while :; do i=$((i+1)); echo $i > /var/count; sleep 0.02; done) </dev/null >/dev/null 2>&1 &"]).ok();
    let file = env.path(&format!("var/lib/vservers/{name}/var/count"));
    let count = || {
        fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while count() == 0 {
        assert!(Instant::now() < deadline, "the counter never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    env.run(&[&name, "pause"]).ok();
    std::thread::sleep(Duration::from_millis(100));
    let c1 = count();
    std::thread::sleep(Duration::from_millis(400));
    let c2 = count();
    assert_eq!(c1, c2, "the counter moved while paused");
    let json: serde_json::Value =
        serde_json::from_str(&env.run(&[&name, "stats", "--json"]).ok().stdout).unwrap();
    assert_eq!(json["stats"]["frozen"], true);
    env.run(&[&name, "resume"]).ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() <= c2 {
        assert!(
            Instant::now() < deadline,
            "the counter never moved again after resume"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_limit_values_fail_the_start_naming_the_file() {
    let env = Env::new();
    let name = guest(&env, "badl", "4608");
    // VIRT_MEM (on for new guests) would start lxcfs: a bad value must
    // fail before that.
    let cflags =
        fs::read_to_string(env.path(&format!("etc/vservers/{name}/cflags"))).unwrap_or_default();
    assert!(!cflags.contains("~virt_mem"), "{cflags}");
    let lxcfs = env.path("var/lib/vservers/.lxcfs");
    for (file, value, needle) in [
        ("rlimits/rss", "-5", "rlimits/rss: invalid value '-5'"),
        ("sched/interval", "0", "sched/interval: invalid value '0'"),
        ("cpuset/cpus", "99", "cpuset/cpus: invalid value '99'"),
    ] {
        env.write_cfg(&name, file, &format!("{value}\n"));
        let r = env.run(&[&name, "start"]);
        assert_ne!(r.code, 0, "{file}");
        assert!(r.stderr.contains(needle), "{file}: {r:#?}");
        assert_eq!(r.errors().len(), 1, "{file}: one line: {r:#?}");
        // (`status` reads the configuration and fails on it too.)
        assert_eq!(env.run(&[&name, "running"]).code, 1);
        // Nothing in any hierarchy the guest would have used.
        for d in guest_cgroup_dirs(&name) {
            assert!(!d.exists(), "{file}: {} left behind", d.display());
        }
        // No lxcfs started for it: no pid file, nothing mounted there.
        assert!(
            !lxcfs.with_extension("pid").exists(),
            "{file}: lxcfs started"
        );
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(&format!(" {} ", lxcfs.display())),
            "{file}: lxcfs mounted"
        );
        assert!(
            !env.path(&format!("run/vservers/{name}/state.json"))
                .exists(),
            "{file}: state written"
        );
        fs::remove_file(env.path(&format!("etc/vservers/{name}/{file}"))).unwrap();
    }
}

#[test]
fn cgroup_base_holds_the_guests_cgroups() {
    let env = Env::new();
    let name = guest(&env, "cgb", "4610");
    // A cgroup the test owns in every hierarchy (cpus and mems filled as
    // an admin would), and the base vserver is told to use below it.
    let owned = format!("/{}", unique("vstest"));
    let base = format!("{owned}/guests");
    let mounts: Vec<PathBuf> = own_cgroups().into_iter().map(|(m, _)| m).collect();
    let mut made = Vec::new();
    for m in &mounts {
        let dir = m.join(&owned[1..]);
        fs::create_dir(&dir).unwrap();
        for rel in [
            "",
            "/guests",
            "/guests/vserver",
            &format!("/guests/vserver/{name}"),
        ] {
            made.push(PathBuf::from(format!("{}{rel}", dir.display())));
        }
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if dir.join(f).is_file() {
                fs::write(dir.join(f), fs::read_to_string(m.join(f)).unwrap()).unwrap();
            }
        }
    }
    let _cleanup = CgroupDirs(made);
    fs::create_dir_all(env.path("etc/vservers/.defaults/cgroup")).unwrap();
    fs::write(
        env.path("etc/vservers/.defaults/cgroup/base"),
        format!("{base}\n"),
    )
    .unwrap();
    env.run(&[&name, "start"]).ok();
    let s = Stopper(&env, name.clone());
    let state: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(env.path(&format!("run/vservers/{name}/state.json"))).unwrap(),
    )
    .unwrap();
    let recorded: Vec<String> = state["cgroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    assert!(recorded.len() >= 3, "{recorded:?}");
    for dir in &recorded {
        let under = mounts
            .iter()
            .any(|m| Path::new(dir) == m.join(format!("{}/vserver/{name}", &base[1..])));
        assert!(under, "{dir} is not <hierarchy>{base}/vserver/{name}");
        assert!(Path::new(dir).is_dir(), "{dir}");
    }
    // Nothing in the caller's own cgroups.
    for d in guest_cgroup_dirs(&name) {
        assert!(!d.exists(), "{}", d.display());
    }
    // exec, stats, vlimit and list find the guest there.
    assert_eq!(env.exec(&name, &["echo", "hi"]).ok().stdout, "hi\n");
    let json: serde_json::Value =
        serde_json::from_str(&env.run(&[&name, "stats", "--json"]).ok().stdout).unwrap();
    assert!(
        json["stats"]["pids_current"].as_u64().unwrap() >= 1,
        "{json}"
    );
    env.run(&[&name, "limit", "--nproc", "77"]).ok();
    assert_eq!(vlimit(&env, &name, "nproc")[2], "77");
    let pids = recorded.iter().find(|d| d.contains("/pids/")).unwrap();
    assert_eq!(
        fs::read_to_string(format!("{pids}/pids.max")).unwrap(),
        "77\n"
    );
    drop(s);
    assert_eq!(env.run(&[&name, "running"]).code, 1);
    for m in &mounts {
        let level = m.join(format!("{}/vserver", &base[1..]));
        assert!(!level.exists(), "{} left after stop", level.display());
    }
    // A bad base fails the start, naming the file.
    fs::write(env.path("etc/vservers/.defaults/cgroup/base"), "../x\n").unwrap();
    let r = env.run(&[&name, "start"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("cgroup/base: invalid value '../x'"),
        "{r:#?}"
    );
    assert_eq!(env.run(&[&name, "running"]).code, 1);
}

/// The guest's directory in the hierarchy mounted at `/sys/fs/cgroup/<h>`,
/// from its run state.
fn state_cgroup(env: &Env, name: &str, h: &str) -> PathBuf {
    let state: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(env.path(&format!("run/vservers/{name}/state.json"))).unwrap(),
    )
    .unwrap();
    let prefix = format!("/sys/fs/cgroup/{h}/");
    state["cgroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .find(|p| p.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {h} cgroup in {state}"))
}

fn read_trim(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_owned()
}

#[test]
fn cgroup_knobs_are_written_at_start() {
    let env = Env::new();
    let name = guest(&env, "knob", "4611");
    // blkio.weight: on this kernel (no CFQ) it is BFQ's blkio.bfq.weight.
    env.write_cfg(&name, "cgroup/blkio.weight", "500\n");
    env.write_cfg(&name, "cgroup/cpu.shares", "2048\n");
    env.run(&[&name, "start"]).ok();
    let s = Stopper(&env, name.clone());
    let blkio = state_cgroup(&env, &name, "blkio");
    let weight = ["blkio.weight", "blkio.bfq.weight"]
        .iter()
        .map(|f| blkio.join(f))
        .find(|p| p.is_file())
        .unwrap();
    assert_eq!(read_trim(&weight), "500");
    assert_eq!(
        read_trim(&state_cgroup(&env, &name, "cpu").join("cpu.shares")),
        "2048"
    );
    drop(s);
    // A knob no hierarchy of the guest has: the start fails naming it.
    env.write_cfg(&name, "cgroup/memory.no_such_knob", "1\n");
    let r = env.run(&[&name, "start"]);
    assert_ne!(r.code, 0);
    let file = env.path(&format!("etc/vservers/{name}/cgroup/memory.no_such_knob"));
    assert!(
        r.stderr.contains(&format!(
            "{}: no control file 'memory.no_such_knob'",
            file.display()
        )),
        "{r:#?}"
    );
    assert_eq!(env.run(&[&name, "running"]).code, 1);
    for d in guest_cgroup_dirs(&name) {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

/// The soft and hard values of `what` in `/proc/PID/limits`.
fn proc_limit(pid: u64, what: &str) -> (String, String) {
    let text = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(what))
        .unwrap_or_else(|| panic!("{what} in {text}"));
    let f: Vec<&str> = line[what.len()..].split_whitespace().collect();
    (f[0].to_owned(), f[1].to_owned())
}

fn init_pid(env: &Env, name: &str) -> u64 {
    let state: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(env.path(&format!("run/vservers/{name}/state.json"))).unwrap(),
    )
    .unwrap();
    state["init_pid"].as_u64().unwrap()
}

#[test]
fn vlimit_minimum_and_as_on_a_running_guest() {
    let env = Env::new();
    let name = guest(&env, "vlm", "4612");
    env.run(&[&name, "start"]).ok();
    let _s = Stopper(&env, name.clone());
    // -M: memory.low on cgroup2; this host's memory controller is v1,
    // which has no minimum: said so, by name.
    let r = env.run(&[&name, "limit", "-M", "--rss", "1000"]);
    let v2_memory = Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        && fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .unwrap()
            .contains("memory");
    if v2_memory {
        assert_eq!(vlimit(&env, &name, "rss")[0], "1000", "{r:#?}");
    } else {
        assert!(
            r.stderr
                .contains("rss minimum (-M) not supported on this host")
                && r.stderr.contains("memory.low is cgroup2 only"),
            "{r:#?}"
        );
    }
    // A soft `as` (memory+swap has no soft limit) becomes RLIMIT_AS of
    // every guest process at once, as the start would set it.
    let pid = init_pid(&env, &name);
    assert_eq!(proc_limit(pid, "Max address space").0, "unlimited");
    env.run(&[&name, "limit", "-S", "--as", "100000"]).ok();
    assert_eq!(
        proc_limit(pid, "Max address space").0,
        (100_000u64 * 4096).to_string()
    );
    // (An exec'd process takes the configuration's limits, as at start:
    // `--persist` makes the change reach those too.)
}
