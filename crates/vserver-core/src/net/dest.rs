//! The one map every program of a context reads: an LPM trie from address
//! prefixes to what the context may do with them. One longest-prefix lookup
//! answers, for any address, whether the context may bind it (MEMBER),
//! connect or send to it (REACH), whether it stands for another address
//! (REMAP: 127.0.0.1, `::1`, `::`), and which source address of the set an
//! unbound socket gets for it (chosen as the host's routing would choose
//! among the set's addresses, Linux-VServer's rule; NOSRC when only a
//! loopback source would remain for a non-loopback destination).
//!
//! Stored as two maps, so the common case costs a hash lookup: the exact
//! (full-length) entries in a hash map, looked up first, the prefixes in an
//! LPM trie, looked up on a miss. Every key starts with a slot number (0
//! or 1) and a third map holds the slot in use. A live change of the set writes
//! the complete new table under the other slot and then flips the slot
//! number, one aligned word: a program reads the slot once and sees the old
//! set or the new, never a mixture.
//!
//! Why not two maps per slot in arrays of maps: putting a map into an array
//! of maps makes the kernel wait for an RCU grace period (the update returns
//! only once no program can still hold the map it replaced), 5-20 ms each on
//! a loaded host, twice per guest start. Keyed slots need no such wait at
//! start; a live change waits once, after its flip (`live.rs`).

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

use super::ipset::{canonical, is_loopback_like, key, IpSet, LBACK6_PREFIX};
use super::rtnl::Route;
use crate::sys::ebpf::load;

/// `struct bpf_lpm_trie_key`: a u32 prefix length, then the data: the u32
/// slot and the 16 address bytes. The slot is part of every prefix.
pub const KEY_SIZE: u32 = 24;
pub const VALUE_SIZE: u32 = 56;
/// Both slots' tables (each at most half of it) during a live change.
pub const MAX_ENTRIES: u32 = 8192;
/// The exact entries' hash map is keyed by the slot and the 16 address bytes.
pub const EXACT_KEY_SIZE: u32 = 20;
/// The bits of the slot number in front of every prefix.
pub const SLOT_BITS: u32 = 32;

// Value layout: u32 flags, u32 pad, then three 16-byte addresses.
pub const V_FLAGS: i16 = 0;
/// The source an unbound socket gets for this destination (for the
/// wildcard entry: the target of a 0.0.0.0 bind).
pub const V_SRC: i16 = 8;
/// REMAP entries: the address that replaces the destination. Wildcard
/// entry: the target of a dual-stack `::` bind.
pub const V_ALT: i16 = 24;
/// Wildcard entry: the target of an IPV6_V6ONLY `::` bind.
pub const V_V6ONLY: i16 = 40;

pub const MEMBER: u32 = 1;
pub const REACH: u32 = 2;
pub const REMAP: u32 = 4;
pub const NOSRC: u32 = 8;
/// A loopback address outside the set the context may reach (exact).
pub const PEER: u32 = 16;
/// The context's own dedicated loopback address (v4 or v6).
pub const LBACK: u32 = 32;

const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_LPM_TRIE: u32 = 11;
/// Elements are replaced under RCU, never reused while a program reads them.
const BPF_F_NO_PREALLOC: u32 = 1;

/// One entry: a prefix in the 128-bit key space (IPv4 v4-mapped, its
/// prefix length plus 96) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub flags: u32,
    pub src: [u8; 16],
    pub alt: [u8; 16],
    pub v6only: [u8; 16],
}

impl Entry {
    fn new(flags: u32) -> Entry {
        Entry { flags, src: [0; 16], alt: [0; 16], v6only: [0; 16] }
    }

    fn with_src(flags: u32, src: Option<IpAddr>) -> Entry {
        match src {
            Some(s) => Entry { src: key(s), ..Entry::new(flags) },
            None => Entry::new(flags | NOSRC),
        }
    }

