//! The cgroup socket programs that confine a context to its IP set, one
//! generator per hook. Each reads as its policy; every decision comes from
//! one lookup in the context's trie (`dest.rs`), so a live change of the
//! set is a swap of that map:
//! - bind4/bind6: a member passes; 127.0.0.1 and `::1` become the context's
//!   loopback addresses; 0.0.0.0 becomes the first IPv4 address; `::`
//!   becomes the first IPv6 address, or without one: the IPv4 address
//!   v4-mapped for a dual-stack socket (so it never takes IPv4 on other
//!   addresses), the IPv6 loopback address for an IPV6_V6ONLY one (read
//!   from the socket through BTF, see `btf.rs`); anything else fails with
//!   EADDRNOTAVAIL.
//! - post_bind4/6: the address the socket ended up with must be a member
//!   (a second line behind bind, also against programs of parent cgroups).
//! - connect4/6: remapped destinations are rewritten; a destination out of
//!   reach (another loopback address) fails with EPERM; an unbound socket is
//!   bound to the source the trie names for the destination with
//!   `bpf_bind()`; none (a loopback source for the outside): EPERM.
//! - sendmsg4/6 (unconnected UDP): the same for each datagram; a source the
//!   sender gives must be a member.
//! - getsockname/getpeername/recvmsg: the dedicated loopback addresses show
//!   as 127.0.0.1 and `::1` again, so the remapping is invisible.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::btf::BitField;
use super::dest::{MEMBER, NOSRC, REACH, REMAP, V_ALT, V_SRC, V_V6ONLY};
pub use super::emit::MapFds;
use super::emit::*;
use super::filter::{self, PROG_TYPE_CGROUP_SKB};
use super::ipset::IpSet;
use crate::sys::ebpf::asm::{Asm, Cond, Insn, Reg, Size};
use Reg::*;

pub const PROG_TYPE_CGROUP_SOCK: u32 = 9;
pub const PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;

/// enum bpf_attach_type values of the hooks used.
pub mod attach {
    pub const INET4_BIND: u32 = 8;
    pub const INET6_BIND: u32 = 9;
    pub const INET4_CONNECT: u32 = 10;
    pub const INET6_CONNECT: u32 = 11;
    pub const INET4_POST_BIND: u32 = 12;
    pub const INET6_POST_BIND: u32 = 13;
    pub const UDP4_SENDMSG: u32 = 14;
    pub const UDP6_SENDMSG: u32 = 15;
    pub const UDP4_RECVMSG: u32 = 19;
    pub const UDP6_RECVMSG: u32 = 20;
    pub const INET4_GETPEERNAME: u32 = 29;
    pub const INET6_GETPEERNAME: u32 = 30;
    pub const INET4_GETSOCKNAME: u32 = 31;
    pub const INET6_GETSOCKNAME: u32 = 32;
    pub const INET_INGRESS: u32 = 0;
    pub const INET_EGRESS: u32 = 1;

    /// Every attach type a network context may use, for detaching.
    pub const ALL: [u32; 16] = [
        INET_INGRESS,
        INET_EGRESS,
        INET4_BIND,
        INET6_BIND,
        INET4_CONNECT,
        INET6_CONNECT,
        INET4_POST_BIND,
        INET6_POST_BIND,
        UDP4_SENDMSG,
        UDP6_SENDMSG,
        UDP4_RECVMSG,
        UDP6_RECVMSG,
        INET4_GETPEERNAME,
        INET6_GETPEERNAME,
        INET4_GETSOCKNAME,
        INET6_GETSOCKNAME,
    ];
}

/// A program ready for BPF_PROG_LOAD and BPF_PROG_ATTACH.
pub struct Program {
    pub name: &'static str,
    pub prog_type: u32,
    pub attach_type: u32,
    pub attach_btf_id: u32,
    pub insns: Vec<Insn>,
}

fn bind4(maps: MapFds) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(maps);
    g.trie("deny");
    g.a.load(Size::W, R9, R6, USER_IP4);
    g.key_v4(R9);
    g.lookup("deny");
    g.a.jump_imm(Cond::Ne, R9, 0, "address");
    // 0.0.0.0: the first IPv4 address (none: refused).
    g.a.load(Size::W, R1, R8, V_SRC + 12).jump_imm(Cond::Eq, R1, 0, "deny");
    g.a.store(Size::W, R6, USER_IP4, R1).goto("allow").label("address");
    g.unless_flags(REMAP, "not_remapped");
    g.a.load(Size::W, R1, R8, V_ALT + 12).store(Size::W, R6, USER_IP4, R1).goto("allow");
    g.a.label("not_remapped");
    g.if_flags(MEMBER, "allow");
    g.finish(Some(libc::EADDRNOTAVAIL))
}

