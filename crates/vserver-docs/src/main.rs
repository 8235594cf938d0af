//! `vserver-docs OUTDIR`: writes the man pages (one per binary and one per
//! subcommand, `man1/`) and the bash, zsh and fish completions
//! (`completions/<shell>/`) of the vserver-rs binaries. The clap
//! definitions are the binaries' own `cli.rs` files, compiled in here, so
//! the pages cannot drift from `--help`. A binary joins by keeping its
//! command line in `crates/<bin>/src/cli.rs` as `pub struct Cli` (depending
//! only on clap and `vserver_core::cli`); build.rs finds it.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use clap_complete::Shell;

include!(concat!(env!("OUT_DIR"), "/clis.rs"));

#[derive(Parser)]
#[command(name = "vserver-docs", version, about = "Write the man pages and shell completions of vserver-rs")]
struct Args {
    /// Where to write man1/ and completions/{bash,zsh,fish}/
    out: std::path::PathBuf,
}

const SHELLS: &[(Shell, &str)] = &[(Shell::Bash, "bash"), (Shell::Zsh, "zsh"), (Shell::Fish, "fish")];

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match write_all(&args.out) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vserver-docs: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn write_all(out: &Path) -> Result<()> {
    let man_dir = out.join("man1");
    fs::create_dir_all(&man_dir).with_context(|| format!("creating {}", man_dir.display()))?;
    for cmd in commands() {
        let mut cmd = cmd.disable_help_subcommand(true);
        cmd.build();
        write_man_pages(&cmd, &man_dir)?;
        write_completions(&mut cmd, out)?;
    }
    Ok(())
}

/// The command's page, then one per (visible) subcommand: `vserver-start.1`.
fn write_man_pages(cmd: &clap::Command, dir: &Path) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man_pages(sub, dir)?;
    }
    let man = clap_mangen::Man::new(cmd.clone())
        .manual("vserver-rs")
        .source(format!("vserver-rs {}", env!("CARGO_PKG_VERSION")));
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page).with_context(|| format!("rendering {}", path.display()))?;
    fs::write(&path, page).with_context(|| format!("writing {}", path.display()))
}

fn write_completions(cmd: &mut clap::Command, out: &Path) -> Result<()> {
    let name = cmd.get_name().to_string();
    for (shell, dir_name) in SHELLS {
        let dir = out.join("completions").join(dir_name);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let file_name = match shell {
            Shell::Zsh => format!("_{name}"),
            Shell::Fish => format!("{name}.fish"),
            _ => name.clone(),
        };
        let mut script = Vec::new();
        clap_complete::generate(*shell, cmd, &name, &mut script);
        let path = dir.join(file_name);
        fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
