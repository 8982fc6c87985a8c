//! Malformed configuration files: one line naming the file, the value and
//! what is expected; files a stock kernel cannot honour are named as
//! unsupported.

use std::fs;
use std::path::Path;

use vs_config::*;

fn guest_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("context"), "4242\n").unwrap();
    for (rel, content) in files {
        let p = dir.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    dir
}

fn error_of(files: &[(&str, &str)]) -> (String, String) {
    let dir = guest_with(files);
    let e = read_guest(dir.path()).unwrap_err().to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    (e, dir.path().display().to_string())
}

#[test]
fn rlimit_that_is_not_a_number() {
    let (e, d) = error_of(&[("rlimits/rss", "lots\n")]);
    assert_eq!(
        e,
        format!(
            "{d}/rlimits/rss: invalid value 'lots': expected a number of pages, a size like 64M, or 'inf'"
        )
    );
}

#[test]
fn negative_rlimit() {
    let (e, d) = error_of(&[("rlimits/rss.hard", "-5\n")]);
    assert!(
        e.starts_with(&format!("{d}/rlimits/rss.hard: invalid value '-5'")),
        "{e}"
    );
}

#[test]
fn soft_limit_above_hard() {
    let (e, d) = error_of(&[("rlimits/rss.hard", "100\n"), ("rlimits/rss.soft", "200\n")]);
    assert_eq!(
        e,
        format!("{d}/rlimits/rss: the soft limit 200 is above the hard limit 100")
    );
}

#[test]
fn unknown_rlimit_file() {
    let (e, d) = error_of(&[("rlimits/memory", "5\n")]);
    assert!(
        e.starts_with(&format!(
            "{d}/rlimits/memory: unknown limit 'memory': expected one of: cpu, fsize, data,"
        )),
        "{e}"
    );
    assert!(e.contains(", rss, "), "{e}");
    assert!(e.ends_with("optionally with .hard, .soft, .min"), "{e}");
    let (e, d) = error_of(&[("ulimits/nofile.min", "5\n")]);
    assert!(
        e.starts_with(&format!(
            "{d}/ulimits/nofile.min: unknown limit 'nofile.min': expected one of: "
        )),
        "{e}"
    );
    assert!(e.ends_with("optionally with .hard, .soft"), "{e}");
}

#[test]
fn unknown_flag_in_cflags() {
    let (e, d) = error_of(&[("cflags", "virt_mem\nturbo_mode\n")]);
    assert!(
        e.starts_with(&format!(
            "{d}/cflags: unknown context flag 'turbo_mode': expected one of: lock, nproc, private,"
        )),
        "{e}"
    );
    // Every flag and the pseudo names are named, and how they may be written.
    for name in [
        "virt_mem",
        "hide_netif",
        "igneg_ionice",
        "secure",
        "default",
    ] {
        assert!(
            e.contains(&format!(" {name},")) || e.contains(&format!(" {name} (")),
            "{name}: {e}"
        );
    }
    assert!(e.contains("(any case, optional VXF_ prefix;"), "{e}");
    // The old name gets the same message.
    let (e, d) = error_of(&[("flags", "warp\n")]);
    assert!(
        e.starts_with(&format!(
            "{d}/flags: unknown context flag 'warp': expected one of: lock,"
        )),
        "{e}"
    );
}

#[test]
fn unknown_names_in_other_lists_say_what_is_accepted() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "ccapabilities",
            "set_world",
            "unknown context capability 'set_world': expected one of: set_utsname, set_rlimit,",
        ),
        (
            "nflags",
            "NXF_fly",
            "unknown network flag 'NXF_fly': expected one of: lock, private, single_ip,",
        ),
        (
            "ncapabilities",
            "teleport",
            "unknown network capability 'teleport': expected one of: tun_create, raw_icmp, multicast (any case, optional NXC_ prefix;",
        ),
        (
            "bcapabilities",
            "fly",
            "unknown capability 'fly': expected one of: chown, dac_override,",
        ),
    ];
    for (file, value, expected) in cases {
        let (e, d) = error_of(&[(file, value)]);
        assert!(
            e.starts_with(&format!("{d}/{file}: {expected}")),
            "{file}: {e}"
        );
    }
    let (e, d) = error_of(&[("personality", "linux_64bit\n")]);
    assert!(
        e.starts_with(&format!(
            "{d}/personality: unknown personality type 'linux_64bit': expected one of: linux, linux_32bit,"
        )),
        "{e}"
    );
    assert!(e.ends_with("(any case, optional PER_ prefix)"), "{e}");
    let (e, d) = error_of(&[("personality", "linux\nuname99\n")]);
    assert!(
        e.starts_with(&format!(
            "{d}/personality: unknown personality flag 'uname99': expected one of: uname26,"
        )),
        "{e}"
    );
    let (e, d) = error_of(&[("apps/init/style", "upstart\n")]);
    assert!(
        e.starts_with(&format!(
            "{d}/apps/init/style: invalid value 'upstart': expected one of sysv, plain, cmd"
        )),
        "{e}"
    );
}

