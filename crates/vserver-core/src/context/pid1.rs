//! The guest's pid 1 from the monitor's side: everything on the host that
//! must exist before it (on `vserver/NAME`, in this order), its clone3 into
//! the guest's namespaces and payload cgroup, the hand-shake S1 (monitor.rs
//! numbers the sync points), and the first process's own path to exec.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::sys::signal::SigSet;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::channel::{send, wait_for, Channel};
use super::network::Network;
use super::restrict::Restrictions;
use super::{fdpass, init, setup};
use crate::cgroup::{GuestCgroup, SupervisorSeat};
use crate::config::{ExtraNamespace, Guest, InitStyle};
use crate::paths::Paths;
use crate::sys::process::{exit_now, fork, Fork};
use crate::sys::{self, clone, pidfd};

/// The monitor's ends of a freshly forked pid 1.
pub(super) struct Pid1 {
    pub(super) pid: Pid,
    pub(super) pidfd: OwnedFd,
    pub(super) report: File,
    pub(super) start_socket: OwnedFd,
    /// What the control socket needs to put joiners into this guest.
    pub(super) restrictions: Restrictions,
}

/// Everything on the host side of a boot, in order, then the fork of pid 1.
pub(super) fn start(
    paths: &Paths,
    guest: &Guest,
    cgroup: &GuestCgroup,
    network: &mut Network,
    seat: &mut Option<SupervisorSeat>,
    first_boot: bool,
    copy_on_write: bool,
) -> Result<Pid1> {
    // On vserver/NAME before it has children (the v1 devices controller
    // takes "deny all" only then) and before any guest process exists.
    // One device list gives the v1 rules, the v2 filter and the guest's /dev.
    let devices = guest.device_list();
    cgroup.restrict_devices(&devices.v1_rules().iter().map(String::as_str).collect::<Vec<_>>())?;
    if let Some(v2) = cgroup.v2_dir() {
        // cgroup v2's device controller; on hybrid hosts the v1 rules apply too.
        crate::cgroup::device_filter::attach(v2, &devices)?;
    }
    // Context-wide limits before the first process joins the cgroup.
    crate::limits::apply_context_limits(cgroup, guest)?;
    // The IP set, too: sockets belong to the cgroup they are made in.
    network.set_up(paths, guest, cgroup)?;
    cgroup.create_children()?;
    if guest.wants_namespace(ExtraNamespace::User) && guest.init.style == InitStyle::Systemd {
        // The guest's root may manage its own cgroup tree (delegation).
        let base = super::userns::base(guest.xid);
        cgroup.delegate_payload(base, base)?;
    }
    // From here on the monitor's own work (console relay, readiness) is
    // charged to the guest.
    let entered = enter_supervisor(cgroup, first_boot).context("moving the monitor into the guest's supervisor cgroup")?;
    super::scripts::run_in_host_cgroups(&entered.origin_files())?;
    *seat = Some(entered);
    // After the monitor is in place and before pid 1 is forked: pid 1 and
    // every joiner the monitor forks later share its Landlock domain, which
    // the host's and other guests' abstract unix sockets are outside of.
    crate::net::abstract_unix::scope_for_guest(guest)?;
    if guest.wants_namespace(ExtraNamespace::Time) {
        // Before the clone: the time namespace applies to our children.
        enter_fresh_time_namespace()?;
    }
    let mut restrictions = Restrictions::for_guest(guest)?;
    if copy_on_write {
        restrictions = restrictions.with_copy_on_write();
    }
    let go = Channel::new()?;
    let report = Channel::new()?;
    let userns_ready = Channel::new()?;
    let (start_monitor, start_child) = fdpass::pair()?;
    let payload = cgroup.open_payload_v2()?;
    // The v1 hierarchies: the child enters them itself (see release_child).
    let v1_tasks = cgroup.open_payload_v1_tasks()?;
    let forked =
        clone::fork_into(namespace_flags(guest), payload.as_ref().map(|f| f.as_fd())).context("creating the guest's namespaces")?;
    let (pid, pidfd, in_cgroup) = match forked {
        clone::Forked::Child => {
            drop((go.write, report.read, userns_ready.read, start_monitor, payload));
            guest_main(guest, go.read, report.write, userns_ready.write, start_child, &v1_tasks, &restrictions)
        }
        clone::Forked::Parent { pid, pidfd, in_cgroup } => (Pid::from_raw(pid), pidfd, in_cgroup),
    };
    drop((go.read, report.write, userns_ready.write, start_child, payload, v1_tasks));
    if let Err(e) = release_child(paths, guest, cgroup, network, pid, in_cgroup, go.write, userns_ready.read) {
        let _ = pidfd::send_signal(&pidfd, libc::SIGKILL);
        let _ = waitpid(pid, None);
        return Err(e);
    }
    Ok(Pid1 { pid, pidfd, report: report.read, start_socket: start_monitor, restrictions })
}

