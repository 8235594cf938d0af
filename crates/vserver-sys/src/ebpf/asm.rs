//! A small eBPF assembler: just the instructions the network-context
//! programs use, with named forward labels, so `programs.rs` reads like the
//! policy it implements. (systemd's bpf-firewall builds its programs the same
//! way in C.) Encoding follows the kernel's `struct bpf_insn`.

use std::collections::HashMap;

/// One `struct bpf_insn`: opcode, dst/src registers in one byte, offset, imm.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    R0 = 0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    /// The read-only frame pointer.
    R10,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    W = 0x00,
    B = 0x10,
    DW = 0x18,
}

/// Jump conditions (unsigned comparisons where it matters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    Eq = 0x10,
    /// Unsigned greater than.
    Gt = 0x20,
    /// Any of the immediate's bits set (`dst & imm != 0`).
    Set = 0x40,
    Ne = 0x50,
}

// Instruction classes and modes.
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const JMP32: u8 = 0x06;
const ALU64: u8 = 0x07;
const MEM: u8 = 0x60;
const IMM: u8 = 0x00;
const K: u8 = 0x00;
const X: u8 = 0x08;
const MOV: u8 = 0xb0;
const AND: u8 = 0x50;
const ADD: u8 = 0x00;
const JA: u8 = 0x00;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;
/// src_reg value of a 64-bit immediate load that means "this is a map fd".
const PSEUDO_MAP_FD: u8 = 1;

fn regs(dst: Reg, src: Reg) -> u8 {
    ((src as u8) << 4) | dst as u8
}

/// Builds a program; jumps name labels that are placed later with
/// [`Asm::label`]. Only forward jumps exist (eBPF has no loops here).
#[derive(Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: HashMap<String, usize>,
    /// (instruction index, label) of jumps waiting for their label.
    fixups: Vec<(usize, String)>,
}

impl Asm {
    pub fn new() -> Asm {
        Asm::default()
    }

    /// Instructions so far (generators use it to make labels unique).
    pub fn position(&self) -> usize {
        self.insns.len()
    }

    fn push(&mut self, code: u8, regs: u8, off: i16, imm: i32) -> &mut Self {
        self.insns.push(Insn { code, regs, off, imm });
        self
    }

