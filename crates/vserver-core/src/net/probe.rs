//! Can this kernel and cgroup layout enforce an IP set? Finds the cgroup v2
//! hierarchy (the programs attach to v2 directories only) and loads a trivial
//! program of each kind used, so a missing feature is reported by name
//! before a guest starts, never discovered half-way.

use std::path::{Path, PathBuf};

use super::filter::PROG_TYPE_CGROUP_SKB;
use super::programs::{attach, PROG_TYPE_CGROUP_SOCK, PROG_TYPE_CGROUP_SOCK_ADDR};
use super::NetError;
use crate::paths::Paths;
use crate::sys::ebpf::asm::Asm;
use crate::sys::ebpf::load::{self, ProgSpec};

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

// f_type is i64 here but i32 on 32-bit targets.
#[allow(clippy::unnecessary_cast)]
fn is_cgroup2(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir).map(|s| s.filesystem_type().0 as i64 == CGROUP2_SUPER_MAGIC).unwrap_or(false)
}

/// `<cgroup_root>` on a v2-only host, `<cgroup_root>/unified` on a hybrid one.
pub fn cgroup_v2_root(paths: &Paths) -> Result<PathBuf, NetError> {
    let root = &paths.cgroup_root;
    for dir in [root.clone(), root.join("unified")] {
        if is_cgroup2(&dir) {
            return Ok(dir);
        }
    }
    Err(NetError::NoCgroup2 { root: root.clone() })
}

/// The cgroup v2 root, after checking that the kernel can load every kind
/// of program a network context attaches.
pub fn probe(paths: &Paths) -> Result<PathBuf, NetError> {
    let root = cgroup_v2_root(paths)?;
    probe_kernel()?;
    Ok(root)
}

/// Loads a trivial program of each type a context attaches (sock_addr,
/// sock, skb); the first refusal is the error.
pub fn probe_kernel() -> Result<(), NetError> {
    let mut a = Asm::new();
    a.ret(1);
    let trivial = a.finish().map_err(NetError::Assemble)?;
    let kinds = [
        (PROG_TYPE_CGROUP_SOCK_ADDR, attach::INET4_BIND, "cgroup socket address (bind/connect)"),
        (PROG_TYPE_CGROUP_SOCK, attach::INET4_POST_BIND, "cgroup socket (post_bind)"),
        (PROG_TYPE_CGROUP_SKB, attach::INET_INGRESS, "cgroup packet filter"),
    ];
    for (prog_type, expected_attach_type, what) in kinds {
        let spec = ProgSpec { prog_type, expected_attach_type, attach_btf_id: 0, name: "vs_probe" };
        load::prog_load(&spec, &trivial).map_err(|err| NetError::KernelCannotLoad { what, err })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths_at(root: &Path) -> Paths {
        Paths { confdir: "/nonexistent".into(), vdirbase: "/nonexistent".into(), rundir: "/nonexistent".into(), cgroup_root: root.into() }
    }

    #[test]
    fn a_plain_directory_is_no_cgroup2_root() {
        let d = std::env::temp_dir().join(format!("vs-probe-{}", std::process::id()));
        std::fs::create_dir_all(d.join("unified")).unwrap();
        let e = cgroup_v2_root(&paths_at(&d)).unwrap_err().to_string();
        std::fs::remove_dir_all(&d).unwrap();
        assert!(e.contains("no cgroup2 hierarchy") && e.contains("vs-probe-"), "{e}");
    }
}
