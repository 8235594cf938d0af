//! `vserver NAME start`: checks that the guest can start, then forks the
//! detached monitor, which builds the context and reports back once the
//! guest is up (pid 1 runs; a systemd guest has reported READY=1), or why
//! it could not, with the last lines of its console.

use std::fs::{self, File};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use crate::context::error::{ContextError, Result, StepResult};
use nix::unistd::setsid;

use super::channel::Channel;
use super::report::{self, Outcome};
use super::{console_log, halt, monitor};
use crate::cgroup::{GuestCgroup, Layout};
use crate::config::{Guest, InitStyle};
use crate::paths::Paths;
use crate::runstate::{self, RunState, Status};
use crate::sys::process::{self, Fork};

pub fn start_guest(paths: &Paths, guest: &Guest) -> Result<()> {
    // Held until the monitor has written the run state, so two starts can
    // never both see an xid as free.
    let lock = StartLock::take(paths)?;
    preflight(paths, guest)?;
    // Disk limits (dlimits/): refused when the filesystem cannot enforce
    // them, before anything changes.
    let disk_limits = crate::dlimit::preflight(guest)?;
    // compat: the admin's prepre-start scriptlets, before anything is set up.
    super::scripts::prepre_start(paths, guest)?;
    // The tree is tagged and the disk limits set before any guest process.
    crate::dlimit::apply(guest, &disk_limits)?;
    let layout = Layout::detect(&paths.cgroup_root)?;
    let rundir = paths.guest_rundir(&guest.name);
    fs::create_dir_all(&rundir).with_step(|| format!("creating {}", rundir.display()))?;
    let _ = fs::remove_file(halt::stop_marker(paths, &guest.name));
    console_log::rotate_if_larger(&rundir.join("monitor.log"), console_log::MONITOR_LOG_LIMIT);
    let report = Channel::new()?;
    // compat: the monitor's scriptlets write to this terminal until the guest is up.
    let terminal = super::scripts::keep_caller_terminal();
    // The vserver binary is single-threaded here (the contract of
    // sys::process); both children either exec nothing and run our own
    // code, or _exit.
    match process::fork()? {
        Fork::Child => {
            drop(report.read);
            detach_and_run_monitor(paths, guest, &layout, report.write, &terminal)
        }
        Fork::Parent(child) => {
            drop(report.write);
            super::scripts::release_caller_terminal();
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
            // S4: the lock goes once the run state exists; the guest may
            // still be booting (a systemd guest until its READY=1).
            match report::read(report.read, || drop(lock))? {
                // compat: post-start once the guest runs; a failure leaves it running, as util-vserver does.
                Outcome::Up => super::scripts::post_start(paths, guest).with_step(|| {
                    format!("guest {:?} started, but its post-start failed; it keeps running (vserver {} stop)", guest.name, guest.name)
                }),
                Outcome::Failed(why) => Err(ContextError::DidNotStart { name: guest.name.clone(), why }),
                Outcome::Silent => Err(ContextError::MonitorSilent { name: guest.name.clone(), log: rundir.join("monitor.log") }),
            }
        }
    }
}

/// The child starts a new session and becomes the monitor. It forks once
/// more when it moves into the guest's supervisor cgroup (pid1.rs,
/// `enter_supervisor`) and its parent ends there: the monitor is re-parented
/// to the host's init and outlives `vserver start`, as after a double fork.
fn detach_and_run_monitor(paths: &Paths, guest: &Guest, layout: &Layout, report: File, terminal: &[i32]) -> ! {
    let _ = setsid();
    crate::sys::fds::close_all_except(&[&[report.as_raw_fd()], terminal].concat());
    redirect_stdio(&paths.guest_rundir(&guest.name).join("monitor.log"));
    monitor::run(paths, guest, layout, report)
}

fn redirect_stdio(log: &Path) {
    let null = File::open("/dev/null");
    let out = fs::OpenOptions::new().create(true).append(true).open(log);
    if let (Ok(null), Ok(out)) = (null, out) {
        // dup2 onto the standard descriptors of the monitor process.
        let _ = nix::unistd::dup2(null.as_raw_fd(), 0);
        let _ = nix::unistd::dup2(out.as_raw_fd(), 1);
        let _ = nix::unistd::dup2(out.as_raw_fd(), 2);
    }
}

/// Everything that can be checked before anything changes.
fn preflight(paths: &Paths, guest: &Guest) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err(ContextError::NeedsRoot { name: guest.name.clone() });
    }
    // compat: `disabled`, and settings a stock kernel cannot give, by file.
    guest.check_startable()?;
    match runstate::settled_status(paths, &guest.name, runstate::SETTLE_LIMIT)? {
        Status::Running(s) => return Err(ContextError::AlreadyRunning { name: guest.name.clone(), pid: s.init.pid }),
        Status::Stale(s) => clean_stale(paths, &guest.name, &s)?,
        Status::Stopped => {}
    }
    if let Some(other) = runstate::running_guest_with_xid(paths, guest.xid)? {
        return Err(ContextError::XidInUse {
            name: guest.name.clone(),
            xid: guest.xid,
            file: guest.confdir.join("context"),
            other: other.name,
        });
    }
    if guest.wants_namespace(crate::config::ExtraNamespace::User) {
        super::userns::check_tree_owner(guest)?;
    }
    check_network(paths, guest)?;
    super::ping::check_host_range(guest)?;
    check_guest_root(guest)
}

