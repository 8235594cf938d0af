//! `build -m debootstrap -- -d SUITE [-m MIRROR] [-s SCRIPT] [-- DEBOOTSTRAP-OPTIONS...]`:
//! a Debian guest that boots. debootstrap's own default variant (the
//! admin's `--variant` wins) and the init of the chosen style:
//! - `systemd` (Debian's default): systemd-sysv, the guest's systemd as pid 1;
//! - `sysv`: sysvinit-core instead of systemd-sysv, its rc scripts run by the
//!   built-in init;
//! - `plain`: sysvinit-core too, its own /sbin/init as pid 1.
//!
//! As util-vserver's method, the mirror comes from `-m`, else
//! `.distributions/SUITE/debootstrap.mirror` or
//! `.defaults/apps/debootstrap/mirror`, else the host's apt sources; the
//! first line of `.distributions/SUITE/debootstrap.options` or
//! `.defaults/apps/debootstrap/options` goes before the admin's options.
//! `VSERVER_DEBOOTSTRAP_CACHE=DIR` keeps the downloaded packages in DIR
//! (debootstrap's `--cache-dir`), for repeated builds; builds sharing it
//! take turns (a lock file in DIR).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::{BuildError, Doing};
use super::{InitChoice, UsageError};
use crate::conffile::ConfigError;
use crate::paths::Paths;

pub const CACHE_ENV: &str = "VSERVER_DEBOOTSTRAP_CACHE";

/// The method's arguments, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    pub suite: Option<String>,
    pub mirror: Option<String>,
    pub script: Option<String>,
    /// Options for debootstrap itself.
    pub options: Vec<String>,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Args, UsageError> {
        let mut out = Args::default();
        let mut it = args.iter();
        let need = |v: Option<&String>, what: &str| v.cloned().ok_or_else(|| UsageError(format!("build -m debootstrap: {what}")));
        while let Some(a) = it.next() {
            match a.as_str() {
                "-d" => out.suite = Some(need(it.next(), "-d needs a distribution (e.g. bookworm)")?),
                "-m" => out.mirror = Some(need(it.next(), "-m needs a mirror URL")?),
                "-s" => out.script = Some(need(it.next(), "-s needs a debootstrap script")?),
                "--" => out.options.extend(it.by_ref().cloned()),
                other => out.options.push(other.to_string()),
            }
        }
        Ok(out)
    }
}

/// What the init style needs from debootstrap.
fn init_packages(init: InitChoice) -> (&'static [&'static str], &'static [&'static str]) {
    match init {
        InitChoice::Systemd => (&["systemd-sysv"], &[]),
        // orphan-sysvinit-scripts: init scripts for packages that ship only a
        // systemd unit (rsyslog, ...); sysvinit-core recommends it, and
        // debootstrap installs no recommendations.
        InitChoice::Sysv | InitChoice::Plain => (&["sysvinit-core", "orphan-sysvinit-scripts"], &["systemd-sysv"]),
    }
}

