//! The host ids of a guest with a user namespace of its own: guest ids
//! 0..65535 are host ids BASE..BASE+65535 with BASE = xid * 65536. The
//! context layer maps them; the builder shifts a guest tree's owners to them.

/// How many ids each guest gets.
pub const RANGE: u32 = 65536;

/// The host id of the guest's id 0.
pub fn base(xid: u32) -> u32 {
    xid * RANGE
}
