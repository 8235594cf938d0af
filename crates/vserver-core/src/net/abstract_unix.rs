//! Abstract unix sockets private to a guest. Their names live in the
//! network namespace, which a guest shares with the host, so without more a
//! guest could connect to a host daemon's abstract socket (and be seen there
//! as host root) or to another guest's.
//!
//! The mechanism is Landlock's scoping (ABI 6, kernel >= 6.12): a process in
//! a Landlock domain created with `LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET` can
//! connect (or send a datagram) only to abstract sockets created inside the
//! same domain or one nested in it. The guest's monitor calls
//! [`scope_for_guest`] on itself once, before it forks the guest's pid 1, so
//! the guest's whole process tree (and every joiner the monitor spawns) is
//! one domain: its own abstract sockets work between its processes, the
//! host's and other guests' are out of reach. Host processes are not
//! restricted (scoping limits the scoped side only).
//!
//! What the kernel does not offer: a private *name space*. Names are still
//! the host's, so a guest can bind a name first and make a host daemon (or
//! another guest) fail to bind it, and `/proc/net/unix` lists every name.
//! There is no cgroup BPF hook on bind(2) for AF_UNIX (the unix hooks since
//! 6.7 cover connect, sendmsg, recvmsg, getpeername and getsockname only),
//! so names cannot be rewritten per guest soundly.
//!
//! Where the kernel has no scoping, `start` refuses a guest on the host's
//! network unless its `cflags` has [`SHARED_FLAG`], which accepts sharing.

use std::io;

use super::NetError;
use crate::config::{ContextFlag, ExtraNamespace, Guest};
use crate::sys::landlock;

/// The cflag that lets a guest share the host's abstract unix sockets: its
/// start is not refused on a kernel without scoping, and it is not scoped
/// where the kernel could.
pub const SHARED_FLAG: &str = "SHARED_ABSTRACT_UNIX";

/// The first Landlock ABI with `LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET`.
pub const SCOPE_ABI: u32 = 6;

/// What the running kernel offers for abstract unix socket isolation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// Landlock with abstract unix socket scoping (its ABI version).
    Scoped { abi: u32 },
    /// Nothing: why, for `vserver-info` and `start`'s refusal.
    Missing { reason: String },
}

/// Why Landlock cannot be used: ENOSYS and EOPNOTSUPP explained, any
/// other errno as it is.
#[derive(Debug, thiserror::Error)]
pub enum LandlockUnavailable {
    /// ENOSYS.
    #[error("the kernel has no Landlock (CONFIG_SECURITY_LANDLOCK)")]
    NotBuiltIn,
    /// EOPNOTSUPP.
    #[error("Landlock is built in but not enabled (add landlock to the lsm= boot parameter)")]
    NotEnabled,
    #[error("cannot ask the kernel for its Landlock ABI: {0}")]
    Query(io::Error),
}

/// The Landlock ABI version, or why Landlock cannot be used.
pub fn landlock_abi() -> Result<u32, LandlockUnavailable> {
    landlock::abi_version().map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSYS) => LandlockUnavailable::NotBuiltIn,
        Some(libc::EOPNOTSUPP) => LandlockUnavailable::NotEnabled,
        _ => LandlockUnavailable::Query(e),
    })
}

/// Can this kernel keep a guest's processes away from other abstract sockets?
pub fn probe() -> Support {
    match landlock_abi() {
        Ok(abi) if abi >= SCOPE_ABI => Support::Scoped { abi },
        Ok(abi) => Support::Missing {
            reason: format!("Landlock ABI {abi} has no abstract unix socket scoping (ABI {SCOPE_ABI}, kernel 6.12 or later)"),
        },
        Err(why) => Support::Missing { reason: why.to_string() },
    }
}

/// Puts the calling thread (and every process it forks from now on) into a
/// new Landlock domain scoped for abstract unix sockets. Needs CAP_SYS_ADMIN
/// (the monitor has it) or no_new_privs, which a monitor must not set: its
/// guest's setuid programs would stop working.
pub fn scope_self() -> io::Result<()> {
    landlock::scope_self(landlock::SCOPE_ABSTRACT_UNIX_SOCKET)
}

/// Whether this guest needs scoping: it shares the host's network namespace
/// (abstract names are per network namespace) and has not opted out.
pub fn guest_needs_scope(guest: &Guest) -> bool {
    !guest.wants_namespace(ExtraNamespace::Net) && !guest.cflags.contains(&ContextFlag::SharedAbstractUnix)
}

/// `start`'s check, before anything changes: refuses a guest that needs
/// scoping on a kernel without it, naming the setting that accepts that.
pub fn check_guest(guest: &Guest) -> Result<(), NetError> {
    if !guest_needs_scope(guest) {
        return Ok(());
    }
    if let Support::Missing { reason } = probe() {
        return Err(NetError::AbstractUnixNotPrivate { guest: guest.name.clone(), reason, cflags: guest.confdir.join("cflags") });
    }
    Ok(())
}

/// The monitor's step, once, before it forks the guest's pid 1: scopes the
/// monitor itself when the guest needs it. Calling it again in the same
/// process (a reboot of the guest) does nothing: each call would nest one
/// more domain, and Landlock allows 16.
pub fn scope_for_guest(guest: &Guest) -> Result<(), NetError> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static SCOPED: AtomicBool = AtomicBool::new(false);
    if !guest_needs_scope(guest) || SCOPED.load(Ordering::SeqCst) {
        return Ok(());
    }
    scope_self().map_err(|err| NetError::Scope { guest: guest.name.clone(), err })?;
    SCOPED.store(true, Ordering::SeqCst);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

    fn abstract_name(tag: &str) -> SocketAddr {
        SocketAddr::from_abstract_name(format!("vs-unit-{tag}-{}", std::process::id())).unwrap()
    }

    /// A forked child scopes itself: it can no longer connect to a socket
    /// the parent (outside its domain) listens on, but to its own.
    #[test]
    fn a_scoped_process_reaches_only_its_own_abstract_sockets() {
        let abi = landlock_abi();
        let Support::Scoped { .. } = probe() else {
            // A kernel before 6.12 (Debian 12's 6.1 has ABI 2): the probe must
            // say so, which is what makes `start` refuse (tests/guest_net.rs).
            assert!(abi.as_ref().map_or(true, |a| *a < SCOPE_ABI), "ABI {abi:?} but no scoping");
            return;
        };
        let host = UnixListener::bind_addr(&abstract_name("host")).unwrap();
        let host_addr = host.local_addr().unwrap();
        // The child only makes syscalls and exits (sys::process's contract).
        let pid = crate::sys::process::fork_child(|| {
            if scope_self().is_err() {
                return 10;
            }
            match UnixStream::connect_addr(&host_addr) {
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
                _ => return 11,
            }
            let own = match UnixListener::bind_addr(&abstract_name("own")) {
                Ok(l) => l,
                Err(_) => return 12,
            };
            if UnixStream::connect_addr(&own.local_addr().unwrap()).is_err() {
                return 13;
            }
            0
        })
        .unwrap();
        let status = crate::sys::process::wait_pid(pid, 0).unwrap().expect("exited");
        assert!(libc::WIFEXITED(status), "child status {status}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "10 scope, 11 host socket reachable, 12 bind, 13 own socket unreachable");
        // The parent (outside the domain) is not restricted.
        UnixStream::connect_addr(&host_addr).unwrap();
    }
}
