//! `vserver NAME build` and `vserver NAME delete`: util-vserver's build
//! options (with `.defaults/apps/build/options` as defaults) turned into
//! core build options; the report printed.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Parser;
use vserver_core::builder::{self, BuildError, BuildOptions, InitChoice, InterfaceSpec, Method, NetDefaults, UsageError};
use vserver_core::Paths;

use crate::cli::BuildArgs;

/// Parses the lines of `.defaults/apps/build/options` with the same options.
#[derive(Parser)]
#[command(name = "build", no_binary_name = false)]
struct Defaults {
    #[command(flatten)]
    args: BuildArgs,
}

pub fn build(paths: &Paths, name: &str, args: &BuildArgs) -> Result<u8> {
    let args = match read_defaults(&paths.defaults_dir().join("apps/build/options"))? {
        Some(defaults) => merge(args.clone(), defaults),
        None => args.clone(),
    };
    let opts = match options(&args) {
        Ok(o) => o,
        Err(e) => return usage(&e),
    };
    match builder::build_guest(paths, name, &opts) {
        Ok(report) => {
            for (from, to) in &report.moved {
                println!("Renamed '{}' to '{}'", from.display(), to.display());
            }
            for n in &report.notes {
                eprintln!("vserver {name}: note: {n}");
            }
            Ok(0)
        }
        Err(BuildError::Usage(u)) => usage(&u),
        Err(e) => Err(e.into()),
    }
}

fn usage(e: &UsageError) -> Result<u8> {
    eprintln!("vserver: {e}");
    Ok(2)
}

/// util-vserver reads one argument per line; blank and `#` lines are skipped.
fn read_defaults(file: &Path) -> Result<Option<BuildArgs>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let argv = std::iter::once("build".to_string()).chain(lines.map(str::to_string));
    let parsed = Defaults::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.render().to_string().trim()))?;
    Ok(Some(parsed.args))
}

/// The command line wins over the defaults; lists add up (defaults first).
fn merge(cmd: BuildArgs, def: BuildArgs) -> BuildArgs {
    BuildArgs {
        method: cmd.method.or(def.method),
        context: cmd.context.or(def.context),
        hostname: cmd.hostname.or(def.hostname),
        interfaces: def.interfaces.into_iter().chain(cmd.interfaces).collect(),
        netdev: cmd.netdev.or(def.netdev),
        netprefix: if cmd.netmask.is_some() { cmd.netprefix } else { cmd.netprefix.or(def.netprefix) },
        netmask: if cmd.netprefix.is_some() { cmd.netmask } else { cmd.netmask.or(def.netmask) },
        rootdir: cmd.rootdir.or(def.rootdir),
        flags: def.flags.into_iter().chain(cmd.flags).collect(),
        initstyle: cmd.initstyle.or(def.initstyle),
        force: cmd.force || def.force,
        method_args: if cmd.method_args.is_empty() { def.method_args } else { cmd.method_args },
    }
}

fn options(a: &BuildArgs) -> Result<BuildOptions, UsageError> {
    let method = a
        .method
        .as_deref()
        .ok_or_else(|| UsageError("build needs a method: -m METHOD (skeleton, busybox, debootstrap, clone or template)".into()))?;
    let method = Method::parse(method, &a.method_args)?;
    let interfaces = a
        .interfaces
        .iter()
        .map(|s| InterfaceSpec::parse(s).map_err(|e| UsageError(format!("--interface {s}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut net = NetDefaults { dev: a.netdev.clone(), prefix: a.netprefix };
    if let Some(d) = &net.dev {
        if !vserver_core::config::interfaces::valid_device_name(d) {
            return Err(UsageError(format!("--netdev {d:?} is not a network device name")));
        }
    }
    if let Some(p) = a.netprefix.filter(|p| *p > 128) {
        return Err(UsageError(format!("--netprefix {p} is not a prefix length (0-128)")));
    }
    if let Some(m) = &a.netmask {
        net.prefix = Some(builder::interface::mask_to_prefix(m).map_err(|e| UsageError(format!("--netmask {e}")))?);
    }
    let init = a.initstyle.as_deref().map(|s| match s {
        "systemd" => InitChoice::Systemd,
        "sysv" => InitChoice::Sysv,
        _ => InitChoice::Plain,
    });
    Ok(BuildOptions {
        method,
        context: a.context,
        hostname: a.hostname.clone(),
        interfaces,
        net,
        netmask: a.netmask.clone(),
        rootdir: a.rootdir.clone(),
        flags: a.flags.iter().map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect(),
        init,
        force: a.force,
    })
}

pub fn delete(paths: &Paths, name: &str) -> Result<u8> {
    let report = builder::delete_guest(paths, name)?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    if report.store_freed.0 > 0 {
        println!("removed {} hash store entries no other guest used ({:.1} MiB)", report.store_freed.0, mib(report.store_freed.1));
    }
    if let Some((n, bytes, store)) = &report.store_left {
        println!(
            "{n} entries of hash store {} ({:.1} MiB) are used by no guest now; it was busy: `vhashify --gc` frees them",
            store.display(),
            mib(*bytes)
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> BuildArgs {
        Defaults::try_parse_from(std::iter::once("build").chain(v.iter().copied())).unwrap().args
    }

    #[test]
    fn the_command_line_wins_and_lists_add_up() {
        let def = parse(&["--context", "300", "--netdev", "eth0", "--interface", "10.0.0.1", "--flags", "virt_uptime"]);
        let cmd = parse(&["-m", "skeleton", "--context", "301", "--interface", "10.0.0.2/255.255.0.0"]);
        let m = merge(cmd, def);
        assert_eq!((m.context, m.netdev.as_deref()), (Some(301), Some("eth0")));
        assert_eq!(m.interfaces, vec!["10.0.0.1", "10.0.0.2/255.255.0.0"]);
        let o = options(&m).unwrap();
        assert_eq!(o.interfaces[1].prefix, Some(16));
        assert_eq!(o.flags, vec!["virt_uptime"]);
    }

    #[test]
    fn usage_errors() {
        assert!(options(&parse(&["--context", "5"])).is_err(), "no method");
        assert!(options(&parse(&["-m", "clone"])).is_err(), "clone without a source");
        assert!(options(&parse(&["-m", "skeleton", "--netmask", "255.0.255.0"])).is_err());
        assert!(Defaults::try_parse_from(["build", "-m", "nosuch"]).is_err());
        assert!(Defaults::try_parse_from(["build", "--netmask", "255.0.0.0", "--netprefix", "8"]).is_err());
    }
}