/// Goes to `v6only` if the socket in ctx->sk has IPV6_V6ONLY set, falls
/// through otherwise (also for sockets neither TCP nor UDP, which the
/// helpers do not convert: they are taken as dual-stack).
fn branch_if_v6only(g: &mut Gen, bit: BitField, v6only: &str) {
    let a = &mut g.a;
    a.load(Size::DW, R1, R6, SK).call(HELPER_SKC_TO_TCP6_SOCK).jump64_imm(Cond::Ne, R0, 0, "have_sock");
    a.load(Size::DW, R1, R6, SK).call(HELPER_SKC_TO_UDP6_SOCK).jump64_imm(Cond::Eq, R0, 0, "dual_stack");
    a.label("have_sock");
    a.load(Size::B, R1, R0, bit.byte as i16).jump_imm(Cond::Set, R1, bit.mask as u32, v6only);
    a.label("dual_stack");
}

fn bind6(maps: MapFds, v6only_bit: Option<BitField>) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(maps);
    g.trie("deny");
    // `::` and `::ffff:0.0.0.0` look up the IPv4 wildcard entry, which
    // holds the targets of wildcard binds.
    for i in 0..3 {
        g.a.load(Size::W, R1, R6, USER_IP6 + 4 * i).jump_imm(
            Cond::Ne,
            R1,
            if i == 2 { MAPPED } else { 0 },
            if i == 2 { "not_mapped_any" } else { "address" },
        );
    }
    g.a.load(Size::W, R1, R6, USER_IP6 + 12).jump_imm(Cond::Ne, R1, 0, "address");
    // ::ffff:0.0.0.0, the IPv4 wildcard on an IPv6 socket.
    g.key_v4(R1);
    g.lookup("deny");
    g.if_zero16(V_SRC, "deny");
    g.copy16(V_SRC, R6, USER_IP6);
    g.a.goto("allow");
    g.a.label("not_mapped_any");
    g.a.load(Size::W, R1, R6, USER_IP6 + 8).jump_imm(Cond::Ne, R1, 0, "address");
    g.a.load(Size::W, R1, R6, USER_IP6 + 12).jump_imm(Cond::Ne, R1, 0, "address");
    // `::`.
    g.a.mov32_imm(R1, 0);
    g.key_v4(R1);
    g.lookup("deny");
    if let Some(bit) = v6only_bit {
        branch_if_v6only(&mut g, bit, "v6only");
    }
    g.if_zero16(V_ALT, "deny");
    g.copy16(V_ALT, R6, USER_IP6);
    g.a.goto("allow").label("v6only");
    if v6only_bit.is_some() {
        g.if_zero16(V_V6ONLY, "deny");
        g.copy16(V_V6ONLY, R6, USER_IP6);
        g.a.goto("allow");
    }
    g.a.label("address");
    g.key_v6(R6, USER_IP6);
    g.lookup("deny");
    g.unless_flags(REMAP, "not_remapped");
    g.copy16(V_ALT, R6, USER_IP6);
    g.a.goto("allow").label("not_remapped");
    g.if_flags(MEMBER, "allow");
    g.finish(Some(libc::EADDRNOTAVAIL))
}

fn post_bind4(maps: MapFds) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(maps);
    g.trie("deny");
    g.a.load(Size::W, R9, R6, SRC_IP4);
    g.key_v4(R9);
    g.lookup("deny");
    g.if_flags(MEMBER, "allow");
    g.finish(Some(libc::EADDRNOTAVAIL))
}

fn post_bind6(maps: MapFds) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(maps);
    g.trie("deny");
    g.key_v6(R6, SRC_IP6);
    g.lookup("deny");
    g.if_flags(MEMBER, "allow");
    g.finish(Some(libc::EADDRNOTAVAIL))
}

fn connect4(maps: MapFds) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(maps);
    g.trie("deny");
    g.a.load(Size::W, R9, R6, USER_IP4);
    g.key_v4(R9);
    g.lookup("deny");
    g.unless_flags(REMAP, "not_remapped");
    g.a.load(Size::W, R1, R8, V_ALT + 12).store(Size::W, R6, USER_IP4, R1);
    g.a.label("not_remapped");
    g.unless_flags(REACH, "deny");
    g.check_bound(false, "allow", "deny");
    g.if_flags(NOSRC, "deny");
    g.bind_source(false, "deny");
    g.a.goto("allow");
    g.finish(None)
}

fn connect6(maps: MapFds) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(maps);
    g.trie("deny");
    g.key_v6(R6, USER_IP6);
    g.lookup("deny");
    g.unless_flags(REMAP, "not_remapped");
    g.copy16(V_ALT, R6, USER_IP6);
    g.a.label("not_remapped");
    g.unless_flags(REACH, "deny");
    g.check_bound(true, "allow", "deny");
    g.if_flags(NOSRC, "deny");
    g.bind_source(true, "deny");
    g.a.goto("allow");
    g.finish(None)
}

