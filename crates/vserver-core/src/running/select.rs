//! `XID|NAME` as util-vserver's tools take it (`vc_xidopt2xid`): a number
//! is a context id, `:NAME` or any other word a guest name.

use std::fmt;

use crate::config;
use crate::paths::{validate_guest_name, Paths};
use crate::runstate::{self, RunState, Status};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Xid(u32),
    Name(String),
}

impl Selector {
    pub fn parse(s: &str) -> Result<Selector, String> {
        if let Some(name) = s.strip_prefix(':') {
            return Self::name(name);
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(Selector::Xid).map_err(|_| format!("{s:?} is not a context id"));
        }
        if s == "self" {
            return Err("\"self\" would be the host context here; name a guest (XID or NAME)".into());
        }
        Self::name(s)
    }

    fn name(s: &str) -> Result<Selector, String> {
        validate_guest_name(s)?;
        Ok(Selector::Name(s.to_string()))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Xid(x) => write!(f, "context {x}"),
            Selector::Name(n) => write!(f, "guest {n:?}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("no guest named {0:?} (no configuration directory {1})")]
    Unknown(String, String),
    #[error("guest {0:?} is not running")]
    NotRunning(String),
    #[error("guest {0:?} is not running: its run state is stale (monitor or init gone); `vserver {0} stop` cleans it up")]
    Stale(String),
    #[error("no running guest has context {0}{1}")]
    NoSuchXid(u32, String),
    #[error("reading the run state: {0}")]
    Io(#[from] std::io::Error),
}

impl SelectError {
    /// The guest exists but does not run (as opposed to an unknown name or
    /// a failure to look): vwait reports this as util-vserver's ERROR.
    pub fn is_not_running(&self) -> bool {
        matches!(self, SelectError::NotRunning(_) | SelectError::Stale(_) | SelectError::NoSuchXid(..))
    }
}

/// The run state of the running guest `sel` names.
pub fn find_running(paths: &Paths, sel: &Selector) -> Result<RunState, SelectError> {
    match sel {
        Selector::Name(name) => match runstate::status(paths, name)? {
            Status::Running(s) => Ok(s),
            Status::Stale(_) => Err(SelectError::Stale(name.clone())),
            Status::Stopped if paths.guest_confdir(name).is_dir() => Err(SelectError::NotRunning(name.clone())),
            Status::Stopped => Err(SelectError::Unknown(name.clone(), paths.guest_confdir(name).display().to_string())),
        },
        Selector::Xid(xid) => {
            if let Some(s) = runstate::running_guest_with_xid(paths, *xid)? {
                return Ok(s);
            }
            Err(SelectError::NoSuchXid(*xid, configured_as(paths, *xid)))
        }
    }
}

/// ` (guest "web1" has it and is stopped)` when a configured guest has the xid.
fn configured_as(paths: &Paths, xid: u32) -> String {
    let names = config::list_guests(paths).unwrap_or_default();
    names
        .into_iter()
        .find(|n| config::load_guest(paths, n).is_ok_and(|g| g.xid == xid))
        .map(|n| format!(" (guest {n:?} has it and is stopped)"))
        .unwrap_or_default()
}

/// util-vserver's guest filters (vsomething's `--all`, `--running`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All,
    Running,
    Stopped,
    Marked,
    Unmarked,
    Mark(String),
}

/// The configured guests any of `filters` selects, by name.
pub fn guests_matching(paths: &Paths, filters: &[Filter]) -> Result<Vec<String>, crate::ConfigError> {
    let mut out = Vec::new();
    for name in config::list_guests(paths)? {
        let running = runstate::is_running(paths, &name);
        let mark = || config::load_guest(paths, &name).map(|g| g.init.mark);
        let mut selected = false;
        for f in filters {
            selected |= match f {
                Filter::All => true,
                Filter::Running => running,
                Filter::Stopped => !running,
                Filter::Marked => mark()?.is_some(),
                Filter::Unmarked => mark()?.is_none(),
                Filter::Mark(m) => mark()?.as_deref() == Some(m.as_str()),
            };
        }
        if selected {
            out.push(name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_xids_and_words_are_names() {
        assert_eq!(Selector::parse("101"), Ok(Selector::Xid(101)));
        assert_eq!(Selector::parse("web1"), Ok(Selector::Name("web1".into())));
        assert_eq!(Selector::parse(":101"), Ok(Selector::Name("101".into())));
        assert!(Selector::parse("self").is_err());
        assert!(Selector::parse("../etc").is_err());
        assert!(Selector::parse("99999999999").is_err());
    }
}