#[test]
fn unknown_capability_and_bit() {
    let (e, d) = error_of(&[("bcapabilities", "CAP_FLY\n")]);
    assert!(
        e.starts_with(&format!(
            "{d}/bcapabilities: unknown capability 'CAP_FLY': expected one of: chown,"
        )),
        "{e}"
    );
    assert!(e.contains("(any case, optional CAP_ prefix;"), "{e}");
    let (e, d) = error_of(&[("ncapabilities", "^13\n")]);
    assert!(
        e.starts_with(&format!(
            "{d}/ncapabilities: unknown network capability '^13': expected one of: tun_create,"
        )),
        "{e}"
    );
}

#[test]
fn bad_ip_in_interface() {
    let (e, d) = error_of(&[("interfaces/0/ip", "10.0.0.300\n")]);
    assert_eq!(
        e,
        format!(
            "{d}/interfaces/0/ip: invalid value '10.0.0.300': expected an IPv4 or IPv6 address"
        )
    );
}

#[test]
fn interface_without_ip() {
    let (e, d) = error_of(&[("interfaces/0/dev", "eth0\n")]);
    assert_eq!(
        e,
        format!("{d}/interfaces/0/ip: missing: the interface's IP address")
    );
}

#[test]
fn bad_prefix_and_mask() {
    let (e, _) = error_of(&[
        ("interfaces/0/ip", "10.0.0.1\n"),
        ("interfaces/0/prefix", "33\n"),
    ]);
    assert!(
        e.contains("interfaces/0/prefix: invalid value '33': expected a prefix length 0..32"),
        "{e}"
    );
    let (e, _) = error_of(&[
        ("interfaces/0/ip", "10.0.0.1\n"),
        ("interfaces/0/mask", "255.0.255.0\n"),
    ]);
    assert!(e.contains("expected a contiguous IPv4 netmask"), "{e}");
}

#[test]
fn contexts_out_of_range() {
    for bad in ["0", "1", "70000", "49152", "abc"] {
        let (e, d) = error_of(&[("context", &format!("{bad}\n"))]);
        assert_eq!(
            e,
            format!("{d}/context: invalid value '{bad}': expected a static context id in 2..49151")
        );
    }
}

#[test]
fn other_bad_values() {
    let cases: &[(&str, &str, &str)] = &[
        ("nice", "30", "expected a nice level in -20..19"),
        (
            "apps/init/style",
            "upstart",
            "expected one of sysv, plain, cmd",
        ),
        (
            "apps/init/killseq",
            "15 5",
            "expected 'SIGNAL [WAIT SIGNAL]...'",
        ),
        (
            "apps/init/killseq",
            "15 x 9",
            "expected 'SIGNAL [WAIT SIGNAL]...'",
        ),
        (
            "apps/init/environment",
            "1BAD=x",
            "expected VAR=VALUE lines",
        ),
        (
            "apps/init/depends",
            "../etc",
            "expected one guest name per line",
        ),
        ("sched/interval", "0", "expected a number greater than 0"),
        ("cpuset/cpus", "a-b", "expected a list like 0-3,5"),
        (
            "uidmap",
            "0 65536",
            "expected 'BASE COUNT' with BASE >= 65536",
        ),
        ("storage/type", "zfs", "expected one of dir, btrfs, image"),
        ("storage/size", "huge", "expected a size such as 10G"),
        (
            "fstab",
            "none tmp tmpfs defaults\n",
            "expected 'SPEC FILE TYPE OPTIONS [FREQ [PASSNO]]'",
        ),
        (
            "personality",
            "linux_64bit\n",
            "unknown personality type 'linux_64bit'",
        ),
        ("uts/nodename", "a b", "expected a host name without spaces"),
    ];
    for (file, value, expected) in cases {
        let (e, d) = error_of(&[(file, value)]);
        assert!(e.starts_with(&format!("{d}/{file}")), "{file}: {e}");
        assert!(e.contains(expected), "{file}: {e}");
    }
}

