//! The instruction patterns the socket programs share: fetching the
//! context's map, building a lookup key from an address, the lookup itself,
//! testing and copying what it found, binding a source. `programs.rs`
//! composes them into one program per hook.
//!
//! Registers across a program: r6 the context, r8 the value the last lookup
//! found, r9 an IPv4 address being worked on. Stack: the lookup key at fp-28
//! (prefix length, then the current slot at fp-24 and the 16 address bytes
//! at fp-20; slot and address alone are the exact map's key), a sockaddr
//! for bpf_bind() at fp-64.

use super::dest::{V_FLAGS, V_SRC};
use crate::sys::ebpf::asm::{Asm, Cond, Insn, Reg, Size};
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
pub(super) const HELPER_SKC_TO_TCP6_SOCK: i32 = 136;
pub(super) const HELPER_SKC_TO_UDP6_SOCK: i32 = 140;
pub(super) const HELPER_SET_RETVAL: i32 = 187;

pub(super) const AF_INET: u32 = 2;
pub(super) const AF_INET6: u32 = 10;

pub(super) const KEY: i16 = -28;
/// The slot, read once per program by `trie`; also the exact map's key.
pub(super) const KEY_SLOT: i16 = -24;
pub(super) const KEY_ADDR: i16 = -20;
/// The prefix length of a full address in the trie's key: the slot's 32
/// bits and 128 address bits.
pub(super) const FULL_PREFIX: u32 = super::dest::SLOT_BITS + 128;
const SOCKADDR: i16 = -64;

/// The third word of a v4-mapped address, `::ffff:0:0`.
pub(super) const MAPPED: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);
pub(super) const LOCALHOST: u32 = u32::from_ne_bytes([127, 0, 0, 1]);

/// An IPv4 address as the 32-bit word the context holds (network order).
pub(super) fn word4(a: std::net::Ipv4Addr) -> u32 {
    u32::from_ne_bytes(a.octets())
}

pub(super) fn words6(a: std::net::Ipv6Addr) -> [u32; 4] {
    let o = a.octets();
    [0, 4, 8, 12].map(|i| u32::from_ne_bytes(o[i..i + 4].try_into().unwrap()))
}

/// The fds of a context's maps (`dest::Maps`), for loading its programs.
#[derive(Debug, Clone, Copy)]
pub struct MapFds {
    pub slot: i32,
    pub exact: i32,
    pub prefixes: i32,
}

/// Emits the instructions shared by the programs of one context.
pub(super) struct Gen {
    maps: MapFds,
    pub(super) a: Asm,
}

impl Gen {
    pub(super) fn new(maps: MapFds) -> Gen {
        let mut a = Asm::new();
        a.mov_reg(R6, R1); // keep the context across helper calls
        Gen { maps, a }
    }

    /// Reads the current slot into the key (once: every lookup after uses
    /// that slot's entries); `fail` if the slot map has no entry (never, but
    /// the verifier wants the check, and failing closed is right).
    pub(super) fn trie(&mut self, fail: &str) {
        let a = &mut self.a;
        a.store_imm(Size::W, R10, KEY_SLOT, 0);
        a.load_map_fd(R1, self.maps.slot).mov_reg(R2, R10).add_imm(R2, KEY_SLOT as i32).call(HELPER_MAP_LOOKUP);
        a.jump64_imm(Cond::Eq, R0, 0, fail);
        a.load(Size::W, R1, R0, 0).store(Size::W, R10, KEY_SLOT, R1);
    }

    /// The key for the IPv4 address in `reg` (v4-mapped, full length).
    pub(super) fn key_v4(&mut self, reg: Reg) {
        let a = &mut self.a;
        a.store_imm(Size::W, R10, KEY, FULL_PREFIX);
        a.store_imm(Size::W, R10, KEY_ADDR, 0).store_imm(Size::W, R10, KEY_ADDR + 4, 0);
        a.store_imm(Size::W, R10, KEY_ADDR + 8, MAPPED).store(Size::W, R10, KEY_ADDR + 12, reg);
    }

    /// The key for the IPv6 address at `base + off`.
    pub(super) fn key_v6(&mut self, base: Reg, off: i16) {
        self.a.store_imm(Size::W, R10, KEY, FULL_PREFIX);
        for i in 0..4 {
            self.a.load(Size::W, R1, base, off + 4 * i).store(Size::W, R10, KEY_ADDR + 4 * i, R1);
        }
    }

    /// r8 = the entry for the key: the exact entry if there is one (one
    /// hash lookup, the common case), else the longest prefix of the slot
    /// from the trie; `miss` if none.
    pub(super) fn lookup(&mut self, miss: &str) {
        let found = format!("found_{}", self.a.position());
        let a = &mut self.a;
        a.load_map_fd(R1, self.maps.exact).mov_reg(R2, R10).add_imm(R2, KEY_SLOT as i32).call(HELPER_MAP_LOOKUP);
        a.jump64_imm(Cond::Ne, R0, 0, &found);
        a.load_map_fd(R1, self.maps.prefixes).mov_reg(R2, R10).add_imm(R2, KEY as i32).call(HELPER_MAP_LOOKUP);
        a.jump64_imm(Cond::Eq, R0, 0, miss);
        a.label(&found).mov_reg(R8, R0);
    }

