//! The built-in pid 1 of init style `sysv`. It behaves like sysvinit towards
//! the guest's own tools, so Debian's `telinit`, `shutdown`, `halt`,
//! `reboot`, `runlevel`, invoke-rc.d and the postinst of sysvinit-core work:
//!
//! - `/run/initctl` is served with sysvinit's protocol (runlevel changes,
//!   INIT_* variables for the rc scripts); utmp and wtmp get the BOOT_TIME
//!   and RUN_LVL records, so `runlevel` says `N 3`;
//! - runlevel N runs `/etc/init.d/rc N` with RUNLEVEL and PREVLEVEL set;
//!   0 runs `rc 0` (or `cmd.stop`) and stops the guest, 6 runs `rc 6` and
//!   restarts it;
//! - signals as sysvinit treats them: SIGUSR1 re-opens /run/initctl, SIGUSR2
//!   closes it, SIGHUP re-examines (nothing to re-read here), SIGINT
//!   (ctrl-alt-del) reboots, SIGPWR halts unless /var/run/powerstatus says
//!   the power is back (`O`), SIGTERM is ignored;
//! - for `vserver stop` and `restart` (INTERFACES §3, as systemd-nspawn
//!   sends them): SIGRTMIN+3 halts, SIGRTMIN+4 powers off (= halt),
//!   SIGRTMIN+5 reboots;
//! - a guest whose `/sbin/halt` is busybox gets busybox init's meaning of
//!   SIGTERM (reboot), SIGUSR1 (halt) and SIGUSR2 (poweroff), which is what
//!   busybox's `reboot`, `halt` and `poweroff` send.
//!
//! The guest ends with reboot(2), which the kernel answers, for the init of
//! a pid namespace, by killing it with SIGHUP (restart) or SIGINT (halt):
//! the monitor reads that. `halt -f`/`reboot -f` inside do the same directly.

mod identity;
mod initctl;
mod signals;
mod utmp;

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::context::error::{ContextError, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use self::initctl::{Initctl, Request};
use self::signals::{init_signals, unblock_all_signals, SignalFd};
use super::command;
use crate::config::Guest;
use crate::sys::{self, process::exit_now};

/// Exit code of the built-in init when reboot(2) was refused to it (a guest
/// in a user namespace): the monitor restarts the guest.
pub const EXIT_REBOOT: i32 = 129;

/// The environment of pid 1 as the guest sees it in /proc/1/environ.
pub fn init_environment() -> Vec<String> {
    command::guest_environment(&["HOME=/".into(), "TERM=linux".into()])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Reboot,
    Halt,
}

/// What a running command was started for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Goal {
    /// Entering a runlevel (at boot: the start command).
    Level(u8),
    Shutdown(Ending),
}

struct Job {
    pid: Pid,
    goal: Goal,
}

struct Init<'g> {
    guest: &'g Guest,
    signals: SignalFd,
    initctl: Initctl,
    runlevel: u8,
    prevlevel: u8,
    /// INIT_* variables set with `telinit -e` (INIT_HALT from `shutdown -h`).
    init_vars: Vec<String>,
    job: Option<Job>,
    queued: Vec<u8>,
    ending: Option<Ending>,
    /// Closed once the start command has run: `vserver start` returns then.
    report: Option<File>,
}

pub(super) fn run(guest: &Guest, report: File) -> ! {
    // sysvinit's prefix: the lines go to the guest's console.
    crate::logging::set_prefix("INIT");
    let err = match Init::new(guest, report) {
        Ok(mut init) => init.main_loop(),
        Err(e) => e,
    };
    log::error!("{err:#}");
    // Leaving pid 1; the kernel ends the namespace.
    exit_now(1)
}

