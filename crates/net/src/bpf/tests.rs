//! Every program run in rbpf's userspace interpreter against a context laid
//! out as `struct bpf_sock_addr`, with `bpf_bind()` and
//! `bpf_cast_to_kern_ctx()` mocked. No root needed.

use std::cell::{Cell, RefCell};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::asm::{BPF_PSEUDO_KFUNC_CALL, Insn, to_bytes};
use super::progs::{BPF_FUNC_BIND, Hook, UnixLayout, build, ctx, sock};
use crate::GuestAddrs;

/// Where the fake `struct bpf_sock` lives in the test memory.
const SK_AT: usize = 80;
/// Where the fake `struct bpf_sock_addr_kern` lives.
const KERN_AT: usize = 176;
/// Where the fake `struct sockaddr_un` lives.
const SUN_AT: usize = 224;
const MEM: usize = 512;
/// A made-up BTF id for the kfunc (the interpreter calls it as a helper).
const FAKE_KFUNC: u32 = 0x7fff_0001;

const LAYOUT: UnixLayout = UnixLayout {
    cast_to_kern_ctx: FAKE_KFUNC,
    uaddr_off: 8,
    uaddrlen_off: 32,
};

thread_local! {
    static BINDS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static BIND_RET: Cell<u64> = const { Cell::new(0) };
}

fn mock_bind(_ctx: u64, addr: u64, len: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the program passes a pointer into its own stack (rbpf's stack
    // buffer, alive during the call) and the size it initialized there;
    // the interpreter does not check helper arguments, and every call to
    // helper 64 in our programs passes r10 - slot and the slot's size
    // (progs.rs, emit_bpf_bind).
    let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, len as usize) };
    BINDS.with(|b| b.borrow_mut().push(bytes.to_vec()));
    BIND_RET.with(Cell::get)
}

fn mock_cast_to_kern_ctx(ctx: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    ctx + KERN_AT as u64
}

fn guest() -> GuestAddrs {
    GuestAddrs {
        v4: vec![Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 1, 0, 2)],
        v6: vec!["fd00:1::1".parse().unwrap(), "fd00:1::2".parse().unwrap()],
        lback4: Ipv4Addr::new(127, 0, 42, 1),
        lback6: Some("fd00:1::42".parse().unwrap()),
    }
}

fn v4only() -> GuestAddrs {
    GuestAddrs {
        v6: vec![],
        lback6: None,
        ..guest()
    }
}

fn v6only() -> GuestAddrs {
    GuestAddrs {
        v4: vec![],
        ..guest()
    }
}

/// A `struct bpf_sock_addr` in a buffer that also holds the fake socket
/// and unix address it points to.
struct Ctx {
    mem: Vec<u8>,
}

impl Ctx {
    fn new(user_family: u32) -> Ctx {
        let mut c = Ctx { mem: vec![0; MEM] };
        c.put(ctx::USER_FAMILY as usize, &user_family.to_ne_bytes());
        c
    }
    fn v4(ip: Ipv4Addr) -> Ctx {
        let mut c = Ctx::new(2);
        c.put(ctx::USER_IP4 as usize, &ip.octets());
        c
    }
    fn v6(ip: Ipv6Addr) -> Ctx {
        let mut c = Ctx::new(10);
        c.put(ctx::USER_IP6 as usize, &ip.octets());
        c
    }
    fn unix(path: &[u8]) -> Ctx {
        let mut c = Ctx::new(1);
        c.put(SUN_AT, &1u16.to_ne_bytes());
        c.put(SUN_AT + 2, path);
        c.put(KERN_AT + 32, &(2 + path.len() as u32).to_ne_bytes());
        c
    }
    fn put(&mut self, at: usize, b: &[u8]) {
        self.mem[at..at + b.len()].copy_from_slice(b);
    }
    fn get<const N: usize>(&self, at: usize) -> [u8; N] {
        self.mem[at..at + N].try_into().unwrap()
    }
    fn with_src4(mut self, ip: Ipv4Addr) -> Ctx {
        self.put(ctx::MSG_SRC_IP4 as usize, &ip.octets());
        self
    }
    fn with_src6(mut self, ip: Ipv6Addr) -> Ctx {
        self.put(ctx::MSG_SRC_IP6 as usize, &ip.octets());
        self
    }
    /// The socket is bound already (to a port).
    fn bound(mut self) -> Ctx {
        self.put(SK_AT + sock::SRC_PORT as usize, &5000u32.to_ne_bytes());
        self
    }
    fn user_ip4(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.get::<4>(ctx::USER_IP4 as usize))
    }
    fn user_ip6(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.get::<16>(ctx::USER_IP6 as usize))
    }
    fn msg_src4(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.get::<4>(ctx::MSG_SRC_IP4 as usize))
    }
    fn msg_src6(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.get::<16>(ctx::MSG_SRC_IP6 as usize))
    }
}

