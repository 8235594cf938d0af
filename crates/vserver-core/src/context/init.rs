//! The built-in pid 1 of init style `sysv`: it runs the start command
//! (`apps/init/cmd.start`, else `/etc/init.d/rc RUNLEVEL`), reaps every
//! orphan, and turns the usual init signals into a shutdown: SIGTERM means
//! reboot (busybox's `reboot` sends it), SIGUSR1, SIGUSR2 and SIGPWR mean
//! halt, and so do the monitor's requests (SIGRTMIN+3 halt, SIGRTMIN+5
//! reboot; see halt.rs). It ends with reboot(2), which the kernel answers, for the init of a
//! pid namespace, by killing it with SIGHUP (restart) or SIGINT (halt): the
//! monitor reads that.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::SigSet;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::setup::exec_clean;
use crate::config::Guest;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    Reboot,
    Halt,
}

pub(super) fn run(guest: &Guest, report: File) -> ! {
    let signals = init_signals();
    extern "C" fn noop(_: libc::c_int) {}
    for sig in signals.numbers() {
        // A handler makes the kernel deliver these to a namespace's init at all.
        // SAFETY: installing a handler that does nothing.
        unsafe { libc::signal(sig, noop as extern "C" fn(libc::c_int) as libc::sighandler_t) };
    }
    signals.block();

    let mut pending = None;
    if let Some(argv) = start_command(guest) {
        pending = run_to_end(&argv, &signals);
    }
    // Closing the report pipe tells `vserver start` the guest is up.
    drop(report);
    let how = pending.unwrap_or_else(|| wait_for_shutdown(&signals));
    shutdown(guest, how, &signals)
}

/// The signals pid 1 waits for; realtime ones included, which nix's
/// SigSet cannot name: the monitor's halt and reboot requests (halt.rs).
struct Signals(Vec<libc::c_int>, libc::sigset_t);

impl Signals {
    fn numbers(&self) -> impl Iterator<Item = libc::c_int> + '_ {
        self.0.iter().copied()
    }

    fn block(&self) {
        // SAFETY: sigprocmask with a set we own.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, &self.1, std::ptr::null_mut()) };
    }

    fn wait(&self) -> Result<libc::c_int, ()> {
        let mut sig = 0;
        // SAFETY: sigwait with a set we own and an int to fill.
        if unsafe { libc::sigwait(&self.1, &mut sig) } == 0 {
            Ok(sig)
        } else {
            Err(())
        }
    }
}

fn init_signals() -> Signals {
    let numbers = vec![
        libc::SIGCHLD,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGPWR,
        libc::SIGINT,
        super::halt::halt_signal(),
        super::halt::reboot_signal(),
    ];
    // SAFETY: an empty sigset_t filled by sigemptyset/sigaddset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe { libc::sigemptyset(&mut set) };
    for n in &numbers {
        // SAFETY: as above.
        unsafe { libc::sigaddset(&mut set, *n) };
    }
    Signals(numbers, set)
}

/// What a signal asks of pid 1 (None: SIGCHLD, reap).
fn request(sig: libc::c_int) -> Option<Shutdown> {
    match sig {
        libc::SIGCHLD => None,
        libc::SIGTERM => Some(Shutdown::Reboot),
        s if s == super::halt::reboot_signal() => Some(Shutdown::Reboot),
        _ => Some(Shutdown::Halt),
    }
}

fn start_command(guest: &Guest) -> Option<Vec<String>> {
    if let Some(cmd) = guest.init.cmd_start.clone().filter(|c| !c.is_empty()) {
        return Some(cmd);
    }
    Path::new("/etc/init.d/rc").exists().then(|| vec!["/etc/init.d/rc".to_string(), guest.init.runlevel.clone()])
}

fn stop_command(guest: &Guest, how: Shutdown) -> Option<Vec<String>> {
    if let Some(cmd) = guest.init.cmd_stop.clone().filter(|c| !c.is_empty()) {
        return Some(cmd);
    }
    let level = if how == Shutdown::Reboot { "6" } else { "0" };
    Path::new("/etc/init.d/rc").exists().then(|| vec!["/etc/init.d/rc".to_string(), level.to_string()])
}

fn spawn(argv: &[String]) -> Option<Pid> {
    // SAFETY: pid 1 is single-threaded; the child only execs or exits.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let _ = SigSet::all().thread_unblock();
            let err = exec_clean(argv, None);
            eprintln!("init: {err:#}");
            // SAFETY: leaving the forked child without running destructors.
            unsafe { libc::_exit(127) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => Some(child),
        Err(e) => {
            eprintln!("init: cannot fork for {}: {e}", argv[0]);
            None
        }
    }
}

/// Runs a command to its end while reaping orphans; a shutdown signal that
/// arrives meanwhile is returned for later.
fn run_to_end(argv: &[String], signals: &Signals) -> Option<Shutdown> {
    let child = spawn(argv)?;
    let mut pending = None;
    loop {
        if reap_all().contains(&child) {
            return pending;
        }
        if let Ok(sig) = signals.wait() {
            pending = pending.or(request(sig));
        }
    }
}

fn wait_for_shutdown(signals: &Signals) -> Shutdown {
    loop {
        match signals.wait().ok().and_then(request) {
            Some(how) => return how,
            None => {
                reap_all();
            }
        }
    }
}

fn reap_all() -> Vec<Pid> {
    let mut reaped = Vec::new();
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        match status {
            WaitStatus::StillAlive => break,
            s => reaped.extend(s.pid()),
        }
    }
    reaped
}

fn shutdown(guest: &Guest, how: Shutdown, signals: &Signals) -> ! {
    if let Some(argv) = stop_command(guest, how) {
        run_to_end(&argv, signals);
    }
    // SAFETY: kill(-1) from a namespace's init reaches every process of the namespace only.
    unsafe { libc::kill(-1, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        reap_all();
        if waitpid(None, Some(WaitPidFlag::WNOHANG)).is_err() {
            break; // ECHILD: nothing is left
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: as above.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    let cmd = if how == Shutdown::Reboot { libc::LINUX_REBOOT_CMD_RESTART } else { libc::LINUX_REBOOT_CMD_POWER_OFF };
    // SAFETY: reboot(2) in a pid namespace only ends this namespace.
    unsafe { libc::reboot(cmd) };
    // SAFETY: only reached if reboot(2) was refused (no CAP_SYS_BOOT).
    unsafe { libc::_exit(if how == Shutdown::Reboot { 129 } else { 0 }) }
}
