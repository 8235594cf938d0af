//! Loading a context's programs and attaching them to a cgroup v2
//! directory. BPF_PROG_ATTACH keeps a program attached after the loading
//! process exits (no daemon, no bpffs pin), until it is detached or the
//! cgroup is removed; BPF_F_ALLOW_MULTI lets them sit beside programs others
//! (systemd) attach.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::ipset::IpSet;
use super::programs::{self, attach, Program};
use super::rtnl::{self, Route};
use super::{btf, dest, IoContext, NetError};
use crate::sys::ebpf::load::{self, ProgSpec, BPF_F_ALLOW_MULTI};

/// Every program name starts with this, which is how a detach recognises
/// ours among what else may be attached to the cgroup.
pub const NAME_PREFIX: &str = "vs_";

/// The programs attached to one cgroup; dropping this does NOT detach them.
pub struct AttachedPrograms {
    pub cgroup_dir: PathBuf,
    cgroup: OwnedFd,
    progs: Vec<(u32, OwnedFd)>,
}

fn open_cgroup(dir: &Path) -> Result<OwnedFd, NetError> {
    let f = File::open(dir).on_file("cannot open cgroup directory", dir)?;
    Ok(OwnedFd::from(f))
}

fn load(p: &Program) -> Result<OwnedFd, NetError> {
    let spec = ProgSpec { prog_type: p.prog_type, expected_attach_type: p.attach_type, attach_btf_id: p.attach_btf_id, name: p.name };
    load::prog_load(&spec, &p.insns).map_err(|err| NetError::Load { name: p.name, err })
}

/// Loads every program first (so a refusal changes nothing), then attaches
/// them; if one attach fails, the ones already attached are detached again.
/// `routes` are the host's, for choosing source addresses; `btf_cache` is
/// where the kernel's IPV6_V6ONLY bit is remembered (`btf.rs`).
pub fn attach_set(set: &IpSet, routes: &[Route], cgroup_dir: &Path, btf_cache: Option<&Path>) -> Result<AttachedPrograms, NetError> {
    let cgroup = open_cgroup(cgroup_dir)?;
    let table = dest::table(set, routes, &|dev| rtnl::ifindex(dev).ok());
    let maps = dest::create(&table).or_doing(|| "cannot create the BPF maps of the IP set".into())?;
    let bit = btf_cache.map_or_else(btf::ipv6only_bit, btf::ipv6only_bit_cached);
    let loaded = load_all(set, &maps, bit)?;
    // The programs hold references to the maps now; our fds can go.
    drop(maps);
    let mut attached = AttachedPrograms { cgroup_dir: cgroup_dir.to_path_buf(), cgroup, progs: Vec::new() };
    for (attach_type, prog) in loaded {
        if let Err(err) = load::prog_attach(&attached.cgroup, &prog, attach_type, BPF_F_ALLOW_MULTI) {
            let _ = attached.detach();
            return Err(NetError::Attach { attach_type, cgroup: cgroup_dir.to_path_buf(), err });
        }
        attached.progs.push((attach_type, prog));
    }
    Ok(attached)
}

/// Loads the programs; where the kernel refuses to read IPV6_V6ONLY
/// through BTF (no BTF, or helpers it lacks), bind6 is loaded without that
/// check: a v6-only `::` bind in a context without IPv6 addresses then
/// fails (EINVAL) instead of landing on the IPv6 loopback address.
fn load_all(set: &IpSet, maps: &dest::Maps, bit: Option<btf::BitField>) -> Result<Vec<(u32, OwnedFd)>, NetError> {
    let fds = programs::MapFds { slot: maps.slot.as_raw_fd(), exact: maps.exact.as_raw_fd(), prefixes: maps.prefixes.as_raw_fd() };
    let specs = programs::socket_programs(set, fds, bit).map_err(NetError::Programs)?;
    let mut loaded = Vec::new();
    for p in &specs {
        match load(p) {
            Ok(fd) => loaded.push((p.attach_type, fd)),
            Err(_) if bit.is_some() && p.name == "vs_bind6" => return load_all(set, maps, None),
            Err(e) => return Err(e),
        }
    }
    Ok(loaded)
}

impl AttachedPrograms {
    /// Detaches every program this value attached. Going on past an error
    /// so that as much as possible is undone; the first error is returned.
    pub fn detach(&mut self) -> Result<(), NetError> {
        let mut first = None;
        for (attach_type, prog) in self.progs.drain(..) {
            if let Err(err) = load::prog_detach(&self.cgroup, &prog, attach_type) {
                first.get_or_insert(NetError::Detach { attach_type, cgroup: self.cgroup_dir.clone(), err });
            }
        }
        first.map_or(Ok(()), Err)
    }

    pub fn count(&self) -> usize {
        self.progs.len()
    }
}

