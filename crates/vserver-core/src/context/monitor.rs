//! The host-side monitor: a small daemon that is the parent of the guest's
//! pid 1. It builds the context for every boot, records the run state,
//! keeps the guest's console output (bounded), and tears everything down
//! when the guest ends, restarting it when the guest asked for a reboot.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::channel::{read_report, send, wait_for, Channel};
use super::control::{Control, JoinTarget};
use super::restrict::Restrictions;
use super::network::Network;
use super::{init, setup};
use crate::cgroup::{GuestCgroup, Layout};
use crate::config::{ExtraNamespace, Guest, InitStyle};
use crate::paths::Paths;
use crate::rootfs::dev::DEVICE_ALLOW_RULES;
use crate::runstate::{now_secs, ProcessId, RunState};
use crate::sys::{clone, pidfd};

/// Console output kept per guest; the file starts over when it grows past this.
const CONSOLE_LIMIT: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Reboot,
    Halt,
}

/// Runs in the detached monitor process; never returns.
pub(super) fn run(paths: &Paths, guest: &Guest, layout: &Layout, report: File) -> ! {
    let code = match supervise_boots(paths, guest, layout, report) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vserver monitor {}: {e:#}", guest.name);
            1
        }
    };
    let _ = RunState::remove(paths, &guest.name);
    // SAFETY: leaving the forked monitor without unwinding into the caller's frames.
    unsafe { libc::_exit(code) }
}

fn supervise_boots(paths: &Paths, guest: &Guest, layout: &Layout, report: File) -> Result<()> {
    let signals = monitor_signals();
    signals.thread_block()?;
    let sigfd = SignalFd::new(&signals)?;
    let mut report = Some(report);
    // `vserver NAME exec|enter` ask here for a process in the guest.
    let mut control = Control::listen(paths, &guest.name)?;
    loop {
        let mut boot = match Boot::start(paths, guest, layout) {
            Ok(b) => b,
            Err(e) => {
                if let Some(r) = report.take() {
                    send(&r, &format!("{e:#}"));
                }
                return Err(e);
            }
        };
        if let Some(r) = report.take() {
            send(&r, "OK");
        }
        if let Some(target) = boot.join.take() {
            control.attach(target);
        }
        let ending = boot.supervise(&sigfd, &mut control);
        control.detach();
        boot.teardown();
        if ending == Ending::Halt || stop_requested(paths, guest) {
            return Ok(());
        }
        eprintln!("vserver monitor {}: the guest rebooted; starting it again", guest.name);
    }
}

fn monitor_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGCHLD] {
        s.add(sig);
    }
    s
}

pub(super) fn stop_marker(paths: &Paths, name: &str) -> PathBuf {
    paths.guest_rundir(name).join("stopping")
}

fn stop_requested(paths: &Paths, guest: &Guest) -> bool {
    stop_marker(paths, &guest.name).exists()
}

/// One boot of the guest: its cgroup, its pid 1, the console pipe.
struct Boot<'a> {
    guest: &'a Guest,
    cgroup: GuestCgroup,
    network: Network,
    init: Pid,
    init_fd: OwnedFd,
    console: Option<File>,
    console_log: ConsoleLog,
    halt_requested: bool,
    /// What the control socket needs to put processes into this boot's guest.
    join: Option<JoinTarget>,
}

