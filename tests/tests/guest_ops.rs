//! Working with running guests: enter, suexec, ps, kill, wait, hooks,
//! PRIVATE, privileged guests, personality, fstab and rlimits.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vs_tests::{Env, Stopper, unique, wait_for};

/// util-vserver's hooks in the order a start and a stop run them.
const HOOKS: [&str; 6] = [
    "prepre-start",
    "pre-start",
    "post-start",
    "pre-stop",
    "post-stop",
    "postpost-stop",
];

fn guest(env: &Env, prefix: &str, extra: &[&str]) -> String {
    let name = unique(prefix);
    let mut args = vec![name.as_str(), "build", "-m", "busybox"];
    args.extend_from_slice(extra);
    env.run(&args).ok();
    name
}

#[test]
fn enter_gives_a_guest_pty_and_keeps_the_host_terminal_out() {
    let env = Env::new();
    let name = guest(&env, "ent", &[]);
    env.run(&[&name, "start"]).ok();
    let _s = Stopper(&env, name.clone());
    // script(1) gives `enter` a terminal of its own, as a user would have.
    let cmd = format!("{} {} enter", vs_tests::vserver_bin().display(), name);
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("VSERVER_ROOT", env.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo in-$(hostname); tty; ls -l /proc/self/fd/ | grep -c pts; exit 4\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains(&format!("in-{name}")), "{text}");
    // The shell's terminal is a pty of the guest's own devpts instance.
    assert!(text.contains("/dev/pts/0"), "{text}");
}

