//! The guest's first process, from the monitor's clone to exec: it is pid 1
//! of a new pid namespace, in new mount, uts and ipc namespaces (and a new
//! network namespace when configured), created inside the guest's payload
//! cgroup. `setup_guest` is the order of the privileged steps; each comment
//! says why a step sits where it does (sync points S1, S2 as in monitor.rs).
//! The steps themselves are the methods of [`SetupSteps`]: `Pid1Steps` makes
//! them, the unit tests (`order_tests.rs`) record them.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::context::error::{OrMissing, Result, StepResult};

use super::channel::wait_for_go;
use super::restrict::{self, Restrictions};
use super::{fdpass, notify, userns};
use crate::config::{ExtraNamespace, Guest, InitStyle};
use crate::rootfs::console::Console;
use crate::rootfs::{self, GuestRoot};

/// The order of the privileged steps in the guest's first process, and which
/// of them this guest needs. It only decides; `steps` acts. The first failing
/// step ends the setup: no later step runs.
pub(super) fn setup_guest(guest: &Guest, steps: &mut impl SetupSteps) -> Result<()> {
    // If the monitor dies, the guest must not outlive it unsupervised.
    steps.tie_to_monitor()?;
    // S1: the monitor sets our OOM score (and puts our veth end in place)
    // before it says go; we were created inside the cgroup2 payload, whose
    // IP-set programs were attached before the clone.
    steps.wait_for_go()?;
    // Then, first of all, payload in the v1 hierarchies (as single-threaded
    // process, through `tasks`): no guest code may run outside them, and
    // every step after this one is charged to the guest.
    steps.join_v1_cgroups()?;
    // A session of our own: nothing of the monitor's reaches the guest.
    steps.new_session()?;
    // A sysctl of the guest's own network namespace, while /proc/sys is writable.
    steps.allow_ping()?;
    // compat: sysctl/, nice, ionice/, badness; same reason, and before the capability drop.
    steps.apply_settings()?;
    if wants_cgroup_namespace(guest) {
        // After S1: the new namespace's root is the guest's payload cgroup.
        steps.enter_cgroup_namespace()?;
    }
    // Before anything is mounted: nothing may propagate back to the host.
    steps.stop_propagation()?;
    // pivot_root needs the new root to be a mount point.
    steps.bind_root()?;
    // fstab first, while the host paths that bind mounts name are reachable.
    steps.apply_fstab()?;
    // After fstab: a mount point that fstab names is left to it.
    steps.mount_fresh_tmpfs()?;
    // We are pid 1 of the new pid namespace, so this proc shows only the guest.
    steps.mount_proc()?;
    steps.populate_dev()?;
    steps.mount_sys_readonly()?;
    if guest.init.style == InitStyle::Systemd {
        // On top of the read-only /sys, from inside the cgroup namespace.
        steps.mount_delegated_cgroupfs()?;
    }
    // From here on the host's tree is out of reach.
    steps.pivot_root()?;
    // Needs the guest's own /dev/null and its fresh /proc.
    steps.mask_proc()?;
    // In the guest's own devpts, which no guest code has touched yet.
    steps.attach_console()?;
    if let Some((uid, gid)) = guest_root_ids(guest) {
        steps.give_console_to(uid, gid)?;
    }
    steps.console_as_stdio()?;
    if guest.init.style == InitStyle::Systemd {
        steps.bind_notify_socket()?;
    }
    // S2: the monitor keeps the console's master and the notify socket; no
    // guest process ever holds them.
    steps.hand_over_fds()?;
    steps.set_uts()?;
    // Before the user namespace and the capability drop: raising a hard
    // limit needs CAP_SYS_RESOURCE in the host's user namespace.
    steps.apply_limits()?;
    if guest.wants_namespace(ExtraNamespace::User) {
        // The last step as host root: the mounts, uts and limits above are
        // made; from here guest root is an unprivileged uid on the host.
        steps.enter_user_namespace()?;
    }
    // Last: signals, bounding set, descriptors, then the seccomp filter. A
    // unified guest's copy-on-write listener goes to the monitor, its
    // supervisor, on the start socket's second message; from the filter's
    // install on, a call it notifies waits until the monitor answers.
    steps.apply_confinement()
}

