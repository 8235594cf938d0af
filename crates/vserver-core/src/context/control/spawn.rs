//! A process joining a running guest (`exec`, `enter`, `suexec`), forked by
//! the guest's monitor. Everything it needs is prepared once per boot in a
//! [`JoinTarget`]: the pidfd of the guest's init, which namespaces to join,
//! the payload cgroup (a cgroup2 directory for CLONE_INTO_CGROUP, the v1
//! `tasks` files), and the restrictions with the compiled seccomp filter.
//! Between fork and exec the joiner only makes system calls; a step that
//! fails stops it before anything of the command runs (fail closed).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::context::error::{ContextError, OrMissing, Result, StepResult};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use super::proto::{self, ExecRequest, Stdio, ToClient};
use super::user::{self, GuestUser};
use crate::context::command;
use crate::context::restrict::{self, RawLimit, Restrictions};
use crate::sys::clone3::{self, Forked};
use crate::sys::{fds, pidfd, process, tty};

/// Exit code of a joiner that could not start the command (util-vserver's
/// wrappers exit 255 when they cannot set up the context).
pub const EXIT_CANNOT_RUN: i32 = 255;

const CLONE_NEWTIME: libc::c_int = 0x80;
/// RLIMIT_CPU (0) to RLIMIT_RTTIME (15): every limit Linux has.
const RLIMIT_COUNT: libc::__rlimit_resource_t = 16;
const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

/// What the monitor holds, per boot, to put new processes into its guest.
pub struct JoinTarget {
    init_pid: libc::pid_t,
    init_fd: OwnedFd,
    /// CLONE_NEW* flags of the init's namespaces that differ from ours.
    namespaces: libc::c_int,
    cgroup2_dir: Option<OwnedFd>,
    /// The payload as `/proc/PID/cgroup` names it, for a systemd guest
    /// whose pid 1 has made the payload an inner node (see `init_leaf`).
    payload_rel: Option<String>,
    /// For kernels without CLONE_INTO_CGROUP.
    cgroup2_procs: Option<File>,
    /// v1 hierarchies: `tasks` moves the writing thread alone, which skips
    /// the threadgroup lock and its RCU grace period that a `cgroup.procs`
    /// write can wait for (8-22 ms on this kind of host).
    v1_tasks: Vec<File>,
    own_pid_ns: OwnedFd,
    /// Ours, which a joiner inherits: it only sets the ones that differ.
    own_limits: Vec<RawLimit>,
    restrictions: Restrictions,
}

impl JoinTarget {
    /// Whether its joiners run under the copy-on-write filter (and send
    /// their listener).
    pub fn is_supervised(&self) -> bool {
        self.restrictions.copy_on_write.is_some()
    }

    /// `payload_v2`/`payload_v1`: the cgroup directories every guest
    /// process belongs in.
    pub fn new(
        init_pid: libc::pid_t,
        init_fd: &OwnedFd,
        payload_v2: Option<&Path>,
        payload_v1: &[PathBuf],
        restrictions: &Restrictions,
    ) -> Result<JoinTarget> {
        let open_dir = |dir: &Path| -> Result<OwnedFd> {
            let f = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(dir)
                .with_step(|| format!("opening cgroup {}", dir.display()))?;
            Ok(f.into())
        };
        let open_write = |file: PathBuf| -> Result<File> {
            OpenOptions::new().write(true).custom_flags(libc::O_CLOEXEC).open(&file).with_step(|| format!("opening {}", file.display()))
        };
        Ok(JoinTarget {
            init_pid,
            init_fd: init_fd.try_clone()?,
            namespaces: namespaces_to_join(init_pid)?,
            cgroup2_dir: payload_v2.map(open_dir).transpose()?,
            payload_rel: payload_v2.and_then(|_| own_payload_rel()),
            cgroup2_procs: payload_v2.map(|d| open_write(d.join("cgroup.procs"))).transpose()?,
            v1_tasks: payload_v1.iter().map(|d| open_write(d.join("tasks"))).collect::<Result<_>>()?,
            own_pid_ns: File::open("/proc/self/ns/pid").step("opening our pid namespace")?.into(),
            own_limits: limits_of(0)?,
            restrictions: restrictions.clone(),
        })
    }
}

