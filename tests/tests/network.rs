//! Shared network mode: VServer's IP isolation without virtual devices.
//! Every scenario runs inside a network namespace this test makes with
//! `unshare -n` (so only its own loopback is touched), as one shell script
//! driving the `vserver` binary.

use std::path::Path;
use std::process::Command;

use vs_tests::{Env, unique};

/// Builds the static probes the scenarios use into the guest tree.
fn probe(env: &Env, guest: &str, name: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("probe/{name}.c"));
    let out = env.path(&format!("var/lib/vservers/{guest}/bin/{name}"));
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "gcc -static {name}.c");
}

/// `vserver NAME build -m busybox EXTRA...`, which must succeed.
fn build(env: &Env, name: &str, extra: &[&str]) {
    let mut args = vec![name, "build", "-m", "busybox"];
    args.extend_from_slice(extra);
    env.run(&args).ok();
}

fn lines_with<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(key)).collect()
}

#[test]
fn shared_mode_confines_guests_to_their_addresses() {
    let env = Env::new();
    let (a, b) = (unique("neta"), unique("netb"));
    build(
        &env,
        &a,
        &["--context", "4701", "--interface", "127.0.1.1/32"],
    );
    build(
        &env,
        &b,
        &["--context", "4702", "--interface", "127.0.1.2/32"],
    );
    for g in [&a, &b] {
        probe(&env, g, "unixconnect");
        let www = env.path(&format!("var/lib/vservers/{g}/www"));
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), format!("{g}\n")).unwrap();
    }
    let script = format!(
        r#"
A={a}; B={b}
$VS $A start && $VS $B start || exit 90
# Both serve on 0.0.0.0:8080; bind(ANY) lands on each guest's own address.
$VS $A exec httpd -p 0.0.0.0:8080 -h /www
$VS $B exec httpd -p 0.0.0.0:8080 -h /www
sleep 0.3
echo "hostA $(busybox wget -qO- http://127.0.1.1:8080/index.html)"
echo "hostB $(busybox wget -qO- http://127.0.1.2:8080/index.html)"
# A cannot bind B's address nor the host's.
$VS $A exec httpd -f -p 127.0.1.2:8081 -h /www; echo "bindB $?"
$VS $A exec httpd -f -p 127.0.0.5:8081 -h /www; echo "bindHost $?"
# A client in A shows A's address to the host.
python3 -c '
import socket,sys
s=socket.socket(); s.bind(("127.0.9.9",7000)); s.listen(1); s.settimeout(10)
open("ready7000","w").close()
c,addr=s.accept(); print("peer", addr[0]); sys.stdout.flush()' > peer.txt &
ready ready7000
$VS $A exec sh -c 'echo hi | nc 127.0.9.9 7000' >/dev/null 2>&1
wait; cat peer.txt
# A's localhost server: reachable inside A, not from B.
$VS $A exec httpd -p 127.0.0.1:9000 -h /www
sleep 0.2
echo "lbA $($VS $A exec wget -qO- http://127.0.0.1:9000/index.html)"
# (nc, not wget: busybox 1.35's static wget crashes on -T.)
echo "lbA-nc $(printf 'GET /index.html HTTP/1.0\r\n\r\n' | $VS $A exec nc -w 2 127.0.0.1 9000 | head -1 | cut -d' ' -f2)"
echo "lbB-nc $(printf 'GET /index.html HTTP/1.0\r\n\r\n' | $VS $B exec nc -w 2 127.0.0.1 9000 | head -1 | cut -d' ' -f2)"
# Abstract unix sockets of the host are out of reach.
python3 -c '
import socket,time
s=socket.socket(socket.AF_UNIX); s.bind("\0vserver-test-abstract"); s.listen(1); open("readyunix","w").close(); time.sleep(3)' &
ready readyunix
echo "unix $($VS $A exec /bin/unixconnect @vserver-test-abstract)"
kill %1 2>/dev/null
# Traffic counters: A sends 100000 bytes to a host server.
python3 -c '
import socket
s=socket.socket(); s.bind(("127.0.9.9",7001)); s.listen(1); s.settimeout(10)
open("ready7001","w").close()
c,_=s.accept(); n=0
while n < 100000:
    d=c.recv(65536)
    if not d: break
    n+=len(d)
print("got", n)' > got.txt &
ready ready7001
head -c 100000 /dev/zero | $VS $A exec nc -w 2 127.0.9.9 7001 >/dev/null 2>&1
wait; cat got.txt
net() {{ $VS $1 stats --json | python3 -c 'import json,sys; n=json.load(sys.stdin)["network"]; print(n["tx_bytes"], n["tx_packets"], n["rx_bytes"], n["rx_packets"])'; }}
echo "netA $(net $A)"
echo "netB $(net $B)"
"#
    );
    let r = env.in_netns(&[&a, &b], &script);
    let out = &r.stdout;
    assert_eq!(
        lines_with(out, "hostA "),
        [format!("hostA {a}").as_str()],
        "{r:#?}"
    );
    assert_eq!(
        lines_with(out, "hostB "),
        [format!("hostB {b}").as_str()],
        "{r:#?}"
    );
    assert_ne!(lines_with(out, "bindB ")[0], "bindB 0", "{r:#?}");
    assert_ne!(lines_with(out, "bindHost ")[0], "bindHost 0", "{r:#?}");
    assert_eq!(lines_with(out, "peer "), ["peer 127.0.1.1"], "{r:#?}");
    assert_eq!(
        lines_with(out, "lbA "),
        [format!("lbA {a}").as_str()],
        "{r:#?}"
    );
    assert_eq!(lines_with(out, "lbA-nc "), ["lbA-nc 200"], "{r:#?}");
    assert_eq!(lines_with(out, "lbB-nc "), ["lbB-nc "], "{r:#?}");
    let unix = lines_with(out, "unix ");
    assert!(unix[0].starts_with("unix refused"), "{r:#?}");
    assert_eq!(lines_with(out, "got "), ["got 100000"], "{r:#?}");
    let counters = |key: &str| -> Vec<u64> {
        let line = lines_with(out, key);
        let l = line.first().unwrap_or_else(|| panic!("no {key}: {r:#?}"));
        l.split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or_else(|_| panic!("{l}: {r:#?}")))
            .collect()
    };
    // tx_bytes tx_packets rx_bytes rx_packets, counted at the IP layer.
    let (na, nb) = (counters("netA "), counters("netB "));
    assert!(
        na[0] >= 100_000 && na[1] > 0,
        "A's bytes out: {na:?} {r:#?}"
    );
    assert!(na[2] > 0 && na[3] > 0, "A's bytes in: {na:?}");
    assert!(
        nb[0] > 0 && nb[0] < 100_000,
        "B sent only its pages: {nb:?}"
    );
    // Stopped: nothing of either guest is left.
    for g in [&a, &b] {
        assert!(!Path::new("/sys/fs/cgroup/unified/vserver").join(g).exists());
        assert!(!env.path(&format!("run/vservers/{g}/state.json")).exists());
    }
}