/// The privileged steps of the guest's first process, one method each, in
/// the order `setup_guest` calls them. Whether a guest needs a step is
/// `setup_guest`'s decision; only `allow_ping` leaves it to its module
/// (ping.rs: a guest with its own network namespace that may ping).
pub(super) trait SetupSteps {
    /// PR_SET_PDEATHSIG: SIGKILL when the monitor ends.
    fn tie_to_monitor(&mut self) -> Result<()>;
    /// Waits for the monitor's "g" (S1).
    fn wait_for_go(&mut self) -> Result<()>;
    /// The payload cgroup of every v1 hierarchy, through its `tasks` file.
    fn join_v1_cgroups(&mut self) -> Result<()>;
    /// setsid.
    fn new_session(&mut self) -> Result<()>;
    /// Ping sockets in the guest's own network namespace, if it has one and may ping.
    fn allow_ping(&mut self) -> Result<()>;
    /// `sysctl/`, `nice`, `ionice/`, `badness`.
    fn apply_settings(&mut self) -> Result<()>;
    /// unshare(CLONE_NEWCGROUP).
    fn enter_cgroup_namespace(&mut self) -> Result<()>;
    /// Makes every mount of our mount namespace private.
    fn stop_propagation(&mut self) -> Result<()>;
    /// Binds the guest's directory onto itself and holds it by descriptor.
    fn bind_root(&mut self) -> Result<()>;
    /// The guest's `fstab`.
    fn apply_fstab(&mut self) -> Result<()>;
    /// /run and /run/lock (and /tmp for systemd guests).
    fn mount_fresh_tmpfs(&mut self) -> Result<()>;
    fn mount_proc(&mut self) -> Result<()>;
    /// A fresh /dev with the guest's device nodes and its own devpts.
    fn populate_dev(&mut self) -> Result<()>;
    fn mount_sys_readonly(&mut self) -> Result<()>;
    /// A cgroup2 mount of the guest's own subtree, for systemd.
    fn mount_delegated_cgroupfs(&mut self) -> Result<()>;
    fn pivot_root(&mut self) -> Result<()>;
    /// Hides the host's secrets under /proc.
    fn mask_proc(&mut self) -> Result<()>;
    /// A pty of the guest's devpts on /dev/console.
    fn attach_console(&mut self) -> Result<()>;
    /// The console's slave to guest root's host ids (user namespace).
    fn give_console_to(&mut self, uid: u32, gid: u32) -> Result<()>;
    /// The console's slave becomes stdin, stdout and stderr.
    fn console_as_stdio(&mut self) -> Result<()>;
    /// systemd's readiness socket at `NOTIFY_PATH`.
    fn bind_notify_socket(&mut self) -> Result<()>;
    /// Sends the console's master (and the notify socket) to the monitor
    /// and closes them here.
    fn hand_over_fds(&mut self) -> Result<()>;
    /// Hostname and domain name.
    fn set_uts(&mut self) -> Result<()>;
    /// Personality and resource limits.
    fn apply_limits(&mut self) -> Result<()>;
    /// A new user namespace whose maps the monitor writes (S1u); then its root.
    fn enter_user_namespace(&mut self) -> Result<()>;
    /// Signals, bounding set, close-on-exec, seccomp; a copy-on-write
    /// listener goes to the monitor.
    fn apply_confinement(&mut self) -> Result<()>;
}

/// The real steps, and what passes between them: the monitor's channels, the
/// restrictions, the guest root once bound, the console and the notify
/// socket until they are handed over. Dropping it closes what is left.
pub(super) struct Pid1Steps<'a> {
    guest: &'a Guest,
    go: File,
    /// Closed before the confinement: the monitor waits for "u" on it.
    userns_ready: Option<File>,
    start: OwnedFd,
    v1_tasks: &'a [File],
    restrictions: &'a Restrictions,
    root: Option<GuestRoot>,
    console: Option<Console>,
    notify: Option<OwnedFd>,
}

impl<'a> Pid1Steps<'a> {
    pub(super) fn new(
        guest: &'a Guest,
        go: File,
        userns_ready: File,
        start: OwnedFd,
        v1_tasks: &'a [File],
        restrictions: &'a Restrictions,
    ) -> Pid1Steps<'a> {
        Pid1Steps { guest, go, userns_ready: Some(userns_ready), start, v1_tasks, restrictions, root: None, console: None, notify: None }
    }

    fn root(&self) -> Result<&GuestRoot> {
        self.root.as_ref().or_missing("the guest root is not bound yet")
    }

    fn console(&self) -> Result<&Console> {
        self.console.as_ref().or_missing("the console is not attached yet")
    }
}

