//! The cgroup `sock_addr` programs of a shared-mode guest.
//!
//! One program per hook, built for one guest: its addresses are compiled
//! into the instructions (a chain of compares, no map), so a guest can have
//! any number of them, up to what the kernel's verifier takes (one million
//! instructions: tens of thousands of addresses; 5,000 IPv4 plus 2,000 IPv6
//! load in about a second). Every program gets the context (`struct
//! bpf_sock_addr`, fields in network byte order) in r1 and returns 1 to let
//! the call go on (possibly with the address rewritten) or 0 to make it fail
//! with EPERM.
//!
//! What each hook does:
//!
//! * **bind4**: `0.0.0.0` → `v4[0]` (no IPv4 address: EPERM, as a host
//!   without IPv4 would refuse it too); `127.0.0.1` → `lback4`; the guest's
//!   addresses and `lback4` pass; everything else is EPERM. Ports are left
//!   to the kernel's own rules. `AF_UNSPEC` binds (which the kernel treats
//!   as `INADDR_ANY`) get the same rewrite.
//! * **bind6**: `::` → `v6[0]`; with no IPv6 address but some IPv4 one,
//!   `::` → `::ffff:v4[0]` (the socket then serves IPv4 on the guest's
//!   first address, which is what a dual-stack `::` socket does on a host
//!   without IPv6 addresses); with neither, EPERM. `::1` → `lback6`, EPERM
//!   without one. IPv4-mapped addresses follow the bind4 rules on their
//!   IPv4 part. Else only the guest's IPv6 addresses and `lback6` pass.
//!   A `::` socket so becomes single-address: it no longer receives IPv4
//!   when the guest has IPv6 (bind a second, IPv4 socket for that).
//! * **connect4**: `127.0.0.1` and `0.0.0.0` (which Linux connects to the
//!   local host) → `lback4`. Then, unless the socket already has an address
//!   or port, the source is bound with `bpf_bind()`: `lback4` for a
//!   destination of `lback4`, else `v4[0]`. Other loopback destinations
//!   pass when they are in 127.0.0.0/16 (the host's: 127.0.0.53, 127.0.1.1
//!   …) or the guest's own; the rest of 127.0.0.0/8 holds other guests'
//!   default loopback addresses ([`crate::default_lback4`]) and is refused,
//!   so a guest cannot reach another's "localhost" services (an `lback`
//!   configured inside 127.0.0.0/16 has no such protection). With no IPv4
//!   address, loopback destinations get the source `lback4` and all others
//!   are refused. A failing `bpf_bind()` refuses the connect rather than
//!   let the kernel pick a host address.
//! * **connect6**: `::1` and `::` (Linux's "local host") → `lback6` (none:
//!   EPERM); IPv4-mapped destinations follow connect4 with mapped sources;
//!   the source is `lback6` for `lback6`, else `v6[0]` (none: EPERM).
//! * **sendmsg4/6** (UDP `sendto`/`sendmsg` with an address): the same
//!   destination rewrites and refusals as connect; the source
//!   (`msg_src_ip*`, the bound address or `IP_PKTINFO`'s) is kept when it is
//!   the guest's, else chosen as connect chooses it.
//! * **unix connect / sendmsg** (Linux ≥ 6.7): abstract names (`sun_path[0]
//!   == 0`) are refused, filesystem paths pass (the guest's mount namespace
//!   already decides which paths it sees). `struct bpf_sock_addr` exposes no
//!   field for a unix address, so the program reaches the kernel's copy of it
//!   through `bpf_cast_to_kern_ctx()` (a kfunc, Linux ≥ 6.2) and reads
//!   `struct bpf_sock_addr_kern`'s `uaddr` and `uaddrlen`, the way the
//!   kernel's selftest `progs/connect_unix_prog.c` does; the kfunc's BTF id
//!   and the member offsets come from the running kernel's BTF
//!   ([`UnixLayout::running_kernel`]).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::asm::{
    Alu, Asm, AsmError, Cond, Insn, Label, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, Reg, Size,
};
use super::btf::{self, Btf};
use crate::{Error, GuestAddrs};

