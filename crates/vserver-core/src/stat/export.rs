//! Machine-readable vserver-stat: JSON (every figure a number, plus limits,
//! peaks and hits) and the Prometheus text format, for a node exporter
//! textfile collector or a Nagios check that alerts on limit hits the way
//! OpenVZ users watch the beancounters' failcnt.

use std::fmt::Write as _;

use super::ContextRow;
use crate::dlimit::DiskUsage;

#[derive(serde::Serialize)]
struct Doc<'a> {
    contexts: &'a [ContextRow],
}

pub fn json(rows: &[ContextRow]) -> String {
    serde_json::to_string_pretty(&Doc { contexts: rows }).expect("plain data serializes") + "\n"
}

struct Metric {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&ContextRow) -> Option<f64>,
}

const METRICS: &[Metric] = &[
    Metric { name: "vserver_processes", kind: "gauge", help: "Processes in the context.", value: |r| Some(r.processes as f64) },
    Metric {
        name: "vserver_vsz_bytes",
        kind: "gauge",
        help: "Virtual memory of the context's processes.",
        value: |r| Some(r.vsz_bytes as f64),
    },
    Metric { name: "vserver_rss_bytes", kind: "gauge", help: "Resident memory of the context.", value: |r| Some(r.rss_bytes as f64) },
    Metric {
        name: "vserver_cpu_user_seconds_total",
        kind: "counter",
        help: "User-mode CPU time.",
        value: |r| Some(r.cpu_user_us as f64 / 1e6),
    },
    Metric {
        name: "vserver_cpu_system_seconds_total",
        kind: "counter",
        help: "Kernel-mode CPU time.",
        value: |r| Some(r.cpu_system_us as f64 / 1e6),
    },
    Metric {
        name: "vserver_uptime_seconds",
        kind: "gauge",
        help: "Time since the context's oldest process started.",
        value: |r| Some(r.uptime_ms as f64 / 1000.0),
    },
    Metric {
        name: "vserver_memory_usage_bytes",
        kind: "gauge",
        help: "Memory charged to the context's cgroup.",
        value: |r| Some(mem(r)?.current_bytes as f64),
    },
    Metric {
        name: "vserver_memory_limit_bytes",
        kind: "gauge",
        help: "Hard memory limit (rss); absent when unlimited.",
        value: |r| Some(mem(r)?.hard_bytes? as f64),
    },
    Metric {
        name: "vserver_memory_soft_limit_bytes",
        kind: "gauge",
        help: "Soft memory limit; absent when unlimited.",
        value: |r| Some(mem(r)?.soft_bytes? as f64),
    },
    Metric {
        name: "vserver_memory_peak_bytes",
        kind: "gauge",
        help: "Highest memory usage seen.",
        value: |r| Some(mem(r)?.peak_bytes? as f64),
    },
    Metric {
        name: "vserver_memory_limit_hits_total",
        kind: "counter",
        help: "Times the context hit its memory limit.",
        value: |r| Some(mem(r)?.hits as f64),
    },
    Metric {
        name: "vserver_memory_oom_kills_total",
        kind: "counter",
        help: "Processes the OOM killer killed in the context.",
        value: |r| Some(mem(r)?.oom_kills? as f64),
    },
    Metric {
        name: "vserver_pids_limit",
        kind: "gauge",
        help: "Process limit (nproc); absent when unlimited.",
        value: |r| Some(pids(r)?.hard? as f64),
    },
    Metric { name: "vserver_pids_peak", kind: "gauge", help: "Most processes seen at once.", value: |r| Some(pids(r)?.peak? as f64) },
    Metric {
        name: "vserver_pids_limit_hits_total",
        kind: "counter",
        help: "Forks refused by the process limit.",
        value: |r| Some(pids(r)?.hits as f64),
    },
    Metric {
        name: "vserver_cpu_quota_seconds",
        kind: "gauge",
        help: "CPU time per period (token bucket); absent when unlimited.",
        value: |r| Some(cpu(r)?.quota_us? as f64 / 1e6),
    },
    Metric {
        name: "vserver_cpu_period_seconds",
        kind: "gauge",
        help: "CPU bandwidth period.",
        value: |r| Some(cpu(r)?.period_us? as f64 / 1e6),
    },
    Metric {
        name: "vserver_cpu_throttled_periods_total",
        kind: "counter",
        help: "Periods in which the context used up its quota.",
        value: |r| Some(cpu(r)?.throttled? as f64),
    },
];

fn mem(r: &ContextRow) -> Option<&crate::limits::stats::MemoryStats> {
    r.limits.as_ref()?.memory.as_ref()
}
fn pids(r: &ContextRow) -> Option<&crate::limits::stats::PidsStats> {
    r.limits.as_ref()?.pids.as_ref()
}
fn cpu(r: &ContextRow) -> Option<&crate::limits::stats::CpuStats> {
    r.limits.as_ref()?.cpu.as_ref()
}

