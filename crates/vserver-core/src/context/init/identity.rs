//! The built-in init is a fork of the host's `vserver` binary: without care
//! the guest would see the admin's command line (`/usr/sbin/vserver web1
//! start`) in `ps`, the admin's environment in `/proc/1/environ`, and could
//! open the host binary through `/proc/1/exe`. Here pid 1 takes the identity
//! of an init: argv and comm `init`, the guest's environment, and it is made
//! non-dumpable, which closes `/proc/1/{exe,environ,mem,fd,...}` and ptrace
//! to guest root (it has no CAP_SYS_PTRACE).

use anyhow::{bail, Context, Result};

/// Argv and environment, set in one PR_SET_MM_MAP call (which, unlike the
/// single-field PR_SET_MM operations, needs no capability, so it works after
/// the capability drop and in a user namespace; kernels with
/// CONFIG_CHECKPOINT_RESTORE, as Debian's). pid 1 calls this before it starts
/// the guest's first command.
pub fn take_init_identity(env: &[String]) -> Result<()> {
    let old = MmLayout::of_self()?;
    let mut block = b"init\0".to_vec();
    for e in env {
        block.extend_from_slice(e.as_bytes());
        block.push(0);
    }
    // Lives as long as the process: the kernel reads /proc/1/cmdline from it.
    let block: &'static mut [u8] = Box::leak(block.into_boxed_slice());
    let base = block.as_ptr() as u64;
    // SAFETY: brk(0) only returns the current program break.
    let brk = unsafe { libc::syscall(libc::SYS_brk, 0) } as u64;
    let map = PrctlMmMap {
        start_code: old.start_code,
        end_code: old.end_code,
        start_data: old.start_data,
        end_data: old.end_data,
        start_brk: old.start_brk,
        brk,
        start_stack: old.start_stack,
        arg_start: base,
        arg_end: base + 5,
        env_start: base + 5,
        env_end: base + block.len() as u64,
        auxv: 0,
        auxv_size: 0,
        exe_fd: u32::MAX,
    };
    // SAFETY: prctl(PR_SET_MM, PR_SET_MM_MAP) reads the struct we pass, of the size we pass.
    let rc = unsafe {
        libc::prctl(libc::PR_SET_MM, libc::PR_SET_MM_MAP as libc::c_ulong, &map as *const PrctlMmMap, std::mem::size_of::<PrctlMmMap>(), 0)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("replacing pid 1's command line and environment (PR_SET_MM_MAP)");
    }
    // The admin's strings are still in memory: drop glibc's pointers to them,
    // then wipe them.
    // SAFETY: single-threaded; nothing holds a pointer into environ.
    unsafe { libc::clearenv() };
    // SAFETY: the original argv and environment strings, which nothing uses
    // any more (the kernel reads the new block now).
    unsafe {
        wipe(old.arg_start, old.arg_end);
        wipe(old.env_start, old.env_end);
    }
    nix::sys::prctl::set_name(c"init").context("naming pid 1 init")?;
    Ok(())
}

/// Last, after every credential change (which resets the flag).
pub fn make_undumpable() -> Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("making pid 1 non-dumpable");
    }
    // SAFETY: as above.
    if unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        bail!("pid 1 is still dumpable");
    }
    Ok(())
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

struct MmLayout {
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
    fn of_self() -> Result<MmLayout> {
        let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
        let rest = &stat[stat.rfind(')').context("unexpected /proc/self/stat")? + 2..];
        let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
        let field = |n: usize| fields.get(n - 3).copied().context("/proc/self/stat lacks the memory layout fields");
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

/// # Safety
/// `[start, end)` must be writable memory of this process that nothing reads.
unsafe fn wipe(start: u64, end: u64) {
    if start != 0 && end > start {
        std::ptr::write_bytes(start as *mut u8, 0, (end - start) as usize);
    }
}
