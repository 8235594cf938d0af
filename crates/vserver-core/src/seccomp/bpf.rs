//! A classic-BPF seccomp program from a table of rules: the syscall numbers
//! are searched as a balanced binary tree, not a chain. The kernel runs the
//! program on every system call, and when a filter is installed it also runs
//! it once per syscall number to fill its allow cache: with a tree both cost
//! O(log n) instead of O(n), which matters because every `exec` into a guest
//! installs this program (`util/bench-exec.sh`).
//!
//! Layout: check the architecture (else kill the process), load the number,
//! refuse the x32 ABI's numbers on x86_64, walk the tree; a leaf is either an
//! unconditional action or a list of rules (all checks of one rule must
//! hold) with ALLOW when none matches.

use std::collections::BTreeMap;

pub use libc::sock_filter;

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_ALU_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const BPF_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
/// The low 32 bits of argument `i` (little-endian targets only).
fn offset_arg(i: u8) -> u32 {
    16 + 8 * i as u32
}

pub const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;

pub fn ret_errno(errno: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `(arg & mask) == value` on the low 32 bits of an argument (or the high
/// 32 bits when `high`); with `negate`, `!=` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    pub arg: u8,
    pub mask: u32,
    pub value: u32,
    pub high: bool,
    pub negate: bool,
}

impl Check {
    pub fn eq(arg: u8, value: u32) -> Check {
        Check { arg, mask: u32::MAX, value, high: false, negate: false }
    }

    pub fn masked_eq(arg: u8, mask: u32, value: u32) -> Check {
        Check { arg, mask, value, high: false, negate: false }
    }

    /// The rules that hold when a 64-bit argument (a pointer) is not 0:
    /// its low half is not 0, or its high half is not 0.
    pub fn nonzero_rules(arg: u8) -> Vec<Vec<Check>> {
        let ne = |high| Check { arg, mask: u32::MAX, value: 0, high, negate: true };
        vec![vec![ne(false)], vec![ne(true)]]
    }
}

/// What happens to one syscall number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Always(u32),
    /// The action when any rule (all its checks) matches; else ALLOW.
    When(u32, Vec<Vec<Check>>),
}

pub type Table = BTreeMap<u32, Entry>;

/// Instructions with symbolic jump targets, resolved at the end.
enum Ins {
    Plain(sock_filter),
    /// Conditional jump: if true, skip the next instruction (a `Goto`).
    SkipIf(u16, u32),
    /// Conditional jump: if false, skip the next instruction.
    SkipUnless(u16, u32),
    Goto(usize),
    Label(usize),
}

pub fn compile(table: &Table) -> Vec<sock_filter> {
    let mut out = Vec::new();
    let mut labels = 0usize;
    let mut new_label = || {
        labels += 1;
        labels - 1
    };
    let allow = new_label();
    let deny_x32 = new_label();
    out.push(Ins::Plain(stmt(BPF_LD_W_ABS, OFFSET_ARCH)));
    out.push(Ins::Plain(jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0)));
    out.push(Ins::Plain(stmt(BPF_RET_K, RET_KILL_PROCESS)));
    out.push(Ins::Plain(stmt(BPF_LD_W_ABS, OFFSET_NR)));
    #[cfg(target_arch = "x86_64")]
    {
        // x32 numbers (same architecture value, bit 30 set) would slip past
        // every rule below; no guest needs that ABI.
        out.push(Ins::Plain(jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1)));
        out.push(Ins::Goto(deny_x32));
    }
    let nrs: Vec<u32> = table.keys().copied().collect();
    tree(&nrs, table, &mut out, &mut new_label, allow);
    out.push(Ins::Label(allow));
    out.push(Ins::Plain(stmt(BPF_RET_K, RET_ALLOW)));
    out.push(Ins::Label(deny_x32));
    out.push(Ins::Plain(stmt(BPF_RET_K, ret_errno(libc::ENOSYS))));
    resolve(out)
}

