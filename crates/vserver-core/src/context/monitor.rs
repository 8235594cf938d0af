//! The host-side monitor: a small daemon that is the parent of the guest's
//! pid 1. It builds the context for every boot, records the run state, keeps
//! the guest's console (bounded), reports readiness to `vserver start`,
//! turns `vserver stop` into the style's halt request, and tears everything
//! down when the guest ends, restarting it when the guest asked for a reboot.
//!
//! Sync points (the guest's first process is in setup.rs, `vserver start`
//! in start.rs and report.rs):
//!   S1 monitor -> child "g": the child was created in the cgroup2 payload,
//!      its OOM score is set (and its veth end is in place): it enters
//!      payload in the v1 hierarchies, then goes on;
//!   S1u (user namespace) child -> monitor "u", monitor -> child "m": maps;
//!   S2 child -> monitor, start socket: console master [+ notify socket];
//!   S3 child -> monitor, report pipe: EOF at exec (built-in init: once its
//!      start command ran), or the error text;
//!   S4 monitor -> `vserver start`: state saved, then "OK" once the guest is
//!      up (a systemd guest: its READY=1), or the error with the console's
//!      last lines.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::context::error::{ContextError, Result, StepResult};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::console_log::{self, ConsoleLog};
use super::control::{Control, JoinTarget};
use super::halt::{self, HaltRequest};
use super::network::Network;
use super::report::StartReport;
use super::restrict::Restrictions;
use super::{fdpass, notify, pid1};
use crate::cgroup::{GuestCgroup, Layout, SupervisorSeat};
use crate::config::{Guest, InitStyle};
use crate::paths::Paths;
use crate::runstate::{now_secs, ProcessId, RunState};
use crate::sys::pidfd;
use crate::unify::cow::Supervisor;

/// How long `start` waits for a systemd guest's READY=1 unless
/// `apps/init/ready-timeout` says otherwise: more than systemd's own
/// default job timeout (90 s), so one hanging unit fails in the guest first.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Console lines shown when a start fails.
const TAIL_LINES: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ending {
    Reboot,
    Halt,
    /// pid 1 ended (or was ended) before the guest was up.
    Failed(String),
}

/// Runs in the detached monitor process; never returns.
pub(super) fn run(paths: &Paths, guest: &Guest, layout: &Layout, report: File) -> ! {
    crate::logging::set_prefix(&format!("vserver monitor {}", guest.name));
    let code = match supervise_boots(paths, guest, layout, report) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e:#}");
            1
        }
    };
    let _ = RunState::remove(paths, &guest.name);
    // Leaving the forked monitor without unwinding into the caller's frames.
    crate::sys::process::exit_now(code)
}

fn supervise_boots(paths: &Paths, guest: &Guest, layout: &Layout, report: File) -> Result<()> {
    let signals = monitor_signals();
    signals.thread_block()?;
    // Non-blocking: the loop reads every pending signal, then goes back to poll.
    let sigfd = SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
    let mut cli = Some(StartReport::new(report));
    let mut console = ConsoleLog::new(paths.guest_rundir(&guest.name).join("console.log"));
    // `vserver NAME exec|enter|suexec` ask here for a process in the guest;
    // between boots (a reboot) their connections wait in the backlog.
    let mut control = Control::listen(paths, &guest.name)?;
    loop {
        if cli.is_none() {
            // compat: a reboot runs what `vserver start` runs before the monitor exists.
            super::scripts::before_reboot(paths, guest)?;
        }
        let mut boot = match Boot::start(paths, guest, layout, &mut console, cli.is_some()) {
            Ok(b) => b,
            Err(e) => {
                if let Some(r) = cli.take() {
                    r.failed(&format!("{e:#}"));
                }
                return Err(e);
            }
        };
        let ending = boot.run(&sigfd, &mut cli, &mut control);
        let stopped = boot.stop_requested;
        // pid 1 has ended: every joiner went with its pid namespace.
        control.detach();
        // `vserver stop` waits for our end and removes what is left of the
        // cgroups then (see Boot::teardown); anyone else's SIGTERM (no stop
        // marker) and a guest that halts itself leave nobody to do that.
        let handoff = stopped && halt::read_stop_marker(paths, &guest.name).is_some();
        boot.teardown(handoff);
        // Whoever waits in `vserver start` learns the outcome only once
        // nothing of a failed boot is left, the run state included.
        let fail = |cli: &mut Option<StartReport>, msg: &str| {
            let _ = RunState::remove(paths, &guest.name);
            if let Some(r) = cli.take() {
                r.failed(msg);
            }
        };
        match ending {
            Ending::Failed(msg) => {
                fail(&mut cli, &msg);
                return Err(ContextError::DidNotBoot(msg));
            }
            _ if cli.is_some() => {
                fail(&mut cli, "the guest was stopped before it was up");
                return Ok(());
            }
            Ending::Halt => return Ok(()),
            Ending::Reboot if stopped || halt::read_stop_marker(paths, &guest.name).is_some() => return Ok(()),
            Ending::Reboot => log::info!("the guest rebooted; starting it again"),
        }
        console_log::bound_monitor_log(&paths.guest_rundir(&guest.name).join("monitor.log"));
    }
}

