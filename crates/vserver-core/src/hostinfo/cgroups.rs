//! The cgroup layout (through `cgroup::Layout`, the detection guests use)
//! and where each controller the limits need can be used.

use std::path::PathBuf;

use serde::Serialize;

use super::{Check, Host, Status};
use crate::cgroup::{Layout, LayoutKind};

#[derive(Debug, Clone, Default, Serialize)]
pub struct CgroupSummary {
    pub root: PathBuf,
    /// "v2-only", "hybrid" or "v1-only"; None when nothing is mounted.
    pub layout: Option<&'static str>,
    /// The cgroup2 mount (the BPF hooks attach there).
    pub v2_mount: Option<PathBuf>,
    pub v1: Vec<V1Mount>,
    /// Controllers the cgroup2 root offers (none on a hybrid host).
    pub v2_controllers: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct V1Mount {
    pub controllers: Vec<String>,
    pub mount: PathBuf,
}

/// The controllers behind context-wide limits, and what each one enforces.
const CONTROLLERS: &[(&str, &str)] = &[
    ("memory", "context-wide rss limits (rlimits/rss, vlimit --rss) and memory accounting"),
    ("pids", "context-wide process limits (rlimits/nproc, vlimit --nproc)"),
    ("cpu", "the cpu token bucket (sched/ fill-rate, interval, tokens-max)"),
    ("cpuset", "pinning a guest to cpus and memory nodes (cpuset/)"),
];

const LAYOUT_NEEDED_FOR: &str = "every guest: its cgroup vserver/NAME for membership, accounting, limits and clean-up";

pub fn checks(host: &Host) -> (CgroupSummary, Vec<Check>) {
    let layout = match Layout::detect(&host.cgroup_root) {
        Ok(l) => l,
        Err(e) => {
            let summary = CgroupSummary { root: host.cgroup_root.clone(), ..Default::default() };
            return (summary, vec![Check::new("cgroup.layout", Status::Missing, e.to_string(), LAYOUT_NEEDED_FOR, true)]);
        }
    };
    let summary = summarize(host, &layout);
    let mut checks = vec![layout_check(&summary, layout.kind())];
    checks.extend(CONTROLLERS.iter().map(|(name, needed_for)| controller_check(&summary, &layout, name, needed_for)));
    (summary, checks)
}

fn summarize(host: &Host, layout: &Layout) -> CgroupSummary {
    CgroupSummary {
        root: host.cgroup_root.clone(),
        layout: Some(match layout.kind() {
            LayoutKind::V2Only => "v2-only",
            LayoutKind::Hybrid => "hybrid",
            LayoutKind::V1Only => "v1-only",
        }),
        v2_mount: layout.v2.clone(),
        v1: layout.v1.iter().map(|h| V1Mount { controllers: h.controllers.clone(), mount: h.mount.clone() }).collect(),
        v2_controllers: layout.v2_controllers(),
    }
}

fn layout_check(s: &CgroupSummary, kind: LayoutKind) -> Check {
    let v1: Vec<String> = s.v1.iter().map(|h| h.controllers.join(",")).collect();
    let v2 = s.v2_mount.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let (status, detail) = match kind {
        LayoutKind::V2Only => (Status::Ok, format!("v2-only: cgroup2 at {v2}")),
        LayoutKind::Hybrid => (Status::Ok, format!("hybrid: cgroup2 at {v2}, v1 hierarchies {} under {}", v1.join(" "), s.root.display())),
        LayoutKind::V1Only => {
            (Status::Limited, format!("v1-only: hierarchies {} under {}, no cgroup2 mount", v1.join(" "), s.root.display()))
        }
    };
    Check::new("cgroup.layout", status, detail, LAYOUT_NEEDED_FOR, true)
}

fn controller_check(s: &CgroupSummary, layout: &Layout, name: &str, needed_for: &str) -> Check {
    let id = format!("cgroup.controller.{name}");
    if let Some(mount) = layout.v1_mount(name) {
        return Check::new(id, Status::Ok, format!("v1 at {}", mount.display()), needed_for, false);
    }
    if let (Some(v2), true) = (&s.v2_mount, s.v2_controllers.iter().any(|c| c == name)) {
        return Check::new(id, Status::Ok, format!("v2 at {}", v2.display()), needed_for, false);
    }
    let detail = match &s.v2_mount {
        Some(v2) => format!("neither a v1 hierarchy nor in {}/cgroup.controllers", v2.display()),
        None => "no v1 hierarchy has it and there is no cgroup2 mount".to_string(),
    };
    Check::new(id, Status::Missing, detail, needed_for, false)
}
