//! The guest's first process, from the monitor's clone to exec: it is pid 1
//! of a new pid namespace, in new mount, uts and ipc namespaces (and a new
//! network namespace when configured), created inside the guest's payload
//! cgroup. `setup_guest` is the order of the privileged steps; each comment
//! says why a step sits where it does (sync points S1, S2 as in monitor.rs).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};

use super::channel::wait_for_go;
use super::restrict::{self, Restrictions};
use super::GUEST_PATH;
use super::{fdpass, notify, userns};
use crate::config::{ExtraNamespace, Guest, InitStyle};
use crate::rootfs::{self, GuestRoot};

pub(super) fn setup_guest(
    guest: &Guest,
    mut go: File,
    userns_ready: File,
    start: OwnedFd,
    v1_tasks: &[File],
    restrictions: &Restrictions,
) -> Result<()> {
    // If the monitor dies, the guest must not outlive it unsupervised.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(std::io::Error::from)
        .context("tying the guest to its monitor (PR_SET_PDEATHSIG)")?;
    // S1: the monitor sets our OOM score (and puts our veth end in place)
    // before it says go; we were created inside the cgroup2 payload, whose
    // IP-set programs were attached before the clone.
    wait_for_go(&mut go)?;
    // Then, first of all, payload in the v1 hierarchies (as single-threaded
    // process, through `tasks`): no guest code may run outside them, and
    // every step after this one is charged to the guest.
    crate::cgroup::join_v1(v1_tasks).context("entering the guest's cgroups (v1)")?;
    // A session of our own: nothing of the monitor's reaches the guest.
    nix::unistd::setsid().context("starting the guest's session")?;
    // A sysctl of the guest's own network namespace, while /proc/sys is writable.
    super::ping::allow_in_own_namespace(guest)?;
    // compat: sysctl/, nice, ionice/, badness; same reason, and before the capability drop.
    super::settings::apply_in_guest(guest)?;
    if wants_cgroup_namespace(guest) {
        // After S1: the new namespace's root is the guest's payload cgroup.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP).context("creating the cgroup namespace")?;
    }
    // Before anything is mounted: nothing may propagate back to the host.
    rootfs::stop_propagation().context("making the guest's mounts private")?;
    let root = bind_guest_root(&guest.vdir)?;
    // fstab first, while the host paths that bind mounts name are reachable.
    rootfs::fstab::apply(&root, &guest.fstab).with_context(|| format!("{}/fstab", guest.confdir.display()))?;
    // After fstab: a mount point that fstab names is left to it.
    rootfs::tmpfs::mount_fresh(&root, &fresh_tmpfs(guest), &guest.fstab, guest_root_ids(guest))?;
    // We are pid 1 of the new pid namespace, so this proc shows only the guest.
    rootfs::proc::mount_proc(&root)?;
    rootfs::dev::populate(&root, &guest.device_list())?;
    rootfs::proc::mount_sys_readonly(&root)?;
    if guest.init.style == InitStyle::Systemd {
        // On top of the read-only /sys, from inside the cgroup namespace.
        rootfs::cgroupfs::mount_delegated(&root)?;
    }
    // From here on the host's tree is out of reach.
    rootfs::pivot::pivot_into(&root)?;
    // Needs the guest's own /dev/null and its fresh /proc.
    rootfs::proc::mask().context("masking /proc")?;
    // In the guest's own devpts, which no guest code has touched yet.
    let console = rootfs::console::attach()?;
    if let Some((uid, gid)) = guest_root_ids(guest) {
        rootfs::console::give_to(&console.slave, uid, gid)?;
    }
    rootfs::console::become_stdio(&console.slave)?;
    let notify = match guest.init.style {
        InitStyle::Systemd => Some(notify::bind_in_guest()?),
        _ => None,
    };
    // S2: the monitor keeps the console's master and the notify socket; no
    // guest process ever holds them.
    let mut fds = vec![console.master.as_raw_fd()];
    fds.extend(notify.as_ref().map(|n| n.as_raw_fd()));
    fdpass::send(&start, &fds).context("handing the console to the monitor")?;
    drop((console, notify));
    set_uts(guest)?;
    restrict::apply_limits(restrictions)?;
    if guest.wants_namespace(ExtraNamespace::User) {
        // The last step as host root: the mounts, uts and limits above are
        // made; from here guest root is an unprivileged uid on the host.
        userns::enter_new(&userns_ready, &mut go)?;
    }
    drop(userns_ready);
    // A unified guest's copy-on-write listener goes to the monitor, its
    // supervisor, on the start socket's second message; from the filter's
    // install on, a call it notifies waits until the monitor answers.
    if let Some(listener) = restrict::apply_confinement(restrictions)? {
        fdpass::send(&start, &[listener.as_raw_fd()]).context("handing the copy-on-write listener to the monitor")?;
    }
    Ok(())
}

/// A systemd guest manages its own cgroup tree; `namespaces` may ask for
/// the namespace of any guest.
fn wants_cgroup_namespace(guest: &Guest) -> bool {
    guest.init.style == InitStyle::Systemd || guest.wants_namespace(ExtraNamespace::Cgroup)
}

/// /run and /run/lock for every guest, /tmp too for systemd guests.
fn fresh_tmpfs(guest: &Guest) -> Vec<&'static rootfs::tmpfs::FreshTmpfs> {
    let mut v = vec![&rootfs::tmpfs::RUN, &rootfs::tmpfs::RUN_LOCK];
    if guest.init.style == InitStyle::Systemd {
        v.push(&rootfs::tmpfs::TMP);
    }
    v
}

