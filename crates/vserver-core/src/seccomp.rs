//! The seccomp filter every guest process runs under: the one list of system
//! calls that no guest needs and that reach past its namespaces. Everything
//! else is left to the capability bounding set and the namespaces. Denied
//! calls fail with EPERM (so programs see an ordinary "not permitted"), except
//! clone3, which fails with ENOSYS: its flags live in memory a filter cannot
//! read, and libc falls back to clone(2), whose flags it can.
//!
//! `no_new_privs` is deliberately not set: setuid programs inside the guest
//! (su, passwd) must keep working. Installing a filter without it needs
//! CAP_SYS_ADMIN, so this is the last privileged step before exec.
//!
//! The filter is compiled once per boot, in the monitor ([`CompiledFilter`]),
//! and installed from that one copy by the guest's first process and by every
//! process that joins the guest later: a joiner never recompiles it.

use std::collections::BTreeMap;
use std::io;

use anyhow::{anyhow, Result};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};

/// Denied outright, with the reason an admin would ask for.
pub const DENIED_SYSCALLS: &[(i64, &str)] = &[
    (libc::SYS_kexec_load, "replaces the host kernel"),
    (libc::SYS_kexec_file_load, "replaces the host kernel"),
    (libc::SYS_init_module, "loads host kernel modules"),
    (libc::SYS_finit_module, "loads host kernel modules"),
    (libc::SYS_delete_module, "unloads host kernel modules"),
    (libc::SYS_open_by_handle_at, "opens host files by handle, past the guest root"),
    (libc::SYS_name_to_handle_at, "only useful with open_by_handle_at"),
    (libc::SYS_bpf, "loads BPF programs, which could detach the network context"),
    (libc::SYS_perf_event_open, "observes the host kernel and other contexts"),
    (libc::SYS_userfaultfd, "a tool for kernel race exploits"),
    (libc::SYS_keyctl, "the kernel keyring is not namespaced"),
    (libc::SYS_add_key, "the kernel keyring is not namespaced"),
    (libc::SYS_request_key, "the kernel keyring is not namespaced"),
    (libc::SYS_swapon, "host swap configuration"),
    (libc::SYS_swapoff, "host swap configuration"),
    (libc::SYS_clock_settime, "sets the host clock"),
    (libc::SYS_clock_adjtime, "adjusts the host clock"),
    (libc::SYS_settimeofday, "sets the host clock"),
    (libc::SYS_adjtimex, "adjusts the host clock"),
    (libc::SYS_setns, "joins other namespaces"),
    (libc::SYS_mount, "mounts (the guest has no CAP_SYS_ADMIN; defence in depth)"),
    (libc::SYS_umount2, "unmounts the guest's masks"),
    (libc::SYS_pivot_root, "changes the guest's root"),
    (libc::SYS_open_tree, "new mount API"),
    (libc::SYS_move_mount, "new mount API"),
    (libc::SYS_fsopen, "new mount API"),
    (libc::SYS_fsmount, "new mount API"),
    (libc::SYS_fspick, "new mount API"),
    (libc::SYS_mount_setattr, "new mount API"),
    (libc::SYS_acct, "host process accounting"),
    (libc::SYS_lookup_dcookie, "kernel profiling interface"),
    (libc::SYS_iopl, "raw I/O port access"),
    (libc::SYS_ioperm, "raw I/O port access"),
];

/// Denied unless the guest's cflags say IO_URING: io_uring has been the
/// source of many kernel escapes and bypasses seccomp for the calls it makes.
pub const IO_URING_SYSCALLS: &[i64] =
    &[libc::SYS_io_uring_setup, libc::SYS_io_uring_enter, libc::SYS_io_uring_register];

/// Namespace flags a guest may not create with unshare(2) or clone(2): it owns
/// none beyond those it was started in.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];
const CLONE_NEWTIME: u64 = 0x80;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterOptions {
    pub allow_io_uring: bool,
    /// ICMP datagram ("ping") sockets: only with ccapability RAW_ICMP.
    pub allow_ping_sockets: bool,
    /// File leases (`fcntl(F_SETLEASE)`): only with ccapability SET_LEASE.
    pub allow_leases: bool,
}

fn target_arch() -> TargetArch {
    #[cfg(target_arch = "x86_64")]
    return TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    return TargetArch::aarch64;
}

fn flag_rules(flags: &[u64]) -> Result<Vec<SeccompRule>> {
    flags
        .iter()
        .map(|&bit| {
            let cond = SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::MaskedEq(bit), bit)?;
            Ok(SeccompRule::new(vec![cond])?)
        })
        .collect()
}

/// Rules matching the second argument (an ioctl request, an fcntl command).
fn second_arg_rules(values: &[u64]) -> Result<Vec<SeccompRule>> {
    values
        .iter()
        .map(|&value| {
            let cond = SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)?;
            Ok(SeccompRule::new(vec![cond])?)
        })
        .collect()
}

/// socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) and its IPv6 twin: the ping
/// sockets that ccapability RAW_ICMP grants (raw sockets need CAP_NET_RAW,
/// which guests never have).
fn ping_socket_rules() -> Result<Vec<SeccompRule>> {
    let cond = |arg, op, value| SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value);
    [(libc::AF_INET, libc::IPPROTO_ICMP), (libc::AF_INET6, libc::IPPROTO_ICMPV6)]
        .into_iter()
        .map(|(family, proto)| {
            SeccompRule::new(vec![
                cond(0, SeccompCmpOp::Eq, family as u64)?,
                // The type's low bits; SOCK_NONBLOCK and SOCK_CLOEXEC may be or-ed in.
                cond(1, SeccompCmpOp::MaskedEq(0xf), libc::SOCK_DGRAM as u64)?,
                cond(2, SeccompCmpOp::Eq, proto as u64)?,
            ])
            .map_err(Into::into)
        })
        .collect()
}