fn sendmsg4(maps: MapFds) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(maps);
    g.trie("deny");
    g.a.load(Size::W, R9, R6, USER_IP4);
    g.key_v4(R9);
    g.lookup("deny");
    g.unless_flags(REMAP, "not_remapped");
    g.a.load(Size::W, R1, R8, V_ALT + 12).store(Size::W, R6, USER_IP4, R1);
    g.a.label("not_remapped");
    g.unless_flags(REACH, "deny");
    // A source given by IP_PKTINFO or the socket's own binding must be a
    // member; the socket's own address was checked when it was bound.
    g.a.load(Size::W, R9, R6, MSG_SRC_IP4).jump_imm(Cond::Eq, R9, 0, "pick");
    g.a.load(Size::DW, R2, R6, SK).load(Size::W, R1, R2, SRC_IP4).jump32_reg(Cond::Eq, R1, R9, "allow");
    g.key_v4(R9);
    g.lookup("deny");
    g.if_flags(MEMBER, "allow");
    g.a.goto("deny").label("pick");
    g.if_flags(NOSRC, "deny");
    g.a.load(Size::W, R1, R8, V_SRC + 12).store(Size::W, R6, MSG_SRC_IP4, R1).goto("allow");
    g.finish(None)
}

fn sendmsg6(maps: MapFds) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(maps);
    g.trie("deny");
    g.key_v6(R6, USER_IP6);
    g.lookup("deny");
    g.unless_flags(REMAP, "not_remapped");
    g.copy16(V_ALT, R6, USER_IP6);
    g.a.label("not_remapped");
    g.unless_flags(REACH, "deny");
    for i in 0..4 {
        g.a.load(Size::W, R1, R6, MSG_SRC_IP6 + 4 * i).jump_imm(Cond::Ne, R1, 0, "given");
    }
    g.if_flags(NOSRC, "deny");
    g.copy16(V_SRC, R6, MSG_SRC_IP6);
    g.a.goto("allow").label("given");
    // The socket's own address passes; any other must be a member.
    g.a.load(Size::DW, R2, R6, SK);
    for i in 0..4 {
        g.a.load(Size::W, R1, R2, SRC_IP6 + 4 * i).load(Size::W, R3, R6, MSG_SRC_IP6 + 4 * i);
        g.a.jump32_reg(Cond::Ne, R1, R3, "other_source");
    }
    g.a.goto("allow").label("other_source");
    g.key_v6(R6, MSG_SRC_IP6);
    g.lookup("deny");
    g.if_flags(MEMBER, "allow");
    g.finish(None)
}

/// getsockname4, getpeername4 and recvmsg4 alike: show the loopback as 127.0.0.1.
fn hide_lback4(lback: Ipv4Addr) -> Result<Vec<Insn>, String> {
    let mut a = Asm::new();
    a.load(Size::W, R2, R1, USER_IP4).jump_imm(Cond::Ne, R2, word4(lback), "allow");
    a.mov32_imm(R2, LOCALHOST).store(Size::W, R1, USER_IP4, R2);
    a.label("allow").ret(1);
    a.finish()
}

/// The same for IPv6 sockets: `::ffff:<lback>` shows as `::ffff:127.0.0.1`,
/// the IPv6 loopback address as `::1`.
fn hide_lback6(lback: Option<Ipv4Addr>, lback6: Option<Ipv6Addr>) -> Result<Vec<Insn>, String> {
    let mut a = Asm::new();
    if let Some(l) = lback {
        for (i, w) in words6(l.to_ipv6_mapped()).iter().enumerate() {
            a.load(Size::W, R2, R1, USER_IP6 + 4 * i as i16).jump_imm(Cond::Ne, R2, *w, "not_mapped");
        }
        a.mov32_imm(R2, LOCALHOST).store(Size::W, R1, USER_IP6 + 12, R2).goto("allow");
    }
    a.label("not_mapped");
    if let Some(l6) = lback6 {
        for (i, w) in words6(l6).iter().enumerate() {
            a.load(Size::W, R2, R1, USER_IP6 + 4 * i as i16).jump_imm(Cond::Ne, R2, *w, "allow");
        }
        for (i, w) in words6(Ipv6Addr::LOCALHOST).iter().enumerate() {
            a.mov32_imm(R2, *w).store(Size::W, R1, USER_IP6 + 4 * i as i16, R2);
        }
    }
    a.label("allow").ret(1);
    a.finish()
}

