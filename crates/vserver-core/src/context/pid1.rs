//! The guest's pid 1 from the monitor's side: everything on the host that
//! must exist before it (on `vserver/NAME`, in this order), its clone3 into
//! the guest's namespaces and payload cgroup, the hand-shake S1 (monitor.rs
//! numbers the sync points), and the first process's own path to exec.
//! `boot` and `release_child` are the order of the host's steps; the steps
//! themselves are the methods of [`HostSteps`]: `MonitorSteps` makes them,
//! the unit tests (`order_tests.rs`) record them.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::channel::{wait_for, Channel};
use super::fdpass;
use super::network::Network;
use super::restrict::Restrictions;
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
    let mut steps =
        MonitorSteps { paths, guest, cgroup, network, seat, first_boot, copy_on_write, restrictions: None, ends: None, child: None };
    boot(guest, &mut steps)?;
    steps.into_pid1()
}

/// The order of the host's steps of a boot, and which of them this guest
/// needs. It only decides; `steps` acts. The first failing step ends the
/// boot: no later step runs, and a pid 1 already cloned is killed.
pub(super) fn boot(guest: &Guest, steps: &mut impl HostSteps) -> Result<()> {
    // On vserver/NAME before it has children (the v1 devices controller
    // takes "deny all" only then) and before any guest process exists.
    // One device list gives the v1 rules, the v2 filter and the guest's /dev.
    steps.restrict_devices()?;
    // cgroup v2's device controller; on hybrid hosts the v1 rules apply too.
    steps.attach_device_filter()?;
    // Context-wide limits before the first process joins the cgroup.
    steps.apply_context_limits()?;
    // The IP set, too: sockets belong to the cgroup they are made in.
    steps.set_up_network()?;
    steps.create_children()?;
    if guest.wants_namespace(ExtraNamespace::User) && guest.init.style == InitStyle::Systemd {
        // The guest's root may manage its own cgroup tree (delegation).
        steps.delegate_payload()?;
    }
    // From here on the monitor's own work (console relay, readiness) is
    // charged to the guest.
    steps.enter_supervisor()?;
    // After the monitor is in place and before pid 1 is forked: pid 1 and
    // every joiner the monitor forks later share its Landlock domain, which
    // the host's and other guests' abstract unix sockets are outside of.
    steps.scope_abstract_sockets()?;
    if guest.wants_namespace(ExtraNamespace::Time) {
        // Before the clone: the time namespace applies to our children.
        steps.enter_time_namespace()?;
    }
    // The seccomp filter is compiled once per boot, for pid 1 and every joiner.
    steps.compile_restrictions()?;
    steps.open_channels()?;
    steps.clone_pid1()?;
    if let Err(e) = release_child(guest, steps) {
        steps.kill_pid1();
        return Err(e);
    }
    Ok(())
}

/// S1 and S1u: the monitor's half of the hand-shake with the guest's first
/// process before it may run any step of its own.
pub(super) fn release_child(guest: &Guest, steps: &mut impl HostSteps) -> Result<()> {
    // cgroup2 on kernels without CLONE_INTO_CGROUP. The v1 hierarchies the
    // child enters itself, right after "g" and before any other step: a
    // write of its pid here would take the kernel's threadgroup lock and
    // wait for an RCU grace period (5-20 ms), its own `tasks` writes do not.
    steps.move_pid1_into_payload()?;
    steps.set_oom_score()?;
    steps.connect_network()?;
    // compat: pre-start scriptlets once the cgroup, the addresses or the veth
    // pair are there, before the guest runs anything; a failure undoes the start.
    steps.run_pre_start()?;
    steps.send_go()?;
    // The child makes its mounts, then unshares its user namespace and asks.
    // If it ends instead of asking, its report says why: no maps then.
    if guest.wants_namespace(ExtraNamespace::User) && steps.wait_for_user_namespace().is_ok() {
        steps.write_id_maps()?;
        steps.send_maps_written()?;
    }
    Ok(())
}

