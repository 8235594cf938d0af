//! vserver-info on this machine and on fixture /proc and /sys trees of
//! other hosts (v2-only, no cgroup-BPF, v1-only, namespaces switched off).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use vserver_rs_tests::{bin, describe, is_root, require, Scratch};

fn info(vdirbase: &Path, args: &[&str]) -> Output {
    Command::new(bin("vserver-info"))
        .args(args)
        .env("VSERVER_VDIRBASE", vdirbase)
        .env("VSERVER_CONFDIR", vdirbase.join("no-etc"))
        .env_remove("VSERVER_CGROUP_ROOT")
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no check {id}"))
}

fn status<'a>(report: &'a Value, id: &str) -> &'a str {
    check(report, id)["status"].as_str().unwrap()
}

/// The cgroup mounts of this machine under /sys/fs/cgroup, from
/// /proc/self/mounts: (cgroup2 mount, v1 mounts with their controllers).
fn mounted_cgroups() -> (Option<PathBuf>, Vec<(PathBuf, Vec<String>)>) {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let mut v2 = None;
    let mut v1 = Vec::new();
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || !f[1].starts_with("/sys/fs/cgroup") {
            continue;
        }
        match f[2] {
            "cgroup2" => v2 = Some(PathBuf::from(f[1])),
            "cgroup" if !f[3].contains("name=") => {
                let known =
                    ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb", "net_cls", "perf_event"];
                let controllers: Vec<String> = f[3].split(',').filter(|o| known.contains(o)).map(str::to_string).collect();
                if !controllers.is_empty() {
                    v1.push((PathBuf::from(f[1]), controllers));
                }
            }
            _ => {}
        }
    }
    (v2, v1)
}

