//! Unix sockets: descriptors passed with SCM_RIGHTS, peer credentials, socket pairs.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::check;

/// accept4(2) without the peer's address: the new connection, owned, with
/// `flags` (SOCK_CLOEXEC, SOCK_NONBLOCK).
pub fn accept(listener: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: accept4 with NULL address pointers (the peer's address is not wanted).
    let fd = check(unsafe { libc::accept4(listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), flags) })?;
    // SAFETY: a non-negative return is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The size of the next packet on a SOCK_SEQPACKET or datagram socket (0 at
/// EOF) without taking it: recv(2) with MSG_PEEK | MSG_TRUNC into no buffer.
/// One call: EINTR is the caller's to retry.
pub fn peek_size(sock: BorrowedFd<'_>) -> io::Result<usize> {
    // SAFETY: recv(2) with an empty buffer; MSG_TRUNC makes it return the packet's real size.
    let n = check(unsafe { libc::recv(sock.as_raw_fd(), std::ptr::null_mut(), 0, libc::MSG_PEEK | libc::MSG_TRUNC) })?;
    Ok(n as usize)
}

/// What one recvmsg(2) brought.
#[derive(Debug)]
pub struct Message {
    /// Bytes of data received into the buffer.
    pub bytes: usize,
    /// The flags of the received message (MSG_TRUNC, MSG_CTRUNC).
    pub flags: MsgFlags,
    /// The descriptors of every SCM_RIGHTS message, in order, now ours.
    pub fds: Vec<OwnedFd>,
    /// The sender's pid from SCM_CREDENTIALS (with SO_PASSCRED on).
    pub sender_pid: Option<libc::pid_t>,
}

/// One recvmsg(2) into `buf`, with `control` (from `nix::cmsg_space!`) as
/// the ancillary buffer; descriptors the kernel installed come back owned
/// (pass MSG_CMSG_CLOEXEC in `flags` to have them close-on-exec). One call:
/// EINTR is the caller's to retry. A truncated control part is ENOBUFS.
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8], control: &mut Vec<u8>, flags: MsgFlags) -> io::Result<Message> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(control), flags)?;
    let mut out = Message { bytes: msg.bytes, flags: msg.flags, fds: Vec::new(), sender_pid: None };
    for c in msg.cmsgs()? {
        match c {
            ControlMessageOwned::ScmRights(received) => {
                // SAFETY: the kernel just installed these descriptors for us; nothing else owns them.
                out.fds.extend(received.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
            ControlMessageOwned::ScmCredentials(cred) => out.sender_pid = Some(cred.pid()),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{sendmsg, socketpair, AddressFamily, ControlMessage, SockFlag, SockType};
    use std::io::IoSlice;
    use std::os::fd::{AsFd, RawFd};

    #[test]
    fn a_packet_is_sized_then_received_with_its_descriptor() {
        let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).unwrap();
        let (r, _w) = nix::unistd::pipe().unwrap();
        let fds = [r.as_raw_fd()];
        sendmsg::<()>(a.as_raw_fd(), &[IoSlice::new(b"hello")], &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None).unwrap();
        assert_eq!(peek_size(b.as_fd()).unwrap(), 5);
        let mut buf = [0u8; 5];
        let mut space = nix::cmsg_space!([RawFd; 4]);
        let msg = recv_with_fds(b.as_fd(), &mut buf, &mut space, MsgFlags::MSG_CMSG_CLOEXEC).unwrap();
        assert_eq!((msg.bytes, &buf[..]), (5, &b"hello"[..]));
        assert_eq!(msg.fds.len(), 1);
        assert!(msg.fds[0].as_raw_fd() != r.as_raw_fd());
        drop(a);
        assert_eq!(peek_size(b.as_fd()).unwrap(), 0);
    }

    #[test]
    fn accept_on_a_socket_that_does_not_listen_is_an_error() {
        let (a, _b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).unwrap();
        assert_eq!(accept(a.as_fd(), libc::SOCK_CLOEXEC).unwrap_err().raw_os_error(), Some(libc::EINVAL));
    }
}
