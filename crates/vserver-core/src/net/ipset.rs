//! The context's IP set: the exact addresses it may bind and send from, the
//! first address of each family (what 0.0.0.0 and `::` become, and the source
//! of unbound sockets) and the loopback address 127.0.0.1 is remapped to.
//! Membership lives in a BPF hash map so one program serves any set size.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

use super::bpf_sys;

/// Map keys are IPv6-sized; IPv4 addresses are stored v4-mapped.
pub const KEY_SIZE: u32 = 16;
const MAX_ENTRIES: u32 = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSet {
    addrs: Vec<IpAddr>,
    lback: Option<Ipv4Addr>,
}

/// util-vserver's per-guest loopback, derived from the xid when `lback` is
/// not configured: 127.<xid high byte>.<xid low byte>.1. Never 127.0.0.1 for a
/// guest xid (2 and up), and inside 127.0.0.0/8, which the host routes to `lo`
/// already, so nothing has to be configured on the host.
pub fn lback_for_xid(xid: u32) -> Result<Ipv4Addr, String> {
    if !(2..=0xffff).contains(&xid) {
        return Err(format!("cannot derive a loopback address from xid {xid} (2-65535); set interfaces/lback"));
    }
    Ok(Ipv4Addr::new(127, (xid >> 8) as u8, xid as u8, 1))
}

impl IpSet {
    /// `addrs` in configuration order (duplicates dropped; v4-mapped IPv6
    /// addresses are taken as the IPv4 address they map); `lback` is where
    /// 127.0.0.1 goes, None for no remapping.
    pub fn new(addrs: &[IpAddr], lback: Option<Ipv4Addr>) -> Result<IpSet, String> {
        let mut out: Vec<IpAddr> = Vec::new();
        for a in addrs {
            let a = canonical(*a);
            if a.is_unspecified() {
                return Err(format!("{a} is the wildcard address, not an address a context can own"));
            }
            if is_multicast_or_broadcast(a) {
                return Err(format!("{a} is a multicast or broadcast address"));
            }
            if !out.contains(&a) {
                out.push(a);
            }
        }
        if out.len() as u32 + 1 > MAX_ENTRIES {
            return Err(format!("{} addresses are more than the {} a context can hold", out.len(), MAX_ENTRIES - 1));
        }
        if let Some(l) = lback {
            if !l.is_loopback() {
                return Err(format!("loopback address {l} is not inside 127.0.0.0/8"));
            }
        }
        Ok(IpSet { addrs: out, lback })
    }

    pub fn addrs(&self) -> &[IpAddr] {
        &self.addrs
    }

    pub fn lback(&self) -> Option<Ipv4Addr> {
        self.lback
    }

    pub fn first_v4(&self) -> Option<Ipv4Addr> {
        self.addrs.iter().find_map(|a| match a {
            IpAddr::V4(v) => Some(*v),
            IpAddr::V6(_) => None,
        })
    }

    pub fn first_v6(&self) -> Option<Ipv6Addr> {
        self.addrs.iter().find_map(|a| match a {
            IpAddr::V6(v) => Some(*v),
            IpAddr::V4(_) => None,
        })
    }

    /// Whether 127.0.0.1 goes to an address of its own that getsockname and
    /// getpeername should show as 127.0.0.1 again. Not when it is remapped to
    /// an address of the set, or to itself: those are real addresses.
    pub fn hides_lback(&self) -> bool {
        match self.lback {
            Some(l) => l != Ipv4Addr::LOCALHOST && !self.addrs.contains(&IpAddr::V4(l)),
            None => false,
        }
    }

    /// Is the address bindable in this context (the set plus the loopback)?
    pub fn allows(&self, a: IpAddr) -> bool {
        let a = canonical(a);
        self.addrs.contains(&a) || matches!(a, IpAddr::V4(v) if Some(v) == self.lback)
    }

