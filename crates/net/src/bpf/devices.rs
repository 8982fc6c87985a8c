//! The device filter of a guest (the paper's "Secure Device Nodes"): a
//! cgroup `device` program on the guest's cgroup2 directory, which the
//! kernel consults on every open and mknod of a device node by the guest's
//! processes, in a hybrid layout as on a pure cgroup2 host. It lets through
//! what the guest's `/dev` holds and what LXC's default allows, and refuses
//! every other device, whatever node a guest finds or makes in its tree:
//!
//! * `mknod` of any node (creating one still needs CAP_MKNOD, which no
//!   guest's bounding set has by default);
//! * char 1:3 null, 1:5 zero, 1:7 full, 1:8 random, 1:9 urandom, 5:0 tty,
//!   5:1 console, 5:2 ptmx, 136-143:* the devpts ptys, 10:200 net/tun,
//!   10:229 fuse.
//!
//! Block devices, /dev/mem and /dev/kmsg and the rest are refused (EPERM).
//! It lives here beside the network programs because it shares their
//! assembler and loader.

use std::os::fd::{AsFd, BorrowedFd};

use super::asm::{Alu, Asm, AsmError, Cond, Insn, R0, R1, R2, R3, R4, R5, Size};
use super::{Prog, sys};
use crate::Error;

/// `BPF_PROG_TYPE_CGROUP_DEVICE` on `BPF_CGROUP_DEVICE`.
pub const DEVICES: Prog = Prog {
    prog_type: 15,
    attach_type: 6,
    name: "devices",
};

/// `BPF_DEVCG_DEV_CHAR`.
const DEV_CHAR: i32 = 2;
/// `BPF_DEVCG_ACC_MKNOD`.
const ACC_MKNOD: i32 = 1;

/// A device the guest may use: char `major:minor`, `None` for any minor.
type Allowed = (u32, Option<u32>);

/// What [`program`] lets through (char devices).
pub const ALLOWED: &[Allowed] = &[
    (1, Some(3)),
    (1, Some(5)),
    (1, Some(7)),
    (1, Some(8)),
    (1, Some(9)),
    (5, Some(0)),
    (5, Some(1)),
    (5, Some(2)),
    (136, None),
    (137, None),
    (138, None),
    (139, None),
    (140, None),
    (141, None),
    (142, None),
    (143, None),
    (10, Some(200)),
    (10, Some(229)),
];

/// The program: context `struct bpf_cgroup_dev_ctx { u32 access_type
/// (access << 16 | type); u32 major; u32 minor; }`, returns 1 to allow.
pub fn program() -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    let allow = a.label();
    let deny = a.label();
    a.ldx(Size::W, R2, R1, 0);
    a.mov64_reg(R3, R2);
    a.alu64_imm(Alu::And, R3, 0xffff); // type
    a.alu64_imm(Alu::Rsh, R2, 16); // access
    a.ldx(Size::W, R4, R1, 4); // major
    a.ldx(Size::W, R5, R1, 8); // minor
    a.jmp_imm(Cond::Eq, R2, ACC_MKNOD, allow);
    a.jmp_imm(Cond::Ne, R3, DEV_CHAR, deny);
    for &(major, minor) in ALLOWED {
        let next = a.label();
        a.jmp_imm(Cond::Ne, R4, major as i32, next);
        match minor {
            None => a.ja(allow),
            Some(m) => a.jmp_imm(Cond::Eq, R5, m as i32, allow),
        }
        a.bind(next);
    }
    a.bind(deny);
    a.ret(0);
    a.bind(allow);
    a.mov64_imm(R0, 1);
    a.exit();
    a.finish()
}

/// Loads the filter and attaches it to the cgroup2 directory `cgroup`
/// (with `BPF_F_ALLOW_MULTI`: a parent's filter still applies too). It
/// stays attached until the cgroup is removed.
pub fn attach(cgroup: BorrowedFd<'_>) -> Result<(), Error> {
    let insns = program().map_err(|source| Error::Asm {
        prog: DEVICES.name,
        source,
    })?;
    let fd = super::load(DEVICES, &insns)?;
    sys::prog_attach(cgroup, fd.as_fd(), DEVICES.attach_type).map_err(|source| Error::Attach {
        prog: DEVICES.name,
        source,
    })
}

/// How many device programs are attached to `cgroup` itself.
pub fn attached(cgroup: BorrowedFd<'_>) -> Result<usize, Error> {
    Ok(super::query(cgroup, DEVICES)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program in rbpf on one context.
    fn verdict(access: u32, kind: u32, major: u32, minor: u32) -> u64 {
        let code = super::super::asm::to_bytes(&program().unwrap());
        let mut ctx = Vec::new();
        ctx.extend_from_slice(&((access << 16) | kind).to_ne_bytes());
        ctx.extend_from_slice(&major.to_ne_bytes());
        ctx.extend_from_slice(&minor.to_ne_bytes());
        let vm = rbpf::EbpfVmRaw::new(Some(&code)).unwrap();
        vm.execute_program(&mut ctx).unwrap()
    }

    const READ: u32 = 2;
    const WRITE: u32 = 4;
    const BLOCK: u32 = 1;
    const CHAR: u32 = 2;

    #[test]
    fn the_guest_dev_is_allowed() {
        for (maj, min) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)] {
            assert_eq!(verdict(READ | WRITE, CHAR, maj, min), 1, "{maj}:{min}");
        }
        assert_eq!(verdict(READ | WRITE, CHAR, 136, 7), 1, "a pty");
        assert_eq!(verdict(READ, CHAR, 143, 1000), 1, "a pty");
        assert_eq!(verdict(READ | WRITE, CHAR, 10, 229), 1, "fuse");
    }

    #[test]
    fn everything_else_is_refused() {
        assert_eq!(verdict(READ, CHAR, 1, 1), 0, "/dev/mem");
        assert_eq!(verdict(READ, CHAR, 1, 11), 0, "/dev/kmsg");
        assert_eq!(verdict(READ, CHAR, 10, 237), 0, "loop-control");
        assert_eq!(verdict(READ, CHAR, 4, 1), 0, "a VT");
        assert_eq!(verdict(READ, BLOCK, 7, 0), 0, "a loop device");
        assert_eq!(verdict(READ | WRITE, BLOCK, 8, 0), 0, "a disk");
        assert_eq!(verdict(READ, BLOCK, 1, 3), 0, "block 1:3 is not null");
        assert_eq!(verdict(READ, CHAR, 144, 0), 0, "past the ptys");
    }

    #[test]
    fn mknod_is_left_to_cap_mknod() {
        assert_eq!(verdict(ACC_MKNOD as u32, BLOCK, 8, 0), 1);
        assert_eq!(verdict(ACC_MKNOD as u32 | READ, BLOCK, 8, 0), 0);
    }
}
