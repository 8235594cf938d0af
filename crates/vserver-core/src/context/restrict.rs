//! The restrictions every process of a guest runs under, applied last before
//! exec, in the same order for the guest's init and for `enter`/`exec`.

use anyhow::{Context, Result};

use crate::caps::{self, CapSet};
use crate::limits::rlimit::{self, RlimitSetting};
use crate::seccomp::{self, FilterOptions};
use crate::sys::fds;

/// What a guest's processes are held to.
#[derive(Debug, Clone)]
pub struct Restrictions {
    pub bcaps: CapSet,
    pub rlimits: Vec<RlimitSetting>,
    /// Exact limits copied from a running guest's init (for `exec`).
    pub raw_rlimits: Vec<(libc::__rlimit_resource_t, libc::rlimit)>,
    pub personality: libc::c_ulong,
    pub seccomp: FilterOptions,
}

impl Restrictions {
    /// What the configuration asks for, at guest start.
    pub fn for_guest(guest: &crate::config::Guest) -> Restrictions {
        Restrictions {
            bcaps: guest.bcaps.clone(),
            rlimits: guest.rlimits.clone(),
            raw_rlimits: Vec::new(),
            personality: guest.personality_raw(), // compat: domain and flags
            seccomp: FilterOptions {
                allow_io_uring: guest.cflags.contains(&crate::config::ContextFlag::IoUring),
                allow_ping_sockets: guest.ccaps.contains(&crate::config::ContextCap::RawIcmp),
            },
        }
    }
}

/// Personality and resource limits. Before the capability drop and before
/// a user namespace: raising a hard limit needs CAP_SYS_RESOURCE in the
/// host's user namespace.
pub fn apply_limits(r: &Restrictions) -> Result<()> {
    set_personality(r.personality)?;
    rlimit::apply_to_self(&r.rlimits).map_err(anyhow::Error::msg)?;
    for (res, lim) in &r.raw_rlimits {
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(*res, lim) } != 0 {
            return Err(std::io::Error::last_os_error()).context("copying the guest's resource limits");
        }
    }
    Ok(())
}

/// The bounding set, the descriptors, the seccomp filter: the last steps
/// before exec.
pub fn apply_confinement(r: &Restrictions) -> Result<()> {
    caps::restrict_to(&r.bcaps).map_err(anyhow::Error::msg)?;
    // Nothing of the host survives exec but stdin, stdout and stderr.
    fds::cloexec_from(3).context("marking inherited descriptors close-on-exec")?;
    // Last: installing a filter without no_new_privs needs CAP_SYS_ADMIN,
    // which is still in our effective set until exec.
    seccomp::install(r.seccomp).map_err(anyhow::Error::msg)
}

fn set_personality(p: libc::c_ulong) -> Result<()> {
    if p == 0 {
        return Ok(());
    }
    // SAFETY: personality(2) takes a plain integer.
    if unsafe { libc::personality(p) } == -1 {
        return Err(std::io::Error::last_os_error()).context("setting the personality");
    }
    Ok(())
}

/// For the built-in init, which never execs: make the bounding set its
/// effective and permitted sets too, as exec would for a guest root process.
pub fn limit_own_capabilities(bcaps: &CapSet) -> Result<()> {
    for set in [::caps::CapSet::Effective, ::caps::CapSet::Permitted] {
        let current = ::caps::read(None, set).map_err(|e| anyhow::anyhow!("reading capabilities: {e}"))?;
        let keep: CapSet = current.intersection(bcaps).copied().collect();
        ::caps::set(None, set, &keep).map_err(|e| anyhow::anyhow!("dropping capabilities: {e}"))?;
    }
    Ok(())
}