impl<'g> Init<'g> {
    fn new(guest: &'g Guest, report: File) -> Result<Init<'g>> {
        // Before the first process of the guest can look at us.
        identity::take_init_identity(&init_environment())?;
        let signals = SignalFd::block(&init_signals())?;
        identity::make_undumpable()?;
        Ok(Init {
            guest,
            signals,
            initctl: Initctl::open(),
            runlevel: b'N',
            prevlevel: b'N',
            init_vars: Vec::new(),
            job: None,
            queued: Vec::new(),
            ending: None,
            report: Some(report),
        })
    }

    fn main_loop(&mut self) -> ContextError {
        utmp::record_boot();
        let level = self.guest.init.runlevel.bytes().next().unwrap_or(b'3');
        self.start_job(Goal::Level(level));
        loop {
            let mut fds = vec![PollFd::new(self.signals.fd.as_fd(), PollFlags::POLLIN)];
            if let Some(fd) = self.initctl.fd() {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return ContextError::Step { step: "waiting for signals".into(), cause: Box::new(e.into()) },
                Ok(_) => {}
            }
            let request_ready = fds.get(1).and_then(|f| f.revents()).is_some_and(|r| !r.is_empty());
            drop(fds);
            while let Some(sig) = self.signals.read() {
                self.on_signal(sig);
            }
            if request_ready {
                for request in self.initctl.read_requests() {
                    self.on_request(request);
                }
            }
            self.reap();
            if self.job.is_none() {
                self.next_job();
            }
        }
    }

    fn on_signal(&mut self, sig: libc::c_int) {
        let rt = libc::SIGRTMIN();
        let busybox = matches!(sig, libc::SIGTERM | libc::SIGUSR1 | libc::SIGUSR2) && halt_is_busybox();
        match sig {
            libc::SIGCHLD => {}
            s if s == rt + 3 || s == rt + 4 => self.shutdown(Ending::Halt),
            s if s == rt + 5 => self.shutdown(Ending::Reboot),
            libc::SIGTERM if busybox => self.shutdown(Ending::Reboot),
            libc::SIGUSR1 | libc::SIGUSR2 if busybox => self.shutdown(Ending::Halt),
            libc::SIGUSR1 => self.initctl.reopen(),
            libc::SIGUSR2 => self.initctl.close_for_good(),
            libc::SIGINT => self.shutdown(Ending::Reboot),
            libc::SIGPWR if !power_is_back() => self.shutdown(Ending::Halt),
            // SIGTERM, SIGHUP (nothing to re-read), SIGWINCH (kbrequest).
            _ => {}
        }
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Runlevel(b'0') => self.shutdown(Ending::Halt),
            Request::Runlevel(b'6') => self.shutdown(Ending::Reboot),
            Request::Runlevel(level @ (b'1'..=b'5' | b'7'..=b'9')) => self.queued.push(level),
            Request::Runlevel(b'S' | b's') => {
                log::warn!("single-user mode is not available in a guest (vserver NAME enter gives a root shell)")
            }
            // Q (re-examine inittab), U (re-exec), A-C (ondemand): nothing
            // to do for an init that has no inittab and is not replaced.
            Request::Runlevel(_) => {}
            Request::SetEnv(entries) => initctl::apply_setenv(&mut self.init_vars, &entries),
            Request::PowerFail | Request::PowerFailNow => self.shutdown(Ending::Halt),
            Request::PowerOk => {}
        }
    }

    /// A halt wins over a reboot already under way (`vserver stop` while
    /// the guest reboots); the shutdown command runs once.
    fn shutdown(&mut self, ending: Ending) {
        if let Some(current) = self.ending {
            if ending == Ending::Halt && current == Ending::Reboot {
                self.ending = Some(Ending::Halt);
            }
            return;
        }
        self.ending = Some(ending);
        self.queued.clear();
        // As sysvinit leaves a runlevel: what runs for the old one is told to stop.
        if let Some(job) = &self.job {
            if matches!(job.goal, Goal::Level(_)) {
                // The job's own process group (it called setsid).
                let _ = kill(Pid::from_raw(-job.pid.as_raw()), Signal::SIGTERM);
            }
        }
    }

    fn next_job(&mut self) {
        if let Some(ending) = self.ending {
            self.start_job(Goal::Shutdown(ending));
        } else if !self.queued.is_empty() {
            let level = self.queued.remove(0);
            if level != self.runlevel {
                self.start_job(Goal::Level(level));
            }
        }
    }

    fn start_job(&mut self, goal: Goal) {
        let level = match goal {
            Goal::Level(l) => l,
            // apps/init/runlevel.stop, util-vserver's stop runlevel (default 0).
            Goal::Shutdown(Ending::Halt) => self.guest.init.runlevel_stop.as_deref().and_then(|l| l.bytes().next()).unwrap_or(b'0'),
            Goal::Shutdown(Ending::Reboot) => b'6',
        };
        if self.runlevel != b'N' {
            log::info!("Switching to runlevel: {}", level as char);
        }
        self.prevlevel = self.runlevel;
        self.runlevel = level;
        utmp::record_runlevel(level, self.prevlevel);
        let argv = self.command_for(goal);
        self.job = argv.and_then(|argv| self.spawn(&argv)).map(|pid| Job { pid, goal });
        if self.job.is_none() {
            self.job_done(goal);
        }
    }