    /// Goes to `label` if the entry in r8 has any of `flags`.
    pub(super) fn if_flags(&mut self, flags: u32, label: &str) {
        self.a.load(Size::W, R1, R8, V_FLAGS).jump_imm(Cond::Set, R1, flags, label);
    }

    /// Goes to `label` unless the entry in r8 has one of `flags`.
    pub(super) fn unless_flags(&mut self, flags: u32, label: &str) {
        let skip = format!("has_{flags}_{}", self.a_len());
        self.if_flags(flags, &skip);
        self.a.goto(label).label(&skip);
    }

    fn a_len(&self) -> usize {
        // A unique suffix for generated labels.
        self.a.position()
    }

    /// Copies the 16 bytes at r8+`from` to `base`+`to`.
    pub(super) fn copy16(&mut self, from: i16, base: Reg, to: i16) {
        for i in 0..4 {
            self.a.load(Size::W, R1, R8, from + 4 * i).store(Size::W, base, to + 4 * i, R1);
        }
    }

    /// Goes to `label` if the 16 bytes at r8+`off` are all zero.
    pub(super) fn if_zero16(&mut self, off: i16, label: &str) {
        let nonzero = format!("nonzero_{}", self.a_len());
        for i in 0..4 {
            self.a.load(Size::W, R1, R8, off + 4 * i).jump_imm(Cond::Ne, R1, 0, &nonzero);
        }
        self.a.goto(label).label(&nonzero);
    }

    /// Goes to `allow` if ctx->sk is bound to an address already (a bind
    /// the bind programs checked), to `deny` if it has a port but no address:
    /// autobound to the wildcard by an earlier send, so no source of the set
    /// can be given to it any more. Falls through for an unbound socket.
    pub(super) fn check_bound(&mut self, v6: bool, allow: &str, deny: &str) {
        let a = &mut self.a;
        a.load(Size::DW, R2, R6, SK);
        if v6 {
            for i in 0..4 {
                a.load(Size::W, R1, R2, SRC_IP6 + 4 * i).jump_imm(Cond::Ne, R1, 0, allow);
            }
        } else {
            a.load(Size::W, R1, R2, SRC_IP4).jump_imm(Cond::Ne, R1, 0, allow);
        }
        a.load(Size::W, R1, R2, SRC_PORT).jump_imm(Cond::Ne, R1, 0, deny);
    }

    /// bpf_bind(ctx, the source in the entry r8); `deny` if the kernel
    /// refuses. IPv4 sockets get a sockaddr_in with the address's last
    /// word, IPv6 ones a sockaddr_in6 with all 16 bytes (v4-mapped or not).
    pub(super) fn bind_source(&mut self, v6: bool, deny: &str) {
        if v6 {
            let a = &mut self.a;
            a.store_imm(Size::W, R10, SOCKADDR, AF_INET6).store_imm(Size::W, R10, SOCKADDR + 4, 0);
            self.copy16(V_SRC, R10, SOCKADDR + 8);
            let a = &mut self.a;
            a.store_imm(Size::W, R10, SOCKADDR + 24, 0);
            a.mov_reg(R1, R6).mov_reg(R2, R10).add_imm(R2, SOCKADDR as i32).mov_imm(R3, 28);
        } else {
            let a = &mut self.a;
            // struct sockaddr_in: family, port 0, address, zero pad.
            a.store_imm(Size::W, R10, SOCKADDR, AF_INET);
            a.load(Size::W, R1, R8, V_SRC + 12).store(Size::W, R10, SOCKADDR + 4, R1);
            a.store_imm(Size::W, R10, SOCKADDR + 8, 0).store_imm(Size::W, R10, SOCKADDR + 12, 0);
            a.mov_reg(R1, R6).mov_reg(R2, R10).add_imm(R2, SOCKADDR as i32).mov_imm(R3, 16);
        }
        self.a.call(HELPER_BIND).jump64_imm(Cond::Ne, R0, 0, deny);
    }

    /// `deny:` return 0 with `errno` (EPERM if None); `allow:` return 1.
    /// Deny comes first: a path that falls off the end of the policy is
    /// refused, so only an explicit jump allows.
    pub(super) fn finish(mut self, errno: Option<i32>) -> Result<Vec<Insn>, String> {
        let a = &mut self.a;
        a.label("deny");
        if let Some(e) = errno {
            a.mov_imm(R1, -e).call(HELPER_SET_RETVAL);
        }
        a.ret(0).label("allow").ret(1);
        self.a.finish()
    }
}
