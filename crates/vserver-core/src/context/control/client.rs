//! `vserver NAME exec|enter|suexec`: the admin's side. It asks the guest's
//! monitor for a joiner and hands it stdin, stdout and stderr so that the
//! guest never holds a descriptor of a host terminal, file or socket:
//!
//! - a terminal is replaced by a pty of the guest (the joiner allocates it;
//!   its master comes back here and is relayed, raw mode, window size);
//! - an anonymous pipe is passed as it is (it leads nowhere but to us);
//! - /dev/null (or a closed descriptor) becomes the guest's own /dev/null;
//! - anything else (a file, a socket, a named FIFO, a device) is relayed
//!   here through a pipe, byte for byte.
//!
//! SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to us reach the command's process
//! group; the command's exit code is ours (128+N when signal N killed it).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::context::error::{ContextError, Result, StepResult};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};

use super::proto::{self, ExecRequest, Stdio, ToClient, ToMonitor};
use super::relay::Relay;
use crate::context::pty::{self, RawMode};
use crate::context::require_running;
use crate::paths::Paths;

const PIPEFS_MAGIC: i64 = 0x5049_5045;

/// What to run and how.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Empty with `login`: the guest's login shell.
    pub argv: Vec<String>,
    /// A guest user, name or number; none: root.
    pub user: Option<String>,
    /// `enter`: always a pty, a login shell in the user's home.
    pub login: bool,
    /// Killed (SIGKILL) when it runs longer.
    pub timeout: Option<Duration>,
}

/// How it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    /// Nothing ran: joining the guest or starting the command failed.
    NotRun(String),
}

impl Outcome {
    /// The exit code `vserver` passes on (util-vserver's 255 when the
    /// command could not be run).
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Exited(c) => *c,
            Outcome::Signaled(s) => 128 + s,
            Outcome::NotRun(_) => super::spawn::EXIT_CANNOT_RUN,
        }
    }
}

/// The path of a guest's control socket.
pub fn socket_path(paths: &Paths, name: &str) -> std::path::PathBuf {
    paths.guest_rundir(name).join("control")
}

pub fn run(paths: &Paths, name: &str, opts: &ExecOptions) -> Result<Outcome> {
    crate::paths::validate_guest_name(name).map_err(ContextError::BadName)?;
    if !paths.guest_confdir(name).is_dir() {
        return Err(ContextError::NoSuchGuest { name: name.to_string(), confdir: paths.guest_confdir(name) });
    }
    if opts.argv.is_empty() && !opts.login {
        return Err(ContextError::NoCommandFor { name: name.to_string() });
    }
    let conn = connect_to_monitor(paths, name)?;
    let _signals_blocked = SignalMask::block(&FORWARDED_SIGNALS)?;
    let signals = signal_fd(&FORWARDED_SIGNALS)?;
    let mut session = Session::prepare(opts)?;
    let request = session.request(opts);
    let passed: Vec<RawFd> = session.passed.iter().map(|f| f.as_raw_fd()).collect();
    proto::send(conn.as_fd(), &ToMonitor::Exec(request), &passed)?;
    // Our copies of the ends the guest got: EOF and EPIPE must work.
    session.passed.clear();
    session.relay(&conn, &signals, opts.timeout)
}

/// The monitor answers on `<rundir>/NAME/control`; if it does not, the
/// run state says why.
fn connect_to_monitor(paths: &Paths, name: &str) -> Result<OwnedFd> {
    let path = socket_path(paths, name);
    let sock = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).step("creating a socket")?;
    let addr = UnixAddr::new(&path).with_step(|| format!("{}: not a socket path", path.display()))?;
    match connect(sock.as_raw_fd(), &addr) {
        Ok(()) => Ok(sock),
        Err(e) => {
            // Stopped or stale: require_running says so with the details.
            require_running(paths, name)?;
            Err(e).with_step(|| format!("guest {name:?} runs, but its monitor does not answer on {}", path.display()))
        }
    }
}

const FORWARDED_SIGNALS: [Signal; 5] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGWINCH];

/// Runs `f` on our descriptor 0, 1 or 2 (std's handles own them).
fn with_std<R>(fd: RawFd, f: impl FnOnce(BorrowedFd<'_>) -> R) -> R {
    match fd {
        0 => f(io::stdin().as_fd()),
        1 => f(io::stdout().as_fd()),
        2 => f(io::stderr().as_fd()),
        _ => unreachable!("descriptor {fd} is not one of 0-2"),
    }
}

/// One of our descriptors 0-2, as the guest must get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Terminal,
    AnonymousPipe,
    Null,
    /// A file, socket, named FIFO or device: relayed.
    Other,
}