    fn value(&self) -> [u8; VALUE_SIZE as usize] {
        let mut v = [0u8; VALUE_SIZE as usize];
        v[..4].copy_from_slice(&self.flags.to_ne_bytes());
        v[8..24].copy_from_slice(&self.src);
        v[24..40].copy_from_slice(&self.alt);
        v[40..56].copy_from_slice(&self.v6only);
        v
    }
}

/// (prefix length in the 128-bit space, address bytes).
pub type Prefix = (u8, [u8; 16]);

fn prefix_of(a: IpAddr, len: u8) -> Prefix {
    let a = canonical(a);
    let (bits, len) = if a.is_ipv4() { (key(a), len + 96) } else { (key(a), len) };
    let mut masked = bits;
    for (i, b) in masked.iter_mut().enumerate() {
        let keep = (len as i32 - 8 * i as i32).clamp(0, 8);
        *b &= (0xffu16 << (8 - keep)) as u8;
    }
    (len, masked)
}

fn exact(a: IpAddr) -> Prefix {
    prefix_of(a, if canonical(a).is_ipv4() { 32 } else { 128 })
}

/// The first address of the set of `a`'s family that can be a source for
/// a non-loopback destination.
fn first_routable(set: &IpSet, v4: bool) -> Option<IpAddr> {
    set.members().iter().map(|m| m.ip).find(|ip| ip.is_ipv4() == v4 && !is_loopback_like(*ip))
}

/// The source for a loopback destination outside the set.
fn loopback_source(set: &IpSet, v4: bool) -> Option<IpAddr> {
    if v4 {
        set.lback().map(IpAddr::V4).or_else(|| set.members().iter().map(|m| m.ip).find(|ip| ip.is_ipv4() && ip.is_loopback()))
    } else {
        set.lback6().map(IpAddr::V6).or_else(|| set.members().iter().map(|m| m.ip).find(|ip| ip.is_ipv6() && ip.is_loopback()))
    }
}

fn contains(net: IpAddr, prefix: u8, a: IpAddr) -> bool {
    net.is_ipv4() == canonical(a).is_ipv4() && prefix_of(net, prefix) == prefix_of(a, prefix)
}

/// The address of the set the host's routing would use for a route:
/// its preferred source if that is in the set, else the address whose
/// subnet holds the gateway (longest prefix first), else the first address
/// on the route's device.
fn route_source(set: &IpSet, r: &Route, dev_index: &dyn Fn(&str) -> Option<u32>) -> Option<IpAddr> {
    let family: Vec<_> = set.members().iter().filter(|m| m.ip.is_ipv4() == r.dst.is_ipv4() && !is_loopback_like(m.ip)).collect();
    if let Some(p) = r.prefsrc.filter(|p| family.iter().any(|m| m.ip == *p)) {
        return Some(p);
    }
    if let Some(gw) = r.gateway {
        let by_subnet = family.iter().filter(|m| contains(m.ip, m.prefix, gw)).max_by_key(|m| m.prefix);
        if let Some(m) = by_subnet {
            return Some(m.ip);
        }
    }
    let oif = r.oif?;
    family.iter().find(|m| m.dev.as_deref().and_then(dev_index) == Some(oif)).map(|m| m.ip)
}