/// Offsets in `struct bpf_sock_addr` (include/uapi/linux/bpf.h).
pub mod ctx {
    /// `user_family`
    pub const USER_FAMILY: i16 = 0;
    /// `user_ip4` (network order)
    pub const USER_IP4: i16 = 4;
    /// `user_ip6[4]` (network order)
    pub const USER_IP6: i16 = 8;
    /// `user_port` (network order, low 16 bits)
    pub const USER_PORT: i16 = 24;
    /// `family`
    pub const FAMILY: i16 = 28;
    /// `type`
    pub const TYPE: i16 = 32;
    /// `protocol`
    pub const PROTOCOL: i16 = 36;
    /// `msg_src_ip4` (UDP4_SENDMSG only)
    pub const MSG_SRC_IP4: i16 = 40;
    /// `msg_src_ip6[4]` (UDP6_SENDMSG only)
    pub const MSG_SRC_IP6: i16 = 44;
    /// `sk` (`struct bpf_sock *`, 8 bytes)
    pub const SK: i16 = 64;
    /// `sizeof(struct bpf_sock_addr)`
    pub const SIZE: usize = 72;
}

/// Offsets in `struct bpf_sock`.
pub mod sock {
    /// `src_ip4`: the bound address (network order)
    pub const SRC_IP4: i16 = 24;
    /// `src_ip6[4]`
    pub const SRC_IP6: i16 = 28;
    /// `src_port`: the bound port (host order)
    pub const SRC_PORT: i16 = 44;
}

/// `BPF_FUNC_bind`.
pub const BPF_FUNC_BIND: i32 = 64;
const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
/// `offsetof(struct sockaddr_un, sun_path)`.
const SUN_PATH: i16 = 2;

/// A cgroup `sock_addr` hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `BPF_CGROUP_INET4_BIND`
    Bind4,
    /// `BPF_CGROUP_INET6_BIND`
    Bind6,
    /// `BPF_CGROUP_INET4_CONNECT`
    Connect4,
    /// `BPF_CGROUP_INET6_CONNECT`
    Connect6,
    /// `BPF_CGROUP_UDP4_SENDMSG`
    Sendmsg4,
    /// `BPF_CGROUP_UDP6_SENDMSG`
    Sendmsg6,
    /// `BPF_CGROUP_UNIX_CONNECT` (Linux ≥ 6.7)
    UnixConnect,
    /// `BPF_CGROUP_UNIX_SENDMSG` (Linux ≥ 6.7)
    UnixSendmsg,
}

impl Hook {
    /// Every hook a shared-mode guest gets.
    pub const ALL: [Hook; 8] = [
        Hook::Bind4,
        Hook::Bind6,
        Hook::Connect4,
        Hook::Connect6,
        Hook::Sendmsg4,
        Hook::Sendmsg6,
        Hook::UnixConnect,
        Hook::UnixSendmsg,
    ];

    /// Its `enum bpf_attach_type` value.
    pub fn attach_type(self) -> u32 {
        match self {
            Hook::Bind4 => 8,
            Hook::Bind6 => 9,
            Hook::Connect4 => 10,
            Hook::Connect6 => 11,
            Hook::Sendmsg4 => 14,
            Hook::Sendmsg6 => 15,
            Hook::UnixConnect => 49,
            Hook::UnixSendmsg => 50,
        }
    }

    /// Its `enum bpf_attach_type` name.
    pub fn attach_type_name(self) -> &'static str {
        match self {
            Hook::Bind4 => "BPF_CGROUP_INET4_BIND",
            Hook::Bind6 => "BPF_CGROUP_INET6_BIND",
            Hook::Connect4 => "BPF_CGROUP_INET4_CONNECT",
            Hook::Connect6 => "BPF_CGROUP_INET6_CONNECT",
            Hook::Sendmsg4 => "BPF_CGROUP_UDP4_SENDMSG",
            Hook::Sendmsg6 => "BPF_CGROUP_UDP6_SENDMSG",
            Hook::UnixConnect => "BPF_CGROUP_UNIX_CONNECT",
            Hook::UnixSendmsg => "BPF_CGROUP_UNIX_SENDMSG",
        }
    }

    /// A short name, also the program's name in the kernel (`vs_` prefixed).
    pub fn name(self) -> &'static str {
        match self {
            Hook::Bind4 => "bind4",
            Hook::Bind6 => "bind6",
            Hook::Connect4 => "connect4",
            Hook::Connect6 => "connect6",
            Hook::Sendmsg4 => "sendmsg4",
            Hook::Sendmsg6 => "sendmsg6",
            Hook::UnixConnect => "unix_connect",
            Hook::UnixSendmsg => "unix_sendmsg",
        }
    }
}

