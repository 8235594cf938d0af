//! The guest's first process, from the monitor's clone(2) to exec: it is pid 1
//! of a new pid namespace, in new mount, uts and ipc namespaces (and a new
//! network namespace when configured). This function is the order of the
//! privileged steps; each comment says why a step sits where it does.

use std::ffi::CString;
use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};

use super::channel::wait_for_go;
use super::userns;
use super::restrict::{self, Restrictions};
use super::GUEST_PATH;
use crate::config::{ExtraNamespace, Guest, InitStyle};
use crate::rootfs::{self, GuestRoot};

pub(super) fn setup_guest(guest: &Guest, mut go: File, userns_ready: File, restrictions: &Restrictions) -> Result<()> {
    // If the monitor dies, the guest must not outlive it unsupervised.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // The monitor moves us into the guest's cgroup (and attaches the network
    // context to it) before it says go: no guest code may run outside it.
    wait_for_go(&mut go)?;
    // A sysctl of the guest's own network namespace, while /proc/sys is writable.
    super::ping::allow_in_own_namespace(guest)?;
    if guest.wants_namespace(ExtraNamespace::Cgroup) {
        // After joining the cgroup: the new namespace's root is the guest cgroup.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP).context("creating the cgroup namespace")?;
    }
    // Before anything is mounted: nothing may propagate back to the host.
    rootfs::stop_propagation().context("making the guest's mounts private")?;
    let root = bind_guest_root(&guest.vdir)?;
    // fstab first, while the host paths that bind mounts name are reachable.
    rootfs::fstab::apply(&root, &guest.fstab).with_context(|| format!("{}/fstab", guest.confdir.display()))?;
    // We are pid 1 of the new pid namespace, so this proc shows only the guest.
    rootfs::proc::mount_proc(&root)?;
    rootfs::dev::populate(&root)?;
    rootfs::proc::mount_sys_readonly(&root)?;
    // From here on the host's tree is out of reach.
    rootfs::pivot::pivot_into(&root)?;
    // Needs the guest's own /dev/null and its fresh /proc.
    rootfs::proc::mask().context("masking /proc")?;
    set_uts(guest)?;
    restrict::apply_limits(restrictions)?;
    if guest.wants_namespace(ExtraNamespace::User) {
        // The last step as host root: the mounts, uts and limits above are
        // made; from here guest root is an unprivileged uid on the host.
        userns::enter_new(&userns_ready, &mut go)?;
    }
    drop(userns_ready);
    match restrict::apply_confinement(restrictions)? {
        None => Ok(()),
        // A supervised guest's listener must reach the monitor (cow); until
        // that is wired, never run a process whose calls nobody answers.
        Some(_listener) => anyhow::bail!("the guest's processes need a supervisor, which is not running"),
    }
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
        // SAFETY: a NUL-terminated string and its length.
        if unsafe { libc::setdomainname(c.as_ptr(), domain.len()) } != 0 {
            return Err(std::io::Error::last_os_error()).context("setting the domain name");
        }
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

/// Replaces this process with `argv` inside the guest, with a clean
/// environment. Returns only on failure.
pub(super) fn exec_clean(argv: &[String], term: Option<&str>) -> anyhow::Error {
    let cargs: Result<Vec<CString>, _> = argv.iter().map(|a| CString::new(a.as_str())).collect();
    let Ok(cargs) = cargs else { return anyhow::anyhow!("a command argument contains a NUL byte") };
    let Some(prog) = cargs.first() else { return anyhow::anyhow!("no command given") };
    let mut env = vec![format!("PATH={GUEST_PATH}"), "HOME=/root".to_string(), "container=vserver".to_string()];
    env.push(format!("TERM={}", term.unwrap_or("linux")));
    let cenv: Vec<CString> = env.into_iter().map(|e| CString::new(e).expect("no NUL")).collect();
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
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
        && Path::new(path).metadata().map(|m| m.is_file()).unwrap_or(false)
}