#[test]
fn addresses_on_a_device_are_added_at_start_and_removed_at_stop() {
    let env = Env::new();
    let g = unique("netdev");
    build(&env, &g, &["--interface", "web=vsveth0:10.77.0.2/24"]);
    let script = format!(
        r#"
ip link add vsveth0 type veth peer name vsveth1 || exit 91
ip addr add 10.77.0.1/24 dev vsveth0
ip link set vsveth0 up; ip link set vsveth1 up
$VS {g} start || exit 92
echo "during $(ip -o -4 addr show dev vsveth0 | tr -s ' \\\n' ' ')"
$VS {g} stop
echo "after $(ip -o addr show dev vsveth0 | awk '{{print $4}}' | tr '\n' ' ')"
"#
    );
    let r = env.in_netns(&[&g], &script);
    let during = lines_with(&r.stdout, "during ")
        .first()
        .copied()
        .unwrap_or_else(|| panic!("{r:#?}"));
    assert!(
        during.contains("10.77.0.2/24") && during.contains("vsveth0:web"),
        "{r:#?}"
    );
    assert!(during.contains("10.77.0.1/24"), "{r:#?}");
    let after = lines_with(&r.stdout, "after ")
        .first()
        .copied()
        .unwrap_or_else(|| panic!("{r:#?}"));
    assert!(
        !after.contains("10.77.0.2") && after.contains("10.77.0.1/24"),
        "the host's own address stays: {r:#?}"
    );
}