/// The subtree for sorted `nrs`, entered with the number in the accumulator.
fn tree(nrs: &[u32], table: &Table, out: &mut Vec<Ins>, new_label: &mut impl FnMut() -> usize, allow: usize) {
    match nrs {
        [] => out.push(Ins::Goto(allow)),
        [nr] => leaf(*nr, &table[nr], out, new_label, allow),
        _ => {
            let mid = nrs.len() / 2;
            let right = new_label();
            // nr >= nrs[mid]: the right half.
            out.push(Ins::Plain(jump(BPF_JGE_K, nrs[mid], 0, 1)));
            out.push(Ins::Goto(right));
            tree(&nrs[..mid], table, out, new_label, allow);
            out.push(Ins::Label(right));
            tree(&nrs[mid..], table, out, new_label, allow);
        }
    }
}

fn leaf(nr: u32, entry: &Entry, out: &mut Vec<Ins>, new_label: &mut impl FnMut() -> usize, allow: usize) {
    out.push(Ins::SkipIf(BPF_JEQ_K, nr));
    out.push(Ins::Goto(allow));
    match entry {
        Entry::Always(action) => out.push(Ins::Plain(stmt(BPF_RET_K, *action))),
        Entry::When(action, rules) => {
            for rule in rules {
                let next_rule = new_label();
                for check in rule {
                    let half = if check.high { 4 } else { 0 };
                    out.push(Ins::Plain(stmt(BPF_LD_W_ABS, offset_arg(check.arg) + half)));
                    if check.mask != u32::MAX {
                        out.push(Ins::Plain(stmt(BPF_ALU_AND_K, check.mask)));
                    }
                    if check.negate {
                        out.push(Ins::SkipUnless(BPF_JEQ_K, check.value));
                    } else {
                        out.push(Ins::SkipIf(BPF_JEQ_K, check.value));
                    }
                    out.push(Ins::Goto(next_rule));
                }
                out.push(Ins::Plain(stmt(BPF_RET_K, *action)));
                out.push(Ins::Label(next_rule));
            }
            out.push(Ins::Plain(stmt(BPF_RET_K, RET_ALLOW)));
        }
    }
}