/// A joiner that was forked: the monitor polls `pidfd` for its end and reads
/// `report` then: nothing when exec worked, else the error (a JSON string);
/// a supervised guest's joiner also sends its seccomp listener there
/// ([`LISTENER`] with the descriptor).
pub struct Spawned {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    pub report: OwnedFd,
}

/// Forks the joiner for `request`. `passed` are the descriptors that came
/// with it (for the `Stdio::Passed` slots, in order); `conn` is the client's
/// connection, over which the joiner sends the pty master.
pub fn spawn(target: &JoinTarget, request: &ExecRequest, passed: &[OwnedFd], conn: BorrowedFd<'_>) -> Result<Spawned> {
    if passed.len() != request.passed_count() {
        return Err(ContextError::Protocol(format!(
            "the request names {} descriptors but {} came with it",
            request.passed_count(),
            passed.len()
        )));
    }
    // Read here, at every exec: `vlimit` may have changed them since the
    // start. The joiner inherits ours and sets the others.
    let limits: Vec<RawLimit> = limits_of(target.init_pid)?.into_iter().filter(|l| !target.own_limits.contains(l)).collect();
    // Likewise pid 1's nice level, I/O priority and OOM score (`nice`,
    // `ionice/`, `badness`, or the default guest score).
    let settings = crate::context::settings::of_process(target.init_pid)?;
    let (report, report_child) =
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).step("creating the report socket")?;
    // The pid namespace applies to children only: the joiner is created in
    // the guest's, and this process switches back at once.
    let pid_ns = PidNamespaceForChildren::enter(&target.init_fd, &target.own_pid_ns)?;
    let cgroup = target.cgroup2_dir.as_ref().map(|d| d.as_fd());
    let forked = match clone3::fork_with_pidfd(cgroup, 0) {
        // A systemd guest on a host whose cgroup2 has controllers: its pid 1
        // has enabled controllers in the payload's subtree_control, and a
        // cgroup with controllers for its children takes no processes
        // itself. The joiner goes where pid 1 is (as lxc-attach does).
        Err(e) if cgroup.is_some() && e.raw_os_error() == Some(libc::EBUSY) => {
            let leaf = init_leaf(target).step("finding the cgroup of the guest's init to join")?;
            clone3::fork_with_pidfd(Some(leaf.as_fd()), 0).map(|f| (f, false))
        }
        Err(e) if cgroup.is_some() && matches!(e.raw_os_error(), Some(libc::EINVAL | libc::E2BIG)) => {
            // A kernel before 5.7: the joiner writes cgroup.procs itself.
            clone3::fork_with_pidfd(None, 0).map(|f| (f, true))
        }
        other => other.map(|f| (f, false)),
    };
    match forked {
        Ok((Forked::Child, write_procs)) => {
            // The switch back is the monitor's; here it would fail.
            std::mem::forget(pid_ns);
            let err = joiner(target, request, passed, conn, report_child.as_fd(), &limits, &settings, write_procs).unwrap_err();
            let _ = proto::send(report_child.as_fd(), &format!("{err:#}"), &[]);
            // Leaving the forked joiner without unwinding into the monitor.
            process::exit_now(EXIT_CANNOT_RUN)
        }
        Ok((Forked::Parent { pid, pidfd }, _)) => Ok(Spawned { pid, pidfd, report }),
        Err(e) => Err(e).step("forking the process that joins the guest"),
    }
}