#[test]
fn private_mode_gives_a_guest_its_own_stack_behind_a_bridge_with_nat() {
    let env = Env::new();
    let g = unique("netpriv");
    build(
        &env,
        &g,
        &["--context", "4720", "--interface", "10.88.0.2/24"],
    );
    env.write_cfg(&g, "netns/bridge", "vsbr0\n");
    env.write_cfg(&g, "netns/gateway", "10.88.0.1\n");
    env.write_cfg(&g, "netns/nat", "");
    probe(&env, &g, "rawsock");
    probe(&env, &g, "pingsock");
    let script = format!(
        r#"
G={g}
# The "WAN": another namespace of this test, reachable from ours only.
unshare -n sleep 60 & WAN=$!
own_netns $WAN
ip link add up0 type veth peer name wan0 netns $WAN
ip addr add 192.168.77.1/24 dev up0; ip link set up0 up
nsenter --net=/proc/$WAN/ns/net sh -c 'ip link set lo up; ip addr add 192.168.77.2/24 dev wan0; ip link set wan0 up'
nsenter --net=/proc/$WAN/ns/net python3 -m http.server -b 192.168.77.2 8001 >/dev/null 2>&1 &
ip link add vsbr0 type bridge; ip addr add 10.88.0.1/24 dev vsbr0; ip link set vsbr0 up
sysctl -qw net.ipv4.ip_forward=1
python3 -m http.server -b 10.88.0.1 8000 >/dev/null 2>&1 &
listening 8000; listening 8001 "nsenter --net=/proc/$WAN/ns/net"
$VS $G start || exit 93
echo "links $($VS $G exec ip -o link | awk -F': ' '{{print $2}}' | cut -d@ -f1 | sort | tr '\n' ' ')"
echo "bridge $(printf 'GET / HTTP/1.0\r\n\r\n' | $VS $G exec nc -w 3 10.88.0.1 8000 | head -1 | cut -d' ' -f2)"
echo "$($VS $G exec /bin/pingsock 10.88.0.1)"
echo "$($VS $G exec /bin/rawsock)"
echo "nat $(printf 'GET / HTTP/1.0\r\n\r\n' | $VS $G exec nc -w 3 192.168.77.2 8001 | head -1 | cut -d' ' -f2)"
echo "rules $(nft list ruleset | grep -c masquerade)"
echo "rxbytes $($VS $G stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["network"]["rx_bytes"] > 0)')"
$VS $G stop
echo "after-rules $(nft list ruleset | grep -c masquerade)"
echo "after-veth $(ip link show vs4720 >/dev/null 2>&1 && echo present || echo gone)"
kill $WAN %2 %3 2>/dev/null
"#
    );
    let r = env.in_netns(&[&g], &script);
    let out = &r.stdout;
    assert_eq!(lines_with(out, "links "), ["links eth0 lo "], "{r:#?}");
    assert_eq!(lines_with(out, "bridge "), ["bridge 200"], "{r:#?}");
    assert_eq!(lines_with(out, "ping "), ["ping ok"], "{r:#?}");
    assert!(
        lines_with(out, "raw ")[0].starts_with("raw refused"),
        "{r:#?}"
    );
    assert_eq!(lines_with(out, "nat "), ["nat 200"], "{r:#?}");
    assert_eq!(lines_with(out, "rules "), ["rules 1"], "{r:#?}");
    assert_eq!(lines_with(out, "rxbytes "), ["rxbytes True"], "{r:#?}");
    assert_eq!(lines_with(out, "after-rules "), ["after-rules 0"], "{r:#?}");
    assert_eq!(
        lines_with(out, "after-veth "),
        ["after-veth gone"],
        "{r:#?}"
    );
}

