//! The instruction patterns the socket programs share: address lookups in
//! the set's map, rewriting addresses in the context, picking and binding a
//! source. `programs.rs` composes them into one program per hook.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::asm::{Asm, Cond, Insn, Reg, Size};
use super::ipset::IpSet;
use Reg::*;

// struct bpf_sock_addr (the context of sock_addr programs).
pub(super) const USER_IP4: i16 = 4;
pub(super) const USER_IP6: i16 = 8;
pub(super) const MSG_SRC_IP4: i16 = 40;
pub(super) const MSG_SRC_IP6: i16 = 44;
pub(super) const SK: i16 = 64;
// struct bpf_sock (the context of post_bind, and what ctx->sk points to).
pub(super) const SRC_IP4: i16 = 24;
pub(super) const SRC_IP6: i16 = 28;
pub(super) const SRC_PORT: i16 = 44;

pub(super) const HELPER_MAP_LOOKUP: i32 = 1;
pub(super) const HELPER_BIND: i32 = 64;
pub(super) const HELPER_SET_RETVAL: i32 = 187;

pub(super) const AF_INET: u32 = 2;
pub(super) const AF_INET6: u32 = 10;

/// An IPv4 address as the 32-bit word the context holds (network order).
pub(super) fn word4(a: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(a.octets())
}

pub(super) fn words6(a: Ipv6Addr) -> [u32; 4] {
    let o = a.octets();
    [0, 4, 8, 12].map(|i| u32::from_ne_bytes(o[i..i + 4].try_into().unwrap()))
}

/// The third word of a v4-mapped address, `::ffff:0:0`.
pub(super) const MAPPED: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);
pub(super) const LOCALHOST: u32 = u32::from_ne_bytes([127, 0, 0, 1]);

/// Emits the instructions shared by the programs of one context.
pub(super) struct Gen<'a> {
    set: &'a IpSet,
    map_fd: i32,
    pub(super) a: Asm,
}