pub(super) fn build(paths: &Paths, vdir: &Path, args: &Args, init: InitChoice) -> Result<(), BuildError> {
    let suite = args.suite.clone().unwrap_or_else(host_suite);
    let defaults = paths.defaults_dir();
    let per_suite = paths.confdir.join(".distributions").join(&suite);
    let mirror = match &args.mirror {
        Some(m) => m.clone(),
        None => first_line(&[per_suite.join("debootstrap.mirror"), defaults.join("apps/debootstrap/mirror")])?
            .or_else(host_mirror)
            .ok_or(BuildError::NoMirror)?,
    };
    let mut options: Vec<String> = first_line(&[per_suite.join("debootstrap.options"), defaults.join("apps/debootstrap/options")])?
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    options.extend(args.options.iter().cloned());
    let options = with_init(options, init)?;
    if Command::new("debootstrap").arg("--version").output().is_err() {
        let uri = defaults.join("apps/debootstrap/uri");
        let hint = if uri.exists() {
            format!(" ({} is not used here: vserver runs the host's debootstrap)", uri.display())
        } else {
            String::new()
        };
        return Err(BuildError::NoDebootstrap { hint });
    }
    let mut cmd = Command::new("debootstrap");
    cmd.args(&options);
    let mut _cache_lock = None;
    if let Some(cache) = std::env::var_os(CACHE_ENV).filter(|c| !c.is_empty()) {
        if !options.iter().any(|o| o.starts_with("--cache-dir")) {
            let cache = PathBuf::from(cache);
            if !cache.is_absolute() {
                return Err(BuildError::CacheNotAbsolute { cache });
            }
            fs::create_dir_all(&cache).doing(|| format!("{CACHE_ENV}: creating {}", cache.display()))?;
            // debootstrap moves files in and out of its cache: one build at a time.
            _cache_lock = Some(lock(&cache.join(".vserver-build.lock"))?);
            cmd.arg(format!("--cache-dir={}", cache.display()));
        }
    }
    cmd.arg(&suite).arg(vdir).arg(&mirror);
    if let Some(s) = &args.script {
        cmd.arg(s);
    }
    // debootstrap mounts /proc and /sys in the new tree; in a mount
    // namespace of its own they go away with it, even if it fails half-way.
    crate::sys::mount::exec_in_private_mount_ns(&mut cmd);
    let status = cmd.status().doing(|| "running debootstrap".to_string())?;
    if !status.success() {
        let log = fs::read_to_string(vdir.join("debootstrap/debootstrap.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let log_tail: String = tail.into_iter().rev().map(|l| format!("\n  {l}")).collect();
        let options = options.join(" ");
        return Err(BuildError::DebootstrapFailed { options, suite, vdir: vdir.to_path_buf(), mirror, status, log_tail });
    }
    Ok(())
}

/// An exclusive lock on `file`, held until the returned file is dropped.
fn lock(file: &Path) -> Result<fs::File, BuildError> {
    let f = fs::File::create(file).doing(|| format!("creating {}", file.display()))?;
    crate::sys::flock(std::os::fd::AsFd::as_fd(&f), true).doing(|| format!("locking {}", file.display()))?;
    Ok(f)
}

/// debootstrap keeps only the last `--include` and `--exclude`: one of each,
/// the admin's packages and the init's together.
fn with_init(options: Vec<String>, init: InitChoice) -> Result<Vec<String>, BuildError> {
    let (mut include, mut exclude, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    let mut it = options.into_iter();
    while let Some(o) = it.next() {
        let list = |v: String| v.split(',').filter(|p| !p.is_empty()).map(str::to_string).collect::<Vec<_>>();
        if let Some(v) = o.strip_prefix("--include=") {
            include.extend(list(v.to_string()));
        } else if let Some(v) = o.strip_prefix("--exclude=") {
            exclude.extend(list(v.to_string()));
        } else if o == "--include" || o == "--exclude" {
            let v = it.next().ok_or_else(|| BuildError::NeedsPackageList { option: o.clone() })?;
            if o == "--include" {
                include.extend(list(v))
            } else {
                exclude.extend(list(v))
            }
        } else {
            rest.push(o);
        }
    }
    let (want, unwanted) = init_packages(init);
    for &p in want {
        if exclude.iter().any(|e| e == p) {
            return Err(BuildError::ExcludesInitPackage { package: p, init });
        }
    }
    for &p in unwanted {
        if include.iter().any(|i| i == p) {
            return Err(BuildError::IncludesUnwantedPackage { package: p, init });
        }
    }
    include.extend(want.iter().map(|p| p.to_string()).filter(|p| !include.contains(p)).collect::<Vec<_>>());
    exclude.extend(unwanted.iter().map(|p| p.to_string()).filter(|p| !exclude.contains(p)).collect::<Vec<_>>());
    if !include.is_empty() {
        rest.push(format!("--include={}", include.join(",")));
    }
    if !exclude.is_empty() {
        rest.push(format!("--exclude={}", exclude.join(",")));
    }
    Ok(rest)
}

/// The first meaningful line of the first file that exists.
fn first_line(files: &[PathBuf]) -> Result<Option<String>, ConfigError> {
    for f in files {
        if let Some(line) = crate::config::parse::read_lines(f)?.and_then(|l| l.into_iter().next()) {
            return Ok(Some(line.text));
        }
    }
    Ok(None)
}

fn host_suite() -> String {
    fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VERSION_CODENAME=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| "stable".to_string())
}

/// The first Debian archive URL in the host's apt sources (one-line or deb822).
pub fn host_mirror() -> Option<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(d) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<_> = d.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else { continue };
        for line in text.lines().map(str::trim) {
            let url = if let Some(rest) = line.strip_prefix("deb ") {
                rest.split_whitespace().find(|w| w.contains("://"))
            } else {
                line.strip_prefix("URIs:").and_then(|r| r.split_whitespace().next())
            };
            if let Some(u) = url.filter(|u| !u.contains("security")) {
                return Some(u.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_admins_packages_and_the_inits_become_one_include() {
        let o = with_init(s(&["--include=nginx-light,cron", "--variant=minbase", "--include", "less"]), InitChoice::Sysv).unwrap();
        assert_eq!(
            o,
            s(&["--variant=minbase", "--include=nginx-light,cron,less,sysvinit-core,orphan-sysvinit-scripts", "--exclude=systemd-sysv"])
        );
        let o = with_init(s(&[]), InitChoice::Systemd).unwrap();
        assert_eq!(o, s(&["--include=systemd-sysv"]));
        assert!(with_init(s(&["--include=systemd-sysv"]), InitChoice::Sysv).is_err());
        assert!(with_init(s(&["--exclude=systemd-sysv"]), InitChoice::Systemd).is_err());
    }

    #[test]
    fn method_arguments() {
        let a = Args::parse(&s(&["-d", "trixie", "-m", "http://m/debian", "--", "--include=x"])).unwrap();
        assert_eq!(a.suite.as_deref(), Some("trixie"));
        assert_eq!(a.mirror.as_deref(), Some("http://m/debian"));
        assert_eq!(a.options, s(&["--include=x"]));
        assert!(Args::parse(&s(&["-d"])).is_err());
    }
}
