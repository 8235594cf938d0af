#![forbid(unsafe_code)]
//! `vdlimit`: a context's disk limits, util-vserver's command line.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use clap::Parser;
use vserver_core::cli::{exit_quietly_on_closed_pipe, report_error, write_stdout, EXIT_USAGE};
use vserver_core::config::{self, dlimits};
use vserver_core::dlimit::{self, DiskUsage, Limits};
use vserver_core::paths::Paths;
use vserver_core::running::Selector;

fn main() -> ExitCode {
    exit_quietly_on_closed_pipe();
    vserver_core::logging::init("vdlimit");
    let cli = cli::Cli::parse();
    if cli.flags != "0" {
        eprintln!("vdlimit: --flags {}: util-vserver's dlimit flags have no counterpart in project quotas; only 0 is accepted", cli.flags);
        return ExitCode::from(EXIT_USAGE as u8);
    }
    let changes = match parse_changes(&cli.set) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vdlimit: {e}");
            return ExitCode::from(EXIT_USAGE as u8);
        }
    };
    match run(&cli, &changes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(report_error("vdlimit", &e) as u8),
    }
}

/// One `--set LIMIT=VALUE`.
enum Change {
    SpaceTotal(Option<u64>),
    InodesTotal(Option<u64>),
    Reserved(u8),
}

fn parse_changes(sets: &[String]) -> anyhow::Result<Vec<Change>> {
    sets.iter()
        .map(|s| {
            let (k, v) = s.split_once('=').ok_or_else(|| anyhow!("--set {s}: expected LIMIT=VALUE"))?;
            let bad = |e: String| anyhow!("--set {s}: {v:?} {e}");
            Ok(match k {
                "space_total" => Change::SpaceTotal(dlimits::parse_total(v).map_err(bad)?),
                "inodes_total" => Change::InodesTotal(dlimits::parse_total(v).map_err(bad)?),
                "reserved" => Change::Reserved(dlimits::parse_percent(v).map_err(bad)?),
                "space_used" | "inodes_used" => {
                    bail!("--set {s}: {k} is counted by the kernel from the files themselves and cannot be set")
                }
                _ => bail!("--set {s}: unknown limit {k:?} (space_total, inodes_total, reserved)"),
            })
        })
        .collect()
}

fn run(cli: &cli::Cli, changes: &[Change]) -> anyhow::Result<()> {
    let paths = cli.paths.resolve()?;
    let (xid, name) = resolve_xid(&paths, &cli.xid)?;
    let targets: Vec<PathBuf> = if cli.mount_points.is_empty() {
        let Some(name) = name else { bail!("name a path on the filesystem (context {xid} has no configuration to read dlimits/ from)") };
        let limits = dlimits::load(&paths.guest_confdir(&name))?;
        if limits.is_empty() {
            bail!("guest {name:?} has no disk limits ({} is empty or missing)", paths.guest_confdir(&name).join("dlimits").display());
        }
        limits.into_iter().map(|l| l.directory).collect()
    } else {
        cli.mount_points.clone()
    };
    if !changes.is_empty() || cli.remove {
        for t in &targets {
            change(t, xid, changes, cli.remove)?;
        }
        return Ok(());
    }
    let mut out = String::new();
    for t in &targets {
        let u = dlimit::read_usage(t, xid).with_context(|| format!("reading project {xid} on {}", t.display()))?;
        out.push_str(&format_usage(xid, t, &u));
    }
    write_stdout(out.as_bytes())?;
    Ok(())
}

/// `--xid`: a number is used as it is (limits exist for stopped guests
/// too); a name is looked up in the configuration.
fn resolve_xid(paths: &Paths, s: &str) -> anyhow::Result<(u32, Option<String>)> {
    match Selector::parse(s).map_err(|e| anyhow!("--xid {s}: {e}"))? {
        Selector::Xid(x) => {
            let name =
                config::list_guests(paths).unwrap_or_default().into_iter().find(|n| config::load_guest(paths, n).is_ok_and(|g| g.xid == x));
            Ok((x, name))
        }
        Selector::Name(n) => Ok((config::load_guest(paths, &n)?.xid, Some(n))),
    }
}

fn change(on: &Path, xid: u32, changes: &[Change], remove: bool) -> anyhow::Result<()> {
    let mut limits = Limits::default();
    if !remove {
        let now = dlimit::read_usage(on, xid).with_context(|| format!("reading project {xid} on {}", on.display()))?;
        limits = Limits {
            space_total_kib: now.space_limit_bytes.map(|b| b / 1024),
            inodes_total: now.inodes_limit,
            reserved_percent: now.reserved_percent() as u8,
        };
        for c in changes {
            match c {
                Change::SpaceTotal(v) => limits.space_total_kib = *v,
                Change::InodesTotal(v) => limits.inodes_total = *v,
                Change::Reserved(v) => limits.reserved_percent = *v,
            }
        }
    }
    dlimit::set_limits(on, xid, &limits).with_context(|| format!("setting project {xid}'s limits on {}", on.display()))
}

/// util-vserver's formatted output; space in KiB, -1 for no limit.
fn format_usage(xid: u32, path: &Path, u: &DiskUsage) -> String {
    let or_inf = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
    format!(
        "{xid} {}\nspace_used={}\nspace_total={}\ninodes_used={}\ninodes_total={}\nreserved={}\n",
        path.display(),
        u.space_used_bytes.div_ceil(1024),
        or_inf(u.space_limit_bytes.map(|b| b / 1024)),
        u.inodes_used,
        or_inf(u.inodes_limit),
        u.reserved_percent()
    )
}
