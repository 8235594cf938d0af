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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::mount;

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
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int we own; TIOCGPTN writes one.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) } != 0 {
        return Err(context("unlocking the console pty", io::Error::last_os_error()));
    }
    let mut n: libc::c_uint = 0;
    // SAFETY: as above.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) } != 0 {
        return Err(context("numbering the console pty", io::Error::last_os_error()));
    }
    // The bind target: an empty file in this boot's /dev tmpfs.
    drop(open_mode(CONSOLE, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600)?);
    mount(Some(&format!("/dev/pts/{n}")), std::path::Path::new(CONSOLE), None, libc::MS_BIND, None)?;
    let slave = open(CONSOLE, libc::O_RDWR | libc::O_NOCTTY)?;
    Ok(Console { master, slave })
}

/// A guest in a user namespace: its root (host `uid`, its tty group `gid`
/// + 5) must be able to open its own console again.
pub fn give_to(slave: &OwnedFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: fchown on a descriptor we own.
    if unsafe { libc::fchown(slave.as_raw_fd(), uid, gid + 5) } != 0 {
        return Err(context("giving /dev/console to guest root", io::Error::last_os_error()));
    }
    Ok(())
}

/// Makes `slave` the calling process's stdin, stdout and stderr.
pub fn become_stdio(slave: &OwnedFd) -> io::Result<()> {
    for target in 0..3 {
        // SAFETY: dup2 of a descriptor we own onto a standard descriptor.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(context("making /dev/console pid 1's stdio", io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// The monitor's own descriptor of the slave, taken from the master
/// (TIOCGPTPEER, kernel >= 4.13) without any path lookup: while it is open
/// the pty never hangs up, so reading the master never spins on POLLHUP
/// when the guest closes its console for a moment (systemd does).
pub fn hold_slave(master: &OwnedFd) -> io::Result<OwnedFd> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER as _, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(context("opening the console pty's slave", io::Error::last_os_error()));
    }
    // SAFETY: a new descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open(path: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    open_mode(path, flags, 0)
}

fn open_mode(path: &str, flags: libc::c_int, mode: libc::c_uint) -> io::Result<OwnedFd> {
    let c = CString::new(path).expect("static path");
    // SAFETY: open(2) with a NUL-terminated path; a non-negative return is ours.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(context(&format!("opening {path} in the guest"), io::Error::last_os_error()));
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn context(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