/// All socket programs of a context whose maps are `maps`; `v6only_bit`
/// where the kernel's BTF tells where IPV6_V6ONLY is.
pub fn socket_programs(set: &IpSet, maps: MapFds, v6only_bit: Option<BitField>) -> Result<Vec<Program>, String> {
    use attach::*;
    let sock_addr =
        |name, attach_type, insns| Program { name, prog_type: PROG_TYPE_CGROUP_SOCK_ADDR, attach_type, attach_btf_id: 0, insns };
    let sock = |name, attach_type, insns| Program { name, prog_type: PROG_TYPE_CGROUP_SOCK, attach_type, attach_btf_id: 0, insns };
    let skb = |name, attach_type, insns| Program { name, prog_type: PROG_TYPE_CGROUP_SKB, attach_type, attach_btf_id: 0, insns };
    let mut progs = vec![
        sock_addr("vs_bind4", INET4_BIND, bind4(maps)?),
        sock_addr("vs_bind6", INET6_BIND, bind6(maps, v6only_bit)?),
        sock("vs_post_bind4", INET4_POST_BIND, post_bind4(maps)?),
        sock("vs_post_bind6", INET6_POST_BIND, post_bind6(maps)?),
        sock_addr("vs_connect4", INET4_CONNECT, connect4(maps)?),
        sock_addr("vs_connect6", INET6_CONNECT, connect6(maps)?),
        sock_addr("vs_sendmsg4", UDP4_SENDMSG, sendmsg4(maps)?),
        sock_addr("vs_sendmsg6", UDP6_SENDMSG, sendmsg6(maps)?),
        skb("vs_ingress", INET_INGRESS, filter::ingress(set, maps)?),
        skb("vs_egress", INET_EGRESS, filter::egress(maps)?),
    ];
    let lback = set.lback().filter(|_| set.hides_lback());
    if let Some(l) = lback {
        progs.extend([
            sock_addr("vs_sockname4", INET4_GETSOCKNAME, hide_lback4(l)?),
            sock_addr("vs_peername4", INET4_GETPEERNAME, hide_lback4(l)?),
            sock_addr("vs_recvmsg4", UDP4_RECVMSG, hide_lback4(l)?),
        ]);
    }
    if lback.is_some() || set.lback6().is_some() {
        progs.extend([
            sock_addr("vs_sockname6", INET6_GETSOCKNAME, hide_lback6(lback, set.lback6())?),
            sock_addr("vs_peername6", INET6_GETPEERNAME, hide_lback6(lback, set.lback6())?),
            sock_addr("vs_recvmsg6", UDP6_RECVMSG, hide_lback6(lback, set.lback6())?),
        ]);
    }
    Ok(progs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    const FDS: MapFds = MapFds { slot: 3, exact: 4, prefixes: 5 };

    fn set(addrs: &[&str], lback: Option<&str>) -> IpSet {
        let a: Vec<IpAddr> = addrs.iter().map(|s| s.parse().unwrap()).collect();
        IpSet::new(&a, lback.map(|l| l.parse().unwrap())).unwrap()
    }

    #[test]
    fn words_are_in_network_order() {
        assert_eq!(word4(Ipv4Addr::new(127, 0, 0, 1)).to_ne_bytes(), [127, 0, 0, 1]);
        assert_eq!(words6(Ipv6Addr::LOCALHOST)[3].to_ne_bytes(), [0, 0, 0, 1]);
        assert_eq!(words6(Ipv4Addr::new(1, 2, 3, 4).to_ipv6_mapped())[2], MAPPED);
    }

    #[test]
    fn every_set_shape_assembles() {
        let bit = Some(BitField { byte: 19, mask: 0x20 });
        for s in [
            set(&["127.0.0.2"], None),
            set(&["::1"], None),
            set(&["127.0.0.2", "::1"], Some("127.0.4.1")),
            set(&[], None),
            set(&[], Some("127.0.4.1")),
        ] {
            for b in [None, bit] {
                let progs = socket_programs(&s, FDS, b).unwrap();
                let hidden = if s.hides_lback() {
                    6
                } else if s.lback6().is_some() {
                    3
                } else {
                    0
                };
                assert_eq!(progs.len(), 10 + hidden);
                assert!(progs.iter().all(|p| !p.insns.is_empty() && p.insns.len() < 300));
            }
        }
    }

    #[test]
    fn v6only_detection_reads_the_bit_from_btf() {
        let with = bind6(FDS, Some(BitField { byte: 19, mask: 0x20 })).unwrap();
        assert!(with.iter().any(|i| i.code == 0x85 && i.imm == HELPER_SKC_TO_TCP6_SOCK));
        assert!(with.iter().any(|i| i.code == 0x71 && i.off == 19), "a byte load of skc_ipv6only");
        let without = bind6(FDS, None).unwrap();
        assert!(!without.iter().any(|i| i.code == 0x85 && i.imm == HELPER_SKC_TO_TCP6_SOCK));
    }
}
