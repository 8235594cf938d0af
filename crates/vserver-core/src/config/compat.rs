//! util-vserver's files whose value decides what start does with them:
//! the uts names a stock kernel cannot change, personality flags, the
//! network-namespace options (`nflags`, `spaces/net`, `netns/`), the ids
//! that must equal the context id, exclusive cpusets, the reboot helper's
//! action, `umask`, the older `schedule` file and `shell`. Each goes into
//! the guest's settings, or into `findings.refused` naming its file.

use std::collections::BTreeSet;
use std::path::Path;

use super::parse::{name_edits, parse_single, read_lines, read_single, ConfigError};
use super::{flags, load_edits, sched, ContextFlag, Findings, Guest, Lookup, NetFlag, Personality, SchedConfig, Uts};

pub(super) fn load_uts(at: &Lookup, personality: Personality, findings: &mut Findings) -> Result<Uts, ConfigError> {
    let hostname = |s: &str| -> Result<String, &'static str> {
        if s.len() <= 64 && !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)) {
            Ok(s.to_string())
        } else {
            Err("is not a host or domain name (1-64 characters of A-Z a-z 0-9 - . _)")
        }
    };
    let host = nix::sys::utsname::uname().ok();
    let host_field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        host.as_ref().map(|u| f(u).to_string_lossy().into_owned()).unwrap_or_default()
    };
    let machine_file = at.guest.join("uts/machine");
    if let Some(line) = read_single(&machine_file)? {
        let wanted32 = matches!(line.text.as_str(), "i386" | "i486" | "i586" | "i686");
        let consistent = (wanted32 && personality == Personality::Linux32) || line.text == host_field(|u| u.machine());
        if !consistent {
            return Err(ConfigError::bad_value(
                &machine_file,
                line.number,
                &line.text,
                "cannot be set on a stock kernel; uname -m follows `personality` (linux32 gives i686)",
            ));
        }
    }
    // A stock kernel has one kernel name, release and version for everybody.
    for (file, host_value) in [
        ("uts/sysname", host_field(|u| u.sysname())),
        ("uts/release", host_field(|u| u.release())),
        ("uts/version", host_field(|u| u.version())),
    ] {
        let path = at.file(file);
        if let Some(line) = read_single(&path)? {
            if line.text != host_value {
                findings.refused.push(ConfigError::bad_value(
                    &path,
                    line.number,
                    &line.text,
                    format!("cannot be set on a stock kernel, which reports {host_value:?} to every guest; remove the file"),
                ));
            }
        }
    }
    // util-vserver's older names, read when the uts/ ones are missing.
    let mut legacy = |new: &str, old: &str| -> Result<Option<String>, ConfigError> {
        let own = at.guest.join(new);
        let old_file = at.guest.join(old);
        if own.exists() || !old_file.exists() {
            return parse_single(&own, hostname);
        }
        findings.warnings.push(ConfigError::new(&old_file, 0, format!("is util-vserver's old name of {new}; rename it")));
        parse_single(&old_file, hostname)
    };
    Ok(Uts { nodename: legacy("uts/nodename", "hostname")?, domainname: legacy("uts/domainname", "domainname")? })
}

/// `personality`: the domain on the first line, then flags one per line.
pub(super) fn load_personality(file: &Path) -> Result<(Personality, libc::c_ulong), ConfigError> {
    let Some(lines) = read_lines(file)? else { return Ok((Personality::Linux, 0)) };
    let Some((first, rest)) = lines.split_first() else {
        return Err(ConfigError::new(file, 0, "is empty; remove the file or give it a value"));
    };
    let domain = Personality::parse(&first.text).map_err(|e| ConfigError::bad_value(file, first.number, &first.text, e))?;
    let mut flags = 0;
    for l in rest {
        flags |= flags::parse_personality_flag(&l.text).map_err(|e| ConfigError::bad_value(file, l.number, &l.text, e))?;
    }
    Ok((domain, flags))
}

/// The network-namespace options of util-vserver: `nflags` HIDE_NETIF,
/// `spaces/net` (empty: a namespace of its own; `0`: none; a guest's xid:
/// shared, refused), and a `netns/` directory (also from `.defaults`
/// unless `nonetns`). True when one of them asks for a namespace.
pub(super) fn load_net_spaces(at: &Lookup, cflags: &BTreeSet<ContextFlag>, findings: &mut Findings) -> Result<bool, ConfigError> {
    let nflags = load_edits(at, "nflags", BTreeSet::new(), flags::parse_nflag)?;
    let mut wanted = nflags.contains(&NetFlag::HideNetif);
    let spaces_net = at.file("spaces/net");
    if let Some(text) = super::parse::read_optional(&spaces_net)? {
        match text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')) {
            None => wanted = true,
            Some("0") => {}
            Some(other) => findings.refused.push(ConfigError::bad_value(
                &spaces_net,
                1,
                other,
                "would share another guest's network namespace; every guest here has its own (leave the file empty)",
            )),
        }
    }
    let netns = at.guest.join("netns");
    if netns.is_dir() || (!at.guest.join("nonetns").exists() && at.defaults.join("netns").is_dir()) {
        wanted = true;
    }
    if nflags.contains(&NetFlag::HideLback) && !wanted && !cflags.contains(&ContextFlag::HideNetif) {
        findings.refused.push(ConfigError::new(
            &at.file("nflags"),
            0,
            "HIDE_LBACK hides lo, which a guest sharing the host network cannot do without hiding the host's; use it with HIDE_NETIF",
        ));
    }
    Ok(wanted)
}

