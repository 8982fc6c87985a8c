//! A tiny eBPF assembler: instruction encoding and jump-label resolution.
//!
//! Why hand-written: no crate that builds on rustc 1.95 assembles eBPF
//! without clang. aya's loader needs an ELF object (and aya ≥ 0.16 declares
//! rust-version 1.98), libbpf-rs needs clang and libelf, and rbpf's
//! `insn_builder` has no labels: every jump offset would be counted by hand,
//! which is exactly the bug class an assembler exists to remove. The
//! encoding itself is small (`struct bpf_insn`: opcode, two 4-bit register
//! fields, a 16-bit offset and a 32-bit immediate; Documentation/bpf/
//! standardization/instruction-set.rst), so we write it here and keep rbpf
//! as a dev-dependency only, to *run* what we assemble in its interpreter.

use std::fmt;

/// A register, `r0`..`r10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg(u8);

/// Return value and helper result.
pub const R0: Reg = Reg(0);
/// First argument; the context pointer at entry.
pub const R1: Reg = Reg(1);
/// Second argument.
pub const R2: Reg = Reg(2);
/// Third argument.
pub const R3: Reg = Reg(3);
/// Fourth argument.
pub const R4: Reg = Reg(4);
/// Fifth argument.
pub const R5: Reg = Reg(5);
/// Callee-saved.
pub const R6: Reg = Reg(6);
/// Callee-saved.
pub const R7: Reg = Reg(7);
/// Callee-saved.
pub const R8: Reg = Reg(8);
/// Callee-saved.
pub const R9: Reg = Reg(9);
/// Read-only frame pointer (top of the 512-byte stack).
pub const R10: Reg = Reg(10);

impl Reg {
    /// The register's number.
    pub fn num(self) -> u8 {
        self.0
    }
}

// Instruction classes.
const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_ST: u8 = 0x02;
const BPF_STX: u8 = 0x03;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_JMP32: u8 = 0x06;
const BPF_ALU64: u8 = 0x07;
// Modes.
const BPF_IMM: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_ATOMIC: u8 = 0xc0;
/// `imm` of an atomic add (`BPF_ADD` without `BPF_FETCH`).
const BPF_ATOMIC_ADD: i32 = 0x00;
// Sources.
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
// Jump ops that are not conditions.
const BPF_JA: u8 = 0x00;
const BPF_CALL: u8 = 0x80;
const BPF_EXIT: u8 = 0x90;

/// `src_reg` of a `ld_imm64` whose constant is a map's descriptor.
pub const BPF_PSEUDO_MAP_FD: u8 = 1;

/// `src_reg` of a call to a kernel function (kfunc) named by BTF id.
pub const BPF_PSEUDO_KFUNC_CALL: u8 = 2;

/// Memory access size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// 1 byte.
    B,
    /// 2 bytes.
    H,
    /// 4 bytes.
    W,
    /// 8 bytes.
    DW,
}

impl Size {
    fn bits(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }
}

/// Arithmetic operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alu {
    /// `dst += src`
    Add,
    /// `dst -= src`
    Sub,
    /// `dst *= src`
    Mul,
    /// `dst /= src`
    Div,
    /// `dst |= src`
    Or,
    /// `dst &= src`
    And,
    /// `dst <<= src`
    Lsh,
    /// `dst >>= src` (logical)
    Rsh,
    /// `dst %= src`
    Mod,
    /// `dst ^= src`
    Xor,
    /// `dst = src`
    Mov,
    /// `dst >>= src` (arithmetic)
    Arsh,
}

impl Alu {
    fn bits(self) -> u8 {
        match self {
            Alu::Add => 0x00,
            Alu::Sub => 0x10,
            Alu::Mul => 0x20,
            Alu::Div => 0x30,
            Alu::Or => 0x40,
            Alu::And => 0x50,
            Alu::Lsh => 0x60,
            Alu::Rsh => 0x70,
            Alu::Mod => 0x90,
            Alu::Xor => 0xa0,
            Alu::Mov => 0xb0,
            Alu::Arsh => 0xc0,
        }
    }
}

/// Jump condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// `==`
    Eq,
    /// `>` unsigned
    Gt,
    /// `>=` unsigned
    Ge,
    /// `&` non-zero
    Set,
    /// `!=`
    Ne,
    /// `>` signed
    Sgt,
    /// `>=` signed
    Sge,
    /// `<` unsigned
    Lt,
    /// `<=` unsigned
    Le,
    /// `<` signed
    Slt,
    /// `<=` signed
    Sle,
}

