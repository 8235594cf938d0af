//! vlimit and vserver-stat on a real busybox guest started by `vserver`.
//! Needs root (fails in CI when missing, skips elsewhere).

mod limits_support;

use std::path::PathBuf;
use std::process::{Command, Output};

use limits_support::{bin, precondition, privileged};

/// A temporary config root, guest base and run dir with one busybox guest;
/// the guest is stopped and everything removed on drop.
struct World {
    root: PathBuf,
    name: String,
}

impl World {
    fn new() -> World {
        let root = std::env::temp_dir().join(format!("vsl-guest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["etc/.defaults", "vservers", "run"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        // Before Landlock scoping (6.12) a guest on the host network starts
        // only when its config accepts shared abstract sockets (as in
        // tests/support/guest.rs).
        if let vserver_core::net::abstract_unix::Support::Missing { .. } = vserver_core::net::abstract_unix::probe() {
            let flag = vserver_core::net::abstract_unix::SHARED_FLAG;
            std::fs::write(root.join("etc/.defaults/cflags"), format!("{flag}\n")).unwrap();
        }
        World { root, name: format!("lim{}", std::process::id()) }
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        Command::new(bin(tool))
            .args(args)
            .env("VSERVER_CONFDIR", self.root.join("etc"))
            .env("VSERVER_VDIRBASE", self.root.join("vservers"))
            .env("VSERVER_RUNDIR", self.root.join("run"))
            .env_remove("VSERVER_CGROUP_ROOT")
            .output()
            .unwrap()
    }

    fn ok(&self, tool: &str, args: &[&str]) -> String {
        let out = self.run(tool, args);
        assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.run("vserver", &[&self.name, "stop"]);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
fn vlimit_and_vserver_stat_on_a_running_busybox_guest() {
    if !privileged() || !precondition(std::path::Path::new("/bin/busybox").exists(), "needs /bin/busybox") {
        return;
    }
    let w = World::new();
    w.ok("vserver", &[&w.name, "build", "-m", "busybox", "--context", "4410"]);
    w.ok("vserver", &[&w.name, "start"]);

    w.ok("vlimit", &["-c", &w.name, "--nproc", "30", "--rss", "64M", "-S", "--nofile", "99"]);
    let inside = w.ok("vserver", &[&w.name, "exec", "sh", "-c", "ulimit -Sn"]);
    assert_eq!(inside.trim(), "99");
    let stats: serde_json::Value = serde_json::from_str(&w.ok("vlimit", &["-c", "4410", "--stats", "--json"])).unwrap();
    assert_eq!(stats["limits"]["pids"]["hard"], 30);
    assert_eq!(stats["limits"]["memory"]["hard_bytes"], 64u64 << 20);

    let table = w.ok("vserver-stat", &[]);
    let row = table.lines().find(|l| l.starts_with("4410 ")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.ends_with(&format!(" {}", w.name)), "{row}");
    let procs: u64 = row[..10].split_whitespace().nth(1).unwrap().parse().unwrap();
    let json: serde_json::Value = serde_json::from_str(&w.ok("vserver-stat", &["--json"])).unwrap();
    let pids_current = json["contexts"][1]["limits"]["pids"]["current"].as_u64().unwrap();
    assert!(procs >= 1 && procs <= pids_current + 1, "{row} vs pids.current {pids_current}");

    w.ok("vserver", &[&w.name, "stop"]);
    assert_eq!(w.ok("vserver-stat", &[]).lines().count(), 2, "a stopped guest is not listed");
    let after = w.run("vlimit", &["-c", &w.name, "--nproc", "10"]);
    assert_eq!(after.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&after.stderr).contains("is not running"));
}
