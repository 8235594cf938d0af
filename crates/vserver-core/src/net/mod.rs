//! Network contexts: a context binds and sends only from its IP set,
//! enforced by cgroup-BPF programs on its cgroup v2 directory (Linux-VServer's
//! "sockets isolation": all addresses stay on the host, the guest gets a
//! subset). `chbind` runs one command in a transient context; a guest gets
//! its context from `interfaces/` at start, and `vserver NAME ip` changes it
//! while it runs (`live`). What a context may do is data in its maps
//! (`dest`), read by small programs (`programs`, `filter`); abstract unix
//! sockets are kept apart by Landlock (`abstract_unix`).
//!
//! Start order for a guest (the `context` module calls these):
//! 1. [`abstract_unix::check_guest`] refuses what the kernel cannot isolate
//!    and [`guest_network`] validates the config (before anything changes);
//! 2. [`probe`] checks kernel and cgroup layout;
//! 3. [`NetContext::apply_to_cgroup`] on the guest's v2 cgroup, before its
//!    first process runs there (sockets carry the cgroup they were made in);
//! 4. [`NetContext::add_host_addresses`], then [`live::record`];
//! 5. [`abstract_unix::scope_for_guest`] in the monitor before it forks pid 1;
//! 6. at stop: the monitor's `AttachedPrograms::detach`, then
//!    [`remove_host_addresses`] of what [`live::forget`] returns (live
//!    additions included). [`detach_from_cgroup`] is for a process that did
//!    not attach the programs (chbind's clean-up).

pub mod abstract_unix;
mod addr;
mod attach;
mod btf;
pub mod dest;
mod emit;
mod error;
mod filter;
mod ipset;
pub mod live;
mod netns;
mod probe;
mod programs;
pub mod rtnl;
pub mod run;
mod sockets;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

pub use addr::AddedAddress;
pub use attach::{attached_names, detach_from_cgroup, maps_of, AttachedPrograms};
use error::IoContext;
pub use error::{InterfacesError, NetError};
pub use ipset::{lback6_for, lback_for_xid, IpSet, Member};
pub use netns::{remove_veth, setup_veth, IpCommandError, VethConfig};

pub use probe::{cgroup_v2_root, probe};

use crate::config::NetConfig;

/// The marker file that lets a guest share the host network unrestricted:
/// `interfaces/unrestricted`. Without it a guest with no addresses can bind
/// nothing (util-vserver guests without `interfaces/` were unrestricted;
/// here that has to be said explicitly).
pub const UNRESTRICTED_MARKER: &str = "interfaces/unrestricted";

/// What a guest's config says about its network.
#[derive(Debug)]
pub enum GuestNetwork {
    /// `interfaces/unrestricted` exists: no programs, no addresses.
    Unrestricted,
    Restricted(NetContext),
}

/// A validated IP set plus the host addresses it needs.
#[derive(Debug, Clone)]
pub struct NetContext {
    set: IpSet,
    addresses: Vec<addr::WantedAddress>,
}

/// Reads the unrestricted marker and validates the config; errors name the
/// file. Nothing on the host changes here.
pub fn guest_network(guest_confdir: &Path, cfg: &NetConfig, xid: u32) -> Result<GuestNetwork, NetError> {
    let marker = guest_confdir.join(UNRESTRICTED_MARKER);
    if marker.exists() {
        if let Some(i) = cfg.interfaces.first() {
            let interface = guest_confdir.join("interfaces").join(&i.id);
            return Err(NetError::UnrestrictedWithInterfaces { marker, interface, ip: i.ip });
        }
        return Ok(GuestNetwork::Unrestricted);
    }
    let ctx = NetContext::from_config(cfg, xid).map_err(|err| NetError::Interfaces { dir: guest_confdir.join("interfaces"), err })?;
    Ok(GuestNetwork::Restricted(ctx))
}