/// Where a unix `sock_addr` program finds the address: the kfunc that turns
/// the context into `struct bpf_sock_addr_kern *` and two member offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnixLayout {
    /// BTF id of `bpf_cast_to_kern_ctx` in vmlinux.
    pub cast_to_kern_ctx: u32,
    /// Offset of `uaddr` (`struct sockaddr *`) in `bpf_sock_addr_kern`.
    pub uaddr_off: i16,
    /// Offset of `uaddrlen` (u32) in `bpf_sock_addr_kern`.
    pub uaddrlen_off: i16,
}

impl UnixLayout {
    /// Looks the layout up in `btf`.
    pub fn from_btf(btf: &Btf) -> Result<UnixLayout, Error> {
        let off = |m| -> Result<i16, Error> {
            let o = btf.member_offset("bpf_sock_addr_kern", m)?;
            i16::try_from(o).map_err(|_| Error::Btf {
                path: btf::VMLINUX.into(),
                reason: format!("bpf_sock_addr_kern.{m} at offset {o}"),
            })
        };
        Ok(UnixLayout {
            cast_to_kern_ctx: btf.func_id("bpf_cast_to_kern_ctx")?,
            uaddr_off: off("uaddr")?,
            uaddrlen_off: off("uaddrlen")?,
        })
    }

    /// Looks the layout up in the running kernel's BTF.
    pub fn running_kernel() -> Result<UnixLayout, Error> {
        UnixLayout::from_btf(&Btf::vmlinux()?)
    }

    /// [`UnixLayout::running_kernel`], remembered in the file `cache` for
    /// this boot: parsing vmlinux's BTF (several MiB) takes about 18 ms,
    /// most of a shared-mode guest's network set-up. The file holds the
    /// boot id (`/proc/sys/kernel/random/boot_id`, new with every boot and
    /// so with every kernel) and the three numbers; a file of another boot,
    /// or one that does not parse, is written anew. Its directory must be
    /// one only root may write (the offsets go into programs the kernel
    /// runs for every guest socket).
    pub fn running_kernel_cached(cache: &std::path::Path) -> Result<UnixLayout, Error> {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|b| b.trim().to_owned())
            .ok();
        if let (Some(boot), Ok(text)) = (&boot, std::fs::read_to_string(cache))
            && let Some(l) = UnixLayout::parse_cache(&text, boot)
        {
            return Ok(l);
        }
        let l = UnixLayout::running_kernel()?;
        if let Some(boot) = boot {
            // Best effort: without the file the next start parses again.
            let tmp = cache.with_extension("tmp");
            let text = format!(
                "{boot} {} {} {}\n",
                l.cast_to_kern_ctx, l.uaddr_off, l.uaddrlen_off
            );
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, cache);
            }
        }
        Ok(l)
    }

    /// The layout in a cache file's `text` if it was written in boot `boot`.
    fn parse_cache(text: &str, boot: &str) -> Option<UnixLayout> {
        let mut w = text.split_whitespace();
        if w.next()? != boot {
            return None;
        }
        let l = UnixLayout {
            cast_to_kern_ctx: w.next()?.parse().ok()?,
            uaddr_off: w.next()?.parse().ok()?,
            uaddrlen_off: w.next()?.parse().ok()?,
        };
        // Offsets inside a small kernel struct, nothing else.
        let sane = |o: i16| (0..256).contains(&o) && o % 4 == 0;
        (w.next().is_none() && sane(l.uaddr_off) && sane(l.uaddrlen_off)).then_some(l)
    }
}

/// Builds the program for `hook` (`unix` is only read by the unix hooks).
pub fn build(hook: Hook, g: &GuestAddrs, unix: &UnixLayout) -> Result<Vec<Insn>, Error> {
    g.validate()?;
    let p = match hook {
        Hook::Bind4 => bind4(g),
        Hook::Bind6 => bind6(g),
        Hook::Connect4 => connect4(g),
        Hook::Connect6 => connect6(g),
        Hook::Sendmsg4 => sendmsg4(g),
        Hook::Sendmsg6 => sendmsg6(g),
        Hook::UnixConnect | Hook::UnixSendmsg => unix_refuse_abstract(unix),
    };
    p.map_err(|source| Error::Asm {
        prog: hook.name(),
        source,
    })
}