/// The monitor's steps of a boot, one method each, in the order `boot` and
/// `release_child` call them. Whether a guest's configuration needs a step
/// is theirs to decide; what the host or the kernel offers (cgroup2,
/// CLONE_INTO_CGROUP, a network namespace to connect) the step checks itself.
pub(super) trait HostSteps {
    /// The v1 devices controller's rules.
    fn restrict_devices(&mut self) -> Result<()>;
    /// The cgroup2 device filter, where there is cgroup2.
    fn attach_device_filter(&mut self) -> Result<()>;
    /// Memory, cpu, pids, ... on `vserver/NAME`.
    fn apply_context_limits(&mut self) -> Result<()>;
    /// The IP set's programs and the host addresses.
    fn set_up_network(&mut self) -> Result<()>;
    /// `payload` and `supervisor`.
    fn create_children(&mut self) -> Result<()>;
    /// `payload` to guest root's host ids.
    fn delegate_payload(&mut self) -> Result<()>;
    /// The monitor moves into `supervisor` (at the first boot by a fork).
    fn enter_supervisor(&mut self) -> Result<()>;
    /// The Landlock scope for abstract unix sockets.
    fn scope_abstract_sockets(&mut self) -> Result<()>;
    /// A fresh time namespace for the children.
    fn enter_time_namespace(&mut self) -> Result<()>;
    /// The restrictions of the guest's processes, seccomp filter compiled.
    fn compile_restrictions(&mut self) -> Result<()>;
    /// The pipes and the start socket to pid 1, the payload cgroup's files.
    fn open_channels(&mut self) -> Result<()>;
    /// clone3 into the new namespaces and payload; the child never returns.
    fn clone_pid1(&mut self) -> Result<()>;
    /// SIGKILL to pid 1, then reap it: the start failed after the clone.
    fn kill_pid1(&mut self);
    /// cgroup.procs of payload, if the clone could not put pid 1 there.
    fn move_pid1_into_payload(&mut self) -> Result<()>;
    fn set_oom_score(&mut self) -> Result<()>;
    /// The veth pair, if the guest has its own network namespace.
    fn connect_network(&mut self) -> Result<()>;
    /// The `pre-start` scriptlets.
    fn run_pre_start(&mut self) -> Result<()>;
    /// "g" to pid 1 (S1).
    fn send_go(&mut self) -> Result<()>;
    /// Waits for pid 1's "u": its user namespace exists (S1u).
    fn wait_for_user_namespace(&mut self) -> Result<()>;
    /// uid_map and gid_map of pid 1.
    fn write_id_maps(&mut self) -> Result<()>;
    /// "m" to pid 1: its maps are written.
    fn send_maps_written(&mut self) -> Result<()>;
}

/// The real steps, and what passes between them: the guest's cgroup and
/// network, the monitor's seat, the restrictions, both ends of the channels
/// until the clone, the monitor's ends and pid 1 after it.
struct MonitorSteps<'a> {
    paths: &'a Paths,
    guest: &'a Guest,
    cgroup: &'a GuestCgroup,
    network: &'a mut Network,
    seat: &'a mut Option<SupervisorSeat>,
    first_boot: bool,
    copy_on_write: bool,
    restrictions: Option<Restrictions>,
    ends: Option<Ends>,
    child: Option<Child>,
}

/// Both ends of everything between the monitor and pid 1, before the clone.
struct Ends {
    go: Channel,
    report: Channel,
    userns_ready: Channel,
    start_monitor: OwnedFd,
    start_child: OwnedFd,
    payload: Option<OwnedFd>,
    v1_tasks: Vec<File>,
}

/// pid 1 and the monitor's ends, after the clone.
struct Child {
    pid: Pid,
    pidfd: OwnedFd,
    in_cgroup: bool,
    go: File,
    userns_ready: File,
    report: File,
    start_socket: OwnedFd,
}

impl MonitorSteps<'_> {
    fn restrictions(&self) -> Result<&Restrictions> {
        self.restrictions.as_ref().context("the restrictions are not compiled yet")
    }

    fn child(&mut self) -> Result<&mut Child> {
        self.child.as_mut().context("pid 1 is not cloned yet")
    }

    fn into_pid1(self) -> Result<Pid1> {
        let child = self.child.context("pid 1 is not cloned yet")?;
        let restrictions = self.restrictions.context("the restrictions are not compiled yet")?;
        Ok(Pid1 { pid: child.pid, pidfd: child.pidfd, report: child.report, start_socket: child.start_socket, restrictions })
    }
}

