//! The context's IP set: the exact addresses it may bind and send from (with
//! the prefix and device each came with, which source selection uses), the
//! loopback addresses 127.0.0.1 and ::1 are remapped to, and the host
//! loopback addresses it may reach. `dest.rs` turns it into the map the
//! programs read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// The most addresses a set can hold (plus loopback and routes, the map
/// has room for [`super::dest::MAX_ENTRIES`]).
pub const MAX_ADDRESSES: usize = 1023;

/// The prefix the per-guest IPv6 loopback addresses come from:
/// `fd7f:7673::/96` (a unique local prefix, "7f" for 127 and "vs"), the low
/// 32 bits being the IPv4 loopback address. Added to `lo` with scope host
/// while the guest runs, shown to the guest as `::1`.
pub const LBACK6_PREFIX: [u8; 12] = [0xfd, 0x7f, 0x76, 0x73, 0, 0, 0, 0, 0, 0, 0, 0];

/// One address of the set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub ip: IpAddr,
    /// The prefix length it came with: its subnet is reached from it.
    pub prefix: u8,
    /// The host device it is on (config `dev`), for routes through that device.
    #[serde(default)]
    pub dev: Option<String>,
}

impl Member {
    /// An address on its own (`/32`, `/128`), on no particular device.
    pub fn exact(ip: IpAddr) -> Member {
        let ip = canonical(ip);
        Member { ip, prefix: if ip.is_ipv4() { 32 } else { 128 }, dev: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSet {
    members: Vec<Member>,
    lback: Option<Ipv4Addr>,
    lback6: Option<Ipv6Addr>,
    allow_loopback: Vec<IpAddr>,
}

/// util-vserver's per-guest loopback, derived from the xid when `lback` is
/// not configured: `127.<xid high byte>.<xid low byte>.1`. Never 127.0.0.1 for a
/// guest xid (2 and up), and inside 127.0.0.0/8, which the host routes to `lo`
/// already, so nothing has to be configured on the host.
pub fn lback_for_xid(xid: u32) -> Result<Ipv4Addr, String> {
    if !(2..=0xffff).contains(&xid) {
        return Err(format!("cannot derive a loopback address from xid {xid} (2-65535); set interfaces/lback"));
    }
    Ok(Ipv4Addr::new(127, (xid >> 8) as u8, xid as u8, 1))
}

/// The IPv6 loopback address that goes with an IPv4 one.
pub fn lback6_for(lback: Ipv4Addr) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o[..12].copy_from_slice(&LBACK6_PREFIX);
    o[12..].copy_from_slice(&lback.octets());
    Ipv6Addr::from(o)
}

/// Inside `fd7f:7673::/96`?
pub fn is_lback6_range(a: Ipv6Addr) -> bool {
    a.octets()[..12] == LBACK6_PREFIX
}

/// A loopback address of either family, the guests' IPv6 loopback range
/// included: such a source can reach only loopback destinations.
pub fn is_loopback_like(a: IpAddr) -> bool {
    match canonical(a) {
        IpAddr::V4(v) => v.is_loopback(),
        IpAddr::V6(v) => v.is_loopback() || is_lback6_range(v),
    }
}

impl IpSet {
    /// `addrs` in configuration order as exact addresses (duplicates
    /// dropped; v4-mapped IPv6 addresses are taken as the IPv4 address they
    /// map); `lback` is where 127.0.0.1 goes, None for no remapping.
    pub fn new(addrs: &[IpAddr], lback: Option<Ipv4Addr>) -> Result<IpSet, String> {
        let members: Vec<Member> = addrs.iter().map(|a| Member::exact(*a)).collect();
        IpSet::with_members(&members, lback, &[])
    }

    /// The full form: members with prefix and device, the loopback address
    /// and the loopback addresses the context may reach.
    ///
    /// `::1` gets a loopback address of its own, [`lback6_for`] the IPv4
    /// one, when the IPv4 loopback is dedicated ([`IpSet::hides_lback`]) and
    /// `::1` itself is not in the set (then, as with `lback` 127.0.0.1, the
    /// context shares the host's).
    pub fn with_members(members: &[Member], lback: Option<Ipv4Addr>, allow_loopback: &[IpAddr]) -> Result<IpSet, String> {
        let mut out: Vec<Member> = Vec::new();
        for m in members {
            let ip = canonical(m.ip);
            check_ownable(ip)?;
            if ip.is_ipv6()
                && is_lback6_range(match ip {
                    IpAddr::V6(v) => v,
                    IpAddr::V4(_) => unreachable!(),
                })
            {
                return Err(format!("{ip} is inside fd7f:7673::/96, the range of the guests' IPv6 loopback addresses"));
            }
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = if m.ip.is_ipv6() && ip.is_ipv4() { m.prefix.saturating_sub(96) } else { m.prefix };
            if prefix > max {
                return Err(format!("{ip}/{prefix}: the prefix is longer than {max}"));
            }
            if !out.iter().any(|o| o.ip == ip) {
                out.push(Member { ip, prefix, dev: m.dev.clone() });
            }
        }
        if out.len() > MAX_ADDRESSES {
            return Err(format!("{} addresses are more than the {MAX_ADDRESSES} a context can hold", out.len()));
        }
        if let Some(l) = lback {
            // A loopback address of its own, or (chbind's default) an
            // address of the set that 127.0.0.1 stands for.
            if !l.is_loopback() && !out.iter().any(|m| m.ip == IpAddr::V4(l)) {
                return Err(format!("loopback address {l} is not inside 127.0.0.0/8"));
            }
        }
        let mut allow = Vec::new();
        for a in allow_loopback {
            let a = canonical(*a);
            if !a.is_loopback() {
                return Err(format!("{a} is not a loopback address (127.0.0.0/8 or ::1)"));
            }
            if !allow.contains(&a) {
                allow.push(a);
            }
        }
        let mut set = IpSet { members: out, lback, lback6: None, allow_loopback: allow };
        if set.hides_lback() && !set.members.iter().any(|m| m.ip == IpAddr::V6(Ipv6Addr::LOCALHOST)) {
            set.lback6 = lback.map(lback6_for);
        }
        Ok(set)
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn addrs(&self) -> Vec<IpAddr> {
        self.members.iter().map(|m| m.ip).collect()
    }

    pub fn lback(&self) -> Option<Ipv4Addr> {
        self.lback
    }

    /// Where `::1` goes (None: no remapping).
    pub fn lback6(&self) -> Option<Ipv6Addr> {
        self.lback6
    }

    pub fn allow_loopback(&self) -> &[IpAddr] {
        &self.allow_loopback
    }

    pub fn first_v4(&self) -> Option<Ipv4Addr> {
        self.members.iter().find_map(|m| match m.ip {
            IpAddr::V4(v) => Some(v),
            IpAddr::V6(_) => None,
        })
    }

    pub fn first_v6(&self) -> Option<Ipv6Addr> {
        self.members.iter().find_map(|m| match m.ip {
            IpAddr::V6(v) => Some(v),
            IpAddr::V4(_) => None,
        })
    }

    /// Whether 127.0.0.1 goes to an address of its own that getsockname and
    /// getpeername should show as 127.0.0.1 again. Not when it is remapped to
    /// an address of the set, or to itself: those are real addresses.
    pub fn hides_lback(&self) -> bool {
        match self.lback {
            Some(l) => l != Ipv4Addr::LOCALHOST && !self.members.iter().any(|m| m.ip == IpAddr::V4(l)),
            None => false,
        }
    }

    /// Is the address bindable in this context (the set plus the loopbacks)?
    pub fn allows(&self, a: IpAddr) -> bool {
        let a = canonical(a);
        self.members.iter().any(|m| m.ip == a)
            || matches!(a, IpAddr::V4(v) if Some(v) == self.lback)
            || matches!(a, IpAddr::V6(v) if Some(v) == self.lback6)
    }

    /// The set with one more address (a live change): refused when it is
    /// there already, or when it would change how loopback is remapped.
    pub fn with_added(&self, m: Member) -> Result<IpSet, String> {
        let ip = canonical(m.ip);
        if self.allows(ip) {
            return Err(format!("{ip} is in the set already"));
        }
        if ip == IpAddr::V6(Ipv6Addr::LOCALHOST) {
            return Err("::1 in the set turns the remapping of ::1 off; change interfaces/ and restart the guest".into());
        }
        let mut members = self.members.clone();
        members.push(m);
        let set = IpSet::with_members(&members, self.lback, &self.allow_loopback)?;
        if set.hides_lback() != self.hides_lback() {
            return Err(format!("{ip} is the loopback address 127.0.0.1 stands for; change interfaces/ and restart"));
        }
        Ok(set)
    }

    /// The set without one address (a live change).
    pub fn without(&self, ip: IpAddr) -> Result<IpSet, String> {
        let ip = canonical(ip);
        if !self.members.iter().any(|m| m.ip == ip) {
            return Err(format!("{ip} is not an address of the set"));
        }
        let members: Vec<Member> = self.members.iter().filter(|m| m.ip != ip).cloned().collect();
        let set = IpSet::with_members(&members, self.lback, &self.allow_loopback)?;
        if set.lback6 != self.lback6 || set.hides_lback() != self.hides_lback() {
            return Err(format!("removing {ip} would change the loopback remapping; change interfaces/ and restart"));
        }
        Ok(set)
    }
}

fn check_ownable(a: IpAddr) -> Result<(), String> {
    if a.is_unspecified() {
        return Err(format!("{a} is the wildcard address, not an address a context can own"));
    }
    let special = match a {
        IpAddr::V4(v) => v.is_multicast() || v.is_broadcast(),
        IpAddr::V6(v) => v.is_multicast(),
    };
    if special {
        return Err(format!("{a} is a multicast or broadcast address"));
    }
    Ok(())
}

/// `::ffff:a.b.c.d` is the IPv4 address a.b.c.d.
pub fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v) => v.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(a),
        v4 => v4,
    }
}

