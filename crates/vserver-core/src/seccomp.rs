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

// ---------------------------------------------------------------------------
// Copy-on-write supervision (unify::cow): the calls that can change a file
// that already exists, handed to the guest's monitor by seccomp user
// notification (SECCOMP_RET_USER_NOTIF, kernel 5.0; the monitor lets them
// continue, 5.5). Calls that only read, or only create new names, never go
// to the supervisor, and neither do calls on descriptors: a guest can only
// hold a read-only descriptor of a unified file, and fchmod, fchown,
// fsetxattr or futimens on it fail with EPERM as before.

/// Notified always (their paths decide).
const COW_ALWAYS: &[i64] = &[
    #[cfg(target_arch = "x86_64")]
    libc::SYS_creat,
    libc::SYS_openat2,
    libc::SYS_truncate,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_unlink,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_link,
    libc::SYS_linkat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_chmod,
    libc::SYS_fchmodat,
    SYS_FCHMODAT2,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_chown,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_lchown,
    libc::SYS_fchownat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_utime,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_utimes,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_futimesat,
    libc::SYS_setxattr,
    libc::SYS_lsetxattr,
    libc::SYS_removexattr,
    libc::SYS_lremovexattr,
    SYS_SETXATTRAT,
    SYS_REMOVEXATTRAT,
];

/// Newer than some libc constants: one number on every architecture.
pub const SYS_FCHMODAT2: i64 = 452;
pub const SYS_SETXATTRAT: i64 = 463;
pub const SYS_REMOVEXATTRAT: i64 = 466;

/// A placeholder action: seccompiler has no SECCOMP_RET_USER_NOTIF, so the
/// program is built with this trace value, which is then retargeted.
const COW_PLACEHOLDER: u32 = 0xc0e;

/// The open flags that make an open one that can change the file:
/// writing (O_WRONLY, O_RDWR, and 3) or truncating; unless O_PATH (no
/// access at all), O_TMPFILE (a new unnamed file) or O_CREAT|O_EXCL (a new
/// name, never an existing file).
fn open_write_rules(flags_arg: u8) -> Result<Vec<SeccompRule>, String> {
    let cond = |op, value| SeccompCondition::new(flags_arg, SeccompCmpArgLen::Dword, op, value).map_err(|e| e.to_string());
    let (wr, rdwr, trunc) = (libc::O_WRONLY as u64, libc::O_RDWR as u64, libc::O_TRUNC as u64);
    let (path, tmpfile) = (libc::O_PATH as u64, (libc::O_TMPFILE & !libc::O_DIRECTORY) as u64);
    let (creat, excl) = (libc::O_CREAT as u64, libc::O_EXCL as u64);
    let mut rules = Vec::new();
    for writes in [wr, rdwr, trunc] {
        // "not both O_CREAT and O_EXCL" is "no O_CREAT" or "no O_EXCL": two rules.
        for not_new in [creat, excl] {
            rules.push(
                SeccompRule::new(vec![
                    cond(SeccompCmpOp::MaskedEq(writes), writes)?,
                    cond(SeccompCmpOp::MaskedEq(path), 0)?,
                    cond(SeccompCmpOp::MaskedEq(tmpfile), 0)?,
                    cond(SeccompCmpOp::MaskedEq(not_new), 0)?,
                ])
                .map_err(|e| e.to_string())?,
            );
        }
    }
    Ok(rules)
}

/// The notify filter of a unified guest's processes: SECCOMP_RET_USER_NOTIF
/// for the calls above, everything else allowed (the deny filter, which
/// takes precedence, still applies).
pub fn cow_notify_filter() -> Result<BpfProgram, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in COW_ALWAYS {
        rules.insert(*nr, Vec::new());
    }
    #[cfg(target_arch = "x86_64")]
    rules.insert(libc::SYS_open, open_write_rules(1)?);
    rules.insert(libc::SYS_openat, open_write_rules(2)?);
    // unlinkat(AT_REMOVEDIR) removes directories, which are never unified.
    let no_removedir = SeccompCondition::new(2, SeccompCmpArgLen::Dword, SeccompCmpOp::MaskedEq(libc::AT_REMOVEDIR as u64), 0)
        .map_err(|e| e.to_string())?;
    rules.insert(libc::SYS_unlinkat, vec![SeccompRule::new(vec![no_removedir]).map_err(|e| e.to_string())?]);
    // utimensat with a NULL path is futimens: a descriptor call.
    let has_path = SeccompCondition::new(1, SeccompCmpArgLen::Qword, SeccompCmpOp::Ne, 0).map_err(|e| e.to_string())?;
    rules.insert(libc::SYS_utimensat, vec![SeccompRule::new(vec![has_path]).map_err(|e| e.to_string())?]);
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Trace(COW_PLACEHOLDER), target_arch())
        .map_err(|e| format!("building the copy-on-write seccomp filter: {e}"))?;
    let mut prog = BpfProgram::try_from(filter).map_err(|e| format!("compiling the copy-on-write seccomp filter: {e}"))?;
    retarget_to_user_notif(&mut prog);
    Ok(prog)
}

/// Turns every `return TRACE(placeholder)` into `return USER_NOTIF`.
fn retarget_to_user_notif(prog: &mut BpfProgram) -> usize {
    const BPF_RET_K: u16 = 0x06;
    let placeholder = libc::SECCOMP_RET_TRACE | COW_PLACEHOLDER;
    let mut n = 0;
    for insn in prog.iter_mut().filter(|i| i.code == BPF_RET_K && i.k == placeholder) {
        insn.k = libc::SECCOMP_RET_USER_NOTIF;
        n += 1;
    }
    n
}

/// Installs a filter on the calling thread and returns its listener, the
/// descriptor the supervisor receives the notifications on. Needs
/// CAP_SYS_ADMIN (no_new_privs stays off), like [`install`].
pub fn install_with_listener(prog: &BpfProgram) -> std::io::Result<std::os::fd::OwnedFd> {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
    // SAFETY: as in install_program; NEW_LISTENER makes the call return a new descriptor.
    let fd = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog as *const _)
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a non-negative return is a descriptor we now own.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as i32) })
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
    fn the_cow_filter_notifies_and_has_no_trace_left() {
        let prog = cow_notify_filter().unwrap();
        let rets: Vec<u32> = prog.iter().filter(|i| i.code == 0x06).map(|i| i.k).collect();
        assert!(rets.contains(&libc::SECCOMP_RET_USER_NOTIF));
        assert!(rets.contains(&libc::SECCOMP_RET_ALLOW));
        assert!(!rets.iter().any(|k| k & 0xffff0000 == libc::SECCOMP_RET_TRACE), "{rets:x?}");
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