impl HostSteps for MonitorSteps<'_> {
    fn restrict_devices(&mut self) -> Result<()> {
        let devices = self.guest.device_list();
        Ok(self.cgroup.restrict_devices(&devices.v1_rules().iter().map(String::as_str).collect::<Vec<_>>())?)
    }

    fn attach_device_filter(&mut self) -> Result<()> {
        if let Some(v2) = self.cgroup.v2_dir() {
            crate::cgroup::device_filter::attach(v2, &self.guest.device_list())?;
        }
        Ok(())
    }

    fn apply_context_limits(&mut self) -> Result<()> {
        Ok(crate::limits::apply_context_limits(self.cgroup, self.guest)?)
    }

    fn set_up_network(&mut self) -> Result<()> {
        self.network.set_up(self.paths, self.guest, self.cgroup)
    }

    fn create_children(&mut self) -> Result<()> {
        Ok(self.cgroup.create_children()?)
    }

    fn delegate_payload(&mut self) -> Result<()> {
        let base = super::userns::base(self.guest.xid);
        Ok(self.cgroup.delegate_payload(base, base)?)
    }

    fn enter_supervisor(&mut self) -> Result<()> {
        let entered = enter_supervisor(self.cgroup, self.first_boot).context("moving the monitor into the guest's supervisor cgroup")?;
        super::scripts::run_in_host_cgroups(entered.origin_files());
        *self.seat = Some(entered);
        Ok(())
    }

    fn scope_abstract_sockets(&mut self) -> Result<()> {
        crate::net::abstract_unix::scope_for_guest(self.guest)
    }

    fn enter_time_namespace(&mut self) -> Result<()> {
        enter_fresh_time_namespace()
    }

    fn compile_restrictions(&mut self) -> Result<()> {
        let mut restrictions = Restrictions::for_guest(self.guest)?;
        if self.copy_on_write {
            restrictions = restrictions.with_copy_on_write();
        }
        self.restrictions = Some(restrictions);
        Ok(())
    }

    fn open_channels(&mut self) -> Result<()> {
        let go = Channel::new()?;
        let report = Channel::new()?;
        let userns_ready = Channel::new()?;
        let (start_monitor, start_child) = fdpass::pair()?;
        let payload = self.cgroup.open_payload_v2()?;
        // The v1 hierarchies: the child enters them itself (see release_child).
        let v1_tasks = self.cgroup.open_payload_v1_tasks()?;
        self.ends = Some(Ends { go, report, userns_ready, start_monitor, start_child, payload, v1_tasks });
        Ok(())
    }

    fn clone_pid1(&mut self) -> Result<()> {
        let ends = self.ends.take().context("the channels to pid 1 are not open yet")?;
        // Before the clone: the child has no way back from an error.
        let restrictions = self.restrictions()?;
        let forked = clone::fork_into(namespace_flags(self.guest), ends.payload.as_ref().map(|f| f.as_fd()))
            .context("creating the guest's namespaces")?;
        let Ends { go, report, userns_ready, start_monitor, start_child, payload, v1_tasks } = ends;
        match forked {
            clone::Forked::Child => {
                drop((go.write, report.read, userns_ready.read, start_monitor, payload));
                super::guest_main::guest_main(self.guest, go.read, report.write, userns_ready.write, start_child, &v1_tasks, restrictions)
            }
            clone::Forked::Parent { pid, pidfd, in_cgroup } => {
                drop((go.read, report.write, userns_ready.write, start_child, payload, v1_tasks));
                let pid = Pid::from_raw(pid);
                self.child = Some(Child {
                    pid,
                    pidfd,
                    in_cgroup,
                    go: go.write,
                    userns_ready: userns_ready.read,
                    report: report.read,
                    start_socket: start_monitor,
                });
                Ok(())
            }
        }
    }

    fn kill_pid1(&mut self) {
        if let Some(child) = &self.child {
            let _ = pidfd::send_signal(&child.pidfd, libc::SIGKILL);
            let _ = waitpid(child.pid, None);
        }
    }

    fn move_pid1_into_payload(&mut self) -> Result<()> {
        let cgroup = self.cgroup;
        let child = self.child()?;
        if !child.in_cgroup {
            if let Some(v2) = cgroup.v2_dir() {
                crate::cgroup::write_file(&v2.join(crate::cgroup::PAYLOAD).join("cgroup.procs"), &child.pid.as_raw().to_string())?;
            }
        }
        Ok(())
    }

    fn set_oom_score(&mut self) -> Result<()> {
        super::oom::set_guest_score(self.child()?.pid.as_raw())
    }

    fn connect_network(&mut self) -> Result<()> {
        let pid = self.child()?.pid.as_raw();
        self.network.connect_namespace(self.guest, pid)
    }

    fn run_pre_start(&mut self) -> Result<()> {
        super::scripts::pre_start(self.paths, self.guest)
    }

    fn send_go(&mut self) -> Result<()> {
        Ok(self.child()?.go.write_all(b"g")?)
    }

    fn wait_for_user_namespace(&mut self) -> Result<()> {
        Ok(wait_for(&mut self.child()?.userns_ready, b'u')?)
    }

    fn write_id_maps(&mut self) -> Result<()> {
        let xid = self.guest.xid;
        super::userns::write_maps(self.child()?.pid.as_raw(), xid)
    }

    fn send_maps_written(&mut self) -> Result<()> {
        Ok(self.child()?.go.write_all(b"m")?)
    }
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
