//! The debootstrap method builds a real Debian guest from the host's own
//! apt mirror (about half a minute), which then boots systemd as its pid 1
//! in a user namespace.

use std::time::{Duration, Instant};

use vs_tests::{Env, chroot, unique};

#[test]
fn debootstrap_builds_a_bookworm_minbase_guest() {
    let env = Env::new();
    let name = unique("deb");
    let r = env.run(&[
        &name,
        "build",
        "-m",
        "debootstrap",
        "--hostname",
        "deb",
        "--",
        "-d",
        "bookworm",
        "--include",
        "systemd-sysv,procps",
    ]);
    assert_eq!(r.code, 0, "{r:#?}");
    // Progress was shown while it ran.
    assert!(
        r.stderr.contains("Retrieving") || r.stderr.contains("Installing"),
        "{}",
        r.stderr
    );
    let root = env.path(&format!("var/lib/vservers/{name}"));
    let version = std::fs::read_to_string(root.join("etc/debian_version")).unwrap();
    assert!(version.starts_with("12."), "{version}");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "deb\n"
    );
    let out = chroot(
        &root,
        &["/usr/bin/dpkg-query", "-W", "-f", "${Status}", "apt"],
    )
    .ok();
    assert_eq!(out.stdout, "install ok installed");
    // A minbase tree has no init scripts: the sysv style's reaper alone keeps
    // the guest up, and apt works inside as the guest's root.
    // VIRT_MEM (on for new guests) with an rss soft limit of 65536 pages:
    // procps' `free -m` inside shows 256 MiB in all.
    env.write_cfg(&name, "rlimits/rss.soft", "65536\n");
    env.run(&[&name, "start"]).ok();
    let r = env.run(&[
        &name,
        "exec",
        "sh",
        "-c",
        "id -u; hostname; apt-get --version | head -1",
    ]);
    let free = env.run(&[&name, "exec", "free", "-m"]);
    let _ = env.run(&[&name, "stop"]);
    let r = r.ok();
    assert!(r.stdout.starts_with("0\ndeb\napt "), "{}", r.stdout);
    let free = free.ok().stdout;
    let total = free
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no Mem: line in {free}"));
    assert_eq!(total, "256", "{free}");

    // The plain style: systemd as pid 1, unprivileged, reaches "running"
    // (own cgroup namespace, delegated cgroup2 and name=systemd cgroups,
    // /proc and /sys mounted for it, container= in its environment).
    env.write_cfg(&name, "apps/init/style", "plain\n");
    env.run(&[&name, "start"]).ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    let state = loop {
        let s = env.exec(&name, &["systemctl", "is-system-running"]).stdout;
        let s = s.trim().to_owned();
        if s == "running" || s == "degraded" || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let failed = env
        .exec(
            &name,
            &["systemctl", "--failed", "--no-legend", "--no-pager"],
        )
        .stdout;
    let comm = env.exec(&name, &["cat", "/proc/1/comm"]).stdout;
    let virt = env.exec(&name, &["systemd-detect-virt"]).stdout;
    let t = Instant::now();
    let stop = env.run(&[&name, "stop"]);
    let stop_time = t.elapsed();
    assert_eq!(state, "running", "failed units: {failed}");
    assert_eq!(comm, "systemd\n");
    assert_eq!(virt, "container-other\n");
    assert_eq!(stop.code, 0, "{stop:#?}");
    // systemd answers SIGRTMIN+3 with a halt: no killseq wait.
    assert!(
        stop_time < Duration::from_secs(5),
        "stop took {stop_time:?}"
    );
    assert_eq!(env.run(&[&name, "status"]).code, 3);
    env.run(&[&name, "delete", "--force"]).ok();
    assert!(
        env.traces_of(&name).is_empty(),
        "{:?}",
        env.traces_of(&name)
    );
}

/// The mirror debootstrap is given: `-m`, else
/// `.defaults/apps/debootstrap/mirror`, else the host's apt sources. A
/// stand-in `debootstrap` first on PATH records its arguments and fails, so
/// nothing is downloaded (and the failed build leaves nothing behind).
#[test]
fn debootstrap_mirror_comes_from_the_option_then_the_defaults_file() {
    let env = Env::new();
    let bin = env.path("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = env.path("debootstrap.args");
    let fake = bin.join("debootstrap");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\necho 'fake debootstrap: refusing' >&2\nexit 1\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let build = |extra: &[&str]| -> Vec<String> {
        let _ = std::fs::remove_file(&record);
        let name = unique("mirror");
        let mut args = vec![
            name.as_str(),
            "build",
            "-m",
            "debootstrap",
            "--",
            "-d",
            "bookworm",
        ];
        args.extend_from_slice(extra);
        let out = env.command(&args).env("PATH", &path).output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("fake debootstrap: refusing"), "{stderr}");
        assert_eq!(env.traces_of(&name), Vec::<String>::new());
        let args = std::fs::read_to_string(&record).expect("the stand-in ran");
        args.lines().map(str::to_owned).collect()
    };
    // The mirror is debootstrap's third operand, after the suite and target.
    let mirror_of = |args: &[String]| -> String {
        let at = args.iter().position(|a| a == "bookworm").expect("suite");
        args[at + 2].clone()
    };

    std::fs::create_dir_all(env.path("etc/vservers/.defaults/apps/debootstrap")).unwrap();
    std::fs::write(
        env.path("etc/vservers/.defaults/apps/debootstrap/mirror"),
        "http://defaults.invalid/debian\n",
    )
    .unwrap();
    assert_eq!(mirror_of(&build(&[])), "http://defaults.invalid/debian");
    assert_eq!(
        mirror_of(&build(&["-m", "http://option.invalid/debian"])),
        "http://option.invalid/debian"
    );
    // Without the file: the host's own (whatever it is, not the file's).
    std::fs::remove_file(env.path("etc/vservers/.defaults/apps/debootstrap/mirror")).unwrap();
    let host = mirror_of(&build(&[]));
    assert_ne!(host, "http://defaults.invalid/debian");
    assert!(host.contains("://") || host.starts_with("file:"), "{host}");
}
