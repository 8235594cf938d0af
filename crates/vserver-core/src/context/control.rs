//! The guest's control socket, served by its monitor: `<rundir>/NAME/control`
//! (AF_UNIX SOCK_SEQPACKET, mode 0600, root peers only). `vserver NAME
//! exec|enter|suexec` connect to it instead of joining the guest
//! themselves; the monitor forks the joiner (spawn.rs), which is therefore
//! a descendant of the monitor like every guest process, and reports the
//! command's end. The bytes exchanged are in proto.rs.
//!
//! The monitor calls, per boot: [`Control::attach`] once pid 1 runs,
//! [`Control::poll_fds`]/[`Control::dispatch`] in its poll loop, and
//! [`Control::detach`] when pid 1 has ended. Between boots (a reboot) new
//! connections wait in the listen backlog.

pub mod client;
mod proto;
mod relay;
mod spawn;
mod user;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use crate::context::error::{Result, StepResult};
use nix::poll::{PollFd, PollFlags};
use nix::sys::socket::{bind, getsockopt, listen, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
use nix::sys::stat::{umask, Mode};

pub use client::{ExecOptions, Outcome};
pub use spawn::{JoinTarget, EXIT_CANNOT_RUN};

use self::proto::{ExecRequest, ToClient, ToMonitor};
use crate::paths::Paths;
use crate::sys::socket::accept;
use crate::sys::{clone3, pidfd};

/// A command running in the guest for a client.
struct Joiner {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    /// Why it could not exec, or its seccomp listener; None at its end of
    /// file (the exec). Read when the joiner ends, and also while it runs
    /// if `supervised`.
    report: Option<OwnedFd>,
    /// A supervised joiner's listener must be taken before its command
    /// makes a call the filter notifies, so its report is polled; any other
    /// joiner's is read at its end, which spares the monitor a wake-up at
    /// every exec.
    supervised: bool,
    /// Why it could not exec, as reported.
    failure: Option<String>,
    /// None once the client has gone (the command runs on).
    conn: Option<OwnedFd>,
}

pub struct Control {
    listener: OwnedFd,
    path: PathBuf,
    /// Accepted, their request not read yet.
    pending: Vec<OwnedFd>,
    joiners: Vec<Joiner>,
    target: Option<JoinTarget>,
    /// Seccomp listeners of supervised joiners, for the supervisor.
    listeners: Vec<OwnedFd>,
}

impl Control {
    /// Creates the socket; also makes the calling monitor non-dumpable, so
    /// that every joiner is non-dumpable from its first instruction on
    /// (it is visible in the guest's /proc from then).
    pub fn listen(paths: &Paths, name: &str) -> Result<Control> {
        nix::sys::prctl::set_dumpable(false).map_err(std::io::Error::from).step("making the monitor non-dumpable")?;
        let path = client::socket_path(paths, name);
        let _ = std::fs::remove_file(&path);
        let sock = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)
            .step("creating the control socket")?;
        let addr = UnixAddr::new(&path).with_step(|| format!("{}: not a socket path", path.display()))?;
        // Root only from the first moment (the peer check below is the second line).
        let old = umask(Mode::from_bits_truncate(0o177));
        let bound = bind(sock.as_raw_fd(), &addr);
        umask(old);
        bound.with_step(|| format!("binding {}", path.display()))?;
        listen(&sock, Backlog::new(64).unwrap_or(Backlog::MAXCONN)).step("listening on the control socket")?;
        Ok(Control { listener: sock, path, pending: Vec::new(), joiners: Vec::new(), target: None, listeners: Vec::new() })
    }

    /// A boot's pid 1 runs: requests are served from now on.
    pub fn attach(&mut self, target: JoinTarget) {
        self.target = Some(target);
    }

    /// The boot ended: every joiner is gone with the guest's pid namespace;
    /// reap them and tell their clients.
    pub fn detach(&mut self) {
        self.target = None;
        for j in std::mem::take(&mut self.joiners) {
            let _ = pidfd::send_signal(&j.pidfd, libc::SIGKILL);
            let info = loop {
                match clone3::try_wait(&j.pidfd) {
                    Ok(Some(info)) => break Some(info),
                    Ok(None) => {
                        let mut fds = [PollFd::new(j.pidfd.as_fd(), PollFlags::POLLIN)];
                        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE);
                    }
                    Err(_) => break None,
                }
            };
            self.finish(j, info);
        }
    }

    /// Seccomp listeners joiners sent (supervised guests only).
    pub fn take_listeners(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.listeners)
    }

    /// What to poll; `dispatch` takes the events in the same order.
    pub fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds = Vec::new();
        if self.target.is_some() {
            fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
            fds.extend(self.pending.iter().map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN)));
        }
        for j in &self.joiners {
            fds.push(PollFd::new(j.pidfd.as_fd(), PollFlags::POLLIN));
            if let Some(c) = &j.conn {
                fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
            }
            if let Some(r) = j.report.as_ref().filter(|_| j.supervised) {
                fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
            }
        }
        fds
    }

    /// Handles the events of the fds `poll_fds` gave, in that order.
    pub fn dispatch(&mut self, events: &[PollFlags]) {
        let mut ev = events.iter().map(|e| !e.is_empty());
        let mut next = || ev.next().unwrap_or(false);
        let mut accept = false;
        let mut ready_pending = Vec::new();
        if self.target.is_some() {
            accept = next();
            for i in 0..self.pending.len() {
                if next() {
                    ready_pending.push(i);
                }
            }
        }
        let mut ended = Vec::new();
        let mut talking = Vec::new();
        let mut reporting = Vec::new();
        for (i, j) in self.joiners.iter().enumerate() {
            if next() {
                ended.push(i);
            }
            if j.conn.is_some() && next() {
                talking.push(i);
            }
            if j.report.is_some() && j.supervised && next() {
                reporting.push(i);
            }
        }
        for i in reporting {
            self.read_report(i);
        }
        for i in talking {
            self.on_client_message(i);
        }
        for i in ended.into_iter().rev() {
            if let Ok(Some(info)) = clone3::try_wait(&self.joiners[i].pidfd) {
                let j = self.joiners.swap_remove(i);
                self.finish(j, Some(info));
            }
        }
        for i in ready_pending.into_iter().rev() {
            let conn = self.pending.swap_remove(i);
            self.on_request(conn);
        }
        if accept {
            self.accept_all();
        }
    }

    fn accept_all(&mut self) {
        while let Ok(conn) = accept(self.listener.as_fd(), libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) {
            // The socket file is 0600, and the peer must be root as well.
            match getsockopt(&conn, sockopt::PeerCredentials) {
                Ok(cred) if cred.uid() == 0 => self.on_request(conn),
                _ => {}
            }
        }
    }

    /// A connection's first message: the request. Not there yet: wait for it.
    fn on_request(&mut self, conn: OwnedFd) {
        match proto::recv::<ToMonitor>(conn.as_fd(), 3) {
            Err(nix::errno::Errno::EAGAIN) => self.pending.push(conn),
            Ok(Some((ToMonitor::Exec(request), fds))) => self.start(conn, &request, &fds),
            Err(nix::errno::Errno::EMSGSIZE) => {
                let _ = proto::send(conn.as_fd(), &ToClient::Failed("the request is too large".into()), &[]);
            }
            // A signal before any command, EOF, garbage: the client goes.
            _ => {}
        }
    }

    fn start(&mut self, conn: OwnedFd, request: &ExecRequest, fds: &[OwnedFd]) {
        let Some(target) = &self.target else { return };
        match spawn::spawn(target, request, fds, conn.as_fd()) {
            Ok(s) => self.joiners.push(Joiner {
                pid: s.pid,
                pidfd: s.pidfd,
                report: Some(s.report),
                supervised: target.is_supervised(),
                failure: None,
                conn: Some(conn),
            }),
            Err(e) => {
                let _ = proto::send(conn.as_fd(), &ToClient::Failed(format!("{e:#}")), &[]);
                let _ = proto::send(conn.as_fd(), &ToClient::Exited { pid: 0, code: Some(EXIT_CANNOT_RUN), signal: None }, &[]);
            }
        }
        // `fds` (the client's pipe ends) close here: only the joiner keeps them.
    }

    fn on_client_message(&mut self, i: usize) {
        let j = &mut self.joiners[i];
        let Some(conn) = &j.conn else { return };
        match proto::recv::<ToMonitor>(conn.as_fd(), 0) {
            Ok(Some((ToMonitor::Signal(sig), _))) if (1..=64).contains(&sig) => {
                // Its process group (the joiner leads a new session); before
                // the joiner got that far, the joiner alone. Its pid cannot
                // be reused: we have not reaped it.
                if crate::sys::signal::kill(-j.pid, sig).is_err() {
                    let _ = pidfd::send_signal(&j.pidfd, sig);
                }
            }
            Err(nix::errno::Errno::EAGAIN) => {}
            // The client went away: the command keeps running, unwatched.
            Ok(None) | Err(_) => j.conn = None,
            Ok(Some(_)) => {}
        }
    }

    /// One message of a joiner's report: a listener, or why it could not
    /// exec. The end of file comes with the exec (close-on-exec).
    fn read_report(&mut self, i: usize) {
        let j = &mut self.joiners[i];
        let Some(report) = &j.report else { return };
        match proto::recv::<String>(report.as_fd(), 1) {
            Ok(Some((msg, mut fds))) => match fds.pop() {
                Some(fd) if msg == spawn::LISTENER => self.listeners.push(fd),
                _ => j.failure = Some(msg),
            },
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            Ok(None) | Err(_) => j.report = None,
        }
    }

    /// The joiner has ended: its report (why it could not exec, or a
    /// listener), then the exit status, go to the client.
    fn finish(&mut self, mut j: Joiner, info: Option<libc::siginfo_t>) {
        while let Some(report) = &j.report {
            match proto::recv::<String>(report.as_fd(), 1) {
                Ok(Some((msg, mut fds))) => match fds.pop() {
                    Some(fd) if msg == spawn::LISTENER => self.listeners.push(fd),
                    _ => j.failure = Some(msg),
                },
                _ => j.report = None,
            }
        }
        let Some(conn) = j.conn else { return };
        if let Some(why) = j.failure {
            let _ = proto::send(conn.as_fd(), &ToClient::Failed(why), &[]);
        }
        let (code, signal) = info.as_ref().map(clone3::exit_of).unwrap_or((None, Some(libc::SIGKILL)));
        let _ = proto::send(conn.as_fd(), &ToClient::Exited { pid: j.pid, code, signal }, &[]);
    }
}

impl Drop for Control {
    /// The guest has stopped for good: requests that came too late get an
    /// answer saying so (not a reset connection).
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let mut late = std::mem::take(&mut self.pending);
        while let Ok(conn) = accept(self.listener.as_fd(), libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) {
            late.push(conn);
        }
        for conn in late {
            // Read the request first: closing over unread data resets the connection.
            let _ = proto::recv::<ToMonitor>(conn.as_fd(), 3);
            let _ = proto::send(conn.as_fd(), &ToClient::Failed("the guest stopped".into()), &[]);
            let _ = proto::send(conn.as_fd(), &ToClient::Exited { pid: 0, code: Some(EXIT_CANNOT_RUN), signal: None }, &[]);
        }
    }
}