pub fn prometheus(rows: &[ContextRow]) -> String {
    let mut out = String::new();
    for m in METRICS {
        let samples: Vec<(&ContextRow, f64)> = rows.iter().filter_map(|r| Some((r, (m.value)(r)?))).collect();
        if samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {} {}", m.name, m.help);
        let _ = writeln!(out, "# TYPE {} {}", m.name, m.kind);
        for (r, v) in samples {
            let _ = writeln!(out, "{}{{xid=\"{}\",name=\"{}\"}} {}", m.name, r.xid, label(&r.name), v);
        }
    }
    disk_metrics(rows, &mut out);
    out
}

/// Disk limits: one sample per context and filesystem (label `mount_point`).
type DiskValue = fn(&DiskUsage) -> Option<u64>;
const DISK_METRICS: &[(&str, &str, DiskValue)] = &[
    ("vserver_disk_used_bytes", "Space the context's files use on the filesystem (project quota).", |d| Some(d.space_used_bytes)),
    ("vserver_disk_limit_bytes", "Disk space limit (dlimits space_total); absent when unlimited.", |d| d.space_limit_bytes),
    ("vserver_disk_inodes_used", "Inodes the context's files use on the filesystem.", |d| Some(d.inodes_used)),
    ("vserver_disk_inodes_limit", "Inode limit (dlimits inodes_total); absent when unlimited.", |d| d.inodes_limit),
];

fn disk_metrics(rows: &[ContextRow], out: &mut String) {
    for (name, help, value) in DISK_METRICS {
        let samples: Vec<(&ContextRow, &DiskUsage, u64)> =
            rows.iter().flat_map(|r| r.disk.iter().filter_map(move |d| Some((r, d, value(d)?)))).collect();
        if samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (r, d, v) in samples {
            let mp = label(&d.mount_point.display().to_string());
            let _ = writeln!(out, "{name}{{xid=\"{}\",name=\"{}\",mount_point=\"{mp}\"}} {v}", r.xid, label(&r.name));
        }
    }
}

/// Prometheus label value escaping: backslash, double quote, newline.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::stats::{ContextStats, MemoryStats, PidsStats};

    fn rows() -> Vec<ContextRow> {
        let host = ContextRow { xid: 0, name: "root server".into(), processes: 77, vsz_bytes: 1 << 30, ..Default::default() };
        let guest = ContextRow {
            xid: 42,
            name: "web\"1".into(),
            processes: 7,
            cpu_user_us: 1_500_000,
            limits: Some(ContextStats {
                memory: Some(MemoryStats {
                    current_bytes: 10,
                    hard_bytes: Some(64 << 20),
                    peak_bytes: Some(64 << 20),
                    hits: 3,
                    oom_kills: Some(1),
                    ..Default::default()
                }),
                pids: Some(PidsStats { current: 7, hard: Some(20), peak: None, hits: 2 }),
                cpu: None,
            }),
            ..Default::default()
        };
        let mut guest = guest;
        guest.disk.push(DiskUsage {
            directory: "/vservers".into(),
            mount_point: "/vservers".into(),
            project_id: 42,
            space_used_bytes: 4096,
            space_limit_bytes: Some(1 << 20),
            space_soft_limit_bytes: None,
            inodes_used: 3,
            inodes_limit: None,
            inodes_soft_limit: None,
        });
        vec![host, guest]
    }

    #[test]
    fn json_has_numbers_and_limits() {
        let v: serde_json::Value = serde_json::from_str(&json(&rows())).unwrap();
        let c = &v["contexts"];
        assert_eq!(c[0]["processes"], 77);
        assert_eq!(c[0]["name"], "root server");
        assert!(c[0].get("limits").is_none());
        assert_eq!(c[1]["cpu_user_us"], 1_500_000);
        assert_eq!(c[0]["uptime_seconds"], 0.0);
        assert_eq!(c[1]["limits"]["memory"]["hard_bytes"], 64 << 20);
        assert_eq!(c[1]["limits"]["memory"]["hits"], 3);
        assert_eq!(c[1]["limits"]["pids"]["peak"], serde_json::Value::Null);
    }

    #[test]
    fn prometheus_text() {
        let text = prometheus(&rows());
        assert!(text.contains("# TYPE vserver_processes gauge\nvserver_processes{xid=\"0\",name=\"root server\"} 77\n"), "{text}");
        assert!(text.contains("vserver_memory_limit_hits_total{xid=\"42\",name=\"web\\\"1\"} 3\n"), "{text}");
        assert!(text.contains("vserver_pids_limit_hits_total{xid=\"42\",name=\"web\\\"1\"} 2\n"), "{text}");
        assert!(text.contains("vserver_cpu_user_seconds_total{xid=\"42\",name=\"web\\\"1\"} 1.5\n"), "{text}");
        assert!(!text.contains("vserver_pids_peak"), "unknown values are left out, not 0");
        assert!(!text.contains("vserver_memory_limit_bytes{xid=\"0\""), "the host has no limit");
        assert!(text.contains("vserver_disk_limit_bytes{xid=\"42\",name=\"web\\\"1\",mount_point=\"/vservers\"} 1048576\n"), "{text}");
        assert!(!text.contains("vserver_disk_inodes_limit"), "unlimited is absent");
    }
}
