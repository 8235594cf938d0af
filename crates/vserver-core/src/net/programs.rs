//! The cgroup socket programs that confine a context to its IP set, one
//! generator per hook. Each reads as its policy:
//! - bind4/bind6: an address of the set passes; 0.0.0.0 / `::` become the
//!   first address of the family (`::` becomes `::ffff:<first IPv4>` when the
//!   set has no IPv6 address); 127.0.0.1 becomes the loopback address;
//!   anything else fails with EADDRNOTAVAIL. v4-mapped IPv6 is IPv4.
//! - post_bind4/6: the address the socket ended up with must be in the set
//!   (a second line behind bind, also against programs of parent cgroups).
//! - connect4/6: 127.0.0.1 goes to the loopback address; an unbound socket is
//!   bound to a source of the set (the loopback for loopback destinations,
//!   else the first address) with `bpf_bind()`; failing that, EPERM.
//! - sendmsg4/6 (unconnected UDP): the same for each datagram's source.
//! - getsockname/getpeername/recvmsg: a dedicated loopback address shows as
//!   127.0.0.1 again, so the remapping is invisible.

use std::net::Ipv4Addr;

use super::asm::{Asm, Cond, Insn, Reg, Size};
use super::emit::*;
use super::filter::{self, PROG_TYPE_CGROUP_SKB};
use super::ipset::IpSet;
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

fn bind4(set: &IpSet, map_fd: i32) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(set, map_fd);
    g.a.load(Size::W, R7, R6, USER_IP4).jump_imm(Cond::Eq, R7, 0, "wildcard");
    g.remap_localhost(USER_IP4, "checked_localhost");
    g.lookup_v4(R7, "deny");
    g.a.goto("allow").label("wildcard");
    match set.first_v4() {
        Some(f) => g.store4(R6, USER_IP4, f),
        None => drop(g.a.goto("deny")),
    }
    g.a.goto("allow");
    g.finish(Some(libc::EADDRNOTAVAIL))
}

fn bind6(set: &IpSet, map_fd: i32) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(set, map_fd);
    g.branch_if_mapped(USER_IP6, "mapped", "v6");
    g.a.jump_imm(Cond::Ne, R9, 0, "v6").load(Size::W, R7, R6, USER_IP6 + 12).jump_imm(Cond::Ne, R7, 0, "v6");
    // `::`: the first IPv6 address, or the first IPv4 one v4-mapped, so a
    // dual-stack socket never listens on the whole host.
    match (set.first_v6(), set.first_v4()) {
        (Some(f), _) => g.store6(R6, USER_IP6, words6(f)),
        (None, Some(f)) => g.store6(R6, USER_IP6, words6(f.to_ipv6_mapped())),
        (None, None) => drop(g.a.goto("deny")),
    }
    g.a.goto("allow").label("mapped").load(Size::W, R7, R6, USER_IP6 + 12);
    g.a.jump_imm(Cond::Eq, R7, 0, "mapped_wildcard");
    g.remap_localhost(USER_IP6 + 12, "checked_localhost");
    g.lookup_v4(R7, "deny");
    g.a.goto("allow").label("mapped_wildcard");
    match set.first_v4() {
        Some(f) => g.store4(R6, USER_IP6 + 12, f),
        None => drop(g.a.goto("deny")),
    }
    g.a.goto("allow").label("v6");
    g.lookup_v6(R6, USER_IP6, "deny");
    g.a.goto("allow");
    g.finish(Some(libc::EADDRNOTAVAIL))
}

fn post_bind4(set: &IpSet, map_fd: i32) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(set, map_fd);
    g.a.load(Size::W, R7, R6, SRC_IP4);
    g.lookup_v4(R7, "deny");
    g.a.goto("allow");
    g.finish(Some(libc::EADDRNOTAVAIL))
}

fn post_bind6(set: &IpSet, map_fd: i32) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(set, map_fd);
    g.branch_if_mapped(SRC_IP6, "mapped", "v6");
    g.a.goto("v6").label("mapped").load(Size::W, R7, R6, SRC_IP6 + 12);
    g.lookup_v4(R7, "deny");
    g.a.goto("allow").label("v6");
    g.lookup_v6(R6, SRC_IP6, "deny");
    g.a.goto("allow");
    g.finish(Some(libc::EADDRNOTAVAIL))
}

