//! prctl(2) operations nix does not wrap (the capability bounding set, the
//! memory map of argv and the environment), the program break, and
//! personality(2).

use std::io;

use crate::check;

/// Drops capability number `cap` from the calling thread's bounding set
/// (PR_CAPBSET_DROP).
pub fn capbset_drop(cap: u32) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) }).map(drop)
}

/// Sets the execution domain and flags of the calling process
/// (personality(2)).
pub fn set_personality(persona: libc::c_ulong) -> io::Result<()> {
    // SAFETY: personality(2) takes a plain integer.
    check(unsafe { libc::personality(persona) }).map(drop)
}

/// The current program break (brk(2) with 0 only reads it).
pub fn program_break() -> u64 {
    // SAFETY: brk(0) changes nothing; the raw system call returns the break.
    unsafe { libc::syscall(libc::SYS_brk, 0) as u64 }
}

/// The fields of /proc/self/stat that PR_SET_MM_MAP needs: where the
/// kernel put this process's code, data, heap, stack, argv and environment.
/// Only read from the kernel ([`MmLayout::of_self`]), so that
/// [`wipe_args_and_env`] writes nowhere but there.
#[derive(Debug, Clone, Copy)]
pub struct MmLayout {
    start_code: u64,
    end_code: u64,
    start_stack: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
}

impl MmLayout {
    /// Fields 26-28 and 45-51 of /proc/self/stat (counted after the command
    /// name, which may contain spaces).
    pub fn of_self() -> io::Result<MmLayout> {
        let stat =
            std::fs::read_to_string("/proc/self/stat").map_err(|e| io::Error::new(e.kind(), format!("reading /proc/self/stat: {e}")))?;
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        let rest = &stat[stat.rfind(')').ok_or_else(|| bad("unexpected /proc/self/stat"))? + 2..];
        let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
        let field = |n: usize| fields.get(n - 3).copied().ok_or_else(|| bad("/proc/self/stat lacks the memory layout fields"));
        Ok(MmLayout {
            start_code: field(26)?,
            end_code: field(27)?,
            start_stack: field(28)?,
            start_data: field(45)?,
            end_data: field(46)?,
            start_brk: field(47)?,
            arg_start: field(48)?,
            arg_end: field(49)?,
            env_start: field(50)?,
            env_end: field(51)?,
        })
    }
}

/// struct prctl_mm_map of <linux/prctl.h>.
#[repr(C)]
struct PrctlMmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: u64,
    auxv_size: u32,
    exe_fd: u32,
}

/// Points the kernel's argv and environment of this process (what
/// /proc/self/cmdline and /proc/self/environ show) at `block`: its first
/// `args_len` bytes are the arguments, the rest the environment. Everything
/// else keeps the layout `old` read, the break is the current one, the auxv
/// and the exe link stay. One PR_SET_MM_MAP call (unlike the single-field
/// PR_SET_MM operations, it needs no capability; kernels with
/// CONFIG_CHECKPOINT_RESTORE). `block` lives as long as the process: the
/// kernel reads it whenever someone reads those files.
pub fn set_mm_args_env(old: &MmLayout, block: &'static [u8], args_len: usize) -> io::Result<()> {
    if args_len > block.len() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let base = block.as_ptr() as u64;
    let map = PrctlMmMap {
        start_code: old.start_code,
        end_code: old.end_code,
        start_data: old.start_data,
        end_data: old.end_data,
        start_brk: old.start_brk,
        brk: program_break(),
        start_stack: old.start_stack,
        arg_start: base,
        arg_end: base + args_len as u64,
        env_start: base + args_len as u64,
        env_end: base + block.len() as u64,
        auxv: 0,
        auxv_size: 0,
        exe_fd: u32::MAX,
    };
    // SAFETY: prctl(PR_SET_MM, PR_SET_MM_MAP) reads the struct we pass, of
    // the size we pass; it changes what the kernel reports, not our memory.
    check(unsafe {
        libc::prctl(libc::PR_SET_MM, libc::PR_SET_MM_MAP as libc::c_ulong, &map as *const PrctlMmMap, std::mem::size_of::<PrctlMmMap>(), 0)
    })
    .map(drop)
}

/// Forgets the environment (clearenv(3): glibc's pointers into it go) and
/// zeroes the original argv and environment strings `old` locates, so the
/// process's memory no longer holds them. Every argument then reads as an
/// empty string.
///
/// Only for a single-threaded process (pid 1 of the built-in init): no
/// other thread may read the environment meanwhile.
pub fn wipe_args_and_env(old: &MmLayout) {
    // SAFETY: single-threaded (see above); nothing holds a pointer into environ.
    unsafe { libc::clearenv() };
    for (start, end) in [(old.arg_start, old.arg_end), (old.env_start, old.env_end)] {
        if start != 0 && end > start {
            // SAFETY: the kernel's own record of where it put this process's
            // argument and environment strings, on its writable stack; since
            // clearenv nothing reads them except through argv, whose strings
            // stay NUL-terminated (all zero).
            unsafe { std::ptr::write_bytes(start as *mut u8, 0, (end - start) as usize) };
        }
    }
}

/// The seccomp mode of this process (prctl PR_GET_SECCOMP): 0 none, 2
/// filter (1, strict, kills on this call).
pub fn seccomp_mode() -> io::Result<libc::c_int> {
    // SAFETY: PR_GET_SECCOMP takes no pointer arguments.
    check(unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_of_this_process_is_read() {
        let l = MmLayout::of_self().unwrap();
        assert!(l.arg_start != 0 && l.arg_end > l.arg_start);
        assert!(l.env_end >= l.env_start && l.start_code < l.end_code);
        assert!(program_break() >= l.start_brk);
    }

    #[test]
    fn prctl_mm_map_has_the_kernels_size() {
        assert_eq!(std::mem::size_of::<PrctlMmMap>(), 104);
    }
}
