//! [`NetError`]: what the network module refuses or fails at, each naming
//! its object (guest, file, cgroup, device, program); the cause is in the
//! message and a field, never also the `source()`.

use std::ffi::NulError;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use super::abstract_unix::SHARED_FLAG;
use super::netns::IpCommandError;
use crate::runstate::NotRunning;
use crate::sys::ebpf::load::LoadError;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Doing something failed with an errno.
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    /// Doing something to a file failed with an errno.
    #[error("{what} {}: {err}", path.display())]
    File { what: &'static str, path: PathBuf, err: io::Error },
    /// An errno whose message names its object already (`cgroup::Layout`,
    /// `rtnl::ifindex`), or one that never had a context added.
    #[error("{0}")]
    Sys(io::Error),

    #[error(
        "{}: a guest with interfaces ({}: {ip}) cannot also be unrestricted; remove one of them",
        marker.display(),
        interface.display()
    )]
    UnrestrictedWithInterfaces { marker: PathBuf, interface: PathBuf, ip: IpAddr },
    /// The guest's `interfaces/` directory and what is wrong in it.
    #[error("{}: {err}", dir.display())]
    Interfaces { dir: PathBuf, err: InterfacesError },
    /// An IP set that cannot be (the text says why; a pure check).
    #[error("{0}")]
    Set(String),
    #[error("cannot read the host's routes: {0}")]
    Routes(io::Error),

    /// Generating the programs of a set failed (the text says why).
    #[error("{0}")]
    Programs(String),
    /// Assembling the probe's trivial program failed (the text says why).
    #[error("{0}")]
    Assemble(String),
    #[error("cannot load BPF program {name}: {err}")]
    Load { name: &'static str, err: LoadError },
    #[error("cannot attach BPF program (attach type {attach_type}) to {}: {err}", cgroup.display())]
    Attach { attach_type: u32, cgroup: PathBuf, err: io::Error },
    #[error("cannot detach BPF program (attach type {attach_type}) from {}: {err}", cgroup.display())]
    Detach { attach_type: u32, cgroup: PathBuf, err: io::Error },
    #[error("cannot detach BPF program {id} from {}: {err}", cgroup.display())]
    DetachById { id: u32, cgroup: PathBuf, err: io::Error },
    #[error("cannot query BPF programs of {}: {err}", cgroup.display())]
    Query { cgroup: PathBuf, err: io::Error },
    #[error("{} has no network context programs (a guest with interfaces/unrestricted, or not running?)", cgroup.display())]
    NoPrograms { cgroup: PathBuf },

    #[error(
        "no cgroup2 hierarchy at {root} or {root}/unified: network contexts need cgroup v2 (mount one with \
         `mount -t cgroup2 none {root}/unified`, or boot with systemd.unified_cgroup_hierarchy=1)",
        root = root.display()
    )]
    NoCgroup2 { root: PathBuf },
    #[error(
        "this kernel cannot load {what} BPF programs ({err}): network contexts need CONFIG_BPF_SYSCALL, \
         CONFIG_CGROUP_BPF and CAP_BPF with CAP_NET_ADMIN (or CAP_SYS_ADMIN)"
    )]
    KernelCannotLoad { what: &'static str, err: LoadError },
    #[error("no kernel BTF ({}): {err}", path.display())]
    NoKernelBtf { path: PathBuf, err: io::Error },
    #[error("no kernel BTF ({}) with struct sock_common's skc_ipv6only", path.display())]
    NoIpv6onlyBit { path: PathBuf },

    #[error(
        "guest {guest:?}: abstract unix sockets cannot be made private to it on this kernel ({reason}); it could \
         connect to the host's and other guests' abstract sockets. Add {SHARED_FLAG} to {} to accept that, or \
         give it a network namespace of its own (namespaces: net)",
        cflags.display()
    )]
    AbstractUnixNotPrivate { guest: String, reason: String, cflags: PathBuf },
    #[error("guest {guest:?}: cannot scope abstract unix sockets with Landlock: {err}")]
    Scope { guest: String, err: io::Error },

    #[error(transparent)]
    Ip(#[from] IpCommandError),
    #[error("cannot create veth pair {host_if}: {err}")]
    CreateVeth { host_if: String, err: IpCommandError },
    #[error("{host_if:?}/{guest_if:?}: not valid network device names (15 characters of A-Z a-z 0-9 - _ . @)")]
    BadVethNames { host_if: String, guest_if: String },
    #[error("the thread configuring the network namespace of {pid} panicked")]
    NetnsThreadPanicked { pid: i32 },

    #[error("no command given")]
    NoCommand,
    #[error("{err}")]
    NulInPath { path: PathBuf, err: NulError },

    #[error("{}: not a network state: {err}", file.display())]
    BadState { file: PathBuf, err: serde_json::Error },
    #[error(transparent)]
    NotRunning(#[from] NotRunning),
    #[error("guest {guest:?} has no network context to change (interfaces/unrestricted, or a network namespace of its own)")]
    NoContextToChange { guest: String },
    #[error("guest {guest:?} has no cgroup v2 directory")]
    NoCgroupV2 { guest: String },
    /// A change the guest's set refuses (the text says why).
    #[error("guest {guest:?}: {reason}")]
    Change { guest: String, reason: String },
    #[error("there is no network device {dev:?} on this host")]
    NoDevice { dev: String },
    #[error(
        "guest {guest:?}: {bound} of its sockets are bound to {ip}; stop what uses it (or remove it anyway with \
         --force: those sockets keep the address until they close)"
    )]
    SocketsBound { guest: String, bound: usize, ip: IpAddr },
    /// Undoing a refused removal failed too.
    #[error("cannot put the old set back: {0}")]
    PutBack(Box<NetError>),
}