/// The joiner, from fork to exec. The order of the privileged steps:
#[allow(clippy::too_many_arguments)]
fn joiner(
    target: &JoinTarget,
    request: &ExecRequest,
    passed: &[OwnedFd],
    conn: BorrowedFd<'_>,
    report: BorrowedFd<'_>,
    limits: &[RawLimit],
    settings: &crate::config::ProcessSettings,
    write_procs: bool,
) -> Result<std::convert::Infallible> {
    // Not dumpable until exec: guest root must not ptrace or read a process
    // that still holds host privileges (inherited from the monitor already;
    // this checks it).
    nix::sys::prctl::set_dumpable(false).map_err(std::io::Error::from).step("making the joining process non-dumpable")?;
    // The cgroups first, while their files are reachable and we are host
    // root (cgroup2 happened at fork, unless the kernel is older than 5.7).
    if write_procs {
        if let Some(mut procs) = target.cgroup2_procs.as_ref() {
            procs.write_all(b"0").step("joining the guest's cgroup")?;
        }
    }
    for mut tasks in &target.v1_tasks {
        tasks.write_all(b"0").step("joining the guest's cgroup (v1)")?;
    }
    // Before the user namespace: raising a hard limit needs the host's
    // CAP_SYS_RESOURCE.
    restrict::apply_copied_limits(target.restrictions.personality, limits)?;
    // Also while we hold CAP_SYS_RESOURCE and CAP_SYS_NICE: the OOM score
    // then becomes the floor guest root cannot go below.
    crate::context::settings::apply_process_settings(settings)?;
    // All namespaces at once through the init's pidfd: there is no moment
    // in which we are in the guest's mount namespace but not its others.
    pidfd::setns(&target.init_fd, target.namespaces).step("joining the guest's namespaces")?;
    if target.namespaces & libc::CLONE_NEWUSER != 0 {
        crate::context::userns::become_root()?;
    }
    // From here on every path is the guest's.
    let who = match &request.user {
        Some(spec) => user::resolve(spec)?,
        None => GuestUser::root(),
    };
    let master = set_up_stdio(request, passed, &who)?;
    let argv = if request.argv.is_empty() { login_shell()? } else { request.argv.clone() };
    let dir = if request.login { who.home.as_str() } else { "/" };
    if std::env::set_current_dir(dir).is_err() {
        std::env::set_current_dir("/").step("entering the guest root")?;
    }
    let mut env = who.environment();
    env.push(format!("TERM={}", command::sanitized_term(request.term.as_deref())));
    let env = command::guest_environment(&env);
    // Bounding set, close-on-exec for everything but 0-2, seccomp last.
    if let Some(listener) = restrict::apply_confinement(&target.restrictions)? {
        // A supervised guest: the monitor takes its notifications.
        proto::send(report, &LISTENER, &[listener.as_raw_fd()]).step("passing the seccomp listener to the monitor")?;
    }
    if let Some(master) = master {
        proto::send(conn, &ToClient::Pty, &[master.as_raw_fd()]).step("passing the terminal to vserver")?;
    }
    // Nothing of the host stays open but the report socket (close-on-exec),
    // and the process is made non-dumpable again after the user switch, which
    // resets that flag to fs.suid_dumpable.
    fds::close_all_except(&[report.as_raw_fd()]);
    who.switch_to()?;
    nix::sys::prctl::set_dumpable(false).map_err(std::io::Error::from).step("making the joining process non-dumpable")?;
    Err(command::exec(&argv, &env))
}

/// The report message that carries a seccomp listener descriptor.
pub const LISTENER: &str = "listener";