/// util-vserver files whose value decides whether start can honour them.
pub(super) fn check_compat(at: &Lookup, xid: u32, own_netns: bool, findings: &mut Findings) -> Result<(), ConfigError> {
    let same_id = |file: &str, what: &str, findings: &mut Findings| -> Result<(), ConfigError> {
        let path = at.file(file);
        if let Some(id) = parse_single(&path, |s| s.parse::<u32>().map_err(|_| "is not a number"))? {
            if id != xid {
                findings.refused.push(ConfigError::bad_value(
                    &path,
                    1,
                    &id.to_string(),
                    format!("differs from the context id {xid}: {what}"),
                ));
            }
        }
        Ok(())
    };
    same_id("ncontext", "a network context shared with other guests is not possible here", findings)?;
    same_id("tag", "files are tagged with the context id", findings)?;
    let noncontext = at.file("noncontext");
    if noncontext.exists() && !own_netns {
        findings.refused.push(ConfigError::new(
            &noncontext,
            0,
            "switches the guest's IP set off while it shares the host network; say so with interfaces/unrestricted",
        ));
    }
    for (f, why) in [
        ("cpuset/cpu_exclusive", "an exclusive cpuset takes the CPUs from the host and every other guest"),
        ("cpuset/cpus_exclusive", "an exclusive cpuset takes the CPUs from the host and every other guest"),
        ("cpuset/mem_exclusive", "an exclusive cpuset takes the memory nodes from the host and every other guest"),
        ("cpuset/mems_exclusive", "an exclusive cpuset takes the memory nodes from the host and every other guest"),
        ("cpuset/virtualized", "no stock-kernel mechanism shows a guest only its cpuset's CPUs"),
    ] {
        let path = at.file(f);
        if let Some(line) = read_single(&path)? {
            if line.text != "0" {
                findings.refused.push(ConfigError::bad_value(&path, line.number, &line.text, why));
            }
        }
    }
    let action = at.file("apps/vshelper/action");
    if let Some(line) = read_single(&action)? {
        if line.text != "restart" {
            findings.refused.push(ConfigError::bad_value(
                &action,
                line.number,
                &line.text,
                "is not restart: a reboot inside a guest restarts it, a halt stops it",
            ));
        }
    }
    let umask = at.file("umask");
    if let Some(lines) = read_lines(&umask)? {
        for (line, name, add) in name_edits(&lines) {
            match flags::parse_umask_entry(name, add) {
                Ok(()) => {}
                Err(e) if add && !e.starts_with("is not") => findings.refused.push(ConfigError::bad_value(&umask, line.number, name, e)),
                Err(e) => return Err(ConfigError::bad_value(&umask, line.number, name, e)),
            }
        }
    }
    if at.guest.join("fstab.local").exists() {
        findings.warnings.push(ConfigError::new(
            &at.guest.join("fstab.local"),
            0,
            "is util-vserver's obsolete second fstab; it is mounted after fstab: merge it into fstab",
        ));
    }
    Ok(())
}

/// `sched/`, or util-vserver's older `schedule` file when there is no
/// `sched/` directory.
pub(super) fn load_sched(at: &Lookup) -> Result<SchedConfig, ConfigError> {
    let sched_dir = at.file("sched");
    let mut cfg = sched::parse_sched(&sched_dir, &at.file("cpuset"))?;
    if !sched_dir.is_dir() {
        sched::parse_schedule(&at.file("schedule"), &mut cfg)?;
    }
    Ok(cfg)
}

/// `shell`, else `.defaults/shell`: the command line of `enter`'s shell.
pub(super) fn load_shell(at: &Lookup) -> Result<Option<Vec<String>>, ConfigError> {
    Ok(read_single(&at.file("shell"))?.map(|l| l.text.split_whitespace().map(str::to_string).collect()))
}

/// The shell `enter` starts: `shell` if set, else util-vserver's choice of
/// the first the guest has of `/bin/bash -login`, `/bin/sh -l`, `/bin/csh`.
/// `exists` answers inside the guest.
pub fn enter_shell_argv(guest: &Guest, exists: impl Fn(&str) -> bool) -> Vec<String> {
    if let Some(shell) = guest.shell.clone().filter(|s| !s.is_empty()) {
        return shell;
    }
    let candidates: [&[&str]; 3] = [&["/bin/bash", "-login"], &["/bin/sh", "-l"], &["/bin/csh"]];
    let pick = candidates.iter().find(|c| exists(c[0])).copied().unwrap_or(&["/bin/sh", "-l"]);
    pick.iter().map(|s| s.to_string()).collect()
}