impl NetContext {
    /// The guest's set: its `interfaces/N/ip` in order (with prefix and
    /// device), 127.0.0.1 remapped to `interfaces/lback` or, without one, to
    /// [`lback_for_xid`], `::1` to the IPv6 loopback address that goes with
    /// it, and `interfaces/allow-loopback`. `lback` 127.0.0.1 switches
    /// remapping off (127.0.0.1 and ::1 are shared with the host). Devices
    /// must exist.
    pub fn from_config(cfg: &NetConfig, xid: u32) -> Result<NetContext, InterfacesError> {
        let lback = match cfg.lback {
            Some(IpAddr::V4(l)) => l,
            Some(IpAddr::V6(lback)) => return Err(InterfacesError::LbackNotIpv4 { lback }),
            None => lback_for_xid(xid).map_err(InterfacesError::Lback)?,
        };
        let members: Vec<Member> =
            cfg.interfaces.iter().map(|i| Member { ip: i.ip, prefix: i.prefix, dev: i.dev.clone().filter(|_| !i.nodev) }).collect();
        let set = IpSet::with_members(&members, Some(lback), &cfg.allow_loopback).map_err(InterfacesError::Set)?;
        let mut addresses = Vec::new();
        for i in &cfg.interfaces {
            let Some(dev) = i.dev.as_deref().filter(|_| !i.nodev) else { continue };
            if !addr::device_exists(dev) {
                return Err(InterfacesError::NoDevice { id: i.id.clone(), dev: dev.to_string() });
            }
            let label = match (&i.name, i.ip) {
                (Some(n), IpAddr::V4(_)) => {
                    let l = format!("{dev}:{n}");
                    if l.len() > 15 {
                        return Err(InterfacesError::LabelTooLong { id: i.id.clone(), label: l });
                    }
                    Some(l)
                }
                _ => None,
            };
            addresses.push(addr::WantedAddress { ip: i.ip, prefix: i.prefix, dev: dev.to_string(), label, scope_host: false });
        }
        let mut ctx = NetContext { set, addresses };
        ctx.add_loopback6();
        Ok(ctx)
    }

    /// A context from `chbind`-style arguments; the only host address it
    /// needs is its IPv6 loopback address, if it has one.
    pub fn from_set(set: IpSet) -> NetContext {
        let mut ctx = NetContext { set, addresses: Vec::new() };
        ctx.add_loopback6();
        ctx
    }

    /// The IPv6 loopback address lives on `lo` while the context runs
    /// (127.0.0.0/8 is routed to `lo` already; IPv6 has only ::1 there).
    fn add_loopback6(&mut self) {
        if let Some(l6) = self.set.lback6() {
            self.addresses.push(addr::WantedAddress {
                ip: IpAddr::V6(l6),
                prefix: 128,
                dev: "lo".to_string(),
                label: None,
                scope_host: true,
            });
        }
    }

    pub fn set(&self) -> &IpSet {
        &self.set
    }

    /// Attaches the programs to a cgroup v2 directory. Call before the first
    /// process of the context enters it. The programs stay attached when the
    /// calling process exits; [`detach_from_cgroup`] or removing the cgroup
    /// ends them. Source addresses follow the host's routes as they are now.
    /// `rundir` keeps what is learnt from the kernel's BTF once per boot.
    pub fn apply_to_cgroup(&self, cgroup_v2_dir: &Path, rundir: &Path) -> Result<AttachedPrograms, NetError> {
        let routes = host_routes()?;
        let cache = rundir.is_dir().then(|| rundir.join(BTF_CACHE));
        attach::attach_set(&self.set, &routes, cgroup_v2_dir, cache.as_deref())
    }

    /// Adds the addresses with a `dev` (and no `nodev`), and the IPv6
    /// loopback address, to their devices; returns only those that were not
    /// there before.
    pub fn add_host_addresses(&self) -> Result<Vec<AddedAddress>, NetError> {
        addr::add_addresses(&self.addresses)
    }
}

/// The host's routes as they are now, for choosing source addresses.
fn host_routes() -> Result<Vec<rtnl::Route>, NetError> {
    rtnl::Rtnl::open().and_then(|mut nl| nl.routes()).map_err(NetError::Routes)
}

/// The file in the run directory that remembers the kernel's IPV6_V6ONLY bit.
pub const BTF_CACHE: &str = ".kernel-btf";

/// Can a bind program tell IPV6_V6ONLY sockets apart on this kernel (for
/// `vserver-info`)? Needs the kernel's BTF (`/sys/kernel/btf/vmlinux`) and
/// the bpf_skc_to_tcp6_sock/udp6_sock helpers (5.9). Without it a v6-only
/// `::` bind in a context without IPv6 addresses fails with EINVAL.
pub fn ipv6only_detection() -> Result<(), NetError> {
    let path = PathBuf::from(btf::KERNEL_BTF);
    match btf::read_ipv6only_bit() {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(NetError::NoIpv6onlyBit { path }),
        Err(err) => Err(NetError::NoKernelBtf { path, err }),
    }
}

