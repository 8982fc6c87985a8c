//! The debootstrap method builds a real Debian guest from the host's own
//! apt mirror (about half a minute).

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
    env.run(&[&name, "start"]).ok();
    let r = env.run(&[
        &name,
        "exec",
        "sh",
        "-c",
        "id -u; hostname; apt-get --version | head -1",
    ]);
    let _ = env.run(&[&name, "stop"]);
    let r = r.ok();
    assert!(r.stdout.starts_with("0\ndeb\napt "), "{}", r.stdout);
    env.run(&[&name, "delete", "--force"]).ok();
    assert!(
        env.traces_of(&name).is_empty(),
        "{:?}",
        env.traces_of(&name)
    );
}
