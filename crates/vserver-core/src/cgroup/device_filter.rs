//! The device controller of cgroup v2 is a BPF program: this one lets the
//! guest's processes open (and make) only the devices of its
//! [`GuestDevices`] list, with the access each allows — the same list the
//! v1 devices controller gets as `devices.allow` rules. On hybrid hosts
//! both apply.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use crate::config::device_rule::{Access, DevKind, DeviceRule, GuestDevices};
use crate::sys::ebpf::asm::{Asm, Cond, Insn, Reg, Size};
use crate::sys::ebpf::load::{self, ProgSpec, BPF_F_ALLOW_MULTI};
use Reg::*;

const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const ATTACH_CGROUP_DEVICE: u32 = 6;
/// `access_type & 0xffff` of struct bpf_cgroup_dev_ctx (BPF_DEVCG_DEV_*).
const DEV_BLOCK: u32 = 1;
const DEV_CHAR: u32 = 2;
/// `access_type >> 16` (BPF_DEVCG_ACC_*).
const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;

fn type_code(kind: DevKind) -> u32 {
    match kind {
        DevKind::Char => DEV_CHAR,
        DevKind::Block => DEV_BLOCK,
    }
}

/// The access bits a rule does not grant, in `access_type`'s upper half.
fn denied_access_bits(a: Access) -> u32 {
    let granted = (if a.mknod { ACC_MKNOD } else { 0 }) | (if a.read { ACC_READ } else { 0 }) | (if a.write { ACC_WRITE } else { 0 });
    ((ACC_MKNOD | ACC_READ | ACC_WRITE) & !granted) << 16
}

/// The program: 1 (allow) for an access a rule grants, 0 for anything else.
pub fn program(rules: &[DeviceRule]) -> Result<Vec<Insn>, String> {
    let mut a = Asm::new();
    // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
    a.load(Size::W, R2, R1, 0).load(Size::W, R3, R1, 4).load(Size::W, R4, R1, 8);
    a.mov_reg(R5, R2).and32_imm(R5, 0xffff);
    for (i, rule) in rules.iter().enumerate() {
        let next = format!("next{i}");
        a.jump_imm(Cond::Ne, R5, type_code(rule.kind), &next);
        a.jump_imm(Cond::Ne, R3, rule.major, &next);
        if let Some(minor) = rule.minor {
            a.jump_imm(Cond::Ne, R4, minor, &next);
        }
        let denied = denied_access_bits(rule.access);
        if denied != 0 {
            a.mov_reg(R0, R2).and32_imm(R0, denied).jump_imm(Cond::Ne, R0, 0, &next);
        }
        a.ret(1).label(&next);
    }
    a.ret(0);
    a.finish()
}

/// Attaches the filter to the guest's cgroup v2 directory; it goes with the
/// cgroup.
pub fn attach(cgroup_v2_dir: &Path, devices: &GuestDevices) -> Result<(), DeviceFilterError> {
    let insns = program(devices.rules()).map_err(DeviceFilterError::Program)?;
    let spec =
        ProgSpec { prog_type: PROG_TYPE_CGROUP_DEVICE, expected_attach_type: ATTACH_CGROUP_DEVICE, attach_btf_id: 0, name: "vs_devices" };
    let prog = load::prog_load(&spec, &insns).map_err(DeviceFilterError::Load)?;
    let dir = || cgroup_v2_dir.to_path_buf();
    let cgroup = OwnedFd::from(File::open(cgroup_v2_dir).map_err(|err| DeviceFilterError::Open { dir: dir(), err })?);
    load::prog_attach(&cgroup, &prog, ATTACH_CGROUP_DEVICE, BPF_F_ALLOW_MULTI).map_err(|err| DeviceFilterError::Attach { dir: dir(), err })
}