#[test]
fn shared_mode_confines_ipv6_as_it_does_ipv4() {
    let env = Env::new();
    let g = unique("net6");
    build(
        &env,
        &g,
        &["--context", "4730", "--interface", "fd00:91::1/128"],
    );
    let www = env.path(&format!("var/lib/vservers/{g}/www"));
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "six\n").unwrap();
    let script = format!(
        r#"
ip addr add fd00:91::1/128 dev lo nodad; ip addr add fd00:91::2/128 dev lo nodad
$VS {g} start || exit 94
$VS {g} exec httpd -p '[::]:8080' -h /www
sleep 0.3
echo "host6 $(busybox wget -qO- 'http://[fd00:91::1]:8080/index.html')"
$VS {g} exec httpd -f -p '[fd00:91::2]:8081' -h /www; echo "bind6 $?"
# The guest has no IPv4 address: binding 0.0.0.0 fails as on a host without IPv4.
$VS {g} exec httpd -f -p 0.0.0.0:8082 -h /www; echo "bind4 $?"
"#
    );
    let r = env.in_netns(&[&g], &script);
    let out = &r.stdout;
    assert_eq!(lines_with(out, "host6 "), ["host6 six"], "{r:#?}");
    assert_ne!(
        lines_with(out, "bind6 ").first().copied(),
        Some("bind6 0"),
        "{r:#?}"
    );
    assert_ne!(
        lines_with(out, "bind4 ").first().copied(),
        Some("bind4 0"),
        "{r:#?}"
    );
}

#[test]
fn private_mode_routed_serves_and_reaches_the_host_over_ipv4_and_ipv6() {
    let env = Env::new();
    let g = unique("netroute");
    build(
        &env,
        &g,
        &[
            "--context",
            "4721",
            "--interface",
            "10.89.0.2/24",
            "--interface",
            "v6=fd00:89::2/64",
        ],
    );
    // netns/ without a bridge: routed through the host end of the veth.
    std::fs::create_dir_all(env.path(&format!("etc/vservers/{g}/netns"))).unwrap();
    let www = env.path(&format!("var/lib/vservers/{g}/www"));
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), format!("{g}\n")).unwrap();
    let script = format!(
        r#"
G={g}
# Host services on addresses of the test's namespace, not on the guest's link.
ip addr add 10.90.0.1/32 dev lo; ip addr add fd00:90::1/128 dev lo nodad
python3 -m http.server -b 10.90.0.1 8000 >/dev/null 2>&1 &
python3 -m http.server -b fd00:90::1 8001 >/dev/null 2>&1 &
listening 8000; listening 8001
$VS $G start || exit 94
$VS $G exec httpd -p 8080 -h /www
sleep 0.3
get() {{ python3 -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip())" "$1" 2>&1 | tail -1; }}
echo "in4 $(get http://10.89.0.2:8080/index.html)"
echo "in6 $(get 'http://[fd00:89::2]:8080/index.html')"
echo "out4 $(printf 'GET / HTTP/1.0\r\n\r\n' | $VS $G exec nc -w 3 10.90.0.1 8000 | head -1 | cut -d' ' -f2)"
echo "out6 $(printf 'GET / HTTP/1.0\r\n\r\n' | $VS $G exec nc -w 3 fd00:90::1 8001 | head -1 | cut -d' ' -f2)"
echo "routes $(ip route show dev vs4721 | grep -c 10.89.0.2) $(ip -6 route show dev vs4721 | grep -c fd00:89::2)"
$VS $G stop
echo "after $(ip route | grep -c 10.89.0.2) $(ip -6 route | grep -c fd00:89::2) $(ip link show vs4721 >/dev/null 2>&1 && echo present || echo gone)"
kill %1 %2 2>/dev/null
"#
    );
    let r = env.in_netns(&[&g], &script);
    let out = &r.stdout;
    assert_eq!(
        lines_with(out, "in4 "),
        [format!("in4 {g}").as_str()],
        "{r:#?}"
    );
    assert_eq!(
        lines_with(out, "in6 "),
        [format!("in6 {g}").as_str()],
        "{r:#?}"
    );
    assert_eq!(lines_with(out, "out4 "), ["out4 200"], "{r:#?}");
    assert_eq!(lines_with(out, "out6 "), ["out6 200"], "{r:#?}");
    assert_eq!(lines_with(out, "routes "), ["routes 1 1"], "{r:#?}");
    assert_eq!(lines_with(out, "after "), ["after 0 0 gone"], "{r:#?}");
}