fn classify(fd: RawFd) -> Kind {
    // EBADF for a closed descriptor.
    let Ok(st) = nix::sys::stat::fstat(fd) else {
        return Kind::Null;
    };
    if with_std(fd, pty::is_terminal) {
        return Kind::Terminal;
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFIFO => {
            if with_std(fd, |f| nix::sys::statfs::fstatfs(f)).is_ok_and(|fs| fs.filesystem_type().0 == PIPEFS_MAGIC) {
                Kind::AnonymousPipe
            } else {
                Kind::Other
            }
        }
        libc::S_IFCHR if st.st_rdev == libc::makedev(1, 3) => Kind::Null,
        _ => Kind::Other,
    }
}

/// The descriptors of one exec: what goes to the guest, what we relay.
struct Session {
    stdio: [Stdio; 3],
    kinds: [Kind; 3],
    /// Sent with the request (pipes: ours or the caller's own).
    passed: Vec<OwnedFd>,
    relays: Vec<Relay>,
    raw: Option<RawMode>,
    /// For window size changes.
    master: Option<OwnedFd>,
}

impl Session {
    fn prepare(opts: &ExecOptions) -> Result<Session> {
        let kinds = [classify(0), classify(1), classify(2)];
        let mut s = Session { stdio: [Stdio::Null; 3], kinds, passed: Vec::new(), relays: Vec::new(), raw: None, master: None };
        for (fd, kind) in kinds.into_iter().enumerate() {
            s.stdio[fd] = match (opts.login, kind) {
                (true, _) | (_, Kind::Terminal) => Stdio::Pty,
                (_, Kind::Null) => Stdio::Null,
                (_, Kind::AnonymousPipe) => {
                    s.passed.push(with_std(fd as RawFd, dup)?);
                    Stdio::Passed
                }
                (_, Kind::Other) => {
                    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).step("creating a pipe")?;
                    let ours = with_std(fd as RawFd, dup)?;
                    if fd == 0 {
                        set_nonblocking(&w);
                        s.passed.push(r);
                        s.relays.push(Relay::new(ours, w, false));
                    } else {
                        set_nonblocking(&r);
                        s.passed.push(w);
                        s.relays.push(Relay::new(r, ours, true));
                    }
                    Stdio::Passed
                }
            };
        }
        Ok(s)
    }

    fn request(&self, opts: &ExecOptions) -> ExecRequest {
        let winsize = (0..3).filter(|fd| self.kinds[*fd as usize] == Kind::Terminal).find_map(|fd| with_std(fd, pty::window_size));
        ExecRequest {
            argv: opts.argv.clone(),
            user: opts.user.clone(),
            login: opts.login,
            stdio: self.stdio,
            winsize,
            term: std::env::var("TERM").ok(),
        }
    }

    /// The pty master arrived: relay it to the admin's terminal.
    fn attach_pty(&mut self, master: OwnedFd) -> Result<()> {
        set_nonblocking(&master);
        let input = dup(master.as_fd())?;
        if self.stdio[0] == Stdio::Pty {
            if self.kinds[0] == Kind::Terminal {
                self.raw = RawMode::enter_stdin();
            }
            if self.kinds[0] != Kind::Null {
                self.relays.push(Relay::new(with_std(0, dup)?, input, false));
            }
        }
        // The guest's output goes to the first of our descriptors it replaced.
        let out = [1, 2, 0].into_iter().find(|fd| self.stdio[*fd as usize] == Stdio::Pty && self.kinds[*fd as usize] != Kind::Null);
        self.master = Some(dup(master.as_fd())?);
        match out {
            Some(fd) => self.relays.push(Relay::new(master, with_std(fd, dup)?, true)),
            None => self.relays.push(Relay::new(master, File::open("/dev/null")?.into(), true)),
        }
        Ok(())
    }

    fn relay(&mut self, conn: &OwnedFd, signals: &SignalFd, timeout: Option<Duration>) -> Result<Outcome> {
        let mut deadline = timeout.map(|t| Instant::now() + t);
        let mut failure: Option<String> = None;
        loop {
            let mut fds = vec![PollFd::new(conn.as_fd(), PollFlags::POLLIN), PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            let mut owners = Vec::new();
            for (i, r) in self.relays.iter().enumerate() {
                if let Some(p) = r.poll_fd() {
                    fds.push(p);
                    owners.push(i);
                }
            }
            let wait = match deadline {
                Some(d) => PollTimeout::try_from(d.saturating_duration_since(Instant::now()).as_millis().min(i32::MAX as u128) as i32)
                    .unwrap_or(PollTimeout::MAX),
                None => PollTimeout::NONE,
            };
            match poll(&mut fds, wait) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).step("waiting for the command"),
                Ok(_) => {}
            }
            let ready: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
            drop(fds);
            if deadline.is_some_and(|d| Instant::now() >= d) {
                deadline = None;
                let _ = proto::send(conn.as_fd(), &ToMonitor::Signal(libc::SIGKILL), &[]);
            }
            if ready[1] {
                self.forward_signals(conn, signals);
            }
            for (slot, i) in owners.iter().enumerate() {
                if ready[2 + slot] {
                    self.relays[*i].step();
                }
            }
            self.relays.retain(|r| !r.done());
            if ready[0] {
                match proto::recv::<ToClient>(conn.as_fd(), 1) {
                    Ok(Some((ToClient::Pty, mut fds))) => match fds.pop() {
                        Some(master) => self.attach_pty(master)?,
                        None => return Err(ContextError::Protocol("the guest's terminal did not come with its message".into())),
                    },
                    Ok(Some((ToClient::Failed(why), _))) => failure = Some(why),
                    Ok(Some((ToClient::Exited { code, signal, .. }, _))) => {
                        for r in &mut self.relays {
                            r.drain();
                        }
                        self.raw = None;
                        return Ok(match (failure, code, signal) {
                            (Some(why), _, _) => Outcome::NotRun(why),
                            (None, Some(c), _) => Outcome::Exited(c),
                            (None, None, Some(s)) => Outcome::Signaled(s),
                            (None, None, None) => Outcome::Exited(0),
                        });
                    }
                    Ok(None) => {
                        self.raw = None;
                        return Err(ContextError::StoppedDuringCommand);
                    }
                    Err(nix::errno::Errno::EAGAIN) => {}
                    Err(e) => return Err(e).step("reading from the guest's monitor"),
                }
            }
        }
    }

    fn forward_signals(&mut self, conn: &OwnedFd, signals: &SignalFd) {
        // One whole record per read, until none is left (EAGAIN).
        while let Ok(Some(info)) = signals.read_signal() {
            let sig = info.ssi_signo as libc::c_int;
            if sig == libc::SIGWINCH {
                let size = (0..3).filter(|fd| self.kinds[*fd as usize] == Kind::Terminal).find_map(|fd| with_std(fd, pty::window_size));
                if let (Some(master), Some(size)) = (&self.master, size) {
                    pty::set_window_size(master.as_fd(), size);
                }
            } else {
                let _ = proto::send(conn.as_fd(), &ToMonitor::Signal(sig), &[]);
            }
        }
    }
}