#[test]
fn unsupported_files_are_reported_by_name() {
    let dir = guest_with(&[
        ("ncontext", "42\n"),
        ("rlimits/dentry", "100\n"),
        ("cflags", "virt_time\nvirt_mem\n"),
        ("uts/release", "2.6.32\n"),
        ("dlimits/root/directory", "/\n"),
        ("dlimits/root/space_total", "100\n"),
        ("dlimits/root/inodes_total", "100\n"),
        ("dlimits/root/reserved", "5\n"),
        ("sysctl/0/setting", "kernel.shmmax\n"),
        ("whatever", "x\n"),
        ("flags", "virt_mem\n"),
    ]);
    let (cfg, warnings) = read_guest(dir.path()).unwrap();
    assert_eq!(cfg.context, Xid::new(4242));
    let d = dir.path().display().to_string();
    let text: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    let has = |needle: &str| {
        assert!(
            text.iter().any(|w| w.starts_with(&format!("{d}/{needle}"))),
            "{needle}: {text:#?}"
        )
    };
    has("ncontext: not supported: network contexts");
    has("rlimits/dentry: not supported");
    has("cflags: context flag 'virt_time' is not supported");
    has("uts/release: not supported");
    has("dlimits/root: not supported");
    has("sysctl: not supported");
    has("whatever: unknown configuration file");
    has("flags: ignored: cflags exists");
    // Each is reported once.
    let mut sorted = text.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), text.len(), "{text:#?}");
}

#[test]
fn old_names_are_still_read() {
    let dir = guest_with(&[
        ("flags", "VXF_VIRT_MEM\n~virt_uptime\n"),
        ("interfaces/0/ip", "127.0.42.1\n"),
        ("interfaces/0/only_ip", ""),
    ]);
    let (cfg, _) = read_guest(dir.path()).unwrap();
    assert_eq!(cfg.cflags.len(), 2);
    assert!(cfg.interfaces.list["0"].nodev);
}

#[test]
fn dos_line_endings_are_read_with_a_warning() {
    let dir = guest_with(&[("uts/nodename", "demo\r\n")]);
    let (cfg, w) = read_guest(dir.path()).unwrap();
    assert_eq!(cfg.uts.nodename.as_deref(), Some("demo"));
    assert!(w.iter().any(|w| w.message.contains("DOS line endings")));
}

#[test]
fn writing_a_bad_value_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = GuestConfig {
        context: Xid::new(42),
        ..Default::default()
    };
    write_guest(dir.path(), &good).unwrap();
    let mut bad = good.clone();
    bad.uts.nodename = Some("two words".into());
    let e = write_guest(dir.path(), &bad).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}/uts/nodename", dir.path().display())),
        "{e}"
    );
    assert!(!dir.path().join("uts").exists());
    assert_eq!(read_guest(dir.path()).unwrap().0, good);
    let _ = Path::new("");
}

#[test]
fn resolved_spec_defaults() {
    let root = tempfile::tempdir().unwrap();
    let paths = Paths::new(root.path());
    let name = GuestName::new("demo").unwrap();
    let cfg = GuestConfig {
        context: Xid::new(4242),
        bcapabilities: vec![ListItem {
            clear: false,
            value: ListValue::Name(Cap::lookup("NET_RAW").unwrap()),
        }],
        ..Default::default()
    };
    write_guest(&paths.guest_cfg(&name), &cfg).unwrap();
    let spec = GuestSpec::load(&paths, &name).unwrap();
    assert_eq!(
        spec.idmap,
        Some(IdMap {
            base: 4242 * 65536,
            count: 65536
        })
    );
    assert_eq!(spec.hostname, "demo");
    assert_eq!(spec.init.style, InitStyle::Sysv);
    assert_eq!(
        spec.init.killseq,
        KillSeq {
            first: 15,
            then: vec![(5, 9)]
        }
    );
    assert!(spec.bcaps.contains(&Cap::lookup("NET_RAW").unwrap()));
    assert!(!spec.bcaps.contains(&Cap::lookup("SYS_MODULE").unwrap()));
    assert!(spec.cflags.contains(&CFlag::VirtUptime));
    assert_eq!(spec.vdir, root.path().join("var/lib/vservers/demo"));
    assert_eq!(spec.fstab[0].file, "/tmp");
}

