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
//! process that joins the guest later: a joiner never recompiles it. One
//! program holds every rule (bpf.rs lays the syscall numbers out as a search
//! tree, which keeps both the per-call cost and the kernel's work at install
//! time low), and refuses the x32 ABI's syscall numbers.

mod bpf;

use std::io;

use self::bpf::{ret_errno, Check, Entry, Table};
use crate::sys;

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
pub const IO_URING_SYSCALLS: &[i64] = &[libc::SYS_io_uring_setup, libc::SYS_io_uring_enter, libc::SYS_io_uring_register];

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

fn flag_rules(flags: &[u64]) -> Vec<Vec<Check>> {
    flags.iter().map(|&bit| vec![Check::masked_eq(0, bit as u32, bit as u32)]).collect()
}

/// Rules matching the second argument (an ioctl request, an fcntl command).
fn second_arg_rules(values: &[u64]) -> Vec<Vec<Check>> {
    values.iter().map(|&value| vec![Check::eq(1, value as u32)]).collect()
}

/// socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) and its IPv6 twin: the ping
/// sockets that ccapability RAW_ICMP grants (raw sockets need CAP_NET_RAW,
/// which guests never have).
fn ping_socket_rules() -> Vec<Vec<Check>> {
    [(libc::AF_INET, libc::IPPROTO_ICMP), (libc::AF_INET6, libc::IPPROTO_ICMPV6)]
        .into_iter()
        .map(|(family, proto)| {
            vec![
                Check::eq(0, family as u32),
                // The type's low bits; SOCK_NONBLOCK and SOCK_CLOEXEC may be or-ed in.
                Check::masked_eq(1, 0xf, libc::SOCK_DGRAM as u32),
                Check::eq(2, proto as u32),
            ]
        })
        .collect()
}

/// The whole filter as one table: the denied calls (EPERM), namespace
/// creation (EPERM), and clone3 (ENOSYS).
pub fn filter_table(opts: FilterOptions) -> Table {
    let eperm = ret_errno(libc::EPERM);
    let mut t = Table::new();
    let mut add = |nr: i64, entry: Entry| {
        t.insert(nr as u32, entry);
    };
    for (nr, _) in DENIED_SYSCALLS {
        add(*nr, Entry::Always(eperm));
    }
    if !opts.allow_io_uring {
        for nr in IO_URING_SYSCALLS {
            add(*nr, Entry::Always(eperm));
        }
    }
    add(libc::SYS_clone3, Entry::Always(ret_errno(libc::ENOSYS)));
    let mut unshare_flags = NAMESPACE_FLAGS.to_vec();
    unshare_flags.push(CLONE_NEWTIME);
    add(libc::SYS_unshare, Entry::When(eperm, flag_rules(&unshare_flags)));
    // clone(2)'s low byte is the exit signal, so CLONE_NEWTIME (0x80) is only
    // meaningful for unshare and clone3.
    add(libc::SYS_clone, Entry::When(eperm, flag_rules(NAMESPACE_FLAGS)));
    // A guest process handed a host terminal (`vserver exec` from a shell)
    // could push keystrokes into the host shell's input with TIOCSTI.
    add(libc::SYS_ioctl, Entry::When(eperm, second_arg_rules(&[libc::TIOCSTI, libc::TIOCLINUX])));
    if !opts.allow_ping_sockets {
        add(libc::SYS_socket, Entry::When(eperm, ping_socket_rules()));
    }
    if !opts.allow_leases {
        // The kernel grants a lease to a file's owner without CAP_LEASE, and
        // guest root owns the root-owned files of the shared hash store: a
        // lease on a unified inode would make every other guest's open of
        // its own copy wait for the lease-break time (45 s by default).
        add(libc::SYS_fcntl, Entry::When(eperm, second_arg_rules(&[libc::F_SETLEASE as u64])));
    }
    t
}

/// A guest's filter program, compiled once.
#[derive(Clone)]
pub struct CompiledFilter {
    pub options: FilterOptions,
    program: Vec<libc::sock_filter>,
}

impl std::fmt::Debug for CompiledFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CompiledFilter({:?}, {} instructions)", self.options, self.program.len())
    }
}

/// A compiled filter longer than a seccomp program may be.
#[derive(Debug, thiserror::Error)]
#[error("the seccomp filter has {instructions} instructions, more than the kernel takes")]
pub struct FilterTooLong {
    pub instructions: usize,
}