/// The EPERM filter: denied calls, and namespace creation.
pub fn deny_filter(opts: FilterOptions) -> Result<BpfProgram> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (nr, _) in DENIED_SYSCALLS {
        rules.insert(*nr, Vec::new());
    }
    if !opts.allow_io_uring {
        for nr in IO_URING_SYSCALLS {
            rules.insert(*nr, Vec::new());
        }
    }
    let mut unshare_flags = NAMESPACE_FLAGS.to_vec();
    unshare_flags.push(CLONE_NEWTIME);
    rules.insert(libc::SYS_unshare, flag_rules(&unshare_flags)?);
    // clone(2)'s low byte is the exit signal, so CLONE_NEWTIME (0x80) is only
    // meaningful for unshare and clone3.
    rules.insert(libc::SYS_clone, flag_rules(NAMESPACE_FLAGS)?);
    // A guest process handed a host terminal (`vserver exec` from a shell)
    // could push keystrokes into the host shell's input with TIOCSTI.
    rules.insert(libc::SYS_ioctl, second_arg_rules(&[libc::TIOCSTI, libc::TIOCLINUX])?);
    if !opts.allow_ping_sockets {
        rules.insert(libc::SYS_socket, ping_socket_rules()?);
    }
    if !opts.allow_leases {
        // The kernel grants a lease to a file's owner without CAP_LEASE, and
        // guest root owns the root-owned files of the shared hash store: a
        // lease on a unified inode would make every other guest's open of
        // its own copy wait for the lease-break time (45 s by default).
        rules.insert(libc::SYS_fcntl, second_arg_rules(&[libc::F_SETLEASE as u64])?);
    }
    compile(rules, libc::EPERM as u32)
}

/// The ENOSYS filter for clone3, so that libc falls back to clone(2).
pub fn clone3_filter() -> Result<BpfProgram> {
    compile(BTreeMap::from([(libc::SYS_clone3, Vec::new())]), libc::ENOSYS as u32)
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: u32) -> Result<BpfProgram> {
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno), target_arch())
        .map_err(|e| anyhow!("building the seccomp filter: {e}"))?;
    BpfProgram::try_from(filter).map_err(|e| anyhow!("compiling the seccomp filter: {e}"))
}

/// Both programs of a guest's filter, compiled once.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledFilter {
    pub options: FilterOptions,
    programs: Vec<BpfProgram>,
}

impl CompiledFilter {
    pub fn new(options: FilterOptions) -> Result<CompiledFilter> {
        Ok(CompiledFilter { options, programs: vec![clone3_filter()?, deny_filter(options)?] })
    }

    /// Installs the filter on the calling thread (it must still hold
    /// CAP_SYS_ADMIN, since no_new_privs stays off).
    pub fn install(&self) -> io::Result<()> {
        for prog in &self.programs {
            install_program(prog)?;
        }
        Ok(())
    }
}

fn install_program(prog: &BpfProgram) -> io::Result<()> {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
    // SAFETY: seccompiler's sock_filter has the kernel's layout (repr(C), same
    // fields); the kernel copies the program and keeps no pointer to it.
    let rc = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0 as libc::c_ulong, &fprog as *const _)
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("installing the seccomp filter: {e}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_and_list_has_no_duplicates() {
        assert!(deny_filter(FilterOptions::default()).unwrap().len() > DENIED_SYSCALLS.len());
        assert!(clone3_filter().unwrap().len() > 3);
        let mut nrs: Vec<i64> = DENIED_SYSCALLS.iter().map(|(n, _)| *n).collect();
        nrs.sort();
        nrs.dedup();
        assert_eq!(nrs.len(), DENIED_SYSCALLS.len());
    }

    #[test]
    fn leases_are_refused_unless_allowed() {
        let with = CompiledFilter::new(FilterOptions { allow_leases: true, ..Default::default() }).unwrap();
        let without = CompiledFilter::new(FilterOptions::default()).unwrap();
        assert!(without.programs[1].len() > with.programs[1].len(), "the default filter has the F_SETLEASE rule");
    }

    #[test]
    fn installed_filter_denies_in_a_child() {
        // Compiled before the fork: the test harness is multi-threaded.
        let filter = CompiledFilter::new(FilterOptions::default()).unwrap();
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        // A forked child so the test process itself stays unfiltered.
        // SAFETY: the child only makes raw syscalls and _exit()s.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = (|| {
                // A lease on a file we own: granted before the filter, refused after.
                let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
                // SAFETY: fcntl on a descriptor we own.
                if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) } != 0 {
                    return Some(5);
                }
                unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
                filter.install().ok()?;
                // SAFETY: plain syscalls with no pointers.
                let keyctl = unsafe { libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) };
                let keyctl_errno = std::io::Error::last_os_error().raw_os_error();
                let unshare = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
                let unshare_errno = std::io::Error::last_os_error().raw_os_error();
                let lease = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) };
                let lease_errno = std::io::Error::last_os_error().raw_os_error();
                let ok = keyctl == -1
                    && keyctl_errno == Some(libc::EPERM)
                    && unshare == -1
                    && unshare_errno == Some(libc::EPERM)
                    && lease == -1
                    && lease_errno == Some(libc::EPERM);
                Some(if ok { 0 } else { 3 })
            })()
            .unwrap_or(4);
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "child died: {status}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "3: not denied, 4: install failed, 5: no lease even without the filter");
    }
}