#[test]
fn names_that_would_leave_their_directory_are_refused_before_writing() {
    let bad_names = ["", ".", "..", "../../escape", "a/b", "tab\there", "nl\n"];
    let outer = tempfile::tempdir().unwrap();
    let dir = outer.path().join("etc/vservers/g");
    type Set = fn(&mut GuestConfig, &str);
    let setters: [(&str, Set); 4] = [
        ("interfaces", |c, n| {
            c.interfaces
                .list
                .insert(n.into(), Interface::new("10.0.0.1".parse().unwrap()));
        }),
        ("dlimits", |c, n| {
            c.dlimits.insert(
                n.into(),
                Dlimit {
                    directory: "/".into(),
                    space_total: 10,
                    inodes_total: 10,
                    reserved: 5,
                    disabled: false,
                },
            );
        }),
        ("scripts/pre-start.d", |c, n| {
            c.scripts.entry(Hook::PreStart).or_default().dir.insert(
                n.into(),
                Script {
                    content: b"true\n".to_vec(),
                    executable: true,
                },
            );
        }),
        ("netns/interfaces", |c, n| {
            c.netns
                .get_or_insert_with(Netns::default)
                .interfaces
                .insert(n.into(), NetnsInterface::default());
        }),
    ];
    for (rel, set) in setters {
        for name in bad_names {
            let mut cfg = GuestConfig {
                context: Xid::new(4242),
                ..Default::default()
            };
            set(&mut cfg, name);
            let e = write_guest(&dir, &cfg).unwrap_err().to_string();
            let shown: String = name.escape_debug().collect();
            assert_eq!(
                e,
                format!(
                    "{}/{rel}: invalid value '{shown}': expected a plain file name: not empty, not '.' or '..', without '/' or control characters",
                    dir.display()
                ),
                "{rel} {name:?}"
            );
            // Nothing written: not the guest, not beside it, not in the scratch place.
            assert!(!dir.exists(), "{rel} {name:?}");
            assert_eq!(
                fs::read_dir(outer.path()).unwrap().count(),
                0,
                "{rel} {name:?}"
            );
        }
        // A plain name is fine.
        let mut cfg = GuestConfig {
            context: Xid::new(4242),
            ..Default::default()
        };
        set(&mut cfg, "web");
        write_guest(&dir, &cfg).unwrap();
        assert_eq!(read_guest(&dir).unwrap().0, cfg, "{rel}");
        fs::remove_dir_all(outer.path().join("etc")).unwrap();
    }
    assert!(!std::env::temp_dir().join("escape").exists());
}

#[test]
fn cgroup_knobs_are_read_and_their_names_checked() {
    let dir = guest_with(&[
        ("cgroup/blkio.weight", "500\n"),
        ("cgroup/cpu.shares", "2048\n"),
        ("cgroup/memory.oom.group", "1\n"),
        ("cgroup/name", "foo\n"),
    ]);
    let (cfg, warnings) = read_guest(dir.path()).unwrap();
    let knobs: Vec<(&str, &str)> = cfg
        .cgroup
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        knobs,
        [
            ("blkio.weight", "500"),
            ("cpu.shares", "2048"),
            ("memory.oom.group", "1")
        ]
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.path.ends_with("cgroup/name") && w.message.contains("not honoured")),
        "{warnings:?}"
    );
    // Written back as read.
    let out = tempfile::tempdir().unwrap();
    write_guest(out.path(), &cfg).unwrap();
    assert_eq!(read_guest(out.path()).unwrap().0.cgroup, cfg.cgroup);
    for bad in [
        "cgroup.procs",
        "devices.allow",
        "weight",
        "Cpu.shares",
        "cpu..x",
        "cpu.shares~",
    ] {
        let (e, d) = error_of(&[(&format!("cgroup/{bad}"), "1\n")]);
        assert!(
            e.starts_with(&format!(
                "{d}/cgroup: invalid value '{bad}': expected control file names <subsys>.<knob>"
            )),
            "{bad}: {e}"
        );
    }
}
