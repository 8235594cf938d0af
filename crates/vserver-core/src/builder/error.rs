//! [`BuildError`]: why `build` or `delete` failed. Each refusal names the
//! guest, file or option; a failed system call keeps its `io::Error` in the
//! message (not as the source, so a chain names the errno once).

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

use super::copy::CopyError;
use super::debootstrap::CACHE_ENV;
use super::template::ArchiveError;
use super::{InitChoice, UsageError};
use crate::conffile::ConfigError;
use crate::config::XID_MAX;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Bad usage of `build` (exit code 2), as opposed to a failed build.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// A system call whose error names all there is to name.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Doing `what` (which names the file) failed.
    #[error("{what}: {err}")]
    Step { what: String, err: io::Error },
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Not a valid guest name (the text says why).
    #[error("{0}")]
    InvalidName(String),
    #[error(transparent)]
    Unify(#[from] crate::unify::UnifyError),
    /// The unifier's error with what the build was doing.
    #[error("{what}: {err}")]
    UnifyStep { what: String, err: crate::unify::UnifyError },

    #[error("--rootdir {}: no such directory", dir.display())]
    NoRootdir { dir: PathBuf },
    #[error(
        "guest {name:?} already exists ({} or {}); use --force to replace it (the old one is kept as NAME.~UNIXTIME~)",
        confdir.display(),
        vdir.display()
    )]
    Exists { name: String, confdir: PathBuf, vdir: PathBuf },
    #[error("guest {name:?} is running; stop it before replacing it")]
    RunningReplace { name: String },
    #[error("context id {xid} is already used by guest {other:?}")]
    XidTaken { xid: u32, other: String },
    /// `counter`: the `context.next` the search started from, if any.
    #[error("no free context id from {start} to {}{}", XID_MAX, counter.as_ref().map(|c| format!(" ({})", c.display())).unwrap_or_default())]
    NoFreeXid { start: u32, counter: Option<PathBuf> },

    #[error("guest {name:?} is running; stop it first")]
    RunningDelete { name: String },
    #[error("no such guest {name:?} (neither {} nor {} exists)", confdir.display(), vdir.display())]
    NoSuchGuest { name: String, confdir: PathBuf, vdir: PathBuf },

    #[error("{} does not exist: install Debian's busybox-static package (apt-get install busybox-static)", path.display())]
    NoBusybox { path: PathBuf },
    #[error("{} is dynamically linked; the guest needs a static one (apt-get install busybox-static)", path.display())]
    BusyboxNotStatic { path: PathBuf },
    #[error("{} --list-full failed", path.display())]
    BusyboxListFailed { path: PathBuf },

    #[error("no -m MIRROR given, none in .defaults/apps/debootstrap/mirror, and none found in /etc/apt/sources.list*")]
    NoMirror,
    /// `hint`: empty, or why `.defaults/apps/debootstrap/uri` is not used.
    #[error("debootstrap is not installed (apt-get install debootstrap){hint}")]
    NoDebootstrap { hint: String },
    #[error("{}={}: needs an absolute path", CACHE_ENV, cache.display())]
    CacheNotAbsolute { cache: PathBuf },
    #[error("debootstrap option {option} needs a package list")]
    NeedsPackageList { option: String },
    #[error("--exclude={package} conflicts with --initstyle {} (which needs {package})", init.name())]
    ExcludesInitPackage { package: &'static str, init: InitChoice },
    #[error("--include={package} conflicts with --initstyle {} (use --initstyle systemd for {package})", init.name())]
    IncludesUnwantedPackage { package: &'static str, init: InitChoice },
    /// `options`: debootstrap's options, joined; `log_tail`: the last lines
    /// of its log, each on a line of its own.
    #[error("debootstrap {options} {suite} {} {mirror} failed ({status}); the end of its log:{log_tail}", vdir.display())]
    DebootstrapFailed { options: String, suite: String, vdir: PathBuf, mirror: String, status: ExitStatus, log_tail: String },

    #[error("a guest cannot be cloned onto itself")]
    CloneOntoItself,
    #[error("clone source {from} is not a directory")]
    CloneSourceNotDir { from: String },
    #[error("clone source {from:?}: no such guest (no {}) and not an absolute directory", conf.display())]
    NoSuchCloneSource { from: String, conf: PathBuf },
    /// Opening the clone source's root failed.
    #[error("clone source {}: {err}", root.display())]
    CloneSource { root: PathBuf, err: Box<BuildError> },
    #[error(
        "guest {name:?} is running and cannot be frozen for the copy (no cgroup v2 cgroup.freeze, \
         kernel >= 5.2, and no v1 freezer controller); stop it first"
    )]
    Unfreezable { name: String },
    #[error("copying {} to {}: {err}", from.display(), to.display())]
    Copy { from: PathBuf, to: PathBuf, err: CopyError },
    /// `cp -a` of a configuration entry of the clone source failed.
    #[error("copying {} to {} failed", from.display(), to.display())]
    ConfigCopyFailed { from: PathBuf, to: PathBuf },

    #[error("template archive {}: {err}", archive.display())]
    Decompress { archive: PathBuf, err: ArchiveError },
    #[error("unpacking template archive {}: {err}", archive.display())]
    Unpack { archive: PathBuf, err: ArchiveError },

    #[error(
        "the guest has SSH host keys (/etc/ssh/ssh_host_*_key) that must not be shared with its source: \
         install the host's ssh-keygen (apt-get install openssh-client) so that build can make new ones"
    )]
    NoSshKeygen,
}

/// Names what a system call was doing: its error becomes a
/// [`BuildError::Step`].
pub(super) trait Doing<T> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, BuildError>;
}

impl<T> Doing<T> for io::Result<T> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, BuildError> {
        self.map_err(|err| BuildError::Step { what: what(), err })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn build_errors_can_cross_threads() {
        assert_send_sync::<BuildError>();
    }

    #[test]
    fn a_failed_step_names_its_errno_in_the_message_not_as_source() {
        use std::error::Error;
        let err = BuildError::Step { what: "writing /etc/vservers/g/name".into(), err: io::Error::from_raw_os_error(libc::ENOSPC) };
        assert!(err.to_string().starts_with("writing /etc/vservers/g/name: No space left on device"), "{err}");
        assert!(err.source().is_none());
    }

    #[test]
    fn refusals_read_as_before() {
        let no_xid = |counter: Option<&str>| BuildError::NoFreeXid { start: 100, counter: counter.map(PathBuf::from) }.to_string();
        assert_eq!(no_xid(None), format!("no free context id from 100 to {XID_MAX}"));
        assert_eq!(no_xid(Some("/c")), format!("no free context id from 100 to {XID_MAX} (/c)"));
        assert_eq!(BuildError::CacheNotAbsolute { cache: "c".into() }.to_string(), "VSERVER_DEBOOTSTRAP_CACHE=c: needs an absolute path");
        assert!(BuildError::NoSshKeygen.to_string().contains("its source: install the host's ssh-keygen"));
        assert!(BuildError::Unfreezable { name: "g".into() }.to_string().contains("cgroup.freeze, kernel >= 5.2"));
        let conflict = BuildError::ExcludesInitPackage { package: "systemd-sysv", init: InitChoice::Systemd };
        assert_eq!(conflict.to_string(), "--exclude=systemd-sysv conflicts with --initstyle systemd (which needs systemd-sysv)");
    }
}
