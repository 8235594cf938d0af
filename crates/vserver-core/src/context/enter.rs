//! Joining a running guest (`vserver NAME exec CMD...`, `vserver NAME enter`):
//! the new process gets the guest's namespaces, cgroup, root, bounding set,
//! resource limits, personality and seccomp filter, copied from the guest's
//! own pid 1 rather than re-read from a config that may have changed since.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::restrict::{self, Restrictions};
use super::setup::exec_clean;
use super::{pty, require_running};
use crate::caps::CapSet;
use crate::limits::rlimit::ALL_RESOURCES;
use crate::paths::Paths;
use crate::runstate::RunState;
use crate::seccomp::FilterOptions;
use crate::sys::pidfd;

/// Everything needed to put a new process into a running guest, gathered on
/// the host side (the guest's /proc would show other pid numbers).
pub(super) struct Join {
    init_fd: OwnedFd,
    procs_files: Vec<File>,
    namespaces: libc::c_int,
    restrictions: Restrictions,
}

impl Join {
    pub(super) fn prepare(paths: &Paths, name: &str) -> Result<Join> {
        // Only the run state is read, not the configuration: joining must
        // be quick, and the guest runs as it was started.
        crate::paths::validate_guest_name(name).map_err(anyhow::Error::msg)?;
        if !paths.guest_confdir(name).is_dir() {
            bail!("no such guest {name:?} (no {})", paths.guest_confdir(name).display());
        }
        let state = require_running(paths, name)?;
        let init_fd = pidfd::open(state.init.pid).context("opening the guest's init")?;
        // The pidfd pins this exact process; check it is still the guest's
        // init and not a newcomer that got the pid in between.
        if !state.init.is_alive() {
            bail!("guest {name:?} stopped while joining it");
        }
        let layout = crate::cgroup::Layout::detect(&paths.cgroup_root)?;
        let procs_files = crate::cgroup::GuestCgroup::from_dirs(&layout, state.cgroups.clone())
            .joiner_dirs(state.init.pid)
            .context("finding the guest's cgroups")?
            .iter()
            .map(|d| OpenOptions::new().write(true).open(d.join("cgroup.procs")).with_context(|| format!("opening {}/cgroup.procs", d.display())))
            .collect::<Result<Vec<_>>>()?;
        Ok(Join {
            namespaces: guest_namespaces(state.init.pid)?,
            restrictions: restrictions_of_init(&state)?,
            init_fd,
            procs_files,
        })
    }

    /// In the forked child: cgroup, namespaces, restrictions, in that order.
    pub(super) fn become_guest_process(&self) -> Result<()> {
        // Limits first, while we are still host root (see restrict::apply_limits).
        restrict::apply_limits(&self.restrictions)?;
        // The guest's OOM score, and its floor, while we hold CAP_SYS_RESOURCE.
        super::oom::set_guest_score(0)?;
        // The cgroup first: after entering the mount namespace the host's
        // cgroup files are out of reach. "0" is the writing process.
        for mut f in &self.procs_files {
            f.write_all(b"0").context("joining the guest's cgroup")?;
        }
        // Not dumpable until exec: guest root may not ptrace or read the
        // memory of a process that still holds host privileges.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
        pidfd::setns(&self.init_fd, self.namespaces).context("joining the guest's namespaces")?;
        if self.namespaces & libc::CLONE_NEWUSER != 0 {
            super::userns::become_root()?;
        }
        std::env::set_current_dir("/").context("entering the guest root")?;
        Ok(())
    }

    pub(super) fn restrict(&self) -> Result<()> {
        restrict::apply_confinement(&self.restrictions)
    }

    /// The pid namespace applies to children: the parent joins it, then forks.
    pub(super) fn join_pid_namespace(&self) -> Result<()> {
        pidfd::setns(&self.init_fd, libc::CLONE_NEWPID).context("joining the guest's pid namespace")
    }
}