impl<'a> Boot<'a> {
    fn start(paths: &'a Paths, guest: &'a Guest, layout: &Layout) -> Result<Boot<'a>> {
        let cgroup = GuestCgroup::create(layout, &guest.name)?;
        let mut network = Network::default();
        match Self::start_in(paths, guest, &cgroup, &mut network) {
            Ok((init, init_fd, console, join)) => {
                Ok(Boot {
                guest,
                cgroup,
                network,
                init,
                init_fd,
                console: Some(console),
                console_log: ConsoleLog::new(paths, &guest.name),
                halt_requested: false,
                join: Some(join),
            })
            }
            Err(e) => {
                // Nothing of a failed start stays: addresses, programs and
                // the cgroup go, and with it any process that got into it.
                network.undo(&guest.name);
                let _ = cgroup.remove();
                Err(e)
            }
        }
    }

    fn start_in(paths: &Paths, guest: &Guest, cgroup: &GuestCgroup, network: &mut Network) -> Result<(Pid, OwnedFd, File, JoinTarget)> {
        cgroup.restrict_devices(DEVICE_ALLOW_RULES)?;
        if let Some(v2) = cgroup.v2_dir() {
            // cgroup v2's device controller; on hybrid hosts the v1 rules apply too.
            crate::cgroup::device_filter::attach(v2)?;
        }
        // Context-wide limits before the first process joins the cgroup.
        crate::limits::apply_context_limits(cgroup, guest)?;
        // The IP set, too: sockets belong to the cgroup they are made in.
        network.set_up(guest, cgroup)?;
        if guest.wants_namespace(ExtraNamespace::Time) {
            // Before the clone: the time namespace applies to our children.
            enter_fresh_time_namespace()?;
        }
        let restrictions = Restrictions::for_guest(guest)?;
        let (console_r, console_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let go = Channel::new()?;
        let report = Channel::new()?;
        let userns_ready = Channel::new()?;
        let pid = clone::fork_into(namespace_flags(guest)).context("creating the guest's namespaces")?;
        if pid == 0 {
            drop(go.write);
            drop(report.read);
            drop(userns_ready.read);
            guest_main(guest, go.read, report.write, userns_ready.write, console_w.as_fd(), &restrictions);
        }
        drop(go.read);
        drop(report.write);
        drop(userns_ready.write);
        drop(console_w);
        let pid = Pid::from_raw(pid);
        let init_fd = pidfd::open(pid.as_raw())?;
        let result = release_child(guest, cgroup, network, pid, go.write, userns_ready.read, report.read)
            .and_then(|()| join_target(pid, &init_fd, cgroup, &restrictions));
        let join = match result {
            Ok(j) => j,
            Err(e) => {
                let _ = pidfd::send_signal(&init_fd, libc::SIGKILL);
                let _ = waitpid(pid, None);
                return Err(e);
            }
        };
        let state = RunState {
            name: guest.name.clone(),
            xid: guest.xid,
            init: ProcessId::of(pid.as_raw())?,
            monitor: ProcessId::of(std::process::id() as i32)?,
            started_at: now_secs(),
            cgroups: cgroup.dirs().to_vec(),
            added_addresses: network.added.iter().map(|a| a.to_string()).collect(),
            allow_io_uring: restrictions.seccomp.allow_io_uring,
            allow_ping_sockets: restrictions.seccomp.allow_ping_sockets,
        };
        state.save(paths).context("writing the run state")?;
        Ok((pid, init_fd, File::from(console_r), join))
    }

    /// Waits for the guest to end, copying its console output and turning
    /// SIGTERM to the monitor into a halt.
    fn supervise(&mut self, sigfd: &SignalFd, control: &mut Control) -> Ending {
        let status = loop {
            let mut fds = vec![
                PollFd::new(self.init_fd.as_fd(), PollFlags::POLLIN),
                PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
            ];
            if let Some(c) = &self.console {
                fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
            }
            let first_control = fds.len();
            fds.extend(control.poll_fds());
            if poll(&mut fds, PollTimeout::NONE).is_err() {
                continue;
            }
            let ready = |i: usize, fds: &[PollFd]| fds.get(i).and_then(|f| f.revents()).is_some_and(|r| !r.is_empty());
            let console_slot = if self.console.is_some() { 2 } else { usize::MAX };
            let (init_done, signalled, console) = (ready(0, &fds), ready(1, &fds), ready(console_slot, &fds));
            let control_events: Vec<PollFlags> = fds[first_control..].iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect();
            drop(fds);
            // Before pid 1's end is handled: its exit waits for the joiners
            // (they are our children in its pid namespace) to be reaped.
            control.dispatch(&control_events);
            if console {
                self.copy_console();
            }
            if signalled {
                self.handle_signal(sigfd);
            }
            if init_done {
                self.drain_console();
                break waitpid(self.init, None);
            }
        };
        match status {
            _ if self.halt_requested => Ending::Halt,
            Ok(WaitStatus::Signaled(_, Signal::SIGHUP, _)) => Ending::Reboot,
            // The built-in init's exit code when reboot(2) was refused to it.
            Ok(WaitStatus::Exited(_, 129)) if self.guest.init.style == InitStyle::Sysv => Ending::Reboot,
            _ => Ending::Halt,
        }
    }

    fn handle_signal(&mut self, sigfd: &SignalFd) {
        if let Ok(Some(info)) = sigfd.read_signal() {
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGTERM || sig == libc::SIGINT {
                self.halt_requested = true;
                let _ = pidfd::send_signal(&self.init_fd, libc::SIGKILL);
            }
        }
    }

    fn copy_console(&mut self) {
        let Some(c) = self.console.as_mut() else { return };
        let mut buf = [0u8; 8192];
        match c.read(&mut buf) {
            Ok(0) | Err(_) => self.console = None,
            Ok(n) => self.console_log.append(&buf[..n]),
        }
    }

    fn drain_console(&mut self) {
        if let Some(c) = self.console.as_ref() {
            let _ = nix::fcntl::fcntl(c.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
        }
        while self.console.is_some() {
            self.copy_console();
        }
    }

    fn teardown(&mut self) {
        if let Err(e) = self.cgroup.remove() {
            eprintln!("vserver monitor {}: {e}", self.guest.name);
        }
        self.network.undo(&self.guest.name);
    }
}

/// Everything the control socket needs to put a process into this boot's
/// guest: the cgroup every guest process belongs in, pid 1, the restrictions.
fn join_target(pid: Pid, init_fd: &OwnedFd, cgroup: &GuestCgroup, restrictions: &Restrictions) -> Result<JoinTarget> {
    let v1: Vec<PathBuf> = cgroup.dirs().iter().filter(|d| Some(d.as_path()) != cgroup.v2_dir()).cloned().collect();
    JoinTarget::new(pid.as_raw(), init_fd, cgroup.v2_dir(), &v1, restrictions)
}

/// The monitor's half of the hand-shake with the guest's first process: it
/// joins the cgroup (and gets its veth end) before it may run, its user
/// namespace gets its id maps once it asks, and its report (EOF on exec, or
/// the error) ends the start.
fn release_child(
    guest: &Guest,
    cgroup: &GuestCgroup,
    network: &mut Network,
    pid: Pid,
    mut go: File,
    mut userns_ready: File,
    report: File,
) -> Result<()> {
    cgroup.add_process(pid.as_raw())?;
    network.connect_namespace(guest, pid.as_raw())?;
    go.write_all(b"g")?;
    // The child makes its mounts, then unshares its user namespace and asks.
    if guest.wants_namespace(ExtraNamespace::User) && wait_for(&mut userns_ready, b'u').is_ok() {
        super::userns::write_maps(pid.as_raw(), guest.xid)?;
        go.write_all(b"m")?;
    }
    drop(go);
    match read_report(report)? {
        None => Ok(()),
        Some(msg) => Err(anyhow::anyhow!("{msg}")),
    }
}

/// The first process of the guest, in its new namespaces. Failures go back
/// to the monitor through `report`; success is exec (or, for the built-in
/// init, `report` being closed once the start command has run).
fn guest_main(
    guest: &Guest,
    go: File,
    report: File,
    userns_ready: File,
    console: std::os::fd::BorrowedFd<'_>,
    restrictions: &Restrictions,
) -> ! {
    for target in [1, 2] {
        // SAFETY: dup2 onto stdout/stderr of this (forked) process.
        unsafe { libc::dup2(console.as_raw_fd(), target) };
    }
    // The monitor's descriptors (its signalfd, the pipe to `vserver start`)
    // must not reach the guest: the built-in init never execs, so
    // close-on-exec alone would not drop them.
    crate::sys::fds::close_all_except(&[go.as_raw_fd(), report.as_raw_fd(), userns_ready.as_raw_fd()]);
    if let Ok(null) = File::open("/dev/null") {
        // SAFETY: as above, for stdin.
        unsafe { libc::dup2(null.as_raw_fd(), 0) };
    }
    let err = match setup::setup_guest(guest, go, userns_ready, restrictions) {
        Err(e) => e,
        Ok(()) => match guest.init.style {
            InitStyle::Plain => setup::exec_clean(&setup::plain_init_argv(guest), None),
            InitStyle::Sysv => match super::restrict::limit_own_capabilities(&restrictions.bcaps) {
                Ok(()) => init::run(guest, report),
                Err(e) => e,
            },
        },
    };
    send(&report, &format!("{err:#}"));
    // SAFETY: leaving the failed child without unwinding.
    unsafe { libc::_exit(127) }
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
    // SAFETY: unshare(2) with a flag; the monitor is single-threaded.
    if unsafe { libc::unshare(CLONE_NEWTIME) } != 0 {
        return Err(std::io::Error::last_os_error()).context("creating a time namespace (VIRT_UPTIME)");
    }
    let now = |clock| nix::time::clock_gettime(clock).map(|t| t.tv_sec()).unwrap_or(0);
    let offsets = format!(
        "monotonic {} 0\nboottime {} 0\n",
        -now(nix::time::ClockId::CLOCK_MONOTONIC),
        -now(nix::time::ClockId::CLOCK_BOOTTIME)
    );
    fs::write("/proc/self/timens_offsets", offsets).context("setting the time namespace offsets")
}

/// `<rundir>/NAME/console.log`, opened once per boot; it starts over when it
/// grows past CONSOLE_LIMIT, so a chatty guest cannot fill the host's disk.
struct ConsoleLog {
    path: PathBuf,
    file: Option<File>,
}

impl ConsoleLog {
    fn new(paths: &Paths, name: &str) -> ConsoleLog {
        ConsoleLog { path: paths.guest_rundir(name).join("console.log"), file: None }
    }

    fn append(&mut self, data: &[u8]) {
        if self.file.is_none() {
            self.file = OpenOptions::new().create(true).append(true).open(&self.path).ok();
        }
        let Some(f) = self.file.as_mut() else { return };
        if f.metadata().map(|m| m.len() > CONSOLE_LIMIT).unwrap_or(false) {
            let _ = f.set_len(0);
        }
        let _ = f.write_all(data);
    }
}
