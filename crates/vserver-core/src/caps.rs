//! The capability bounding set of a context (util-vserver's `bcapabilities`).
//!
//! The default is the Linux-VServer paper's "secure" list, reviewed against the
//! escapes found since 2006 (README, "Security model"):
//! - CAP_DAC_READ_SEARCH is dropped: it allows `open_by_handle_at(2)`, which
//!   opens any inode of a mounted filesystem by handle, past the guest root
//!   (the 2014 "shocker" escape);
//! - CAP_SYS_PTRACE is dropped: it lifts the `vm.unprivileged_userfaultfd`
//!   restriction and `process_vm_*` limits; ptrace of one's own uid still works;
//! - CAP_SETPCAP is added: daemons drop capabilities with it, and it can only
//!   shrink what the bounding set already allows;
//! - CAP_AUDIT_WRITE is added: login, sshd and su write audit records;
//! - CAP_LEASE is dropped: a lease on a file shared between guests by
//!   unification would block every other guest's open of it (the seccomp
//!   filter also refuses F_SETLEASE to owners, who need no capability; the
//!   ccapability SET_LEASE lifts that).
//!
//! CAP_NET_RAW and CAP_NET_ADMIN are never in the default: the guest shares the
//! host network, and raw sockets bypass its IP set.

pub use caps::Capability;

pub const DEFAULT_BOUNDING_SET: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_KILL,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_SYS_BOOT,
    Capability::CAP_SYS_TTY_CONFIG,
    Capability::CAP_AUDIT_WRITE,
];

pub type CapSet = caps::CapsHashSet;

pub fn default_bounding_set() -> CapSet {
    DEFAULT_BOUNDING_SET.iter().copied().collect()
}

/// Parses `CAP_CHOWN`, `chown` or `CHOWN` (util-vserver files use all three).
pub fn parse_capability(name: &str) -> Result<Capability, String> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
    full.parse::<Capability>().map_err(|_| "is not a Linux capability name (see capabilities(7))".to_string())
}

/// Drops every capability outside `keep` from this thread's bounding set and
/// clears the inheritable and ambient sets, so that nothing exec'ed later can
/// regain a dropped capability. Effective and permitted stay as they are: the
/// steps after this one (seccomp) still need CAP_SYS_ADMIN, and exec
/// recomputes them from the bounding set.
pub fn restrict_to(keep: &CapSet) -> Result<(), CapsError> {
    drop_from_bounding_set(&bounding_set_drops(keep))
}

/// Every capability the kernel knows that `keep` does not have: computed
/// once (in the monitor), dropped by every guest process with
/// [`drop_from_bounding_set`]. Not only those in our own bounding set: a
/// process that enters a new user namespace gets a full bounding set there.
pub fn bounding_set_drops(keep: &CapSet) -> Vec<Capability> {
    let mut drops: Vec<Capability> = caps::runtime::thread_all_supported().into_iter().filter(|c| !keep.contains(c)).collect();
    drops.sort_by_key(|c| c.index());
    drops
}

/// [`restrict_to`] with the drops computed beforehand.
pub fn drop_from_bounding_set(drops: &[Capability]) -> Result<(), CapsError> {
    for (set, name) in [(caps::CapSet::Ambient, "ambient"), (caps::CapSet::Inheritable, "inheritable")] {
        caps::clear(None, set).map_err(|e| CapsError::Clear { set: name, message: e.to_string() })?;
    }
    for cap in drops {
        crate::sys::prctl::capbset_drop(u32::from(cap.index())).map_err(|err| CapsError::Drop { cap: *cap, err })?;
    }
    Ok(())
}

/// A capability step that failed, with the capability or set and the errno.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("clearing the {set} capabilities: {message}")]
    Clear { set: &'static str, message: String },
    #[error("dropping {cap} from the bounding set: {err}")]
    Drop { cap: Capability, err: std::io::Error },
}

/// Renders a set the way `/proc/PID/status` shows `CapBnd`: hex bitmask.
pub fn to_mask(set: &CapSet) -> u64 {
    set.iter().fold(0u64, |m, c| m | c.bitmask())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The library's convention: a typed error's message carries its cause
    /// (the errno), which is not also its `source()`, so a chain of
    /// contexts printed as the tools print it (`{:#}`) says it once.
    #[test]
    fn a_typed_error_in_a_chain_names_its_errno_once() {
        let eperm = || std::io::Error::from_raw_os_error(libc::EPERM);
        let errors: Vec<anyhow::Error> = vec![
            CapsError::Drop { cap: Capability::CAP_CHOWN, err: eperm() }.into(),
            crate::limits::rlimit::RlimitError::Read { resource: crate::config::rlimit::Resource::Nofile, err: eperm() }.into(),
            crate::config::sysctl::SysctlError::Open { file: "sysctl/0/setting".into(), path: "/proc/sys/x".into(), err: eperm() }.into(),
            crate::sys::ebpf::load::LoadError { errno: eperm(), verifier: Vec::new() }.into(),
        ];
        for e in errors {
            let text = format!("{:#}", e.context("confining the guest"));
            assert_eq!(text.matches("Operation not permitted").count(), 1, "{text}");
        }
    }

    #[test]
    fn names_parse_with_or_without_prefix_in_any_case() {
        assert_eq!(parse_capability("CAP_CHOWN").unwrap(), Capability::CAP_CHOWN);
        assert_eq!(parse_capability("net_raw").unwrap(), Capability::CAP_NET_RAW);
        assert!(parse_capability("CAP_FLY").is_err());
    }

    #[test]
    fn default_set_has_no_escape_hatches() {
        let d = default_bounding_set();
        for bad in [
            Capability::CAP_SYS_ADMIN,
            Capability::CAP_NET_RAW,
            Capability::CAP_NET_ADMIN,
            Capability::CAP_DAC_READ_SEARCH,
            Capability::CAP_SYS_PTRACE,
            Capability::CAP_MKNOD,
            Capability::CAP_SYS_MODULE,
            Capability::CAP_LINUX_IMMUTABLE,
            Capability::CAP_BPF,
            Capability::CAP_LEASE,
        ] {
            assert!(!d.contains(&bad), "{bad} must not be in the default");
        }
        assert_eq!(to_mask(&[Capability::CAP_CHOWN, Capability::CAP_KILL].into_iter().collect()), 0x21);
    }

    #[test]
    fn drops_are_everything_outside_the_set_whatever_our_own_set_is() {
        let keep = default_bounding_set();
        let drops = bounding_set_drops(&keep);
        assert_eq!(drops.len() + keep.len(), caps::runtime::thread_all_supported().len());
        assert!(drops.contains(&Capability::CAP_SYS_RESOURCE) && drops.contains(&Capability::CAP_SYS_ADMIN));
        assert!(!drops.contains(&Capability::CAP_CHOWN));
    }
}