impl Cond {
    fn bits(self) -> u8 {
        match self {
            Cond::Eq => 0x10,
            Cond::Gt => 0x20,
            Cond::Ge => 0x30,
            Cond::Set => 0x40,
            Cond::Ne => 0x50,
            Cond::Sgt => 0x60,
            Cond::Sge => 0x70,
            Cond::Lt => 0xa0,
            Cond::Le => 0xb0,
            Cond::Slt => 0xc0,
            Cond::Sle => 0xd0,
        }
    }
}

/// One encoded instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// Destination register.
    pub dst: u8,
    /// Source register (or pseudo marker for calls and `ld_imm64`).
    pub src: u8,
    /// Signed offset.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl Insn {
    /// The 8 bytes the kernel reads, in the host's byte order (the kernel
    /// takes instructions in native order; the register nibbles follow the
    /// C bitfield order of `struct bpf_insn`).
    pub fn to_bytes(self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            (self.src << 4) | (self.dst & 0x0f)
        } else {
            (self.dst << 4) | (self.src & 0x0f)
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }
}

/// The byte image of a program.
pub fn to_bytes(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

/// A jump target, placed with [`Asm::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// Why a program could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsmError {
    /// A jump names a label that was never placed.
    #[error("label {0} is used but never placed")]
    Unbound(usize),
    /// A label was placed twice.
    #[error("label {0} is placed twice")]
    BoundTwice(usize),
    /// A jump does not fit the 16-bit offset.
    #[error("jump from instruction {from} to {to} does not fit a 16-bit offset")]
    TooFar {
        /// The jump's index.
        from: usize,
        /// The target's index.
        to: usize,
    },
}

/// An instruction buffer with forward and backward labels.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
    twice: Option<usize>,
}

impl Asm {
    /// An empty program.
    pub fn new() -> Asm {
        Asm::default()
    }

    /// Instructions emitted so far (a `ld_imm64` counts two).
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether nothing has been emitted yet.
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    fn push(&mut self, code: u8, dst: Reg, src: Reg, off: i16, imm: i32) {
        self.insns.push(Insn {
            code,
            dst: dst.0,
            src: src.0,
            off,
            imm,
        });
    }

    /// A new, not yet placed label.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Places `l` at the next instruction.
    pub fn bind(&mut self, l: Label) {
        if self.labels[l.0].is_some() {
            self.twice.get_or_insert(l.0);
        }
        self.labels[l.0] = Some(self.insns.len());
    }

