//! The device controller of cgroup v2 is a BPF program: this one lets the
//! guest's processes open (and make) only the character devices of its
//! `/dev` — the same list the v1 devices controller gets as
//! `devices.allow` rules. On hybrid hosts both apply.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{Context, Result};

use crate::net::asm::{Asm, Cond, Reg, Size};
use crate::net::bpf_sys::{self, ProgSpec, BPF_F_ALLOW_MULTI};
use Reg::*;

const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const ATTACH_CGROUP_DEVICE: u32 = 6;
/// `access_type & 0xffff` of struct bpf_cgroup_dev_ctx.
const DEV_CHAR: u32 = 2;

/// (major, minor or None for all minors) of the allowed character devices.
pub const ALLOWED: &[(u32, Option<u32>)] =
    &[(1, Some(3)), (1, Some(5)), (1, Some(7)), (1, Some(8)), (1, Some(9)), (5, Some(0)), (5, Some(2)), (136, None)];

/// The program: 1 (allow) for a listed character device, 0 for anything else.
pub fn program(allowed: &[(u32, Option<u32>)]) -> Result<Vec<crate::net::asm::Insn>, String> {
    let mut a = Asm::new();
    // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
    a.load(Size::W, R2, R1, 0).and32_imm(R2, 0xffff).load(Size::W, R3, R1, 4).load(Size::W, R4, R1, 8);
    a.jump_imm(Cond::Ne, R2, DEV_CHAR, "deny");
    for (i, (major, minor)) in allowed.iter().enumerate() {
        let next = format!("next{i}");
        a.jump_imm(Cond::Ne, R3, *major, &next);
        if let Some(minor) = minor {
            a.jump_imm(Cond::Ne, R4, *minor, &next);
        }
        a.ret(1).label(&next);
    }
    a.label("deny").ret(0);
    a.finish()
}

/// Attaches the filter to the guest's cgroup v2 directory; it goes with the
/// cgroup.
pub fn attach(cgroup_v2_dir: &Path) -> Result<()> {
    let insns = program(ALLOWED).map_err(anyhow::Error::msg)?;
    let spec = ProgSpec { prog_type: PROG_TYPE_CGROUP_DEVICE, expected_attach_type: ATTACH_CGROUP_DEVICE, attach_btf_id: 0, name: "vs_devices" };
    let prog = bpf_sys::prog_load(&spec, &insns).map_err(|e| anyhow::anyhow!("cannot load the device filter: {e}"))?;
    let cgroup = OwnedFd::from(File::open(cgroup_v2_dir).with_context(|| format!("opening {}", cgroup_v2_dir.display()))?);
    bpf_sys::prog_attach(&cgroup, &prog, ATTACH_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
        .with_context(|| format!("attaching the device filter to {}", cgroup_v2_dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_per_device_and_a_default_deny() {
        let p = program(&[(1, Some(3)), (136, None)]).unwrap();
        // 4 loads/and + type check + (2 jumps + 2 ret insns) + (1 jump + 2) + deny ret (2).
        assert_eq!(p.len(), 5 + 4 + 3 + 2);
        assert!(program(&[]).unwrap().len() == 5 + 2);
    }
}
