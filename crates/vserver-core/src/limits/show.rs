//! What `vlimit` prints: `-a` in util-vserver's columns (name, then minimum,
//! soft and hard at columns 10, 30 and 50, hex unless `-d`), the `--stats`
//! table, and `--info` about the cgroup layout.

use std::path::Path;

use super::controller::locate;
use super::live::Target;
use super::rlimit::{Resource, ALL_RESOURCES};
use super::stats::ContextStats;
use super::{context::page_size, memory, pids, LimitError};
use crate::cgroup::{GuestCgroup, Layout};
use crate::columns::{short_mem, short_time, Line};
use crate::sys::rlimit as prlimit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShowOptions {
    /// `-d`: decimal instead of hex.
    pub decimal: bool,
    /// `-n`: resource numbers instead of names.
    pub numeric: bool,
}

/// A column value: unset (`N/A`), unlimited (`inf`) or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    NotApplicable,
    Unlimited,
    Value(u64),
}

impl Cell {
    fn rlim(v: u64) -> Cell {
        if v == libc::RLIM_INFINITY {
            Cell::Unlimited
        } else {
            Cell::Value(v)
        }
    }

    fn max(v: Option<u64>) -> Cell {
        v.map_or(Cell::Unlimited, Cell::Value)
    }

    fn render(self, opts: ShowOptions) -> String {
        match self {
            Cell::NotApplicable => "N/A".into(),
            Cell::Unlimited => "inf".into(),
            Cell::Value(v) if opts.decimal => v.to_string(),
            Cell::Value(v) => format!("{v:#x}"),
        }
    }
}

/// `vlimit -a`: every limit of the guest (per-process ones as its init has
/// them), or of the calling process when no guest is given. rss is in
/// pages, as util-vserver shows it.
pub fn all_limits(target: Option<&Target>, opts: ShowOptions) -> Result<String, LimitError> {
    let pid = target.map_or(std::process::id() as i32, |t| t.init_pid);
    let mut out = String::new();
    for (number, res) in ALL_RESOURCES.iter().enumerate() {
        let [min, soft, hard] = match (res.rlimit_id(), target) {
            (Some(id), _) => {
                let p = prlimit::get(pid, id).map_err(|err| LimitError::ReadingProcessLimit { resource: *res, pid, err })?;
                [Cell::NotApplicable, Cell::rlim(p.soft), Cell::rlim(p.hard)]
            }
            (None, Some(t)) => context_cells(&t.cgroup, *res)?,
            (None, None) => [Cell::NotApplicable; 3],
        };
        let mut line = Line::new();
        let label = if opts.numeric { number.to_string() } else { res.name().to_ascii_uppercase() };
        line.put(0, &label);
        line.put(10, &format!("  {}", min.render(opts)));
        line.put(30, &format!("  {}", soft.render(opts)));
        line.put(50, &format!("  {}", hard.render(opts)));
        out.push_str(&line.into_string());
        out.push('\n');
    }
    Ok(out)
}

fn context_cells(cg: &GuestCgroup, res: Resource) -> Result<[Cell; 3], LimitError> {
    let controller = if res == Resource::Rss { "memory" } else { "pids" };
    let Ok(at) = locate(cg, controller) else { return Ok([Cell::NotApplicable; 3]) };
    if res == Resource::Rss {
        let m = memory::backend(at.version).read(&at.dir).map_err(LimitError::Cgroup)?;
        let pages = |v: Option<Option<u64>>| v.map_or(Cell::NotApplicable, |v| Cell::max(v.map(|b| b / page_size())));
        Ok([pages(m.low), pages(m.high), pages(m.max)])
    } else {
        let p = pids::backend(at.version).read(&at.dir).map_err(LimitError::Cgroup)?;
        Ok([Cell::NotApplicable, Cell::NotApplicable, p.max.map_or(Cell::NotApplicable, Cell::max)])
    }
}