impl<'a> Gen<'a> {
    pub(super) fn new(set: &'a IpSet, map_fd: i32) -> Gen<'a> {
        let mut a = Asm::new();
        a.mov_reg(R6, R1); // keep the context across helper calls
        Gen { set, map_fd, a }
    }

    /// Goes to `miss` unless the IPv4 address in `reg` (r6-r9) is in the set.
    pub(super) fn lookup_v4(&mut self, reg: Reg, miss: &str) {
        let a = &mut self.a;
        a.store_imm(Size::W, R10, -16, 0).store_imm(Size::W, R10, -12, 0).store_imm(Size::W, R10, -8, MAPPED);
        a.store(Size::W, R10, -4, reg);
        self.lookup_stack_key(miss);
    }

    /// Goes to `miss` unless the IPv6 address at `base + off` is in the set.
    pub(super) fn lookup_v6(&mut self, base: Reg, off: i16, miss: &str) {
        for i in 0..4 {
            self.a.load(Size::W, R1, base, off + 4 * i).store(Size::W, R10, -16 + 4 * i, R1);
        }
        self.lookup_stack_key(miss);
    }

    pub(super) fn lookup_stack_key(&mut self, miss: &str) {
        let a = &mut self.a;
        a.load_map_fd(R1, self.map_fd).mov_reg(R2, R10).add_imm(R2, -16).call(HELPER_MAP_LOOKUP);
        a.jump64_imm(Cond::Eq, R0, 0, miss);
    }

    pub(super) fn store4(&mut self, base: Reg, off: i16, addr: Ipv4Addr) {
        self.a.mov32_imm(R1, word4(addr)).store(Size::W, base, off, R1);
    }

    pub(super) fn store6(&mut self, base: Reg, off: i16, words: [u32; 4]) {
        for (i, w) in words.iter().enumerate() {
            self.a.mov32_imm(R1, *w).store(Size::W, base, off + 4 * i as i16, R1);
        }
    }

    /// Loads the first three words of the IPv6 address at r6+off into r7-r9
    /// and goes to `mapped` for `::ffff:a.b.c.d`, falls through otherwise.
    pub(super) fn branch_if_mapped(&mut self, off: i16, mapped: &str, not_mapped: &str) {
        let a = &mut self.a;
        a.load(Size::W, R7, R6, off).load(Size::W, R8, R6, off + 4).load(Size::W, R9, R6, off + 8);
        a.jump_imm(Cond::Ne, R7, 0, not_mapped).jump_imm(Cond::Ne, R8, 0, not_mapped);
        a.jump_imm(Cond::Eq, R9, MAPPED, mapped);
    }

    /// If the IPv4 destination in r7 is 127.0.0.1 and the context has a
    /// loopback address, rewrite it (word at r6+off) and r7 to that address.
    pub(super) fn remap_localhost(&mut self, off: i16, label: &str) {
        if let Some(l) = self.set.lback() {
            self.a.jump_imm(Cond::Ne, R7, LOCALHOST, label);
            self.store4(R6, off, l);
            self.a.mov32_imm(R7, word4(l));
        }
        self.a.label(label);
    }

    /// r9 = the IPv4 source for destination r7: the loopback address for
    /// 127.0.0.0/8 (when there is one), else the first IPv4 of the set.
    pub(super) fn pick_source4(&mut self, none: &str) {
        let (first, lback) = (self.set.first_v4(), self.set.lback().or(self.set.first_v4()));
        let a = &mut self.a;
        a.mov_reg(R1, R7).and32_imm(R1, 0xff).jump_imm(Cond::Eq, R1, 127, "src_loopback");
        match first {
            Some(f) => a.mov32_imm(R9, word4(f)).goto("src_picked"),
            None => a.goto(none),
        };
        a.label("src_loopback");
        match lback {
            Some(l) => a.mov32_imm(R9, word4(l)).goto("src_picked"),
            None => a.goto(none),
        };
        a.label("src_picked");
    }

    /// Goes to `allow` if ctx->sk is bound to an address already (a bind
    /// the bind programs checked), to `deny` if it has a port but no address:
    /// autobound to the wildcard by an earlier send, so no source of the set
    /// can be given to it any more. Falls through for an unbound socket.
    pub(super) fn check_bound(&mut self, v6: bool, allow: &str, deny: &str) {
        let a = &mut self.a;
        a.load(Size::DW, R8, R6, SK);
        if v6 {
            for i in 0..4 {
                a.load(Size::W, R1, R8, SRC_IP6 + 4 * i).jump_imm(Cond::Ne, R1, 0, allow);
            }
        } else {
            a.load(Size::W, R1, R8, SRC_IP4).jump_imm(Cond::Ne, R1, 0, allow);
        }
        a.load(Size::W, R1, R8, SRC_PORT).jump_imm(Cond::Ne, R1, 0, deny);
    }

    /// bpf_bind(ctx, sockaddr) with the source in r9 (IPv4) or the given
    /// IPv6 words; goes to `deny` if the kernel refuses.
    pub(super) fn bind_source(&mut self, v6: Option<[u32; 4]>, mapped: bool, deny: &str) {
        let a = &mut self.a;
        if v6.is_none() && !mapped {
            // struct sockaddr_in at fp-16: family, port 0, address, zero pad.
            a.store_imm(Size::W, R10, -16, AF_INET).store(Size::W, R10, -12, R9);
            a.store_imm(Size::W, R10, -8, 0).store_imm(Size::W, R10, -4, 0);
            a.mov_reg(R1, R6).mov_reg(R2, R10).add_imm(R2, -16).mov_imm(R3, 16);
        } else {
            // struct sockaddr_in6 at fp-32: family, port 0, flowinfo, address, scope.
            a.store_imm(Size::W, R10, -32, AF_INET6).store_imm(Size::W, R10, -28, 0);
            match v6 {
                Some(w) => {
                    for (i, w) in w.iter().enumerate() {
                        a.store_imm(Size::W, R10, -24 + 4 * i as i16, *w);
                    }
                }
                None => {
                    a.store_imm(Size::W, R10, -24, 0).store_imm(Size::W, R10, -20, 0);
                    a.store_imm(Size::W, R10, -16, MAPPED).store(Size::W, R10, -12, R9);
                }
            }
            a.store_imm(Size::W, R10, -8, 0).store_imm(Size::W, R10, -4, 0);
            a.mov_reg(R1, R6).mov_reg(R2, R10).add_imm(R2, -32).mov_imm(R3, 28);
        }
        a.call(HELPER_BIND).jump64_imm(Cond::Ne, R0, 0, deny);
    }

    /// Goes to `given` if the datagram has a source address already.
    pub(super) fn branch_if_source_given(&mut self) {
        for i in 0..4 {
            self.a.load(Size::W, R1, R6, MSG_SRC_IP6 + 4 * i).jump_imm(Cond::Ne, R1, 0, "given");
        }
    }

    /// `allow:` return 1; `deny:` return 0 with `errno` (EPERM if None).
    pub(super) fn finish(mut self, errno: Option<i32>) -> Result<Vec<Insn>, String> {
        let a = &mut self.a;
        a.label("allow").ret(1).label("deny");
        if let Some(e) = errno {
            a.mov_imm(R1, -e).call(HELPER_SET_RETVAL);
        }
        a.ret(0);
        self.a.finish()
    }
}
