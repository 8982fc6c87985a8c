//! Root integration test of the shared-mode confinement on the real kernel.
//!
//! Run as root: `cargo test -p vs-net --test root` (the target has
//! `test = false`, so a plain `cargo test` leaves it out). It never skips:
//! without root it fails and says why.
//!
//! The test process (harness = false, so single-threaded at `main`) moves
//! itself into a throwaway network namespace, puts 10.99.0.1/.2 and
//! fd00:99::1/::2/::42 on its `lo`, makes a cgroup v2 directory, attaches
//! the programs for a guest with 10.99.0.1, fd00:99::1, loopback
//! 127.0.42.1 and fd00:99::42, and runs servers outside the cgroup. It then
//! runs itself again as the "guest" (role in `VS_NET_ROOT_ROLE`), which
//! joins the cgroup and tries binds, connects, sends and unix connects.
//! At the end the programs are detached, the count checked to be 0 and
//! the cgroup removed (also on failure, by a drop guard).

use std::io;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vs_net::bpf::{Hook, asm};
use vs_net::{Error, GuestAddrs, attach, attached_count, detach_all, read_traffic};

const ROLE: &str = "VS_NET_ROOT_ROLE";
const CGROUP: &str = "VS_NET_ROOT_CGROUP";
const SOCKDIR: &str = "VS_NET_ROOT_SOCKDIR";
const ABSTRACT: &str = "VS_NET_ROOT_ABSTRACT";
const SCENARIO: &str = "VS_NET_ROOT_SCENARIO";

const GUEST4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const OTHER4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const LBACK4: Ipv4Addr = Ipv4Addr::new(127, 0, 42, 1);
const GUEST6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1);
const OTHER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 2);
const LBACK6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0x42);

fn guest_addrs() -> GuestAddrs {
    GuestAddrs {
        v4: vec![GUEST4],
        v6: vec![GUEST6],
        lback4: LBACK4,
        lback6: Some(LBACK6),
    }
}

/// A guest on a loopback-range address and no IPv6, as tests without a
/// real device configure one.
const LO_GUEST4: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);
const LO_OTHER4: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 2);

fn lo_guest_addrs() -> GuestAddrs {
    GuestAddrs {
        v4: vec![LO_GUEST4],
        v6: vec![],
        lback4: LBACK4,
        lback6: None,
    }
}

/// Counts checks and prints each.
#[derive(Default)]
struct Report {
    passed: usize,
    failed: usize,
}

impl Report {
    fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Debug) {
        if ok {
            self.passed += 1;
            println!("ok   {what}");
        } else {
            self.failed += 1;
            println!("FAIL {what}: {detail:?}");
        }
    }

    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        let ok = got == want;
        self.check(what, ok, format!("got {got:?}, want {want:?}"));
    }

    fn errno<T: std::fmt::Debug>(&mut self, what: &str, r: io::Result<T>, errno: i32) {
        let got = r.as_ref().err().and_then(io::Error::raw_os_error);
        self.check(what, got == Some(errno), r);
    }
}

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("guest") => {
            let cg = PathBuf::from(std::env::var_os(CGROUP).unwrap());
            std::fs::write(cg.join("cgroup.procs"), std::process::id().to_string()).unwrap();
            let mut rep = Report::default();
            match std::env::var(SCENARIO).as_deref() {
                Ok("main") => guest(&mut rep),
                Ok("loopback") => lo_guest(&mut rep),
                Ok("traffic") => traffic_guest(&mut rep),
                other => panic!("unknown scenario {other:?}"),
            }
            println!("guest: {} passed, {} failed", rep.passed, rep.failed);
            std::process::exit(if rep.failed == 0 { 0 } else { 1 });
        }
        _ => host(),
    }
}

fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(st.success(), "{cmd} {}: {st}", args.join(" "));
}

/// The cgroup v2 mount: `unified` in the hybrid layout, else the root.
fn cgroup2_root() -> PathBuf {
    for p in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        if Path::new(p).join("cgroup.procs").exists()
            && rustix::fs::statfs(p).is_ok_and(|s| s.f_type == libc::CGROUP2_SUPER_MAGIC as _)
        {
            return p.into();
        }
    }
    panic!("no cgroup2 mount at /sys/fs/cgroup/unified or /sys/fs/cgroup");
}