/// `vlimit --stats`: per context-wide resource the usage, the limits, the
/// maximum seen and the hits.
pub fn stats_table(stats: &ContextStats) -> String {
    let mut out = String::from("RESOURCE    CURRENT       MIN      SOFT      HARD   MAXIMUM      HITS\n");
    let mem = |v: Option<u64>| v.map_or("inf".to_string(), short_mem);
    let known = |v: Option<u64>, f: &dyn Fn(u64) -> String| v.map_or("N/A".to_string(), f);
    if let Some(m) = &stats.memory {
        let min = m.min_bytes.map_or("N/A".into(), short_mem);
        row(
            &mut out,
            "rss",
            &short_mem(m.current_bytes),
            &min,
            &mem(m.soft_bytes),
            &mem(m.hard_bytes),
            &known(m.peak_bytes, &short_mem),
            m.hits,
        );
    }
    if let Some(p) = &stats.pids {
        let hard = p.hard.map_or("inf".into(), |v| v.to_string());
        row(&mut out, "nproc", &p.current.to_string(), "N/A", "N/A", &hard, &known(p.peak, &|v| v.to_string()), p.hits);
    }
    if let Some(c) = &stats.cpu {
        let used = short_time((c.user_us + c.system_us) / 1000);
        let share = match (c.quota_us, c.period_us) {
            (Some(q), Some(p)) if p > 0 => format!("{:.1}%cpu", q as f64 * 100.0 / p as f64),
            (None, Some(_)) => "inf".into(),
            _ => "N/A".into(),
        };
        let burst = c.burst_us.map_or("N/A".into(), |b| format!("{}ms", b / 1000));
        row(&mut out, "sched", &used, "N/A", "N/A", &share, &burst, c.throttled.unwrap_or(0));
    }
    if let Some(kills) = stats.memory.as_ref().and_then(|m| m.oom_kills).filter(|k| *k > 0) {
        out.push_str(&format!("rss: the OOM killer killed {kills} process{} of this context\n", if kills == 1 { "" } else { "es" }));
    }
    out
}

/// `vlimit --stats --json`.
pub fn stats_json(target: &Target, stats: &ContextStats) -> String {
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        name: &'a str,
        xid: u32,
        limits: &'a ContextStats,
    }
    // Keys as in schemas/vlimit-stats.json (the guest's name is `name` in every tool).
    let doc = Doc { name: &target.name, xid: target.xid, limits: stats };
    serde_json::to_string_pretty(&doc).expect("plain data serializes") + "\n"
}

#[allow(clippy::too_many_arguments)]
fn row(out: &mut String, name: &str, current: &str, min: &str, soft: &str, hard: &str, peak: &str, hits: u64) {
    out.push_str(&format!("{name:<8}{current:>11}{min:>10}{soft:>10}{hard:>10}{peak:>10}{hits:>10}\n"));
}

/// `vlimit --info`: the cgroup layout and where each controller is.
pub fn layout_info(cgroup_root: &Path) -> Result<String, LimitError> {
    let layout = Layout::detect(cgroup_root).map_err(LimitError::Layout)?;
    let mut out = format!("cgroup layout: {} at {}\n", layout.kind(), cgroup_root.display());
    for (ctrl, limits) in
        [("memory", "rss"), ("pids", "nproc"), ("cpu", "sched/ token bucket"), ("cpuset", "cpuset/"), ("cpuacct", "CPU time (v1)")]
    {
        let place = match layout.v1_mount(ctrl) {
            Some(m) => format!("cgroup v1 hierarchy {}", m.display()),
            None if layout.v2_controllers().iter().any(|c| c == ctrl) => {
                format!("cgroup v2 {}", layout.v2.as_ref().map(|p| p.display().to_string()).unwrap_or_default())
            }
            None if ctrl == "cpuacct" && layout.v2.is_some() => "cgroup v2 cpu.stat".into(),
            None => "not available".into(),
        };
        out.push_str(&format!("  {ctrl:<8} {limits:<20} {place}\n"));
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    out.push_str(&format!("  cpu burst (sched/tokens-max): {}\n", burst_support(&layout, release.trim()).describe()));
    if layout.kind() == crate::cgroup::LayoutKind::V2Only {
        out.push_str(
            "  note: start enables the controllers it needs in the cgroup root's cgroup.subtree_control; \
                      they stay enabled after the last guest is gone\n",
        );
    }
    Ok(out)
}

/// Whether CFS burst (cpu.max.burst, cpu.cfs_burst_us: kernel 5.14) can be
/// used, and how that is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Burst {
    /// A cgroup of the cpu controller has the file.
    Seen,
    /// No cgroup has the cpu controller enabled yet (a bare v2 host), but
    /// the kernel is new enough: start enables the controller.
    ByKernelVersion,
    /// The cpu controller's cgroups lack the file, or the kernel is older.
    Missing,
    /// No cpu controller at all.
    NoCpuController,
}

impl Burst {
    fn describe(self) -> &'static str {
        match self {
            Burst::Seen => "available",
            Burst::ByKernelVersion => "available (kernel 5.14 or later; the cpu controller is not enabled yet, start enables it)",
            Burst::Missing => "not available on this kernel (needs 5.14)",
            Burst::NoCpuController => "not available: no cpu controller",
        }
    }
}

pub fn burst_support(layout: &Layout, kernel_release: &str) -> Burst {
    if let Some(m) = layout.v1_mount("cpu") {
        return if m.join("cpu.cfs_burst_us").exists() { Burst::Seen } else { Burst::Missing };
    }
    let Some(root) = layout.v2.as_ref() else { return Burst::NoCpuController };
    if !layout.v2_controllers().iter().any(|c| c == "cpu") {
        return Burst::NoCpuController;
    }
    // The root has no cpu.max files; a cgroup with the cpu controller has.
    match cpu_cgroup_below(root) {
        Some(dir) if dir.join("cpu.max.burst").exists() => Burst::Seen,
        Some(_) => Burst::Missing,
        None if kernel_at_least(kernel_release, (5, 14)) => Burst::ByKernelVersion,
        None => Burst::Missing,
    }
}