impl SetupSteps for Pid1Steps<'_> {
    fn tie_to_monitor(&mut self) -> Result<()> {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .map_err(std::io::Error::from)
            .step("tying the guest to its monitor (PR_SET_PDEATHSIG)")
    }

    fn wait_for_go(&mut self) -> Result<()> {
        Ok(wait_for_go(&mut self.go)?)
    }

    fn join_v1_cgroups(&mut self) -> Result<()> {
        crate::cgroup::join_v1(self.v1_tasks).step("entering the guest's cgroups (v1)")
    }

    fn new_session(&mut self) -> Result<()> {
        nix::unistd::setsid().step("starting the guest's session")?;
        Ok(())
    }

    fn allow_ping(&mut self) -> Result<()> {
        super::ping::allow_in_own_namespace(self.guest)
    }

    fn apply_settings(&mut self) -> Result<()> {
        super::settings::apply_in_guest(self.guest)
    }

    fn enter_cgroup_namespace(&mut self) -> Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP).step("creating the cgroup namespace")
    }

    fn stop_propagation(&mut self) -> Result<()> {
        rootfs::stop_propagation().step("making the guest's mounts private")
    }

    fn bind_root(&mut self) -> Result<()> {
        self.root = Some(bind_guest_root(&self.guest.vdir)?);
        Ok(())
    }

    fn apply_fstab(&mut self) -> Result<()> {
        let guest = self.guest;
        rootfs::fstab::apply(self.root()?, &guest.fstab).with_step(|| format!("{}/fstab", guest.confdir.display()))
    }

    fn mount_fresh_tmpfs(&mut self) -> Result<()> {
        let guest = self.guest;
        Ok(rootfs::tmpfs::mount_fresh(self.root()?, &fresh_tmpfs(guest), &guest.fstab, guest_root_ids(guest))?)
    }

    fn mount_proc(&mut self) -> Result<()> {
        Ok(rootfs::proc::mount_proc(self.root()?)?)
    }

    fn populate_dev(&mut self) -> Result<()> {
        Ok(rootfs::dev::populate(self.root()?, &self.guest.device_list())?)
    }

    fn mount_sys_readonly(&mut self) -> Result<()> {
        Ok(rootfs::proc::mount_sys_readonly(self.root()?)?)
    }

    fn mount_delegated_cgroupfs(&mut self) -> Result<()> {
        Ok(rootfs::cgroupfs::mount_delegated(self.root()?)?)
    }

    fn pivot_root(&mut self) -> Result<()> {
        Ok(rootfs::pivot::pivot_into(self.root()?)?)
    }

    fn mask_proc(&mut self) -> Result<()> {
        rootfs::proc::mask().step("masking /proc")
    }

    fn attach_console(&mut self) -> Result<()> {
        self.console = Some(rootfs::console::attach()?);
        Ok(())
    }

    fn give_console_to(&mut self, uid: u32, gid: u32) -> Result<()> {
        Ok(rootfs::console::give_to(&self.console()?.slave, uid, gid)?)
    }

    fn console_as_stdio(&mut self) -> Result<()> {
        Ok(rootfs::console::become_stdio(&self.console()?.slave)?)
    }

    fn bind_notify_socket(&mut self) -> Result<()> {
        self.notify = Some(notify::bind_in_guest()?);
        Ok(())
    }

    fn hand_over_fds(&mut self) -> Result<()> {
        let console = self.console.take().or_missing("the console is not attached yet")?;
        let notify = self.notify.take();
        let mut fds = vec![console.master.as_raw_fd()];
        fds.extend(notify.as_ref().map(|n| n.as_raw_fd()));
        fdpass::send(&self.start, &fds).step("handing the console to the monitor")?;
        drop((console, notify));
        Ok(())
    }

    fn set_uts(&mut self) -> Result<()> {
        set_uts(self.guest)
    }

    fn apply_limits(&mut self) -> Result<()> {
        restrict::apply_limits(self.restrictions)
    }

    fn enter_user_namespace(&mut self) -> Result<()> {
        let ready = self.userns_ready.as_ref().or_missing("the user namespace channel is closed")?;
        userns::enter_new(ready, &mut self.go)
    }

    fn apply_confinement(&mut self) -> Result<()> {
        // The monitor waits for "u" only until the user namespace step.
        drop(self.userns_ready.take());
        if let Some(listener) = restrict::apply_confinement(self.restrictions)? {
            fdpass::send(&self.start, &[listener.as_raw_fd()]).step("handing the copy-on-write listener to the monitor")?;
        }
        Ok(())
    }
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
    nix::unistd::sethostname(guest.hostname()).step("setting the hostname")?;
    if let Some(domain) = &guest.uts.domainname {
        let c = CString::new(domain.as_str())?;
        crate::sys::ns::set_domainname(&c).step("setting the domain name")?;
    }
    Ok(())
}