// ---------------------------------------------------------------------------
// Constants as the program sees them: a 32-bit load of network-order bytes
// on this (the kernel's) byte order.

fn w4(a: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(a.octets())
}

fn w6(a: Ipv6Addr) -> [u32; 4] {
    let o = a.octets();
    std::array::from_fn(|i| {
        u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
    })
}

fn mapped(v4: Ipv4Addr) -> [u32; 4] {
    w6(v4.to_ipv6_mapped())
}

/// The first octet's mask and 127 in it (127.0.0.0/8).
fn mask8() -> u32 {
    u32::from_ne_bytes([0xff, 0, 0, 0])
}
fn net127() -> u32 {
    u32::from_ne_bytes([127, 0, 0, 0])
}
/// The first two octets' mask (127.0.0.0/16 is 127.0 under it).
fn mask16() -> u32 {
    u32::from_ne_bytes([0xff, 0xff, 0, 0])
}
/// Word 2 of `::ffff:a.b.c.d`.
fn mapped_w2() -> u32 {
    u32::from_ne_bytes([0, 0, 0xff, 0xff])
}
/// Word 3 of `::1`.
fn one_w3() -> u32 {
    u32::from_ne_bytes([0, 0, 0, 1])
}

fn dedup<T: PartialEq + Copy>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// The guest's IPv4 addresses and its loopback address.
fn own4(g: &GuestAddrs) -> Vec<u32> {
    dedup(g.v4.iter().copied().chain([g.lback4]).map(w4))
}

/// The guest's own addresses inside 127.0.0.0/8.
fn own_loop4(g: &GuestAddrs) -> Vec<u32> {
    dedup(g.v4.iter().copied().filter(Ipv4Addr::is_loopback).map(w4))
}

fn own6(g: &GuestAddrs) -> Vec<[u32; 4]> {
    dedup(g.v6.iter().copied().chain(g.lback6).map(w6))
}

// ---------------------------------------------------------------------------
// Building blocks. r6 holds the context throughout.
//
// Address lists are scanned up front into 0/1 flags, in the fall-through
// path, with jumps of one instruction only; the decisions after them are
// short. So no jump ever spans a list (eBPF jump offsets are 16 bits) and
// a guest can have as many addresses as the kernel's instruction limit
// (one million) allows. A scan compares by `(word ^ addr) == 0` in a
// scratch register: the verifier never learns the scanned word's value,
// and keeps two states (flag 0 or 1) per instruction however long the list
// is, instead of one per address.

/// `flag = (u32)reg in set`; clobbers r0.
fn flag4(a: &mut Asm, reg: Reg, set: &[u32], flag: Reg) {
    a.mov64_imm(flag, 0);
    for &w in set {
        let next = a.label();
        a.alu32_reg(Alu::Mov, R0, reg);
        a.alu32_imm(Alu::Xor, R0, w as i32);
        a.jmp32_imm(Cond::Ne, R0, 0, next);
        a.mov64_imm(flag, 1);
        a.bind(next);
    }
}

/// `flag = regs in set` for IPv6 addresses; clobbers r0, r1.
fn flag6(a: &mut Asm, regs: [Reg; 4], set: &[[u32; 4]], flag: Reg) {
    a.mov64_imm(flag, 0);
    for addr in set {
        let next = a.label();
        for (i, (&r, &w)) in regs.iter().zip(addr).enumerate() {
            let dst = if i == 0 { R0 } else { R1 };
            a.alu32_reg(Alu::Mov, dst, r);
            a.alu32_imm(Alu::Xor, dst, w as i32);
            if i > 0 {
                a.alu32_reg(Alu::Or, R0, R1);
            }
        }
        a.jmp32_imm(Cond::Ne, R0, 0, next);
        a.mov64_imm(flag, 1);
        a.bind(next);
    }
}

/// `*(u32 *)(ctx + off) = w` (through r1: the verifier refuses immediate
/// stores into the context).
fn store_w(a: &mut Asm, off: i16, w: u32) {
    a.mov32_imm(R1, w);
    a.stx(Size::W, R6, off, R1);
}

fn store6(a: &mut Asm, off: i16, w: [u32; 4]) {
    for (i, &x) in w.iter().enumerate() {
        store_w(a, off + 4 * i as i16, x);
    }
}

