//! `vserver NAME status` in util-vserver's words, which scripts grep for:
//! `Vserver 'web1' is running at context '5501'`, the number of processes
//! and the uptime; `Vserver 'web1' is stopped` and exit 3. `--json` gives
//! the run state and every figure `vserver-stat` has.

use anyhow::{Context, Result};
use vserver_core::cgroup::{GuestCgroup, Layout};
use vserver_core::runstate::{self, RunState, Status};
use vserver_core::{config, Paths};

use crate::cli::EXIT_STOPPED;
use crate::guest_arg::Named;

pub fn run(paths: &Paths, guest: &Named, json: bool) -> Result<u8> {
    // Only the run state counts (a broken configuration does not stop a
    // guest from running or from being reported stopped).
    if !paths.guest_confdir(&guest.name).is_dir() {
        config::load_guest(paths, &guest.name)?; // the "no such guest" error
    }
    let status = runstate::settled_status(paths, &guest.name, runstate::SETTLE_LIMIT).context("reading the run state")?;
    if json {
        println!("{}", json_doc(paths, &guest.name, &status));
    } else {
        match &status {
            Status::Running(s) => {
                print!("{}", running_text(&guest.as_given, s.xid, process_count(paths, s), now_secs() - s.started_at.min(now_secs())))
            }
            Status::Stopped => println!("Vserver '{}' is stopped", guest.as_given),
            Status::Stale(s) => {
                println!("Vserver '{}' is stopped", guest.as_given);
                eprintln!(
                    "vserver {}: its run state is stale (monitor {} / init {} are gone); `vserver {} stop` cleans it up",
                    guest.name, s.monitor.pid, s.init.pid, guest.name
                );
            }
        }
    }
    Ok(match status {
        Status::Running(_) => 0,
        Status::Stopped | Status::Stale(_) => EXIT_STOPPED,
    })
}

/// util-vserver's three lines (`msg` with echo's spacing).
pub fn running_text(as_given: &str, xid: u32, processes: u64, uptime_secs: u64) -> String {
    format!(
        "Vserver '{as_given}' is running at context '{xid}'\nNumber of processes:  {processes}\nUptime:               {}\n",
        filetime(uptime_secs)
    )
}

/// util-vserver's `filetime`: `[D days, ]HH:MM`.
pub fn filetime(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let hm = format!("{:02}:{:02}", rest / 3600, (rest % 3600) / 60);
    if days > 0 {
        format!("{days} days, {hm}")
    } else {
        hm
    }
}

fn process_count(paths: &Paths, state: &RunState) -> u64 {
    Layout::detect(&paths.cgroup_root)
        .ok()
        .and_then(|l| GuestCgroup::from_dirs(&l, state.cgroups.clone()).pids().ok())
        .map_or(0, |p| p.len() as u64)
}

fn json_doc(paths: &Paths, name: &str, status: &Status) -> serde_json::Value {
    let word = match status {
        Status::Running(_) => "running",
        Status::Stopped => "stopped",
        Status::Stale(_) => "stale",
    };
    let mut v = serde_json::json!({ "name": name, "status": word });
    if let Status::Running(s) | Status::Stale(s) = status {
        v["xid"] = s.xid.into();
        v["init_pid"] = s.init.pid.into();
        v["monitor_pid"] = s.monitor.pid.into();
        v["started_at_seconds"] = s.started_at.into();
        v["uptime_seconds"] = now_secs().saturating_sub(s.started_at).into();
    }
    if let Status::Running(s) = status {
        match vserver_core::stat::collect_guest(paths, s, vserver_core::stat::Detail::WithLimits) {
            Ok(row) => v["figures"] = serde_json::to_value(row).unwrap_or_default(),
            Err(e) => eprintln!("vserver: {name}: figures unavailable: {e:#}"),
        }
    }
    v
}

fn now_secs() -> u64 {
    runstate::now_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn util_vserver_wording() {
        assert_eq!(
            running_text("nc1", 5501, 3, 3725),
            "Vserver 'nc1' is running at context '5501'\nNumber of processes:  3\nUptime:               01:02\n"
        );
        assert_eq!(filetime(59), "00:00");
        assert_eq!(filetime(2 * 86_400 + 61), "2 days, 00:01");
    }
}