/// Namespaces of the guest's init that differ from ours (mount, uts, ipc
/// always; net, cgroup, time when the guest has its own).
fn guest_namespaces(init: i32) -> Result<libc::c_int> {
    let mut flags = 0;
    for (name, flag) in [
        ("mnt", libc::CLONE_NEWNS),
        ("uts", libc::CLONE_NEWUTS),
        ("ipc", libc::CLONE_NEWIPC),
        ("net", libc::CLONE_NEWNET),
        ("cgroup", libc::CLONE_NEWCGROUP),
        ("time", 0x80),
        ("user", libc::CLONE_NEWUSER),
    ] {
        let theirs = fs::read_link(format!("/proc/{init}/ns/{name}"));
        let ours = fs::read_link(format!("/proc/self/ns/{name}"));
        if let (Ok(t), Ok(o)) = (theirs, ours) {
            if t != o {
                flags |= flag;
            }
        }
    }
    Ok(flags)
}

fn restrictions_of_init(state: &RunState) -> Result<Restrictions> {
    let pid = state.init.pid;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).context("reading the guest init's status")?;
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .context("the guest init's status has no CapBnd line")?;
    let bcaps: CapSet = ::caps::all().into_iter().filter(|c| mask & c.bitmask() != 0).collect();
    let personality = fs::read_to_string(format!("/proc/{pid}/personality"))
        .ok()
        .and_then(|s| libc::c_ulong::from_str_radix(s.trim(), 16).ok())
        .unwrap_or(0);
    let mut raw_rlimits = Vec::new();
    for id in ALL_RESOURCES.iter().filter_map(|r| r.rlimit_id()) {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: prlimit(2) reading another process's limit into our struct.
        if unsafe { libc::prlimit(pid, id, std::ptr::null(), &mut lim) } == 0 {
            raw_rlimits.push((id, lim));
        }
    }
    Ok(Restrictions {
        bcaps,
        rlimits: Vec::new(),
        raw_rlimits,
        personality,
        seccomp: FilterOptions { allow_io_uring: state.allow_io_uring, allow_ping_sockets: state.allow_ping_sockets },
    })
}

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let child = CHILD.load(Ordering::Relaxed);
    if child > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(child, sig) };
    }
}

/// Runs `argv` inside the guest with our stdin, stdout and stderr; returns
/// its exit code (128+N when killed by signal N). With a timeout, the command
/// is killed when it runs longer.
pub fn exec_in_guest(paths: &Paths, name: &str, argv: &[String], timeout: Option<Duration>) -> Result<i32> {
    if argv.is_empty() {
        bail!("no command given to run in guest {name:?}");
    }
    let join = Join::prepare(paths, name)?;
    join.join_pid_namespace()?;
    // SAFETY: single-threaded; the child only sets itself up and execs.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let term = std::env::var("TERM").ok();
            let err = join.become_guest_process().and_then(|()| join.restrict()).err().unwrap_or_else(|| exec_clean(argv, term.as_deref()));
            eprintln!("vserver {name}: {err:#}");
            // SAFETY: leaving the forked child without unwinding.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => wait_child(child, timeout),
    }
}

/// Waits like system(3): ^C and ^\ reach the child through the terminal, not
/// us; SIGTERM and SIGHUP sent to us are passed on.
pub(super) fn wait_child(child: Pid, timeout: Option<Duration>) -> Result<i32> {
    CHILD.store(child.as_raw(), Ordering::Relaxed);
    // SAFETY: installing dispositions; the handler is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, forward_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
        libc::signal(libc::SIGHUP, forward_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }
    if let Some(limit) = timeout {
        let fd = pidfd::open(child.as_raw())?;
        let ms = limit.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX))? == 0 {
            let _ = pidfd::send_signal(&fd, libc::SIGKILL);
        }
    }
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waiting for the command in the guest"),
        }
    }
}

/// An interactive login shell on a new pty inside the guest.
pub fn enter_shell(paths: &Paths, name: &str) -> Result<i32> {
    let join = Join::prepare(paths, name)?;
    pty::enter(&join, name)
}