/// r2..r5 = the IPv6 address at `off` in the context.
fn load6(a: &mut Asm, off: i16) {
    for (i, r) in [R2, R3, R4, R5].into_iter().enumerate() {
        a.ldx(Size::W, r, R6, off + 4 * i as i16);
    }
}

/// Jumps to `not_loop` unless the IPv4 word in `reg` is in 127.0.0.0/8;
/// clobbers r1.
fn unless_loopback(a: &mut Asm, reg: Reg, not_loop: Label) {
    a.alu32_reg(Alu::Mov, R1, reg);
    a.alu32_imm(Alu::And, R1, mask8() as i32);
    a.jmp32_imm(Cond::Ne, R1, net127(), not_loop);
}

/// Branches on the IPv6 address in r2..r5: `mapped` for `::ffff:0:0/96`,
/// `local` for `::` and `::1`; falls through for everything else.
fn classify6(a: &mut Asm, mapped: Label, local: Label) {
    let plain = a.label();
    a.jmp32_imm(Cond::Ne, R2, 0, plain);
    a.jmp32_imm(Cond::Ne, R3, 0, plain);
    a.jmp32_imm(Cond::Eq, R4, mapped_w2(), mapped);
    a.jmp32_imm(Cond::Ne, R4, 0, plain);
    a.jmp32_imm(Cond::Eq, R5, 0, local);
    a.jmp32_imm(Cond::Eq, R5, one_w3(), local);
    a.bind(plain);
}

/// Jumps to `is` when r2..r5 hold `addr`; clobbers r0, r1.
fn if_addr6(a: &mut Asm, addr: [u32; 4], is: Label) {
    let not = a.label();
    for (r, w) in [R2, R3, R4, R5].into_iter().zip(addr) {
        a.jmp32_imm(Cond::Ne, r, w, not);
    }
    a.ja(is);
    a.bind(not);
}

/// The bind rules for the IPv4 word in `reg`, stored back at `off`;
/// `own` holds `reg in own4`. Every path returns.
fn bind4_rules(a: &mut Asm, g: &GuestAddrs, reg: Reg, off: i16, own: Reg) {
    let not_any = a.label();
    a.jmp32_imm(Cond::Ne, reg, 0, not_any);
    match g.v4.first() {
        Some(&first) => {
            store_w(a, off, w4(first));
            a.ret(1);
        }
        None => a.ret(0),
    }
    a.bind(not_any);
    let not_lo = a.label();
    a.jmp32_imm(Cond::Ne, reg, w4(Ipv4Addr::LOCALHOST), not_lo);
    store_w(a, off, w4(g.lback4));
    a.ret(1);
    a.bind(not_lo);
    let ok = a.label();
    a.jmp_imm(Cond::Ne, own, 0, ok);
    a.ret(0);
    a.bind(ok);
    a.ret(1);
}

/// Connect/sendmsg destination rules for the IPv4 word in `reg` (stored
/// back at `off`): rewrites `0.0.0.0` and `127.0.0.1` to `lback4`, then
/// jumps to `lb` for destinations whose source must be `lback4` (the
/// guest's loopback address; with no IPv4 address, every allowed loopback
/// destination), returns 0 for another guest's loopback address, and falls
/// through for the rest (source `v4[0]`). `own_loop` holds `reg in
/// own_loop4`, scanned before. Clobbers r1.
fn dest4_rules(a: &mut Asm, g: &GuestAddrs, reg: Reg, off: i16, own_loop: Reg, lb: Label) {
    let rewrite = a.label();
    let keep = a.label();
    a.jmp32_imm(Cond::Eq, reg, 0, rewrite);
    a.jmp32_imm(Cond::Ne, reg, w4(Ipv4Addr::LOCALHOST), keep);
    a.bind(rewrite);
    a.mov32_imm(reg, w4(g.lback4));
    a.stx(Size::W, R6, off, reg);
    a.bind(keep);
    a.jmp32_imm(Cond::Eq, reg, w4(g.lback4), lb);
    let remote = a.label();
    unless_loopback(a, reg, remote);
    // Another loopback destination: the host's 127.0.0.0/16 or one of the
    // guest's own addresses pass; the rest of 127.0.0.0/8 is where other
    // guests' default loopback addresses live.
    let allowed = if g.v4.is_empty() { lb } else { remote };
    a.alu32_reg(Alu::Mov, R1, reg);
    a.alu32_imm(Alu::And, R1, mask16() as i32);
    a.jmp32_imm(Cond::Eq, R1, net127(), allowed);
    a.jmp_imm(Cond::Ne, own_loop, 0, allowed);
    a.ret(0);
    a.bind(remote);
}

