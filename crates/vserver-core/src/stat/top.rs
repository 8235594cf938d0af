//! `vtop`: which guest is eating the box. Two samples some time apart give
//! each context's share of the CPU over that time (from vserver-stat's
//! figures: the cgroup's CPU time for guests, the host's processes summed),
//! its memory and limit hits since it started, and the busiest processes of
//! the whole host with the context column of `vps`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::time::Instant;

use super::format::{short_mem, short_time};
use super::owner::{ContextMap, Owner};
use super::{collect, procfs, ContextRow, Detail, StatError};
use crate::limits::context::page_size;
use crate::limits::cpu::clock_ticks;
use crate::paths::Paths;

/// What one look at the host saw.
pub struct Sample {
    pub at: Instant,
    pub contexts: Vec<ContextRow>,
    pub processes: HashMap<i32, ProcSample>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcSample {
    /// User plus system time in clock ticks.
    pub ticks: u64,
    pub start_time: u64,
    pub rss_bytes: u64,
    pub command: String,
    pub owner: Owner,
}

impl Sample {
    pub fn take(paths: &Paths) -> Result<Sample, StatError> {
        let contexts = collect(paths, Detail::WithLimits)?;
        let map = ContextMap::load(paths).map_err(StatError::Sys)?;
        let page = page_size();
        let mut processes = HashMap::new();
        let mut buf = String::with_capacity(512);
        for pid in procfs::all_pids().map_err(StatError::Sys)? {
            let Some(stat) = procfs::read_stat(pid, &mut buf) else { continue };
            let command = command_of(&buf);
            let Some(owner) = map.owner_of(pid) else { continue };
            processes.insert(
                pid,
                ProcSample {
                    ticks: stat.utime + stat.stime,
                    start_time: stat.start_time,
                    rss_bytes: stat.rss_pages * page,
                    command,
                    owner,
                },
            );
        }
        Ok(Sample { at: Instant::now(), contexts, processes })
    }
}

/// The command name of a stat line (field 2, between the first '(' and the last ')').
fn command_of(stat: &str) -> String {
    match (stat.find('('), stat.rfind(')')) {
        (Some(a), Some(b)) if b > a => stat[a + 1..b].to_string(),
        _ => String::new(),
    }
}

/// One context's line of a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextLine {
    pub row: ContextRow,
    /// Percent of one CPU over the interval.
    pub cpu_percent: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcLine {
    pub pid: i32,
    pub cpu_percent: f64,
    pub sample: ProcSample,
}

/// The interval between two samples, sorted busiest first (the host row stays on top).
pub fn compare(prev: &Sample, cur: &Sample) -> (Vec<ContextLine>, Vec<ProcLine>) {
    let secs = cur.at.duration_since(prev.at).as_secs_f64().max(1e-3);
    let before: HashMap<u32, &ContextRow> = prev.contexts.iter().map(|r| (r.xid, r)).collect();
    let mut contexts: Vec<ContextLine> = cur
        .contexts
        .iter()
        .map(|r| {
            let used = |x: &ContextRow| x.cpu_user_us + x.cpu_system_us;
            let delta = before.get(&r.xid).map_or(0, |p| used(r).saturating_sub(used(p)));
            ContextLine { row: r.clone(), cpu_percent: delta as f64 / 1e6 / secs * 100.0 }
        })
        .collect();
    contexts[1..].sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent).then(a.row.xid.cmp(&b.row.xid)));
    let hz = clock_ticks() as f64;
    let mut procs: Vec<ProcLine> = cur
        .processes
        .iter()
        .map(|(pid, s)| {
            // The same process (pid and start time) in both samples, else new.
            let base = prev.processes.get(pid).filter(|p| p.start_time == s.start_time).map_or(0, |p| p.ticks);
            let cpu = s.ticks.saturating_sub(base) as f64 / hz / secs * 100.0;
            ProcLine { pid: *pid, cpu_percent: cpu, sample: s.clone() }
        })
        .collect();
    procs.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent).then(b.sample.rss_bytes.cmp(&a.sample.rss_bytes)));
    (contexts, procs)
}

pub const CONTEXT_HEADER: &str = "  CTX NAME                 PROC  %CPU    RSS MEMLIMIT MEMHITS PIDHITS THROTTLED    UPTIME";
pub const PROCESS_HEADER: &str = "    PID   CTX NAME                  %CPU    RSS COMMAND";

/// A frame: the header line, the contexts, then the `max_procs` busiest processes.
pub fn render(now: &str, contexts: &[ContextLine], procs: &[ProcLine], max_procs: usize) -> String {
    let guests = contexts.len().saturating_sub(1);
    let mut out = format!("vtop - {now}, {guests} guest{} running\n\n{CONTEXT_HEADER}\n", if guests == 1 { "" } else { "s" });
    for c in contexts {
        let _ = writeln!(out, "{}", context_line(c));
    }
    let _ = writeln!(out, "\n{PROCESS_HEADER}");
    for p in procs.iter().take(max_procs) {
        let name: String = p.sample.owner.label().chars().take(20).collect();
        let xid = p.sample.owner.xid().map_or("ERR".to_string(), |x| x.to_string());
        let _ = writeln!(
            out,
            "{:>7} {xid:>5} {name:<20} {:>6.1} {:>6} {}",
            p.pid,
            p.cpu_percent,
            short_mem(p.sample.rss_bytes),
            p.sample.command
        );
    }
    out
}

