//! Calls that belong to no concept of their own: getrandom(2), malloc_trim(3),
//! localtime_r(3), membarrier(2).

use std::io;

use crate::check;

/// Fills `buf` with random bytes (getrandom(2), flags 0: the urandom
/// source, waiting only until it is initialised): how many were written.
pub fn getrandom(buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the buffer is valid for its length.
    let n = check(unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) })?;
    Ok(n as usize)
}

/// Gives the free memory at the top of the heap back to the kernel
/// (malloc_trim(3)); whether any was released does not matter. (Belongs in `misc`.)
pub fn malloc_trim() {
    // SAFETY: malloc_trim only returns free heap memory; nothing points into it.
    unsafe { libc::malloc_trim(0) };
}

/// `t` (seconds since the epoch) in the local time zone, localtime_r(3);
/// None when it cannot be represented. (Belongs in `misc`.)
pub fn local_time(t: libc::time_t) -> Option<libc::tm> {
    // SAFETY: libc::tm is plain data (its tm_zone pointer may be null); all zeroes is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r fills the struct we own from a time value we own.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    (!r.is_null()).then_some(tm)
}

/// membarrier(MEMBARRIER_CMD_GLOBAL): returns once every CPU has passed a
/// full memory barrier (a synchronize_rcu() in the kernel).
pub fn membarrier_global() -> io::Result<()> {
    const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;
    // SAFETY: membarrier takes no pointers.
    check(unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_is_a_valid_local_time() {
        let tm = local_time(0).expect("converts");
        assert!((0..24).contains(&tm.tm_hour) && (0..60).contains(&tm.tm_min));
    }

    #[test]
    fn getrandom_fills_the_buffer() {
        let mut buf = [0u8; 16];
        assert_eq!(getrandom(&mut buf).unwrap(), 16);
    }
}
