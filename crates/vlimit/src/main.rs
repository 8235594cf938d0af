#![forbid(unsafe_code)]
//! vlimit: show and change the limits of a running guest, util-vserver's
//! command line. `-S`, `-H` and `-M` pick soft, hard or minimum for the next
//! `--<resource>` only (none means hard); they can be combined (`-SH`).
// The doc comments of cli.rs are clap's help text (what `--help` prints),
// not rustdoc: `<confdir>` and `[dev:]` there are meant literally.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

mod cli;

use std::os::unix::process::CommandExt;
use std::process::exit;

use clap::FromArgMatches;
use cli::{Args, VSERVER_ONLY};
use vserver_core::cli::{report_error, EXIT_USAGE};
use vserver_core::limits::context_stats;
use vserver_core::limits::live::{apply_to_running, resolve_target};
use vserver_core::limits::rlimit::{apply_to_self, LimitValue, Resource, RlimitSetting, ALL_RESOURCES};
use vserver_core::limits::save::{save, Kind, SavedValue};
use vserver_core::limits::show::{all_limits, layout_info, stats_json, stats_table, ShowOptions};

/// One `--<res> VALUE` as given, with the kinds the -M/-S/-H before it chose.
struct Change {
    resource: Resource,
    kinds: Vec<Kind>,
    text: String,
    value: LimitValue,
}

fn main() {
    vserver_core::cli::exit_quietly_on_closed_pipe();
    vserver_core::logging::init("vlimit");
    if std::env::args_os().len() == 1 {
        // Nothing to show or change: say how, as a usage error.
        eprintln!("{}", cli::Cli::command().render_usage());
        eprintln!("Show or change a guest's limits with -c XID|NAME; see vlimit --help.");
        exit(EXIT_USAGE);
    }
    let matches = cli::Cli::command().get_matches();
    let cli = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let changes = match changes(&matches) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("vlimit: {msg}");
            exit(EXIT_USAGE);
        }
    };
    if let Err(e) = run(&cli, &changes) {
        exit(report_error("vlimit", &e));
    }
}

fn run(cli: &Args, changes: &[Change]) -> anyhow::Result<()> {
    let paths = cli.paths.resolve()?;
    if cli.info {
        print!("{}", layout_info(&paths.cgroup_root)?);
        return Ok(());
    }
    let settings = settings(changes);
    let opts = ShowOptions { decimal: cli.decimal, numeric: cli.numeric };
    let Some(spec) = &cli.context else {
        return run_on_self(cli, &settings, opts);
    };
    if !cli.command.is_empty() {
        anyhow::bail!("a command after -- runs on the host; to run one in the guest use `vserver NAME exec`");
    }
    let target = resolve_target(&paths, spec)?;
    if !settings.is_empty() {
        let applied = apply_to_running(&target, &settings)?;
        if cli.save {
            if let Err(e) = save(&paths, &target.name, &saved_values(changes)) {
                applied.undo();
                return Err(anyhow::Error::new(e).context("saving failed, so the running guest was left as it was"));
            }
        }
    } else if cli.save {
        anyhow::bail!("--save needs a --<resource> VALUE to save");
    }
    if cli.all {
        print!("{}", all_limits(Some(&target), opts)?);
    }
    if cli.stats {
        let stats = context_stats(&target.cgroup)?;
        if cli.json {
            print!("{}", stats_json(&target, &stats));
        } else {
            print!("{}", stats_table(&stats));
        }
    }
    Ok(())
}

/// Without -c: the limits of this process, then the command runs under them.
fn run_on_self(cli: &Args, settings: &[RlimitSetting], opts: ShowOptions) -> anyhow::Result<()> {
    if cli.stats || cli.save {
        anyhow::bail!("--stats and --save need a guest: -c XID|NAME");
    }
    if let Some(s) = settings.iter().find(|s| s.resource.is_context_wide()) {
        anyhow::bail!("{} is a context-wide limit; give the guest with -c XID|NAME", s.resource);
    }
    if settings.iter().any(|s| s.min.is_some()) {
        anyhow::bail!("per-process limits have no minimum (-M)");
    }
    if !settings.is_empty() && cli.command.is_empty() {
        anyhow::bail!("nothing to apply the limits to: give a guest with -c XID|NAME, or a command after --");
    }
    apply_to_self(settings).map_err(anyhow::Error::msg)?;
    if cli.all {
        print!("{}", all_limits(None, opts)?);
    }
    if let Some((prog, args)) = cli.command.split_first() {
        let err = std::process::Command::new(prog).args(args).exec();
        anyhow::bail!("running {prog:?}: {err}");
    }
    Ok(())
}

/// The resource options in command-line order, each with the -M/-S/-H flags
/// given since the previous resource option.
fn changes(m: &clap::ArgMatches) -> Result<Vec<Change>, String> {
    let mut modes: Vec<(usize, Kind)> = Vec::new();
    for (id, kind) in [("min", Kind::Min), ("soft", Kind::Soft), ("hard", Kind::Hard)] {
        if m.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
            modes.extend(m.indices_of(id).into_iter().flatten().map(|i| (i, kind)));
        }
    }
    for name in VSERVER_ONLY {
        if m.contains_id(name) {
            return Err(format!("--{name} is a Linux-VServer context limit with no equivalent on a stock kernel"));
        }
    }
    let mut values: Vec<(usize, Resource, String)> = Vec::new();
    for r in ALL_RESOURCES {
        let (Some(idx), Some(vals)) = (m.indices_of(r.name()), m.get_many::<String>(r.name())) else { continue };
        values.extend(idx.zip(vals).map(|(i, v)| (i, *r, v.clone())));
    }
    values.sort_by_key(|v| v.0);
    modes.sort_by_key(|m| m.0);
    let last = values.last().map(|v| v.0);
    if modes.iter().any(|(i, _)| last.is_none_or(|l| *i > l)) {
        return Err("-M, -S and -H must come before the --<resource> option they apply to".into());
    }
    let mut out = Vec::new();
    let mut prev = 0;
    for (index, resource, text) in values {
        let mut kinds: Vec<Kind> = modes.iter().filter(|(i, _)| *i >= prev && *i < index).map(|(_, k)| *k).collect();
        if kinds.is_empty() {
            kinds.push(Kind::Hard);
        }
        kinds.dedup();
        let value = LimitValue::parse(&text).map_err(|e| format!("--{resource} {text:?}: {e}"))?;
        out.push(Change { resource, kinds, text, value });
        prev = index;
    }
    Ok(out)
}

fn settings(changes: &[Change]) -> Vec<RlimitSetting> {
    let mut out: Vec<RlimitSetting> = Vec::new();
    for c in changes {
        let pos = match out.iter().position(|s| s.resource == c.resource) {
            Some(p) => p,
            None => {
                out.push(RlimitSetting { resource: c.resource, soft: None, hard: None, min: None });
                out.len() - 1
            }
        };
        for kind in &c.kinds {
            let slot = match kind {
                Kind::Soft => &mut out[pos].soft,
                Kind::Hard => &mut out[pos].hard,
                Kind::Min => &mut out[pos].min,
            };
            *slot = Some(c.value);
        }
    }
    out
}

fn saved_values(changes: &[Change]) -> Vec<SavedValue> {
    changes.iter().flat_map(|c| c.kinds.iter().map(move |k| SavedValue { resource: c.resource, kind: *k, text: c.text.clone() })).collect()
}