/// The kernel's `check_cfg()` in small: every jump lands inside the
/// program, no back edge, every instruction reachable, no fall off the end.
fn check_cfg(p: &[Insn]) {
    let n = p.len();
    let mut reach = vec![false; n];
    reach[0] = true;
    for (i, insn) in p.iter().enumerate() {
        if !reach[i] {
            panic!("instruction {i} ({insn}) is unreachable");
        }
        let class = insn.code & 7;
        let op = insn.code & 0xf0;
        let is_jmp = class == 5 || class == 6;
        if is_jmp && op == 0x90 {
            continue; // exit
        }
        if is_jmp && op != 0x80 {
            let t = i as i64 + 1 + insn.off as i64;
            assert!(t > i as i64 && (t as usize) < n, "jump at {i} to {t}");
            reach[t as usize] = true;
            if op == 0x00 {
                continue; // ja
            }
        }
        assert!(i + 1 < n, "falls off the end at {i}");
        reach[i + 1] = true;
    }
}

/// Runs `hook`'s program for `g` on `c`; returns r0 and the mocked
/// `bpf_bind()` calls.
fn run_prog(prog: &[Insn], c: &mut Ctx) -> (u64, Vec<Vec<u8>>) {
    check_cfg(prog);
    // rbpf calls helpers by id and knows no kfunc calls: call the kfunc's
    // mock as a helper under the BTF id.
    let insns: Vec<Insn> = prog
        .iter()
        .map(|i| {
            if i.code == 0x85 && i.src == BPF_PSEUDO_KFUNC_CALL {
                Insn { src: 0, ..*i }
            } else {
                *i
            }
        })
        .collect();
    let code = to_bytes(&insns);
    let base = c.mem.as_ptr() as u64;
    c.put(ctx::SK as usize, &(base + SK_AT as u64).to_ne_bytes());
    c.put(KERN_AT + 8, &(base + SUN_AT as u64).to_ne_bytes());
    BINDS.with(|b| b.borrow_mut().clear());
    let mut vm = rbpf::EbpfVmRaw::new(Some(&code)).unwrap();
    vm.register_helper(BPF_FUNC_BIND as u32, mock_bind).unwrap();
    vm.register_helper(FAKE_KFUNC, mock_cast_to_kern_ctx)
        .unwrap();
    let r = vm.execute_program(&mut c.mem).unwrap();
    (r, BINDS.with(|b| b.borrow().clone()))
}

fn run(hook: Hook, g: &GuestAddrs, c: &mut Ctx) -> (u64, Vec<Vec<u8>>) {
    let prog = build(hook, g, &LAYOUT).unwrap();
    run_prog(&prog, c)
}

fn bind4(g: &GuestAddrs, ip: [u8; 4]) -> Option<Ipv4Addr> {
    let mut c = Ctx::v4(ip.into());
    let (r, binds) = run(Hook::Bind4, g, &mut c);
    assert!(binds.is_empty());
    (r == 1).then(|| c.user_ip4())
}

fn bind6(g: &GuestAddrs, ip: &str) -> Option<Ipv6Addr> {
    let mut c = Ctx::v6(ip.parse().unwrap());
    let (r, _) = run(Hook::Bind6, g, &mut c);
    (r == 1).then(|| c.user_ip6())
}

fn sockaddr_in(b: &[u8]) -> Ipv4Addr {
    assert_eq!(b.len(), 16);
    assert_eq!(u16::from_ne_bytes([b[0], b[1]]), 2, "AF_INET");
    assert_eq!(&b[2..4], &[0, 0], "port 0");
    assert_eq!(&b[8..], &[0; 8]);
    Ipv4Addr::new(b[4], b[5], b[6], b[7])
}

