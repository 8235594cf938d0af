//! Command-line pieces every binary shares: the path overrides and the exit
//! codes (0 success, 1 failure, 2 bad usage).

use std::path::PathBuf;

use crate::paths::{PathOverrides, Paths, ENV_CONFDIR, ENV_RUNDIR, ENV_VDIRBASE};

pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// `--confdir`, `--vdirbase`, `--rundir`, each also from its environment
/// variable; a flag wins over the environment.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PathArgs {
    /// Configuration root (default /etc/vservers)
    #[arg(long, global = true, value_name = "DIR", env = ENV_CONFDIR)]
    pub confdir: Option<PathBuf>,
    /// Base directory of guest roots (default /vservers, or .defaults/vdirbase)
    #[arg(long, global = true, value_name = "DIR", env = ENV_VDIRBASE)]
    pub vdirbase: Option<PathBuf>,
    /// Run-state directory (default /run/vservers)
    #[arg(long, global = true, value_name = "DIR", env = ENV_RUNDIR)]
    pub rundir: Option<PathBuf>,
}

impl PathArgs {
    pub fn resolve(&self) -> anyhow::Result<Paths> {
        let overrides = PathOverrides {
            confdir: self.confdir.clone(),
            vdirbase: self.vdirbase.clone(),
            rundir: self.rundir.clone(),
        };
        Ok(Paths::resolve(&overrides)?)
    }
}

/// Prints an error chain the way every tool does and returns the exit code.
pub fn report_error(tool: &str, err: &anyhow::Error) -> i32 {
    eprintln!("{tool}: {err:#}");
    EXIT_FAILURE
}
