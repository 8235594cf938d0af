//! `vserver NAME enter`: a login shell on a pty allocated inside the guest's
//! own devpts, relayed to the user's terminal by the host-side process. The
//! guest never gets a descriptor of the host's terminal, so it cannot inject
//! input into it (TIOCSTI) or read what the host types afterwards.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType};
use nix::sys::termios::{self, SetArg, Termios};
use nix::unistd::{fork, ForkResult};

use super::enter::{wait_child, Join};
use super::setup::exec_clean;

static WINCH: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    WINCH.store(true, Ordering::Relaxed);
}

pub(super) fn enter(join: &Join, name: &str) -> Result<i32> {
    let (host_end, guest_end) =
        socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC).context("creating a socket pair")?;
    join.join_pid_namespace()?;
    // SAFETY: single-threaded; the child sets itself up inside the guest.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(host_end);
            let err = guest_side(join, guest_end).err().unwrap_or_else(|| anyhow::anyhow!("unreachable"));
            eprintln!("vserver {name}: {err:#}");
            // SAFETY: leaving the forked child without unwinding.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            drop(guest_end);
            let master = receive_fd(&host_end).with_context(|| format!("no terminal came back from guest {name:?}"))?;
            let code = relay(&master, &host_end);
            let _ = wait_child(child, None);
            code
        }
    }
}

/// Inside the guest: allocate the pty, start the shell on it, hand the
/// master to the host side, then report the shell's exit code.
fn guest_side(join: &Join, sock: OwnedFd) -> Result<()> {
    join.become_guest_process()?;
    let master = nix::pty::posix_openpt(nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY).context("opening /dev/ptmx in the guest")?;
    nix::pty::grantpt(&master)?;
    nix::pty::unlockpt(&master)?;
    let slave_name = nix::pty::ptsname_r(&master)?;
    join.restrict()?;
    let shell = if Path::new("/bin/bash").exists() { "/bin/bash" } else { "/bin/sh" };
    let term = std::env::var("TERM").unwrap_or_else(|_| "linux".into());
    // SAFETY: single-threaded child; the grandchild execs the shell.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let err = start_shell(&slave_name, shell, &term);
            eprintln!("vserver: {err:#}");
            // SAFETY: leaving the forked child without unwinding.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            send_fd(&sock, master.as_raw_fd())?;
            drop(master);
            let code = wait_child(child, None)?;
            (&File::from(sock)).write_all(&code.to_le_bytes())?;
            // SAFETY: done; leave without unwinding.
            unsafe { libc::_exit(0) }
        }
    }
}

use std::fs::File;

fn start_shell(slave_name: &str, shell: &str, term: &str) -> anyhow::Error {
    if let Err(e) = nix::unistd::setsid() {
        return e.into();
    }
    let slave = match std::fs::OpenOptions::new().read(true).write(true).open(slave_name) {
        Ok(f) => f,
        Err(e) => return anyhow::anyhow!("opening {slave_name}: {e}"),
    };
    // SAFETY: making the pty our controlling terminal and our stdio.
    unsafe {
        libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0);
        for fd in 0..3 {
            libc::dup2(slave.as_raw_fd(), fd);
        }
    }
    exec_clean(&[shell.to_string(), "-l".to_string()], Some(term))
}

fn send_fd(sock: &OwnedFd, fd: RawFd) -> Result<()> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock.as_raw_fd(), &[IoSlice::new(b"t")], &cmsg, MsgFlags::empty(), None).context("passing the terminal")?;
    Ok(())
}

fn receive_fd(sock: &OwnedFd) -> Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just gave us this descriptor.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    bail!("the guest side ended before it had a terminal")
}

/// Copies between our terminal and the pty until the shell ends; returns the
/// shell's exit code.
fn relay(master: &OwnedFd, sock: &OwnedFd) -> Result<i32> {
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut raw: Termios = t.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw);
    }
    // SAFETY: installing a handler that only sets an atomic flag.
    unsafe { libc::signal(libc::SIGWINCH, on_winch as extern "C" fn(libc::c_int) as libc::sighandler_t) };
    copy_winsize(master);
    let result = pump(master);
    if let Some(t) = &saved {
        let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, t);
    }
    result?;
    let mut code = [0u8; 4];
    let mut s = File::from(sock.try_clone()?);
    Ok(if s.read_exact(&mut code).is_ok() { i32::from_le_bytes(code) } else { 1 })
}

fn pump(master: &OwnedFd) -> Result<()> {
    let mut m = File::from(master.try_clone()?);
    let mut out = std::io::stdout();
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    loop {
        if WINCH.swap(false, Ordering::Relaxed) {
            copy_winsize(master);
        }
        let stdin = std::io::stdin();
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let ready = |i: usize| fds.get(i).and_then(|f| f.revents()).unwrap_or(PollFlags::empty());
        let (from_guest, from_user) = (ready(0), ready(1));
        drop(fds);
        if !from_guest.is_empty() {
            match m.read(&mut buf) {
                Ok(0) | Err(_) => return Ok(()), // EIO: the shell and its children closed the pty
                Ok(n) => {
                    out.write_all(&buf[..n])?;
                    out.flush()?;
                }
            }
        }
        if !from_user.is_empty() {
            match std::io::stdin().lock().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => m.write_all(&buf[..n])?,
            }
        }
    }
}

fn copy_winsize(master: &OwnedFd) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a winsize struct we own.
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}
