//! Where everything lives. One [`Paths`] value is built once from defaults,
//! environment and flags, then passed down; no other code names
//! `/etc/vservers` or `/run/vservers`, which is what lets tests and scripts run
//! against temporary directories.

use std::path::PathBuf;

use crate::conffile::{read_path_entry, ConfigError};

pub const DEFAULT_CONFDIR: &str = "/etc/vservers";
pub const DEFAULT_VDIRBASE: &str = "/vservers";
pub const DEFAULT_RUNDIR: &str = "/run/vservers";
pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

pub const ENV_CONFDIR: &str = "VSERVER_CONFDIR";
pub const ENV_VDIRBASE: &str = "VSERVER_VDIRBASE";
pub const ENV_RUNDIR: &str = "VSERVER_RUNDIR";
/// Only for tests and unusual hosts: where the cgroup hierarchies are mounted.
pub const ENV_CGROUP_ROOT: &str = "VSERVER_CGROUP_ROOT";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `/etc/vservers`: one directory per guest plus `.defaults`.
    pub confdir: PathBuf,
    /// `/vservers`: where guest roots live unless a guest's `vdir` says otherwise.
    pub vdirbase: PathBuf,
    /// `/run/vservers`: run state of running guests, locks.
    pub rundir: PathBuf,
    /// `/sys/fs/cgroup`: root of the cgroup mounts (v1 hierarchies, or v2).
    pub cgroup_root: PathBuf,
}

/// Flag values as the binaries got them; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct PathOverrides {
    pub confdir: Option<PathBuf>,
    pub vdirbase: Option<PathBuf>,
    pub rundir: Option<PathBuf>,
}

impl Paths {
    /// Flag, then environment, then (for vdirbase) `.defaults/vdirbase`, then
    /// the built-in default.
    pub fn resolve(flags: &PathOverrides) -> Result<Paths, ConfigError> {
        let pick = |flag: &Option<PathBuf>, var: &str| -> Option<PathBuf> {
            flag.clone().or_else(|| std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from))
        };
        let confdir = pick(&flags.confdir, ENV_CONFDIR).unwrap_or_else(|| DEFAULT_CONFDIR.into());
        let vdirbase = match pick(&flags.vdirbase, ENV_VDIRBASE) {
            Some(v) => v,
            None => read_path_entry(&confdir.join(".defaults/vdirbase"))?.unwrap_or_else(|| DEFAULT_VDIRBASE.into()),
        };
        let rundir = pick(&flags.rundir, ENV_RUNDIR).unwrap_or_else(|| DEFAULT_RUNDIR.into());
        let cgroup_root =
            std::env::var_os(ENV_CGROUP_ROOT).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| DEFAULT_CGROUP_ROOT.into());
        Ok(Paths { confdir, vdirbase, rundir, cgroup_root })
    }

    pub fn defaults_dir(&self) -> PathBuf {
        self.confdir.join(".defaults")
    }

    pub fn guest_confdir(&self, name: &str) -> PathBuf {
        self.confdir.join(name)
    }

    /// Run state of one guest: `<rundir>/<name>/`.
    pub fn guest_rundir(&self, name: &str) -> PathBuf {
        self.rundir.join(name)
    }

    pub fn default_vdir(&self, name: &str) -> PathBuf {
        self.vdirbase.join(name)
    }

    pub fn lock_dir(&self) -> PathBuf {
        self.rundir.join(".locks")
    }
}

/// Guest names become directory and cgroup names: keep them to a safe alphabet.
pub fn validate_guest_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid guest name (1-64 characters of A-Z a-z 0-9 . _ -, not starting with . or -)"))
    }
}