/// The IP set must be valid and enforceable before anything changes: a guest
/// is never started unrestricted unless its config says so.
fn check_network(paths: &Paths, guest: &Guest) -> Result<()> {
    crate::net::abstract_unix::check_guest(guest)?;
    if guest.wants_namespace(crate::config::ExtraNamespace::Net) {
        return Ok(());
    }
    if let crate::net::GuestNetwork::Restricted(_) = crate::net::guest_network(&guest.confdir, &guest.net, guest.xid)? {
        crate::net::probe(paths).with_step(|| format!("guest {:?}: its network context cannot be enforced", guest.name))?;
    }
    Ok(())
}

/// A stale run state (host crash, monitor killed): the pids it names may
/// belong to other processes by now, so nothing is killed by pid. The cgroup
/// is the only trustworthy record of what was the guest's.
pub(super) fn clean_stale(paths: &Paths, name: &str, state: &RunState) -> Result<()> {
    log::warn!("guest {name:?}: removing stale run state (monitor {} / init {} no longer run)", state.monitor.pid, state.init.pid);
    if let Ok(layout) = Layout::detect(&paths.cgroup_root) {
        GuestCgroup::from_dirs(&layout, state.cgroups.clone())
            .remove()
            .with_step(|| format!("removing the stale cgroup of guest {name:?}"))?;
    }
    remove_recorded_addresses(state);
    RunState::remove(paths, name)?;
    Ok(())
}

/// The host addresses a run state says its guest added (for when its
/// monitor is gone and cannot remove them itself).
pub(super) fn remove_recorded_addresses(state: &RunState) {
    let added: Vec<crate::net::AddedAddress> = state.added_addresses.iter().filter_map(|a| a.parse().ok()).collect();
    if let Err(e) = crate::net::remove_host_addresses(&added) {
        log::warn!("guest {:?}: {e:#}", state.name);
    }
}

fn check_guest_root(guest: &Guest) -> Result<()> {
    let vdir = &guest.vdir;
    let meta = fs::symlink_metadata(vdir)
        .with_step(|| format!("guest {:?}: its root {} does not exist (vserver {} build?)", guest.name, vdir.display(), guest.name))?;
    if !meta.is_dir() {
        return Err(ContextError::Unstartable(format!("guest {:?}: its root {} is not a directory", guest.name, vdir.display())));
    }
    check_barrier(guest)?;
    // Resolved as the guest resolves paths: its symlinks (an absolute
    // /sbin/init -> /lib/systemd/systemd, a /sbin -> usr/sbin) lead inside
    // its root, never into the host's.
    let root = crate::rootfs::GuestRoot::open(vdir)?;
    let exists = |p: &str| root.is_executable_file(Path::new(p));
    match guest.init.style {
        InitStyle::Plain => {
            let init = super::guest_main::plain_init_argv(guest).remove(0);
            if init.starts_with('/') && !exists(&init) {
                return Err(ContextError::Unstartable(format!(
                    "guest {:?}: its init {init} is not an executable file in {} (set apps/init/cmd.start or another apps/init/style)",
                    guest.name,
                    vdir.display()
                )));
            }
        }
        InitStyle::Systemd => match super::guest_main::systemd_argv(guest, exists) {
            Some(argv) if !argv[0].starts_with('/') || exists(&argv[0]) => {}
            Some(argv) => {
                return Err(ContextError::Unstartable(format!(
                    "guest {:?}: apps/init/cmd.start names {}, which is not an executable file in {}",
                    guest.name,
                    argv[0],
                    vdir.display()
                )))
            }
            None => {
                return Err(ContextError::Unstartable(format!(
                    "guest {:?}: init style systemd, but there is no systemd in {} (looked for {}; install systemd-sysv in the guest or set apps/init/style)",
                    guest.name,
                    vdir.display(),
                    super::guest_main::SYSTEMD_PATHS.join(", ")
                )))
            }
        },
        InitStyle::Sysv => {}
    }
    Ok(())
}

/// The directory above a guest root must not be searchable by other host
/// users: guest root can plant setuid programs in its tree, and a host user
/// who can reach them could run them (util-vserver's barrier, chmod 000).
fn check_barrier(guest: &Guest) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Some(parent) = guest.vdir.parent() else { return Ok(()) };
    let mode = fs::metadata(parent).with_step(|| format!("guest {:?}: {}", guest.name, parent.display()))?.permissions().mode();
    if mode & 0o011 != 0 {
        return Err(ContextError::Unstartable(format!(
            "guest {:?}: {} (above its root) is searchable by other users (mode {:04o}), who could run setuid \
             programs the guest planted; chmod 000 {}",
            guest.name,
            parent.display(),
            mode & 0o7777,
            parent.display()
        )));
    }
    Ok(())
}

/// Held by `vserver start` until its monitor has written the run state, and
/// by `vserver stop` while it removes what the monitor left.
pub(super) struct StartLock(#[allow(dead_code)] File);

impl StartLock {
    pub(super) fn take(paths: &Paths) -> Result<StartLock> {
        let dir = paths.lock_dir();
        fs::create_dir_all(&dir).with_step(|| format!("creating {}", dir.display()))?;
        let file = File::create(dir.join("start")).with_step(|| format!("creating {}/start", dir.display()))?;
        crate::sys::flock(file.as_fd(), true).step("locking the start lock")?;
        Ok(StartLock(file))
    }
}