fn monitor_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGCHLD] {
        s.add(sig);
    }
    s
}

/// Where a boot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// pid 1 is being set up (until S3).
    Setup,
    /// A systemd guest runs; its READY=1 is due by then.
    AwaitingReady(Instant),
    Up,
}

/// The descriptors the monitor waits on (the control socket and its
/// connections are polled beside them, through Control::poll_fds). New kinds
/// of events become a variant here, a field of Boot and a branch in
/// Boot::handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// pid 1's pidfd: readable when it ended.
    Init,
    Signals,
    /// S3: the first process's report pipe.
    ChildReport,
    /// S2: descriptors from the first process.
    StartSocket,
    /// The master of the guest's /dev/console.
    Console,
    /// The datagram socket at /run/host/notify (systemd guests).
    Notify,
    /// The copy-on-write supervisor's listeners (unified guests).
    CopyOnWrite,
}

/// One boot of the guest: its cgroup, its pid 1 and what the monitor reads.
struct Boot<'a> {
    paths: &'a Paths,
    guest: &'a Guest,
    cgroup: GuestCgroup,
    network: Network,
    seat: Option<SupervisorSeat>,
    init: Pid,
    init_fd: OwnedFd,
    child_report: Option<File>,
    child_error: Vec<u8>,
    start_socket: Option<OwnedFd>,
    /// Messages read from the start socket: the console, then the listener.
    start_messages: u8,
    /// A unified guest's copy-on-write supervisor: every process of the
    /// guest hands it the listener of its notify filter.
    supervisor: Option<Supervisor>,
    console: Option<Console>,
    notify: Option<OwnedFd>,
    log: &'a mut ConsoleLog,
    phase: Phase,
    /// Handed to the control socket once pid 1 runs the guest's code.
    join: Option<Result<JoinTarget>>,
    /// When pid 1 is killed if it has not ended by then.
    kill_at: Option<Instant>,
    stop_requested: bool,
    /// Why pid 1 was killed during start, for the message.
    failure: Option<String>,
    ending: Option<Ending>,
}

/// The console pty as the monitor holds it.
struct Console {
    master: File,
    /// Keeps the pty from hanging up while the guest has it closed.
    _slave: OwnedFd,
}

