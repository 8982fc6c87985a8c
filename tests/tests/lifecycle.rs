//! Security contexts on a stock kernel: start, exec, stop, reboot, run
//! (issue 3's "Done when"), on busybox guests in private VSERVER_ROOTs.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vs_tests::{Env, Stopper, unique, wait_for};

/// A busybox guest built in `env`.
fn guest(env: &Env, prefix: &str, extra: &[&str]) -> String {
    let name = unique(prefix);
    let mut args = vec![
        name.as_str(),
        "build",
        "-m",
        "busybox",
        "--hostname",
        "guesthost",
    ];
    args.extend_from_slice(extra);
    env.run(&args).ok();
    name
}

fn state(env: &Env, name: &str) -> serde_json::Value {
    let text = fs::read_to_string(env.path(&format!("run/vservers/{name}/state.json")))
        .expect("state.json of a running guest");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_started_guest_is_a_security_context() {
    let env = Env::new();
    let name = guest(&env, "ctx", &["--context", "4300"]);
    env.run(&[&name, "start"]).ok();
    let _stop = Stopper(&env, name.clone());

    let st = env.run(&[&name, "status"]);
    assert_eq!(st.code, 0, "{st:#?}");
    assert!(
        st.stdout
            .starts_with(&format!("Vserver '{name}' is running at context '4300'\n")),
        "{}",
        st.stdout
    );
    assert_eq!(env.run(&[&name, "running"]).code, 0);

    assert_eq!(
        env.exec(&name, &["cat", "/proc/1/comm"]).ok().stdout,
        "init\n"
    );
    assert_eq!(env.exec(&name, &["hostname"]).ok().stdout, "guesthost\n");

    // The cgroup namespace is rooted at the guest's own cgroups in every
    // hierarchy it has (so a cgroup mount inside shows only the guest):
    // the init's and an exec'd process's paths are all "/".
    for who in ["1", "self"] {
        let cg = env
            .exec(&name, &["cat", &format!("/proc/{who}/cgroup")])
            .ok()
            .stdout;
        assert!(
            cg.lines().all(|l| l.ends_with(":/")),
            "/proc/{who}/cgroup inside:\n{cg}"
        );
    }

    // Only the guest's processes: init, and ps itself (plus its shell-less parent).
    let ps = env.exec(&name, &["ps", "-o", "pid,comm"]).ok().stdout;
    let rows: Vec<&str> = ps.lines().skip(1).collect();
    assert!(rows.len() <= 4, "{ps}");
    assert!(rows.iter().any(|r| r.trim() == "1 init"), "{ps}");

    // Bounding set: DESIGN §4's user-namespace default; a uid map.
    let status = env.exec(&name, &["cat", "/proc/self/status"]).ok().stdout;
    let capbnd = status.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
    let denied = [16u32, 17, 25, 32, 33, 34, 35, 36, 13]; // SYS_MODULE RAWIO TIME MAC_* SYSLOG WAKE_ALARM BLOCK_SUSPEND NET_RAW
    let last: u32 = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut want: u64 = (0..=last).map(|b| 1u64 << b).sum();
    for d in denied {
        want &= !(1u64 << d);
    }
    assert_eq!(capbnd, format!("CapBnd:\t{want:016x}"), "{status}");
    let uid_map = env.exec(&name, &["cat", "/proc/self/uid_map"]).ok().stdout;
    assert_eq!(
        uid_map.split_whitespace().collect::<Vec<_>>(),
        ["0", &(4300u64 * 65536).to_string(), "65536"]
    );

    // What root inside must not do.
    let r = env.exec(&name, &["sh", "-c", "echo h > /proc/sysrq-trigger"]);
    assert_ne!(r.code, 0, "{r:#?}");
    let r = env.exec(&name, &["mknod", "/tmp/blk", "b", "8", "0"]);
    assert_ne!(r.code, 0, "{r:#?}");
    // Block-device and tmpfs mounts: what_a_guest_sees_of_itself.
    // The guest's uptime counts from its start.
    let inside: f64 = env
        .exec(&name, &["cat", "/proc/uptime"])
        .ok()
        .stdout
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let host: f64 = fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        inside < host && inside < 60.0,
        "inside {inside} host {host}"
    );

    env.run(&[&name, "stop"]).ok();
    assert_eq!(env.run(&[&name, "status"]).code, 3);
    assert_eq!(env.leftovers(&name), Vec::<String>::new());
}