/// Every entry of the map for this set, given the host's routes.
pub fn table(set: &IpSet, routes: &[Route], dev_index: &dyn Fn(&str) -> Option<u32>) -> BTreeMap<Prefix, Entry> {
    let mut t = BTreeMap::new();
    let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    // Later inserts win over earlier ones for the same prefix; the longest
    // prefix wins at lookup. Least specific rules first.
    // 1. Anything else: the first address that can reach it.
    t.insert(prefix_of(any4, 0), Entry::with_src(REACH, first_routable(set, true)));
    t.insert(prefix_of(any6, 0), Entry::with_src(REACH, first_routable(set, false)));
    // 2. The host's routes, each with the source its routing would pick.
    for r in routes {
        if is_loopback_like(r.dst) || canonical(r.dst).is_multicast() {
            continue;
        }
        if let Some(src) = route_source(set, r, dev_index) {
            t.insert(prefix_of(r.dst, r.prefix), Entry::with_src(REACH, Some(src)));
        }
    }
    // 3. The subnets of the set's addresses, reached from that address
    //    (the first address wins among several in one subnet).
    for m in set.members().iter().rev() {
        let full = if m.ip.is_ipv4() { 32 } else { 128 };
        if !is_loopback_like(m.ip) && m.prefix < full {
            t.insert(prefix_of(m.ip, m.prefix), Entry::with_src(REACH, Some(m.ip)));
        }
    }
    // 4. Loopback: out of reach unless listed below.
    t.insert(prefix_of("127.0.0.0".parse().unwrap(), 8), Entry::new(0));
    let mut range = [0u8; 16];
    range[..12].copy_from_slice(&LBACK6_PREFIX);
    t.insert((96, range), Entry::new(0));
    t.insert(exact(IpAddr::V6(Ipv6Addr::LOCALHOST)), Entry::new(0));
    // 5. Loopback addresses the config lets it reach.
    for a in set.allow_loopback() {
        t.insert(exact(*a), Entry::with_src(REACH | PEER, loopback_source(set, a.is_ipv4())));
    }
    // 6. The set itself: bindable, reachable, its own source.
    for m in set.members() {
        t.insert(exact(m.ip), Entry::with_src(MEMBER | REACH, Some(m.ip)));
    }
    // 7. The loopback addresses and what stands for them.
    let lb = if set.hides_lback() { LBACK } else { 0 };
    if let Some(l) = set.lback().map(IpAddr::V4) {
        t.insert(exact(l), Entry::with_src(MEMBER | REACH | lb, Some(l)));
        if l != IpAddr::V4(Ipv4Addr::LOCALHOST) {
            t.insert(exact(IpAddr::V4(Ipv4Addr::LOCALHOST)), Entry { alt: key(l), ..Entry::with_src(REACH | REMAP, Some(l)) });
        }
    }
    let v6_loopback =
        set.lback6().map(IpAddr::V6).or_else(|| set.allows(IpAddr::V6(Ipv6Addr::LOCALHOST)).then_some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    if let Some(l6) = set.lback6().map(IpAddr::V6) {
        t.insert(exact(l6), Entry::with_src(MEMBER | REACH | LBACK, Some(l6)));
        t.insert(exact(IpAddr::V6(Ipv6Addr::LOCALHOST)), Entry { alt: key(l6), ..Entry::with_src(REACH | REMAP, Some(l6)) });
    }
    // connect()/sendto() to `::` means ::1 to the kernel.
    let to_any6 = match v6_loopback {
        Some(l) => Entry { alt: key(l), ..Entry::with_src(REACH | REMAP, Some(l)) },
        None => Entry::new(0),
    };
    t.insert(exact(any6), to_any6);
    // 8. The wildcard: 0.0.0.0 (and connect() to it, which the kernel sends
    //    to the socket's own source), and where `::` binds go.
    let first4 = set.first_v4().map(IpAddr::V4);
    let first6 = set.first_v6().map(IpAddr::V6);
    let mut wild = Entry::with_src(REACH, first4);
    if let Some(dual) = first6.or(first4) {
        wild.alt = key(dual);
    }
    if let Some(v6only) = first6.or(set.lback6().map(IpAddr::V6)) {
        wild.v6only = key(v6only);
    }
    t.insert(exact(any4), wild);
    t
}

fn key_bytes(slot: u32, p: &Prefix) -> [u8; KEY_SIZE as usize] {
    let mut k = [0u8; KEY_SIZE as usize];
    k[..4].copy_from_slice(&(SLOT_BITS + p.0 as u32).to_ne_bytes());
    k[4..8].copy_from_slice(&slot.to_ne_bytes());
    k[8..].copy_from_slice(&p.1);
    k
}

fn exact_key_bytes(slot: u32, addr: &[u8; 16]) -> [u8; EXACT_KEY_SIZE as usize] {
    let mut k = [0u8; EXACT_KEY_SIZE as usize];
    k[..4].copy_from_slice(&slot.to_ne_bytes());
    k[4..].copy_from_slice(addr);
    k
}

/// The names the maps are created with, by which a live change finds them
/// (not those of the earlier arrays of maps: a guest started by an older
/// version is refused a live change instead of getting a wrong one).
pub const SLOT_NAME: &str = "vs_slot";
pub const EXACT_NAME: &str = "vs_slot_exact";
pub const PREFIXES_NAME: &str = "vs_slot_prefix";

/// The three maps the programs are loaded with.
pub struct Maps {
    /// ARRAY of one u32: the slot in use (0 or 1).
    pub slot: OwnedFd,
    /// HASH: (slot, address) to the exact entries.
    pub exact: OwnedFd,
    /// LPM_TRIE: (slot, prefix) to the other entries.
    pub prefixes: OwnedFd,
}

/// Writes the table under `slot`.
fn fill(maps: &Maps, slot: u32, t: &BTreeMap<Prefix, Entry>) -> io::Result<()> {
    for (p, e) in t {
        if p.0 == 128 {
            load::map_update(&maps.exact, &exact_key_bytes(slot, &p.1), &e.value())?;
        } else {
            load::map_update(&maps.prefixes, &key_bytes(slot, p), &e.value())?;
        }
    }
    Ok(())
}

/// Removes every entry of `slot`, which no program may be reading.
fn clear(maps: &Maps, slot: u32) -> io::Result<()> {
    let mine = |k: &[u8], at: usize| k.get(at..at + 4) == Some(&slot.to_ne_bytes()[..]);
    for k in load::map_keys(&maps.exact, EXACT_KEY_SIZE as usize)?.iter().filter(|k| mine(k, 0)) {
        load::map_delete(&maps.exact, k)?;
    }
    for k in load::map_keys(&maps.prefixes, KEY_SIZE as usize)?.iter().filter(|k| mine(k, 4)) {
        load::map_delete(&maps.prefixes, k)?;
    }
    Ok(())
}

/// The maps of a new context, its table in slot 0.
pub fn create(t: &BTreeMap<Prefix, Entry>) -> io::Result<Maps> {
    let maps = Maps {
        slot: load::map_create(BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0, None, SLOT_NAME)?,
        exact: load::map_create(BPF_MAP_TYPE_HASH, EXACT_KEY_SIZE, VALUE_SIZE, MAX_ENTRIES, BPF_F_NO_PREALLOC, None, EXACT_NAME)?,
        prefixes: load::map_create(BPF_MAP_TYPE_LPM_TRIE, KEY_SIZE, VALUE_SIZE, MAX_ENTRIES, BPF_F_NO_PREALLOC, None, PREFIXES_NAME)?,
    };
    fill(&maps, 0, t)?;
    // The array starts zeroed; written anyway, so the slot never depends on that.
    load::map_update(&maps.slot, &0u32.to_ne_bytes(), &0u32.to_ne_bytes())?;
    Ok(maps)
}

/// A live change: the table goes into the slot not in use, then the slot
/// number flips. The caller serialises changes and waits for running
/// programs (see `live.rs`) before the next one clears the old slot.
pub fn replace(maps: &Maps, t: &BTreeMap<Prefix, Entry>) -> io::Result<()> {
    let mut cur = [0u8; 4];
    load::map_lookup(&maps.slot, &0u32.to_ne_bytes(), &mut cur)?;
    let next = 1 - (u32::from_ne_bytes(cur) & 1);
    // What is left there is a set no program has read since the wait after
    // the flip away from it.
    clear(maps, next)?;
    fill(maps, next, t)?;
    load::map_update(&maps.slot, &0u32.to_ne_bytes(), &next.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ipset::Member;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The longest-prefix match, as the kernel's trie answers.
    fn lookup<'a>(t: &'a BTreeMap<Prefix, Entry>, a: &str) -> &'a Entry {
        let a = ip(a);
        (0..=128u8).rev().find_map(|len| t.get(&(len, prefix_of_raw(key(a), len)))).unwrap()
    }

    fn prefix_of_raw(bits: [u8; 16], len: u8) -> [u8; 16] {
        let mut m = bits;
        for (i, b) in m.iter_mut().enumerate() {
            let keep = (len as i32 - 8 * i as i32).clamp(0, 8);
            *b &= (0xffu16 << (8 - keep)) as u8;
        }
        m
    }

    fn src(e: &Entry) -> IpAddr {
        canonical(IpAddr::V6(Ipv6Addr::from(e.src)))
    }

    fn no_dev(_: &str) -> Option<u32> {
        None
    }

    #[test]
    fn members_loopback_and_remapping() {
        let set = IpSet::with_members(
            &[Member::exact(ip("127.0.0.71")), Member { ip: ip("10.200.0.1"), prefix: 24, dev: None }],
            Some("127.0.9.1".parse().unwrap()),
            &[ip("127.0.0.53")],
        )
        .unwrap();
        let t = table(&set, &[], &no_dev);
        assert_eq!(lookup(&t, "127.0.0.71").flags, MEMBER | REACH);
        assert_eq!(lookup(&t, "127.0.9.1").flags, MEMBER | REACH | LBACK);
        let one = lookup(&t, "127.0.0.1");
        assert_eq!(one.flags, REACH | REMAP);
        assert_eq!(canonical(IpAddr::V6(Ipv6Addr::from(one.alt))), ip("127.0.9.1"));
        // Other loopback addresses: out of reach, but for the allowed one.
        assert_eq!(lookup(&t, "127.0.0.9").flags, 0);
        assert_eq!(lookup(&t, "127.0.0.53").flags, REACH | PEER);
        assert_eq!(src(lookup(&t, "127.0.0.53")), ip("127.0.9.1"));
        // ::1 and :: go to the IPv6 loopback of the context.
        let l6 = ip("fd7f:7673::127.0.9.1");
        assert_eq!(lookup(&t, "::1").flags, REACH | REMAP);
        assert_eq!(IpAddr::V6(Ipv6Addr::from(lookup(&t, "::").alt)), l6);
        assert_eq!(lookup(&t, "fd7f:7673::127.0.9.1").flags, MEMBER | REACH | LBACK);
        assert_eq!(lookup(&t, "fd7f:7673::127.0.8.1").flags, 0, "another guest's IPv6 loopback");
    }

    #[test]
    fn sources_follow_subnets_and_routes_and_never_leave_from_loopback() {
        let set = IpSet::with_members(
            &[
                Member::exact(ip("127.0.0.71")),
                Member { ip: ip("10.200.0.1"), prefix: 24, dev: None },
                Member { ip: ip("192.0.2.10"), prefix: 32, dev: Some("eth9".into()) },
            ],
            Some("127.0.9.1".parse().unwrap()),
            &[],
        )
        .unwrap();
        let dev = |d: &str| (d == "eth9").then_some(9);
        let routes = [
            Route { dst: ip("0.0.0.0"), prefix: 0, oif: Some(9), gateway: Some(ip("192.0.2.1")), prefsrc: None },
            Route { dst: ip("198.51.100.0"), prefix: 24, oif: Some(3), gateway: Some(ip("10.200.0.254")), prefsrc: None },
        ];
        let t = table(&set, &routes, &dev);
        assert_eq!(src(lookup(&t, "10.200.0.2")), ip("10.200.0.1"), "the subnet's own address");
        assert_eq!(src(lookup(&t, "198.51.100.7")), ip("10.200.0.1"), "the address whose subnet holds the gateway");
        assert_eq!(src(lookup(&t, "203.0.113.5")), ip("192.0.2.10"), "the default route's device");
        assert_eq!(src(lookup(&t, "0.0.0.0")), ip("127.0.0.71"), "0.0.0.0 binds to the first address");
        // Without routes, the first address that can leave the host.
        let t = table(&set, &[], &dev);
        assert_eq!(src(lookup(&t, "203.0.113.5")), ip("10.200.0.1"));
        // Only loopback addresses: nothing may leave (EPERM at connect).
        let lo_only = IpSet::new(&[ip("127.0.0.71")], Some("127.0.9.1".parse().unwrap())).unwrap();
        let t = table(&lo_only, &routes, &dev);
        assert_eq!(lookup(&t, "203.0.113.5").flags & NOSRC, NOSRC);
        assert_eq!(lookup(&t, "2001:db8::1").flags & NOSRC, NOSRC);
    }

    #[test]
    fn a_live_change_fills_the_other_slot_and_clears_the_one_before() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "CI: creating BPF maps needs root");
            return;
        }
        let table_of = |addrs: &[&str]| {
            let a: Vec<IpAddr> = addrs.iter().map(|s| ip(s)).collect();
            table(&IpSet::new(&a, Some("127.0.9.1".parse().unwrap())).unwrap(), &[], &no_dev)
        };
        // Entries per slot: (exact, prefixes).
        let count = |maps: &Maps, slot: u32| {
            let of = |keys: Vec<Vec<u8>>, at: usize| keys.iter().filter(|k| k[at..at + 4] == slot.to_ne_bytes()).count();
            (
                of(load::map_keys(&maps.exact, EXACT_KEY_SIZE as usize).unwrap(), 0),
                of(load::map_keys(&maps.prefixes, KEY_SIZE as usize).unwrap(), 4),
            )
        };
        let split = |t: &BTreeMap<Prefix, Entry>| (t.keys().filter(|p| p.0 == 128).count(), t.keys().filter(|p| p.0 != 128).count());
        let current = |maps: &Maps| {
            let mut v = [0u8; 4];
            load::map_lookup(&maps.slot, &0u32.to_ne_bytes(), &mut v).unwrap();
            u32::from_ne_bytes(v)
        };
        let (one, two, three) = (table_of(&["127.0.0.2"]), table_of(&["127.0.0.2", "127.0.0.3", "::1"]), table_of(&["10.1.2.3"]));
        let maps = create(&one).unwrap();
        assert_eq!((current(&maps), count(&maps, 0), count(&maps, 1)), (0, split(&one), (0, 0)));
        replace(&maps, &two).unwrap();
        assert_eq!((current(&maps), count(&maps, 1)), (1, split(&two)));
        assert_eq!(count(&maps, 0), split(&one), "the old set stays until the next change");
        replace(&maps, &three).unwrap();
        assert_eq!((current(&maps), count(&maps, 0), count(&maps, 1)), (0, split(&three), split(&two)));
        // The prefix keys hold the slot: slot 0's default entry is a /32+96.
        let mut value = [0u8; VALUE_SIZE as usize];
        load::map_lookup(&maps.prefixes, &key_bytes(0, &prefix_of(ip("0.0.0.0"), 0)), &mut value).unwrap();
        assert!(load::map_lookup(&maps.prefixes, &key_bytes(2, &prefix_of(ip("0.0.0.0"), 0)), &mut value).is_err());
    }

    #[test]
    fn wildcard_binds() {
        let v4 = IpSet::new(&[ip("127.0.0.2")], Some("127.0.9.1".parse().unwrap())).unwrap();
        let w = lookup(&table(&v4, &[], &no_dev), "0.0.0.0").clone();
        assert_eq!(IpAddr::V6(Ipv6Addr::from(w.alt)), ip("::ffff:127.0.0.2"), "dual-stack :: gets the IPv4 address");
        assert_eq!(IpAddr::V6(Ipv6Addr::from(w.v6only)), ip("fd7f:7673::127.0.9.1"), "v6-only :: gets the IPv6 loopback");
        let both = IpSet::new(&[ip("127.0.0.2"), ip("::1")], None).unwrap();
        let w = lookup(&table(&both, &[], &no_dev), "0.0.0.0").clone();
        assert_eq!(IpAddr::V6(Ipv6Addr::from(w.alt)), ip("::1"));
        assert_eq!(IpAddr::V6(Ipv6Addr::from(w.v6only)), ip("::1"));
        assert_eq!(lookup(&table(&both, &[], &no_dev), "::").flags, REACH | REMAP);
    }
}