/// Host uid and gid of guest root when it lives in a user namespace: what
/// the guest must own that we create for it.
fn guest_root_ids(guest: &Guest) -> Option<(u32, u32)> {
    guest.wants_namespace(ExtraNamespace::User).then(|| {
        let base = userns::base(guest.xid);
        (base, base)
    })
}

/// pivot_root needs the new root to be a mount point: bind the guest's
/// directory onto itself, then hold it by descriptor.
fn bind_guest_root(vdir: &Path) -> Result<GuestRoot> {
    rootfs::mount(Some(&vdir.to_string_lossy()), vdir, None, libc::MS_BIND | libc::MS_REC, None)?;
    Ok(GuestRoot::open(vdir)?)
}

fn set_uts(guest: &Guest) -> Result<()> {
    nix::unistd::sethostname(guest.hostname()).context("setting the hostname")?;
    if let Some(domain) = &guest.uts.domainname {
        let c = CString::new(domain.as_str())?;
        crate::sys::ns::set_domainname(&c).context("setting the domain name")?;
    }
    Ok(())
}

/// The argv of the guest's pid 1 for style `plain`: `cmd.start` or /sbin/init.
pub(super) fn plain_init_argv(guest: &Guest) -> Vec<String> {
    match (&guest.init.style, &guest.init.cmd_start) {
        (InitStyle::Plain, Some(cmd)) if !cmd.is_empty() => cmd.clone(),
        _ => vec!["/sbin/init".to_string()],
    }
}

/// Where a systemd guest's pid 1 is looked for, as systemd-nspawn does.
pub const SYSTEMD_PATHS: &[&str] = &["/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init"];

/// The argv of a systemd guest's pid 1: `cmd.start`, or the guest's systemd.
/// `exists` says whether a path is an executable file inside the guest.
pub(super) fn systemd_argv(guest: &Guest, exists: impl Fn(&str) -> bool) -> Option<Vec<String>> {
    match &guest.init.cmd_start {
        Some(cmd) if !cmd.is_empty() => Some(cmd.clone()),
        _ => SYSTEMD_PATHS.iter().find(|p| exists(p)).map(|p| vec![p.to_string()]),
    }
}

/// Execs a systemd guest's pid 1 (after pivot_root: paths are the guest's)
/// with systemd's container environment: `container=vserver` and the
/// readiness socket. Returns only on failure.
pub(super) fn exec_systemd(guest: &Guest) -> anyhow::Error {
    let Some(argv) = systemd_argv(guest, is_executable) else {
        return anyhow::anyhow!("no systemd in the guest (looked for {})", SYSTEMD_PATHS.join(", "));
    };
    let mut env = init_environment(guest);
    env.push(format!("NOTIFY_SOCKET={}", notify::NOTIFY_PATH));
    exec_clean_with(&argv, None, &env)
}

/// Execs a plain-style guest's own init with `apps/init/environment`.
pub(super) fn exec_plain(guest: &Guest) -> anyhow::Error {
    exec_clean_with(&plain_init_argv(guest), None, &init_environment(guest))
}

/// `apps/init/environment` as NAME=VALUE entries, for the guest's own init.
fn init_environment(guest: &Guest) -> Vec<String> {
    guest.init.environment.iter().flatten().map(|(n, v)| format!("{n}={v}")).collect()
}

fn exec_clean_with(argv: &[String], term: Option<&str>, extra_env: &[String]) -> anyhow::Error {
    let cargs: Result<Vec<CString>, _> = argv.iter().map(|a| CString::new(a.as_str())).collect();
    let Ok(cargs) = cargs else { return anyhow::anyhow!("a command argument contains a NUL byte") };
    let Some(prog) = cargs.first() else { return anyhow::anyhow!("no command given") };
    let mut env = vec![format!("PATH={GUEST_PATH}"), "HOME=/root".to_string(), "container=vserver".to_string()];
    env.push(format!("TERM={}", term.unwrap_or("linux")));
    for extra in extra_env {
        // A later entry of the same name wins (apps/init/environment may set PATH).
        let name = extra.split_once('=').map_or(extra.as_str(), |(n, _)| n);
        env.retain(|e| e.split_once('=').map(|(n, _)| n) != Some(name));
        env.push(extra.clone());
    }
    let Ok(cenv) = env.into_iter().map(CString::new).collect::<Result<Vec<CString>, _>>() else {
        return anyhow::anyhow!("an environment variable contains a NUL byte");
    };
    // Search PATH inside the guest for a bare command name.
    let path = if argv[0].contains('/') {
        prog.clone()
    } else {
        match GUEST_PATH.split(':').map(|d| format!("{d}/{}", argv[0])).find(|p| is_executable(p)) {
            Some(p) => CString::new(p).expect("no NUL"),
            None => return anyhow::anyhow!("{}: command not found in the guest", argv[0]),
        }
    };
    match nix::unistd::execve(&path, &cargs, &cenv) {
        Err(e) => anyhow::anyhow!("executing {} in the guest: {e}", argv[0]),
        Ok(never) => match never {},
    }
}

fn is_executable(path: &str) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok() && Path::new(path).metadata().map(|m| m.is_file()).unwrap_or(false)
}
