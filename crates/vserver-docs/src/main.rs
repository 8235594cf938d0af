#![forbid(unsafe_code)]
//! `vserver-docs OUTDIR`: writes the man pages (one per binary and one per
//! subcommand, `man1/`) and the bash, zsh and fish completion scripts
//! (`completions/<shell>/`) of the vserver-rs binaries. The pages come from
//! the binaries' own clap definitions plus `pages/*.txt`; the completion
//! scripts hand every Tab press to `vserver-complete` (at `--completer`),
//! which completes from the same definitions and knows the guests.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Parser)]
#[command(name = "vserver-docs", version, about = "Write the man pages and shell completions of vserver-rs")]
struct Args {
    /// Where to write man1/ and completions/{bash,zsh,fish}/
    out: PathBuf,
    /// The installed path of vserver-complete, which the completion scripts run
    #[arg(long, value_name = "PATH", default_value = "/usr/lib/vserver-rs/vserver-complete")]
    completer: String,
}

const SHELLS: &[&str] = &["bash", "zsh", "fish"];

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match write_all(&args.out, &args.completer) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vserver-docs: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn write_all(out: &Path, completer: &str) -> Result<()> {
    let man_dir = out.join("man1");
    fs::create_dir_all(&man_dir).with_context(|| format!("creating {}", man_dir.display()))?;
    for cmd in vserver_docs::commands() {
        let mut cmd = cmd.disable_help_subcommand(true);
        cmd.build();
        write_man_pages(&cmd, &man_dir)?;
        write_completions(cmd.get_name(), out, completer)?;
    }
    Ok(())
}

/// The command's page, then one per (visible) subcommand: `vserver-start.1`.
fn write_man_pages(cmd: &clap::Command, dir: &Path) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man_pages(sub, dir)?;
    }
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    vserver_docs::man::render(cmd, &mut page).with_context(|| format!("rendering {}", path.display()))?;
    fs::write(&path, page).with_context(|| format!("writing {}", path.display()))
}

fn write_completions(name: &str, out: &Path, completer: &str) -> Result<()> {
    for shell in SHELLS {
        let dir = out.join("completions").join(shell);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let file_name = match *shell {
            "zsh" => format!("_{name}"),
            "fish" => format!("{name}.fish"),
            _ => name.to_string(),
        };
        let script = vserver_docs::complete::registration(shell, name, completer).map_err(anyhow::Error::msg)?;
        let path = dir.join(file_name);
        fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
