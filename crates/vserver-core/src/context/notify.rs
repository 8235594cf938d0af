//! Readiness of a systemd guest, as systemd-nspawn gets it: the guest's pid
//! 1 finds `NOTIFY_SOCKET=/run/host/notify` in its environment and sends
//! `READY=1` there once boot-up is complete (sd_notify(3)). The socket is
//! made inside the guest before it runs and handed to the monitor, which is
//! the only reader. Only datagrams whose kernel-checked sender is the
//! guest's pid 1 count; descriptors a guest sends along are closed unread.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};

use crate::sys;

/// Where the socket is inside the guest (systemd's container interface
/// recommends this path).
pub const NOTIFY_PATH: &str = "/run/host/notify";

/// In the guest's first process, after pivot_root and with this boot's
/// fresh /run: the datagram socket pid 1 will report to.
pub(super) fn bind_in_guest() -> io::Result<OwnedFd> {
    let path = Path::new(NOTIFY_PATH);
    let dir = path.parent().expect("has a parent");
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(io::Error::new(e.kind(), format!("creating {} in the guest: {e}", dir.display())))
        }
        _ => {}
    }
    // A guest whose fstab keeps /run may have a stale socket there.
    let _ = std::fs::remove_file(path);
    let sock = socket::socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)?;
    // Credentials on every datagram, so the sender's pid can be checked.
    socket::setsockopt(&sock, socket::sockopt::PassCred, &true)?;
    socket::bind(sock.as_raw_fd(), &UnixAddr::new(path)?)
        .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("binding {NOTIFY_PATH} in the guest: {e}")))?;
    Ok(sock)
}

/// What a datagram said.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Notification {
    pub ready: bool,
    pub stopping: bool,
}

pub(super) enum Received {
    Nothing,
    /// A datagram whose sender was not `init`: dropped.
    NotFromInit,
    Message(Notification),
}

/// Reads one datagram; `init` is the host pid of the guest's pid 1.
pub(super) fn receive(sock: &OwnedFd, init: i32) -> io::Result<Received> {
    let mut buf = [0u8; 4096];
    let mut space = nix::cmsg_space!(libc::ucred, [RawFd; 16]);
    let msg = match sys::socket::recv_with_fds(sock.as_fd(), &mut buf, &mut space, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC) {
        Ok(m) => m,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => return Ok(Received::Nothing),
        Err(e) => return Err(e),
    };
    // Descriptors a guest sent along: closed unread.
    drop(msg.fds);
    let (len, sender) = (msg.bytes, msg.sender_pid);
    if sender != Some(init) {
        return Ok(Received::NotFromInit);
    }
    Ok(Received::Message(parse(&buf[..len])))
}

/// The lines of an sd_notify message that matter here.
pub(super) fn parse(msg: &[u8]) -> Notification {
    let mut n = Notification::default();
    for line in msg.split(|b| *b == b'\n') {
        match line {
            b"READY=1" => n.ready = true,
            b"STOPPING=1" => n.stopping = true,
            _ => {}
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_and_stopping_lines_are_recognised_and_nothing_else() {
        assert_eq!(parse(b"READY=1\nSTATUS=Startup finished in 1.2s.\n"), Notification { ready: true, stopping: false });
        assert_eq!(parse(b"STOPPING=1"), Notification { ready: false, stopping: true });
        assert_eq!(parse(b"READY=10\nX_READY=1"), Notification::default());
    }
}