/// S1 and S1u: the monitor's half of the hand-shake with the guest's first
/// process before it may run any step of its own.
#[allow(clippy::too_many_arguments)]
fn release_child(
    paths: &Paths,
    guest: &Guest,
    cgroup: &GuestCgroup,
    network: &mut Network,
    pid: Pid,
    in_cgroup: bool,
    mut go: File,
    mut userns_ready: File,
) -> Result<()> {
    // cgroup2 on kernels without CLONE_INTO_CGROUP. The v1 hierarchies the
    // child enters itself, right after "g" and before any other step: a
    // write of its pid here would take the kernel's threadgroup lock and
    // wait for an RCU grace period (5-20 ms), its own `tasks` writes do not.
    if !in_cgroup {
        if let Some(v2) = cgroup.v2_dir() {
            crate::cgroup::write_file(&v2.join(crate::cgroup::PAYLOAD).join("cgroup.procs"), &pid.as_raw().to_string())?;
        }
    }
    super::oom::set_guest_score(pid.as_raw())?;
    network.connect_namespace(guest, pid.as_raw())?;
    // compat: pre-start scriptlets once the cgroup, the addresses or the veth
    // pair are there, before the guest runs anything; a failure undoes the start.
    super::scripts::pre_start(paths, guest)?;
    go.write_all(b"g")?;
    // The child makes its mounts, then unshares its user namespace and asks.
    if guest.wants_namespace(ExtraNamespace::User) && wait_for(&mut userns_ready, b'u').is_ok() {
        super::userns::write_maps(pid.as_raw(), guest.xid)?;
        go.write_all(b"m")?;
    }
    Ok(())
}

/// The first process of the guest, in its new namespaces. Failures go back
/// to the monitor through `report`; success is exec (or, for the built-in
/// init, `report` being closed once the start command has run).
fn guest_main(
    guest: &Guest,
    go: File,
    report: File,
    userns_ready: File,
    start: OwnedFd,
    v1_tasks: &[File],
    restrictions: &Restrictions,
) -> ! {
    // The monitor's stdio (monitor.log) must not reach the guest: /dev/null
    // until /dev/console exists. Its other descriptors (the signalfd, the
    // pipe to `vserver start`) must not either: the built-in init never
    // execs, so close-on-exec alone would not drop them.
    let mut keep = vec![go.as_raw_fd(), report.as_raw_fd(), userns_ready.as_raw_fd(), start.as_raw_fd()];
    keep.extend(v1_tasks.iter().map(|f| f.as_raw_fd()));
    crate::sys::fds::close_all_except(&keep);
    // A clean signal state for the guest, which exec would keep: the
    // monitor blocks the signals its signalfd reads, and Rust's runtime
    // ignores SIGPIPE.
    let _ = SigSet::all().thread_unblock();
    let _ = sys::signal::set_default(libc::SIGPIPE);
    if let Ok(null) = File::open("/dev/null") {
        for target in 0..3 {
            // Onto the standard descriptors of this (forked) process.
            let _ = nix::unistd::dup2(null.as_raw_fd(), target);
        }
    }
    let mut steps = setup::Pid1Steps::new(guest, go, userns_ready, start, v1_tasks, restrictions);
    let set_up = setup::setup_guest(guest, &mut steps);
    // The monitor's channels close here, before the guest's init runs (the
    // built-in init never execs, so close-on-exec would not close them).
    drop(steps);
    let err = match set_up {
        Err(e) => e,
        Ok(()) => match guest.init.style {
            InitStyle::Plain => setup::exec_plain(guest),
            InitStyle::Systemd => setup::exec_systemd(guest),
            InitStyle::Sysv => match super::restrict::limit_own_capabilities(&restrictions.bcaps) {
                Ok(()) => init::run(guest, report),
                Err(e) => e,
            },
        },
    };
    send(&report, &format!("{err:#}"));
    // Leaving the failed child without unwinding.
    exit_now(127)
}