/// Descriptors 0-2 of the command: the passed pipes, the guest's /dev/null,
/// or the slave of a new pty in the guest's devpts (then we become the
/// leader of a new session with it as controlling terminal). Returns the
/// pty master, for the client.
fn set_up_stdio(request: &ExecRequest, passed: &[OwnedFd], who: &GuestUser) -> Result<Option<OwnedFd>> {
    // A new session in any case: the command never shares a process group
    // or a terminal with anything of the host.
    nix::unistd::setsid().step("starting a new session")?;
    let pty = if request.wants_pty() { Some(open_pty(request.winsize, who)?) } else { None };
    if let Some((_, slave)) = &pty {
        tty::set_controlling_terminal(slave.as_fd()).step("making the pty the controlling terminal")?;
    }
    let null = if request.stdio.contains(&Stdio::Null) {
        Some(
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
                .open("/dev/null")
                .step("opening the guest's /dev/null")?,
        )
    } else {
        None
    };
    let mut next_passed = passed.iter();
    for (target_fd, how) in request.stdio.iter().enumerate() {
        let source: RawFd = match how {
            Stdio::Passed => next_passed.next().or_missing("a passed descriptor is missing")?.as_raw_fd(),
            Stdio::Pty => pty.as_ref().map(|(_, s)| s.as_raw_fd()).or_missing("no pty")?,
            Stdio::Null => null.as_ref().map(|n| n.as_raw_fd()).or_missing("no /dev/null")?,
        };
        // dup2 onto 0-2 of this process.
        nix::unistd::dup2(source, target_fd as RawFd)
            .map_err(std::io::Error::from)
            .with_step(|| format!("setting up descriptor {target_fd}"))?;
    }
    Ok(pty.map(|(master, _)| master))
}

/// A pty of the guest's own devpts instance (checked to be one), unlocked,
/// its slave opened through the master (no path lookup), sized like the
/// admin's terminal and owned by the user the command runs as.
fn open_pty(winsize: Option<[u16; 4]>, who: &GuestUser) -> Result<(OwnedFd, OwnedFd)> {
    let master: OwnedFd = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open("/dev/pts/ptmx")
        .step("opening the guest's /dev/pts/ptmx")?
        .into();
    let fs = nix::sys::statfs::fstatfs(&master).step("checking the guest's devpts")?;
    if fs.filesystem_type().0 as i64 != DEVPTS_SUPER_MAGIC {
        return Err(ContextError::InGuest("the guest's /dev/pts/ptmx is not on a devpts filesystem".into()));
    }
    tty::unlock_pty(master.as_fd()).step("unlocking the pty")?;
    let slave = tty::open_peer(master.as_fd(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC).step("opening the pty's slave")?;
    if let Some([rows, cols, x, y]) = winsize {
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: x, ws_ypixel: y };
        let _ = tty::set_window_size(master.as_fd(), &ws);
    }
    if who.uid != 0 {
        // As login does: the user's own terminal, group tty may write.
        nix::unistd::fchown(slave.as_raw_fd(), Some(nix::unistd::Uid::from_raw(who.uid)), None).step("giving the pty to the user")?;
        nix::sys::stat::fchmod(slave.as_raw_fd(), nix::sys::stat::Mode::from_bits_truncate(0o620)).step("setting the pty's mode")?;
    }
    Ok((master, slave))
}

/// util-vserver's choice for `enter`: bash, else sh, else csh, as login shells.
fn login_shell() -> Result<Vec<String>> {
    for shell in ["/bin/bash", "/bin/sh", "/bin/csh"] {
        if Path::new(shell).exists() {
            return Ok(vec![shell.to_string(), "-l".to_string()]);
        }
    }
    Err(ContextError::InGuest("the guest has no /bin/bash, /bin/sh or /bin/csh".into()))
}

/// The payload's path as /proc/PID/cgroup shows it: the sibling of our own
/// cgroup (the monitor lives in `vserver/NAME/supervisor`).
fn own_payload_rel() -> Option<String> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(format!("{}/payload", path.strip_suffix("/supervisor")?))
}

