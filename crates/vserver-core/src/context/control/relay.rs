//! One direction of `vserver exec`'s copying between the admin's side and
//! the guest's: our stdin into a pipe (or the pty master) the guest reads,
//! or a pipe (or the pty master) the guest writes into our stdout/stderr.
//! Guest-facing descriptors are non-blocking (a guest that stops reading
//! never stalls us); ours are left as they are, since other processes share
//! their open file descriptions.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{PollFd, PollFlags};

/// Copies one way between one of our descriptors and the guest's end.
pub(super) struct Relay {
    /// Where we read: our stdin, a pipe from the guest, the pty master.
    from: Option<OwnedFd>,
    /// Where we write: a pipe to the guest, our stdout/stderr, the master.
    to: Option<OwnedFd>,
    buf: Vec<u8>,
    pos: usize,
    /// Reads from the guest side (drained at the end).
    from_guest: bool,
}

impl Relay {
    pub(super) fn new(from: OwnedFd, to: OwnedFd, from_guest: bool) -> Relay {
        Relay { from: Some(from), to: Some(to), buf: Vec::new(), pos: 0, from_guest }
    }

    pub(super) fn done(&self) -> bool {
        self.from.is_none() && self.pos >= self.buf.len()
    }

    pub(super) fn poll_fd(&self) -> Option<PollFd<'_>> {
        if self.pos < self.buf.len() {
            self.to.as_ref().map(|t| PollFd::new(t.as_fd(), PollFlags::POLLOUT))
        } else {
            self.from.as_ref().map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN))
        }
    }

    /// One step after poll said ready.
    pub(super) fn step(&mut self) {
        if self.pos < self.buf.len() {
            self.flush();
            return;
        }
        let Some(from) = &self.from else { return };
        self.buf.resize(64 * 1024, 0);
        self.pos = 0;
        let n = read_fd(from.as_fd(), &mut self.buf);
        self.settle(n);
    }

    fn settle(&mut self, n: io::Result<usize>) {
        match n {
            Ok(0) => self.finish_reading(),
            Ok(n) => {
                self.buf.truncate(n);
                self.flush();
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => self.buf.clear(),
            // EIO: the pty's other side is gone; anything else ends it too.
            Err(_) => self.finish_reading(),
        }
    }

    /// EOF: closing our write end passes it on (the guest's stdin ends).
    fn finish_reading(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.from = None;
        self.to = None;
    }

    /// Writes what is buffered; our own descriptors are blocking, the
    /// guest-facing ones are not (a guest that stops reading never stalls us).
    fn flush(&mut self) {
        let Some(to) = &self.to else {
            self.buf.clear();
            self.pos = 0;
            return;
        };
        while self.pos < self.buf.len() {
            match write_fd(to.as_fd(), &self.buf[self.pos..]) {
                Ok(n) => self.pos += n,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return,
                Err(_) => {
                    // EPIPE and friends: nobody reads any more; stop, so the
                    // writer gets EPIPE in turn.
                    self.buf.clear();
                    self.pos = 0;
                    self.from = None;
                    self.to = None;
                    return;
                }
            }
        }
        self.buf.clear();
        self.pos = 0;
    }

    /// After the command ended: whatever the guest side still has, without
    /// waiting (a non-blocking read of a pty master also flushes the
    /// kernel's pending buffer first, so nothing written before exit is lost).
    pub(super) fn drain(&mut self) {
        if !self.from_guest {
            return;
        }
        while let Some(from) = &self.from {
            if self.pos < self.buf.len() {
                self.flush_blocking();
                continue;
            }
            self.buf.resize(64 * 1024, 0);
            self.pos = 0;
            let n = read_fd(from.as_fd(), &mut self.buf);
            match n {
                Ok(n) if n > 0 => {
                    self.buf.truncate(n);
                    self.flush_blocking();
                }
                _ => self.from = None,
            }
        }
    }

    fn flush_blocking(&mut self) {
        while self.pos < self.buf.len() && self.to.is_some() {
            self.flush();
        }
        self.buf.clear();
        self.pos = 0;
    }
}

fn read_fd(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    Ok(nix::unistd::read(fd.as_raw_fd(), buf)?)
}

fn write_fd(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    Ok(nix::unistd::write(fd, buf)?)
}