    /// 64-bit `dst op= imm` (imm sign-extended).
    pub fn alu64_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        self.push(BPF_ALU64 | op.bits() | BPF_K, dst, R0, 0, imm);
    }

    /// 64-bit `dst op= src`.
    pub fn alu64_reg(&mut self, op: Alu, dst: Reg, src: Reg) {
        self.push(BPF_ALU64 | op.bits() | BPF_X, dst, src, 0, 0);
    }

    /// 32-bit `dst op= imm`; the upper half of `dst` becomes zero.
    pub fn alu32_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        self.push(BPF_ALU | op.bits() | BPF_K, dst, R0, 0, imm);
    }

    /// 32-bit `dst op= src`; the upper half of `dst` becomes zero.
    pub fn alu32_reg(&mut self, op: Alu, dst: Reg, src: Reg) {
        self.push(BPF_ALU | op.bits() | BPF_X, dst, src, 0, 0);
    }

    /// `dst = imm` (sign-extended to 64 bits).
    pub fn mov64_imm(&mut self, dst: Reg, imm: i32) {
        self.alu64_imm(Alu::Mov, dst, imm);
    }

    /// `dst = src`.
    pub fn mov64_reg(&mut self, dst: Reg, src: Reg) {
        self.alu64_reg(Alu::Mov, dst, src);
    }

    /// `dst = (u32)imm` (zero-extended).
    pub fn mov32_imm(&mut self, dst: Reg, imm: u32) {
        self.alu32_imm(Alu::Mov, dst, imm as i32);
    }

    /// `dst = imm` for a full 64-bit constant (two instruction slots).
    pub fn ld_imm64(&mut self, dst: Reg, imm: u64) {
        self.push(
            BPF_LD | Size::DW.bits() | BPF_IMM,
            dst,
            R0,
            0,
            imm as u32 as i32,
        );
        self.push(0, R0, R0, 0, (imm >> 32) as u32 as i32);
    }

    /// `dst = map` for the map whose descriptor is `fd` (the kernel puts
    /// the map's address there at load time).
    pub fn ld_map_fd(&mut self, dst: Reg, fd: i32) {
        self.push(
            BPF_LD | Size::DW.bits() | BPF_IMM,
            dst,
            Reg(BPF_PSEUDO_MAP_FD),
            0,
            fd,
        );
        self.push(0, R0, R0, 0, 0);
    }

    /// `lock *(size *)(dst + off) += src` (`W` or `DW` only).
    pub fn atomic_add(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        self.push(
            BPF_STX | size.bits() | BPF_ATOMIC,
            dst,
            src,
            off,
            BPF_ATOMIC_ADD,
        );
    }

    /// `dst = *(size *)(src + off)` (zero-extended).
    pub fn ldx(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        self.push(BPF_LDX | size.bits() | BPF_MEM, dst, src, off, 0);
    }

    /// `*(size *)(dst + off) = src`.
    pub fn stx(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        self.push(BPF_STX | size.bits() | BPF_MEM, dst, src, off, 0);
    }

    /// `*(size *)(dst + off) = imm` (the verifier refuses this form on the
    /// context pointer: store context fields with [`Asm::stx`]).
    pub fn st(&mut self, size: Size, dst: Reg, off: i16, imm: i32) {
        self.push(BPF_ST | size.bits() | BPF_MEM, dst, R0, off, imm);
    }

    fn jump(&mut self, code: u8, dst: Reg, src: Reg, imm: i32, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.push(code, dst, src, 0, imm);
    }

    /// `if dst cond imm goto target`, 64-bit compare (imm sign-extended).
    pub fn jmp_imm(&mut self, cond: Cond, dst: Reg, imm: i32, target: Label) {
        self.jump(BPF_JMP | cond.bits() | BPF_K, dst, R0, imm, target);
    }

    /// `if dst cond src goto target`, 64-bit compare.
    pub fn jmp_reg(&mut self, cond: Cond, dst: Reg, src: Reg, target: Label) {
        self.jump(BPF_JMP | cond.bits() | BPF_X, dst, src, 0, target);
    }

    /// `if (u32)dst cond (u32)imm goto target` (JMP32 class, Linux ≥ 5.1).
    pub fn jmp32_imm(&mut self, cond: Cond, dst: Reg, imm: u32, target: Label) {
        self.jump(BPF_JMP32 | cond.bits() | BPF_K, dst, R0, imm as i32, target);
    }

    /// `if (u32)dst cond (u32)src goto target`.
    pub fn jmp32_reg(&mut self, cond: Cond, dst: Reg, src: Reg, target: Label) {
        self.jump(BPF_JMP32 | cond.bits() | BPF_X, dst, src, 0, target);
    }

    /// `goto target`.
    pub fn ja(&mut self, target: Label) {
        self.jump(BPF_JMP | BPF_JA, R0, R0, 0, target);
    }

    /// Calls helper `id` (`enum bpf_func_id`); arguments in r1..r5, result
    /// in r0; r1..r5 are clobbered.
    pub fn call(&mut self, id: i32) {
        self.push(BPF_JMP | BPF_CALL, R0, R0, 0, id);
    }

    /// Calls the kernel function whose BTF id in vmlinux is `btf_id`.
    pub fn call_kfunc(&mut self, btf_id: u32) {
        self.push(
            BPF_JMP | BPF_CALL,
            R0,
            Reg(BPF_PSEUDO_KFUNC_CALL),
            0,
            btf_id as i32,
        );
    }

    /// `return r0`.
    pub fn exit(&mut self) {
        self.push(BPF_JMP | BPF_EXIT, R0, R0, 0, 0);
    }

    /// `return imm` (sets r0, exits).
    pub fn ret(&mut self, imm: i32) {
        self.mov64_imm(R0, imm);
        self.exit();
    }

    /// Resolves every jump and returns the program.
    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        if let Some(l) = self.twice {
            return Err(AsmError::BoundTwice(l));
        }
        for &(at, label) in &self.fixups {
            let to = self.labels[label.0].ok_or(AsmError::Unbound(label.0))?;
            let off = to as i64 - (at as i64 + 1);
            self.insns[at].off =
                i16::try_from(off).map_err(|_| AsmError::TooFar { from: at, to })?;
        }
        Ok(self.insns)
    }
}