/// Removes the test cgroup (and with it any program still attached).
struct CgroupGuard {
    dir: PathBuf,
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!("removing {}: {e}", self.dir.display());
        }
    }
}

fn host() {
    assert!(
        rustix::process::geteuid().is_root(),
        "tests/root.rs makes a network namespace and a cgroup and loads BPF programs: \
         run it as root (cargo test -p vs-net --test root)"
    );
    // SAFETY: main of a harness-less test: no other thread exists yet, and
    // unshare(CLONE_NEWNET) only changes this process's network namespace.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        r,
        0,
        "unshare(CLONE_NEWNET): {}",
        io::Error::last_os_error()
    );
    run("ip", &["link", "set", "lo", "up"]);
    for a in [GUEST4, OTHER4] {
        run("ip", &["addr", "add", &format!("{a}/32"), "dev", "lo"]);
    }
    for a in [GUEST6, OTHER6, LBACK6] {
        run(
            "ip",
            &[
                "-6",
                "addr",
                "add",
                &format!("{a}/128"),
                "dev",
                "lo",
                "nodad",
            ],
        );
    }

    let pid = std::process::id();
    let dir = cgroup2_root().join(format!("vs-net-test-{pid}"));
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let guard = CgroupGuard { dir };
    let cg: OwnedFd = std::fs::File::open(&guard.dir).unwrap().into();
    let tmp = tempfile::tempdir().unwrap();
    let sockdir = tmp.path().to_owned();

    let mut rep = Report::default();
    rep.eq(
        "no program attached at first",
        attached_count(cg.as_fd()).unwrap(),
        0,
    );
    let attached =
        attach(cg.as_fd(), &guest_addrs()).expect("the kernel loads and attaches every program");
    rep.eq(
        "8 sock_addr programs and 2 counters attached",
        attached_count(cg.as_fd()).unwrap(),
        10,
    );
    rep.eq(
        "the counters start at zero",
        read_traffic(cg.as_fd()).unwrap(),
        Some(vs_net::Traffic::default()),
    );

    // Servers on the host side (this process is not in the cgroup).
    let _t4 = TcpListener::bind((OTHER4, 7000)).unwrap();
    let _t6 = TcpListener::bind((OTHER6, 7000)).unwrap();
    let _host_lo = TcpListener::bind((Ipv4Addr::LOCALHOST, 9001)).unwrap();
    let _host_lo2 = TcpListener::bind((LO_OTHER4, 7003)).unwrap();
    let _other_guest_lo = TcpListener::bind((Ipv4Addr::new(127, 7, 0, 1), 7004)).unwrap();
    let u4 = UdpSocket::bind((OTHER4, 7001)).unwrap();
    let u6 = UdpSocket::bind((OTHER6, 7001)).unwrap();
    let abstract_name = format!("vs-net-test-{pid}");
    let abs_addr = UnixAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
    let _ua = UnixListener::bind_addr(&abs_addr).unwrap();
    let _up = UnixListener::bind(sockdir.join("stream.sock")).unwrap();
    let abs_dgram =
        UnixAddr::from_abstract_name(format!("{abstract_name}-dgram").as_bytes()).unwrap();
    let _da = UnixDatagram::bind_addr(&abs_dgram).unwrap();
    let dp = UnixDatagram::bind(sockdir.join("dgram.sock")).unwrap();

    let run_guest = |rep: &mut Report, scenario: &str| {
        println!("-- guest side: {scenario}");
        let st = Command::new(std::env::current_exe().unwrap())
            .env(ROLE, "guest")
            .env(SCENARIO, scenario)
            .env(CGROUP, &guard.dir)
            .env(SOCKDIR, &sockdir)
            .env(ABSTRACT, &abstract_name)
            .status()
            .unwrap();
        rep.check(
            &format!("guest side ({scenario}) exits 0"),
            st.success(),
            st,
        );
    };
    run_guest(&mut rep, "main");

    // Counters: the guest sends TRAFFIC bytes to a host server that sends
    // them back; both directions count at least that (headers on top).
    let before = read_traffic(cg.as_fd()).unwrap().unwrap_or_default();
    let echo = TcpListener::bind((OTHER4, 7010)).unwrap();
    let server = std::thread::spawn(move || {
        let (mut c, _) = echo.accept().unwrap();
        let mut buf = vec![0u8; TRAFFIC];
        io::Read::read_exact(&mut c, &mut buf).unwrap();
        io::Write::write_all(&mut c, &buf).unwrap();
    });
    run_guest(&mut rep, "traffic");
    server.join().unwrap();
    let after = read_traffic(cg.as_fd()).unwrap().unwrap_or_default();
    let (sent, got) = (
        after.tx_bytes - before.tx_bytes,
        after.rx_bytes - before.rx_bytes,
    );
    rep.check(
        &format!("the guest's {TRAFFIC} bytes out are counted (tx {sent})"),
        (TRAFFIC as u64..TRAFFIC as u64 * 2).contains(&sent),
        after,
    );
    rep.check(
        &format!("the {TRAFFIC} bytes back are counted (rx {got})"),
        (TRAFFIC as u64..TRAFFIC as u64 * 2).contains(&got),
        after,
    );
    rep.check(
        "packets are counted both ways",
        after.tx_packets > before.tx_packets && after.rx_packets > before.rx_packets,
        after,
    );

    println!("-- host side");
    for (sock, want) in [(&u4, IpAddr::V4(GUEST4)), (&u6, IpAddr::V6(GUEST6))] {
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 16];
        let from = sock.recv_from(&mut buf).map(|(_, a)| a.ip());
        rep.eq(
            &format!("an unbound guest UDP socket sends from {want}"),
            from.ok(),
            Some(want),
        );
    }
    dp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 16];
    rep.eq(
        "a datagram to a unix path arrives",
        dp.recv(&mut buf).ok(),
        Some(4),
    );

    attached.detach(cg.as_fd()).unwrap();
    rep.eq(
        "detach leaves no program",
        attached_count(cg.as_fd()).unwrap(),
        0,
    );

    // The guest on a loopback-range address.
    let attached = attach(cg.as_fd(), &lo_guest_addrs()).unwrap();
    run_guest(&mut rep, "loopback");
    attached.detach(cg.as_fd()).unwrap();
    rep.eq(
        "detach leaves no program",
        attached_count(cg.as_fd()).unwrap(),
        0,
    );

    // detach_all finds programs by id (a restarted monitor has no fds).
    let again = attach(cg.as_fd(), &guest_addrs()).unwrap();
    drop(again);
    rep.eq(
        "programs outlive their descriptors",
        attached_count(cg.as_fd()).unwrap(),
        10,
    );
    rep.check(
        "the counters outlive them too",
        read_traffic(cg.as_fd()).unwrap().is_some(),
        "none",
    );
    rep.eq(
        "detach_all detaches them",
        detach_all(cg.as_fd()).unwrap(),
        10,
    );
    rep.eq(
        "no counters without the programs",
        read_traffic(cg.as_fd()).unwrap(),
        None,
    );
    rep.eq("none left", attached_count(cg.as_fd()).unwrap(), 0);

    every_shape_loads(&mut rep, cg.as_fd());
    many_addresses(&mut rep, cg.as_fd());
    verifier_log(&mut rep);

    rep.eq(
        "nothing attached before removal",
        attached_count(cg.as_fd()).unwrap(),
        0,
    );
    drop(cg);
    drop(guard);
    println!("{} passed, {} failed", rep.passed, rep.failed);
    if rep.failed > 0 {
        std::process::exit(1);
    }
}