impl CompiledFilter {
    pub fn new(options: FilterOptions) -> Result<CompiledFilter, FilterTooLong> {
        let program = bpf::compile(&filter_table(options));
        if program.len() > u16::MAX as usize {
            return Err(FilterTooLong { instructions: program.len() });
        }
        Ok(CompiledFilter { options, program })
    }

    /// Installs the filter on the calling thread (it must still hold
    /// CAP_SYS_ADMIN, since no_new_privs stays off).
    pub fn install(&self) -> io::Result<()> {
        install_program(&self.program)
    }
}

// ---------------------------------------------------------------------------
// Copy-on-write supervision (unify::cow): the calls that can change a file
// that already exists, handed to the guest's monitor by seccomp user
// notification (SECCOMP_RET_USER_NOTIF, kernel 5.0; the monitor lets them
// continue, 5.5). Calls that only read, or only create new names, never go
// to the supervisor, and neither do calls on descriptors: a guest can only
// hold a read-only descriptor of a unified file, and fchmod, fchown,
// fsetxattr or futimens on it fail with EPERM as before.

/// Notified always (their paths decide). utimensat is here too: with a NULL
/// path it is futimens, which the supervisor lets continue at once (a
/// filter sees only the low 32 bits of the pointer, not whether it is NULL).
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

/// The open flags that make an open one that can change the file:
/// writing (O_WRONLY, O_RDWR, and 3) or truncating; unless O_PATH (no
/// access at all), O_TMPFILE (a new unnamed file) or O_CREAT|O_EXCL (a new
/// name, never an existing file). Every flag sits in the low 32 bits.
fn open_write_rules(flags_arg: u8) -> Vec<Vec<Check>> {
    let (wr, rdwr, trunc) = (libc::O_WRONLY as u32, libc::O_RDWR as u32, libc::O_TRUNC as u32);
    let (path, tmpfile) = (libc::O_PATH as u32, (libc::O_TMPFILE & !libc::O_DIRECTORY) as u32);
    let (creat, excl) = (libc::O_CREAT as u32, libc::O_EXCL as u32);
    let mut rules = Vec::new();
    for writes in [wr, rdwr, trunc] {
        // "not both O_CREAT and O_EXCL" is "no O_CREAT" or "no O_EXCL": two rules.
        for not_new in [creat, excl] {
            rules.push(vec![
                Check::masked_eq(flags_arg, writes, writes),
                Check::masked_eq(flags_arg, path, 0),
                Check::masked_eq(flags_arg, tmpfile, 0),
                Check::masked_eq(flags_arg, not_new, 0),
            ]);
        }
    }
    rules
}

/// The notify filter's table: SECCOMP_RET_USER_NOTIF for the calls above,
/// everything else allowed (the deny filter, which takes precedence, still
/// applies).
fn cow_filter_table() -> Table {
    let notify = libc::SECCOMP_RET_USER_NOTIF;
    let mut t = Table::new();
    for nr in COW_ALWAYS {
        t.insert(*nr as u32, Entry::Always(notify));
    }
    #[cfg(target_arch = "x86_64")]
    t.insert(libc::SYS_open as u32, Entry::When(notify, open_write_rules(1)));
    t.insert(libc::SYS_openat as u32, Entry::When(notify, open_write_rules(2)));
    // unlinkat(AT_REMOVEDIR) removes directories, which are never unified.
    t.insert(libc::SYS_unlinkat as u32, Entry::When(notify, vec![vec![Check::masked_eq(2, libc::AT_REMOVEDIR as u32, 0)]]));
    // futimens(fd) is utimensat(fd, NULL): a call on a descriptor, which a
    // store entry's immutable flag refuses anyway. tar makes one per file.
    t.insert(libc::SYS_utimensat as u32, Entry::When(notify, Check::nonzero_rules(1)));
    #[cfg(target_arch = "x86_64")]
    t.insert(libc::SYS_futimesat as u32, Entry::When(notify, Check::nonzero_rules(1)));
    t
}

/// The compiled notify filter of a unified guest's processes, installed by
/// each of them after the deny filter; its listener goes to the monitor.
#[derive(Clone)]
pub struct NotifyFilter {
    program: Vec<libc::sock_filter>,
}