/// What makes a guest's `interfaces/` no network context (before anything
/// on the host changes); [`NetError::Interfaces`] adds the directory.
#[derive(Debug, thiserror::Error)]
pub enum InterfacesError {
    #[error("lback: {lback} is not an IPv4 address")]
    LbackNotIpv4 { lback: Ipv6Addr },
    /// No loopback address for the xid (the text says why).
    #[error("{0}")]
    Lback(String),
    /// The addresses make no IP set (the text says why).
    #[error("{0}")]
    Set(String),
    #[error("{id}/dev: there is no network device {dev:?} on this host")]
    NoDevice { id: String, dev: String },
    #[error("{id}/name: label {label:?} is longer than the 15 characters a device label can have")]
    LabelTooLong { id: String, label: String },
}

/// Adds what was being done (or to which file) to an errno: one line at
/// the call site.
pub(super) trait IoContext<T> {
    fn or_doing(self, what: impl FnOnce() -> String) -> Result<T, NetError>;
    fn on_file(self, what: &'static str, path: &Path) -> Result<T, NetError>;
}

impl<T, E: Into<io::Error>> IoContext<T> for Result<T, E> {
    fn or_doing(self, what: impl FnOnce() -> String) -> Result<T, NetError> {
        self.map_err(|err| NetError::Io { what: what(), err: err.into() })
    }

    fn on_file(self, what: &'static str, path: &Path) -> Result<T, NetError> {
        self.map_err(|err| NetError::File { what, path: path.to_path_buf(), err: err.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_net_error_in_a_chain_names_its_errno_once() {
        let eperm = || io::Error::from_raw_os_error(libc::EPERM);
        let errors: Vec<anyhow::Error> = vec![
            NetError::Io { what: "cannot block signals".into(), err: eperm() }.into(),
            NetError::File { what: "cannot write", path: "/run/x".into(), err: eperm() }.into(),
            NetError::Attach { attach_type: 8, cgroup: "/sys/fs/cgroup/x".into(), err: eperm() }.into(),
            NetError::PutBack(Box::new(NetError::Routes(eperm()))).into(),
            NetError::CreateVeth { host_if: "vs1".into(), err: IpCommandError::Run(eperm()) }.into(),
        ];
        for e in errors {
            let text = format!("{:#}", e.context("starting the guest"));
            assert_eq!(text.matches("Operation not permitted").count(), 1, "{text}");
        }
    }

    #[test]
    fn messages_name_their_object() {
        let e = NetError::NoCgroup2 { root: "/sys/fs/cgroup".into() };
        assert_eq!(
            e.to_string(),
            "no cgroup2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified: network contexts need cgroup v2 (mount one \
             with `mount -t cgroup2 none /sys/fs/cgroup/unified`, or boot with systemd.unified_cgroup_hierarchy=1)"
        );
        let e =
            NetError::AbstractUnixNotPrivate { guest: "g".into(), reason: "no Landlock".into(), cflags: "/etc/vservers/g/cflags".into() };
        assert!(
            e.to_string().contains("(no Landlock); it could connect")
                && e.to_string().contains("Add SHARED_ABSTRACT_UNIX to /etc/vservers/g/cflags"),
            "{e}"
        );
        let e = NetError::File { what: "cannot write", path: "/run/x".into(), err: io::Error::from_raw_os_error(libc::EPERM) };
        assert_eq!(e.to_string(), "cannot write /run/x: Operation not permitted (os error 1)");
    }
}
