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

use std::collections::BTreeMap;

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

#[derive(Debug, Clone, Copy, Default)]
pub struct FilterOptions {
    pub allow_io_uring: bool,
    /// ICMP datagram ("ping") sockets: only with ccapability RAW_ICMP.
    pub allow_ping_sockets: bool,
}

fn target_arch() -> TargetArch {
    #[cfg(target_arch = "x86_64")]
    return TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    return TargetArch::aarch64;
}

fn flag_rules(flags: &[u64]) -> Result<Vec<SeccompRule>, String> {
    flags
        .iter()
        .map(|&bit| {
            let cond = SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::MaskedEq(bit), bit)
                .map_err(|e| e.to_string())?;
            SeccompRule::new(vec![cond]).map_err(|e| e.to_string())
        })
        .collect()
}

fn ioctl_rules(requests: &[u64]) -> Result<Vec<SeccompRule>, String> {
    requests
        .iter()
        .map(|&req| {
            let cond = SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, req).map_err(|e| e.to_string())?;
            SeccompRule::new(vec![cond]).map_err(|e| e.to_string())
        })
        .collect()
}

/// socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) and its IPv6 twin: the ping
/// sockets that ccapability RAW_ICMP grants (raw sockets need CAP_NET_RAW,
/// which guests never have).
fn ping_socket_rules() -> Result<Vec<SeccompRule>, String> {
    let cond = |arg, op, value| SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(|e| e.to_string());
    [(libc::AF_INET, libc::IPPROTO_ICMP), (libc::AF_INET6, libc::IPPROTO_ICMPV6)]
        .into_iter()
        .map(|(family, proto)| {
            SeccompRule::new(vec![
                cond(0, SeccompCmpOp::Eq, family as u64)?,
                // The type's low bits; SOCK_NONBLOCK and SOCK_CLOEXEC may be or-ed in.
                cond(1, SeccompCmpOp::MaskedEq(0xf), libc::SOCK_DGRAM as u64)?,
                cond(2, SeccompCmpOp::Eq, proto as u64)?,
            ])
            .map_err(|e| e.to_string())
        })
        .collect()
}

/// The EPERM filter: denied calls, and namespace creation.
pub fn deny_filter(opts: FilterOptions) -> Result<BpfProgram, String> {
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
    rules.insert(libc::SYS_ioctl, ioctl_rules(&[libc::TIOCSTI, libc::TIOCLINUX])?);
    if !opts.allow_ping_sockets {
        rules.insert(libc::SYS_socket, ping_socket_rules()?);
    }
    compile(rules, libc::EPERM as u32)
}

/// The ENOSYS filter for clone3, so that libc falls back to clone(2).
pub fn clone3_filter() -> Result<BpfProgram, String> {
    compile(BTreeMap::from([(libc::SYS_clone3, Vec::new())]), libc::ENOSYS as u32)
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: u32) -> Result<BpfProgram, String> {
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno), target_arch())
        .map_err(|e| format!("building the seccomp filter: {e}"))?;
    BpfProgram::try_from(filter).map_err(|e| format!("compiling the seccomp filter: {e}"))
}

/// Installs both filters on the calling thread (it must still hold
/// CAP_SYS_ADMIN, since no_new_privs stays off).
pub fn install(opts: FilterOptions) -> Result<(), String> {
    for prog in [clone3_filter()?, deny_filter(opts)?] {
        install_program(&prog)?;
    }
    Ok(())
}

fn install_program(prog: &BpfProgram) -> Result<(), String> {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
    // SAFETY: seccompiler's sock_filter has the kernel's layout (repr(C), same
    // fields); the kernel copies the program and keeps no pointer to it.
    let rc = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0 as libc::c_ulong, &fprog as *const _)
    };
    if rc != 0 {
        return Err(format!("installing the seccomp filter: {}", std::io::Error::last_os_error()));
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
    fn installed_filter_denies_in_a_child() {
        // A forked child so the test process itself stays unfiltered.
        // SAFETY: the child only makes raw syscalls and _exit()s.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = (|| {
                install(FilterOptions::default()).ok()?;
                // SAFETY: plain syscalls with no pointers.
                let keyctl = unsafe { libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) };
                let keyctl_errno = std::io::Error::last_os_error().raw_os_error();
                let unshare = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
                let unshare_errno = std::io::Error::last_os_error().raw_os_error();
                let ok = keyctl == -1
                    && keyctl_errno == Some(libc::EPERM)
                    && unshare == -1
                    && unshare_errno == Some(libc::EPERM);
                Some(if ok { 0 } else { 3 })
            })()
            .unwrap_or(4);
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "child died: {status}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "3: not denied, 4: install failed");
    }
}