impl std::fmt::Debug for NotifyFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NotifyFilter({} instructions)", self.program.len())
    }
}

impl NotifyFilter {
    pub fn copy_on_write() -> NotifyFilter {
        NotifyFilter { program: bpf::compile(&cow_filter_table()) }
    }

    /// Installs the filter on the calling thread and returns its listener,
    /// the descriptor the supervisor receives the notifications on. Needs
    /// CAP_SYS_ADMIN (no_new_privs stays off), like [`CompiledFilter::install`].
    pub fn install_with_listener(&self) -> io::Result<std::os::fd::OwnedFd> {
        sys::seccomp::install_filter_with_listener(&self.program)
    }
}

fn install_program(prog: &[libc::sock_filter]) -> io::Result<()> {
    sys::seccomp::install_filter(prog).map_err(|e| io::Error::new(e.kind(), format!("installing the seccomp filter: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_has_no_duplicates_and_every_entry_is_refused() {
        let mut nrs: Vec<i64> = DENIED_SYSCALLS.iter().map(|(n, _)| *n).collect();
        nrs.sort();
        nrs.dedup();
        assert_eq!(nrs.len(), DENIED_SYSCALLS.len());
        let f = CompiledFilter::new(FilterOptions::default()).unwrap();
        for (nr, why) in DENIED_SYSCALLS {
            let arch = bpf::run(&f.program, 0, 4, [0; 6]);
            assert_eq!(arch, bpf::RET_KILL_PROCESS, "arch check first");
            let got = run(&f, *nr, [0; 6]);
            assert_eq!(got, ret_errno(libc::EPERM), "syscall {nr} ({why})");
        }
        assert_eq!(run(&f, libc::SYS_clone3, [0; 6]), ret_errno(libc::ENOSYS));
        assert_eq!(run(&f, libc::SYS_read, [0; 6]), bpf::RET_ALLOW);
    }

    fn run(f: &CompiledFilter, nr: i64, args: [u64; 6]) -> u32 {
        // The architecture the program checks: read it from the program.
        bpf::run(&f.program, f.program[1].k, nr as u32, args)
    }

    #[test]
    fn namespace_flags_ioctls_pings_and_leases() {
        let f = CompiledFilter::new(FilterOptions::default()).unwrap();
        let eperm = ret_errno(libc::EPERM);
        assert_eq!(run(&f, libc::SYS_unshare, [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(run(&f, libc::SYS_unshare, [libc::CLONE_FILES as u64, 0, 0, 0, 0, 0]), bpf::RET_ALLOW);
        assert_eq!(run(&f, libc::SYS_clone, [(libc::CLONE_NEWNET | libc::SIGCHLD) as u64, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(run(&f, libc::SYS_clone, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]), bpf::RET_ALLOW);
        assert_eq!(run(&f, libc::SYS_ioctl, [0, libc::TIOCSTI, 0, 0, 0, 0]), eperm);
        assert_eq!(run(&f, libc::SYS_ioctl, [0, libc::TIOCGWINSZ, 0, 0, 0, 0]), bpf::RET_ALLOW);
        let ping = [libc::AF_INET as u64, (libc::SOCK_DGRAM | libc::SOCK_CLOEXEC) as u64, libc::IPPROTO_ICMP as u64, 0, 0, 0];
        assert_eq!(run(&f, libc::SYS_socket, ping), eperm);
        assert_eq!(run(&f, libc::SYS_socket, [libc::AF_INET as u64, libc::SOCK_DGRAM as u64, 0, 0, 0, 0]), bpf::RET_ALLOW);
        assert_eq!(run(&f, libc::SYS_fcntl, [3, libc::F_SETLEASE as u64, libc::F_RDLCK as u64, 0, 0, 0]), eperm);
        assert_eq!(run(&f, libc::SYS_fcntl, [3, libc::F_GETLEASE as u64, 0, 0, 0, 0]), bpf::RET_ALLOW);
        let open = CompiledFilter::new(FilterOptions { allow_io_uring: true, allow_ping_sockets: true, allow_leases: true }).unwrap();
        assert_eq!(run(&open, libc::SYS_socket, ping), bpf::RET_ALLOW);
        assert_eq!(run(&open, libc::SYS_fcntl, [3, libc::F_SETLEASE as u64, 0, 0, 0, 0]), bpf::RET_ALLOW);
        assert_eq!(run(&open, libc::SYS_io_uring_setup, [0; 6]), bpf::RET_ALLOW);
        assert_eq!(run(&f, libc::SYS_io_uring_setup, [0; 6]), eperm);
    }

    #[test]
    fn the_cow_filter_notifies_only_calls_that_can_change_a_file() {
        let prog = NotifyFilter::copy_on_write().program;
        let arch = prog[1].k;
        let notify = libc::SECCOMP_RET_USER_NOTIF;
        let at = |nr: i64, args: [u64; 6]| bpf::run(&prog, arch, nr as u32, args);
        let openat = |flags: i32| at(libc::SYS_openat, [0, 0x1000, flags as u64, 0, 0, 0]);
        assert_eq!(openat(libc::O_RDONLY), bpf::RET_ALLOW);
        assert_eq!(openat(libc::O_RDONLY | libc::O_CLOEXEC), bpf::RET_ALLOW);
        assert_eq!(openat(libc::O_WRONLY), notify);
        assert_eq!(openat(libc::O_RDWR | libc::O_CREAT), notify);
        assert_eq!(openat(libc::O_RDONLY | libc::O_TRUNC), notify);
        assert_eq!(openat(libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL), bpf::RET_ALLOW);
        assert_eq!(openat(libc::O_RDWR | libc::O_TMPFILE), bpf::RET_ALLOW);
        assert_eq!(openat(libc::O_PATH | libc::O_WRONLY), bpf::RET_ALLOW);
        assert_eq!(at(libc::SYS_unlinkat, [0, 0x1000, 0, 0, 0, 0]), notify);
        assert_eq!(at(libc::SYS_unlinkat, [0, 0x1000, libc::AT_REMOVEDIR as u64, 0, 0, 0]), bpf::RET_ALLOW);
        for nr in [libc::SYS_renameat2, libc::SYS_linkat, libc::SYS_fchownat, libc::SYS_setxattr] {
            assert_eq!(at(nr, [0; 6]), notify, "syscall {nr}");
        }
        // utimensat with a path is notified; futimens (a NULL path) is not.
        assert_eq!(at(libc::SYS_utimensat, [libc::AT_FDCWD as u64, 0x7ffd_1234_0000, 0, 0, 0, 0]), notify);
        assert_eq!(at(libc::SYS_utimensat, [3, 0, 0, 0, 0, 0]), bpf::RET_ALLOW);
        assert_eq!(at(libc::SYS_read, [0; 6]), bpf::RET_ALLOW);
        assert_eq!(at(libc::SYS_fchmod, [0; 6]), bpf::RET_ALLOW);
    }

    #[test]
    fn installed_filter_denies_in_a_child() {
        use std::os::fd::AsFd;
        // Compiled and opened before the fork: the test harness is multi-threaded.
        let filter = CompiledFilter::new(FilterOptions::default()).unwrap();
        let leased = std::fs::File::open("/proc/self/exe").unwrap();
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let own_uts = std::fs::File::open("/proc/self/ns/uts").unwrap();
        // A forked child so the test process itself stays unfiltered; it
        // only makes system calls.
        let pid = sys::process::fork_child(|| {
            // A lease on a file we own: granted before the filter, refused after.
            if sys::file::take_read_lease(leased.as_fd()).is_err() {
                return 5;
            }
            if filter.install().is_err() {
                return 4;
            }
            let eperm = Err(nix::errno::Errno::EPERM);
            let ok = nix::sched::setns(&own_uts, nix::sched::CloneFlags::CLONE_NEWUTS) == eperm
                && nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) == eperm
                && sys::file::take_read_lease(file.as_fd()).map_err(|e| e.raw_os_error()) == Err(Some(libc::EPERM))
                // clone3 fails with ENOSYS, whatever its arguments.
                && sys::clone::probe_cgroup_entry() == sys::clone::CgroupEntry::ProcsWriteNoClone3
                && nix::unistd::getppid().as_raw() > 0;
            if ok {
                0
            } else {
                3
            }
        })
        .unwrap();
        let status = sys::process::wait_pid(pid, 0).unwrap().unwrap();
        assert!(libc::WIFEXITED(status), "child died: {status}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "3: not denied, 4: install failed, 5: no lease even without the filter");
        // The lease taken in the child goes with the last descriptor of its file.
        drop(leased);
    }
}
