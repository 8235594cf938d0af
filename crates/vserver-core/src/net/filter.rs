//! Packet filters on the context's cgroup, for what no socket hook sees.
//! They run for every packet of every socket of the context, so the common
//! case does the least: a few loads and compares, no map lookup.
//!
//! Ingress: listen() on an unbound TCP socket autobinds it to the wildcard
//! address with no bind or post_bind program running (and so does a UDP
//! send from an unbound socket). Such a socket would take connections and
//! datagrams for every host address, so for a wildcard-bound socket the
//! packet's destination must be a member. A socket bound to an address of
//! the set takes the fast path: the kernel delivers only packets addressed
//! to it. The exception is the context's dedicated loopback address: only
//! the context itself may reach it, so a packet to a listening (not
//! connected) socket there must come in over `lo` from an address of the
//! context or a loopback address it may reach (the host's own 127.0.0.1 is
//! neither; other contexts cannot send there at all, their connect and
//! sendmsg programs refuse).
//! (A cgroup BPF LSM program on socket_listen would refuse the listen()
//! itself; kernels that refuse LSM programs cannot run it. This filter
//! works wherever cgroup socket programs do.)
//!
//! Egress: a packet leaving a socket of the context must carry a source of
//! the set. Fast path: the source is the socket's own address, which a bind
//! program or bpf_bind() put there. The rest is looked up: IP_PKTINFO on a
//! connected UDP socket, raw and ping sockets (ccapabilities RAW_ICMP),
//! IP_HDRINCL.

use super::dest::{LBACK, MEMBER, PEER};
use super::emit::{word4, words6, Gen, MapFds, FULL_PREFIX, KEY, KEY_ADDR, MAPPED};
use super::ipset::IpSet;
use crate::sys::ebpf::asm::{Asm, Cond, Insn, Reg::*, Size};

pub const PROG_TYPE_CGROUP_SKB: u32 = 8;

// struct __sk_buff
const PROTOCOL: i16 = 16;
const INGRESS_IFINDEX: i16 = 36;
const DATA: i16 = 76;
const DATA_END: i16 = 80;
const FAMILY: i16 = 88;
const REMOTE_IP4: i16 = 92;
const LOCAL_IP4: i16 = 96;
const REMOTE_IP6: i16 = 100;
const LOCAL_IP6: i16 = 116;

const HELPER_SKB_LOAD_BYTES: i32 = 26;
/// skb->protocol holds the ethertype in network order.
const ETH_P_IP: u32 = (0x0800u16).to_be() as u32;
const ETH_P_IPV6: u32 = (0x86ddu16).to_be() as u32;
// Offsets of the addresses in the IP headers.
const IPV4_SRC: i32 = 12;
const IPV4_DST: i32 = 16;
const IPV6_SRC: i32 = 8;
const IPV6_DST: i32 = 24;
/// The loopback device's index, in every network namespace.
const LOOPBACK_IFINDEX: u32 = 1;

/// Loads the address at `off` of the packet's IP header into the lookup
/// key (v4-mapped for IPv4) and looks it up (r8 = entry); `miss` if the
/// packet cannot be read or the address has no entry. Packets neither IPv4
/// nor IPv6 go to `other`.
fn lookup_header_address(g: &mut Gen, v4_off: i32, v6_off: i32, miss: &str, other: &str) {
    let tag = g.a.position();
    let (ip4, ip6, lookup) = (format!("ip4_{tag}"), format!("ip6_{tag}"), format!("lookup_{tag}"));
    let a = &mut g.a;
    a.store_imm(Size::W, R10, KEY, FULL_PREFIX);
    a.load(Size::W, R2, R6, PROTOCOL);
    a.jump_imm(Cond::Eq, R2, ETH_P_IP, &ip4).jump_imm(Cond::Eq, R2, ETH_P_IPV6, &ip6).goto(other);
    a.label(&ip4);
    a.store_imm(Size::W, R10, KEY_ADDR, 0).store_imm(Size::W, R10, KEY_ADDR + 4, 0);
    a.store_imm(Size::W, R10, KEY_ADDR + 8, MAPPED);
    a.mov_reg(R1, R6).mov_imm(R2, v4_off).mov_reg(R3, R10).add_imm(R3, (KEY_ADDR + 12) as i32).mov_imm(R4, 4);
    a.call(HELPER_SKB_LOAD_BYTES).jump64_imm(Cond::Ne, R0, 0, miss).goto(&lookup);
    a.label(&ip6);
    a.mov_reg(R1, R6).mov_imm(R2, v6_off).mov_reg(R3, R10).add_imm(R3, KEY_ADDR as i32).mov_imm(R4, 16);
    a.call(HELPER_SKB_LOAD_BYTES).jump64_imm(Cond::Ne, R0, 0, miss);
    a.label(&lookup);
    g.lookup(miss);
}

/// Goes to `label` if the four words at r6+`off` equal `w`.
fn if_words_equal(a: &mut Asm, off: i16, w: [u32; 4], label: &str) {
    let differ = format!("differ_{}", a.position());
    for (i, w) in w.iter().enumerate() {
        a.load(Size::W, R2, R6, off + 4 * i as i16).jump_imm(Cond::Ne, R2, *w, &differ);
    }
    a.goto(label).label(&differ);
}