/// The verifier takes the programs of every kind of guest: without IPv4,
/// without IPv6 or its loopback, with neither family, with chbind's
/// loopback of 127.0.0.1.
fn every_shape_loads(rep: &mut Report, cg: BorrowedFd<'_>) {
    let full = guest_addrs();
    let shapes = [
        (
            "no IPv4",
            GuestAddrs {
                v4: vec![],
                ..full.clone()
            },
        ),
        (
            "no IPv6",
            GuestAddrs {
                v6: vec![],
                lback6: None,
                ..full.clone()
            },
        ),
        (
            "no IPv6 loopback",
            GuestAddrs {
                lback6: None,
                ..full.clone()
            },
        ),
        (
            "IPv6 loopback only",
            GuestAddrs {
                v4: vec![],
                v6: vec![],
                ..full.clone()
            },
        ),
        (
            "no address",
            GuestAddrs {
                v4: vec![],
                v6: vec![],
                lback6: None,
                ..full.clone()
            },
        ),
        (
            "lback 127.0.0.1",
            GuestAddrs {
                lback4: Ipv4Addr::LOCALHOST,
                ..full.clone()
            },
        ),
    ];
    for (what, g) in shapes {
        let r = attach(cg, &g);
        rep.check(
            &format!("a guest with {what} loads"),
            r.is_ok(),
            r.as_ref().err(),
        );
        if let Ok(a) = r {
            a.detach(cg).unwrap();
        }
    }
}