/// Removes what [`NetContext::add_host_addresses`] added.
pub fn remove_host_addresses(added: &[AddedAddress]) -> Result<(), NetError> {
    addr::remove_addresses(added)
}

/// chbind's default for 127.0.0.1 without `--lback` or `--nid`: the first
/// IPv4 address of the set (what Linux-VServer kernels before `lback` did).
pub fn default_chbind_lback(addrs: &[IpAddr]) -> Option<Ipv4Addr> {
    addrs.iter().find_map(|a| match ipset::canonical(*a) {
        IpAddr::V4(v) => Some(v),
        IpAddr::V6(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Interface;

    fn iface(id: &str, ip: &str, dev: Option<&str>) -> Interface {
        Interface {
            id: id.into(),
            ip: ip.parse().unwrap(),
            prefix: 8,
            dev: dev.map(String::from),
            name: None,
            nodev: false,
            bcast: None,
            scope: None,
            peer: None,
            up: true,
        }
    }

    #[test]
    fn guest_config_becomes_a_set_with_derived_lback() {
        let cfg = NetConfig {
            interfaces: vec![iface("0", "127.0.0.2", Some("lo")), iface("1", "::1", None)],
            lback: None,
            allow_loopback: vec![],
        };
        let ctx = NetContext::from_config(&cfg, 42).unwrap();
        assert_eq!(ctx.set().lback(), Some(Ipv4Addr::new(127, 0, 42, 1)));
        // ::1 is in this set, so there is no IPv6 loopback address to add.
        assert_eq!(ctx.addresses.len(), 1);
        assert!(ctx.set().hides_lback());
        let v4 = NetConfig { interfaces: vec![iface("0", "127.0.0.2", None)], lback: None, allow_loopback: vec![] };
        let ctx = NetContext::from_config(&v4, 42).unwrap();
        assert_eq!(ctx.addresses.len(), 1, "the IPv6 loopback address on lo");
        assert_eq!(ctx.addresses[0].ip, "fd7f:7673::127.0.42.1".parse::<IpAddr>().unwrap());
        assert!(ctx.addresses[0].scope_host);
    }

    #[test]
    fn bad_devices_and_labels_are_errors() {
        let cfg = NetConfig { interfaces: vec![iface("0", "127.0.0.2", Some("nosuchdev0"))], lback: None, allow_loopback: vec![] };
        let e = NetContext::from_config(&cfg, 42).unwrap_err().to_string();
        assert!(e.contains("0/dev") && e.contains("nosuchdev0"), "{e}");
        let mut i = iface("3", "127.0.0.2", Some("lo"));
        i.name = Some("averyverylongname".into());
        let e =
            NetContext::from_config(&NetConfig { interfaces: vec![i], lback: None, allow_loopback: vec![] }, 42).unwrap_err().to_string();
        assert!(e.contains("3/name"), "{e}");
        let e = NetContext::from_config(&NetConfig { interfaces: vec![], lback: Some("::1".parse().unwrap()), allow_loopback: vec![] }, 42)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lback"), "{e}");
    }

    #[test]
    fn nodev_addresses_are_only_in_the_set() {
        let mut i = iface("0", "127.0.0.2", Some("lo"));
        i.nodev = true;
        let ctx = NetContext::from_config(&NetConfig { interfaces: vec![i], lback: None, allow_loopback: vec![] }, 42).unwrap();
        assert!(ctx.addresses.iter().all(|a| a.dev == "lo" && a.scope_host), "only the IPv6 loopback address");
        assert!(ctx.set().allows("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn unrestricted_needs_the_marker_and_no_interfaces() {
        let d = crate::config::parse::tests::tempdir();
        std::fs::create_dir_all(d.join("interfaces")).unwrap();
        let none = NetConfig::default();
        assert!(matches!(guest_network(&d, &none, 42).unwrap(), GuestNetwork::Restricted(_)));
        std::fs::write(d.join(UNRESTRICTED_MARKER), "").unwrap();
        assert!(matches!(guest_network(&d, &none, 42).unwrap(), GuestNetwork::Unrestricted));
        let some = NetConfig { interfaces: vec![iface("0", "127.0.0.2", None)], lback: None, allow_loopback: vec![] };
        assert!(guest_network(&d, &some, 42).unwrap_err().to_string().contains("cannot also be unrestricted"));
    }
}
