//! The built-in init is a fork of the host's `vserver` binary: without care
//! the guest would see the admin's command line (`/usr/sbin/vserver web1
//! start`) in `ps`, the admin's environment in `/proc/1/environ`, and could
//! open the host binary through `/proc/1/exe`. Here pid 1 takes the identity
//! of an init: argv and comm `init`, the guest's environment, and it is made
//! non-dumpable, which closes `/proc/1/{exe,environ,mem,fd,...}` and ptrace
//! to guest root (it has no CAP_SYS_PTRACE).

use crate::context::error::{ContextError, Result, StepResult};

use crate::sys::prctl::{self, MmLayout};

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
    let block: &'static [u8] = Box::leak(block.into_boxed_slice());
    prctl::set_mm_args_env(&old, block, 5).step("replacing pid 1's command line and environment (PR_SET_MM_MAP)")?;
    // The admin's strings are still in memory: drop glibc's pointers to them,
    // then wipe them (pid 1 is single-threaded; the kernel reads the new
    // block now).
    prctl::wipe_args_and_env(&old);
    nix::sys::prctl::set_name(c"init").step("naming pid 1 init")?;
    Ok(())
}

/// Last, after every credential change (which resets the flag).
pub fn make_undumpable() -> Result<()> {
    nix::sys::prctl::set_dumpable(false).map_err(std::io::Error::from).step("making pid 1 non-dumpable")?;
    if !matches!(nix::sys::prctl::get_dumpable(), Ok(false)) {
        return Err(ContextError::StillDumpable);
    }
    Ok(())
}