#[test]
fn suexec_runs_as_a_guest_user_and_exec_leaks_nothing_of_the_host() {
    let env = Env::new();
    let name = guest(&env, "sux", &[]);
    env.run(&[&name, "start"]).ok();
    let _s = Stopper(&env, name.clone());
    let out = env.run(&[&name, "suexec", "nobody", "id", "-u"]).ok();
    assert_eq!(out.stdout, "65534\n");
    let r = env.run(&[&name, "suexec", "nosuchuser", "id"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no user 'nosuchuser'"), "{r:#?}");
    // No host environment, cwd or fds: a fresh environment, cwd /, fds 0-2.
    let out = env
        .command(&[&name, "exec", "sh", "-c", "env; pwd; ls /proc/self/fd"])
        .env("HOST_SECRET", "leak")
        .current_dir("/tmp")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("HOST_SECRET") && !text.contains("VSERVER_ROOT"),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    let pwd_at = lines.iter().position(|l| *l == "/").expect("cwd is /");
    let fds: Vec<&str> = lines[pwd_at + 1..].to_vec();
    assert_eq!(
        fds,
        ["0", "1", "2", "3"],
        "only stdio (and ls's own dir fd): {text}"
    );
    // The exec'd process is a child of the guest's world, not dumpable
    // helpers: its parent is not visible inside (ppid 0).
    let ppid = env
        .exec(&name, &["sh", "-c", "grep PPid /proc/$$/status"])
        .ok()
        .stdout;
    assert_eq!(ppid.split_whitespace().last(), Some("0"), "{ppid}");
}

#[test]
fn ps_kill_and_wait_from_the_host() {
    let env = Env::new();
    let name = guest(&env, "pkw", &["--context", "4400"]);
    env.run(&[&name, "start"]).ok();
    let _s = Stopper(&env, name.clone());
    env.exec(
        &name,
        &["sh", "-c", "sleep 777 </dev/null >/dev/null 2>&1 &"],
    )
    .ok();
    let ps = env.run(&[&name, "ps"]).ok().stdout;
    let header = ps.lines().next().unwrap();
    assert!(header.contains("PID CONTEXT"), "{ps}");
    let sleeper = ps
        .lines()
        .find(|l| l.contains("sleep 777"))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(
        sleeper.contains(&format!("4400 {name}")[..20.min(5 + name.len())]),
        "{ps}"
    );
    assert!(
        ps.lines().skip(1).all(|l| l.contains("4400 ")),
        "only the guest's processes: {ps}"
    );
    let pid_in = env
        .exec(&name, &["pidof", "sleep"])
        .ok()
        .stdout
        .trim()
        .to_string();
    env.run(&[&name, "kill", "-s", "KILL", &pid_in]).ok();
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.exec(&name, &["pidof", "sleep"]).code == 0 {
        assert!(Instant::now() < deadline, "sleep survived kill");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = env.run(&[&name, "kill", "99999"]);
    assert!(r.stderr.contains("has no process 99999"), "{r:#?}");
    let r = env.run(&[&name, "wait", "--timeout", "0.3"]);
    assert_eq!(r.code, 2, "{r:#?}");
    let mut waiter = env.command(&[&name, "wait"]).spawn().unwrap();
    env.run(&[&name, "kill"]).ok(); // SIGTERM to all, init first: the reaper stops the guest
    let t = Instant::now();
    let status = waiter.wait().unwrap();
    assert!(status.success() && t.elapsed() < Duration::from_secs(10));
    assert_eq!(env.run(&[&name, "status"]).code, 3);
}

#[test]
fn hooks_run_with_util_vserver_arguments_and_a_failing_pre_start_aborts() {
    let env = Env::new();
    let name = guest(&env, "hook", &[]);
    let log = env.path("hooks.log");
    for hook in HOOKS {
        env.write_cfg(
            &name,
            &format!("scripts/{hook}"),
            &format!("echo \"$1 $2\" >> {}\n", log.display()),
        );
    }
    env.run(&[&name, "start"]).ok();
    env.run(&[&name, "stop"]).ok();
    let got = fs::read_to_string(&log).unwrap();
    let want: String = HOOKS.iter().map(|h| format!("{h} {name}\n")).collect();
    assert_eq!(got, want);
    env.write_cfg(&name, "scripts/pre-start.d/10-fail", "exit 3\n");
    let r = env.run(&[&name, "start"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("pre-start hook failed"), "{r:#?}");
    assert_eq!(env.run(&[&name, "status"]).code, 3);
    assert!(
        !env.path(&format!("run/vservers/{name}/state.json"))
            .exists()
    );
}

#[test]
fn halt_and_reboot_inside_run_the_hooks_of_stop_and_restart() {
    let env = Env::new();
    let name = guest(&env, "vsh", &[]);
    let log = env.path("vshelper-hooks.log");
    let all = HOOKS;
    for hook in all {
        env.write_cfg(
            &name,
            &format!("scripts/{hook}.d/50-mark"),
            &format!("echo \"$1 $2\" >> {}\n", log.display()),
        );
    }
    let lines =
        |hooks: &[&str]| -> String { hooks.iter().map(|h| format!("{h} {name}\n")).collect() };
    let start_hooks = &all[..3];
    let stop_hooks = &all[3..];
    let read = || fs::read_to_string(&log).unwrap_or_default();
    env.run(&[&name, "start"]).ok();
    let _s = Stopper(&env, name.clone());
    // The .d hooks on the success path, with util-vserver's arguments.
    assert_eq!(read(), lines(start_hooks));
    fs::remove_file(&log).unwrap();
    // reboot: vshelper's `vserver NAME restart`: stop hooks, then start hooks.
    let _ = env.exec(&name, &["reboot", "-f"]);
    let want = lines(
        &all[3..]
            .iter()
            .chain(&all[..3])
            .copied()
            .collect::<Vec<_>>(),
    );
    wait_for("the restart hooks", Duration::from_secs(10), || {
        read() == want
    });
    assert_eq!(env.run(&[&name, "status"]).code, 0);
    fs::remove_file(&log).unwrap();
    // halt: `vserver NAME stop`.
    let _ = env.exec(&name, &["halt", "-f"]);
    wait_for("the stop hooks", Duration::from_secs(10), || {
        read() == lines(stop_hooks)
    });
    assert_eq!(env.run(&[&name, "status"]).code, 3);
    fs::remove_file(&log).unwrap();
    // The end of `run`: its instance stops, with the hooks around it (the
    // stop hooks after post-start, however soon the command ends).
    env.run(&[&name, "run", "--", "/bin/true"]).ok();
    assert_eq!(read(), lines(&all));
}

#[test]
fn private_guests_refuse_exec_and_enter() {
    let env = Env::new();
    let name = guest(&env, "priv", &["--flags", "private"]);
    env.run(&[&name, "start"]).ok();
    let _s = Stopper(&env, name.clone());
    for args in [
        vec![name.as_str(), "exec", "true"],
        vec![name.as_str(), "enter"],
    ] {
        let r = env.run(&args);
        assert_ne!(r.code, 0);
        assert!(r.stderr.contains("is private"), "{r:#?}");
    }
}

#[test]
fn a_privileged_guest_runs_without_a_user_namespace() {
    let env = Env::new();
    let name = guest(&env, "privd", &["--privileged"]);
    env.run(&[&name, "start"]).ok();
    let _s = Stopper(&env, name.clone());
    let map = env.exec(&name, &["cat", "/proc/self/uid_map"]).ok().stdout;
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );
    let status = env.exec(&name, &["cat", "/proc/self/status"]).ok().stdout;
    // The secure list: no SYS_ADMIN (21), no MKNOD (27), no NET_RAW (13), no DAC_READ_SEARCH (2).
    let bnd = u64::from_str_radix(
        status.lines().find(|l| l.starts_with("CapBnd:")).unwrap()[7..].trim(),
        16,
    )
    .unwrap();
    for cap in [2, 13, 21, 27] {
        assert_eq!(bnd & (1 << cap), 0, "cap {cap} in {bnd:x}");
    }
    assert_ne!(
        env.exec(&name, &["mknod", "/tmp/null", "c", "1", "3"]).code,
        0
    );
    assert_ne!(
        env.exec(&name, &["mount", "-t", "tmpfs", "none", "/mnt"])
            .code,
        0
    );
}

#[test]
fn personality_fstab_and_rlimits_apply() {
    let env = Env::new();
    let name = guest(&env, "pers", &[]);
    env.write_cfg(&name, "personality", "linux_32bit\n");
    env.write_cfg(
        &name,
        "fstab",
        "none /tmp tmpfs size=8m,mode=1777 0 0\nnone /srv/scratch tmpfs size=1m 0 0\n",
    );
    env.write_cfg(&name, "ulimits/nofile.soft", "200\n");
    env.write_cfg(&name, "ulimits/nofile.hard", "300\n");
    env.run(&[&name, "start"]).ok();
    let _s = Stopper(&env, name.clone());
    assert_eq!(env.exec(&name, &["uname", "-m"]).ok().stdout, "i686\n");
    let mounts = env.exec(&name, &["cat", "/proc/mounts"]).ok().stdout;
    assert!(mounts.contains(" /srv/scratch tmpfs "), "{mounts}");
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(" /tmp tmpfs ") && l.contains("size=8192k")),
        "{mounts}"
    );
    let lim = env
        .exec(&name, &["sh", "-c", "ulimit -n; ulimit -Hn"])
        .ok()
        .stdout;
    assert_eq!(lim, "200\n300\n");
    // A guest's symlink cannot redirect an fstab mount onto the host.
    env.run(&[&name, "stop"]).ok();
    let outside = tempfile::tempdir().unwrap();
    let root = env.path(&format!("var/lib/vservers/{name}"));
    fs::remove_dir_all(root.join("srv")).ok();
    std::os::unix::fs::symlink(outside.path(), root.join("srv")).unwrap();
    // Either the start refuses (the link leads to nothing inside the guest)
    // or the mount lands inside the guest; never on the host.
    let r = env.run(&[&name, "start"]);
    if r.code == 0 {
        let mounts = env.exec(&name, &["cat", "/proc/mounts"]).ok().stdout;
        assert!(mounts.contains("/scratch tmpfs"), "{mounts}");
    } else {
        assert!(r.stderr.contains("/srv"), "{r:#?}");
    }
    let host_mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host_mounts.contains(outside.path().to_str().unwrap()),
        "mounted on the host"
    );
    assert!(
        fs::read_dir(outside.path()).unwrap().next().is_none(),
        "host dir touched"
    );
}

#[test]
fn ccap_set_utsname_decides_whether_the_guest_may_rename_itself() {
    let env = Env::new();
    let free = guest(&env, "uts", &[]);
    let fixed = guest(&env, "utsfix", &[]);
    env.write_cfg(&fixed, "ccapabilities", "~SET_UTSNAME\n");
    for n in [&free, &fixed] {
        env.run(&[n, "start"]).ok();
    }
    let _a = Stopper(&env, free.clone());
    let _b = Stopper(&env, fixed.clone());
    assert_eq!(
        env.exec(&free, &["sh", "-c", "hostname renamed && hostname"])
            .ok()
            .stdout,
        "renamed\n"
    );
    let r = env.exec(&fixed, &["hostname", "renamed"]);
    assert_ne!(r.code, 0, "{r:#?}");
    assert_eq!(
        env.exec(&fixed, &["hostname"]).ok().stdout,
        format!("{fixed}\n")
    );
}

#[test]
fn the_device_filter_refuses_nodes_outside_the_guest_dev() {
    let env = Env::new();
    for (prefix, extra) in [("devp", &["--privileged"][..]), ("devu", &[][..])] {
        let name = guest(&env, prefix, extra);
        // Nodes a guest might find in its tree: /dev/kmsg's (1:11, not
        // allowed) and /dev/null's (1:3, allowed) under other names.
        let tree = env.path(&format!("var/lib/vservers/{name}/root"));
        for (node, minor) in [("kmsg", "11"), ("null2", "3")] {
            let p = tree.join(node);
            let st = Command::new("mknod")
                .args([p.to_str().unwrap(), "c", "1", minor])
                .status()
                .unwrap();
            assert!(st.success(), "mknod {}", p.display());
        }
        // The host (outside the guest's cgroup) may open both.
        assert!(
            fs::OpenOptions::new()
                .write(true)
                .open(tree.join("kmsg"))
                .is_ok()
        );
        env.run(&[&name, "start"]).ok();
        let _s = Stopper(&env, name.clone());
        let r = env.exec(&name, &["sh", "-c", ": > /root/kmsg"]);
        assert_ne!(r.code, 0, "{prefix}: /root/kmsg opened: {r:#?}");
        assert!(
            r.stderr.contains("Operation not permitted"),
            "{prefix}: {r:#?}"
        );
        env.exec(
            &name,
            &["sh", "-c", "echo x > /root/null2 && echo y > /dev/null"],
        )
        .ok();
        // What the guest's /dev holds still works, ptys included.
        env.exec(&name, &["sh", "-c", "head -c 4 /dev/urandom > /dev/zero"])
            .ok();
    }
}

#[test]
fn exec_goes_through_the_broker_and_still_works_without_it() {
    let env = Env::new();
    let name = guest(&env, "brk", &[]);
    env.write_cfg(&name, "ulimits/nofile.soft", "200\n");
    env.write_cfg(&name, "ulimits/nofile.hard", "300\n");
    env.run(&[&name, "start"]).ok();
    let _s = Stopper(&env, name.clone());
    let state: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(env.path(&format!("run/vservers/{name}/state.json"))).unwrap(),
    )
    .unwrap();
    let monitor = state["monitor_pid"].as_i64().unwrap();
    // The broker: the monitor's child named vserver-exec, in the guest's
    // cgroups, outside its pid namespace.
    let children = fs::read_to_string(format!("/proc/{monitor}/task/{monitor}/children")).unwrap();
    let broker = children
        .split_whitespace()
        .find(|p| {
            fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c == "vserver-exec\n")
        })
        .expect("an exec broker")
        .to_owned();
    let init = state["init_pid"].as_i64().unwrap();
    let cg = |p: &str| fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    assert_eq!(cg(&broker), cg(&init.to_string()), "the broker's cgroups");
    assert!(env.path(&format!("run/vservers/{name}/exec.sock")).exists());
    let ps = env.exec(&name, &["ps", "-o", "comm"]).ok().stdout;
    assert!(
        !ps.contains("vserver-exec"),
        "the guest sees its broker: {ps}"
    );
    // Through the broker: stdio, status, the guest's environment.
    let r = env.run_with_input(
        &[&name, "exec", "sh", "-c", "cat; echo $container; exit 3"],
        "in\n",
    );
    assert_eq!((r.code, r.stdout.as_str()), (3, "in\nvserver\n"), "{r:#?}");
    // Without it (killed), exec does the work itself.
    let k = Command::new("kill")
        .args(["-KILL", &broker])
        .status()
        .unwrap();
    assert!(k.success());
    // The monitor reaps it: gone, not a zombie, and its socket with it.
    wait_for("the killed broker reaped", Duration::from_secs(5), || {
        !Path::new(&format!("/proc/{broker}")).exists()
    });
    assert!(
        !env.path(&format!("run/vservers/{name}/exec.sock")).exists(),
        "the broker's socket stays"
    );
    let r = env.run_with_input(&[&name, "exec", "sh", "-c", "cat; exit 4"], "again\n");
    assert_eq!((r.code, r.stdout.as_str()), (4, "again\n"), "{r:#?}");
    // The direct way gives what the guest was started with, not what the
    // configuration says since.
    env.write_cfg(&name, "ulimits/nofile.soft", "100\n");
    env.write_cfg(&name, "ulimits/nofile.hard", "150\n");
    let lim = env
        .exec(&name, &["sh", "-c", "ulimit -n; ulimit -Hn"])
        .ok()
        .stdout;
    assert_eq!(lim, "200\n300\n");
}

