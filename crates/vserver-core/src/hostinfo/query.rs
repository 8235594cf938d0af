//! `vserver-info NAME TAG [ARG]`: util-vserver's scripting forms, as its
//! src/vserver-info.c answers them. A found value is printed (exit 0); a
//! question without an answer prints nothing and exits 1, which is what
//! scripts test (`vserver-info -q web1 RUNNING && ...`).
//!
//! Contexts come from our run state, guests from the configuration root;
//! nothing is looked up inside a guest.

use std::path::{Path, PathBuf};

use crate::config;
use crate::paths::{validate_guest_name, Paths};
use crate::running::{find_running, uts, Selector};
use crate::runstate;
use crate::stat::owner::{ContextMap, Owner};

/// What a query answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Print this line, exit 0.
    Value(String),
    /// Exit 0, print nothing (FEATURE, VERIFY*).
    Yes,
    /// Exit 1, print nothing.
    No,
}

pub const TAGS: &[(&str, &str)] = &[
    ("CONTEXT", "the guest's context id: running, or (unless the argument is false) the configured one"),
    ("ID", "the configuration directory of the running guest with this context id"),
    ("RUNNING", "prints 1 when the guest (a name or a context id) runs; else fails without output"),
    ("VDIR", "the guest's root directory (argument 1: with symlinks resolved)"),
    ("NAME", "the guest's name (its `name` file, else the directory name)"),
    ("CFGDIR", "the guest's configuration directory"),
    ("APPDIR", "the guest's apps/ARG configuration directory"),
    ("INITPID", "the host pid of the init of a running guest (a name or a context id)"),
    ("INITPID_PID", "the host pid of the init of the context a host pid is in"),
    ("XID", "the context id of a host pid"),
    ("APIVER", "the Linux-VServer kernel API version: none on a stock kernel (fails)"),
    ("UTS", "an uts name of a running guest: context, sysname, nodename, release, version, machine, domainname"),
    ("SYSINFO", "versions and what this host offers"),
    ("FEATURE", "exit 0 when feature ARG is available (vserver-info - FEATURE vwait)"),
    ("PXID", "the parent context: contexts are not nested here (fails)"),
    ("CANONIFY", "the name with every character but A-Z a-z 0-9 removed"),
    ("VERIFYCAP", "exit 0 when capabilities are enforced (root only)"),
    ("VERIFYPROC", "exit 0 when /proc is readable"),
    ("XIDTYPE", "main (0), watch (1), static (2-49151) or invalid; with arguments, only if one of them"),
    ("NID", "the network context of a host pid (the guest's context id; 0 for the host)"),
    ("TAG", "the file tag (project id) a host pid's new files get: the guest's context id; 0 for the host"),
];

pub fn is_tag(tag: &str) -> bool {
    TAGS.iter().any(|(t, _)| *t == tag)
}

/// util-vserver's str2bool: a number other than 0, or a word starting with
/// y, t (any case), or "true".
fn str2bool(s: &str) -> bool {
    s.parse::<i64>().is_ok_and(|n| n != 0) || s.starts_with(['y', 'Y', 't', 'T']) || s.eq_ignore_ascii_case("true")
}

/// The guest a NAME or configuration-directory argument names.
fn guest_name(paths: &Paths, target: &str) -> Option<String> {
    let name = if target.contains('/') {
        let dir = std::fs::canonicalize(target).ok()?;
        let root = std::fs::canonicalize(&paths.confdir).ok()?;
        if dir.parent()? != root {
            return None;
        }
        dir.file_name()?.to_str()?.to_string()
    } else {
        target.to_string()
    };
    (validate_guest_name(&name).is_ok() && paths.guest_confdir(&name).is_dir()).then_some(name)
}

fn value(v: impl ToString) -> Reply {
    Reply::Value(v.to_string())
}

fn opt(v: Option<impl ToString>) -> Reply {
    v.map_or(Reply::No, value)
}

