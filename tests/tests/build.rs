//! `vserver NAME build`, `list`, `status`, `delete` on busybox, skeleton and
//! template guests (issue 2's "Done when").

use std::fs;
use std::process::Command;

use vs_tests::{Env, chroot, unique};

fn read(env: &Env, rel: &str) -> String {
    fs::read_to_string(env.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn busybox_guest_build_list_status_delete() {
    let env = Env::new();
    let name = unique("demo");
    env.run(&[
        &name,
        "build",
        "-m",
        "busybox",
        "--context",
        "4242",
        "--hostname",
        "demo",
        "--interface",
        "127.0.42.1/32",
    ])
    .ok();

    let cfg = format!("etc/vservers/{name}");
    assert_eq!(read(&env, &format!("{cfg}/context")), "4242\n");
    assert_eq!(read(&env, &format!("{cfg}/uts/nodename")), "demo\n");
    assert_eq!(
        read(&env, &format!("{cfg}/interfaces/0/ip")),
        "127.0.42.1\n"
    );
    assert_eq!(read(&env, &format!("{cfg}/interfaces/0/prefix")), "32\n");
    assert!(env.path(&format!("{cfg}/interfaces/0/nodev")).exists());
    assert!(!env.path(&format!("{cfg}/interfaces/0/dev")).exists());
    assert_eq!(read(&env, &format!("{cfg}/name")), format!("{name}\n"));
    assert!(read(&env, &format!("{cfg}/fstab")).contains("/tmp"));
    let vdir = fs::read_link(env.path(&format!("{cfg}/vdir"))).unwrap();
    assert_eq!(vdir, env.path(&format!("var/lib/vservers/{name}")));
    assert_eq!(
        fs::read_link(env.path(&format!("{cfg}/run"))).unwrap(),
        env.path(&format!("run/vservers/{name}"))
    );

    // The tree: a working busybox, users, hostname, an rc for the sysv style.
    let out = chroot(&vdir, &["/bin/busybox", "echo", "inside"]).ok();
    assert_eq!(out.stdout, "inside\n");
    let out = chroot(
        &vdir,
        &[
            "/bin/sh",
            "-c",
            "id -u; cat /etc/hostname; ls /etc/init.d/rc",
        ],
    )
    .ok();
    assert_eq!(out.stdout, "0\ndemo\n/etc/init.d/rc\n");
    assert!(read(&env, &format!("var/lib/vservers/{name}/etc/passwd")).starts_with("root:x:0:0:"));
    assert!(read(&env, &format!("var/lib/vservers/{name}/etc/group")).starts_with("root:x:0:"));
    // No device nodes in the tree: the runtime mounts /dev at start.
    let devs = Command::new("find")
        .arg(&vdir)
        .args(["(", "-type", "b", "-o", "-type", "c", ")", "-print"])
        .output()
        .unwrap();
    assert!(
        devs.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&devs.stdout)
    );

    // list --json: the guest, stopped.
    let list = env.run(&["list", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let entry = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not listed: {}", list.stdout));
    assert_eq!(entry["state"], "stopped");
    assert_eq!(entry["context"], 4242);
    assert_eq!(entry["addresses"][0], "127.0.42.1/32");
    let table = env.run(&["list"]).ok();
    assert!(
        table.stdout.contains(&name) && table.stdout.contains("stopped"),
        "{}",
        table.stdout
    );

    // status: exit 3, util-vserver's words; running: silent, exit 1.
    let st = env.run(&[&name, "status"]);
    assert_eq!(st.code, 3, "{st:#?}");
    assert_eq!(st.stdout, format!("Vserver '{name}' is stopped\n"));
    let r = env.run(&[&name, "running"]);
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));

    // delete --force: nothing of the guest is left.
    env.run(&[&name, "delete", "--force"]).ok();
    assert_eq!(env.traces_of(&name), Vec::<String>::new());
    let st = env.run(&[&name, "status"]);
    assert_eq!(st.code, 5, "{st:#?}");
}

#[test]
fn contexts_are_allocated_from_context_next_and_never_shared() {
    let env = Env::new();
    let (a, b, c) = (unique("ctx"), unique("ctx"), unique("ctx"));
    env.run(&[&a, "build", "-m", "skeleton"]).ok();
    env.run(&[&b, "build", "-m", "skeleton"]).ok();
    assert_eq!(read(&env, &format!("etc/vservers/{a}/context")), "40000\n");
    assert_eq!(read(&env, &format!("etc/vservers/{b}/context")), "40001\n");
    assert_eq!(read(&env, "etc/vservers/.defaults/context.next"), "40002\n");

    // A taken context is refused, naming the guest that has it.
    let r = env.run(&[&c, "build", "-m", "skeleton", "--context", "40001"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains(&format!("context 40001 is already used by guest '{b}'")),
        "{r:#?}"
    );
    assert!(env.traces_of(&c).is_empty(), "{:?}", env.traces_of(&c));

    // context.next skips a context someone took by hand.
    fs::write(env.path("etc/vservers/.defaults/context.next"), "40000\n").unwrap();
    env.run(&[&c, "build", "-m", "skeleton"]).ok();
    assert_eq!(read(&env, &format!("etc/vservers/{c}/context")), "40002\n");

    // An id range overlapping another guest's (uidmap) is refused too.
    let d = unique("ctx");
    fs::write(
        env.path(&format!("etc/vservers/{a}/uidmap")),
        format!("{} 65536\n", 555 * 65536 + 10),
    )
    .unwrap();
    let r = env.run(&[&d, "build", "-m", "skeleton", "--context", "555"]);
    assert!(
        r.stderr.contains(&format!("overlaps guest '{a}'")),
        "{r:#?}"
    );
    assert!(env.traces_of(&d).is_empty());
    for n in [&a, &b, &c] {
        env.run(&[n, "delete", "--force"]).ok();
    }
}

#[test]
fn start_refuses_a_context_or_id_range_a_running_guest_has() {
    let env = Env::new();
    let (a, b) = (unique("clash"), unique("clash"));
    env.run(&[&a, "build", "-m", "busybox", "--context", "4400"])
        .ok();
    env.run(&[&b, "build", "-m", "busybox", "--context", "4401"])
        .ok();
    let cfg = |n: &str, f: &str| env.path(&format!("etc/vservers/{n}/{f}"));
    // Copied or edited by hand after the build: b gets a's context.
    fs::write(cfg(&b, "context"), "4400\n").unwrap();
    env.run(&[&a, "start"]).ok();
    let _stop_a = vs_tests::Stopper(&env, a.clone());
    // What is b's in the prefix (a's tree and its lxcfs mount change as a runs).
    let tree = || env.traces_of(&b);
    let refused = |needles: &[String]| {
        let before = tree();
        let r = env.run(&[&b, "start"]);
        assert_ne!(r.code, 0, "{r:#?}");
        let errors = r.errors();
        assert_eq!(errors.len(), 1, "{r:#?}");
        for n in needles {
            assert!(
                errors[0].contains(n.as_str()),
                "{n:?} not in {:?}",
                errors[0]
            );
        }
        assert_eq!(env.run(&[&b, "status"]).code, 3, "{b} stays stopped");
        assert_eq!(env.run(&[&a, "status"]).code, 0, "{a} keeps running");
        let after = tree();
        let changed: Vec<&String> = after
            .iter()
            .filter(|p| !before.contains(p))
            .chain(before.iter().filter(|p| !after.contains(p)))
            .collect();
        assert!(changed.is_empty(), "a refused start changed {changed:?}");
    };
    refused(&[
        format!(
            "guest '{b}' cannot start: its context 4400 ({})",
            cfg(&b, "context").display()
        ),
        format!(
            "is also the context of guest '{a}' ({})",
            cfg(&a, "context").display()
        ),
        "which is running".into(),
        format!("stop '{a}' or give one of them another context"),
    ]);
    // Its own context again, but a's id range (derived from a's context).
    fs::write(cfg(&b, "context"), "4401\n").unwrap();
    fs::write(cfg(&b, "uidmap"), format!("{} 1000\n", 4400 * 65536 + 5000)).unwrap();
    refused(&[
        format!(
            "guest '{b}' cannot start: its id range {} 1000 ({})",
            4400 * 65536 + 5000,
            cfg(&b, "uidmap").display()
        ),
        format!(
            "overlaps the range {} 65536 of guest '{a}' ({})",
            4400 * 65536,
            cfg(&a, "context").display()
        ),
        format!("stop '{a}' or change one of the ranges"),
    ]);
    // Once a is stopped, b may start (it is only the running guests that clash).
    env.run(&[&a, "stop"]).ok();
    env.run(&[&b, "start"]).ok();
    let _stop_b = vs_tests::Stopper(&env, b.clone());
    assert_eq!(env.run(&[&b, "status"]).code, 0);
    // ... and now a is the one refused, naming b's uidmap.
    let r = env.run(&[&a, "start"]);
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(
        r.stderr.contains(&format!("guest '{a}' cannot start"))
            && r.stderr.contains(&cfg(&b, "uidmap").display().to_string()),
        "{r:#?}"
    );
    env.run(&[&b, "stop"]).ok();
    for n in [&a, &b] {
        env.run(&[n, "delete", "--force"]).ok();
    }
}

#[test]
fn existing_guest_needs_force_which_moves_it_aside() {
    let env = Env::new();
    let name = unique("again");
    env.run(&[&name, "build", "-m", "skeleton", "--context", "100"])
        .ok();
    fs::write(env.path(&format!("var/lib/vservers/{name}/marker")), "old").unwrap();
    let r = env.run(&[&name, "build", "-m", "skeleton", "--context", "101"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("already exists") && r.stderr.contains("--force"),
        "{r:#?}"
    );
    assert_eq!(read(&env, &format!("etc/vservers/{name}/context")), "100\n");

    env.run(&[
        &name,
        "build",
        "-m",
        "skeleton",
        "--context",
        "101",
        "--force",
    ])
    .ok();
    assert_eq!(read(&env, &format!("etc/vservers/{name}/context")), "101\n");
    assert!(
        !env.path(&format!("var/lib/vservers/{name}/marker"))
            .exists()
    );
    let aside: Vec<String> = env
        .traces_of(&name)
        .into_iter()
        .filter(|p| p.ends_with("~/marker"))
        .collect();
    assert_eq!(aside.len(), 1, "{:?}", env.traces_of(&name));
    // The moved-aside copy is not a guest.
    let list = env.run(&["list", "--json"]).ok();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&list.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    env.run(&[&name, "delete", "--force"]).ok();
}

fn tar_of(dir: &std::path::Path, out: &std::path::Path, compress: &str) {
    let st = Command::new("tar")
        .arg(format!("--use-compress-program={compress}"))
        .args(["--xattrs", "--numeric-owner", "-cf"])
        .arg(out)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn template_guest_keeps_owners_modes_and_links() {
    let env = Env::new();
    let src = unique("tsrc");
    env.run(&[&src, "build", "-m", "busybox"]).ok();
    let tree = env.path(&format!("var/lib/vservers/{src}"));
    fs::write(tree.join("etc/owned"), "x").unwrap();
    std::os::unix::fs::chown(tree.join("etc/owned"), Some(1234), Some(5678)).unwrap();
    fs::hard_link(tree.join("etc/owned"), tree.join("etc/owned-link")).unwrap();
    Command::new("chmod")
        .arg("4711")
        .arg(tree.join("etc/owned"))
        .status()
        .unwrap();
    // A user.* xattr, unless this file system refuses them.
    let xattr_ok = match rustix::fs::setxattr(
        tree.join("etc/owned"),
        "user.vserver.test",
        b"kept",
        rustix::fs::XattrFlags::empty(),
    ) {
        Ok(()) => true,
        Err(rustix::io::Errno::NOTSUP) => {
            eprintln!(
                "SKIPPED the xattr check only: {} refuses user.* xattrs",
                tree.display()
            );
            false
        }
        Err(e) => panic!("setxattr: {e}"),
    };
    let archive = env.path("guest.tar.zst");
    tar_of(&tree, &archive, "zstd");

    let name = unique("tmpl");
    env.run(&[
        &name,
        "build",
        "-m",
        "template",
        "--",
        "-t",
        archive.to_str().unwrap(),
    ])
    .ok();
    let root = env.path(&format!("var/lib/vservers/{name}"));
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(root.join("etc/owned")).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777, m.nlink()),
        (1234, 5678, 0o4711, 2)
    );
    assert_eq!(
        m.ino(),
        fs::metadata(root.join("etc/owned-link")).unwrap().ino()
    );
    if xattr_ok {
        let mut buf = [0u8; 64];
        let n = rustix::fs::getxattr(root.join("etc/owned"), "user.vserver.test", &mut buf)
            .expect("the user.* xattr came through the archive");
        assert_eq!(&buf[..n], b"kept");
    }
    assert_eq!(
        chroot(&root, &["/bin/sh", "-c", "echo ok"]).ok().stdout,
        "ok\n"
    );
    for n in [&src, &name] {
        env.run(&[n, "delete", "--force"]).ok();
    }
}

/// An archive whose second entry climbs out of the root: extraction fails
/// after the configuration and the tree were made.
fn evil_archive(env: &Env) -> std::path::PathBuf {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a"), "a").unwrap();
    let archive = env.path("evil.tar");
    let st = Command::new("tar")
        .args(["-cf"])
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .args(["a", "--transform", "s,^a$,../../escaped,", "a"])
        .status()
        .unwrap();
    assert!(st.success());
    archive
}

#[test]
fn failed_build_leaves_nothing_behind_unless_keep() {
    let env = Env::new();
    let archive = evil_archive(&env);
    let name = unique("fail");
    let r = env.run(&[
        &name,
        "build",
        "-m",
        "template",
        "--",
        "-t",
        archive.to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(r.errors().iter().any(|l| l.contains("..")), "{r:#?}");
    assert_eq!(r.errors().len(), 1, "{r:#?}");
    assert!(
        env.traces_of(&name).is_empty(),
        "{:?}",
        env.traces_of(&name)
    );
    assert!(!env.path("etc/vservers/.defaults/context.next").exists());
    assert!(!env.root().parent().unwrap().join("escaped").exists());

    let r = env.run(&[
        &name,
        "build",
        "--keep",
        "-m",
        "template",
        "--",
        "-t",
        archive.to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0);
    assert!(env.path(&format!("etc/vservers/{name}/context")).exists());
    assert!(env.path(&format!("var/lib/vservers/{name}")).is_dir());
    env.run(&[&name, "delete", "--force"]).ok();
    assert!(env.traces_of(&name).is_empty());
}

#[test]
fn a_failure_after_the_tree_is_made_removes_the_cache_directory_too() {
    let env = Env::new();
    let name = unique("late");
    // The last step, moving .defaults/context.next on, fails: its scratch
    // file is a directory.
    fs::create_dir_all(env.path("etc/vservers/.defaults/context.next.~tmp~")).unwrap();
    let r = env.run(&[&name, "build", "-m", "skeleton"]);
    assert_ne!(r.code, 0, "{r:#?}");
    assert_eq!(r.errors().len(), 1, "{r:#?}");
    assert!(r.errors()[0].contains("context.next"), "{r:#?}");
    assert_eq!(env.traces_of(&name), Vec::<String>::new());
    assert!(!env.path(&format!("var/cache/vservers/{name}")).exists());
    // A cache directory that was there before the build stays.
    fs::create_dir_all(env.path(&format!("var/cache/vservers/{name}/keep"))).unwrap();
    let r = env.run(&[&name, "build", "-m", "skeleton"]);
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(
        env.path(&format!("var/cache/vservers/{name}/keep"))
            .is_dir()
    );
    assert!(!env.path(&format!("etc/vservers/{name}")).exists());
    assert!(!env.path(&format!("var/lib/vservers/{name}")).exists());
}

#[test]
fn build_options_write_their_files() {
    let env = Env::new();
    let cfg = |n: &str, f: &str| format!("etc/vservers/{n}/{f}");
    let (a, b, c) = (unique("opt"), unique("opt"), unique("opt"));
    env.run(&[&a, "build", "-m", "skeleton", "--initstyle", "sysv"])
        .ok();
    env.run(&[
        &b,
        "build",
        "-m",
        "skeleton",
        "--initstyle",
        "plain",
        "--storage",
        "dir",
    ])
    .ok();
    env.run(&[&c, "build", "-m", "skeleton"]).ok();
    assert_eq!(read(&env, &cfg(&a, "apps/init/style")), "sysv\n");
    assert_eq!(read(&env, &cfg(&b, "apps/init/style")), "plain\n");
    assert!(
        !env.path(&cfg(&c, "apps/init/style")).exists(),
        "sysv is the default"
    );
    assert!(!env.path(&cfg(&a, "apps/init/cmd.start")).exists());
    assert_eq!(read(&env, &cfg(&b, "storage/type")), "dir\n");
    assert!(!env.path(&cfg(&a, "storage")).exists());
    // The cache link points at the guest's cache directory, which exists.
    for n in [&a, &b, &c] {
        let link = fs::read_link(env.path(&cfg(n, "cache"))).unwrap();
        assert_eq!(link, env.path(&format!("var/cache/vservers/{n}")));
        assert!(link.is_dir(), "{}", link.display());
    }
    for n in [&a, &b, &c] {
        env.run(&[n, "delete", "--force"]).ok();
        assert_eq!(env.traces_of(n), Vec::<String>::new());
    }
}

#[test]
fn cpuset_options_write_cpuset_files() {
    let env = Env::new();
    let (a, b) = (unique("cpus"), unique("cpus"));
    env.run(&[
        &a,
        "build",
        "-m",
        "skeleton",
        "--cpuset",
        "web",
        "--cpusetcpus",
        "0:1",
        "--cpusetmems",
        "0",
        "--cpusetvirt",
    ])
    .ok();
    env.run(&[&b, "build", "-m", "skeleton", "--cpusetmems", "0:1"])
        .ok();
    let cfg = |n: &str, f: &str| format!("etc/vservers/{n}/cpuset/{f}");
    assert_eq!(read(&env, &cfg(&a, "name")), "web\n");
    assert_eq!(read(&env, &cfg(&a, "cpus")), "0\n");
    assert_eq!(read(&env, &cfg(&a, "mems")), "0\n");
    assert_eq!(read(&env, &cfg(&a, "cpu_exclusive")), "1\n");
    assert!(!env.path(&cfg(&a, "mem_exclusive")).exists());
    assert!(env.path(&cfg(&a, "virtualized")).exists());
    assert_eq!(read(&env, &cfg(&b, "mems")), "0\n");
    assert_eq!(read(&env, &cfg(&b, "mem_exclusive")), "1\n");
    for f in ["name", "cpus", "cpu_exclusive", "virtualized"] {
        assert!(!env.path(&cfg(&b, f)).exists(), "{f}");
    }
    // Without the options there is no cpuset directory.
    let c = unique("cpus");
    env.run(&[&c, "build", "-m", "skeleton"]).ok();
    assert!(!env.path(&format!("etc/vservers/{c}/cpuset")).exists());
    for n in [&a, &b, &c] {
        env.run(&[n, "delete", "--force"]).ok();
    }
}

#[test]
fn root_option_works_instead_of_vserver_root() {
    let env = Env::new();
    let other = tempfile::tempdir().unwrap();
    let name = unique("rootopt");
    let vs = |args: &[&str]| {
        let out = Command::new(vs_tests::vserver_bin())
            .args(args)
            .env_remove("VSERVER_ROOT")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let root = other.path().to_str().unwrap();
    let (code, _) = vs(&[
        "--root",
        root,
        &name,
        "build",
        "-m",
        "busybox",
        "--context",
        "4601",
    ]);
    assert_eq!(code, Some(0));
    let cfgdir = other.path().join(format!("etc/vservers/{name}"));
    assert_eq!(
        fs::read_to_string(cfgdir.join("context")).unwrap(),
        "4601\n"
    );
    assert_eq!(
        fs::read_link(cfgdir.join("vdir")).unwrap(),
        other.path().join(format!("var/lib/vservers/{name}"))
    );
    assert!(
        other
            .path()
            .join(format!("var/lib/vservers/{name}/bin/busybox"))
            .exists()
    );
    assert!(!std::path::Path::new("/etc/vservers").join(&name).exists());
    let (code, json) = vs(&["--root", root, "list", "--json"]);
    assert_eq!(code, Some(0));
    assert!(json.contains(&format!("\"{name}\"")), "{json}");
    // --root wins over VSERVER_ROOT.
    assert!(env.run(&["--root", root, &name, "status"]).code == 3);
    assert_eq!(
        env.run(&[&name, "status"]).code,
        5,
        "not in VSERVER_ROOT's prefix"
    );
    let (code, _) = vs(&["--root", root, &name, "delete", "--force"]);
    assert_eq!(code, Some(0));
    assert!(!cfgdir.exists());
}

#[test]
fn defaults_files_take_effect() {
    let env = Env::new();
    let defaults = env.path("etc/vservers/.defaults");
    fs::create_dir_all(defaults.join("apps/init")).unwrap();
    fs::create_dir_all(env.path("srv/roots")).unwrap();
    fs::create_dir_all(env.path("srv/cache")).unwrap();
    std::os::unix::fs::symlink(env.path("srv/roots"), defaults.join("vdirbase")).unwrap();
    std::os::unix::fs::symlink(env.path("srv/cache"), defaults.join("cachebase")).unwrap();
    fs::write(
        defaults.join("fstab"),
        "none /tmp tmpfs size=8m,mode=1777 0 0\n",
    )
    .unwrap();
    fs::write(
        defaults.join("apps/init/environment"),
        "PATH=/bin:/usr/bin:/sbin:/usr/sbin\nVS_FROM=defaults\n",
    )
    .unwrap();
    fs::write(defaults.join("context.dynamic"), "").unwrap();
    let name = unique("defs");
    // No VIRT_MEM: its lxcfs would live under this vdirbase, which the
    // Env's clean-up does not know.
    let r = env
        .run(&[&name, "build", "-m", "busybox", "--flags", "~virt_mem"])
        .ok();
    // context.dynamic: a warning, and a static context all the same.
    assert!(
        r.stderr.contains(
            "context.dynamic: dynamic contexts do not exist here; allocating a static one"
        ),
        "{r:#?}"
    );
    let cfg = format!("etc/vservers/{name}");
    assert_eq!(read(&env, &format!("{cfg}/context")), "40000\n");
    // vdirbase: the tree goes there.
    let vdir = env.path(&format!("srv/roots/{name}"));
    assert_eq!(
        fs::read_link(env.path(&format!("{cfg}/vdir"))).unwrap(),
        vdir
    );
    assert!(vdir.join("bin/busybox").exists());
    assert!(!env.path(&format!("var/lib/vservers/{name}")).exists());
    // cachebase: the cache too.
    let cache = env.path(&format!("srv/cache/{name}"));
    assert_eq!(
        fs::read_link(env.path(&format!("{cfg}/cache"))).unwrap(),
        cache
    );
    assert!(cache.is_dir());
    // fstab: the defaults' one, not the built-in 16 MB /tmp.
    let fstab = read(&env, &format!("{cfg}/fstab"));
    assert!(
        fstab.contains("size=8m,mode=1777") && !fstab.contains("16m"),
        "{fstab}"
    );
    // apps/init/environment: what the guest's processes get.
    let out = env
        .run(&[&name, "run", "/bin/sh", "-c", "echo \"from $VS_FROM\""])
        .ok();
    assert_eq!(out.stdout, "from defaults\n");
    // The guest's own file wins.
    env.write_cfg(
        &name,
        "apps/init/environment",
        "PATH=/bin:/usr/bin\nVS_FROM=guest\n",
    );
    let out = env
        .run(&[&name, "run", "/bin/sh", "-c", "echo \"from $VS_FROM\""])
        .ok();
    assert_eq!(out.stdout, "from guest\n");
    env.run(&[&name, "delete", "--force"]).ok();
    assert!(!vdir.exists() && !cache.exists());
    assert!(!env.path("srv/roots/.lxcfs.pid").exists());
}

#[test]
fn failed_forced_rebuild_puts_the_old_guest_back() {
    let env = Env::new();
    let name = unique("restore");
    env.run(&[&name, "build", "-m", "skeleton", "--context", "300"])
        .ok();
    let archive = evil_archive(&env);
    let r = env.run(&[
        &name,
        "build",
        "--force",
        "-m",
        "template",
        "--",
        "-t",
        archive.to_str().unwrap(),
    ]);
    assert!(r.stderr.contains("moved"), "{r:#?}");
    assert_ne!(r.code, 0);
    assert_eq!(read(&env, &format!("etc/vservers/{name}/context")), "300\n");
    assert!(env.path(&format!("var/lib/vservers/{name}/etc")).is_dir());
    assert!(
        env.traces_of(&format!("{name}.~")).is_empty(),
        "{:?}",
        env.tree()
    );
    env.run(&[&name, "delete", "--force"]).ok();
}

#[test]
fn cmd_init_style_runs_the_rc_of_the_start_and_stop_runlevels() {
    let env = Env::new();
    let name = unique("cmd");
    env.run(&[&name, "build", "-m", "busybox", "--initstyle", "cmd"])
        .ok();
    let cfg = format!("etc/vservers/{name}");
    assert_eq!(read(&env, &format!("{cfg}/apps/init/style")), "cmd\n");
    assert_eq!(
        read(&env, &format!("{cfg}/apps/init/cmd.start")),
        "/etc/init.d/rc\n3\n"
    );
    assert_eq!(
        read(&env, &format!("{cfg}/apps/init/cmd.stop")),
        "/etc/init.d/rc\n0\n"
    );
    // A service that records being started and stopped, linked for
    // runlevel 3 as the busybox rc expects.
    let vdir = env.path(&format!("var/lib/vservers/{name}"));
    let service = vdir.join("etc/init.d/marker");
    fs::write(&service, "#!/bin/sh\necho \"$1\" >> /root/marker.log\n").unwrap();
    fs::set_permissions(
        &service,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("../init.d/marker", vdir.join("etc/rc3.d/S10marker")).unwrap();

    env.run(&[&name, "start"]).ok();
    let stop = vs_tests::Stopper(&env, name.clone());
    assert_eq!(env.run(&[&name, "status"]).code, 0, "running");
    // cmd.start ran: the rc started the service (start does not wait for
    // it) and recorded its runlevel.
    let log = env.path(&format!("var/lib/vservers/{name}/root/marker.log"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !fs::read_to_string(&log).is_ok_and(|l| l.ends_with('\n')) {
        assert!(
            std::time::Instant::now() < deadline,
            "cmd.start never started the service"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        env.exec(&name, &["cat", "/run/runlevel"]).ok().stdout,
        "3\n"
    );
    assert_eq!(
        read(&env, &format!("var/lib/vservers/{name}/root/marker.log")),
        "start\n"
    );
    drop(stop);
    assert_eq!(env.run(&[&name, "status"]).code, 3, "stopped");
    // cmd.stop ran the rc for runlevel 0, which stopped the service.
    assert_eq!(
        read(&env, &format!("var/lib/vservers/{name}/root/marker.log")),
        "start\nstop\n"
    );
    assert_eq!(env.leftovers(&name), Vec::<String>::new());
    env.run(&[&name, "delete", "--force"]).ok();
    assert_eq!(env.traces_of(&name), Vec::<String>::new());
}