#[test]
fn the_chroot_escape_of_the_paper_ends_inside_the_guest() {
    let env = Env::new();
    let name = guest(&env, "esc", &[]);
    let probe = env.path(&format!("var/lib/vservers/{name}/bin/escape"));
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("probe/escape.c");
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&probe)
        .arg(&src)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "gcc -static (install-deps installs gcc and libc6-dev)"
    );
    env.run(&[&name, "start"]).ok();
    let _stop = Stopper(&env, name.clone());
    let out = env.exec(&name, &["/bin/escape"]).ok();
    assert_eq!(out.stdout, "guesthost\n", "{out:#?}");
}

#[test]
fn reboot_inside_restarts_and_halt_stops() {
    let env = Env::new();
    let name = guest(&env, "boot", &[]);
    env.run(&[&name, "start"]).ok();
    let _stop = Stopper(&env, name.clone());
    let first = state(&env, &name)["init_pid"].as_i64().unwrap();
    let _ = env.exec(&name, &["reboot", "-f"]);
    wait_for("a new init", Duration::from_secs(10), || {
        env.path(&format!("run/vservers/{name}/state.json"))
            .exists()
            && state(&env, &name)["init_pid"].as_i64().unwrap() != first
            && env.run(&[&name, "running"]).code == 0
    });
    assert_eq!(
        env.exec(&name, &["cat", "/proc/1/comm"]).ok().stdout,
        "init\n"
    );
    // It stays: the same init a moment later.
    let second = state(&env, &name)["init_pid"].as_i64().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(env.run(&[&name, "running"]).code, 0);
    assert_eq!(state(&env, &name)["init_pid"].as_i64().unwrap(), second);
    assert!(Path::new(&format!("/proc/{second}")).exists());
    let _ = env.exec(&name, &["halt", "-f"]);
    wait_for("the guest to stop", Duration::from_secs(10), || {
        env.run(&[&name, "status"]).code == 3
    });
    wait_for("no leftovers", Duration::from_secs(10), || {
        env.leftovers(&name).is_empty()
    });
}

#[test]
fn the_guest_survives_its_monitor_and_stop_still_cleans_up() {
    let env = Env::new();
    let name = guest(&env, "mon", &[]);
    env.run(&[&name, "start"]).ok();
    let _stop = Stopper(&env, name.clone());
    let monitor = state(&env, &name)["monitor_pid"].as_i64().unwrap() as i32;
    let comm = fs::read_to_string(format!("/proc/{monitor}/comm")).unwrap();
    assert!(comm.starts_with("vserver:"), "{comm}");
    // The monitor is a process this test started (through vserver start).
    assert!(
        Command::new("kill")
            .args(["-9", &monitor.to_string()])
            .status()
            .unwrap()
            .success()
    );
    wait_for("the monitor to die", Duration::from_secs(5), || {
        fs::read_to_string(format!("/proc/{monitor}/stat")).map_or(true, |s| s.contains(") Z"))
    });
    assert_eq!(env.run(&[&name, "status"]).code, 0);
    assert_eq!(
        env.exec(&name, &["echo", "still here"]).ok().stdout,
        "still here\n"
    );
    env.run(&[&name, "stop"]).ok();
    assert_eq!(env.run(&[&name, "status"]).code, 3);
    assert_eq!(env.leftovers(&name), Vec::<String>::new());
}

