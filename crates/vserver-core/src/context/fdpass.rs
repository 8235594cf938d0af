//! Descriptors passed between the guest's first process and the monitor
//! over a unix socket pair (SCM_RIGHTS): the console pty's master and the
//! readiness socket go to the monitor, so no guest process keeps them.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType};

use crate::sys::socket;

/// Most descriptors one message carries.
const MAX_FDS: usize = 4;

/// A connected pair (SOCK_SEQPACKET: one send is one receive).
pub(super) fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?)
}

pub(super) fn send(sock: &OwnedFd, fds: &[RawFd]) -> io::Result<()> {
    let cmsg = [ControlMessage::ScmRights(fds)];
    sendmsg::<()>(sock.as_raw_fd(), &[IoSlice::new(b"f")], &cmsg, MsgFlags::empty(), None)?;
    Ok(())
}

/// The descriptors of one message; None at EOF (the other side closed).
pub(super) fn receive(sock: &OwnedFd) -> io::Result<Option<Vec<OwnedFd>>> {
    let mut byte = [0u8; 1];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let msg = socket::recv_with_fds(sock.as_fd(), &mut byte, &mut space, MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT)?;
    if msg.bytes == 0 && msg.fds.is_empty() {
        return Ok(None);
    }
    Ok(Some(msg.fds))
}