/// Labels to positions; every far jump is an unconditional BPF_JA (32-bit
/// offset), so no conditional jump ever needs more than 1.
fn resolve(ins: Vec<Ins>) -> Vec<sock_filter> {
    let mut position = std::collections::HashMap::new();
    let mut pc = 0usize;
    for i in &ins {
        match i {
            Ins::Label(l) => {
                position.insert(*l, pc);
            }
            _ => pc += 1,
        }
    }
    let mut prog = Vec::with_capacity(pc);
    for i in ins {
        match i {
            Ins::Plain(f) => prog.push(f),
            Ins::SkipIf(code, k) => prog.push(jump(code, k, 1, 0)),
            Ins::SkipUnless(code, k) => prog.push(jump(code, k, 0, 1)),
            Ins::Goto(l) => {
                let here = prog.len() + 1;
                prog.push(stmt(BPF_JA, (position[&l] - here) as u32));
            }
            Ins::Label(_) => {}
        }
    }
    prog
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Runs a program the way the kernel does, for the tests.
#[cfg(test)]
pub fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    let (mut acc, mut pc) = (0u32, 0usize);
    loop {
        let f = prog[pc];
        pc += 1;
        match f.code {
            BPF_LD_W_ABS => acc = u32::from_ne_bytes(data[f.k as usize..f.k as usize + 4].try_into().unwrap()),
            BPF_ALU_AND_K => acc &= f.k,
            BPF_JA => pc += f.k as usize,
            BPF_JEQ_K => pc += if acc == f.k { f.jt } else { f.jf } as usize,
            BPF_JGE_K => pc += if acc >= f.k { f.jt } else { f.jf } as usize,
            BPF_RET_K => return f.k,
            other => panic!("unexpected instruction {other:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new();
        for nr in [3, 7, 20, 21, 100, 200, 300] {
            t.insert(nr, Entry::Always(ret_errno(libc::EPERM)));
        }
        t.insert(16, Entry::When(ret_errno(libc::EPERM), vec![vec![Check::eq(1, 0x5412)], vec![Check::eq(1, 0x541c)]]));
        t.insert(41, Entry::When(ret_errno(libc::EPERM), vec![vec![Check::eq(0, 2), Check::masked_eq(1, 0xf, 2)]]));
        t.insert(280, Entry::When(ret_errno(libc::EPERM), Check::nonzero_rules(1)));
        t
    }

    #[test]
    fn every_number_gets_its_action() {
        let prog = compile(&table());
        let t = table();
        for nr in 0..500u32 {
            let got = run(&prog, AUDIT_ARCH, nr, [0; 6]);
            let want = match t.get(&nr) {
                Some(Entry::Always(a)) => *a,
                // The arguments are all 0: no "not 0" rule holds.
                _ => RET_ALLOW,
            };
            assert_eq!(got, want, "syscall {nr}");
        }
    }

    #[test]
    fn argument_rules_match_all_their_checks() {
        let prog = compile(&table());
        let eperm = ret_errno(libc::EPERM);
        assert_eq!(run(&prog, AUDIT_ARCH, 16, [0, 0x5412, 0, 0, 0, 0]), eperm);
        assert_eq!(run(&prog, AUDIT_ARCH, 16, [0, 0x541c, 0, 0, 0, 0]), eperm);
        assert_eq!(run(&prog, AUDIT_ARCH, 16, [0, 0x5413, 0, 0, 0, 0]), RET_ALLOW);
        // Only the low 32 bits count, as the kernel passes them.
        assert_eq!(run(&prog, AUDIT_ARCH, 16, [0, 0x1_0000_5412, 0, 0, 0, 0]), eperm);
        assert_eq!(run(&prog, AUDIT_ARCH, 41, [2, 0x80802, 0, 0, 0, 0]), eperm, "SOCK_DGRAM|flags");
        assert_eq!(run(&prog, AUDIT_ARCH, 41, [2, 1, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&prog, AUDIT_ARCH, 41, [10, 2, 0, 0, 0, 0]), RET_ALLOW);
    }

    #[test]
    fn a_pointer_counts_as_not_zero_by_either_half() {
        let prog = compile(&table());
        let eperm = ret_errno(libc::EPERM);
        assert_eq!(run(&prog, AUDIT_ARCH, 280, [3, 0, 0, 0, 0, 0]), RET_ALLOW, "NULL");
        assert_eq!(run(&prog, AUDIT_ARCH, 280, [3, 0x1000, 0, 0, 0, 0]), eperm, "low half");
        assert_eq!(run(&prog, AUDIT_ARCH, 280, [3, 0x7ffd_0000_0000, 0, 0, 0, 0]), eperm, "high half");
        assert_eq!(run(&prog, AUDIT_ARCH, 280, [3, 0x7ffd_1234_5678, 0, 0, 0, 0]), eperm, "both");
    }

    #[test]
    fn another_architecture_is_killed() {
        assert_eq!(run(&compile(&table()), 0x4000_0003, 1, [0; 6]), RET_KILL_PROCESS);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_numbers_are_refused() {
        assert_eq!(run(&compile(&table()), AUDIT_ARCH, X32_SYSCALL_BIT | 3, [0; 6]), ret_errno(libc::ENOSYS));
        assert_eq!(run(&compile(&table()), AUDIT_ARCH, X32_SYSCALL_BIT | 1, [0; 6]), ret_errno(libc::ENOSYS));
    }

    #[test]
    fn a_lookup_takes_logarithmic_steps() {
        let mut t = Table::new();
        for nr in 0..64 {
            t.insert(nr * 7, Entry::Always(ret_errno(libc::EPERM)));
        }
        let prog = compile(&t);
        // Instructions run for a number no rule names.
        let steps = {
            let mut count = 0;
            let mut pc = 0usize;
            let nr = 1000u32;
            let mut acc = 0u32;
            loop {
                let f = prog[pc];
                pc += 1;
                count += 1;
                match f.code {
                    BPF_LD_W_ABS => acc = if f.k == OFFSET_NR { nr } else { AUDIT_ARCH },
                    BPF_JA => pc += f.k as usize,
                    BPF_JEQ_K => pc += if acc == f.k { f.jt } else { f.jf } as usize,
                    BPF_JGE_K => pc += if acc >= f.k { f.jt } else { f.jf } as usize,
                    _ => break,
                }
            }
            count
        };
        assert!(steps < 25, "{steps} instructions for one lookup");
    }
}