impl<'a> Boot<'a> {
    /// `first_boot`: started by `vserver start` (not a reboot), whose monitor
    /// pid nobody knows yet.
    fn start(paths: &'a Paths, guest: &'a Guest, layout: &Layout, log: &'a mut ConsoleLog, first_boot: bool) -> Result<Boot<'a>> {
        let supervisor = copy_on_write_supervisor(paths, guest, first_boot)?;
        let cgroup = GuestCgroup::create(layout, &guest.name)?;
        let mut network = Network::default();
        let mut seat = None;
        let style = match guest.init.style {
            InitStyle::Plain => "plain",
            InitStyle::Sysv => "sysv",
            InitStyle::Systemd => "systemd",
        };
        log.note(&format!("starting guest {} (init style {style})", guest.name));
        match pid1::start(paths, guest, &cgroup, &mut network, &mut seat, first_boot, supervisor.is_some()) {
            Ok(p) => {
                // Read now, while pid 1 is surely in its namespaces. If it
                // cannot be read, pid 1 has already died of a setup error,
                // which its report gives; the join target's error is used
                // only if pid 1 got past setup all the same (fail closed).
                let join = join_target(&cgroup, p.pid, &p.pidfd, &p.restrictions);
                Ok(Boot {
                    paths,
                    guest,
                    cgroup,
                    network,
                    seat,
                    init: p.pid,
                    init_fd: p.pidfd,
                    child_report: Some(p.report),
                    child_error: Vec::new(),
                    start_socket: Some(p.start_socket),
                    start_messages: 0,
                    supervisor,
                    console: None,
                    notify: None,
                    log,
                    phase: Phase::Setup,
                    join: Some(join),
                    kill_at: None,
                    stop_requested: false,
                    failure: None,
                    ending: None,
                })
            }
            Err(e) => {
                // Nothing of a failed start stays: addresses, programs and
                // the cgroup go, and with it any process that got into it.
                undo(paths, guest, &cgroup, &mut network, seat, false, false);
                Err(e)
            }
        }
    }

    /// The event loop of one boot; returns how it ended.
    fn run(&mut self, sigfd: &SignalFd, cli: &mut Option<StartReport>, control: &mut Control) -> Ending {
        loop {
            let (ready, control_events) = match self.wait(sigfd, control) {
                Ok(r) => r,
                Err(e) => {
                    log::error!("poll: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            // pid 1's end last: the output and reports that came with it first.
            for source in ready.iter().filter(|s| **s != Source::Init) {
                self.handle(*source, sigfd, cli);
            }
            // Before pid 1's end is handled: its exit waits for the joiners
            // (our children in its pid namespace) to be reaped.
            control.dispatch(&control_events);
            self.supervise_joiners(control);
            if self.phase != Phase::Setup {
                match self.join.take() {
                    Some(Ok(target)) => control.attach(target),
                    Some(Err(e)) if self.failure.is_none() => {
                        self.failure = Some(format!("{e:#}"));
                        self.kill_init();
                    }
                    _ => {}
                }
            }
            if ready.contains(&Source::Init) {
                self.handle(Source::Init, sigfd, cli);
            }
            self.check_deadlines();
            if let Some(e) = self.ending.take() {
                return e;
            }
        }
    }

    /// Polls every source and the control socket's descriptors; returns the
    /// sources with something to read and the control socket's events.
    fn wait(&self, sigfd: &SignalFd, control: &Control) -> nix::Result<(Vec<Source>, Vec<PollFlags>)> {
        let sources = self.sources(sigfd);
        let mut fds: Vec<PollFd> = sources.iter().map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN)).collect();
        fds.extend(control.poll_fds());
        let timeout = self
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()).as_millis().min(i32::MAX as u128) as i32)
            .map(|ms| PollTimeout::try_from(ms.max(1)).unwrap_or(PollTimeout::MAX))
            .unwrap_or(PollTimeout::NONE);
        match poll(&mut fds, timeout) {
            Err(nix::errno::Errno::EINTR) => return Ok((Vec::new(), Vec::new())),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let ready = sources.iter().zip(&fds).filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty())).map(|((s, _), _)| *s).collect();
        let control_events = fds[sources.len()..].iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect();
        Ok((ready, control_events))
    }

    fn sources<'s>(&'s self, sigfd: &'s SignalFd) -> Vec<(Source, BorrowedFd<'s>)> {
        let mut v = vec![(Source::Init, self.init_fd.as_fd()), (Source::Signals, sigfd.as_fd())];
        if let Some(r) = &self.child_report {
            v.push((Source::ChildReport, r.as_fd()));
        }
        if let Some(s) = &self.start_socket {
            v.push((Source::StartSocket, s.as_fd()));
        }
        if let Some(c) = &self.console {
            v.push((Source::Console, c.master.as_fd()));
        }
        if let Some(n) = &self.notify {
            v.push((Source::Notify, n.as_fd()));
        }
        if let Some(s) = &self.supervisor {
            v.push((Source::CopyOnWrite, s.poll_fd()));
        }
        v
    }

    fn handle(&mut self, source: Source, sigfd: &SignalFd, cli: &mut Option<StartReport>) {
        match source {
            Source::Init => self.init_ended(),
            Source::Signals => self.signal(sigfd),
            Source::ChildReport => self.child_reported(cli),
            Source::StartSocket => self.receive_descriptors(),
            Source::Console => self.copy_console(),
            Source::Notify => self.notified(cli),
            Source::CopyOnWrite => self.answer_notifications(),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let ready = match self.phase {
            Phase::AwaitingReady(at) => Some(at),
            _ => None,
        };
        [ready, self.kill_at].into_iter().flatten().min()
    }

    fn check_deadlines(&mut self) {
        let now = Instant::now();
        if let Phase::AwaitingReady(at) = self.phase {
            if now >= at && self.failure.is_none() && !self.stop_requested {
                self.failure =
                    Some(format!("it did not report ready within {} s (apps/init/ready-timeout)", ready_timeout(self.guest).as_secs()));
                self.kill_init();
            }
        }
        if self.kill_at.is_some_and(|at| now >= at) {
            self.kill_at = None;
            self.log.note("the guest did not stop in time: killing it");
            self.kill_init();
        }
    }

    fn kill_init(&self) {
        // pid 1's death takes its whole pid namespace with it.
        let _ = pidfd::send_signal(&self.init_fd, libc::SIGKILL);
    }

    /// S3: EOF means pid 1 runs the guest's own code; text is the error.
    fn child_reported(&mut self, cli: &mut Option<StartReport>) {
        let Some(r) = self.child_report.as_mut() else { return };
        let mut buf = [0u8; 4096];
        match r.read(&mut buf) {
            Ok(n) if n > 0 => {
                self.child_error.extend_from_slice(&buf[..n]);
                return;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return,
            _ => {}
        }
        self.child_report = None;
        if !self.child_error.is_empty() {
            self.failure = Some(String::from_utf8_lossy(&self.child_error).trim().to_string());
            self.kill_init();
        } else if !self.init_has_ended() {
            self.guest_runs(cli);
        }
        // Otherwise pid 1 ended right after its exec: init_ended says so.
    }

    /// pid 1 runs the guest's own code: the run state is written, then the
    /// guest is up, or (systemd) awaits its READY=1.
    fn guest_runs(&mut self, cli: &mut Option<StartReport>) {
        if let Err(e) = self.save_state() {
            self.failure = Some(format!("writing the run state: {e:#}"));
            self.kill_init();
            return;
        }
        if let Some(r) = cli.as_mut() {
            r.state_saved();
        }
        // `vserver start` lets go of the start lock now: windows take it again.
        if let Some(s) = &self.supervisor {
            s.set_start_lock_held(false);
        }
        if self.guest.init.style == InitStyle::Systemd {
            self.phase = Phase::AwaitingReady(Instant::now() + ready_timeout(self.guest));
        } else {
            self.up(cli);
        }
    }

    fn up(&mut self, cli: &mut Option<StartReport>) {
        self.phase = Phase::Up;
        match cli.take() {
            Some(r) => r.ok(),
            // compat: after a reboot nobody else runs the post-start scriptlets.
            None => {
                if let Err(e) = super::scripts::post_start(self.paths, self.guest) {
                    log::warn!("{e:#}");
                }
            }
        }
        // compat: from now on scriptlets write to the monitor's log, not to `start`'s terminal.
        super::scripts::release_caller_terminal();
        release_start_memory();
    }

    fn save_state(&self) -> Result<()> {
        let restrictions = Restrictions::for_guest(self.guest)?;
        let state = RunState {
            name: self.guest.name.clone(),
            xid: self.guest.xid,
            init: ProcessId::of(self.init.as_raw())?,
            monitor: ProcessId::of(std::process::id() as i32)?,
            started_at: now_secs(),
            cgroups: self.cgroup.dirs().to_vec(),
            added_addresses: self.network.added.iter().map(|a| a.to_string()).collect(),
            allow_io_uring: restrictions.seccomp.allow_io_uring,
            allow_ping_sockets: restrictions.seccomp.allow_ping_sockets,
        };
        state.save(self.paths).step("writing the run state")
    }

    /// S2: the console master (and the notify socket of a systemd guest);
    /// then, for a unified guest, the copy-on-write listener.
    fn receive_descriptors(&mut self) {
        let Some(sock) = self.start_socket.as_ref() else { return };
        match fdpass::receive(sock) {
            Ok(Some(fds)) if self.start_messages > 0 => {
                self.start_messages += 1;
                for listener in fds {
                    self.supervise(listener);
                }
            }
            Ok(Some(fds)) => {
                self.start_messages += 1;
                let mut fds = fds.into_iter();
                if let Some(master) = fds.next() {
                    match crate::rootfs::console::hold_slave(&master) {
                        Ok(slave) => {
                            let _ = nix::fcntl::fcntl(master.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
                            self.console = Some(Console { master: File::from(master), _slave: slave });
                        }
                        Err(e) => log::warn!("{e}"),
                    }
                }
                self.notify = fds.next();
            }
            Ok(None) => self.start_socket = None,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
            Err(_) => self.start_socket = None,
        }
    }

    /// A listener of a guest process's copy-on-write filter. One that
    /// cannot be supervised ends the guest: its calls would never be
    /// answered (a guest without a supervisor never installs the filter).
    fn supervise(&mut self, listener: OwnedFd) {
        let added = match self.supervisor.as_mut() {
            Some(s) => s.add_listener(listener).map_err(|e| format!("supervising a copy-on-write listener: {e}")),
            None => Err("a guest process sent a copy-on-write listener, but the guest is not supervised".to_string()),
        };
        if let Err(e) = added {
            self.log.note(&e);
            if self.failure.is_none() {
                self.failure = Some(e);
            }
            self.kill_init();
        }
    }

    /// Joiners (exec, enter) of a unified guest send their listeners to
    /// the control socket.
    fn supervise_joiners(&mut self, control: &mut Control) {
        for listener in control.take_listeners() {
            self.supervise(listener);
        }
    }

    fn answer_notifications(&mut self) {
        let Some(s) = self.supervisor.as_mut() else { return };
        if let Err(e) = s.handle_ready() {
            self.log.note(&format!("copy-on-write supervisor: {e:#}"));
        }
        for m in s.take_messages() {
            self.log.note(&format!("copy-on-write: {m}"));
        }
    }

    fn copy_console(&mut self) {
        let Some(c) = self.console.as_mut() else { return };
        let mut buf = [0u8; 16384];
        // A bounded number of reads per wake-up: a flood cannot starve the rest.
        for _ in 0..8 {
            match c.master.read(&mut buf) {
                Ok(0) => {
                    self.console = None;
                    return;
                }
                Ok(n) => self.log.append(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.console = None;
                    return;
                }
            }
        }
    }

    /// Everything the guest wrote that is still in the pty (non-blocking).
    fn drain_console(&mut self) {
        let mut buf = [0u8; 16384];
        while let Some(c) = self.console.as_mut() {
            match c.master.read(&mut buf) {
                Ok(n) if n > 0 => self.log.append(&buf[..n]),
                _ => break,
            }
        }
    }

    fn notified(&mut self, cli: &mut Option<StartReport>) {
        // Everything queued: a guest may send many datagrams.
        for _ in 0..64 {
            let Some(sock) = self.notify.as_ref() else { return };
            match notify::receive(sock, self.init.as_raw()) {
                Ok(notify::Received::Message(n)) => {
                    if n.ready && matches!(self.phase, Phase::AwaitingReady(_)) && self.failure.is_none() {
                        self.up(cli);
                    }
                }
                Ok(notify::Received::NotFromInit) => {}
                Ok(notify::Received::Nothing) => return,
                Err(e) => {
                    log::warn!("reading {}: {e}", notify::NOTIFY_PATH);
                    self.notify = None;
                    return;
                }
            }
        }
    }

    fn signal(&mut self, sigfd: &SignalFd) {
        while let Ok(Some(info)) = sigfd.read_signal() {
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGTERM || sig == libc::SIGINT {
                self.request_stop();
            }
        }
    }

    /// `vserver stop` (or a SIGTERM from anyone else): the style's halt
    /// request, and a deadline after which pid 1 is killed.
    fn request_stop(&mut self) {
        if self.stop_requested {
            return;
        }
        self.stop_requested = true;
        let left = halt::read_stop_marker(self.paths, &self.guest.name).unwrap_or(halt::DEFAULT_STOP_TIMEOUT);
        if left.is_zero() || self.phase == Phase::Setup {
            self.log.note("stop requested: killing the guest");
            self.kill_init();
            return;
        }
        match halt::halt_request(&self.guest.init) {
            HaltRequest::Init(sig) => {
                self.log.note(&format!("stop requested: signal {sig} to pid 1, {} ms before it is killed", left.as_millis()));
                let _ = pidfd::send_signal(&self.init_fd, sig);
            }
            HaltRequest::TerminateAll => {
                self.log.note(&format!("stop requested: SIGTERM to every process, {} ms before they are killed", left.as_millis()));
                let _ = self.cgroup.signal_all(libc::SIGTERM);
            }
        }
        self.kill_at = Some(Instant::now() + left);
    }

    fn init_has_ended(&self) -> bool {
        let mut fds = [PollFd::new(self.init_fd.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }

    fn init_ended(&mut self) {
        // The last words: console output and a report that came with the end.
        self.drain_console();
        if self.child_report.is_some() {
            let _ = self
                .child_report
                .as_ref()
                .map(|r| nix::fcntl::fcntl(r.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK)));
            if let Some(r) = self.child_report.as_mut() {
                let mut rest = Vec::new();
                let _ = r.read_to_end(&mut rest);
                self.child_error.extend(rest);
            }
            if !self.child_error.is_empty() && self.failure.is_none() {
                self.failure = Some(String::from_utf8_lossy(&self.child_error).trim().to_string());
            }
        }
        let status = loop {
            match waitpid(self.init, None) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other,
            }
        };
        self.ending = Some(self.ending_for(status));
    }

    fn ending_for(&mut self, status: nix::Result<WaitStatus>) -> Ending {
        let what = match status {
            Ok(WaitStatus::Exited(_, code)) => format!("exited with status {code}"),
            Ok(WaitStatus::Signaled(_, sig, _)) => format!("was killed by {sig}"),
            _ => "ended".to_string(),
        };
        self.log.note(&format!("pid 1 {what}"));
        if self.stop_requested {
            return Ending::Halt;
        }
        if self.phase != Phase::Up {
            let why = self.failure.take().map(|f| format!("{f}; pid 1 {what}")).unwrap_or_else(|| format!("pid 1 {what} during start"));
            return Ending::Failed(format!(
                "guest {:?}: {why}. Last lines of its console ({}):\n{}",
                self.guest.name,
                self.log.path().display(),
                self.log.tail(TAIL_LINES)
            ));
        }
        match status {
            Ok(WaitStatus::Signaled(_, Signal::SIGHUP, _)) => Ending::Reboot,
            // The built-in init's exit code when reboot(2) was refused to it.
            Ok(WaitStatus::Exited(_, 129)) if self.guest.init.style == InitStyle::Sysv => Ending::Reboot,
            _ => Ending::Halt,
        }
    }

    /// `handoff`: the monitor ends after this and `vserver stop`, waiting
    /// for that, removes its cgroup2 `supervisor` and `vserver/NAME`.
    fn teardown(mut self, handoff: bool) {
        self.drain_console();
        self.log.note(&format!("guest {} ended", self.guest.name));
        // A start that never got the guest up has no stop scriptlets.
        let was_up = self.phase == Phase::Up;
        undo(self.paths, self.guest, &self.cgroup, &mut self.network, self.seat.take(), was_up, handoff);
    }
}

/// What the control socket needs to put a process into this boot's guest:
/// the cgroups every joiner belongs in (payload, or where a systemd guest's
/// pid 1 put itself on cgroup2), pid 1, the restrictions it runs under.
fn join_target(cgroup: &GuestCgroup, pid: Pid, pidfd: &OwnedFd, restrictions: &Restrictions) -> Result<JoinTarget> {
    let dirs = cgroup.joiner_dirs(pid.as_raw()).step("finding the guest's cgroups for joiners")?;
    let v2_root = cgroup.layout().v2.clone();
    let (v2, v1): (Vec<_>, Vec<_>) = dirs.into_iter().partition(|d| v2_root.as_ref().is_some_and(|r| d.starts_with(r)));
    JoinTarget::new(pid.as_raw(), pidfd, v2.first().map(|p| p.as_path()), &v1, restrictions)
}

fn ready_timeout(guest: &Guest) -> Duration {
    guest.init.ready_timeout.map(Duration::from_secs).unwrap_or(DEFAULT_READY_TIMEOUT)
}

/// Takes a boot apart, in an order that never leaves a guest process
/// unconfined: its processes first (the IP set must hold while any of
/// them lives), then the programs and addresses, then the monitor leaves
/// `supervisor` so that the cgroups can go. With `handoff` it stays in the
/// cgroup2 `supervisor`, whose removal `vserver stop` finishes after our end
/// (leaving it would wait for an RCU grace period, 5-20 ms).
fn undo(
    paths: &Paths,
    guest: &Guest,
    cgroup: &GuestCgroup,
    network: &mut Network,
    seat: Option<SupervisorSeat>,
    stop_scripts: bool,
    handoff: bool,
) {
    if let Err(e) = cgroup.kill_guest() {
        log::warn!("{e}");
    }
    // compat: post-stop with every guest process gone, the network still up.
    if stop_scripts {
        super::scripts::post_stop(paths, guest);
    }
    network.undo();
    let handoff = handoff && seat.is_some();
    if let Some(seat) = seat {
        if let Err(e) = if handoff { seat.leave_v1() } else { seat.leave() } {
            log::warn!("leaving the guest's supervisor cgroup: {e}");
        }
    }
    let removed = if handoff { cgroup.remove_all_but_own_v2() } else { cgroup.remove() };
    if let Err(e) = &removed {
        log::warn!("{e}");
    }
    // With the handoff, `vserver stop` removes the cgroup2 directory the
    // programs are attached to (and detaches them if it cannot).
    network.release_programs(removed.is_err() && !handoff);
    // compat: postpost-stop once everything is undone.
    if stop_scripts {
        super::scripts::postpost_stop(paths, guest);
    }
}

/// The monitor stays for the guest's whole life, once per guest: the heap
/// the start needed (config, filters, cgroup and network set-up) goes back
/// to the kernel instead of staying resident.
fn release_start_memory() {
    crate::sys::misc::malloc_trim();
}

/// The copy-on-write supervisor of a guest that takes part in unification
/// (`apps/vunify/`); an error when the kernel cannot supervise it: a unified
/// guest without it could not upgrade its unified files.
fn copy_on_write_supervisor(paths: &Paths, guest: &Guest, first_boot: bool) -> Result<Option<Supervisor>> {
    if !crate::unify::cow::wanted(paths, &guest.name) {
        return Ok(None);
    }
    let s = Supervisor::new(paths, &guest.name)
        .with_step(|| format!("guest {:?} takes part in unification ({}/apps/vunify)", guest.name, guest.confdir.display()))?;
    // `vserver start` holds the start lock until the run state is written:
    // a window opened meanwhile (an rc script changing a unified file) must
    // not wait for it.
    s.set_start_lock_held(first_boot);
    Ok(Some(s))
}
