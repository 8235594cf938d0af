//! vkill: signals to a guest's processes, named by their pid inside the
//! guest. A guest pid is found through each candidate's `NSpid` line in
//! `/proc/PID/status` (host pid first, guest pid last) and its pid
//! namespace, which must be the one of the guest's init; the signal goes
//! through a pidfd opened on the host pid and checked again after opening,
//! so a process that exits meanwhile is never confused with a new one.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;

use crate::procfs;
use crate::runstate::RunState;
use crate::stat::owner::{ContextMap, Owner};
use crate::sys::pidfd;

/// A signal number from `15`, `TERM`, `SIGTERM` or `term` (util-vserver
/// takes the first three), `RTMIN+3` too.
pub fn parse_signal(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        return if (0..=libc::SIGRTMAX()).contains(&n) { Ok(n) } else { Err(format!("{s}: no such signal")) };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off: i32 =
            if rest.is_empty() { 0 } else { rest.strip_prefix('+').and_then(|n| n.parse().ok()).ok_or(format!("{s}: no such signal"))? };
        let n = libc::SIGRTMIN() + off;
        return if n <= libc::SIGRTMAX() { Ok(n) } else { Err(format!("{s}: no such signal")) };
    }
    format!("SIG{name}").parse::<nix::sys::signal::Signal>().map(|sig| sig as i32).map_err(|_| format!("{s}: no such signal"))
}

/// One of the guest's processes.
#[derive(Debug)]
pub struct GuestProcess {
    pub host_pid: i32,
    pub guest_pid: i32,
    pidfd: OwnedFd,
}

impl GuestProcess {
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        pidfd::send_signal(&self.pidfd, signal)
    }
}

/// The guest's pid namespace, as (device, inode) of its init's ns/pid.
fn pid_namespace(pid: i32) -> io::Result<(u64, u64)> {
    let m = fs::metadata(format!("/proc/{pid}/ns/pid"))?;
    Ok((m.dev(), m.ino()))
}

/// `NSpid:` of /proc/PID/status: the pid in each namespace, host first.
fn ns_pids(pid: i32) -> Option<Vec<i32>> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().map(|p| p.parse().ok()).collect()
}

/// Every process of the guest (not its monitor), with its guest pid.
pub fn guest_processes(state: &RunState) -> io::Result<Vec<GuestProcess>> {
    if !state.init.is_alive() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("guest {:?} has stopped", state.name)));
    }
    let ns = pid_namespace(state.init.pid)?;
    let map = ContextMap::from_states(std::slice::from_ref(state));
    let mine = |pid: i32| matches!(map.owner_of(pid), Some(Owner::Guest { ref name, .. }) if *name == state.name);
    let mut out = Vec::new();
    for pid in procfs::all_pids()? {
        if !mine(pid) || pid_namespace(pid).ok() != Some(ns) {
            continue;
        }
        let Some(guest_pid) = ns_pids(pid).and_then(|v| v.last().copied()) else { continue };
        let Ok(fd) = pidfd::open(pid) else { continue };
        // Checked again through the open pidfd's pid: still the same process.
        if ns_pids(pid).and_then(|v| v.last().copied()) != Some(guest_pid) || !mine(pid) {
            continue;
        }
        out.push(GuestProcess { host_pid: pid, guest_pid, pidfd: fd });
    }
    if !state.init.is_alive() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("guest {:?} stopped meanwhile", state.name)));
    }
    out.sort_by_key(|p| p.guest_pid);
    Ok(out)
}

/// The process with pid `guest_pid` inside the guest.
pub fn find_guest_pid(state: &RunState, guest_pid: i32) -> io::Result<GuestProcess> {
    guest_processes(state)?
        .into_iter()
        .find(|p| p.guest_pid == guest_pid)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("guest {:?} has no process {guest_pid}", state.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_and_numbers() {
        assert_eq!(parse_signal("9"), Ok(9));
        assert_eq!(parse_signal("0"), Ok(0));
        assert_eq!(parse_signal("TERM"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("SIGHUP"), Ok(libc::SIGHUP));
        assert_eq!(parse_signal("kill"), Ok(libc::SIGKILL));
        assert_eq!(parse_signal("RTMIN+3"), Ok(libc::SIGRTMIN() + 3));
        assert!(parse_signal("x").is_err());
        assert!(parse_signal("1 0").is_err());
        assert!(parse_signal("999").is_err());
    }

    #[test]
    fn own_ns_pids() {
        let me = std::process::id() as i32;
        assert_eq!(ns_pids(me).unwrap().first(), Some(&me));
    }
}
