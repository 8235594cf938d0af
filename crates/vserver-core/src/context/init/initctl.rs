//! `/run/initctl`, sysvinit's control FIFO: `telinit`, `shutdown`, `halt`,
//! `reboot` and `init u` (a package's postinst) write fixed-size requests
//! (`struct init_request` of sysvinit's initreq.h, 384 bytes) into it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

pub const FIFO: &str = "/run/initctl";
const MAGIC: i32 = 0x0309_1969;
const REQUEST_SIZE: usize = 384;
const CMD_RUNLVL: i32 = 1;
const CMD_POWERFAIL: i32 = 2;
const CMD_POWERFAILNOW: i32 = 3;
const CMD_POWEROK: i32 = 4;
const CMD_SETENV: i32 = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `telinit N` (also `shutdown`, which runs `init 0` or `init 6`).
    Runlevel(u8),
    /// `telinit -e NAME=VALUE` / `-e NAME`: INIT_* variables for the rc scripts.
    SetEnv(Vec<String>),
    PowerFail,
    PowerFailNow,
    PowerOk,
}

/// The read end of the FIFO, held open read-write so that it never reads EOF.
pub struct Initctl {
    fd: Option<OwnedFd>,
}

impl Initctl {
    /// Creates the FIFO if it is missing and opens it. Without a `/run` the
    /// guest simply has no control channel (sysvinit behaves the same).
    pub fn open() -> Initctl {
        let mut c = Initctl { fd: None };
        c.reopen();
        c
    }

    /// SIGUSR1: a package replaced the FIFO; open whatever is there now.
    pub fn reopen(&mut self) {
        self.fd = None;
        match std::fs::symlink_metadata(FIFO) {
            Ok(m) if m.file_type().is_fifo() => {}
            Ok(_) => return log::warn!("{FIFO} is not a FIFO; no control channel"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Err(e) = nix::unistd::mkfifo(FIFO, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
                    return log::warn!("cannot create {FIFO}: {}", io::Error::from(e));
                }
            }
            Err(e) => return log::warn!("{FIFO}: {e}"),
        }
        // O_NONBLOCK: a FIFO swapped in by guest root between the check and
        // the open can never make pid 1 wait; O_NOFOLLOW: no symlink either.
        // (std adds O_CLOEXEC itself: O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW.)
        let opened = std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW).open(FIFO);
        let fd = match opened {
            Ok(f) => OwnedFd::from(f),
            Err(e) => return log::warn!("cannot open {FIFO}: {e}"),
        };
        match std::fs::File::from(fd.try_clone().expect("dup")).metadata() {
            Ok(m) if m.file_type().is_fifo() && m.nlink() > 0 => self.fd = Some(fd),
            _ => log::warn!("{FIFO} is not a FIFO; no control channel"),
        }
    }

    /// SIGUSR2: sysvinit closes the FIFO and leaves it closed (until SIGUSR1).
    pub fn close_for_good(&mut self) {
        self.fd = None;
    }

    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }

    /// Every complete request waiting in the FIFO; malformed ones are
    /// reported and dropped, as sysvinit does.
    pub fn read_requests(&mut self) -> Vec<Request> {
        let mut out = Vec::new();
        let Some(fd) = &self.fd else { return out };
        loop {
            let mut buf = [0u8; REQUEST_SIZE];
            let n = match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 => n,
                _ => break,
            };
            match parse(&buf[..n]) {
                Some(r) => out.push(r),
                None => log::warn!("got bogus initrequest"),
            }
        }
        out
    }
}

/// One request; None for a short read, a wrong magic number or a command
/// sysvinit does not implement either.
pub fn parse(buf: &[u8]) -> Option<Request> {
    if buf.len() != REQUEST_SIZE {
        return None;
    }
    let int = |at: usize| i32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
    if int(0) != MAGIC {
        return None;
    }
    match int(4) {
        CMD_RUNLVL => u8::try_from(int(8)).ok().map(Request::Runlevel),
        CMD_POWERFAIL => Some(Request::PowerFail),
        CMD_POWERFAILNOW => Some(Request::PowerFailNow),
        CMD_POWEROK => Some(Request::PowerOk),
        CMD_SETENV => Some(Request::SetEnv(env_entries(&buf[16..]))),
        _ => None,
    }
}

/// NUL-terminated entries up to an empty one (or the end of the data).
fn env_entries(data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(end) = rest.iter().position(|b| *b == 0) {
        if end == 0 {
            break;
        }
        out.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        rest = &rest[end + 1..];
    }
    out
}

/// sysvinit's INIT_* variables (at most 16, only names starting with
/// `INIT_`): `NAME=VALUE` sets, a bare `NAME` unsets.
pub fn apply_setenv(vars: &mut Vec<String>, entries: &[String]) {
    const MAX: usize = 16;
    for entry in entries {
        if !entry.starts_with("INIT_") {
            continue;
        }
        let name = entry.split('=').next().unwrap_or_default();
        vars.retain(|v| v.split('=').next() != Some(name));
        if entry.contains('=') && vars.len() < MAX {
            vars.push(entry.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cmd: i32, runlevel: i32, data: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; REQUEST_SIZE];
        b[0..4].copy_from_slice(&MAGIC.to_ne_bytes());
        b[4..8].copy_from_slice(&cmd.to_ne_bytes());
        b[8..12].copy_from_slice(&runlevel.to_ne_bytes());
        b[16..16 + data.len()].copy_from_slice(data);
        b
    }

    #[test]
    fn telinit_requests_parse() {
        assert_eq!(parse(&request(CMD_RUNLVL, b'6' as i32, b"")), Some(Request::Runlevel(b'6')));
        assert_eq!(parse(&request(CMD_POWEROK, 0, b"")), Some(Request::PowerOk));
        assert_eq!(
            parse(&request(CMD_SETENV, 0, b"INIT_HALT=POWEROFF\0OTHER\0\0")),
            Some(Request::SetEnv(vec!["INIT_HALT=POWEROFF".into(), "OTHER".into()]))
        );
    }

    #[test]
    fn bogus_requests_are_dropped() {
        let mut bad = request(CMD_RUNLVL, b'3' as i32, b"");
        bad[0] = 0;
        assert_eq!(parse(&bad), None);
        assert_eq!(parse(&request(CMD_RUNLVL, b'3' as i32, b"")[..100]), None);
        assert_eq!(parse(&request(5, 0, b"")), None, "INIT_CMD_BSD is not implemented by sysvinit either");
    }

    #[test]
    fn only_init_variables_are_kept() {
        let mut vars = Vec::new();
        apply_setenv(&mut vars, &["INIT_HALT=HALT".into(), "PATH=/evil".into()]);
        assert_eq!(vars, vec!["INIT_HALT=HALT"]);
        apply_setenv(&mut vars, &["INIT_HALT=POWEROFF".into()]);
        assert_eq!(vars, vec!["INIT_HALT=POWEROFF"]);
        apply_setenv(&mut vars, &["INIT_HALT".into()]);
        assert!(vars.is_empty());
    }
}