fn context_line(c: &ContextLine) -> String {
    let r = &c.row;
    let limits = r.limits.as_ref();
    let mem = limits.and_then(|l| l.memory.as_ref());
    let pids = limits.and_then(|l| l.pids.as_ref());
    let cpu = limits.and_then(|l| l.cpu.as_ref());
    let dash = || "-".to_string();
    let name: String = r.name.chars().take(20).collect();
    format!(
        "{:>5} {name:<20} {:>5} {:>5.1} {:>6} {:>8} {:>7} {:>7} {:>9} {:>9}",
        r.xid,
        r.processes,
        c.cpu_percent,
        short_mem(r.rss_bytes),
        mem.and_then(|m| m.hard_bytes).map_or_else(dash, short_mem),
        mem.map_or_else(dash, |m| m.hits.to_string()),
        pids.map_or_else(dash, |p| p.hits.to_string()),
        cpu.and_then(|c| c.throttled).map_or_else(dash, |t| t.to_string()),
        short_time(r.uptime_ms),
    )
}

/// "07:20:01 up 2:31, load average: 0.10, 0.20, 0.15"
pub fn now_line() -> String {
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let l: Vec<&str> = load.split_whitespace().take(3).collect();
    let up = procfs::uptime_ms().unwrap_or(0);
    let clock = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME).map(|t| t.tv_sec()).unwrap_or(0);
    let (h, m, s) = crate::sys::misc::local_time(clock as libc::time_t).map_or((0, 0, 0), |tm| (tm.tm_hour, tm.tm_min, tm.tm_sec));
    format!("{h:02}:{m:02}:{s:02} up {}, load average: {}", uptime_words(up / 1000), l.join(", "))
}

/// top's way: `3 days, 4:05` or `4:05`.
fn uptime_words(secs: u64) -> String {
    let (days, hm) = (secs / 86_400, format!("{}:{:02}", secs % 86_400 / 3600, secs % 3600 / 60));
    match days {
        0 => hm,
        1 => format!("1 day, {hm}"),
        d => format!("{d} days, {hm}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::stats::{ContextStats, MemoryStats};
    use std::time::Duration;

    fn row(xid: u32, name: &str, cpu_us: u64) -> ContextRow {
        ContextRow { xid, name: name.into(), processes: 2, cpu_user_us: cpu_us, ..Default::default() }
    }

    fn proc(ticks: u64, owner: Owner) -> ProcSample {
        ProcSample { ticks, start_time: 7, rss_bytes: 4096, command: "x".into(), owner }
    }

    #[test]
    fn busiest_guest_first_and_cpu_shares_from_deltas() {
        let t0 = Instant::now();
        let web = Owner::Guest { xid: 101, name: "web1".into() };
        let prev = Sample {
            at: t0,
            contexts: vec![row(0, "root server", 0), row(101, "web1", 0), row(102, "db1", 0)],
            processes: [(5, proc(0, web.clone())), (6, proc(100, Owner::Host))].into(),
        };
        let mut db = row(102, "db1", 1_500_000);
        db.limits = Some(ContextStats {
            memory: Some(MemoryStats { hard_bytes: Some(64 << 20), hits: 3, ..Default::default() }),
            ..Default::default()
        });
        let cur = Sample {
            at: t0 + Duration::from_secs(2),
            contexts: vec![row(0, "root server", 200_000), row(101, "web1", 500_000), db],
            processes: [(5, proc(clock_ticks(), web)), (6, proc(100, Owner::Host))].into(),
        };
        let (contexts, procs) = compare(&prev, &cur);
        let order: Vec<u32> = contexts.iter().map(|c| c.row.xid).collect();
        assert_eq!(order, [0, 102, 101], "host first, then busiest");
        assert!((contexts[1].cpu_percent - 75.0).abs() < 0.01);
        assert!((contexts[2].cpu_percent - 25.0).abs() < 0.01);
        assert_eq!(procs[0].pid, 5);
        assert!((procs[0].cpu_percent - 50.0).abs() < 0.01);
        let text = render("now", &contexts, &procs, 1);
        assert!(text.starts_with("vtop - now, 2 guests running\n"), "{text}");
        let db_line = text.lines().find(|l| l.contains("db1")).unwrap();
        assert_eq!(db_line.split_whitespace().collect::<Vec<_>>(), ["102", "db1", "2", "75.0", "0", "64M", "3", "-", "-", "0m00s00"]);
        assert!(text.lines().last().unwrap().contains("101 web1"), "{text}");
        assert_eq!(text.lines().filter(|l| l.ends_with(" x")).count(), 1, "max_procs");
    }

    #[test]
    fn a_reused_pid_is_a_new_process() {
        let t0 = Instant::now();
        let mut old = proc(10_000, Owner::Host);
        old.start_time = 1;
        let prev = Sample { at: t0, contexts: vec![row(0, "h", 0)], processes: [(9, old)].into() };
        let cur = Sample { at: t0 + Duration::from_secs(1), contexts: vec![row(0, "h", 0)], processes: [(9, proc(0, Owner::Host))].into() };
        assert_eq!(compare(&prev, &cur).1[0].cpu_percent, 0.0);
    }
}
