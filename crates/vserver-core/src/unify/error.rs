//! What unification refuses or fails at: [`UnifyError`], for every entry
//! point of the module (hashify, revert, gc, release, windows, the
//! copy-on-write supervisor).

use std::io;
use std::path::PathBuf;

use crate::conffile::ConfigError;

/// A unification refused or failed. Each names its guest, store, file or
/// cgroup; the cause (an errno, a lower error) is part of the message and
/// is not also `source()`.
#[derive(Debug, thiserror::Error)]
pub enum UnifyError {
    /// A system call whose caller has nothing to add to its errno.
    #[error(transparent)]
    Sys(#[from] io::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A system call, with what it was doing (and on which file).
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },

    #[error("no guest given (name guests, or use --all)")]
    NoGuestGiven,
    #[error("--manually needs --destination DIR (the hash store)")]
    ManuallyWithoutDestination,
    /// A `--manually` name that is not a directory.
    #[error("{name}: no such directory")]
    NoSuchDirectory { name: String },
    #[error("hash store {} and guest root {} ({guest}) must not contain each other", store.display(), root.display())]
    StoreInsideGuest { store: PathBuf, root: PathBuf, guest: String },
    #[error("guest root {} is not on the hash store's filesystem; hard links cannot cross filesystems", root.display())]
    RootOnOtherFilesystem { root: PathBuf },
    /// A refused `--revert` selection or `--package` name (the text says which).
    #[error("{0}")]
    Selection(String),

    #[error("{}: is a directory but names no hash store (add a symlink to the store, e.g. `root`)", dir.display())]
    NoStoreNamed { dir: PathBuf },
    #[error(
        "{who}: no hash store on the filesystem of {} (candidates: {}); hard links cannot cross filesystems, \
         configure a store on that filesystem in apps/vunify/hash",
        root.display(),
        candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoStoreOnFilesystem { who: String, root: PathBuf, candidates: Vec<PathBuf> },
    #[error("--exclude-from {}: no such file", file.display())]
    NoExcludeFile { file: PathBuf },

    #[error("hash store vanished")]
    StoreVanished,
    #[error("another vhashify run holds the lock of hash store {} (use --wait to wait for it)", store.display())]
    Locked { store: PathBuf },
    #[error("gc of hash store {}: {err}", store.display())]
    Gc { store: PathBuf, err: Box<UnifyError> },

    #[error("package {pkg}: its file list in /{} is larger than {} bytes; refused", super::package::INFO_DIR, super::package::MAX_LIST)]
    PackageListTooLarge { pkg: String },
    #[error("package {pkg}: /{}/{list} is not a regular file", super::package::INFO_DIR)]
    PackageListNotAFile { pkg: String, list: String },
    #[error("package {pkg} is not installed in the guest (no /{}/{pkg}.list)", super::package::INFO_DIR)]
    PackageNotInstalled { pkg: String },

    #[error("{} stayed locked for {secs} s (a guest start that does not finish?)", lock.display())]
    StartLockTimeout { lock: PathBuf, secs: u64 },
    #[error("guest {guest:?} runs but no cgroup hierarchy is mounted at {}: it cannot be frozen", cgroup_root.display())]
    NoCgroupHierarchy { guest: String, cgroup_root: PathBuf },
    #[error(
        "guest {guest:?} cannot be frozen: none of its cgroups {cgroups:?} has a freezer \
         (cgroup v2 needs kernel 5.2; on cgroup v1 mount the freezer controller)"
    )]
    GuestWithoutFreezer { guest: String, cgroups: Vec<PathBuf> },
    #[error("cannot freeze guest {guest:?} from inside its cgroup {}: it has no payload cgroup", cgroup.display())]
    NoPayloadCgroup { guest: String, cgroup: PathBuf },
    #[error("cgroup {} has no freezer (cgroup v2 needs kernel 5.2; v1 needs the freezer controller)", cgroup.display())]
    CgroupWithoutFreezer { cgroup: PathBuf },
    /// The window journal could not be written as JSON (a store path that
    /// is not UTF-8).
    #[error(transparent)]
    Journal(serde_json::Error),
    #[error("making the entries of hash store {} immutable again after a window of pid {pid} died: {err}", store.display())]
    Refreeze { store: PathBuf, pid: u32, err: Box<UnifyError> },

    /// A failed nix call with nothing added (its errno, as nix names it).
    #[error(transparent)]
    Errno(#[from] nix::errno::Errno),

    #[error("copy-on-write for unified guests needs kernel 5.5 or newer (seccomp user notification); this is {release}")]
    OldKernel { release: String },
}

/// Names what a failed system call was doing, as `what: errno`.
pub(crate) trait IoResultExt<T> {
    fn what<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, UnifyError>;
}

impl<T> IoResultExt<T> for io::Result<T> {
    fn what<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, UnifyError> {
        self.map_err(|err| UnifyError::Io { what: what().into(), err })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unify_error_names_its_errno_once_and_has_no_source() {
        let eperm = || io::Error::from_raw_os_error(libc::EPERM);
        let io = UnifyError::Io { what: "locking /run/.locks/start".into(), err: eperm() };
        let gc = UnifyError::Gc { store: "/vservers/.hash".into(), err: Box::new(UnifyError::Sys(eperm())) };
        assert_eq!(gc.to_string(), format!("gc of hash store /vservers/.hash: {}", eperm()));
        for e in [io, gc] {
            let text = e.to_string();
            assert_eq!(text.matches("Operation not permitted").count(), 1, "{text}");
            assert!(std::error::Error::source(&e).is_none(), "{text}");
        }
    }

    #[test]
    fn multi_line_refusals_read_as_one_line() {
        let no_store = UnifyError::NoStoreOnFilesystem {
            who: "guest \"a\"".into(),
            root: "/v/a".into(),
            candidates: vec!["/x/.hash".into(), "/y/.hash".into()],
        };
        assert_eq!(
            no_store.to_string(),
            "guest \"a\": no hash store on the filesystem of /v/a (candidates: /x/.hash, /y/.hash); \
             hard links cannot cross filesystems, configure a store on that filesystem in apps/vunify/hash"
        );
        let no_freezer = UnifyError::GuestWithoutFreezer { guest: "a".into(), cgroups: vec!["/cg/a".into()] };
        assert_eq!(
            no_freezer.to_string(),
            "guest \"a\" cannot be frozen: none of its cgroups [\"/cg/a\"] has a freezer \
             (cgroup v2 needs kernel 5.2; on cgroup v1 mount the freezer controller)"
        );
        let too_large = UnifyError::PackageListTooLarge { pkg: "nginx".into() };
        assert_eq!(too_large.to_string(), "package nginx: its file list in /var/lib/dpkg/info is larger than 67108864 bytes; refused");
    }

    #[test]
    fn errors_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<UnifyError>();
    }
}