/// The monitor moves into `supervisor`. A write to cgroup.procs would take
/// the kernel's threadgroup lock and wait for an RCU grace period (5-20 ms
/// on a busy host); a process created inside a cgroup waits for nothing.
/// So at the first boot, while nobody knows the monitor's pid yet (the run
/// state is written once pid 1 runs), the monitor forks itself into the
/// cgroup2 `supervisor` and the parent ends: the child is the monitor from
/// here on, re-parented to the host's init. This is the second fork of the
/// usual double fork (`vserver start` forked the first), made where it
/// saves the write. The v1 hierarchies it enters through `tasks`, which
/// waits for nothing either. At a reboot the pid must stay (`vserver stop`
/// may hold it): the monitor writes cgroup.procs then.
fn enter_supervisor(cgroup: &GuestCgroup, first_boot: bool) -> Result<SupervisorSeat> {
    if !first_boot {
        return Ok(cgroup.enter_supervisor()?);
    }
    let seat = cgroup.seat_from_here()?;
    let target = cgroup.open_supervisor_v2()?;
    let into = match target.as_ref().map(|t| crate::sys::clone3::fork_with_pidfd(Some(t.as_fd()), libc::SIGCHLD)) {
        Some(Ok(f)) => Some(matches!(f, crate::sys::clone3::Forked::Child)),
        // No cgroup2, or a kernel without CLONE_INTO_CGROUP (< 5.7) or clone3 (< 5.3).
        None | Some(Err(_)) => None,
    };
    let in_cgroup = match into {
        Some(true) => true,
        Some(false) => leave_parent(),
        // The monitor is single-threaded; the child returns here.
        None => match fork().context("forking the monitor")? {
            Fork::Child => false,
            Fork::Parent(_) => leave_parent(),
        },
    };
    if in_cgroup {
        cgroup.enter_supervisor_v1()?;
        Ok(seat)
    } else {
        cgroup.enter_supervisor()?;
        Ok(seat)
    }
}

/// The parent of the forked monitor leaves without running anything more:
/// every descriptor, map and cgroup it set up is the child's now.
fn leave_parent() -> ! {
    // Ending this process without unwinding or running destructors.
    exit_now(0)
}

fn namespace_flags(guest: &Guest) -> libc::c_int {
    let mut flags = libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if guest.wants_namespace(ExtraNamespace::Net) {
        flags |= libc::CLONE_NEWNET;
    }
    flags
}

/// A new time namespace for the next child whose boot and monotonic clocks
/// start near zero: the guest's uptime counts from its own start.
fn enter_fresh_time_namespace() -> Result<()> {
    const CLONE_NEWTIME: libc::c_int = 0x80;
    // The monitor is single-threaded.
    sys::ns::unshare(CLONE_NEWTIME).context("creating a time namespace (VIRT_UPTIME)")?;
    let now = |clock| nix::time::clock_gettime(clock).map(|t| t.tv_sec()).unwrap_or(0);
    let offsets =
        format!("monotonic {} 0\nboottime {} 0\n", -now(nix::time::ClockId::CLOCK_MONOTONIC), -now(nix::time::ClockId::CLOCK_BOOTTIME));
    std::fs::write("/proc/self/timens_offsets", offsets).context("setting the time namespace offsets")
}
