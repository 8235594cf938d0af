//! The context layer's error. A start, stop or exec is a sequence of steps;
//! a failed step says what it was doing (naming the guest, file or
//! descriptor) and keeps the cause as the lower layer returned it: the errno
//! as an `io::Error` or `Errno`, a module's own typed error otherwise.
//! A refusal the user can cause is a variant of its own, naming the guest.
//!
//! The convention of `docs/architecture.md` ("Errors"): the message carries
//! the cause and the cause is not also `source()`, so `{:#}` names it once.

use std::io;
use std::path::PathBuf;

/// What a step of the context layer failed on.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// A step failed: what it was doing, then why.
    #[error("{step}: {cause}")]
    Step { step: String, cause: Box<Cause> },
    /// A lower layer's error, passed on as it is (its message names the object).
    #[error(transparent)]
    Lower(Box<Cause>),
    /// A value an earlier step, or the request, should have given is missing
    /// (the order tests hold that the steps give theirs).
    #[error("{0}")]
    Missing(&'static str),
    #[error("starting guest {name:?} needs root (run it as root or with sudo)")]
    NeedsRoot { name: String },
    #[error("guest {name:?} is already running (init pid {pid})")]
    AlreadyRunning { name: String, pid: i32 },
    #[error("guest {name:?} is not running")]
    NotRunning { name: String },
    #[error("guest {name:?} stopped meanwhile")]
    StoppedMeanwhile { name: String },
    #[error("no such guest {name:?} (no {})", confdir.display())]
    NoSuchGuest { name: String, confdir: PathBuf },
    #[error("guest {name:?} did not start: {why}")]
    DidNotStart { name: String, why: String },
    #[error("guest {name:?} has context id {xid} ({}), which running guest {other:?} already uses", file.display())]
    XidInUse { name: String, xid: u32, file: PathBuf, other: String },
    #[error("guest {name:?} did not start: its monitor ended without a word (see {})", log.display())]
    MonitorSilent { name: String, log: PathBuf },
    /// The guest's pid 1 or its monitor failed before the guest was up; the
    /// message is what the monitor reported.
    #[error("{0}")]
    DidNotBoot(String),
    #[error("{0}")]
    BadName(String),
    #[error("no command given")]
    NoCommand,
    #[error("no command given to run in guest {name:?}")]
    NoCommandFor { name: String },
    #[error("{0} contains a NUL byte")]
    NulByte(&'static str),
    #[error("{command}: command not found in the guest")]
    CommandNotFound { command: String },
    #[error("executing {command} in the guest: {err}")]
    Exec { command: String, err: nix::errno::Errno },
    /// The command was not run in the guest; the monitor's reason.
    #[error("{0}")]
    NotRun(String),
    #[error("the guest stopped while the command ran (its monitor closed the connection)")]
    StoppedDuringCommand,
    #[error("pid 1 is still dumpable")]
    StillDumpable,
    /// A setting or the guest's tree is not what a start needs; the message
    /// names the guest, the file and what to change.
    #[error("{0}")]
    Unstartable(String),
    /// The guest's tree or a process in it is not what a join needs (no
    /// shell, no such user, a file that is not a regular file, ...); the
    /// message names what is missing.
    #[error("{0}")]
    InGuest(String),
    /// The request to the monitor or its answer broke the protocol.
    #[error("{0}")]
    Protocol(String),
    /// A scriptlet or host command ran and failed; the message names it, the
    /// stage, the guest and its exit status.
    #[error("{0}")]
    CommandFailed(String),
}

/// Declares [`Cause`], one variant per lower error type (printed as that
/// error prints itself), and the `From` of each into `Cause` and into
/// [`ContextError::Lower`], so `?` and `.step` take them as they are.
macro_rules! causes {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// The cause of a failed step, each printed as its own message.
        #[derive(Debug, thiserror::Error)]
        pub enum Cause {
            $(
                #[error(transparent)]
                $variant($ty),
            )*
            /// The text of an error whose type carries nothing more (the
            /// capability crate's).
            #[error("{0}")]
            Text(String),
            #[error(transparent)]
            Context(Box<ContextError>),
        }
        $(
            impl From<$ty> for Cause {
                fn from(e: $ty) -> Cause {
                    Cause::$variant(e)
                }
            }
            impl From<$ty> for ContextError {
                fn from(e: $ty) -> ContextError {
                    ContextError::Lower(Box::new(Cause::$variant(e)))
                }
            }
        )*
    };
}