/// The cgroup2 device filter could not be made or attached.
#[derive(Debug, thiserror::Error)]
pub enum DeviceFilterError {
    /// A device rule the program cannot express.
    #[error("{0}")]
    Program(String),
    #[error("cannot load the device filter: {0}")]
    Load(load::LoadError),
    #[error("opening {}: {err}", dir.display())]
    Open { dir: std::path::PathBuf, err: std::io::Error },
    #[error("attaching the device filter to {}: {err}", dir.display())]
    Attach { dir: std::path::PathBuf, err: std::io::Error },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Runs the subset of eBPF the program uses on one access, as the
    /// kernel would.
    fn run(prog: &[Insn], kind: DevKind, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | type_code(kind), major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                0x61 => r[dst] = u64::from(ctx[(i.off / 4) as usize]),  // ldxw from ctx (r1)
                0xbf => r[dst] = r[src],                                // mov64 reg
                0xb7 => r[dst] = i.imm as i64 as u64,                   // mov64 imm
                0x54 => r[dst] = (r[dst] as u32 & i.imm as u32) as u64, // and32 imm
                0x56 => {
                    // jne32 imm
                    if r[dst] as u32 != i.imm as u32 {
                        pc = (pc as i64 + i.off as i64) as usize;
                    }
                }
                0x95 => return r[0],
                other => panic!("instruction {other:#x} not modelled"),
            }
        }
    }

    /// What the v1 devices controller would say for the same access, from
    /// the `devices.allow` lines.
    fn v1_allows(rules: &[String], kind: DevKind, access: u32, major: u32, minor: u32) -> bool {
        rules.iter().any(|r| {
            let f: Vec<&str> = r.split(' ').collect();
            let (maj, min) = f[1].split_once(':').unwrap();
            let letters = |bit: u32, c: char| access & bit == 0 || f[2].contains(c);
            f[0].starts_with(kind.letter())
                && maj == major.to_string()
                && (min == "*" || min == minor.to_string())
                && letters(ACC_READ, 'r')
                && letters(ACC_WRITE, 'w')
                && letters(ACC_MKNOD, 'm')
        })
    }

    #[test]
    fn the_program_and_the_v1_rules_allow_exactly_the_same() {
        let extra = [
            DeviceRule {
                kind: DevKind::Char,
                major: 6,
                minor: Some(0),
                access: Access::parse("rw").unwrap(),
                node: Some(PathBuf::from("lp0")),
            },
            DeviceRule {
                kind: DevKind::Block,
                major: 7,
                minor: Some(3),
                access: Access::parse("r").unwrap(),
                node: Some(PathBuf::from("loop3")),
            },
            DeviceRule { kind: DevKind::Char, major: 188, minor: None, access: Access::parse("rwm").unwrap(), node: None },
        ];
        let devices = GuestDevices::with_extra(&extra);
        let prog = program(devices.rules()).unwrap();
        let v1 = devices.v1_rules();
        let mut allowed = 0;
        for kind in [DevKind::Char, DevKind::Block] {
            for (major, minor) in [
                (1, 1),
                (1, 3),
                (1, 5),
                (1, 7),
                (1, 8),
                (1, 9),
                (5, 0),
                (5, 1),
                (5, 2),
                (136, 7),
                (6, 0),
                (6, 1),
                (7, 3),
                (7, 4),
                (8, 0),
                (188, 42),
                (10, 200),
            ] {
                for access in 1..8 {
                    let bpf = run(&prog, kind, access, major, minor) == 1;
                    assert_eq!(bpf, v1_allows(&v1, kind, access, major, minor), "{kind:?} {major}:{minor} access {access}");
                    allowed += usize::from(bpf);
                }
            }
        }
        assert!(allowed > 0);
        // Spot checks: /dev/mem, /dev/console and the host's first disk stay closed.
        assert_eq!(run(&prog, DevKind::Char, ACC_READ, 1, 1), 0);
        assert_eq!(run(&prog, DevKind::Char, ACC_READ | ACC_WRITE, 5, 1), 0);
        assert_eq!(run(&prog, DevKind::Block, ACC_READ, 8, 0), 0);
        // A read-only block device: reading allowed, writing not.
        assert_eq!(run(&prog, DevKind::Block, ACC_READ, 7, 3), 1);
        assert_eq!(run(&prog, DevKind::Block, ACC_WRITE, 7, 3), 0);
        assert_eq!(run(&prog, DevKind::Char, ACC_READ | ACC_WRITE, 6, 0), 1);
        assert_eq!(run(&prog, DevKind::Char, ACC_MKNOD, 6, 0), 0);
    }
}