// ---------------------------------------------------------------------------
// The programs.

fn bind4(g: &GuestAddrs) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    a.mov64_reg(R6, R1);
    a.ldx(Size::W, R7, R6, ctx::USER_IP4);
    flag4(&mut a, R7, &own4(g), R8);
    bind4_rules(&mut a, g, R7, ctx::USER_IP4, R8);
    a.finish()
}

fn bind6(g: &GuestAddrs) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    a.mov64_reg(R6, R1);
    load6(&mut a, ctx::USER_IP6);
    flag6(&mut a, [R2, R3, R4, R5], &own6(g), R7);
    flag4(&mut a, R5, &own4(g), R8);
    let is_mapped = a.label();
    let local = a.label();
    classify6(&mut a, is_mapped, local);

    // A plain IPv6 address: the guest's or nothing.
    let ok = a.label();
    a.jmp_imm(Cond::Ne, R7, 0, ok);
    a.ret(0);
    a.bind(ok);
    a.ret(1);

    // `::` or `::1`.
    a.bind(local);
    let lo = a.label();
    a.jmp32_imm(Cond::Eq, R5, one_w3(), lo);
    if let Some(&first) = g.v6.first() {
        store6(&mut a, ctx::USER_IP6, w6(first));
        a.ret(1);
    } else if let Some(&first) = g.v4.first() {
        store6(&mut a, ctx::USER_IP6, mapped(first));
        a.ret(1);
    } else {
        a.ret(0);
    }
    a.bind(lo);
    match g.lback6 {
        Some(l) => {
            store6(&mut a, ctx::USER_IP6, w6(l));
            a.ret(1);
        }
        None => a.ret(0),
    }

    a.bind(is_mapped);
    bind4_rules(&mut a, g, R5, ctx::USER_IP6 + 12, R8);
    a.finish()
}

/// Binds the socket's source with `bpf_bind()` unless it has an address or
/// port already; `fill` writes the `struct sockaddr_in{,6}` at `r10 - len`
/// (already zeroed, family set). Returns 1, or 0 when `bpf_bind()` fails.
fn emit_bpf_bind(a: &mut Asm, v6: bool, fill: impl FnOnce(&mut Asm)) {
    let ok = a.label();
    a.ldx(Size::DW, R1, R6, ctx::SK);
    a.ldx(Size::W, R2, R1, sock::SRC_PORT);
    a.jmp32_imm(Cond::Ne, R2, 0, ok);
    a.ldx(Size::W, R2, R1, sock::SRC_IP4);
    if v6 {
        for i in 0..4 {
            a.ldx(Size::W, R3, R1, sock::SRC_IP6 + 4 * i);
            a.alu32_reg(Alu::Or, R2, R3);
        }
    }
    a.jmp32_imm(Cond::Ne, R2, 0, ok);
    // sockaddr_in is 16 bytes, sockaddr_in6 28 (in a 32-byte slot).
    let (slot, len) = if v6 { (32i16, 28) } else { (16i16, 16) };
    for i in (0..slot).step_by(8) {
        a.st(Size::DW, R10, -slot + i, 0);
    }
    a.st(
        Size::H,
        R10,
        -slot,
        if v6 { AF_INET6 as i32 } else { AF_INET as i32 },
    );
    fill(a);
    a.mov64_reg(R1, R6);
    a.mov64_reg(R2, R10);
    a.alu64_imm(Alu::Add, R2, -(slot as i32));
    a.mov64_imm(R3, len);
    a.call(BPF_FUNC_BIND);
    a.jmp_imm(Cond::Eq, R0, 0, ok);
    a.ret(0);
    a.bind(ok);
    a.ret(1);
}