fn sockaddr_in6(b: &[u8]) -> Ipv6Addr {
    assert_eq!(b.len(), 28);
    assert_eq!(u16::from_ne_bytes([b[0], b[1]]), 10, "AF_INET6");
    assert_eq!(&b[2..8], &[0; 6], "port 0, flowinfo 0");
    assert_eq!(&b[24..], &[0; 4], "scope id 0");
    Ipv6Addr::from(<[u8; 16]>::try_from(&b[8..24]).unwrap())
}

/// connect: (verdict, destination after the program, bpf_bind source).
fn connect4(g: &GuestAddrs, c: &mut Ctx) -> (u64, Ipv4Addr, Option<Ipv4Addr>) {
    let (r, binds) = run(Hook::Connect4, g, c);
    assert!(binds.len() <= 1);
    (r, c.user_ip4(), binds.first().map(|b| sockaddr_in(b)))
}

fn connect6(g: &GuestAddrs, c: &mut Ctx) -> (u64, Ipv6Addr, Option<Ipv6Addr>) {
    let (r, binds) = run(Hook::Connect6, g, c);
    assert!(binds.len() <= 1);
    (r, c.user_ip6(), binds.first().map(|b| sockaddr_in6(b)))
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn bind4_rules() {
    let g = guest();
    assert_eq!(bind4(&g, [10, 1, 0, 2]), Some(ip4("10.1.0.2")));
    assert_eq!(bind4(&g, [10, 1, 0, 3]), None);
    assert_eq!(bind4(&g, [192, 168, 1, 200]), None, "high bit in the word");
    assert_eq!(bind4(&g, [0, 0, 0, 0]), Some(ip4("10.1.0.1")));
    assert_eq!(bind4(&g, [127, 0, 0, 1]), Some(ip4("127.0.42.1")));
    assert_eq!(bind4(&g, [127, 0, 42, 1]), Some(ip4("127.0.42.1")));
    assert_eq!(bind4(&g, [127, 0, 0, 2]), None);
    // No IPv4: like a host without it, apart from the loopback address.
    let g = v6only();
    assert_eq!(bind4(&g, [0, 0, 0, 0]), None);
    assert_eq!(bind4(&g, [10, 1, 0, 1]), None);
    assert_eq!(bind4(&g, [127, 0, 0, 1]), Some(ip4("127.0.42.1")));
}

#[test]
fn bind4_unspec_family_is_rewritten_too() {
    // The kernel binds AF_UNSPEC + INADDR_ANY like AF_INET.
    let mut c = Ctx::new(0);
    let (r, _) = run(Hook::Bind4, &guest(), &mut c);
    assert_eq!((r, c.user_ip4()), (1, ip4("10.1.0.1")));
}

#[test]
fn bind6_rules() {
    let g = guest();
    assert_eq!(bind6(&g, "fd00:1::2"), Some(ip6("fd00:1::2")));
    assert_eq!(bind6(&g, "fd00:1::3"), None);
    assert_eq!(bind6(&g, "fd00:2::1"), None);
    assert_eq!(bind6(&g, "::"), Some(ip6("fd00:1::1")));
    assert_eq!(bind6(&g, "::1"), Some(ip6("fd00:1::42")));
    assert_eq!(bind6(&g, "fd00:1::42"), Some(ip6("fd00:1::42")));
    assert_eq!(bind6(&g, "::2"), None);
    assert_eq!(bind6(&g, "fe80::1"), None);
    // IPv4-mapped: the IPv4 rules.
    assert_eq!(bind6(&g, "::ffff:10.1.0.2"), Some(ip6("::ffff:10.1.0.2")));
    assert_eq!(bind6(&g, "::ffff:10.1.0.9"), None);
    assert_eq!(bind6(&g, "::ffff:0.0.0.0"), Some(ip6("::ffff:10.1.0.1")));
    assert_eq!(
        bind6(&g, "::ffff:127.0.0.1"),
        Some(ip6("::ffff:127.0.42.1"))
    );
    // No IPv6: `::` serves IPv4 on the first address, `::1` is refused.
    let g = v4only();
    assert_eq!(bind6(&g, "::"), Some(ip6("::ffff:10.1.0.1")));
    assert_eq!(bind6(&g, "::1"), None);
    assert_eq!(bind6(&g, "fd00:1::1"), None);
    assert_eq!(bind6(&g, "::ffff:10.1.0.1"), Some(ip6("::ffff:10.1.0.1")));
    // Neither family.
    let g = GuestAddrs {
        v4: vec![],
        ..v4only()
    };
    assert_eq!(bind6(&g, "::"), None);
    assert_eq!(bind6(&g, "::ffff:0.0.0.0"), None);
    // No IPv4: mapped addresses only reach the loopback one.
    let g = v6only();
    assert_eq!(bind6(&g, "::ffff:0.0.0.0"), None);
    assert_eq!(
        bind6(&g, "::ffff:127.0.0.1"),
        Some(ip6("::ffff:127.0.42.1"))
    );
    assert_eq!(bind6(&g, "::"), Some(ip6("fd00:1::1")));
}

#[test]
fn connect4_rewrites_loopback_and_binds_the_source() {
    let g = guest();
    let lb = ip4("127.0.42.1");
    // 127.0.0.1 → the guest's loopback, source the loopback too.
    let (r, dst, src) = connect4(&g, &mut Ctx::v4(Ipv4Addr::LOCALHOST));
    assert_eq!((r, dst, src), (1, lb, Some(lb)));
    // 0.0.0.0 is "this host" for connect: the same.
    let (r, dst, src) = connect4(&g, &mut Ctx::v4(Ipv4Addr::UNSPECIFIED));
    assert_eq!((r, dst, src), (1, lb, Some(lb)));
    // Remote destinations keep their address; the source is v4[0].
    let (r, dst, src) = connect4(&g, &mut Ctx::v4(ip4("192.0.2.7")));
    assert_eq!((r, dst, src), (1, ip4("192.0.2.7"), Some(ip4("10.1.0.1"))));
    // The host's loopback range is reachable, from v4[0].
    let (r, dst, src) = connect4(&g, &mut Ctx::v4(ip4("127.0.0.53")));
    assert_eq!((r, dst, src), (1, ip4("127.0.0.53"), Some(ip4("10.1.0.1"))));
    // Another guest's (default) loopback address: refused.
    let (r, _, src) = connect4(&g, &mut Ctx::v4(crate::default_lback4(7)));
    assert_eq!((r, src), (0, None));
    assert_eq!(connect4(&g, &mut Ctx::v4(ip4("127.200.0.1"))).0, 0);
    // Already bound: no bpf_bind.
    let (r, dst, src) = connect4(&g, &mut Ctx::v4(ip4("192.0.2.7")).bound());
    assert_eq!((r, dst, src), (1, ip4("192.0.2.7"), None));
    let mut c = Ctx::v4(ip4("192.0.2.7"));
    c.put(SK_AT + sock::SRC_IP4 as usize, &[10, 1, 0, 2]);
    assert_eq!(connect4(&g, &mut c).2, None, "address bound, port not");
    // bpf_bind failing refuses the connect.
    BIND_RET.with(|r| r.set(-99i64 as u64));
    let (r, _, src) = connect4(&g, &mut Ctx::v4(ip4("192.0.2.7")));
    BIND_RET.with(|r| r.set(0));
    assert_eq!((r, src), (0, Some(ip4("10.1.0.1"))));
    // No IPv4 address: only loopback destinations, from lback4.
    let g = v6only();
    assert_eq!(connect4(&g, &mut Ctx::v4(ip4("192.0.2.7"))).0, 0);
    let (r, dst, src) = connect4(&g, &mut Ctx::v4(Ipv4Addr::LOCALHOST));
    assert_eq!((r, dst, src), (1, lb, Some(lb)));
    let (r, dst, src) = connect4(&g, &mut Ctx::v4(ip4("127.0.0.53")));
    assert_eq!((r, dst, src), (1, ip4("127.0.0.53"), Some(lb)));
    assert_eq!(connect4(&g, &mut Ctx::v4(ip4("127.9.0.1"))).0, 0);
}

#[test]
fn connect4_for_a_guest_inside_127_8() {
    // Guests on loopback-range addresses (as tests use them): the brief's
    // scenario: v4 127.0.1.1, lback 127.0.42.1, a host server on 127.0.1.2.
    let g = GuestAddrs {
        v4: vec![ip4("127.0.1.1"), ip4("127.9.9.9")],
        lback4: ip4("127.0.42.1"),
        ..v4only()
    };
    assert_eq!(bind4(&g, [0, 0, 0, 0]), Some(ip4("127.0.1.1")));
    assert_eq!(bind4(&g, [127, 0, 1, 2]), None);
    assert_eq!(bind4(&g, [127, 0, 0, 1]), Some(ip4("127.0.42.1")));
    let (r, dst, src) = connect4(&g, &mut Ctx::v4(ip4("127.0.1.2")));
    assert_eq!((r, dst, src), (1, ip4("127.0.1.2"), Some(ip4("127.0.1.1"))));
    // Its own address outside 127.0.0.0/16 is reachable too.
    let (r, _, src) = connect4(&g, &mut Ctx::v4(ip4("127.9.9.9")));
    assert_eq!((r, src), (1, Some(ip4("127.0.1.1"))));
    let (r, dst, src) = connect4(&g, &mut Ctx::v4(Ipv4Addr::LOCALHOST));
    assert_eq!(
        (r, dst, src),
        (1, ip4("127.0.42.1"), Some(ip4("127.0.42.1")))
    );
}

#[test]
fn connect6_rules() {
    let g = guest();
    let lb6 = ip6("fd00:1::42");
    let (r, dst, src) = connect6(&g, &mut Ctx::v6(Ipv6Addr::LOCALHOST));
    assert_eq!((r, dst, src), (1, lb6, Some(lb6)));
    let (r, dst, src) = connect6(&g, &mut Ctx::v6(Ipv6Addr::UNSPECIFIED));
    assert_eq!((r, dst, src), (1, lb6, Some(lb6)));
    let (r, dst, src) = connect6(&g, &mut Ctx::v6(lb6));
    assert_eq!((r, dst, src), (1, lb6, Some(lb6)));
    let (r, dst, src) = connect6(&g, &mut Ctx::v6(ip6("2001:db8::7")));
    assert_eq!(
        (r, dst, src),
        (1, ip6("2001:db8::7"), Some(ip6("fd00:1::1")))
    );
    // Mapped destinations: the IPv4 rules with mapped sources.
    let (r, dst, src) = connect6(&g, &mut Ctx::v6(ip6("::ffff:127.0.0.1")));
    let mlb = ip6("::ffff:127.0.42.1");
    assert_eq!((r, dst, src), (1, mlb, Some(mlb)));
    let (r, dst, src) = connect6(&g, &mut Ctx::v6(ip6("::ffff:192.0.2.7")));
    assert_eq!(
        (r, dst, src),
        (1, ip6("::ffff:192.0.2.7"), Some(ip6("::ffff:10.1.0.1")))
    );
    assert_eq!(
        connect6(&g, &mut Ctx::v6(ip6("::ffff:127.0.0.53"))).2,
        Some(ip6("::ffff:10.1.0.1"))
    );
    assert_eq!(connect6(&g, &mut Ctx::v6(ip6("::ffff:127.7.0.1"))).0, 0);
    // Bound already (port, or address only): no bpf_bind.
    assert_eq!(
        connect6(&g, &mut Ctx::v6(ip6("2001:db8::7")).bound()).2,
        None
    );
    let mut c = Ctx::v6(ip6("2001:db8::7"));
    c.put(SK_AT + sock::SRC_IP6 as usize + 12, &[0, 0, 0, 2]);
    assert_eq!(connect6(&g, &mut c).2, None);
    // No IPv6 and no lback6: only mapped destinations.
    let g = v4only();
    assert_eq!(connect6(&g, &mut Ctx::v6(ip6("2001:db8::7"))).0, 0);
    assert_eq!(connect6(&g, &mut Ctx::v6(Ipv6Addr::LOCALHOST)).0, 0);
    let (r, _, src) = connect6(&g, &mut Ctx::v6(ip6("::ffff:192.0.2.7")));
    assert_eq!((r, src), (1, Some(ip6("::ffff:10.1.0.1"))));
    // No IPv4: mapped remote destinations refused, mapped loopback works.
    let g = v6only();
    assert_eq!(connect6(&g, &mut Ctx::v6(ip6("::ffff:192.0.2.7"))).0, 0);
    let (r, dst, src) = connect6(&g, &mut Ctx::v6(ip6("::ffff:127.0.0.1")));
    assert_eq!((r, dst, src), (1, mlb, Some(mlb)));
}

fn sendmsg4(g: &GuestAddrs, c: &mut Ctx) -> (u64, Ipv4Addr, Ipv4Addr) {
    let (r, binds) = run(Hook::Sendmsg4, g, c);
    assert!(binds.is_empty());
    (r, c.user_ip4(), c.msg_src4())
}

fn sendmsg6(g: &GuestAddrs, c: &mut Ctx) -> (u64, Ipv6Addr, Ipv6Addr) {
    let (r, binds) = run(Hook::Sendmsg6, g, c);
    assert!(binds.is_empty());
    (r, c.user_ip6(), c.msg_src6())
}

#[test]
fn sendmsg4_rewrites_the_source() {
    let g = guest();
    let any = Ipv4Addr::UNSPECIFIED;
    let remote = ip4("192.0.2.7");
    let lb = ip4("127.0.42.1");
    assert_eq!(
        sendmsg4(&g, &mut Ctx::v4(remote).with_src4(any)),
        (1, remote, ip4("10.1.0.1"))
    );
    assert_eq!(
        sendmsg4(&g, &mut Ctx::v4(remote).with_src4(ip4("10.1.0.2"))),
        (1, remote, ip4("10.1.0.2")),
        "a guest source is kept"
    );
    assert_eq!(
        sendmsg4(&g, &mut Ctx::v4(remote).with_src4(ip4("10.9.9.9"))),
        (1, remote, ip4("10.1.0.1")),
        "a foreign source (IP_PKTINFO) is replaced"
    );
    assert_eq!(
        sendmsg4(&g, &mut Ctx::v4(Ipv4Addr::LOCALHOST).with_src4(any)),
        (1, lb, lb)
    );
    assert_eq!(
        sendmsg4(&g, &mut Ctx::v4(ip4("127.0.0.53"))),
        (1, ip4("127.0.0.53"), ip4("10.1.0.1"))
    );
    assert_eq!(sendmsg4(&g, &mut Ctx::v4(ip4("127.3.0.1"))).0, 0);
    // A connected socket with control messages: no destination.
    let mut c = Ctx::new(0).with_src4(ip4("10.9.9.9"));
    assert_eq!(sendmsg4(&g, &mut c).2, ip4("10.1.0.1"));
    // No IPv4.
    let g = v6only();
    assert_eq!(sendmsg4(&g, &mut Ctx::v4(remote)).0, 0);
    assert_eq!(sendmsg4(&g, &mut Ctx::v4(Ipv4Addr::LOCALHOST)), (1, lb, lb));
}

#[test]
fn sendmsg6_rewrites_the_source() {
    let g = guest();
    let remote = ip6("2001:db8::7");
    let lb6 = ip6("fd00:1::42");
    assert_eq!(
        sendmsg6(&g, &mut Ctx::v6(remote)),
        (1, remote, ip6("fd00:1::1"))
    );
    assert_eq!(
        sendmsg6(&g, &mut Ctx::v6(remote).with_src6(ip6("fd00:1::2"))),
        (1, remote, ip6("fd00:1::2"))
    );
    assert_eq!(
        sendmsg6(&g, &mut Ctx::v6(remote).with_src6(ip6("fd00:9::9"))),
        (1, remote, ip6("fd00:1::1"))
    );
    assert_eq!(
        sendmsg6(&g, &mut Ctx::v6(Ipv6Addr::LOCALHOST)),
        (1, lb6, lb6)
    );
    let m = ip6("::ffff:192.0.2.7");
    assert_eq!(
        sendmsg6(&g, &mut Ctx::v6(m)),
        (1, m, ip6("::ffff:10.1.0.1"))
    );
    assert_eq!(
        sendmsg6(&g, &mut Ctx::v6(m).with_src6(ip6("::ffff:10.1.0.2"))),
        (1, m, ip6("::ffff:10.1.0.2"))
    );
    let mlb = ip6("::ffff:127.0.42.1");
    assert_eq!(
        sendmsg6(&g, &mut Ctx::v6(ip6("::ffff:127.0.0.1"))),
        (1, mlb, mlb)
    );
    let mut c = Ctx::new(0);
    assert_eq!(sendmsg6(&g, &mut c).2, ip6("fd00:1::1"));
    // No IPv6.
    let g = v4only();
    assert_eq!(sendmsg6(&g, &mut Ctx::v6(remote)).0, 0);
    assert_eq!(sendmsg6(&g, &mut Ctx::v6(Ipv6Addr::LOCALHOST)).0, 0);
    assert_eq!(
        sendmsg6(&g, &mut Ctx::v6(m)),
        (1, m, ip6("::ffff:10.1.0.1"))
    );
}

#[test]
fn unix_refuses_abstract_names_only() {
    for hook in [Hook::UnixConnect, Hook::UnixSendmsg] {
        let g = guest();
        assert_eq!(run(hook, &g, &mut Ctx::unix(b"\0some-daemon")).0, 0);
        assert_eq!(run(hook, &g, &mut Ctx::unix(b"/run/some.sock")).0, 1);
        assert_eq!(run(hook, &g, &mut Ctx::unix(b"relative.sock")).0, 1);
    }
}

#[test]
fn no_limit_of_sixteen_addresses() {
    let v4: Vec<Ipv4Addr> = (0..100u32)
        .map(|i| Ipv4Addr::from(0x0a02_0000 + i))
        .collect();
    let v6: Vec<Ipv6Addr> = (0..100u128)
        .map(|i| Ipv6Addr::from(0xfd00_0002_0000_0000_0000_0000_0000_0000u128 + i))
        .collect();
    let g = GuestAddrs {
        v4: v4.clone(),
        v6: v6.clone(),
        ..guest()
    };
    for (i, a) in v4.iter().enumerate() {
        assert_eq!(bind4(&g, a.octets()), Some(*a), "address {i}");
    }
    assert_eq!(bind4(&g, [10, 2, 0, 100]), None);
    for (i, a) in v6.iter().enumerate() {
        assert_eq!(bind6(&g, &a.to_string()), Some(*a), "address {i}");
    }
    assert_eq!(bind6(&g, "fd00:2::64"), None);
    let last = v4[99];
    assert_eq!(
        sendmsg4(&g, &mut Ctx::v4(ip4("192.0.2.1")).with_src4(last)).2,
        last
    );
    let last6 = v6[99];
    assert_eq!(
        sendmsg6(&g, &mut Ctx::v6(ip6("2001:db8::1")).with_src6(last6)).2,
        last6
    );
}

#[test]
fn thousands_of_addresses_and_only_short_jumps() {
    // (rbpf computes jump targets in 16 bits, so it runs programs of up to
    // 32767 instructions: the sizes here stay below that.)
    let v4: Vec<Ipv4Addr> = (0..5_000u32)
        .map(|i| Ipv4Addr::from(0x0a10_0000 + i))
        .collect();
    let v6: Vec<Ipv6Addr> = (0..1_500u128)
        .map(|i| Ipv6Addr::from(0xfd00_0003_0000_0000_0000_0000_0000_0000u128 + i))
        .collect();
    let g = GuestAddrs {
        v4: v4.clone(),
        v6: v6.clone(),
        ..guest()
    };
    let p4 = build(Hook::Bind4, &g, &LAYOUT).unwrap();
    let g6 = GuestAddrs {
        v4: v4[..1000].to_vec(),
        ..g.clone()
    };
    let p6 = build(Hook::Bind6, &g6, &LAYOUT).unwrap();
    for a in [v4[0], v4[2_500], v4[4_999]] {
        assert_eq!(run_prog(&p4, &mut Ctx::v4(a)).0, 1, "{a}");
    }
    assert_eq!(run_prog(&p4, &mut Ctx::v4(ip4("10.99.0.0"))).0, 0);
    for a in [v6[0], v6[750], v6[1_499]] {
        assert_eq!(run_prog(&p6, &mut Ctx::v6(a)).0, 1, "{a}");
    }
    assert_eq!(run_prog(&p6, &mut Ctx::v6(ip6("fd00:3::ffff:1"))).0, 0);
    // No jump spans an address list, so no list length can overflow a
    // jump offset.
    for hook in Hook::ALL {
        let p = build(hook, &g, &LAYOUT).unwrap();
        let longest = p
            .iter()
            .filter(|i| matches!(i.code & 7, 5 | 6) && !matches!(i.code & 0xf0, 0x80 | 0x90))
            .map(|i| i.off.unsigned_abs())
            .max()
            .unwrap();
        assert!(longest < 64, "{hook:?}: a jump of {longest}");
    }
}

#[test]
fn every_program_passes_the_cfg_check_in_every_shape() {
    let shapes = [
        guest(),
        v4only(),
        v6only(),
        GuestAddrs {
            v4: vec![],
            ..v4only()
        },
        GuestAddrs {
            lback6: None,
            ..guest()
        },
        GuestAddrs {
            v6: vec![],
            ..guest()
        },
    ];
    for g in &shapes {
        for hook in Hook::ALL {
            let p = build(hook, g, &LAYOUT).unwrap();
            check_cfg(&p);
        }
    }
}

#[test]
fn chbind_style_lback_of_127_0_0_1_is_the_identity() {
    let g = GuestAddrs {
        lback4: Ipv4Addr::LOCALHOST,
        ..v4only()
    };
    assert_eq!(bind4(&g, [127, 0, 0, 1]), Some(Ipv4Addr::LOCALHOST));
    let (r, dst, src) = connect4(&g, &mut Ctx::v4(Ipv4Addr::LOCALHOST));
    assert_eq!(
        (r, dst, src),
        (1, Ipv4Addr::LOCALHOST, Some(Ipv4Addr::LOCALHOST))
    );
}

#[test]
fn attach_types_match_the_running_kernel() {
    let btf = super::btf::Btf::vmlinux().unwrap();
    for hook in Hook::ALL {
        assert_eq!(
            btf.enum_value("bpf_attach_type", hook.attach_type_name())
                .unwrap(),
            i64::from(hook.attach_type()),
            "{hook:?}"
        );
    }
    assert_eq!(
        btf.enum_value("bpf_func_id", "BPF_FUNC_bind").unwrap(),
        i64::from(BPF_FUNC_BIND)
    );
    // The layout the unix programs read, and the one this file mocks.
    let l = UnixLayout::from_btf(&btf).unwrap();
    assert_eq!(
        (l.uaddr_off, l.uaddrlen_off),
        (LAYOUT.uaddr_off, LAYOUT.uaddrlen_off)
    );
}

#[test]
fn the_unix_layout_is_cached_for_one_boot() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("layout");
    let real = UnixLayout::running_kernel().unwrap();
    assert_eq!(UnixLayout::running_kernel_cached(&cache).unwrap(), real);
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let boot = boot.trim();
    let text = std::fs::read_to_string(&cache).unwrap();
    assert_eq!(
        text,
        format!(
            "{boot} {} {} {}\n",
            real.cast_to_kern_ctx, real.uaddr_off, real.uaddrlen_off
        )
    );
    // This boot's file is what the next call gives (no BTF parse).
    std::fs::write(&cache, format!("{boot} 7 16 40\n")).unwrap();
    let cached = UnixLayout::running_kernel_cached(&cache).unwrap();
    assert_eq!(
        (
            cached.cast_to_kern_ctx,
            cached.uaddr_off,
            cached.uaddrlen_off
        ),
        (7, 16, 40)
    );
    // Another boot's file, a mangled one, or absurd offsets: parsed anew.
    for stale in [
        "00000000-0000-0000-0000-000000000000 7 16 40\n".to_owned(),
        format!("{boot} 7 16\n"),
        format!("{boot} 7 16 40 1\n"),
        format!("{boot} 7 -8 40\n"),
        format!("{boot} 7 16 4096\n"),
    ] {
        std::fs::write(&cache, &stale).unwrap();
        assert_eq!(
            UnixLayout::running_kernel_cached(&cache).unwrap(),
            real,
            "{stale}"
        );
    }
}
