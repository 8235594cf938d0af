//! vuname: a running guest's uts names, read or changed from the host by
//! joining the guest's uts namespace (setns through a pidfd of its init) in
//! a thread of our own: the namespace is per thread, so the rest of the
//! process keeps the host's names, and the thread ends afterwards.
//!
//! util-vserver's seven tags: `context` (the guest's configuration
//! directory, which util-vserver sets at start and its scripts compare),
//! `sysname`, `nodename`, `release`, `version`, `machine`, `domainname`.
//! Only nodename and domainname belong to the uts namespace on a stock
//! kernel; the others are the kernel's own (machine follows the guest's
//! personality) and are refused by name when asked to change.

use std::io;
use std::path::Path;

use crate::runstate::RunState;
use crate::sys::pidfd;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Context,
    Sysname,
    Nodename,
    Release,
    Version,
    Machine,
    Domainname,
}

pub const ALL: [Tag; 7] = [Tag::Context, Tag::Sysname, Tag::Nodename, Tag::Release, Tag::Version, Tag::Machine, Tag::Domainname];

impl Tag {
    pub fn name(self) -> &'static str {
        match self {
            Tag::Context => "context",
            Tag::Sysname => "sysname",
            Tag::Nodename => "nodename",
            Tag::Release => "release",
            Tag::Version => "version",
            Tag::Machine => "machine",
            Tag::Domainname => "domainname",
        }
    }

    /// Case-insensitive, as util-vserver's strncasecmp.
    pub fn parse(s: &str) -> Result<Tag, String> {
        ALL.into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("tag {s:?} not recognized (context, sysname, nodename, release, version, machine, domainname)"))
    }

    /// Why a tag cannot be changed here, or `None` when it can.
    pub fn why_fixed(self) -> Option<&'static str> {
        match self {
            Tag::Nodename | Tag::Domainname => None,
            Tag::Context => Some("it is the guest's configuration directory, not a kernel value"),
            Tag::Machine => Some("it follows the guest's personality (personality linux32 gives i686)"),
            _ => Some("a stock kernel shows its own value in every uts namespace"),
        }
    }
}

/// All seven values of a running guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtsNames {
    values: [String; 7],
}

impl UtsNames {
    pub fn get(&self, tag: Tag) -> &str {
        &self.values[ALL.iter().position(|t| *t == tag).expect("in ALL")]
    }
}

const PER_LINUX32: u64 = 0x0008;

/// Reads the guest's names. `confdir` is its configuration directory (the
/// `context` tag).
pub fn read(state: &RunState, confdir: &Path) -> io::Result<UtsNames> {
    let uts = in_guest_uts(state, || nix::sys::utsname::uname().map_err(io::Error::from))?;
    let s = |v: &std::ffi::OsStr| v.to_string_lossy().into_owned();
    let mut machine = s(uts.machine());
    if guest_personality(state)? & 0xff == PER_LINUX32 && machine == "x86_64" {
        machine = "i686".into();
    }
    Ok(UtsNames {
        values: [
            confdir.display().to_string(),
            s(uts.sysname()),
            s(uts.nodename()),
            s(uts.release()),
            s(uts.version()),
            machine,
            s(uts.domainname()),
        ],
    })
}

/// Sets names in the guest's uts namespace; every value is checked first,
/// so either all are set or none.
pub fn set(state: &RunState, changes: &[(Tag, String)]) -> io::Result<()> {
    for (tag, value) in changes {
        if let Some(why) = tag.why_fixed() {
            return Err(io::Error::new(io::ErrorKind::Unsupported, format!("{} cannot be changed: {why}", tag.name())));
        }
        check_value(*tag, value).map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
    }
    let changes = changes.to_vec();
    in_guest_uts(state, move || {
        for (tag, value) in &changes {
            match tag {
                Tag::Nodename => nix::unistd::sethostname(value)?,
                Tag::Domainname => set_domainname(value)?,
                _ => unreachable!("checked above"),
            }
        }
        Ok(())
    })
}

/// The kernel takes up to 64 bytes; a value with a NUL or newline would
/// break every tool that prints it.
pub fn check_value(tag: Tag, value: &str) -> Result<(), String> {
    if value.len() > 64 {
        return Err(format!("{}: {value:?} is longer than 64 bytes", tag.name()));
    }
    if value.bytes().any(|b| b == 0 || b == b'\n') {
        return Err(format!("{}: {value:?} holds a NUL or newline", tag.name()));
    }
    Ok(())
}

fn set_domainname(value: &str) -> io::Result<()> {
    let c = std::ffi::CString::new(value).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    crate::sys::ns::set_domainname(&c)
}

/// The personality of the guest's init (`/proc/PID/personality`, hex).
fn guest_personality(state: &RunState) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{}/personality", state.init.pid))?;
    u64::from_str_radix(text.trim(), 16).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Runs `f` in a new thread that has joined the uts namespace of the
/// guest's init.
fn in_guest_uts<T: Send + 'static>(state: &RunState, f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    let fd = pidfd::open(state.init.pid)?;
    // The pidfd was opened before this check: it is the recorded init.
    if !state.init.is_alive() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("guest {:?} has stopped", state.name)));
    }
    std::thread::spawn(move || {
        pidfd::setns(&fd, libc::CLONE_NEWUTS)?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("the uts thread panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_parse_case_insensitively_and_only_two_change() {
        assert_eq!(Tag::parse("NodeName"), Ok(Tag::Nodename));
        assert!(Tag::parse("hostname").is_err());
        let settable: Vec<Tag> = ALL.into_iter().filter(|t| t.why_fixed().is_none()).collect();
        assert_eq!(settable, [Tag::Nodename, Tag::Domainname]);
        assert!(check_value(Tag::Nodename, &"x".repeat(65)).is_err());
        assert!(check_value(Tag::Nodename, "a\nb").is_err());
        assert!(check_value(Tag::Nodename, "web1.example.org").is_ok());
    }
}