causes!(
    Io(io::Error),
    Errno(nix::errno::Errno),
    Config(crate::conffile::ConfigError),
    NotStartable(crate::config::NotStartable),
    Sysctl(crate::config::sysctl::SysctlError),
    NotRunning(crate::runstate::NotRunning),
    Caps(crate::caps::CapsError),
    Seccomp(crate::seccomp::FilterTooLong),
    BpfLoad(crate::sys::ebpf::load::LoadError),
    DeviceFilter(crate::cgroup::device_filter::DeviceFilterError),
    DiskLimit(crate::dlimit::DiskLimitError),
    Rlimit(crate::limits::rlimit::RlimitError),
    Limit(crate::limits::LimitError),
    Net(crate::net::NetError),
    Interfaces(crate::net::InterfacesError),
    Unify(crate::unify::UnifyError),
    Json(serde_json::Error),
    Nul(std::ffi::NulError),
);

impl From<String> for Cause {
    fn from(text: String) -> Cause {
        Cause::Text(text)
    }
}

impl From<ContextError> for Cause {
    fn from(e: ContextError) -> Cause {
        match e {
            ContextError::Lower(cause) => *cause,
            other => Cause::Context(Box::new(other)),
        }
    }
}

pub type Result<T, E = ContextError> = std::result::Result<T, E>;

/// `.step("what it was doing")` on a failed call: the context layer's
/// counterpart of anyhow's `.context`, keeping the cause's type.
pub(crate) trait StepResult<T> {
    fn step(self, what: impl Into<String>) -> Result<T>;
    fn with_step(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<Cause>> StepResult<T> for std::result::Result<T, E> {
    fn step(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| ContextError::Step { step: what.into(), cause: Box::new(e.into()) })
    }

    fn with_step(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| ContextError::Step { step: what(), cause: Box::new(e.into()) })
    }
}

/// `.or_missing("what is missing")` on a value an earlier step sets.
pub(crate) trait OrMissing<T> {
    fn or_missing(self, missing: &'static str) -> Result<T>;
}

impl<T> OrMissing<T> for Option<T> {
    fn or_missing(self, missing: &'static str) -> Result<T> {
        self.ok_or(ContextError::Missing(missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied() -> io::Error {
        io::Error::from_raw_os_error(libc::EPERM)
    }

    #[test]
    fn a_failed_step_names_its_errno_once_and_keeps_it() {
        let inner = Err::<(), _>(denied()).step("joining the guest's cgroup").unwrap_err();
        let outer = Err::<(), _>(inner).step("starting the command").unwrap_err();
        let shown = format!("{:#}", anyhow::Error::new(outer).context("vserver exec"));
        assert_eq!(shown, format!("vserver exec: starting the command: joining the guest's cgroup: {}", denied()));
        let Err(ContextError::Step { cause, .. }) = Err::<(), _>(Err::<(), _>(denied()).step("a").unwrap_err()).step("b") else {
            panic!("a failed step is a Step");
        };
        let Cause::Context(inner) = *cause else { panic!("a step over a step keeps the inner one") };
        let ContextError::Step { cause, .. } = *inner else { panic!("the inner step is a Step") };
        let Cause::Io(io) = *cause else { panic!("the errno is kept as an io::Error") };
        assert_eq!(io.raw_os_error(), Some(libc::EPERM));
    }

    #[test]
    fn a_lower_error_passed_on_is_printed_as_it_is() {
        let e = ContextError::from(denied());
        assert_eq!(e.to_string(), denied().to_string());
        assert_eq!(format!("{:#}", anyhow::Error::new(e)).matches("os error 1").count(), 1);
    }
}