fn connect4(set: &IpSet, map_fd: i32) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(set, map_fd);
    g.a.load(Size::W, R7, R6, USER_IP4);
    g.remap_localhost(USER_IP4, "checked_localhost");
    g.check_bound(false, "allow", "deny");
    g.pick_source4("deny");
    g.bind_source(None, false, "deny");
    g.a.goto("allow");
    g.finish(None)
}

fn connect6(set: &IpSet, map_fd: i32) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(set, map_fd);
    g.branch_if_mapped(USER_IP6, "mapped", "v6");
    g.a.goto("v6").label("mapped").load(Size::W, R7, R6, USER_IP6 + 12);
    g.remap_localhost(USER_IP6 + 12, "checked_localhost");
    g.check_bound(true, "allow", "deny");
    g.pick_source4("deny");
    g.bind_source(None, true, "deny");
    g.a.goto("allow").label("v6");
    g.check_bound(true, "allow", "deny");
    match set.first_v6() {
        Some(f) => g.bind_source(Some(words6(f)), false, "deny"),
        None => drop(g.a.goto("deny")),
    }
    g.a.goto("allow");
    g.finish(None)
}

fn sendmsg4(set: &IpSet, map_fd: i32) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(set, map_fd);
    g.a.load(Size::W, R7, R6, USER_IP4);
    g.remap_localhost(USER_IP4, "checked_localhost");
    // A source given by IP_PKTINFO or the socket's own binding must be in
    // the set; none at all means "pick one".
    g.a.load(Size::W, R8, R6, MSG_SRC_IP4).jump_imm(Cond::Eq, R8, 0, "pick");
    g.lookup_v4(R8, "deny");
    g.a.goto("allow").label("pick");
    g.pick_source4("deny");
    g.a.store(Size::W, R6, MSG_SRC_IP4, R9).goto("allow");
    g.finish(None)
}