/// The real verifier accepts lists far beyond the old limit of 16.
fn many_addresses(rep: &mut Report, cg: BorrowedFd<'_>) {
    let g = GuestAddrs {
        v4: (0..5_000u32)
            .map(|i| Ipv4Addr::from(0x0a40_0000 + i))
            .collect(),
        v6: (0..2_000u128)
            .map(|i| Ipv6Addr::from(0xfd00_0040_0000_0000_0000_0000_0000_0000u128 + i))
            .collect(),
        ..guest_addrs()
    };
    let t = std::time::Instant::now();
    let r = attach(cg, &g);
    let what = format!(
        "5000 IPv4 + 2000 IPv6 addresses load and attach ({} ms)",
        t.elapsed().as_millis()
    );
    rep.check(&what, r.is_ok(), r.as_ref().err());
    if let Ok(a) = r {
        a.detach(cg).unwrap();
    }
}

/// A refused program comes back with the verifier's log.
fn verifier_log(rep: &mut Report) {
    let mut a = asm::Asm::new();
    // user_ip6 is not readable from a bind4 program.
    a.ldx(asm::Size::W, asm::R0, asm::R1, 8);
    a.ret(1);
    let insns = a.finish().unwrap();
    match vs_net::bpf::load(Hook::Bind4.prog(), &insns) {
        Err(Error::Load { log, source, .. }) => rep.check(
            "a refused program's error carries the verifier log",
            log.contains("invalid bpf_context access")
                && source.raw_os_error() == Some(libc::EACCES),
            (source, log),
        ),
        other => rep.check("a bad program is refused", false, other.map(drop)),
    }
}

fn unbound_udp_sendto(addr: SocketAddr) -> io::Result<()> {
    use rustix::net::{AddressFamily, SendFlags, SocketType, sendto, socket};
    let fam = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let s = socket(fam, SocketType::DGRAM, None)?;
    sendto(&s, b"ping", SendFlags::empty(), &addr)?;
    Ok(())
}

fn local_ip(r: &io::Result<TcpStream>) -> Option<IpAddr> {
    r.as_ref()
        .ok()
        .and_then(|s| s.local_addr().ok())
        .map(|a| a.ip())
}

fn lo_guest(rep: &mut Report) {
    let eperm = libc::EPERM;
    let any = TcpListener::bind("0.0.0.0:8080").map(|l| l.local_addr().unwrap());
    rep.eq(
        "bind 0.0.0.0:8080 lands on 127.0.1.1",
        any.ok(),
        Some(SocketAddr::from((LO_GUEST4, 8080))),
    );
    rep.errno(
        "bind 127.0.1.2 is EPERM",
        TcpListener::bind((LO_OTHER4, 0)),
        eperm,
    );
    let lo = TcpListener::bind("127.0.0.1:9000").map(|l| l.local_addr().unwrap());
    rep.eq(
        "bind 127.0.0.1:9000 lands on the guest's loopback",
        lo.ok(),
        Some(SocketAddr::from((LBACK4, 9000))),
    );
    let c = TcpStream::connect((LO_OTHER4, 7003));
    rep.eq(
        "connect to a host server on 127.0.1.2 has source 127.0.1.1",
        local_ip(&c),
        Some(LO_GUEST4.into()),
    );
    // No IPv6: `::` serves the IPv4 address, `::1` is refused.
    let any6 = TcpListener::bind("[::]:8082").map(|l| l.local_addr().unwrap());
    rep.eq(
        "bind [::]:8082 lands on ::ffff:127.0.1.1",
        any6.ok(),
        Some(SocketAddr::V6(SocketAddrV6::new(
            LO_GUEST4.to_ipv6_mapped(),
            8082,
            0,
            0,
        ))),
    );
    rep.errno("bind [::1] is EPERM", TcpListener::bind("[::1]:0"), eperm);
    rep.errno(
        "connect [::1] is EPERM",
        TcpStream::connect("[::1]:9000"),
        eperm,
    );
}