/// A cgroup (up to two levels down) where the cpu controller is enabled.
fn cpu_cgroup_below(root: &Path) -> Option<std::path::PathBuf> {
    let children = |d: &Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(d).map(|r| r.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect()).unwrap_or_default()
    };
    children(root).into_iter().flat_map(|c| std::iter::once(c.clone()).chain(children(&c))).find(|d| d.join("cpu.max").exists())
}

fn kernel_at_least(release: &str, want: (u32, u32)) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => (major, minor) >= want,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::stats::{CpuStats, MemoryStats, PidsStats};
    use crate::limits::testutil::{fill, hybrid_guest};

    #[test]
    fn all_limits_uses_util_vserver_columns() {
        let (root, cg) = hybrid_guest(&["memory", "pids"]);
        fill(&root.join("memory/vserver/g1"), &[("memory.limit_in_bytes", &(64u64 << 20).to_string())]);
        fill(&root.join("pids/vserver/g1"), &[("pids.max", "20\n")]);
        let t = Target { name: "g1".into(), xid: 42, init_pid: std::process::id() as i32, cgroup: cg };
        let hex = all_limits(Some(&t), ShowOptions { decimal: false, numeric: false }).unwrap();
        let rss = hex.lines().find(|l| l.starts_with("RSS")).unwrap();
        let pages = (64u64 << 20) / page_size();
        assert_eq!(rss, format!("RSS         N/A                 inf                 {pages:#x}"));
        let nproc = hex.lines().find(|l| l.starts_with("NPROC")).unwrap();
        assert_eq!(nproc, "NPROC       N/A                 N/A                 0x14");
        let dec = all_limits(Some(&t), ShowOptions { decimal: true, numeric: true }).unwrap();
        assert!(dec.lines().any(|l| l == "6           N/A                 N/A                 20"), "{dec}");
        let me = prlimit::get(std::process::id() as i32, libc::RLIMIT_NOFILE).unwrap();
        let nofile = dec.lines().nth(7).unwrap();
        assert_eq!(&nofile[30..], format!("  {:<18}  {}", me.soft, me.hard).trim_end());
    }

    #[test]
    fn burst_on_a_bare_v2_host_is_judged_by_the_kernel() {
        use crate::config::parse::tests::tempdir;
        let root = tempdir();
        fill(&root, &[("cgroup.controllers", "cpuset cpu io memory pids\n"), ("cgroup.procs", ""), ("cgroup.subtree_control", "")]);
        std::fs::create_dir_all(root.join("init.scope")).unwrap();
        let layout = Layout::detect(&root).unwrap();
        assert_eq!(burst_support(&layout, "6.1.0-18-amd64"), Burst::ByKernelVersion);
        assert_eq!(burst_support(&layout, "5.10.0"), Burst::Missing);
        fill(&root.join("init.scope"), &[("cpu.max", "max 100000\n")]);
        assert_eq!(burst_support(&layout, "6.1.0"), Burst::Missing, "a cpu cgroup without the file");
        fill(&root.join("init.scope"), &[("cpu.max.burst", "0\n")]);
        assert_eq!(burst_support(&layout, "6.1.0"), Burst::Seen);
        fill(&root, &[("cgroup.controllers", "memory pids\n")]);
        assert_eq!(burst_support(&Layout::detect(&root).unwrap(), "6.1.0"), Burst::NoCpuController);
    }

    #[test]
    fn stats_table_rows() {
        let s = ContextStats {
            memory: Some(MemoryStats {
                current_bytes: 5 << 20,
                hard_bytes: Some(64 << 20),
                peak_bytes: Some(64 << 20),
                hits: 3,
                oom_kills: Some(1),
                ..Default::default()
            }),
            pids: Some(PidsStats { current: 7, hard: Some(20), peak: Some(20), hits: 2 }),
            cpu: Some(CpuStats {
                user_us: 1_000_000,
                system_us: 500_000,
                quota_us: Some(25_000),
                period_us: Some(100_000),
                burst_us: Some(0),
                throttled: Some(12),
                throttled_us: Some(5),
            }),
        };
        assert_eq!(
            stats_table(&s),
            "RESOURCE    CURRENT       MIN      SOFT      HARD   MAXIMUM      HITS\n\
             rss              5M       N/A       inf       64M       64M         3\n\
             nproc             7       N/A       N/A        20        20         2\n\
             sched       0m01s50       N/A       N/A  25.0%cpu       0ms        12\n\
             rss: the OOM killer killed 1 process of this context\n"
        );
    }
}