impl fmt::Display for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x} dst=r{} src=r{} off={} imm={}",
            self.code, self.dst, self.src, self.off, self.imm
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_kernel_macros() {
        let mut a = Asm::new();
        a.mov64_reg(R6, R1); // BPF_MOV64_REG(BPF_REG_6, BPF_REG_1) = bf 16 ...
        a.ldx(Size::W, R7, R6, 4); // BPF_LDX_MEM(BPF_W, 7, 6, 4) = 61 67 04 00
        a.stx(Size::W, R6, 4, R1); // BPF_STX_MEM(BPF_W, 6, 1, 4) = 63 16 04 00
        a.st(Size::H, R10, -16, 2); // BPF_ST_MEM(BPF_H, 10, -16, 2) = 6a 0a f0 ff
        a.call(64);
        a.ret(1);
        let p = a.finish().unwrap();
        let b = to_bytes(&p);
        assert_eq!(&b[0..8], &[0xbf, 0x16, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[8..16], &[0x61, 0x67, 4, 0, 0, 0, 0, 0]);
        assert_eq!(&b[16..24], &[0x63, 0x16, 4, 0, 0, 0, 0, 0]);
        assert_eq!(&b[24..32], &[0x6a, 0x0a, 0xf0, 0xff, 2, 0, 0, 0]);
        assert_eq!(&b[32..40], &[0x85, 0, 0, 0, 64, 0, 0, 0]);
        assert_eq!(&b[40..48], &[0xb7, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&b[48..56], &[0x95, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn resolves_forward_and_backward_labels() {
        let mut a = Asm::new();
        let fwd = a.label();
        let back = a.label();
        a.bind(back);
        a.jmp32_imm(Cond::Ne, R2, 0xffff_ffff, fwd); // 0
        a.mov64_imm(R0, 0); // 1
        a.ja(back); // 2
        a.bind(fwd);
        a.exit(); // 3
        let p = a.finish().unwrap();
        assert_eq!(p[0].code, 0x56);
        assert_eq!(p[0].off, 2);
        assert_eq!(p[0].imm, -1);
        assert_eq!(p[2].off, -3);
    }

    #[test]
    fn ld_imm64_takes_two_slots() {
        let mut a = Asm::new();
        a.ld_imm64(R1, 0x1122_3344_5566_7788);
        let p = a.finish().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].code, 0x18);
        assert_eq!(p[0].imm as u32, 0x5566_7788);
        assert_eq!(p[1].imm as u32, 0x1122_3344);
    }

    #[test]
    fn map_load_and_atomic_add_encode_like_the_kernel_macros() {
        let mut a = Asm::new();
        a.ld_map_fd(R1, 7); // BPF_LD_MAP_FD(BPF_REG_1, 7) = 18 11 .. 07, then 0
        a.atomic_add(Size::DW, R0, 8, R6); // BPF_ATOMIC_OP(BPF_DW, BPF_ADD, 0, 6, 8) = db 60 08 00
        let p = a.finish().unwrap();
        let b = to_bytes(&p);
        assert_eq!(&b[0..8], &[0x18, 0x11, 0, 0, 7, 0, 0, 0]);
        assert_eq!(&b[8..16], &[0; 8]);
        assert_eq!(&b[16..24], &[0xdb, 0x60, 8, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn kfunc_call_is_marked() {
        let mut a = Asm::new();
        a.call_kfunc(12345);
        let p = a.finish().unwrap();
        assert_eq!((p[0].code, p[0].src, p[0].imm), (0x85, 2, 12345));
    }

    #[test]
    fn errors() {
        let mut a = Asm::new();
        let l = a.label();
        a.ja(l);
        assert_eq!(a.finish(), Err(AsmError::Unbound(0)));

        let mut a = Asm::new();
        let l = a.label();
        a.bind(l);
        a.bind(l);
        assert_eq!(a.finish(), Err(AsmError::BoundTwice(0)));

        let mut a = Asm::new();
        let l = a.label();
        a.ja(l);
        for _ in 0..40_000 {
            a.mov64_imm(R0, 0);
        }
        a.bind(l);
        a.exit();
        assert_eq!(
            a.finish(),
            Err(AsmError::TooFar {
                from: 0,
                to: 40_001
            })
        );
    }
}