/// Bytes the traffic scenario sends each way.
const TRAFFIC: usize = 1 << 20;

fn traffic_guest(rep: &mut Report) {
    let r = (|| -> io::Result<()> {
        let mut c = TcpStream::connect((OTHER4, 7010))?;
        io::Write::write_all(&mut c, &vec![7u8; TRAFFIC])?;
        let mut back = vec![0u8; TRAFFIC];
        io::Read::read_exact(&mut c, &mut back)?;
        Ok(())
    })();
    rep.check("a megabyte goes to the host and comes back", r.is_ok(), r);
}

fn guest(rep: &mut Report) {
    let sockdir = PathBuf::from(std::env::var_os(SOCKDIR).unwrap());
    let abstract_name = std::env::var(ABSTRACT).unwrap();
    let eperm = libc::EPERM;

    // IPv4 bind.
    let any = TcpListener::bind("0.0.0.0:8080").map(|l| l.local_addr().unwrap());
    rep.eq(
        "bind 0.0.0.0:8080 lands on 10.99.0.1",
        any.ok(),
        Some(SocketAddr::from((GUEST4, 8080))),
    );
    rep.errno(
        "bind 10.99.0.2 is EPERM",
        TcpListener::bind((OTHER4, 0)),
        eperm,
    );
    rep.errno(
        "bind 127.0.0.2 is EPERM",
        TcpListener::bind("127.0.0.2:0"),
        eperm,
    );
    let lo = TcpListener::bind("127.0.0.1:9000").unwrap();
    rep.eq(
        "bind 127.0.0.1:9000 lands on the guest's loopback",
        lo.local_addr().unwrap(),
        SocketAddr::from((LBACK4, 9000)),
    );

    // IPv4 connect.
    let c = TcpStream::connect("127.0.0.1:9000");
    rep.eq(
        "connect 127.0.0.1:9000 reaches the guest's own loopback server",
        c.as_ref().ok().map(|s| s.peer_addr().unwrap()),
        Some(SocketAddr::from((LBACK4, 9000))),
    );
    rep.eq(
        "... from the guest's loopback",
        local_ip(&c),
        Some(LBACK4.into()),
    );
    rep.errno(
        "connect 127.0.0.1:9001 never reaches the host's loopback service",
        TcpStream::connect("127.0.0.1:9001"),
        libc::ECONNREFUSED,
    );
    let c = TcpStream::connect((LO_OTHER4, 7003));
    rep.eq(
        "connect to a host server on 127.0.1.2 has source 10.99.0.1",
        local_ip(&c),
        Some(GUEST4.into()),
    );
    rep.errno(
        "connect to another guest's default loopback range is EPERM",
        TcpStream::connect("127.7.0.1:7004"),
        eperm,
    );
    let c = TcpStream::connect((OTHER4, 7000));
    rep.eq(
        "connect 10.99.0.2 has source 10.99.0.1",
        local_ip(&c),
        Some(GUEST4.into()),
    );

    // UDP.
    let rx = UdpSocket::bind("127.0.0.1:9002").unwrap();
    rep.eq(
        "UDP bind 127.0.0.1 lands on the loopback",
        rx.local_addr().unwrap(),
        SocketAddr::from((LBACK4, 9002)),
    );
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let sent = unbound_udp_sendto("127.0.0.1:9002".parse().unwrap());
    rep.check(
        "UDP sendto 127.0.0.1 from an unbound socket",
        sent.is_ok(),
        &sent,
    );
    let mut buf = [0u8; 8];
    rep.eq(
        "... arrives at the loopback server from the loopback",
        rx.recv_from(&mut buf).ok().map(|(_, a)| a.ip()),
        Some(LBACK4.into()),
    );
    let sent = unbound_udp_sendto(SocketAddr::from((OTHER4, 7001)));
    rep.check(
        "UDP sendto 10.99.0.2 from an unbound socket",
        sent.is_ok(),
        &sent,
    );
    let sent = unbound_udp_sendto(SocketAddr::from((OTHER6, 7001)));
    rep.check(
        "UDP sendto fd00:99::2 from an unbound socket",
        sent.is_ok(),
        &sent,
    );
    rep.errno(
        "UDP sendto another guest's loopback range is EPERM",
        unbound_udp_sendto("127.7.0.1:7004".parse().unwrap()),
        eperm,
    );

    // IPv6.
    let any6 = TcpListener::bind("[::]:8080").map(|l| l.local_addr().unwrap());
    rep.eq(
        "bind [::]:8080 lands on fd00:99::1",
        any6.ok(),
        Some(SocketAddr::from((GUEST6, 8080))),
    );
    rep.errno(
        "bind fd00:99::2 is EPERM",
        TcpListener::bind((OTHER6, 0)),
        eperm,
    );
    let lo6 = TcpListener::bind("[::1]:9000").unwrap();
    rep.eq(
        "bind [::1]:9000 lands on the guest's IPv6 loopback",
        lo6.local_addr().unwrap(),
        SocketAddr::from((LBACK6, 9000)),
    );
    let c = TcpStream::connect("[::1]:9000");
    rep.eq(
        "connect [::1]:9000 reaches it",
        c.as_ref().ok().map(|s| s.peer_addr().unwrap()),
        Some(SocketAddr::from((LBACK6, 9000))),
    );
    let c = TcpStream::connect((OTHER6, 7000));
    rep.eq(
        "connect fd00:99::2 has source fd00:99::1",
        local_ip(&c),
        Some(GUEST6.into()),
    );

    // IPv4-mapped on IPv6 sockets.
    let m = TcpListener::bind("[::ffff:0.0.0.0]:8081").map(|l| l.local_addr().unwrap());
    rep.eq(
        "bind [::ffff:0.0.0.0]:8081 lands on ::ffff:10.99.0.1",
        m.ok(),
        Some(SocketAddr::V6(SocketAddrV6::new(
            GUEST4.to_ipv6_mapped(),
            8081,
            0,
            0,
        ))),
    );
    rep.errno(
        "bind ::ffff:10.99.0.2 is EPERM",
        TcpListener::bind(SocketAddrV6::new(OTHER4.to_ipv6_mapped(), 0, 0, 0)),
        eperm,
    );
    let c = TcpStream::connect(SocketAddrV6::new(OTHER4.to_ipv6_mapped(), 7000, 0, 0));
    rep.eq(
        "connect ::ffff:10.99.0.2 has source ::ffff:10.99.0.1",
        local_ip(&c),
        Some(GUEST4.to_ipv6_mapped().into()),
    );
    let c = TcpStream::connect(SocketAddrV6::new(
        Ipv4Addr::LOCALHOST.to_ipv6_mapped(),
        9000,
        0,
        0,
    ));
    rep.eq(
        "connect ::ffff:127.0.0.1:9000 reaches the guest's loopback",
        c.as_ref().ok().map(|s| s.peer_addr().unwrap()),
        Some(SocketAddr::V6(SocketAddrV6::new(
            LBACK4.to_ipv6_mapped(),
            9000,
            0,
            0,
        ))),
    );

    // Unix sockets.
    let abs = UnixAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
    rep.errno(
        "unix connect to an abstract name is EPERM",
        UnixStream::connect_addr(&abs),
        eperm,
    );
    let p = UnixStream::connect(sockdir.join("stream.sock"));
    rep.check("unix connect to a path works", p.is_ok(), &p);
    let d = UnixDatagram::unbound().unwrap();
    let abs_d = UnixAddr::from_abstract_name(format!("{abstract_name}-dgram").as_bytes()).unwrap();
    rep.errno(
        "unix sendto an abstract name is EPERM",
        d.send_to_addr(b"ping", &abs_d),
        eperm,
    );
    let s = d.send_to(b"ping", sockdir.join("dgram.sock"));
    rep.check("unix sendto a path works", s.is_ok(), &s);
}