fn connect4(g: &GuestAddrs) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    a.mov64_reg(R6, R1);
    a.ldx(Size::W, R7, R6, ctx::USER_IP4);
    flag4(&mut a, R7, &own_loop4(g), R9);
    let lo = a.label();
    let bind = a.label();
    dest4_rules(&mut a, g, R7, ctx::USER_IP4, R9, lo);
    match g.v4.first() {
        Some(&first) => {
            a.mov32_imm(R8, w4(first));
            a.ja(bind);
        }
        None => a.ret(0),
    }
    a.bind(lo);
    a.mov32_imm(R8, w4(g.lback4));
    a.bind(bind);
    // sockaddr_in at r10-16: sin_addr at -12.
    emit_bpf_bind(&mut a, false, |a| a.stx(Size::W, R10, -12, R8));
    a.finish()
}

/// Which source an IPv6 socket gets (kept in r7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src6 {
    /// Destination unknown (a connected socket's sendmsg).
    Unknown = 0,
    /// `v6[0]`.
    V6 = 1,
    /// `lback6`.
    Lback6 = 2,
    /// `::ffff:v4[0]`.
    MappedV4 = 3,
    /// `::ffff:lback4`.
    MappedLback4 = 4,
}

impl Src6 {
    fn addr(self, g: &GuestAddrs) -> Option<[u32; 4]> {
        match self {
            Src6::Unknown | Src6::V6 => g.v6.first().map(|&a| w6(a)),
            Src6::Lback6 => g.lback6.map(w6),
            Src6::MappedV4 => g.v4.first().map(|&a| mapped(a)),
            Src6::MappedLback4 => Some(mapped(g.lback4)),
        }
    }
}

/// Classifies the IPv6 destination in r2..r5 (from `off`), rewrites it as
/// connect/sendmsg do, sets r7 to its [`Src6`] and jumps to `done`; paths
/// that refuse return 0. `own_loop` holds `r5 in own_loop4` for mapped
/// destinations. Clobbers r0, r1.
fn dest6_rules(a: &mut Asm, g: &GuestAddrs, off: i16, own_loop: Reg, done: Label) {
    let is_mapped = a.label();
    let local = a.label();
    classify6(a, is_mapped, local);

    // A plain IPv6 destination.
    if let Some(l) = g.lback6 {
        let is_lb = a.label();
        if_addr6(a, w6(l), is_lb);
        if g.v6.is_empty() {
            a.ret(0);
        } else {
            a.mov64_imm(R7, Src6::V6 as i32);
            a.ja(done);
        }
        a.bind(is_lb);
        a.mov64_imm(R7, Src6::Lback6 as i32);
        a.ja(done);
    } else if g.v6.is_empty() {
        a.ret(0);
    } else {
        a.mov64_imm(R7, Src6::V6 as i32);
        a.ja(done);
    }

    // `::` and `::1`: the local host, so the guest's loopback.
    a.bind(local);
    match g.lback6 {
        Some(l) => {
            store6(a, off, w6(l));
            a.mov64_imm(R7, Src6::Lback6 as i32);
            a.ja(done);
        }
        None => a.ret(0),
    }

    // `::ffff:a.b.c.d`: the IPv4 rules.
    a.bind(is_mapped);
    let lo = a.label();
    dest4_rules(a, g, R5, off + 12, own_loop, lo);
    if g.v4.is_empty() {
        a.ret(0);
    } else {
        a.mov64_imm(R7, Src6::MappedV4 as i32);
        a.ja(done);
    }
    a.bind(lo);
    a.mov64_imm(R7, Src6::MappedLback4 as i32);
    a.ja(done);
}

fn connect6(g: &GuestAddrs) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    a.mov64_reg(R6, R1);
    load6(&mut a, ctx::USER_IP6);
    flag4(&mut a, R5, &own_loop4(g), R9);
    let bind = a.label();
    dest6_rules(&mut a, g, ctx::USER_IP6, R9, bind);
    a.bind(bind);
    // sockaddr_in6 at r10-32: sin6_addr at -24.
    emit_bpf_bind(&mut a, true, |a| {
        let fill = a.label();
        for kind in [Src6::V6, Src6::Lback6, Src6::MappedV4, Src6::MappedLback4] {
            let Some(addr) = kind.addr(g) else { continue };
            let next = a.label();
            a.jmp_imm(Cond::Ne, R7, kind as i32, next);
            for (i, &w) in addr.iter().enumerate() {
                if w != 0 {
                    a.st(Size::W, R10, -24 + 4 * i as i16, w as i32);
                }
            }
            a.ja(fill);
            a.bind(next);
        }
        a.ret(0);
        a.bind(fill);
    });
    a.finish()
}