    /// dst = imm (64-bit register, sign-extended immediate).
    pub fn mov_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(ALU64 | MOV | K, regs(dst, Reg::R0), 0, imm)
    }

    /// dst = imm as a 32-bit move (upper half zeroed, no sign extension).
    pub fn mov32_imm(&mut self, dst: Reg, imm: u32) -> &mut Self {
        self.push(ALU | MOV | K, regs(dst, Reg::R0), 0, imm as i32)
    }

    pub fn mov_reg(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.push(ALU64 | MOV | X, regs(dst, src), 0, 0)
    }

    pub fn add_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(ALU64 | ADD | K, regs(dst, Reg::R0), 0, imm)
    }

    pub fn and32_imm(&mut self, dst: Reg, imm: u32) -> &mut Self {
        self.push(ALU | AND | K, regs(dst, Reg::R0), 0, imm as i32)
    }

    /// dst = *(size *)(src + off)
    pub fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.push(LDX | MEM | size as u8, regs(dst, src), off, 0)
    }

    /// *(size *)(dst + off) = src
    pub fn store(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.push(STX | MEM | size as u8, regs(dst, src), off, 0)
    }

    /// *(size *)(dst + off) = imm
    pub fn store_imm(&mut self, size: Size, dst: Reg, off: i16, imm: u32) -> &mut Self {
        self.push(ST | MEM | size as u8, regs(dst, Reg::R0), off, imm as i32)
    }

    /// dst = the map whose fd is given (a two-slot 64-bit immediate load the
    /// kernel rewrites into a map pointer).
    pub fn load_map_fd(&mut self, dst: Reg, fd: i32) -> &mut Self {
        self.push(LD | IMM | Size::DW as u8, regs(dst, Reg::from_u8(PSEUDO_MAP_FD)), 0, fd);
        self.push(0, 0, 0, 0)
    }

    /// if ((u32)dst cond imm) goto label. A 32-bit comparison (JMP32): a
    /// 64-bit one would sign-extend the immediate, and 0x80000000 would never
    /// equal the zero-extended word loaded from the context.
    pub fn jump_imm(&mut self, cond: Cond, dst: Reg, imm: u32, label: &str) -> &mut Self {
        self.fixups.push((self.insns.len(), label.to_string()));
        self.push(JMP32 | cond as u8 | K, regs(dst, Reg::R0), 0, imm as i32)
    }

    /// if (dst cond imm) goto label, on the whole 64-bit register: for
    /// pointers (a map lookup's NULL) and helper return values.
    pub fn jump64_imm(&mut self, cond: Cond, dst: Reg, imm: i32, label: &str) -> &mut Self {
        self.fixups.push((self.insns.len(), label.to_string()));
        self.push(JMP | cond as u8 | K, regs(dst, Reg::R0), 0, imm)
    }

    /// if (dst cond src) goto label, on whole 64-bit registers (pointers:
    /// a packet access against data_end).
    pub fn jump_reg(&mut self, cond: Cond, dst: Reg, src: Reg, label: &str) -> &mut Self {
        self.fixups.push((self.insns.len(), label.to_string()));
        self.push(JMP | cond as u8 | X, regs(dst, src), 0, 0)
    }

    /// if ((u32)dst cond (u32)src) goto label.
    pub fn jump32_reg(&mut self, cond: Cond, dst: Reg, src: Reg, label: &str) -> &mut Self {
        self.fixups.push((self.insns.len(), label.to_string()));
        self.push(JMP32 | cond as u8 | X, regs(dst, src), 0, 0)
    }

    pub fn goto(&mut self, label: &str) -> &mut Self {
        self.fixups.push((self.insns.len(), label.to_string()));
        self.push(JMP | JA, 0, 0, 0)
    }

    pub fn call(&mut self, helper: i32) -> &mut Self {
        self.push(JMP | CALL, 0, 0, helper)
    }

    pub fn exit(&mut self) -> &mut Self {
        self.push(JMP | EXIT, 0, 0, 0)
    }

    /// r0 = value; exit.
    pub fn ret(&mut self, value: i32) -> &mut Self {
        self.mov_imm(Reg::R0, value).exit()
    }

    /// Places `name` at the next instruction.
    pub fn label(&mut self, name: &str) -> &mut Self {
        let previous = self.labels.insert(name.to_string(), self.insns.len());
        assert!(previous.is_none(), "label {name} placed twice");
        self
    }

    /// Resolves the jumps and drops instructions no path reaches (the
    /// verifier refuses those), so generators may emit a `goto` after a
    /// branch that always leaves. A missing or backward label is a bug in
    /// the generator, reported by name.
    pub fn finish(self) -> Result<Vec<Insn>, String> {
        let mut targets: HashMap<usize, usize> = HashMap::new();
        for (at, name) in &self.fixups {
            let target = *self.labels.get(name).ok_or_else(|| format!("jump to undefined label {name}"))?;
            if target <= *at {
                return Err(format!("backward jump to label {name}"));
            }
            targets.insert(*at, target);
        }
        let keep = self.reachable(&targets);
        // new_index[i]: where instruction i (or the next kept one) ends up.
        let mut new_index = vec![0usize; self.insns.len() + 1];
        let mut n = 0;
        for i in 0..self.insns.len() {
            new_index[i] = n;
            n += keep[i] as usize;
        }
        new_index[self.insns.len()] = n;
        let mut out = Vec::with_capacity(n);
        for (i, insn) in self.insns.iter().enumerate().filter(|(i, _)| keep[*i]) {
            let mut insn = *insn;
            if let Some(&t) = targets.get(&i) {
                let off = new_index[t] - new_index[i] - 1;
                insn.off = i16::try_from(off).map_err(|_| format!("jump from {i} too far"))?;
            }
            out.push(insn);
        }
        Ok(out)
    }

    fn reachable(&self, targets: &HashMap<usize, usize>) -> Vec<bool> {
        let len = self.insns.len();
        let mut seen = vec![false; len];
        let mut todo = vec![0usize];
        while let Some(i) = todo.pop() {
            if i >= len || seen[i] {
                continue;
            }
            seen[i] = true;
            let code = self.insns[i].code;
            let class = code & 0x07;
            let is_jump = class == JMP || class == JMP32;
            match code {
                c if c == JMP | EXIT => {}
                c if c == JMP | JA => todo.push(targets[&i]),
                c if c == LD | IMM | Size::DW as u8 => {
                    seen[(i + 1).min(len - 1)] = true;
                    todo.push(i + 2);
                }
                c if is_jump && c != JMP | CALL => {
                    todo.push(i + 1);
                    todo.push(targets[&i]);
                }
                _ => todo.push(i + 1),
            }
        }
        seen
    }
}