    fn command_for(&self, goal: Goal) -> Option<Vec<String>> {
        let init = &self.guest.init;
        let configured = match goal {
            Goal::Level(_) if self.prevlevel == b'N' => init.cmd_start.clone(),
            Goal::Shutdown(_) => init.cmd_stop.clone(),
            Goal::Level(_) => None,
        };
        if let Some(cmd) = configured.filter(|c| !c.is_empty()) {
            return Some(cmd);
        }
        // Decided inside the guest (we are its pid 1, in its root): a
        // Debian rc is an absolute symlink into the guest's own tree.
        Path::new("/etc/init.d/rc").exists().then(|| vec!["/etc/init.d/rc".to_string(), (self.runlevel as char).to_string()])
    }

    fn spawn(&self, argv: &[String]) -> Option<Pid> {
        let mut env = vec![
            "HOME=/".to_string(),
            "TERM=linux".to_string(),
            "INIT_VERSION=vserver-rs".to_string(),
            "CONSOLE=/dev/console".to_string(),
            format!("RUNLEVEL={}", self.runlevel as char),
            format!("PREVLEVEL={}", self.prevlevel as char),
        ];
        env.extend(self.init_vars.iter().cloned());
        // apps/init/environment, as util-vserver gives it to the rc scripts.
        env.extend(self.guest.init.environment.iter().flatten().map(|(n, v)| format!("{n}={v}")));
        let env = command::guest_environment(&env);
        // pid 1 is single-threaded; the child only execs or exits (127).
        let forked = sys::process::fork_child(|| {
            unblock_all_signals();
            // Its own session, as sysvinit does: a runlevel change can
            // stop it with its children.
            let _ = nix::unistd::setsid();
            let err = command::exec(argv, &env);
            log::error!("{err:#}");
            127
        });
        match forked {
            Ok(child) => Some(Pid::from_raw(child)),
            Err(e) => {
                log::error!("cannot fork for {}: {e}", argv[0]);
                None
            }
        }
    }

    /// Reaps every child (orphans of the whole guest come to pid 1).
    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    let finished = self.job.as_ref().filter(|j| Some(j.pid) == status.pid()).map(|j| j.goal);
                    if let Some(goal) = finished {
                        self.job = None;
                        self.job_done(goal);
                    }
                }
            }
        }
    }

    fn job_done(&mut self, goal: Goal) {
        // Closing the report pipe tells `vserver start` the guest is up.
        self.report = None;
        if let Goal::Shutdown(_) = goal {
            let ending = self.ending.unwrap_or(Ending::Halt);
            self.finish(ending)
        }
    }

    /// After the shutdown command: every process of the guest gets SIGTERM,
    /// then SIGKILL after 5 s, then reboot(2) ends the namespace.
    fn finish(&mut self, ending: Ending) -> ! {
        // kill(-1) from a namespace's init reaches every process of the namespace only.
        let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.all_children_gone() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut fds = [PollFd::new(self.signals.fd.as_fd(), PollFlags::POLLIN)];
            let ms = PollTimeout::try_from(left.as_millis().min(1000) as i32).unwrap_or(PollTimeout::MAX);
            let _ = poll(&mut fds, ms);
            while self.signals.read().is_some() {}
        }
        let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
        let cmd = if ending == Ending::Reboot { libc::LINUX_REBOOT_CMD_RESTART } else { libc::LINUX_REBOOT_CMD_POWER_OFF };
        // reboot(2) in a pid namespace only ends this namespace.
        let _ = sys::ns::reboot(cmd);
        // Only reached if reboot(2) was refused (no CAP_SYS_BOOT).
        exit_now(if ending == Ending::Reboot { EXIT_REBOOT } else { 0 })
    }

    fn all_children_gone(&mut self) -> bool {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => return false,
                Ok(_) => continue,
                Err(_) => return true, // ECHILD
            }
        }
    }
}

/// Does the guest's `halt` belong to busybox? Then busybox's signal meanings
/// apply (its halt, reboot and poweroff signal pid 1 instead of writing
/// /run/initctl). Looked up in the guest's own tree, where pid 1 lives.
fn halt_is_busybox() -> bool {
    let Ok(target) = std::fs::canonicalize("/sbin/halt") else { return false };
    if target.file_name().is_some_and(|n| n == "busybox") {
        return true;
    }
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(&target), std::fs::metadata("/bin/busybox")) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// SIGPWR's reason, as sysvinit reads it: `O` means the power is back.
fn power_is_back() -> bool {
    let mut status = None;
    for path in ["/var/run/powerstatus", "/etc/powerstatus"] {
        if let Ok(bytes) = std::fs::read(path) {
            let _ = std::fs::remove_file(path);
            status = bytes.first().copied();
            break;
        }
    }
    status == Some(b'O')
}
