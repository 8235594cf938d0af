//! The restrictions every process of a guest runs under, applied last before
//! exec, in the same order for the guest's init and for `enter`/`exec`.

use std::os::fd::OwnedFd;

use crate::context::error::{Result, StepResult};

use crate::caps::{self, CapSet};
use crate::limits::rlimit::{self, RlimitSetting};
use crate::seccomp::{CompiledFilter, FilterOptions, NotifyFilter};
use crate::sys::{self, fds};

/// What a guest's processes are held to. Built once per boot by the
/// monitor, which keeps it for the processes that join the guest later.
#[derive(Debug, Clone)]
pub struct Restrictions {
    pub bcaps: CapSet,
    /// What leaves the bounding set to leave `bcaps`, computed once.
    pub bounding_drops: Vec<caps::Capability>,
    /// The configured limits, for the guest's first process (joiners copy
    /// the running init's limits instead, which `vlimit` may have changed).
    pub rlimits: Vec<RlimitSetting>,
    pub personality: libc::c_ulong,
    pub seccomp: FilterOptions,
    /// `seccomp`, compiled once: installed from this copy by every process.
    pub filter: CompiledFilter,
    /// A unified guest's copy-on-write notify filter (unify::cow): every
    /// process installs it too and hands its listener to the monitor.
    pub copy_on_write: Option<NotifyFilter>,
}

impl Restrictions {
    /// What the configuration asks for, at guest start.
    pub fn for_guest(guest: &crate::config::Guest) -> Result<Restrictions> {
        use crate::config::{ContextCap, ContextFlag};
        let seccomp = FilterOptions {
            allow_io_uring: guest.cflags.contains(&ContextFlag::IoUring),
            allow_ping_sockets: guest.ccaps.contains(&ContextCap::RawIcmp),
            allow_leases: guest.ccaps.contains(&ContextCap::SetLease),
        };
        Ok(Restrictions {
            bounding_drops: caps::bounding_set_drops(&guest.bcaps),
            bcaps: guest.bcaps.clone(),
            rlimits: guest.rlimits.clone(),
            personality: guest.personality_raw(), // compat: domain and flags
            seccomp,
            filter: CompiledFilter::new(seccomp)?,
            copy_on_write: None,
        })
    }

    /// The guest's processes are supervised for copy-on-write (it takes
    /// part in unification).
    pub fn with_copy_on_write(mut self) -> Restrictions {
        self.copy_on_write = Some(NotifyFilter::copy_on_write());
        self
    }
}

/// Personality and resource limits. Before the capability drop and before
/// a user namespace: raising a hard limit needs CAP_SYS_RESOURCE in the
/// host's user namespace.
pub fn apply_limits(r: &Restrictions) -> Result<()> {
    set_personality(r.personality)?;
    Ok(rlimit::apply_to_self(&r.rlimits)?)
}

/// A resource limit as read from a running process (prlimit).
pub type RawLimit = (libc::__rlimit_resource_t, sys::rlimit::Pair);

/// The limits of a running guest's init, for a process joining it: every one
/// is set, or it is an error (a joiner never keeps a host limit).
pub fn apply_copied_limits(personality: libc::c_ulong, limits: &[RawLimit]) -> Result<()> {
    set_personality(personality)?;
    for (res, lim) in limits {
        sys::rlimit::set(sys::rlimit::SELF, *res, *lim).with_step(|| format!("copying the guest's resource limit {res}"))?;
    }
    Ok(())
}

/// The bounding set, the descriptors, the seccomp filter: the last steps
/// before exec. Returns the copy-on-write filter's user-notification
/// listener when the guest's processes are supervised: the caller must hand
/// it to the monitor before it makes any call the filter notifies.
pub fn apply_confinement(r: &Restrictions) -> Result<Option<OwnedFd>> {
    reset_signals()?;
    caps::drop_from_bounding_set(&r.bounding_drops)?;
    // Nothing of the host survives exec but stdin, stdout and stderr.
    fds::cloexec_from(3).step("marking inherited descriptors close-on-exec")?;
    // Last: installing a filter without no_new_privs needs CAP_SYS_ADMIN,
    // which is still in our effective set until exec.
    r.filter.install()?;
    match &r.copy_on_write {
        Some(f) => Ok(Some(f.install_with_listener().step("installing the copy-on-write seccomp filter")?)),
        None => Ok(None),
    }
}

/// A guest process starts with no signal blocked or ignored: exec keeps
/// both, and the monitor blocks SIGINT, SIGTERM, SIGHUP and SIGCHLD for its
/// signalfd and ignores SIGPIPE (as every Rust program does).
fn reset_signals() -> Result<()> {
    for sig in 1..=31 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        sys::signal::set_default(sig).with_step(|| format!("resetting signal {sig}"))?;
    }
    let none = nix::sys::signal::SigSet::empty();
    nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&none), None).step("unblocking signals")
}

fn set_personality(p: libc::c_ulong) -> Result<()> {
    if p == 0 {
        return Ok(());
    }
    sys::prctl::set_personality(p).step("setting the personality")
}

/// For the built-in init, which never execs: make the bounding set its
/// effective and permitted sets too, as exec would for a guest root process.
pub fn limit_own_capabilities(bcaps: &CapSet) -> Result<()> {
    for set in [::caps::CapSet::Effective, ::caps::CapSet::Permitted] {
        let current = ::caps::read(None, set).map_err(|e| e.to_string()).step("reading capabilities")?;
        let keep: CapSet = current.intersection(bcaps).copied().collect();
        ::caps::set(None, set, &keep).map_err(|e| e.to_string()).step("dropping capabilities")?;
    }
    Ok(())
}
