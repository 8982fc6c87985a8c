//! Traffic counters of a shared-mode guest: two cgroup `skb` programs
//! (ingress and egress) add each packet's length and one packet to a
//! per-CPU array map. A shared-mode guest has no device of its own, so this
//! is the only place its traffic can be counted.
//!
//! The map is reached through the programs attached to the guest's cgroup
//! ([`read`]): no pinned file, nothing to clean up, and `stats` works with
//! or without a live monitor. The counters live as long as the programs,
//! that is as long as the cgroup.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::asm::{Asm, AsmError, Cond, Insn, R0, R1, R2, R6, R10, Size};
use super::{Prog, sys};
use crate::Error;

/// `BPF_FUNC_map_lookup_elem`.
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
/// `offsetof(struct __sk_buff, len)`: the packet's length from its network
/// header on (what the IP layer sends or delivers).
const SKB_LEN: i16 = 0;
/// Map slots: `[bytes, packets]` received, then sent.
const KEY_IN: u32 = 0;
const KEY_OUT: u32 = 1;
const VALUE_SIZE: usize = 16;
/// The map's name in the kernel.
pub const MAP_NAME: &str = "vs_traffic";

/// The ingress counter (`BPF_CGROUP_INET_INGRESS`).
pub const COUNT_IN: Prog = Prog {
    prog_type: sys::BPF_PROG_TYPE_CGROUP_SKB,
    attach_type: 0,
    name: "count_in",
};
/// The egress counter (`BPF_CGROUP_INET_EGRESS`).
pub const COUNT_OUT: Prog = Prog {
    prog_type: sys::BPF_PROG_TYPE_CGROUP_SKB,
    attach_type: 1,
    name: "count_out",
};

/// Bytes and packets in and out of a guest's sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes delivered to the guest's sockets.
    pub rx_bytes: u64,
    /// Packets delivered to them.
    pub rx_packets: u64,
    /// Bytes its sockets sent.
    pub tx_bytes: u64,
    /// Packets they sent.
    pub tx_packets: u64,
}

/// The program for one direction: `map[key] += {skb->len, 1}`, then
/// allow the packet. Atomic adds, because a softirq on the same CPU can
/// interrupt the egress program between a load and a store.
pub fn program(prog: Prog, map_fd: i32) -> Result<Vec<Insn>, AsmError> {
    let key = if prog == COUNT_IN { KEY_IN } else { KEY_OUT };
    let mut a = Asm::new();
    let out = a.label();
    a.ldx(Size::W, R6, R1, SKB_LEN);
    a.st(Size::W, R10, -4, key as i32);
    a.ld_map_fd(R1, map_fd);
    a.mov64_reg(R2, R10);
    a.alu64_imm(super::asm::Alu::Add, R2, -4);
    a.call(BPF_FUNC_MAP_LOOKUP_ELEM);
    a.jmp_imm(Cond::Eq, R0, 0, out);
    a.atomic_add(Size::DW, R0, 0, R6);
    a.mov64_imm(R1, 1);
    a.atomic_add(Size::DW, R0, 8, R1);
    a.bind(out);
    a.ret(1);
    a.finish()
}

/// A new, zeroed counter map.
pub fn create_map() -> Result<OwnedFd, Error> {
    sys::map_create(
        sys::BPF_MAP_TYPE_PERCPU_ARRAY,
        4,
        VALUE_SIZE as u32,
        2,
        MAP_NAME,
    )
    .map_err(|source| Error::Map {
        what: "creating the traffic counter map",
        source,
    })
}

/// Loads both counter programs over one new map.
pub fn load_both() -> Result<[(Prog, OwnedFd); 2], Error> {
    let map = create_map()?;
    let one = |prog: Prog| -> Result<(Prog, OwnedFd), Error> {
        let insns = program(prog, map.as_raw_fd()).map_err(|source| Error::Asm {
            prog: prog.name,
            source,
        })?;
        Ok((prog, super::load(prog, &insns)?))
    };
    // The programs hold the map; our descriptor may go.
    Ok([one(COUNT_IN)?, one(COUNT_OUT)?])
}

/// How many CPUs the kernel sizes per-CPU values for
/// (`num_possible_cpus()`), from `/sys/devices/system/cpu/possible`
/// (`0-1`, `0,2-3`, …).
pub fn possible_cpus() -> Result<usize, Error> {
    const PATH: &str = "/sys/devices/system/cpu/possible";
    let io = |source| Error::Io {
        path: PATH.into(),
        source,
    };
    let text = std::fs::read_to_string(PATH).map_err(io)?;
    parse_cpu_list(text.trim()).ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a CPU list: {:?}", text.trim()),
        ))
    })
}

fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut n = 0;
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let a = part.parse::<usize>().ok()?;
                (a, a)
            }
        };
        n += b.checked_sub(a)? + 1;
    }
    Some(n)
}

/// Sums one slot's per-CPU `[bytes, packets]`.
fn lookup(map: BorrowedFd<'_>, key: u32, cpus: usize) -> Result<(u64, u64), Error> {
    let mut buf = vec![0u8; VALUE_SIZE * cpus];
    sys::map_lookup(map, &key.to_ne_bytes(), &mut buf).map_err(|source| Error::Map {
        what: "reading the traffic counters",
        source,
    })?;
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().expect("8 bytes"));
    Ok(buf
        .chunks_exact(VALUE_SIZE)
        .fold((0, 0), |(b, p), v| (b + word(&v[..8]), p + word(&v[8..]))))
}

/// The counters of the guest whose cgroup v2 directory is `cgroup`: found
/// through our counter program attached there. `None` when it has none
/// (a private-mode guest, or one started before counters existed).
pub fn read(cgroup: BorrowedFd<'_>) -> Result<Option<Traffic>, Error> {
    for id in super::query(cgroup, COUNT_IN)? {
        let Ok(fd) = sys::prog_get_fd_by_id(id) else {
            continue; // gone meanwhile
        };
        let info = sys::prog_info(fd.as_fd()).map_err(|source| Error::Map {
            what: "reading a cgroup program's info",
            source,
        })?;
        if info.name != format!("vs_{}", COUNT_IN.name) {
            continue;
        }
        let Some(&map_id) = info.map_ids.first() else {
            continue;
        };
        let map = sys::map_get_fd_by_id(map_id).map_err(|source| Error::Map {
            what: "opening the traffic counter map",
            source,
        })?;
        let cpus = possible_cpus()?;
        let (rx_bytes, rx_packets) = lookup(map.as_fd(), KEY_IN, cpus)?;
        let (tx_bytes, tx_packets) = lookup(map.as_fd(), KEY_OUT, cpus)?;
        return Ok(Some(Traffic {
            rx_bytes,
            rx_packets,
            tx_bytes,
            tx_packets,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-1"), Some(2));
        assert_eq!(parse_cpu_list("0,2-3,5"), Some(4));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn programs_name_their_slot_and_always_allow() {
        let (i, o) = (
            program(COUNT_IN, 9).unwrap(),
            program(COUNT_OUT, 9).unwrap(),
        );
        // The key stored on the stack differs; the map fd is the pseudo one.
        let key = |p: &[Insn]| p.iter().find(|x| x.code == 0x62).unwrap().imm;
        assert_eq!((key(&i), key(&o)), (0, 1));
        assert!(i.iter().any(|x| x.code == 0x18 && x.src == 1 && x.imm == 9));
        // Both ends return 1 (r0 = 1; exit), so a packet is never dropped.
        let n = i.len();
        assert_eq!(
            (i[n - 2].code, i[n - 2].imm, i[n - 1].code),
            (0xb7, 1, 0x95)
        );
    }
}