impl Reg {
    fn from_u8(v: u8) -> Reg {
        [Reg::R0, Reg::R1, Reg::R2, Reg::R3, Reg::R4, Reg::R5, Reg::R6, Reg::R7, Reg::R8, Reg::R9, Reg::R10][v as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(insns: &[Insn]) -> Vec<[u8; 8]> {
        insns
            .iter()
            .map(|i| {
                let mut b = [0u8; 8];
                b[0] = i.code;
                b[1] = i.regs;
                b[2..4].copy_from_slice(&i.off.to_le_bytes());
                b[4..8].copy_from_slice(&i.imm.to_le_bytes());
                b
            })
            .collect()
    }

    #[test]
    fn encodes_like_the_kernel_macros() {
        let mut a = Asm::new();
        a.mov_imm(Reg::R0, 1) // BPF_MOV64_IMM(R0, 1)
            .load(Size::W, Reg::R2, Reg::R1, 4) // BPF_LDX_MEM(BPF_W, R2, R1, 4)
            .store(Size::W, Reg::R10, -4, Reg::R2) // BPF_STX_MEM(BPF_W, R10, R2, -4)
            .store_imm(Size::W, Reg::R10, -8, 0xffff0000) // BPF_ST_MEM
            .call(1)
            .exit();
        let b = bytes(&a.finish().unwrap());
        assert_eq!(b[0], [0xb7, 0x00, 0, 0, 1, 0, 0, 0]);
        assert_eq!(b[1], [0x61, 0x12, 4, 0, 0, 0, 0, 0]);
        assert_eq!(b[2], [0x63, 0x2a, 0xfc, 0xff, 0, 0, 0, 0]);
        assert_eq!(b[3], [0x62, 0x0a, 0xf8, 0xff, 0x00, 0x00, 0xff, 0xff]);
        assert_eq!(b[4], [0x85, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(b[5], [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn map_fd_load_takes_two_slots() {
        let mut a = Asm::new();
        a.load_map_fd(Reg::R1, 7).exit();
        let b = bytes(&a.finish().unwrap());
        assert_eq!(b.len(), 3);
        assert_eq!(b[0], [0x18, 0x11, 0, 0, 7, 0, 0, 0]);
        assert_eq!(b[1], [0; 8]);
    }

    #[test]
    fn resolves_forward_labels() {
        let mut a = Asm::new();
        a.jump_imm(Cond::Eq, Reg::R1, 0x0100007f, "allow") // 0
            .jump_imm(Cond::Ne, Reg::R2, 7, "deny") // 1
            .goto("allow") // 2
            .label("deny")
            .ret(0) // 3, 4
            .label("allow")
            .ret(1); // 5, 6
        let insns = a.finish().unwrap();
        let mut b = Asm::new();
        b.jump64_imm(Cond::Eq, Reg::R0, 0, "end").label("end").exit();
        assert_eq!(b.finish().unwrap()[0].code, 0x15);
        assert_eq!(insns[0].code, 0x16);
        assert_eq!(insns[0].off, 4);
        assert_eq!(insns[0].imm, 0x0100007f);
        assert_eq!(insns[1].code, 0x56);
        assert_eq!(insns[1].regs, 0x02);
        assert_eq!(insns[1].off, 1);
        assert_eq!(insns[2].code, 0x05);
        assert_eq!(insns[2].off, 2);
    }

    #[test]
    fn unsigned_immediates_keep_their_bits() {
        let mut a = Asm::new();
        a.mov32_imm(Reg::R3, 0xffff_ffff).jump_imm(Cond::Eq, Reg::R3, 0x8000_0000, "x").label("x").exit();
        let insns = a.finish().unwrap();
        assert_eq!(insns[0].code, 0xb4);
        assert_eq!(insns[0].imm as u32, 0xffff_ffff);
        assert_eq!(insns[1].imm as u32, 0x8000_0000);
    }

    #[test]
    fn unreachable_instructions_are_dropped_and_jumps_adjusted() {
        let mut a = Asm::new();
        a.jump_imm(Cond::Eq, Reg::R1, 0, "deny") // 0
            .goto("allow") // 1
            .mov_imm(Reg::R2, 5) // 2: unreachable
            .goto("allow") // 3: unreachable
            .label("deny")
            .ret(0) // 4, 5
            .label("allow")
            .ret(1); // 6, 7
        let insns = a.finish().unwrap();
        assert_eq!(insns.len(), 6);
        assert_eq!(insns[0].off, 1); // to ret 0 at new index 2
        assert_eq!(insns[1].off, 2); // to ret 1 at new index 4
        assert!(!insns.iter().any(|i| i.imm == 5));
    }

    #[test]
    fn register_jumps_and_small_loads() {
        let mut a = Asm::new();
        a.load(Size::B, Reg::R1, Reg::R0, 19)
            .jump_reg(Cond::Gt, Reg::R4, Reg::R3, "x")
            .jump32_reg(Cond::Eq, Reg::R2, Reg::R9, "x")
            .jump_imm(Cond::Set, Reg::R1, 0x20, "x")
            .label("x")
            .exit();
        let b = bytes(&a.finish().unwrap());
        assert_eq!(b[0], [0x71, 0x01, 19, 0, 0, 0, 0, 0]); // BPF_LDX_MEM(BPF_B, R1, R0, 19)
        assert_eq!(b[1][..2], [0x2d, 0x34]); // BPF_JMP_REG(BPF_JGT, R4, R3)
        assert_eq!(b[2][..2], [0x1e, 0x92]); // BPF_JMP32_REG(BPF_JEQ, R2, R9)
        assert_eq!(b[3][..2], [0x46, 0x01]); // BPF_JMP32_IMM(BPF_JSET, R1)
    }

    #[test]
    fn undefined_and_backward_labels_are_errors() {
        let mut a = Asm::new();
        a.goto("nowhere");
        assert!(a.finish().unwrap_err().contains("nowhere"));
        let mut a = Asm::new();
        a.label("top").goto("top");
        assert!(a.finish().unwrap_err().contains("backward"));
    }
}
