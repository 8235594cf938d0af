//! Pipes between the host side and a process being set up in the guest: a
//! "go" signal one way, and an error report (or clean EOF) the other. The
//! report pipe is close-on-exec, so EOF without a message means exec worked.

use std::fs::File;
use std::io::{self, Read, Write};

pub struct Channel {
    pub read: File,
    pub write: File,
}

impl Channel {
    pub fn new() -> io::Result<Channel> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok(Channel { read: File::from(r), write: File::from(w) })
    }
}

pub fn send(mut w: &File, msg: &str) {
    let _ = w.write_all(msg.as_bytes());
}

pub fn wait_for_go(r: &mut File) -> io::Result<()> {
    wait_for(r, b'g')
}

/// Reads one byte and checks it is `expected`; EOF means the other side gave up.
pub fn wait_for(r: &mut File, expected: u8) -> io::Result<()> {
    let mut b = [0u8; 1];
    match r.read(&mut b)? {
        1 if b[0] == expected => Ok(()),
        _ => Err(io::Error::other("the other side gave up before the guest could start")),
    }
}
