//! Bad input on the command line and in configuration files: one clear
//! line, a non-zero exit, and nothing written or changed.

use std::fs;

use vs_tests::{Env, unique};

/// Runs a command that must fail without leaving anything behind.
#[track_caller]
fn refused(env: &Env, args: &[&str], needle: &str) {
    let before = env.tree();
    let r = env.run(args);
    assert_ne!(r.code, 0, "{args:?} succeeded: {r:#?}");
    let errors = r.errors();
    assert_eq!(errors.len(), 1, "{args:?}: want one error line: {r:#?}");
    assert!(
        errors[0].contains(needle),
        "{args:?}: {:?} lacks {needle:?}",
        errors[0]
    );
    assert_eq!(env.tree(), before, "{args:?} changed files");
}

#[test]
fn bad_build_options_change_nothing() {
    let env = Env::new();
    let n = unique("bad");
    for ctx in ["0", "1", "70000", "x"] {
        refused(
            &env,
            &[&n, "build", "-m", "skeleton", "--context", ctx],
            &format!("--context: invalid value '{ctx}': expected a static context id in 2..49151"),
        );
    }
    refused(
        &env,
        &[&n, "build", "-m", "skeleton", "--interface", "10.0.0.300"],
        "--interface '10.0.0.300'",
    );
    refused(
        &env,
        &[
            &n,
            "build",
            "-m",
            "skeleton",
            "--interface",
            "eth0:10.0.0.1/40",
        ],
        "prefix longer than 32",
    );
    refused(&env, &[&n, "build", "-m", "nosuchmethod"], "nosuchmethod");
    refused(
        &env,
        &[&n, "build", "-m", "skeleton", "--", "--bogus"],
        "--bogus",
    );
    refused(&env, &[&n, "build", "-m", "debootstrap"], "-d");
    refused(
        &env,
        &[
            &n,
            "build",
            "-m",
            "template",
            "--",
            "-t",
            "/nonexistent.tar",
        ],
        "/nonexistent.tar",
    );
    refused(
        &env,
        &[
            &n,
            "build",
            "-m",
            "skeleton",
            "--flags",
            "virt_mem,warp_drive",
        ],
        "--flags: unknown context flag 'warp_drive': expected one of: lock, nproc, private,",
    );
    refused(
        &env,
        &[&n, "build", "-m", "skeleton", "--hostname", "a b"],
        "--hostname",
    );
    refused(
        &env,
        &[&n, "build", "-m", "skeleton", "--initstyle", "upstart"],
        "upstart",
    );
    refused(
        &env,
        &[&n, "build", "-m", "skeleton", "--cpusetcpus", "3-1"],
        "--cpusetcpus '3-1': expected a list like 0-3,5",
    );
    refused(
        &env,
        &[&n, "build", "-m", "skeleton", "--cpusetmems", "0:yes"],
        "--cpusetmems '0:yes': expected a list like 0-3,5, optionally with :1 (exclusive) or :0",
    );
    refused(
        &env,
        &[&n, "build", "-m", "skeleton", "--cpuset", "../up"],
        "--cpuset '../up': expected a cpuset name without '/'",
    );
}

#[test]
fn bad_guest_names_are_refused_before_any_path_is_made() {
    let env = Env::new();
    let long = "x".repeat(65);
    for (name, why) in [
        ("../escape", "'..'"),
        ("a/b", "'/'"),
        ("-rf", "starts with '-'"),
        (".defaults", "starts with '.'"),
        ("tab\there", "control character"),
        (long.as_str(), "longer than 64 bytes"),
    ] {
        let before = env.tree();
        // `--` lets a name that looks like an option through to the check.
        let r = env.run(&["--", name, "build", "-m", "skeleton"]);
        assert_eq!(r.code, 2, "{name:?}: {r:#?}");
        assert_eq!(r.errors().len(), 1, "{name:?}: {r:#?}");
        assert!(
            r.stderr.contains("invalid guest name") && r.stderr.contains(why),
            "{name:?}: {r:#?}"
        );
        assert_eq!(env.tree(), before);
    }
}

#[test]
fn malformed_config_files_name_the_file_the_value_and_what_is_expected() {
    let env = Env::new();
    let n = unique("cfg");
    env.run(&[&n, "build", "-m", "skeleton", "--context", "77"])
        .ok();
    let cfg = env.path(&format!("etc/vservers/{n}"));
    let cases: &[(&str, &str, &str)] = &[
        (
            "rlimits/rss",
            "lots",
            "rlimits/rss: invalid value 'lots': expected a number of pages, a size like 64M, or 'inf'",
        ),
        (
            "cflags",
            "virt_mem\nhyperdrive",
            "cflags: unknown context flag 'hyperdrive': expected one of: lock, nproc, private,",
        ),
        (
            "interfaces/0/ip",
            "300.1.1.1",
            "interfaces/0/ip: invalid value '300.1.1.1': expected an IPv4 or IPv6 address",
        ),
        (
            "context",
            "0",
            "context: invalid value '0': expected a static context id in 2..49151",
        ),
        ("context", "1", "context: invalid value '1'"),
        ("context", "70000", "context: invalid value '70000'"),
        (
            "bcapabilities",
            "CAP_TELEPORT",
            "bcapabilities: unknown capability 'CAP_TELEPORT': expected one of: chown, dac_override,",
        ),
    ];
    for (file, value, expected) in cases {
        let p = cfg.join(file);
        let old = fs::read(&p).ok();
        let new_dir =
            (!p.parent().unwrap().exists()).then(|| cfg.join(file.split('/').next().unwrap()));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, value).unwrap();
        {
            let args = [n.as_str(), "status"];
            let before = env.tree();
            let r = env.run(&args);
            assert_ne!(r.code, 0, "{file}: {r:#?}");
            let errors = r.errors();
            assert_eq!(errors.len(), 1, "{file}: {r:#?}");
            assert!(
                errors[0].contains(&format!("{}/{expected}", cfg.display())),
                "{file}: {:?}",
                errors[0]
            );
            assert_eq!(env.tree(), before, "{file}: {args:?} changed files");
        }
        // `list` shows the guest as broken instead of failing.
        let list = env.run(&["list", "--json"]).ok();
        let v: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
        assert_eq!(v[0]["state"], "error", "{file}: {}", list.stdout);
        assert!(v[0]["error"].as_str().unwrap().contains(file));
        match old {
            Some(o) => fs::write(&p, o).unwrap(),
            None => fs::remove_file(&p).unwrap(),
        }
        if let Some(d) = new_dir {
            fs::remove_dir_all(d).unwrap();
        }
    }
    env.run(&[&n, "status"]);
    env.run(&[&n, "delete", "--force"]).ok();
}

#[test]
fn unsupported_files_are_reported_by_name() {
    let env = Env::new();
    let n = unique("unsup");
    env.run(&[&n, "build", "-m", "skeleton"]).ok();
    let cfg = env.path(&format!("etc/vservers/{n}"));
    fs::write(cfg.join("ncontext"), "5\n").unwrap();
    fs::write(cfg.join("cflags"), "virt_time\n").unwrap();
    let r = env.run(&[&n, "status"]);
    assert_eq!(r.code, 3);
    let warn = |needle: &str| {
        let line = format!("vserver: warning: {}/{needle}", cfg.display());
        assert_eq!(r.stderr.matches(&line).count(), 1, "{needle}: {}", r.stderr);
    };
    warn("ncontext: not supported");
    warn("cflags: context flag 'virt_time' is not supported");
    env.run(&[&n, "delete", "--force"]).ok();
}