/// The CapBnd bits of `status` text (a /proc/PID/status).
fn cap_bnd(status: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .unwrap_or_else(|| panic!("no CapBnd in {status}"));
    u64::from_str_radix(line[7..].trim(), 16).unwrap()
}

#[test]
fn ccap_set_rlimit_decides_cap_sys_resource_of_a_privileged_guest() {
    const SYS_RESOURCE: u64 = 1 << 24;
    let env = Env::new();
    let without = guest(&env, "rlno", &["--privileged"]);
    let with = guest(&env, "rlyes", &["--privileged"]);
    for n in [&without, &with] {
        env.write_cfg(n, "bcapabilities", "SYS_RESOURCE\n");
    }
    env.write_cfg(&with, "ccapabilities", "SET_RLIMIT\n");
    for n in [&without, &with] {
        env.run(&[n, "start"]).ok();
    }
    let _a = Stopper(&env, without.clone());
    let _b = Stopper(&env, with.clone());
    // Without the ccap: gone from the guest's bounding set, though
    // bcapabilities names it (init and an exec'd process).
    for who in ["1", "self"] {
        let st = env
            .exec(&without, &["cat", &format!("/proc/{who}/status")])
            .ok()
            .stdout;
        assert_eq!(cap_bnd(&st) & SYS_RESOURCE, 0, "{who}: {st}");
    }
    // With it: kept as far as the caller has it (this machine's root lacks
    // CAP_SYS_RESOURCE itself, so here both are 0; on a host whose root
    // has it, the guest keeps it).
    let host = cap_bnd(&fs::read_to_string("/proc/self/status").unwrap()) & SYS_RESOURCE;
    for who in ["1", "self"] {
        let st = env
            .exec(&with, &["cat", &format!("/proc/{who}/status")])
            .ok()
            .stdout;
        assert_eq!(cap_bnd(&st) & SYS_RESOURCE, host, "{who}: {st}");
    }
}