/// Detaches our programs (named `vs_*`) from a cgroup, by query, for a
/// process that did not attach them (chbind's clean-up of a context whose
/// runner died). Returns how many.
/// A missing cgroup directory means there is nothing left to detach.
pub fn detach_from_cgroup(cgroup_dir: &Path) -> Result<usize, NetError> {
    if !cgroup_dir.exists() {
        return Ok(0);
    }
    let cgroup = open_cgroup(cgroup_dir)?;
    let mut count = 0;
    for attach_type in attach::ALL {
        let ids = match load::prog_query(&cgroup, attach_type) {
            Ok(ids) => ids,
            // An attach type the kernel does not know has nothing attached.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => continue,
            Err(err) => return Err(NetError::Query { cgroup: cgroup_dir.to_path_buf(), err }),
        };
        for id in ids {
            let Ok(prog) = load::prog_fd_by_id(id) else { continue }; // detached meanwhile
            if !load::prog_name(&prog).map_err(NetError::Sys)?.starts_with(NAME_PREFIX) {
                continue;
            }
            load::prog_detach(&cgroup, &prog, attach_type).map_err(|err| NetError::DetachById {
                id,
                cgroup: cgroup_dir.to_path_buf(),
                err,
            })?;
            count += 1;
        }
    }
    Ok(count)
}

/// The maps of the programs attached to a cgroup, found through the maps
/// the bind4 program uses: how a live change of a running guest's set
/// reaches its programs without a pinned object.
pub fn maps_of(cgroup_dir: &Path) -> Result<dest::Maps, NetError> {
    let cgroup = open_cgroup(cgroup_dir)?;
    let ids = load::prog_query(&cgroup, attach::INET4_BIND).map_err(|err| NetError::Query { cgroup: cgroup_dir.to_path_buf(), err })?;
    for id in ids {
        let Ok(prog) = load::prog_fd_by_id(id) else { continue };
        let (name, map_ids) = load::prog_info(&prog).map_err(NetError::Sys)?;
        if name != "vs_bind4" {
            continue;
        }
        let (mut slot, mut exact, mut prefixes) = (None, None, None);
        for m in map_ids {
            let Ok(map) = load::map_fd_by_id(m) else { continue };
            match load::map_name(&map).map_err(NetError::Sys)?.as_str() {
                dest::SLOT_NAME => slot = Some(map),
                dest::EXACT_NAME => exact = Some(map),
                dest::PREFIXES_NAME => prefixes = Some(map),
                _ => {}
            }
        }
        if let (Some(slot), Some(exact), Some(prefixes)) = (slot, exact, prefixes) {
            return Ok(dest::Maps { slot, exact, prefixes });
        }
    }
    Err(NetError::NoPrograms { cgroup: cgroup_dir.to_path_buf() })
}

/// The names of our programs attached directly to a cgroup (for tests and
/// `status` output).
pub fn attached_names(cgroup_dir: &Path) -> Result<Vec<String>, NetError> {
    let cgroup = open_cgroup(cgroup_dir)?;
    let mut names = Vec::new();
    for attach_type in attach::ALL {
        for id in load::prog_query(&cgroup, attach_type).unwrap_or_default() {
            if let Ok(prog) = load::prog_fd_by_id(id) {
                let name = load::prog_name(&prog).map_err(NetError::Sys)?;
                if name.starts_with(NAME_PREFIX) {
                    names.push(name);
                }
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    /// The verifier is the real judge of the generated programs: every set
    /// shape must load and attach on this kernel, and detach again.
    #[test]
    fn every_set_shape_loads_attaches_and_detaches() {
        let root = std::path::Path::new("/sys/fs/cgroup/unified");
        let root = if root.join("cgroup.procs").exists() { root } else { std::path::Path::new("/sys/fs/cgroup") };
        if !nix::unistd::geteuid().is_root() || !root.join("cgroup.procs").exists() {
            assert!(std::env::var_os("CI").is_none(), "CI: this test needs root and a cgroup2 mount");
            return;
        }
        let dir = root.join(format!("vs-attach-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        struct Rm(PathBuf);
        impl Drop for Rm {
            fn drop(&mut self) {
                let _ = detach_from_cgroup(&self.0);
                let _ = std::fs::remove_dir(&self.0);
            }
        }
        let _rm = Rm(dir.clone());
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let lb = Some("127.0.3.1".parse().unwrap());
        let shapes = [
            IpSet::new(&[], None).unwrap(),
            IpSet::new(&[], lb).unwrap(),
            IpSet::new(&[ip("127.0.0.2")], None).unwrap(),
            IpSet::new(&[ip("::1")], None).unwrap(),
            IpSet::new(&[ip("::1"), ip("127.0.0.2"), ip("127.0.0.3")], lb).unwrap(),
        ];
        for set in shapes {
            let mut a = attach_set(&set, &[], &dir, None).unwrap_or_else(|e| panic!("{set:?}: {e:#}"));
            assert_eq!(attached_names(&dir).unwrap().len(), a.count());
            a.detach().unwrap();
            assert!(attached_names(&dir).unwrap().is_empty());
        }
        // Detaching by query finds what another process attached.
        let n = attach_set(&IpSet::new(&[ip("127.0.0.2")], lb).unwrap(), &[], &dir, None).unwrap().count();
        // A live change finds the maps again.
        assert_eq!(load::map_name(&maps_of(&dir).unwrap().exact).unwrap(), dest::EXACT_NAME);
        assert_eq!(detach_from_cgroup(&dir).unwrap(), n);
        assert!(attached_names(&dir).unwrap().is_empty());
    }
}