pub fn ingress(set: &IpSet, maps: MapFds) -> Result<Vec<Insn>, String> {
    let lback = set.lback().filter(|_| set.hides_lback());
    let lback6 = set.lback6();
    let mut g = Gen::new(maps);
    let a = &mut g.a;
    a.load(Size::W, R2, R6, FAMILY).jump_imm(Cond::Eq, R2, libc::AF_INET6 as u32, "sock6");
    // An IPv4 socket: bound to a member (not the loopback) is the fast path.
    a.load(Size::W, R2, R6, LOCAL_IP4).jump_imm(Cond::Eq, R2, 0, "wildcard");
    match lback {
        Some(l) => a.jump_imm(Cond::Ne, R2, word4(l), "allow").goto("own_loopback"),
        None => a.goto("allow"),
    };
    a.label("sock6");
    if let Some(l) = lback {
        if_words_equal(a, LOCAL_IP6, words6(l.to_ipv6_mapped()), "own_loopback");
    }
    if let Some(l6) = lback6 {
        if_words_equal(a, LOCAL_IP6, words6(l6), "own_loopback");
    }
    for i in 0..4 {
        a.load(Size::W, R2, R6, LOCAL_IP6 + 4 * i).jump_imm(Cond::Ne, R2, 0, "allow");
    }
    a.goto("wildcard");
    // Bound to the loopback address: a connected socket has its peer
    // already (the connection was checked when it was made), a listening
    // one checks where the packet comes from.
    a.label("own_loopback");
    a.load(Size::W, R2, R6, REMOTE_IP4).jump_imm(Cond::Ne, R2, 0, "allow");
    for i in 0..4 {
        a.load(Size::W, R2, R6, REMOTE_IP6 + 4 * i).jump_imm(Cond::Ne, R2, 0, "allow");
    }
    a.goto("check_source");
    // Bound to the wildcard: the destination must be a member.
    a.label("wildcard");
    g.trie("drop");
    lookup_header_address(&mut g, IPV4_DST, IPV6_DST, "drop", "allow");
    g.unless_flags(MEMBER, "drop");
    if lback.is_some() || lback6.is_some() {
        g.if_flags(LBACK, "check_source");
    }
    g.a.goto("allow");
    g.a.label("check_source");
    g.a.load(Size::W, R2, R6, INGRESS_IFINDEX).jump_imm(Cond::Ne, R2, LOOPBACK_IFINDEX, "drop");
    g.trie("drop");
    lookup_header_address(&mut g, IPV4_SRC, IPV6_SRC, "drop", "drop");
    g.if_flags(MEMBER | PEER, "allow");
    g.a.label("drop").ret(0).label("allow").ret(1);
    g.a.finish()
}

pub fn egress(maps: MapFds) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(maps);
    let a = &mut g.a;
    // Fast path: the packet's source is the socket's own address (read
    // straight from the packet: data points at the IP header here).
    a.load(Size::W, R2, R6, DATA).load(Size::W, R3, R6, DATA_END);
    a.load(Size::W, R4, R6, PROTOCOL).jump_imm(Cond::Eq, R4, ETH_P_IPV6, "ip6");
    a.jump_imm(Cond::Ne, R4, ETH_P_IP, "allow");
    a.mov_reg(R4, R2).add_imm(R4, 20).jump_reg(Cond::Gt, R4, R3, "check");
    a.load(Size::W, R1, R2, IPV4_SRC as i16).load(Size::W, R4, R6, LOCAL_IP4);
    a.jump_imm(Cond::Eq, R4, 0, "check").jump32_reg(Cond::Eq, R1, R4, "allow").goto("check");
    a.label("ip6");
    a.mov_reg(R4, R2).add_imm(R4, 40).jump_reg(Cond::Gt, R4, R3, "check");
    for i in 0..4 {
        a.load(Size::W, R1, R2, IPV6_SRC as i16 + 4 * i).load(Size::W, R4, R6, LOCAL_IP6 + 4 * i);
        a.jump32_reg(Cond::Ne, R1, R4, "check");
    }
    // Equal, and not the unspecified address (an unbound socket).
    for i in 0..4 {
        a.load(Size::W, R4, R6, LOCAL_IP6 + 4 * i).jump_imm(Cond::Ne, R4, 0, "allow");
    }
    a.label("check");
    g.trie("drop");
    lookup_header_address(&mut g, IPV4_SRC, IPV6_SRC, "drop", "allow");
    g.if_flags(MEMBER, "allow");
    g.a.label("drop").ret(0).label("allow").ret(1);
    g.a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FDS: MapFds = MapFds { slot: 3, exact: 4, prefixes: 5 };

    #[test]
    fn ethertypes_are_in_network_order() {
        assert_eq!(ETH_P_IP.to_ne_bytes()[..2], [0x08, 0x00]);
        assert_eq!(ETH_P_IPV6.to_ne_bytes()[..2], [0x86, 0xdd]);
    }

    #[test]
    fn filters_assemble_for_every_set_shape() {
        let lb = Some("127.0.3.1".parse().unwrap());
        for (addrs, lback) in [(vec![], None), (vec!["127.0.0.2".parse().unwrap()], lb), (vec!["::1".parse().unwrap()], lb)] {
            let set = IpSet::new(&addrs, lback).unwrap();
            let i = ingress(&set, FDS).unwrap();
            // The loopback check compares with the context's own address.
            assert_eq!(i.iter().any(|x| x.imm == word4("127.0.3.1".parse().unwrap()) as i32), set.hides_lback());
            assert!(!egress(FDS).unwrap().is_empty());
        }
    }
}