fn sendmsg4(g: &GuestAddrs) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    a.mov64_reg(R6, R1);
    a.ldx(Size::W, R7, R6, ctx::USER_IP4);
    a.ldx(Size::W, R8, R6, ctx::MSG_SRC_IP4);
    flag4(&mut a, R7, &own_loop4(g), R9);
    flag4(&mut a, R8, &own4(g), R5);
    // r4: whether the destination is a loopback one.
    a.mov64_imm(R4, 0);
    let src = a.label();
    let lo = a.label();
    // No address (a connected socket with control messages): no
    // destination to check, only the source.
    a.ldx(Size::W, R1, R6, ctx::USER_FAMILY);
    a.jmp32_imm(Cond::Ne, R1, AF_INET, src);
    dest4_rules(&mut a, g, R7, ctx::USER_IP4, R9, lo);
    a.ja(src);
    a.bind(lo);
    a.mov64_imm(R4, 1);

    a.bind(src);
    let ok = a.label();
    a.jmp_imm(Cond::Ne, R5, 0, ok);
    let remote = a.label();
    a.jmp_imm(Cond::Eq, R4, 0, remote);
    store_w(&mut a, ctx::MSG_SRC_IP4, w4(g.lback4));
    a.ret(1);
    a.bind(remote);
    match g.v4.first() {
        Some(&first) => {
            store_w(&mut a, ctx::MSG_SRC_IP4, w4(first));
            a.ret(1);
        }
        None => a.ret(0),
    }
    a.bind(ok);
    a.ret(1);
    a.finish()
}

fn sendmsg6(g: &GuestAddrs) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    a.mov64_reg(R6, R1);
    // r8: whether the source (msg_src_ip6) is the guest's, IPv6 or mapped.
    load6(&mut a, ctx::MSG_SRC_IP6);
    flag6(&mut a, [R2, R3, R4, R5], &own6(g), R8);
    flag4(&mut a, R5, &own4(g), R9);
    let not_mapped = a.label();
    a.jmp32_imm(Cond::Ne, R2, 0, not_mapped);
    a.jmp32_imm(Cond::Ne, R3, 0, not_mapped);
    a.jmp32_imm(Cond::Ne, R4, mapped_w2(), not_mapped);
    a.alu64_reg(Alu::Or, R8, R9);
    a.bind(not_mapped);

    a.mov64_imm(R7, Src6::Unknown as i32);
    load6(&mut a, ctx::USER_IP6);
    flag4(&mut a, R5, &own_loop4(g), R9);
    let src = a.label();
    a.ldx(Size::W, R1, R6, ctx::USER_FAMILY);
    a.jmp32_imm(Cond::Ne, R1, AF_INET6, src);
    dest6_rules(&mut a, g, ctx::USER_IP6, R9, src);

    a.bind(src);
    let ok = a.label();
    a.jmp_imm(Cond::Ne, R8, 0, ok);
    for kind in [
        Src6::Unknown,
        Src6::V6,
        Src6::Lback6,
        Src6::MappedV4,
        Src6::MappedLback4,
    ] {
        let next = a.label();
        a.jmp_imm(Cond::Ne, R7, kind as i32, next);
        match kind.addr(g) {
            Some(addr) => {
                store6(&mut a, ctx::MSG_SRC_IP6, addr);
                a.ret(1);
            }
            None => a.ret(0),
        }
        a.bind(next);
    }
    a.ret(0);
    a.bind(ok);
    a.ret(1);
    a.finish()
}

fn unix_refuse_abstract(l: &UnixLayout) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    let ok = a.label();
    // r1 is the context: r0 = (struct bpf_sock_addr_kern *)ctx.
    a.call_kfunc(l.cast_to_kern_ctx);
    a.ldx(Size::W, R2, R0, l.uaddrlen_off);
    // No byte of sun_path: unnamed (the kernel has refused such addresses
    // before the hook; kept for safety).
    a.jmp_imm(Cond::Le, R2, SUN_PATH as i32, ok);
    a.ldx(Size::DW, R3, R0, l.uaddr_off);
    a.ldx(Size::B, R4, R3, SUN_PATH);
    a.jmp_imm(Cond::Ne, R4, 0, ok);
    a.ret(0);
    a.bind(ok);
    a.ret(1);
    a.finish()
}
