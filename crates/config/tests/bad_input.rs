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
    assert_eq!(e, format!("{d}/rlimits/memory: unknown limit 'memory'"));
}

#[test]
fn unknown_flag_in_cflags() {
    let (e, d) = error_of(&[("cflags", "virt_mem\nturbo_mode\n")]);
    assert_eq!(e, format!("{d}/cflags: unknown context flag 'turbo_mode'"));
}

#[test]
fn unknown_capability_and_bit() {
    let (e, d) = error_of(&[("bcapabilities", "CAP_FLY\n")]);
    assert_eq!(
        e,
        format!("{d}/bcapabilities: unknown capability 'CAP_FLY'")
    );
    let (e, d) = error_of(&[("ncapabilities", "^13\n")]);
    assert_eq!(
        e,
        format!("{d}/ncapabilities: unknown network capability '^13'")
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
