//! What `interfaces/` puts on host devices in shared network mode: the
//! top-level defaults (`interfaces/{dev,prefix,mask}`, written by build's
//! `--netdev`, `--netprefix`, `--netmask`) inherited by `interfaces/N`, and
//! a `nodev` interface adding nothing. Everything runs inside `unshare -n`
//! with veth devices of its own; the host's network is never touched.

use std::fs;

use vs_tests::{Env, unique};

fn read(env: &Env, rel: &str) -> String {
    fs::read_to_string(env.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The `ADDR/PREFIX` of each line of `ip -o addr` output between
/// `begin KEY` and `end KEY`, sorted, without `lo`'s.
fn addrs(out: &str, key: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .lines()
        .skip_while(|l| *l != format!("begin {key}"))
        .skip(1)
        .take_while(|l| *l != format!("end {key}"))
        .filter(|l| !l.contains(" lo "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {}", f[1], f[3])
        })
        .collect();
    v.sort();
    v
}

#[test]
fn interfaces_inherit_the_top_level_dev_prefix_and_mask() {
    let env = Env::new();
    let (g, h) = (unique("ifdef"), unique("ifmask"));
    env.run(&[
        &g,
        "build",
        "-m",
        "busybox",
        "--netdev",
        "vsd0",
        "--netprefix",
        "24",
    ])
    .ok();
    env.run(&[
        &h,
        "build",
        "-m",
        "busybox",
        "--netdev",
        "vsd1",
        "--netmask",
        "255.255.0.0",
    ])
    .ok();
    let cg = format!("etc/vservers/{g}");
    let ch = format!("etc/vservers/{h}");
    assert_eq!(read(&env, &format!("{cg}/interfaces/dev")), "vsd0\n");
    assert_eq!(read(&env, &format!("{cg}/interfaces/prefix")), "24\n");
    assert_eq!(read(&env, &format!("{ch}/interfaces/dev")), "vsd1\n");
    assert_eq!(
        read(&env, &format!("{ch}/interfaces/mask")),
        "255.255.0.0\n"
    );
    // 0 inherits dev and prefix; 1 has its own prefix; 2 its own device.
    env.write_cfg(&g, "interfaces/0/ip", "10.61.0.1\n");
    env.write_cfg(&g, "interfaces/1/ip", "10.61.0.2\n");
    env.write_cfg(&g, "interfaces/1/prefix", "28\n");
    env.write_cfg(&g, "interfaces/2/ip", "10.61.1.1\n");
    env.write_cfg(&g, "interfaces/2/dev", "vsd1\n");
    // h's interface inherits dev and the mask (as a /16).
    env.write_cfg(&h, "interfaces/0/ip", "10.62.0.1\n");
    let script = format!(
        r#"
for d in vsd0 vsd1; do
    ip link add $d type veth peer name ${{d}}p && ip link set $d up && ip link set ${{d}}p up || exit 91
done
$VS {g} start && $VS {h} start || exit 90
echo "begin up"; ip -o -4 addr show; echo "end up"
$VS {g} stop && $VS {h} stop || exit 92
echo "begin down"; ip -o -4 addr show; echo "end down"
"#
    );
    let r = env.in_netns(&[&g, &h], &script);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(
        addrs(&r.stdout, "up"),
        [
            "vsd0 10.61.0.1/24",
            "vsd0 10.61.0.2/28",
            "vsd1 10.61.1.1/24",
            "vsd1 10.62.0.1/16",
        ],
        "{r:#?}"
    );
    assert_eq!(addrs(&r.stdout, "down"), Vec::<String>::new(), "{r:#?}");
    for n in [&g, &h] {
        env.run(&[n, "delete", "--force"]).ok();
    }
}

#[test]
fn a_nodev_guest_adds_nothing_to_host_interfaces() {
    let env = Env::new();
    let g = unique("nodev");
    // Even with a default device, an interface without one is nodev.
    env.run(&[
        &g,
        "build",
        "-m",
        "busybox",
        "--netdev",
        "vsd0",
        "--interface",
        "10.63.7.9/24",
    ])
    .ok();
    let cfg = format!("etc/vservers/{g}/interfaces/0");
    assert!(env.path(&format!("{cfg}/nodev")).exists());
    assert!(!env.path(&format!("{cfg}/dev")).exists());
    let script = format!(
        r#"
# No IPv6 autoconfiguration: its addresses would come and go meanwhile.
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
ip link add vsd0 type veth peer name vsd0p && ip link set vsd0 up && ip link set vsd0p up || exit 91
ip addr add 192.0.2.1/24 dev vsd0 || exit 91
echo "begin before"; ip -o addr show; echo "end before"
ip -o link show > links.before
$VS {g} start || exit 90
$VS {g} status >/dev/null; echo "status $?"
echo "begin running"; ip -o addr show; echo "end running"
ip -o link show > links.running
$VS {g} stop || exit 92
echo "begin after"; ip -o addr show; echo "end after"
ip -o link show > links.after
cmp -s links.before links.running && cmp -s links.before links.after && echo "links same"
"#
    );
    let r = env.in_netns(&[&g], &script);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.stdout.contains("status 0\n"), "it ran: {r:#?}");
    let before = addrs(&r.stdout, "before");
    assert!(
        !before.is_empty(),
        "vsd0's IPv6 link-local at least: {r:#?}"
    );
    assert_eq!(addrs(&r.stdout, "running"), before, "{r:#?}");
    assert_eq!(addrs(&r.stdout, "after"), before, "{r:#?}");
    assert!(!r.stdout.contains("10.63.7.9"), "{r:#?}");
    assert!(r.stdout.contains("links same"), "{r:#?}");
    env.run(&[&g, "delete", "--force"]).ok();
}
