//! `delete` asks unless forced and refuses while the guest runs.

use std::fs;
use std::process::Command;

use vs_tests::{Env, unique};

#[test]
fn delete_asks_and_keeps_the_guest_unless_told_yes() {
    let env = Env::new();
    let n = unique("ask");
    env.run(&[&n, "build", "-m", "skeleton"]).ok();
    let before = env.tree();
    for answer in ["\n", "n\n", "no\n", ""] {
        let r = env.run_with_input(&[&n, "delete"], answer);
        assert_eq!(r.code, 1, "{answer:?}: {r:#?}");
        assert!(r.stderr.contains("[y/N]"), "{r:#?}");
        assert_eq!(env.tree(), before);
    }
    env.run_with_input(&[&n, "delete"], "y\n").ok();
    assert!(env.traces_of(&n).is_empty(), "{:?}", env.traces_of(&n));
    let r = env.run(&[&n, "delete", "--force"]);
    assert_eq!(r.code, 5, "{r:#?}");
}

#[test]
fn a_running_guest_is_not_deleted() {
    let env = Env::new();
    let n = unique("busy");
    env.run(&[&n, "build", "-m", "skeleton", "--context", "4243"])
        .ok();
    // Stand-in for a running guest's init: a process this test started,
    // recorded in the run state the way the monitor records it.
    let mut init = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = init.id();
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ticks: u64 = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let state = serde_json::json!({
        "context": 4243, "init_pid": pid, "init_start_ticks": ticks, "monitor_pid": pid,
    });
    fs::write(
        env.path(&format!("run/vservers/{n}/state.json")),
        state.to_string(),
    )
    .unwrap();

    let st = env.run(&[&n, "status"]);
    assert_eq!(st.code, 0, "{st:#?}");
    assert!(
        st.stdout
            .starts_with(&format!("Vserver '{n}' is running at context '4243'\n")),
        "{}",
        st.stdout
    );
    assert!(st.stdout.contains("Number of processes: ") && st.stdout.contains("Uptime: "));
    assert_eq!(env.run(&[&n, "running"]).code, 0);
    let before = env.tree();
    let r = env.run(&[&n, "delete", "--force"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("is running"), "{r:#?}");
    assert_eq!(env.tree(), before);
    let r = env.run(&[&n, "build", "-m", "skeleton", "--force"]);
    assert!(r.stderr.contains("is running"), "{r:#?}");

    init.kill().unwrap();
    init.wait().unwrap();
    // A stale record of a dead init means stopped.
    assert_eq!(env.run(&[&n, "status"]).code, 3);
    env.run(&[&n, "delete", "--force"]).ok();
    assert!(env.traces_of(&n).is_empty());
}

#[test]
fn a_tree_that_is_not_the_guest_own_is_kept() {
    let env = Env::new();
    let (a, b) = (unique("own"), unique("borrow"));
    env.run(&[&a, "build", "-m", "busybox"]).ok();
    env.run(&[&b, "build", "-m", "skeleton"]).ok();
    // b borrows a's tree through its vdir link.
    let a_tree = env.path(&format!("var/lib/vservers/{a}"));
    let link = env.path(&format!("etc/vservers/{b}/vdir"));
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&a_tree, &link).unwrap();
    let r = env.run(&[&b, "delete", "--force"]).ok();
    assert!(
        r.stderr.contains("kept the tree") && r.stderr.contains(a_tree.to_str().unwrap()),
        "{r:#?}"
    );
    assert!(a_tree.join("bin/busybox").exists(), "a's tree is gone");
    assert!(!env.path(&format!("etc/vservers/{b}")).exists());
    // b's own, empty tree stays too (nothing names it any more); a's
    // delete removes a's tree as before.
    env.run(&[&a, "delete", "--force"]).ok();
    assert!(!a_tree.exists());
}