fn sendmsg6(set: &IpSet, map_fd: i32) -> Result<Vec<Insn>, String> {
    let mut g = Gen::new(set, map_fd);
    g.branch_if_mapped(USER_IP6, "mapped", "v6");
    g.a.goto("v6").label("mapped").load(Size::W, R7, R6, USER_IP6 + 12);
    g.remap_localhost(USER_IP6 + 12, "checked_localhost");
    g.branch_if_source_given();
    g.pick_source4("deny");
    g.store6(R6, MSG_SRC_IP6, words6(Ipv4Addr::UNSPECIFIED.to_ipv6_mapped()));
    g.a.store(Size::W, R6, MSG_SRC_IP6 + 12, R9).goto("allow").label("v6");
    g.branch_if_source_given();
    match set.first_v6() {
        Some(f) => g.store6(R6, MSG_SRC_IP6, words6(f)),
        None => drop(g.a.goto("deny")),
    }
    // A given source, also a v4-mapped one (the map keys are v4-mapped),
    // must be in the set.
    g.a.goto("allow").label("given");
    g.lookup_v6(R6, MSG_SRC_IP6, "deny");
    g.a.goto("allow");
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

fn hide_lback6(lback: Ipv4Addr) -> Result<Vec<Insn>, String> {
    let mut a = Asm::new();
    a.load(Size::W, R2, R1, USER_IP6).jump_imm(Cond::Ne, R2, 0, "allow");
    a.load(Size::W, R2, R1, USER_IP6 + 4).jump_imm(Cond::Ne, R2, 0, "allow");
    a.load(Size::W, R2, R1, USER_IP6 + 8).jump_imm(Cond::Ne, R2, MAPPED, "allow");
    a.load(Size::W, R2, R1, USER_IP6 + 12).jump_imm(Cond::Ne, R2, word4(lback), "allow");
    a.mov32_imm(R2, LOCALHOST).store(Size::W, R1, USER_IP6 + 12, R2);
    a.label("allow").ret(1);
    a.finish()
}

/// All socket programs of a context whose set is in the map `map_fd`.
pub fn socket_programs(set: &IpSet, map_fd: i32) -> Result<Vec<Program>, String> {
    use attach::*;
    let sock_addr = |name, attach_type, insns| Program {
        name,
        prog_type: PROG_TYPE_CGROUP_SOCK_ADDR,
        attach_type,
        attach_btf_id: 0,
        insns,
    };
    let sock = |name, attach_type, insns| Program { name, prog_type: PROG_TYPE_CGROUP_SOCK, attach_type, attach_btf_id: 0, insns };
    let skb = |name, attach_type, insns| Program { name, prog_type: PROG_TYPE_CGROUP_SKB, attach_type, attach_btf_id: 0, insns };
    let mut progs = vec![
        sock_addr("vs_bind4", INET4_BIND, bind4(set, map_fd)?),
        sock_addr("vs_bind6", INET6_BIND, bind6(set, map_fd)?),
        sock("vs_post_bind4", INET4_POST_BIND, post_bind4(set, map_fd)?),
        sock("vs_post_bind6", INET6_POST_BIND, post_bind6(set, map_fd)?),
        sock_addr("vs_connect4", INET4_CONNECT, connect4(set, map_fd)?),
        sock_addr("vs_connect6", INET6_CONNECT, connect6(set, map_fd)?),
        sock_addr("vs_sendmsg4", UDP4_SENDMSG, sendmsg4(set, map_fd)?),
        sock_addr("vs_sendmsg6", UDP6_SENDMSG, sendmsg6(set, map_fd)?),
        skb("vs_ingress", INET_INGRESS, filter::ingress(map_fd)?),
        skb("vs_egress", INET_EGRESS, filter::egress(set, map_fd)?),
    ];
    if let (true, Some(l)) = (set.hides_lback(), set.lback()) {
        progs.extend([
            sock_addr("vs_sockname4", INET4_GETSOCKNAME, hide_lback4(l)?),
            sock_addr("vs_sockname6", INET6_GETSOCKNAME, hide_lback6(l)?),
            sock_addr("vs_peername4", INET4_GETPEERNAME, hide_lback4(l)?),
            sock_addr("vs_peername6", INET6_GETPEERNAME, hide_lback6(l)?),
            sock_addr("vs_recvmsg4", UDP4_RECVMSG, hide_lback4(l)?),
            sock_addr("vs_recvmsg6", UDP6_RECVMSG, hide_lback6(l)?),
        ]);
    }
    Ok(progs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv6Addr};

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
        for s in [
            set(&["127.0.0.2"], None),
            set(&["::1"], None),
            set(&["127.0.0.2", "::1"], Some("127.0.4.1")),
            set(&[], None),
            set(&[], Some("127.0.4.1")),
        ] {
            let progs = socket_programs(&s, 3).unwrap();
            assert_eq!(progs.len(), if s.hides_lback() { 16 } else { 10 });
            assert!(progs.iter().all(|p| !p.insns.is_empty() && p.insns.len() < 200));
        }
    }

    #[test]
    fn bind4_rewrites_the_wildcard_to_the_first_address() {
        let insns = bind4(&set(&["127.0.0.9", "127.0.0.2"], None), 3).unwrap();
        let first = word4(Ipv4Addr::new(127, 0, 0, 9)) as i32;
        assert!(insns.iter().any(|i| i.code == 0xb4 && i.imm == first), "mov32 of the first address");
        // Without an IPv4 address there is nothing to rewrite to.
        let none = bind4(&set(&["::1"], None), 3).unwrap();
        assert!(!none.iter().any(|i| i.code == 0xb4 && i.imm == first));
    }

    #[test]
    fn localhost_is_remapped_only_with_a_loopback_address() {
        let lb = word4(Ipv4Addr::new(127, 0, 4, 1)) as i32;
        let with = connect4(&set(&["127.0.0.2"], Some("127.0.4.1")), 3).unwrap();
        assert!(with.iter().any(|i| i.imm == LOCALHOST as i32));
        assert!(with.iter().any(|i| i.imm == lb));
        let without = connect4(&set(&["127.0.0.2"], None), 3).unwrap();
        assert!(!without.iter().any(|i| i.code == 0x56 && i.imm == LOCALHOST as i32));
    }
}
