//! apply_context_limits on a real guest cgroup of this host (needs root;
//! fails in CI when that is missing, skips elsewhere). On a hybrid host this
//! runs the v1 backends for real; on a v2-only host the v2 ones.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::apply_context_limits;
use super::context::page_size;
use super::controller::locate;
use crate::cgroup::{GuestCgroup, Layout};
use crate::config::load_guest;
use crate::config::parse::tests::tempdir;
use crate::paths::Paths;

fn precondition(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "precondition missing in CI: {what}");
        eprintln!("skipped: {what}");
    }
    ok
}

/// Removes the cgroup (killing what is left in it) even when the test fails.
struct Guard(GuestCgroup);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.remove();
    }
}

fn real_cgroup(tag: &str) -> Option<Guard> {
    if !precondition(nix::unistd::geteuid().is_root(), "needs root") {
        return None;
    }
    let layout = Layout::detect(Path::new("/sys/fs/cgroup"));
    if !precondition(layout.is_ok(), "needs cgroups at /sys/fs/cgroup") {
        return None;
    }
    let name = format!("vsl-{tag}-{}", std::process::id());
    Some(Guard(GuestCgroup::create(&layout.unwrap(), &name).expect("creating the test cgroup")))
}

fn guest_with(files: &[(&str, &str)]) -> crate::config::Guest {
    let root = tempdir();
    let paths = Paths { confdir: root.clone(), vdirbase: root.join("v"), rundir: root.join("r"), cgroup_root: "/sys/fs/cgroup".into() };
    fs::create_dir_all(root.join("g")).unwrap();
    fs::write(root.join("g/context"), "42\n").unwrap();
    for (f, content) in files {
        let file = root.join("g").join(f);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, content).unwrap();
    }
    load_guest(&paths, "g").unwrap()
}

#[test]
fn a_quarter_cpu_token_bucket_holds_a_busy_loop_near_25_percent() {
    let Some(cg) = real_cgroup("cpu") else { return };
    let guest = guest_with(&[("sched/fill-rate", "1\n"), ("sched/interval", "4\n")]);
    apply_context_limits(&cg.0, &guest).unwrap();
    let mut child = Command::new("/bin/sh").args(["-c", "read go; while :; do :; done"]).stdin(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    // Guest processes live in payload, below the limits of vserver/NAME.
    cg.0.create_children().unwrap();
    cg.0.add_process(pid).unwrap();
    child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let start = Instant::now();
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = (cpu_ticks(pid) - before) as f64 / super::cpu::clock_ticks() as f64;
    let share = used / start.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("token bucket 1/4: the busy loop got {:.1}% of a CPU over 3 s", share * 100.0);
    assert!(share <= 0.30, "the context got {:.0}% of a CPU, the bucket allows 25%", share * 100.0);
    assert!(share >= 0.15, "the busy loop ran at only {:.0}%: was it running at all?", share * 100.0);
}

#[test]
fn rss_and_nproc_reach_the_real_cgroup_files() {
    let Some(cg) = real_cgroup("files") else { return };
    let guest = guest_with(&[("rlimits/rss", "8192\n"), ("rlimits/nproc", "20\n"), ("cpuset/cpus", "0\n")]);
    apply_context_limits(&cg.0, &guest).unwrap();
    let mem = locate(&cg.0, "memory").unwrap();
    let file = if mem.dir.join("memory.max").exists() { "memory.max" } else { "memory.limit_in_bytes" };
    assert_eq!(fs::read_to_string(mem.dir.join(file)).unwrap().trim(), (8192 * page_size()).to_string());
    let pids = locate(&cg.0, "pids").unwrap();
    assert_eq!(fs::read_to_string(pids.dir.join("pids.max")).unwrap().trim(), "20");
    let cpuset = locate(&cg.0, "cpuset").unwrap();
    assert_eq!(fs::read_to_string(cpuset.dir.join("cpuset.cpus")).unwrap().trim(), "0");
    // An impossible cpuset is refused by the kernel, and the memory and pids limits go back.
    let bad = guest_with(&[("rlimits/rss", "4096\n"), ("rlimits/nproc", "5\n"), ("cpuset/cpus", "1000\n")]);
    let err = format!("{:#}", apply_context_limits(&cg.0, &bad).unwrap_err());
    assert!(err.contains("cpuset.cpus"), "{err}");
    assert_eq!(fs::read_to_string(mem.dir.join(file)).unwrap().trim(), (8192 * page_size()).to_string());
    assert_eq!(fs::read_to_string(pids.dir.join("pids.max")).unwrap().trim(), "20");
}

fn cpu_ticks(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let p = crate::procfs::parse_stat(&stat).unwrap();
    p.utime + p.stime
}