/// fcntl(F_DUPFD_CLOEXEC, 3), as std's `try_clone_to_owned` does it.
fn dup(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    fd.try_clone_to_owned().with_step(|| format!("duplicating descriptor {}", fd.as_raw_fd()))
}

/// Only on our own pipe ends and the pty master: never on the caller's
/// descriptors, whose open file descriptions other processes share.
fn set_nonblocking(fd: &OwnedFd) {
    let _ = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
}

/// The forwarded signals, blocked while the command runs (they arrive on a
/// signalfd), and the previous mask back afterwards.
struct SignalMask(SigSet);

impl SignalMask {
    fn block(signals: &[Signal]) -> Result<SignalMask> {
        let set: SigSet = signals.iter().copied().collect();
        match set.thread_swap_mask(SigmaskHow::SIG_BLOCK) {
            Ok(old) => Ok(SignalMask(old)),
            Err(e) => Err(e).step("blocking signals"),
        }
    }
}

impl Drop for SignalMask {
    fn drop(&mut self) {
        // Restoring the mask saved in `block`.
        let _ = self.0.thread_set_mask();
    }
}

fn signal_fd(signals: &[Signal]) -> Result<SignalFd> {
    let set: SigSet = signals.iter().copied().collect();
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(io::Error::from).step("creating a signalfd")
}
