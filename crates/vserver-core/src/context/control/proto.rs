//! The bytes on a guest's control socket (`<rundir>/NAME/control`, AF_UNIX
//! SOCK_SEQPACKET): one JSON message per packet, descriptors beside it as
//! SCM_RIGHTS.
//!
//! ```text
//!   vserver NAME exec ...                      monitor                      joiner (in the guest)
//!   connect, Exec{argv,stdio..} + pipes  --->  clone3 into the guest ---->  setns, limits, stdio,
//!                                                                           confinement, exec
//!   <--- Pty + master (only when a pty is wanted) --------------------------  (sent by the joiner)
//!   Signal{n} (SIGINT/TERM/HUP/QUIT to us) ->  kill(joiner's group, n)
//!   <--- Failed{why} (the joiner could not exec)    <--- report socket ----
//!   <--- Exited{pid,code|signal}               pidfd readable, waitid
//! ```

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::context::error::{ContextError, Result, StepResult};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde::{Deserialize, Serialize};

use crate::sys::socket;

/// Largest message: a request carries the command line.
pub const MAX_MESSAGE: usize = 128 * 1024;

/// How the joiner gets one of stdin, stdout, stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stdio {
    /// The next descriptor passed with the request (always an anonymous pipe).
    Passed,
    /// The slave of the pty the joiner allocates in the guest's devpts.
    Pty,
    /// The guest's own /dev/null.
    Null,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The command; empty with `login` for the guest's login shell.
    pub argv: Vec<String>,
    /// A guest user (name or number, resolved in the guest's /etc/passwd);
    /// none: root.
    pub user: Option<String>,
    /// `enter`: a login shell, started in the user's home directory.
    pub login: bool,
    pub stdio: [Stdio; 3],
    /// rows, columns, x and y pixels of the admin's terminal.
    pub winsize: Option<[u16; 4]>,
    pub term: Option<String>,
}

impl ExecRequest {
    pub fn wants_pty(&self) -> bool {
        self.stdio.contains(&Stdio::Pty)
    }

    pub fn passed_count(&self) -> usize {
        self.stdio.iter().filter(|s| **s == Stdio::Passed).count()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToMonitor {
    Exec(ExecRequest),
    /// Pass this signal on to the command (and its process group).
    Signal(i32),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToClient {
    /// The pty master comes with this message.
    Pty,
    /// The command could not be started; nothing ran in the guest.
    Failed(String),
    /// The command ended: its exit code, or the signal that killed it.
    Exited { pid: i32, code: Option<i32>, signal: Option<i32> },
}

pub fn send<T: Serialize>(sock: BorrowedFd<'_>, msg: &T, fds: &[RawFd]) -> Result<()> {
    let bytes = serde_json::to_vec(msg)?;
    if bytes.len() > MAX_MESSAGE {
        return Err(ContextError::Protocol(format!("the command line is too long (at most {} KiB)", MAX_MESSAGE / 1024)));
    }
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &[IoSlice::new(&bytes)], cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).step("writing to the control socket"),
            Ok(_) => return Ok(()),
        }
    }
}

/// One message and the descriptors that came with it (close-on-exec); None
/// at EOF, Err(EAGAIN) on a non-blocking socket with nothing to read.
pub fn recv<T: for<'de> Deserialize<'de>>(sock: BorrowedFd<'_>, max_fds: usize) -> nix::Result<Option<(T, Vec<OwnedFd>)>> {
    // The packet's size first, so that no large buffer is zeroed per message.
    let size = peek_size(sock)?;
    if size > MAX_MESSAGE {
        return Err(nix::errno::Errno::EMSGSIZE);
    }
    let mut buf = vec![0u8; size.max(1)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let (len, flags, fds) = loop {
        match socket::recv_with_fds(sock, &mut buf, &mut space, MsgFlags::MSG_CMSG_CLOEXEC).map_err(errno) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(msg) => break (msg.bytes, msg.flags, msg.fds),
        }
    };
    if len == 0 && fds.is_empty() {
        return Ok(None);
    }
    if flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC) || fds.len() > max_fds {
        return Err(nix::errno::Errno::EMSGSIZE);
    }
    match serde_json::from_slice(&buf[..len]) {
        Ok(msg) => Ok(Some((msg, fds))),
        Err(_) => Err(nix::errno::Errno::EBADMSG),
    }
}

/// The size of the next packet (0 at EOF), without taking it.
fn peek_size(sock: BorrowedFd<'_>) -> nix::Result<usize> {
    loop {
        match socket::peek_size(sock).map_err(errno) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// The errno of a failed system call, as nix names it.
fn errno(e: std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsFd;

    #[test]
    fn a_request_and_its_descriptors_cross_the_socket() {
        let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).unwrap();
        let (r, _w) = nix::unistd::pipe().unwrap();
        let req = ToMonitor::Exec(ExecRequest {
            argv: vec!["cat".into()],
            user: Some("www-data".into()),
            login: false,
            stdio: [Stdio::Passed, Stdio::Pty, Stdio::Null],
            winsize: Some([24, 80, 0, 0]),
            term: Some("xterm".into()),
        });
        send(a.as_fd(), &req, &[r.as_raw_fd()]).unwrap();
        let (got, fds): (ToMonitor, _) = recv(b.as_fd(), 3).unwrap().unwrap();
        assert_eq!(got, req);
        assert_eq!(fds.len(), 1);
        drop(a);
        assert!(recv::<ToMonitor>(b.as_fd(), 3).unwrap().is_none(), "EOF once the peer is gone");
    }

    #[test]
    fn too_many_descriptors_are_refused() {
        let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        send(a.as_fd(), &ToMonitor::Signal(2), &[r.as_raw_fd(), w.as_raw_fd()]).unwrap();
        assert_eq!(recv::<ToMonitor>(b.as_fd(), 1).err(), Some(nix::errno::Errno::EMSGSIZE));
    }
}