/// The 16-byte form the map keys use: IPv4 v4-mapped.
pub fn key(a: IpAddr) -> [u8; 16] {
    match canonical(a) {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
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
        let m = IpSet::with_members(&[Member { ip: ip("::ffff:10.0.0.5"), prefix: 120, dev: None }], None, &[]).unwrap();
        assert_eq!(m.members()[0].prefix, 24);
    }

    #[test]
    fn exact_addresses_only() {
        let set = IpSet::new(&[ip("127.0.0.2")], Some("127.0.9.1".parse().unwrap())).unwrap();
        assert!(set.allows(ip("127.0.0.2")));
        assert!(set.allows(ip("127.0.9.1")));
        assert!(set.allows(ip("fd7f:7673::127.0.9.1")));
        assert!(!set.allows(ip("127.0.0.3")));
        assert!(!set.allows(ip("127.0.0.1")));
        assert!(!set.allows(ip("::1")));
    }

    #[test]
    fn refuses_wildcards_multicast_and_odd_lback() {
        assert!(IpSet::new(&[ip("0.0.0.0")], None).unwrap_err().contains("wildcard"));
        assert!(IpSet::new(&[ip("::")], None).is_err());
        assert!(IpSet::new(&[ip("224.0.0.1")], None).is_err());
        assert!(IpSet::new(&[ip("255.255.255.255")], None).is_err());
        assert!(IpSet::new(&[ip("fd7f:7673::1")], None).unwrap_err().contains("fd7f:7673::/96"));
        assert!(IpSet::new(&[], Some("10.0.0.1".parse().unwrap())).unwrap_err().contains("127.0.0.0/8"));
        // chbind's default: 127.0.0.1 stands for the first address of the set.
        assert!(IpSet::new(&[ip("10.0.0.1")], Some("10.0.0.1".parse().unwrap())).is_ok());
        assert!(IpSet::with_members(&[], None, &[ip("10.0.0.1")]).unwrap_err().contains("not a loopback"));
    }

    #[test]
    fn lback_from_xid() {
        assert_eq!(lback_for_xid(42).unwrap(), Ipv4Addr::new(127, 0, 42, 1));
        assert_eq!(lback_for_xid(0x1234).unwrap(), Ipv4Addr::new(127, 0x12, 0x34, 1));
        assert!(lback_for_xid(0).is_err());
        assert!(lback_for_xid(70000).is_err());
        assert_eq!(lback6_for(Ipv4Addr::new(127, 0, 42, 1)), "fd7f:7673::7f00:2a01".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn only_a_dedicated_lback_is_hidden_and_brings_an_ipv6_one() {
        let l = Some("127.0.5.1".parse().unwrap());
        let s = IpSet::new(&[ip("127.0.0.2")], l).unwrap();
        assert!(s.hides_lback());
        assert_eq!(s.lback6(), Some(lback6_for("127.0.5.1".parse().unwrap())));
        assert!(!IpSet::new(&[ip("127.0.5.1")], l).unwrap().hides_lback());
        assert!(!IpSet::new(&[ip("127.0.0.2")], Some(Ipv4Addr::LOCALHOST)).unwrap().hides_lback());
        assert!(!IpSet::new(&[ip("127.0.0.2")], None).unwrap().hides_lback());
        // ::1 in the set: shared with the host, not remapped.
        assert_eq!(IpSet::new(&[ip("::1")], l).unwrap().lback6(), None);
    }

    #[test]
    fn live_changes_keep_the_loopback_remapping() {
        let s = IpSet::new(&[ip("127.0.0.2")], Some("127.0.5.1".parse().unwrap())).unwrap();
        let more = s.with_added(Member { ip: ip("10.1.0.5"), prefix: 24, dev: None }).unwrap();
        assert!(more.allows(ip("10.1.0.5")));
        assert!(s.with_added(Member::exact(ip("127.0.0.2"))).unwrap_err().contains("already"));
        assert!(s.with_added(Member::exact(ip("::1"))).is_err());
        assert!(s.with_added(Member::exact(ip("127.0.5.1"))).is_err());
        let less = more.without(ip("10.1.0.5")).unwrap();
        assert_eq!(less, s);
        assert!(s.without(ip("10.9.9.9")).unwrap_err().contains("not an address"));
    }
}