#[test]
fn run_exits_with_the_commands_status() {
    let env = Env::new();
    let name = guest(&env, "run", &[]);
    let r = env.run(&[&name, "run", "--", "/bin/true"]);
    assert_eq!(r.code, 0, "{r:#?}");
    let r = env.run(&[
        &name,
        "run",
        "--",
        "/bin/sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(r.code, 7, "{r:#?}");
    // The command has the caller's stdio, as with lxc-execute.
    assert_eq!(r.stdout, "out\n", "{r:#?}");
    assert!(r.stderr.contains("err\n"), "{r:#?}");
    let r = env.run_with_input(&[&name, "run", "--", "/bin/cat"], "piped in\n");
    assert_eq!((r.code, r.stdout.as_str()), (0, "piped in\n"), "{r:#?}");
    assert_eq!(env.run(&[&name, "status"]).code, 3);
    assert_eq!(env.leftovers(&name), Vec::<String>::new());
}

#[test]
fn a_signal_to_run_reaches_the_command() {
    let env = Env::new();
    let name = guest(&env, "runsig", &[]);
    let mut child = env
        .command(&[&name, "run", "--", "/bin/sleep", "60"])
        .spawn()
        .unwrap();
    wait_for("the guest to run", Duration::from_secs(10), || {
        env.run(&[&name, "running"]).code == 0
    });
    let t = Instant::now();
    // SIGTERM to the vserver process this test started.
    let k = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(k.success());
    let st = child.wait().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // sleep ended by the reaper's SIGTERM: 128 + 15.
    assert_eq!(st.code(), Some(143), "{st:?}");
    assert_eq!(env.run(&[&name, "status"]).code, 3);
    assert_eq!(env.leftovers(&name), Vec::<String>::new());
}

#[test]
fn stop_of_a_guest_ignoring_sigterm_finishes_within_the_killseq() {
    let env = Env::new();
    let name = guest(&env, "term", &[]);
    fs::create_dir_all(env.path(&format!("etc/vservers/{name}/apps/init"))).unwrap();
    fs::write(
        env.path(&format!("etc/vservers/{name}/apps/init/killseq")),
        "15 2 9\n",
    )
    .unwrap();
    env.run(&[&name, "start"]).ok();
    let _stop = Stopper(&env, name.clone());
    env.exec(
        &name,
        &[
            "sh",
            "-c",
            "trap '' TERM; sleep 1000 </dev/null >/dev/null 2>&1 &",
        ],
    )
    .ok();
    let t = Instant::now();
    env.run(&[&name, "stop"]).ok();
    // What stop promises (README): the style's stop up to the first wait
    // (2 s), the kill sequence's waits (2 s), a moment for SIGKILL.
    assert!(
        t.elapsed() < Duration::from_millis(5500),
        "stop took {:?}",
        t.elapsed()
    );
    assert_eq!(env.leftovers(&name), Vec::<String>::new());

    // A style stop that hangs and ignores SIGTERM is cut at the first wait.
    let rc = env.path(&format!("var/lib/vservers/{name}/etc/init.d/rc"));
    let text = fs::read_to_string(&rc).unwrap();
    fs::write(
        &rc,
        text.replacen(
            '\n',
            "\n[ \"$1\" = 0 ] && { trap '' TERM; sleep 100; }\n",
            1,
        ),
    )
    .unwrap();
    env.run(&[&name, "start"]).ok();
    let t = Instant::now();
    env.run(&[&name, "stop"]).ok();
    assert!(
        t.elapsed() < Duration::from_millis(5500),
        "stop with a hanging rc 0 took {:?}",
        t.elapsed()
    );
    assert_eq!(env.leftovers(&name), Vec::<String>::new());
}

/// Makes guest `name`'s `/etc/init.d/rc` note each runlevel it is run
/// with in `/rc.log` of the guest.
fn log_rc(env: &Env, name: &str) -> std::path::PathBuf {
    let root = env.path(&format!("var/lib/vservers/{name}"));
    let rc = root.join("etc/init.d/rc");
    let text = fs::read_to_string(&rc).unwrap();
    fs::write(&rc, text.replacen('\n', "\necho \"$1\" >> /rc.log\n", 1)).unwrap();
    root.join("rc.log")
}

#[test]
fn stop_follows_how_the_guest_was_started() {
    let env = Env::new();
    // A rescue instance: no `rc 0` at stop (it never ran `rc 3`).
    let name = guest(&env, "resc", &[]);
    let rc_log = log_rc(&env, &name);
    env.run(&[&name, "start", "--rescue", "/bin/sleep", "900"])
        .ok();
    let _stop = Stopper(&env, name.clone());
    let ps = env.exec(&name, &["ps", "-o", "args"]).ok().stdout;
    assert!(ps.contains("sleep 900"), "{ps}");
    assert!(!rc_log.exists(), "rc ran in a rescue instance");
    env.run(&[&name, "stop"]).ok();
    assert!(!rc_log.exists(), "stop ran rc 0 in a rescue instance");
    assert_eq!(env.leftovers(&name), Vec::<String>::new());

    // A PRIVATE guest: exec is refused to users, its style's stop runs.
    let private = guest(&env, "privstop", &["--flags", "private"]);
    let rc_log = log_rc(&env, &private);
    env.run(&[&private, "start"]).ok();
    let _stop2 = Stopper(&env, private.clone());
    assert_ne!(env.exec(&private, &["true"]).code, 0);
    env.run(&[&private, "stop"]).ok();
    assert_eq!(fs::read_to_string(&rc_log).unwrap(), "3\n0\n");
    assert_eq!(env.leftovers(&private), Vec::<String>::new());
}

#[test]
fn two_guests_cannot_see_each_other() {
    let env = Env::new();
    let a = guest(&env, "ga", &[]);
    let b = guest(&env, "gb", &[]);
    env.run(&[&a, "start"]).ok();
    let _sa = Stopper(&env, a.clone());
    env.run(&[&b, "start"]).ok();
    let _sb = Stopper(&env, b.clone());
    env.exec(&b, &["sh", "-c", "sleep 4242 </dev/null >/dev/null 2>&1 &"])
        .ok();
    let ps = env.exec(&a, &["ps", "-o", "pid,args"]).ok().stdout;
    assert!(!ps.contains("4242"), "{ps}");
    // B's sleeper, by its pid inside B, is not reachable from A.
    let pid_in_b = env
        .exec(&b, &["pidof", "sleep"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let r = env.exec(&a, &["kill", "-0", &pid_in_b]);
    if r.code == 0 {
        // That pid exists in A as one of A's own processes, never B's.
        let comm = env
            .exec(&a, &["cat", &format!("/proc/{pid_in_b}/cmdline")])
            .stdout;
        assert!(!comm.contains("4242"), "{comm}");
    }
}

#[test]
fn start_twice_and_fifty_cycles_leak_nothing() {
    let env = Env::new();
    let name = guest(&env, "cyc", &[]);
    let hook_log = env.path("pre-start.log");
    env.write_cfg(
        &name,
        "scripts/pre-start",
        &format!("echo \"$1 $2\" >> {}\n", hook_log.display()),
    );
    // Two concurrent starts: one starts, the other waits for the guest's
    // lock and then says it is running (util-vserver's words, exit 0).
    let spawn = || {
        env.command(&[&name, "start"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (p1, p2) = (spawn(), spawn());
    let (c1, c2) = (
        p1.wait_with_output().unwrap(),
        p2.wait_with_output().unwrap(),
    );
    assert!(c1.status.success() && c2.status.success(), "{c1:?} {c2:?}");
    let said = |c: &std::process::Output| {
        String::from_utf8_lossy(&c.stderr).contains(&format!("Vserver '{name}' is already running"))
    };
    assert!(
        said(&c1) != said(&c2),
        "exactly one finds it running: {c1:?} {c2:?}"
    );
    // The hooks ran once, for the start that started it.
    assert_eq!(
        fs::read_to_string(&hook_log).unwrap(),
        format!("pre-start {name}\n")
    );
    fs::remove_file(env.path(&format!("etc/vservers/{name}/scripts/pre-start"))).unwrap();
    env.run(&[&name, "stop"]).ok();
    // A stop racing a start: whichever wins, the guest ends up whole.
    let (p1, p2) = (
        env.command(&[&name, "start"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
        env.command(&[&name, "stop"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _ = (
        p1.wait_with_output().unwrap(),
        p2.wait_with_output().unwrap(),
    );
    let st = env.run(&[&name, "status"]).code;
    assert!(st == 0 || st == 3, "{st}");
    if st == 0 {
        assert_eq!(
            env.exec(&name, &["cat", "/proc/1/comm"]).ok().stdout,
            "init\n"
        );
    }
    env.run(&[&name, "stop"]).ok();
    assert_eq!(env.leftovers(&name), Vec::<String>::new());
    for i in 0..50 {
        env.run(&[&name, "start"]).ok();
        env.run(&[&name, "stop"]).ok();
        let l = env.leftovers(&name);
        assert!(l.is_empty(), "cycle {i}: {l:?}");
    }
}

/// The topmost mount at `point` in a mountinfo text: (per-mount options,
/// fstype, super options).
fn mount_at<'a>(mountinfo: &'a str, point: &str) -> Option<(&'a str, &'a str, &'a str)> {
    mountinfo.lines().rev().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let f: Vec<&str> = pre.split(' ').collect();
        let p: Vec<&str> = post.split(' ').collect();
        (f.get(4) == Some(&point)).then(|| (f[5], p[0], *p.get(2).unwrap_or(&"")))
    })
}

#[test]
fn proc_and_sys_are_masked_and_read_only() {
    let env = Env::new();
    for (prefix, extra) in [("mask", &[][..]), ("maskp", &["--privileged"][..])] {
        let name = guest(&env, prefix, extra);
        env.run(&[&name, "start"]).ok();
        let _stop = Stopper(&env, name.clone());
        let mi = env
            .exec(&name, &["cat", "/proc/self/mountinfo"])
            .ok()
            .stdout;
        let opts = |o: &str| o.split(',').map(str::to_owned).collect::<Vec<_>>();
        // DESIGN §4: each path the host has is covered in the guest.
        for f in [
            "kcore",
            "keys",
            "sysrq-trigger",
            "timer_list",
            "sched_debug",
            "latency_stats",
        ] {
            let host = format!("/proc/{f}");
            if !Path::new(&host).exists() {
                continue;
            }
            let (o, fstype, _) = mount_at(&mi, &host)
                .unwrap_or_else(|| panic!("{prefix}: {host} not masked:\n{mi}"));
            let o = opts(o);
            for want in ["ro", "nodev", "nosuid", "noexec"] {
                assert!(
                    o.iter().any(|x| x == want),
                    "{prefix}: {host} {o:?} lacks {want}"
                );
            }
            assert_eq!(
                fstype, "tmpfs",
                "{prefix}: {host} is masked by an empty file"
            );
            // Reads empty, never writable.
            assert_eq!(env.exec(&name, &["cat", &host]).ok().stdout, "", "{host}");
            let r = env.exec(&name, &["sh", "-c", &format!("echo h > {host}")]);
            assert_ne!(r.code, 0, "{prefix}: write to {host}: {r:#?}");
            assert!(r.stderr.contains("Read-only"), "{prefix}: {r:#?}");
        }
        for d in ["/proc/acpi", "/proc/scsi", "/sys/firmware"] {
            if !Path::new(d).exists() {
                continue;
            }
            let (o, fstype, _) =
                mount_at(&mi, d).unwrap_or_else(|| panic!("{prefix}: {d} not masked:\n{mi}"));
            assert!(opts(o).iter().any(|x| x == "ro"), "{prefix}: {d} {o}");
            assert_eq!(fstype, "tmpfs", "{prefix}: {d}");
            let ls = env.exec(&name, &["ls", "-A", d]).ok().stdout;
            assert_eq!(ls, "", "{prefix}: {d} shows {ls}");
        }
        for d in ["/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq", "/sys"] {
            if !Path::new(d).exists() {
                continue;
            }
            let (o, _, _) =
                mount_at(&mi, d).unwrap_or_else(|| panic!("{prefix}: {d} not read-only:\n{mi}"));
            assert!(opts(o).iter().any(|x| x == "ro"), "{prefix}: {d} {o}");
        }
        // Writing a read-only proc path fails, as root of the guest.
        let r = env.exec(
            &name,
            &["sh", "-c", "echo renamed > /proc/sys/kernel/hostname"],
        );
        assert_ne!(r.code, 0, "{prefix}: {r:#?}");
        assert!(r.stderr.contains("Read-only"), "{prefix}: {r:#?}");
        assert_eq!(env.exec(&name, &["hostname"]).ok().stdout, "guesthost\n");
        if extra.contains(&"--privileged") {
            // Without CAP_SYS_ADMIN the masks stay. (A user-namespace
            // guest's root may unmount them: they are its own mount
            // namespace's; the files below stay the host root's, which it
            // cannot write.)
            let r = env.exec(&name, &["umount", "/proc/keys"]);
            assert_ne!(r.code, 0, "{r:#?}");
            assert_eq!(env.exec(&name, &["cat", "/proc/keys"]).ok().stdout, "");
        }
        env.run(&[&name, "stop"]).ok();
    }
}

#[test]
fn a_failing_start_undoes_what_it_did() {
    let env = Env::new();
    // The init side fails: an fstab line of a type no guest may mount.
    let name = guest(&env, "undo", &[]);
    env.write_cfg(&name, "fstab", "none /mnt/x ext4 defaults 0 0\n");
    let r = env.run(&[&name, "start"]);
    assert_ne!(r.code, 0, "{r:#?}");
    assert_eq!(r.errors().len(), 1, "{r:#?}");
    assert!(r.stderr.contains("fstab line 1"), "{r:#?}");
    assert_eq!(env.run(&[&name, "status"]).code, 3);
    assert_eq!(env.leftovers(&name), Vec::<String>::new());

    // Plain style without /sbin/init.
    let plain = guest(&env, "undop", &[]);
    env.write_cfg(&plain, "apps/init/style", "plain\n");
    let _ = fs::remove_file(env.path(&format!("var/lib/vservers/{plain}/sbin/init")));
    let r = env.run(&[&plain, "start"]);
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(r.stderr.contains("/sbin/init"), "{r:#?}");
    assert_eq!(env.leftovers(&plain), Vec::<String>::new());

    // The state cannot be written: the init is killed, all goes.
    let nostate = guest(&env, "undos", &[]);
    let tmp = env.path(&format!("run/vservers/{nostate}/state.json.tmp"));
    fs::create_dir_all(tmp.join("block")).unwrap();
    let r = env.run(&[&nostate, "start"]);
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(r.stderr.contains("state.json"), "{r:#?}");
    assert_eq!(env.leftovers(&nostate), Vec::<String>::new());
    fs::remove_dir_all(&tmp).unwrap();

    // A failing post-start hook: the guest is stopped again, with its stop
    // hooks, and start says which hook failed, in one line.
    let hooked = guest(&env, "undoh", &[]);
    let log = env.path("undo-hooks.log");
    for hook in ["pre-start", "pre-stop", "post-stop", "postpost-stop"] {
        env.write_cfg(
            &hooked,
            &format!("scripts/{hook}"),
            &format!("echo \"$1\" >> {}\n", log.display()),
        );
    }
    env.write_cfg(&hooked, "scripts/post-start", "exit 4\n");
    let r = env.run(&[&hooked, "start"]);
    assert_ne!(r.code, 0, "{r:#?}");
    let errors = r.errors();
    assert_eq!(errors.len(), 1, "{r:#?}");
    assert!(errors[0].contains("post-start hook failed"), "{r:#?}");
    assert_eq!(env.run(&[&hooked, "status"]).code, 3);
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "pre-start\npre-stop\npost-stop\npostpost-stop\n"
    );
    assert_eq!(env.leftovers(&hooked), Vec::<String>::new());
}

/// `CapBnd` of a /proc/PID/status text.
fn cap_bnd(status: &str) -> u64 {
    let l = status
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .unwrap_or_else(|| panic!("no CapBnd: {status}"));
    u64::from_str_radix(l[7..].trim(), 16).unwrap()
}

#[test]
fn what_a_guest_sees_of_itself() {
    let env = Env::new();
    let name = guest(&env, "view", &[]);
    env.write_cfg(&name, "uts/domainname", "example.test\n");
    env.write_cfg(&name, "rlimits/nofile.soft", "250\n");
    env.write_cfg(&name, "rlimits/nofile.hard", "260\n");
    // bcapabilities over DESIGN §4's default: one taken away, one added
    // (kept as far as the host's own bounding set has it).
    env.write_cfg(&name, "bcapabilities", "~SYS_CHROOT\nSYS_TIME\n");
    env.run(&[&name, "start"]).ok();
    let _stop = Stopper(&env, name.clone());
    let init_pid = state(&env, &name)["init_pid"].as_i64().unwrap();
    assert!(
        env.leftovers(&name)
            .iter()
            .any(|l| l.starts_with("monitor or broker")),
        "leftovers() sees a running guest's monitor"
    );

    // uts: host name and NIS domain name.
    assert_eq!(
        env.exec(&name, &["cat", "/proc/sys/kernel/domainname"])
            .ok()
            .stdout,
        "example.test\n"
    );
    // /tmp is a tmpfs (util-vserver's default fstab).
    let mounts = env.exec(&name, &["cat", "/proc/mounts"]).ok().stdout;
    assert!(
        mounts
            .lines()
            .any(|l| l.split(' ').nth(1) == Some("/tmp") && l.split(' ').nth(2) == Some("tmpfs")),
        "{mounts}"
    );
    // /dev: exactly the minimal nodes (sockets are the guest's own:
    // its syslogd makes /dev/log).
    let dev = env
        .exec(
            &name,
            &[
                "sh",
                "-c",
                "for f in /dev/* /dev/.*; do [ -S $f ] || echo ${f#/dev/}; done",
            ],
        )
        .ok()
        .stdout
        .replace(".\n..\n", "")
        .replace("*\n", "");
    assert_eq!(
        dev.split_whitespace().collect::<Vec<_>>(),
        [
            "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
            "tty", "urandom", "zero"
        ],
        "{dev}"
    );
    // seccomp filter mode for the init and an exec'd process.
    for who in ["1", "self"] {
        let st = env
            .exec(&name, &["cat", &format!("/proc/{who}/status")])
            .ok()
            .stdout;
        assert!(st.lines().any(|l| l == "Seccomp:\t2"), "{who}: {st}");
    }
    // bcapabilities over the default: SYS_CHROOT (18) gone, SYS_TIME (25) in.
    let host_bnd = cap_bnd(&fs::read_to_string("/proc/self/status").unwrap());
    for who in ["1", "self"] {
        let bnd = cap_bnd(
            &env.exec(&name, &["cat", &format!("/proc/{who}/status")])
                .ok()
                .stdout,
        );
        assert_eq!(bnd & (1 << 18), 0, "{who}: {bnd:x}");
        assert_eq!(bnd & (1 << 25), host_bnd & (1 << 25), "{who}: {bnd:x}");
        assert_ne!(bnd & (1 << 0), 0, "{who}: CHOWN stays: {bnd:x}");
    }
    // rlimits/: in the init and in an exec'd process.
    let limits = env.exec(&name, &["cat", "/proc/1/limits"]).ok().stdout;
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        nofile.split_whitespace().collect::<Vec<_>>()[3..5],
        ["250", "260"],
        "{limits}"
    );
    assert_eq!(
        env.exec(&name, &["sh", "-c", "ulimit -n; ulimit -Hn"])
            .ok()
            .stdout,
        "250\n260\n"
    );
    // Network: only lo. IPC and the other namespaces: not the host's.
    let links = env.exec(&name, &["ls", "/sys/class/net"]).ok().stdout;
    assert_eq!(links, "lo\n");
    for ns in ["ipc", "net", "uts", "mnt", "pid", "cgroup"] {
        let host = fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let inside = fs::read_link(format!("/proc/{init_pid}/ns/{ns}")).unwrap();
        assert_ne!(host, inside, "{ns}");
    }

    // A tmpfs the guest mounts is nodev: a 1:3 node (allowed by the device
    // filter) that the host puts there cannot be opened inside.
    env.exec(
        &name,
        &["sh", "-c", "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t"],
    )
    .ok();
    // (As the guest's root, whose ids the guest's tmpfs can hold, with
    // the host's CAP_MKNOD kept across the uid change.)
    let guest_root = fs::read_to_string(format!("/proc/{init_pid}/uid_map"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u32>()
        .unwrap();
    // The directory is opened as the host's root (the way in through the
    // init's /proc/PID/root needs that), the node made through the fd.
    let node = format!("/proc/{init_pid}/root/mnt/t/null");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 3< /proc/{init_pid}/root/mnt/t && exec setpriv --reuid={guest_root} \
             --regid={guest_root} --clear-groups --inh-caps +mknod --ambient-caps +mknod \
             mknod /proc/self/fd/3/null c 1 3"
        ))
        .status()
        .unwrap();
    assert!(st.success(), "mknod {node}");
    env.exec(&name, &["test", "-c", "/mnt/t/null"]).ok();
    let r = env.exec(&name, &["sh", "-c", "echo x > /mnt/t/null"]);
    assert_ne!(r.code, 0, "a node on the guest's own tmpfs opened: {r:#?}");
    assert!(r.stderr.contains("Permission denied"), "{r:#?}");
    env.exec(&name, &["sh", "-c", "echo x > /dev/null"]).ok();
    // A proc mount may succeed (it holds no device nodes); the host's
    // masks stay on the guest's /proc.
    let _ = env.exec(
        &name,
        &["sh", "-c", "mkdir -p /mnt/p && mount -t proc proc /mnt/p"],
    );

    // A real block device node (loop0), planted from the host in the
    // guest's tree: mounting it fails.
    let blk = env
        .path(&format!("var/lib/vservers/{name}/root/loop0"))
        .display()
        .to_string();
    let st = Command::new("mknod")
        .args([&blk, "b", "7", "0"])
        .status()
        .unwrap();
    assert!(st.success(), "mknod {blk}");
    let r = env.exec(
        &name,
        &[
            "sh",
            "-c",
            "mkdir -p /mnt/x && mount -t ext4 /root/loop0 /mnt/x",
        ],
    );
    assert_ne!(r.code, 0, "{r:#?}");
    let e = r.stderr.to_lowercase();
    assert!(
        e.contains("permission denied") || e.contains("not permitted"),
        "{r:#?}"
    );

    // exec's helper is non-dumpable up to the exec: from the host, its
    // /proc files belong to the host's root although it runs as the
    // guest's root (the files of /proc/PID, not the directory, follow
    // dumpability); the exec'd command is dumpable again (its own uid).
    let mut child = env.command(&[&name, "exec", "sleep", "3"]).spawn().unwrap();
    let mut sleeper = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while sleeper.is_none() && Instant::now() < deadline {
        sleeper = fs::read_dir("/proc").unwrap().flatten().find_map(|p| {
            let cmd = fs::read(p.path().join("cmdline")).ok()?;
            let ns = fs::read_link(p.path().join("ns/pid")).ok()?;
            (cmd == b"sleep\x003\x00"
                && ns == fs::read_link(format!("/proc/{init_pid}/ns/pid")).ok()?)
            .then(|| p.path())
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    let sleeper = sleeper.expect("the exec'd sleep");
    let status = fs::read_to_string(sleeper.join("status")).unwrap();
    let ppid: i32 = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    use std::os::unix::fs::MetadataExt;
    let helper = Path::new("/proc").join(ppid.to_string());
    let helper_uid = fs::read_to_string(helper.join("status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse::<u32>()
        .unwrap();
    assert_eq!(
        helper_uid, guest_root,
        "the helper runs as the guest's root"
    );
    assert_eq!(
        fs::metadata(helper.join("environ")).unwrap().uid(),
        0,
        "the helper is dumpable"
    );
    assert_eq!(
        fs::metadata(sleeper.join("environ")).unwrap().uid(),
        guest_root,
        "the exec'd command is not dumpable"
    );
    assert!(child.wait().unwrap().success());

    env.run(&[&name, "stop"]).ok();
    assert_eq!(env.leftovers(&name), Vec::<String>::new());
}

#[test]
fn restart_condrestart_and_rescue() {
    let env = Env::new();
    let name = guest(&env, "rst", &[]);
    // condrestart of a stopped guest: nothing happens.
    env.run(&[&name, "condrestart"]).ok();
    assert_eq!(env.run(&[&name, "status"]).code, 3);
    // restart of a stopped guest starts it.
    env.run(&[&name, "restart"]).ok();
    let _stop = Stopper(&env, name.clone());
    let first = state(&env, &name)["init_pid"].as_i64().unwrap();
    // restart and condrestart of a running guest: a new init each time.
    env.run(&[&name, "restart"]).ok();
    let second = state(&env, &name)["init_pid"].as_i64().unwrap();
    assert_ne!(first, second);
    env.run(&[&name, "condrestart"]).ok();
    let third = state(&env, &name)["init_pid"].as_i64().unwrap();
    assert_ne!(second, third);
    assert_eq!(env.run(&[&name, "status"]).code, 0);
    assert!(!Path::new(&format!("/proc/{first}")).exists());
    env.run(&[&name, "stop"]).ok();
    assert_eq!(env.leftovers(&name), Vec::<String>::new());

    // start --rescue CMD: the command instead of the init style; the
    // guest ends with it.
    env.run(&[
        &name,
        "start",
        "--rescue",
        "/bin/sh",
        "-c",
        "sleep 1; exit 0",
    ])
    .ok();
    let ps = env.exec(&name, &["ps", "-o", "args"]).ok().stdout;
    assert!(ps.contains("sleep 1"), "{ps}");
    assert!(!ps.contains("rc 3"), "{ps}");
    wait_for("the rescue command to end", Duration::from_secs(10), || {
        env.run(&[&name, "status"]).code == 3
    });
    wait_for("no leftovers", Duration::from_secs(10), || {
        env.leftovers(&name).is_empty()
    });
}