    /// The map keys: each address and the loopback, v4-mapped where IPv4.
    pub fn map_keys(&self) -> Vec<[u8; 16]> {
        let mut keys: Vec<[u8; 16]> = self.addrs.iter().map(|a| key(*a)).collect();
        if let Some(l) = self.lback {
            let k = key(IpAddr::V4(l));
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        keys
    }

    /// A BPF hash map holding the set; the programs look addresses up in it.
    pub fn create_map(&self) -> io::Result<OwnedFd> {
        let map = bpf_sys::map_create(bpf_sys::BPF_MAP_TYPE_HASH, KEY_SIZE, 1, MAX_ENTRIES, "vs_ipset")?;
        for k in self.map_keys() {
            bpf_sys::map_update(&map, &k, &[1])?;
        }
        Ok(map)
    }
}

/// `::ffff:a.b.c.d` is the IPv4 address a.b.c.d.
pub fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v) => v.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(a),
        v4 => v4,
    }
}

pub fn key(a: IpAddr) -> [u8; 16] {
    match canonical(a) {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    }
}

fn is_multicast_or_broadcast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.is_multicast() || v.is_broadcast(),
        IpAddr::V6(v) => v.is_multicast(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn first_addresses_per_family_in_order() {
        let set = IpSet::new(&[ip("::1"), ip("127.0.0.2"), ip("127.0.0.3"), ip("127.0.0.2")], None).unwrap();
        assert_eq!(set.addrs().len(), 3);
        assert_eq!(set.first_v4(), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(set.first_v6(), Some(Ipv6Addr::LOCALHOST));
        let v4only = IpSet::new(&[ip("127.0.0.2")], None).unwrap();
        assert_eq!(v4only.first_v6(), None);
    }

    #[test]
    fn v4_mapped_addresses_are_ipv4() {
        let set = IpSet::new(&[ip("::ffff:127.0.0.2")], None).unwrap();
        assert_eq!(set.first_v4(), Some("127.0.0.2".parse().unwrap()));
        assert!(set.allows(ip("127.0.0.2")));
        assert!(set.allows(ip("::ffff:127.0.0.2")));
        assert_eq!(key(ip("127.0.0.2")), key(ip("::ffff:127.0.0.2")));
    }

    #[test]
    fn exact_addresses_only() {
        let set = IpSet::new(&[ip("127.0.0.2")], Some("127.0.9.1".parse().unwrap())).unwrap();
        assert!(set.allows(ip("127.0.0.2")));
        assert!(set.allows(ip("127.0.9.1")));
        assert!(!set.allows(ip("127.0.0.3")));
        assert!(!set.allows(ip("127.0.0.1")));
        assert_eq!(set.map_keys().len(), 2);
    }

    #[test]
    fn refuses_wildcards_multicast_and_odd_lback() {
        assert!(IpSet::new(&[ip("0.0.0.0")], None).unwrap_err().contains("wildcard"));
        assert!(IpSet::new(&[ip("::")], None).is_err());
        assert!(IpSet::new(&[ip("224.0.0.1")], None).is_err());
        assert!(IpSet::new(&[ip("255.255.255.255")], None).is_err());
        assert!(IpSet::new(&[], Some("10.0.0.1".parse().unwrap())).unwrap_err().contains("127.0.0.0/8"));
    }

    #[test]
    fn lback_from_xid() {
        assert_eq!(lback_for_xid(42).unwrap(), Ipv4Addr::new(127, 0, 42, 1));
        assert_eq!(lback_for_xid(0x1234).unwrap(), Ipv4Addr::new(127, 0x12, 0x34, 1));
        assert!(lback_for_xid(0).is_err());
        assert!(lback_for_xid(70000).is_err());
    }

    #[test]
    fn hides_only_a_dedicated_lback() {
        let l = Some("127.0.5.1".parse().unwrap());
        assert!(IpSet::new(&[ip("127.0.0.2")], l).unwrap().hides_lback());
        assert!(!IpSet::new(&[ip("127.0.5.1")], l).unwrap().hides_lback());
        assert!(!IpSet::new(&[ip("127.0.0.2")], Some(Ipv4Addr::LOCALHOST)).unwrap().hides_lback());
        assert!(!IpSet::new(&[ip("127.0.0.2")], None).unwrap().hides_lback());
    }
}