/// Whatever the layout (hybrid, v2-only, v1-only), the report says what
/// /proc/self/mounts and the cgroup2 root's cgroup.controllers say.
#[test]
fn this_machine_is_reported_as_it_is_mounted() {
    if !require(is_root(), "vserver-info's kernel probes need root") {
        return;
    }
    let (v2, v1) = mounted_cgroups();
    if !require(v2.is_some() || !v1.is_empty(), "a cgroup mount under /sys/fs/cgroup") {
        return;
    }
    let dir = Scratch::new("live");
    let out = info(&dir.0, &["--json"]);
    let r = json(&out);
    assert_eq!(r["live"], true);
    let layout = match (&v2, v1.is_empty()) {
        (Some(_), true) => "v2-only",
        (Some(_), false) => "hybrid",
        (None, _) => "v1-only",
    };
    assert_eq!(r["cgroup"]["layout"], layout, "{}", r["cgroup"]);
    assert_eq!(r["cgroup"]["v2_mount"], v2.as_ref().map_or(Value::Null, |p| p.to_str().unwrap().into()));
    let listed: Vec<&str> = r["cgroup"]["v1"].as_array().unwrap().iter().map(|h| h["mount"].as_str().unwrap()).collect();
    for (mount, _) in &v1 {
        assert!(listed.contains(&mount.to_str().unwrap()), "v1 mount {} not reported: {listed:?}", mount.display());
    }
    // Each controller: the v1 hierarchy that has it, else the cgroup2 root if it offers it.
    let v2_offers: Vec<String> = v2
        .as_ref()
        .and_then(|m| fs::read_to_string(m.join("cgroup.controllers")).ok())
        .map(|t| t.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    for c in ["memory", "pids", "cpu", "cpuset"] {
        let id = format!("cgroup.controller.{c}");
        let detail = check(&r, &id)["detail"].as_str().unwrap().to_string();
        match v1.iter().find(|(_, cs)| cs.iter().any(|x| x == c)) {
            Some((m, _)) => assert_eq!(detail, format!("v1 at {}", m.display()), "{id}"),
            None if v2_offers.iter().any(|x| x == c) => {
                assert_eq!(detail, format!("v2 at {}", v2.as_ref().unwrap().display()), "{id}")
            }
            None => assert_eq!(status(&r, &id), "missing", "{id}: {detail}"),
        }
    }
    // The socket hooks attach to the cgroup2 mount: there if it exists.
    match &v2 {
        Some(m) => {
            assert_eq!(status(&r, "cgroup.bpf"), "ok", "{}", check(&r, "cgroup.bpf"));
            assert!(check(&r, "cgroup.bpf")["detail"].as_str().unwrap().contains(m.to_str().unwrap()));
        }
        None => assert_eq!(status(&r, "cgroup.bpf"), "missing"),
    }
    for id in ["namespace.pid", "namespace.mount", "namespace.uts", "namespace.ipc", "seccomp", "pidfd", "openat2"] {
        assert_eq!(status(&r, id), "ok", "{}", check(&r, id));
    }
    let missing: Vec<&str> = r["missing_required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(out.status.code(), Some(i32::from(!missing.is_empty())), "{}", describe(&out));
    if v2.is_some() {
        assert_eq!(missing, Vec::<&str>::new(), "this host runs the default configuration");
    }
    // The probe files in the guest base are gone again.
    assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 0, "vserver-info left files in the guest base");

    let text = info(&dir.0, &[]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    let layout_line = match &v2 {
        Some(m) if v1.is_empty() => format!("v2-only: cgroup2 at {}", m.display()),
        Some(m) => format!("hybrid: cgroup2 at {}", m.display()),
        None => "v1-only: hierarchies".to_string(),
    };
    assert!(stdout.contains(&layout_line), "{stdout}");
    // Disk limits are reported either way, with a reason.
    assert!(stdout.lines().any(|l| l.contains("dlimits.kernel")), "{stdout}");
    assert!(stdout.lines().any(|l| l.contains("dlimits.vdirbase")), "{stdout}");
}

/// A fixture host: <root>/proc and <root>/sys.
struct Fixture {
    dir: Scratch,
}

const ALL_NAMESPACES: &[&str] = &["pid", "mnt", "uts", "ipc", "net", "user", "time", "cgroup"];
const ALL_SYMBOLS: &[&str] = &[
    "__x64_sys_pidfd_open",
    "__x64_sys_openat2",
    "__cgroup_bpf_run_filter_sock_addr",
    "__cgroup_bpf_run_filter_sk",
    "__cgroup_bpf_run_filter_skb",
];

impl Fixture {
    fn new(tag: &str, namespaces: &[&str], symbols: &[&str]) -> Fixture {
        let f = Fixture { dir: Scratch::new(tag) };
        f.write("proc/sys/kernel/osrelease", "6.1.0-28-amd64\n");
        f.write("proc/sys/kernel/seccomp/actions_avail", "kill_process kill_thread trap errno user_notif trace log allow\n");
        fs::create_dir_all(f.proc().join("self/ns")).unwrap();
        for ns in namespaces {
            symlink(format!("{ns}:[4026531836]"), f.proc().join("self/ns").join(ns)).unwrap();
        }
        let table: String = symbols.iter().map(|s| format!("0000000000000000 T {s}\n")).collect();
        f.write("proc/kallsyms", &format!("0000000000000000 T _stext\n{table}"));
        fs::create_dir_all(f.dir.0.join("vservers")).unwrap();
        f
    }

    fn proc(&self) -> PathBuf {
        self.dir.0.join("proc")
    }

    fn sys(&self) -> PathBuf {
        self.dir.0.join("sys")
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.dir.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn v2_root(&self, rel: &str, controllers: &str) {
        self.write(&format!("sys/fs/cgroup/{rel}cgroup.controllers"), controllers);
        self.write(&format!("sys/fs/cgroup/{rel}cgroup.procs"), "");
    }

    fn v1(&self, controller: &str) {
        self.write(&format!("sys/fs/cgroup/{controller}/cgroup.procs"), "");
        self.write(&format!("sys/fs/cgroup/{controller}/tasks"), "");
    }

    fn run(&self, json: bool) -> Output {
        let (p, s) = (self.proc(), self.sys());
        let mut args = vec!["--proc-root", p.to_str().unwrap(), "--sys-root", s.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        info(&self.dir.0.join("vservers"), &args)
    }
}

#[test]
fn a_v2_only_host_is_reported_with_its_controllers() {
    let f = Fixture::new("v2", ALL_NAMESPACES, ALL_SYMBOLS);
    f.v2_root("", "cpuset cpu io memory pids");
    let out = f.run(true);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let r = json(&out);
    assert_eq!(r["live"], false);
    assert_eq!(r["kernel"], "6.1.0-28-amd64");
    assert_eq!(r["cgroup"]["layout"], "v2-only");
    let root = f.sys().join("fs/cgroup");
    assert_eq!(r["cgroup"]["v2_mount"], root.to_str().unwrap());
    assert_eq!(r["cgroup"]["v1"].as_array().unwrap().len(), 0);
    for c in ["memory", "pids", "cpu", "cpuset"] {
        let id = format!("cgroup.controller.{c}");
        assert_eq!(status(&r, &id), "ok");
        assert_eq!(check(&r, &id)["detail"], format!("v2 at {}", root.display()));
    }
    assert_eq!(status(&r, "cgroup.bpf"), "ok", "{}", check(&r, "cgroup.bpf"));
    assert_eq!(status(&r, "pidfd"), "ok");
    assert_eq!(status(&r, "openat2"), "ok");
    let text = String::from_utf8_lossy(&f.run(false).stdout).into_owned();
    assert!(text.contains(&format!("v2-only: cgroup2 at {}", root.display())), "{text}");
    assert!(text.contains("described host"), "{text}");
}

#[test]
fn a_host_without_cgroup_bpf_names_what_stops_working() {
    let no_bpf: Vec<&str> = ALL_SYMBOLS.iter().copied().filter(|s| !s.starts_with("__cgroup_bpf")).collect();
    let f = Fixture::new("nobpf", ALL_NAMESPACES, &no_bpf);
    f.v2_root("", "cpu memory pids");
    let out = f.run(true);
    assert_eq!(out.status.code(), Some(1), "the default configuration needs the hooks: {}", describe(&out));
    let r = json(&out);
    let bpf = check(&r, "cgroup.bpf");
    assert_eq!(bpf["status"], "missing");
    assert_eq!(bpf["required"], true);
    assert_eq!(r["missing_required"], serde_json::json!(["cgroup.bpf"]));
    assert!(bpf["detail"].as_str().unwrap().contains("CONFIG_CGROUP_BPF"), "{bpf}");
    assert!(bpf["needed_for"].as_str().unwrap().contains("interfaces/"), "{bpf}");
    // The controller missing from cgroup.controllers is reported, but optional.
    assert_eq!(status(&r, "cgroup.controller.cpuset"), "missing");
    assert_eq!(check(&r, "cgroup.controller.cpuset")["required"], false);

    let text = String::from_utf8_lossy(&f.run(false).stdout).into_owned();
    let line = text.lines().position(|l| l.starts_with("missing") && l.contains("cgroup.bpf")).expect(&text);
    let next = text.lines().nth(line + 1).unwrap();
    assert!(next.contains("without it: network contexts") && next.contains("needed by the default configuration"), "{text}");
    assert!(text.contains("the default configuration cannot run here: cgroup.bpf missing"), "{text}");
}

#[test]
fn a_v1_only_host_has_nowhere_to_attach_the_hooks() {
    let f = Fixture::new("v1", ALL_NAMESPACES, ALL_SYMBOLS);
    for c in ["memory", "pids", "cpu,cpuacct", "cpuset"] {
        f.v1(c);
    }
    symlink("cpu,cpuacct", f.sys().join("fs/cgroup/cpu")).unwrap();
    let out = f.run(true);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let r = json(&out);
    assert_eq!(r["cgroup"]["layout"], "v1-only");
    assert_eq!(status(&r, "cgroup.layout"), "limited");
    assert_eq!(status(&r, "cgroup.bpf"), "missing");
    assert!(check(&r, "cgroup.bpf")["detail"].as_str().unwrap().contains("no cgroup2 mount"));
    let cpu = check(&r, "cgroup.controller.cpu")["detail"].as_str().unwrap().to_string();
    assert!(cpu.ends_with("fs/cgroup/cpu,cpuacct"), "{cpu}");
}

#[test]
fn missing_and_switched_off_namespaces_are_told_apart() {
    let without_time: Vec<&str> = ALL_NAMESPACES.iter().copied().filter(|n| *n != "time").collect();
    let f = Fixture::new("ns", &without_time, ALL_SYMBOLS);
    f.v2_root("", "cpu memory pids");
    f.write("proc/sys/user/max_user_namespaces", "0\n");
    let r = json(&f.run(true));
    assert_eq!(status(&r, "namespace.time"), "missing");
    assert!(check(&r, "namespace.time")["needed_for"].as_str().unwrap().contains("VIRT_UPTIME"));
    assert_eq!(status(&r, "namespace.user"), "limited");
    assert!(check(&r, "namespace.user")["detail"].as_str().unwrap().contains("max_user_namespaces is 0"));
    assert_eq!(status(&r, "namespace.pid"), "ok");
    // Neither is needed by the default configuration.
    assert!(r["checks"].as_array().unwrap().iter().all(|c| !(c["required"] == true && c["status"] == "missing")));

    let without_pid: Vec<&str> = ALL_NAMESPACES.iter().copied().filter(|n| *n != "pid").collect();
    let g = Fixture::new("nopid", &without_pid, ALL_SYMBOLS);
    g.v2_root("", "cpu memory pids");
    let out = g.run(true);
    assert_eq!(out.status.code(), Some(1), "a kernel without pid namespaces cannot run guests: {}", describe(&out));
    assert_eq!(status(&json(&out), "namespace.pid"), "missing");
}

#[test]
fn an_unreadable_proc_root_is_reported_not_guessed() {
    let f = Fixture::new("empty", &[], &[]);
    fs::remove_file(f.proc().join("kallsyms")).unwrap();
    f.v2_root("", "memory");
    let out = f.run(true);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let r = json(&out);
    assert_eq!(status(&r, "pidfd"), "limited");
    assert!(check(&r, "pidfd")["detail"].as_str().unwrap().contains("cannot tell"));
    assert_eq!(status(&r, "namespace.mount"), "missing");
}

#[test]
fn disk_limit_support_is_read_from_the_kernel_described() {
    let f = Fixture::new("quota", ALL_NAMESPACES, ALL_SYMBOLS);
    f.v2_root("", "cpu memory pids");
    let r = json(&f.run(true));
    assert_eq!(status(&r, "dlimits.kernel"), "missing");
    assert!(check(&r, "dlimits.kernel")["detail"].as_str().unwrap().contains("CONFIG_QUOTA"), "{r}");
    assert_eq!(check(&r, "dlimits.kernel")["required"], false);

    let with_quota: Vec<&str> = ALL_SYMBOLS.iter().copied().chain(["v2_read_file_info"]).collect();
    let g = Fixture::new("quota2", ALL_NAMESPACES, &with_quota);
    g.v2_root("", "cpu memory pids");
    fs::create_dir_all(g.proc().join("sys/fs/quota")).unwrap();
    let r = json(&g.run(true));
    assert_eq!(status(&r, "dlimits.kernel"), "ok", "{}", check(&r, "dlimits.kernel"));

    let h = Fixture::new("quota3", ALL_NAMESPACES, ALL_SYMBOLS);
    h.v2_root("", "cpu memory pids");
    fs::create_dir_all(h.proc().join("sys/fs/quota")).unwrap();
    let r = json(&h.run(true));
    assert_eq!(status(&r, "dlimits.kernel"), "missing");
    assert!(check(&r, "dlimits.kernel")["detail"].as_str().unwrap().contains("CONFIG_QFMT_V2"), "{r}");
}
