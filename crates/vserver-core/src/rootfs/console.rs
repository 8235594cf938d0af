//! `/dev/console` of a guest: a pty of the guest's own devpts instance,
//! allocated after pivot_root (so the guest's /dev/pts, which no guest code
//! has touched yet). Its slave is bind-mounted on `/dev/console` and becomes
//! pid 1's stdin, stdout and stderr; the master goes to the host-side
//! monitor, which copies what the guest writes into console.log. The guest
//! never holds a host terminal, and the host never opens a path of the
//! guest: the monitor reaches the slave only through the master
//! (TIOCGPTPEER).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use super::mount;
use crate::sys::tty;

pub const CONSOLE: &str = "/dev/console";

/// The two ends of the console pty, as the guest's first process holds them.
pub struct Console {
    /// For the monitor (sent over the start socket, then closed here).
    pub master: OwnedFd,
    /// Opened through /dev/console: pid 1's stdio.
    pub slave: OwnedFd,
}

/// Allocates the pty in the guest's /dev/pts and makes it /dev/console.
/// Runs after pivot_root, in the fresh /dev tmpfs of this boot.
pub fn attach() -> io::Result<Console> {
    let master = open("/dev/pts/ptmx", libc::O_RDWR | libc::O_NOCTTY)?;
    tty::unlock_pty(master.as_fd()).map_err(|e| context("unlocking the console pty", e))?;
    let n = tty::pty_number(master.as_fd()).map_err(|e| context("numbering the console pty", e))?;
    // The bind target: an empty file in this boot's /dev tmpfs.
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(CONSOLE)
            .map_err(|e| context(&format!("opening {CONSOLE} in the guest"), e))?,
    );
    mount(Some(&format!("/dev/pts/{n}")), std::path::Path::new(CONSOLE), None, libc::MS_BIND, None)?;
    let slave = open(CONSOLE, libc::O_RDWR | libc::O_NOCTTY)?;
    Ok(Console { master, slave })
}

/// A guest in a user namespace: its root (host `uid`, its tty group `gid`
/// + 5) must be able to open its own console again.
pub fn give_to(slave: &OwnedFd, uid: u32, gid: u32) -> io::Result<()> {
    nix::unistd::fchown(slave.as_raw_fd(), Some(uid.into()), Some((gid + 5).into()))
        .map_err(|e| context("giving /dev/console to guest root", e.into()))
}

/// Makes `slave` the calling process's stdin, stdout and stderr.
pub fn become_stdio(slave: &OwnedFd) -> io::Result<()> {
    for target in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), target).map_err(|e| context("making /dev/console pid 1's stdio", e.into()))?;
    }
    Ok(())
}

/// The monitor's own descriptor of the slave, taken from the master
/// (TIOCGPTPEER, kernel >= 4.13) without any path lookup: while it is open
/// the pty never hangs up, so reading the master never spins on POLLHUP
/// when the guest closes its console for a moment (systemd does).
pub fn hold_slave(master: &OwnedFd) -> io::Result<OwnedFd> {
    tty::open_peer(master.as_fd(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC)
        .map_err(|e| context("opening the console pty's slave", e))
}

fn open(path: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = CString::new(path).expect("static path");
    crate::sys::file::open(&c, flags).map_err(|e| context(&format!("opening {path} in the guest"), e))
}

fn context(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