/// The cgroup2 directory the guest's init is in now, below the payload
/// (a systemd guest's pid 1 moves itself to `init.scope`), opened beneath
/// the payload's descriptor: the guest's own cgroup tree, never above it.
fn init_leaf(target: &JoinTarget) -> Result<OwnedFd> {
    let (Some(payload), Some(rel)) = (&target.cgroup2_dir, &target.payload_rel) else {
        return Err(ContextError::InGuest("the guest's payload cgroup takes no processes and its path is unknown".into()));
    };
    let text = std::fs::read_to_string(format!("/proc/{}/cgroup", target.init_pid)).step("reading the cgroup of the guest's init")?;
    let now = text.lines().find_map(|l| l.strip_prefix("0::")).or_missing("the guest's init has no cgroup2 path")?;
    let below = now
        .strip_prefix(rel.as_str())
        .and_then(|r| r.strip_prefix('/'))
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ContextError::InGuest(format!("the guest's init is in {now}, not below its payload {rel}")))?;
    use crate::sys::openat2::{openat2, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS};
    openat2(
        payload,
        Path::new(below),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    )
    .with_step(|| format!("opening the cgroup {now} of the guest's init"))
}

/// Every resource limit of a process (0: ourselves), or an error: a limit
/// of the guest that cannot be read is never left at the host's value.
fn limits_of(pid: libc::pid_t) -> Result<Vec<RawLimit>> {
    (0..RLIMIT_COUNT)
        .map(|res| {
            let lim = crate::sys::rlimit::get(pid, res).with_step(|| format!("reading resource limit {res} of the guest's init"))?;
            Ok((res, lim))
        })
        .collect()
}

/// The namespaces of the guest's init that differ from ours. A namespace
/// whose link cannot be read is an error, never skipped: skipping the
/// mount namespace would run the command on the host.
fn namespaces_to_join(init: libc::pid_t) -> Result<libc::c_int> {
    let mut flags = 0;
    for (name, flag) in [
        ("mnt", libc::CLONE_NEWNS),
        ("uts", libc::CLONE_NEWUTS),
        ("ipc", libc::CLONE_NEWIPC),
        ("net", libc::CLONE_NEWNET),
        ("cgroup", libc::CLONE_NEWCGROUP),
        ("time", CLONE_NEWTIME),
        ("user", libc::CLONE_NEWUSER),
    ] {
        let ours = std::fs::read_link(format!("/proc/self/ns/{name}"));
        let theirs = std::fs::read_link(format!("/proc/{init}/ns/{name}"));
        match (ours, theirs) {
            (Ok(o), Ok(t)) => {
                if o != t {
                    flags |= flag;
                }
            }
            // A kernel without this kind of namespace (time before 5.6).
            (Err(o), Err(t)) if o.kind() == std::io::ErrorKind::NotFound && t.kind() == std::io::ErrorKind::NotFound => {}
            (_, Err(e)) | (Err(e), _) => {
                return Err(e).with_step(|| format!("reading the {name} namespace of the guest's init (pid {init})"));
            }
        }
    }
    if flags & libc::CLONE_NEWNS == 0 {
        return Err(ContextError::InGuest(format!("the guest's init (pid {init}) shares our mount namespace: it is not a guest's init")));
    }
    Ok(flags)
}

/// Our pid namespace for children set to the guest's, and back on drop.
struct PidNamespaceForChildren<'a> {
    own: &'a OwnedFd,
}

impl<'a> PidNamespaceForChildren<'a> {
    fn enter(init_fd: &OwnedFd, own: &'a OwnedFd) -> Result<Self> {
        pidfd::setns(init_fd, libc::CLONE_NEWPID).step("joining the guest's pid namespace")?;
        Ok(PidNamespaceForChildren { own })
    }
}

impl Drop for PidNamespaceForChildren<'_> {
    fn drop(&mut self) {
        // setns(2) back to our own (active) pid namespace.
        if let Err(e) = nix::sched::setns(self.own, nix::sched::CloneFlags::CLONE_NEWPID) {
            // Our next guest boot would nest its pid namespace in this
            // guest's: better to stop than to go on like that.
            log::error!("cannot return to our pid namespace: {}", std::io::Error::from(e));
            // Ending the monitor; its guest goes with it (PDEATHSIG).
            process::exit_now(1)
        }
    }
}