pub fn query(paths: &Paths, target: &str, tag: &str, args: &[String], report: impl FnOnce() -> super::Report) -> Reply {
    let name = || guest_name(paths, target);
    match tag {
        "CONTEXT" => {
            let Some(n) = name() else { return Reply::No };
            if let Ok(s) = find_running(paths, &Selector::Name(n.clone())) {
                return value(s.xid);
            }
            let allow_static = args.first().is_none_or(|a| str2bool(a));
            opt(allow_static.then(|| config::load_guest(paths, &n).ok().map(|g| g.xid)).flatten())
        }
        "ID" => opt(running(paths, target).map(|s| paths.guest_confdir(&s.name).display().to_string())),
        "RUNNING" => opt(running(paths, target).map(|_| 1)),
        "VDIR" => opt(name().and_then(|n| vdir(paths, &n, args.first().is_some_and(|a| str2bool(a))))),
        "NAME" => opt(name().and_then(|n| config::load_guest(paths, &n).ok().map(|g| g.display_name))),
        "CFGDIR" => opt(name().map(|n| paths.guest_confdir(&n).display().to_string())),
        "APPDIR" => {
            let app = args.first().map(String::as_str).unwrap_or("");
            let dir = name().map(|n| paths.guest_confdir(&n).join("apps").join(app));
            opt(dir.filter(|d| d.is_dir()).map(|d| d.display().to_string()))
        }
        "INITPID" => opt(running(paths, target).map(|s| s.init.pid)),
        "INITPID_PID" => opt(pid_owner(paths, target).and_then(|o| match o {
            Owner::Host => Some(1),
            other => find_running(paths, &Selector::Name(other.guest_name()?.to_string())).ok().map(|s| s.init.pid),
        })),
        "XID" | "NID" | "TAG" => opt(pid_owner(paths, target).and_then(|o| o.xid())),
        "APIVER" | "PXID" => Reply::No,
        "UTS" => {
            let Some(state) = running(paths, target) else { return Reply::No };
            let Ok(names) = uts::read(&state, &paths.guest_confdir(&state.name)) else { return Reply::No };
            match args.first() {
                Some(t) => match uts::Tag::parse(t) {
                    Ok(t) => value(names.get(t)),
                    Err(_) => Reply::No,
                },
                None => value(uts::ALL.iter().map(|t| names.get(*t)).collect::<Vec<_>>().join(" ")),
            }
        }
        "SYSINFO" => value(sysinfo(&report())),
        "FEATURE" => match args.first() {
            Some(f) if super::features::supported(&report(), f) => Reply::Yes,
            _ => Reply::No,
        },
        "CANONIFY" => {
            let c: String = target.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            if c.is_empty() {
                Reply::No
            } else {
                value(c)
            }
        }
        "VERIFYCAP" => yes_if(capabilities_enforced()),
        "VERIFYPROC" => yes_if(std::fs::File::open("/proc/uptime").is_ok()),
        "XIDTYPE" => {
            let xid = match Selector::parse(target) {
                Ok(Selector::Xid(x)) => Some(x),
                Ok(Selector::Name(n)) => config::load_guest(paths, &n).ok().map(|g| g.xid),
                Err(_) if target == "self" || target.is_empty() => Some(0),
                Err(_) => None,
            };
            let kind = match xid {
                Some(0) => "main",
                Some(1) => "watch",
                Some(x) if (config::XID_MIN..=config::XID_MAX).contains(&x) => "static",
                _ => "invalid",
            };
            if args.is_empty() || args.iter().any(|a| a.eq_ignore_ascii_case(kind)) {
                value(kind)
            } else {
                Reply::No
            }
        }
        _ => Reply::No,
    }
}

fn yes_if(b: bool) -> Reply {
    if b {
        Reply::Yes
    } else {
        Reply::No
    }
}

fn running(paths: &Paths, target: &str) -> Option<runstate::RunState> {
    find_running(paths, &Selector::parse(target).ok()?).ok()
}

fn pid_owner(paths: &Paths, target: &str) -> Option<Owner> {
    let pid: i32 = target.parse().ok().filter(|p| *p > 0)?;
    ContextMap::load(paths).ok()?.owner_of(pid)
}

/// util-vserver: the `vdir` entry itself when it is a symlink to a
/// directory; with `physical`, the path with every symlink resolved.
fn vdir(paths: &Paths, name: &str, physical: bool) -> Option<String> {
    let entry = paths.guest_confdir(name).join("vdir");
    let dir: PathBuf = config::load_guest(paths, name).ok()?.vdir;
    if !dir.is_dir() {
        return None;
    }
    if physical {
        return std::fs::canonicalize(&dir).ok().map(|p| p.display().to_string());
    }
    let shown: &Path = if entry.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) { &entry } else { &dir };
    Some(shown.display().to_string())
}

fn sysinfo(report: &super::Report) -> String {
    format!(
        "Versions:\n                   Kernel: {}\n                   VS-API: none (a stock kernel; namespaces, cgroups, seccomp)\n\
         \x20              vserver-rs: {}\n\n{}",
        report.kernel,
        env!("CARGO_PKG_VERSION"),
        super::render_text(report).trim_end()
    )
}

/// util-vserver's VERIFYCAP: a process without capabilities must not be
/// able to chroot. Checked in a child, which drops them all.
fn capabilities_enforced() -> bool {
    use crate::sys::process;
    let child = process::fork_child(|| {
        let dropped = [caps::CapSet::Effective, caps::CapSet::Permitted, caps::CapSet::Inheritable]
            .into_iter()
            .all(|set| caps::clear(None, set).is_ok());
        let refused = nix::unistd::chroot("/").is_err();
        if dropped && refused {
            0
        } else {
            1
        }
    });
    match child.and_then(|pid| process::wait_pid(pid, 0)) {
        Ok(Some(status)) => process::exit_code(status) == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn util_vserver_booleans() {
        for t in ["1", "yes", "True", "t", "Y"] {
            assert!(str2bool(t), "{t}");
        }
        for f in ["0", "false", "no", "f", ""] {
            assert!(!str2bool(f), "{f}");
        }
    }
}
