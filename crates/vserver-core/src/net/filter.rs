//! Packet filters on the context's cgroup, for what no socket hook sees.
//!
//! Ingress: listen() on an unbound TCP socket autobinds it to the wildcard
//! address with no bind or post_bind program running (and so does a UDP
//! send from an unbound socket). Such a socket would take connections and
//! datagrams for every host address. The ingress program drops a packet for
//! a wildcard-bound socket of the context unless its destination is in the
//! set, so listen() without bind() serves the set and nothing else. Sockets
//! bound to an address of the set take the fast path (two loads, no lookup):
//! the kernel delivers only packets addressed to them.
//! (A cgroup BPF LSM program on socket_listen would refuse the listen()
//! itself; kernels that refuse LSM programs, as the one this was built on
//! does with EPERM for root, cannot run it. This filter works wherever
//! cgroup socket programs do.)
//!
//! Egress: a packet leaving a socket of the context must carry a source of
//! the set. The socket hooks already pin sources; this catches what they
//! cannot see: IP_PKTINFO on a connected UDP socket, raw and ping sockets
//! (ccapabilities RAW_ICMP), IP_HDRINCL.

use super::asm::{Asm, Cond, Insn, Reg::*, Size};
use super::ipset::IpSet;

pub const PROG_TYPE_CGROUP_SKB: u32 = 8;

// struct __sk_buff
const PROTOCOL: i16 = 16;
const FAMILY: i16 = 88;
const LOCAL_IP4: i16 = 96;
const LOCAL_IP6: i16 = 116;

const HELPER_MAP_LOOKUP: i32 = 1;
const HELPER_SKB_LOAD_BYTES: i32 = 26;
/// skb->protocol holds the ethertype in network order.
const ETH_P_IP: u32 = (0x0800u16).to_be() as u32;
const ETH_P_IPV6: u32 = (0x86ddu16).to_be() as u32;
// Offsets of the addresses in the IP headers.
const IPV4_SRC: i32 = 12;
const IPV4_DST: i32 = 16;
const IPV6_SRC: i32 = 8;
const IPV6_DST: i32 = 24;

/// Loads the address at `off` of the packet's IP header into a v4-mapped
/// or IPv6 key at fp-16, looks it up and goes to `miss` if it is not in the
/// set. Goes to `allow` for packets that are neither IPv4 nor IPv6.
fn lookup_header_address(a: &mut Asm, map_fd: i32, v4_off: i32, v6_off: i32, miss: &str) {
    a.load(Size::W, R2, R6, PROTOCOL);
    a.jump_imm(Cond::Eq, R2, ETH_P_IP, "ip4").jump_imm(Cond::Eq, R2, ETH_P_IPV6, "ip6").goto("allow");
    a.label("ip4");
    a.store_imm(Size::W, R10, -16, 0).store_imm(Size::W, R10, -12, 0);
    a.store_imm(Size::W, R10, -8, u32::from_ne_bytes([0, 0, 0xff, 0xff]));
    a.mov_reg(R1, R6).mov_imm(R2, v4_off).mov_reg(R3, R10).add_imm(R3, -4).mov_imm(R4, 4);
    a.call(HELPER_SKB_LOAD_BYTES).jump64_imm(Cond::Ne, R0, 0, miss).goto("lookup");
    a.label("ip6");
    a.mov_reg(R1, R6).mov_imm(R2, v6_off).mov_reg(R3, R10).add_imm(R3, -16).mov_imm(R4, 16);
    a.call(HELPER_SKB_LOAD_BYTES).jump64_imm(Cond::Ne, R0, 0, miss);
    a.label("lookup");
    a.load_map_fd(R1, map_fd).mov_reg(R2, R10).add_imm(R2, -16).call(HELPER_MAP_LOOKUP);
    a.jump64_imm(Cond::Eq, R0, 0, miss);
}

pub fn ingress(map_fd: i32) -> Result<Vec<Insn>, String> {
    let mut a = Asm::new();
    a.mov_reg(R6, R1);
    // Fast path: the socket is bound to an address (of the set).
    a.load(Size::W, R2, R6, FAMILY).jump_imm(Cond::Eq, R2, libc::AF_INET6 as u32, "sock6");
    a.load(Size::W, R2, R6, LOCAL_IP4).jump_imm(Cond::Ne, R2, 0, "allow").goto("check");
    a.label("sock6");
    for i in 0..3 {
        a.load(Size::W, R2, R6, LOCAL_IP6 + 4 * i).jump_imm(Cond::Ne, R2, 0, "allow");
    }
    a.load(Size::W, R2, R6, LOCAL_IP6 + 12).jump_imm(Cond::Ne, R2, 0, "allow");
    a.label("check");
    lookup_header_address(&mut a, map_fd, IPV4_DST, IPV6_DST, "drop");
    a.label("allow").ret(1).label("drop").ret(0);
    a.finish()
}

pub fn egress(set: &IpSet, map_fd: i32) -> Result<Vec<Insn>, String> {
    let mut a = Asm::new();
    a.mov_reg(R6, R1);
    // Fast path for the common source: the first IPv4 address.
    if let Some(first) = set.first_v4() {
        a.load(Size::W, R2, R6, PROTOCOL).jump_imm(Cond::Ne, R2, ETH_P_IP, "check");
        a.mov_reg(R1, R6).mov_imm(R2, IPV4_SRC).mov_reg(R3, R10).add_imm(R3, -4).mov_imm(R4, 4);
        a.call(HELPER_SKB_LOAD_BYTES).jump64_imm(Cond::Ne, R0, 0, "drop");
        a.load(Size::W, R2, R10, -4).jump_imm(Cond::Eq, R2, u32::from_ne_bytes(first.octets()), "allow");
    }
    a.label("check");
    lookup_header_address(&mut a, map_fd, IPV4_SRC, IPV6_SRC, "drop");
    a.label("allow").ret(1).label("drop").ret(0);
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethertypes_are_in_network_order() {
        assert_eq!(ETH_P_IP.to_ne_bytes()[..2], [0x08, 0x00]);
        assert_eq!(ETH_P_IPV6.to_ne_bytes()[..2], [0x86, 0xdd]);
    }

    #[test]
    fn filters_assemble_for_every_set_shape() {
        let first = u32::from_ne_bytes([127, 0, 0, 2]) as i32;
        for addrs in [vec![], vec!["127.0.0.2".parse().unwrap()], vec!["::1".parse().unwrap()]] {
            let set = IpSet::new(&addrs, None).unwrap();
            assert!(!ingress(3).unwrap().is_empty());
            let e = egress(&set, 3).unwrap();
            // The fast path compares with the first IPv4 address, if any.
            assert_eq!(e.iter().any(|i| i.imm == first), set.first_v4().is_some());
        }
    }
}
