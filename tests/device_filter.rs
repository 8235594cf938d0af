//! The cgroup v2 device filter on its own (on this hybrid host the v1
//! devices controller would also refuse): a process in a v2 cgroup with the
//! filter can open /dev/null but not /dev/kmsg.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use vserver_rs_tests::{require, require_root};

struct TestCgroup(PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            if fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

fn v2_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"].iter().map(PathBuf::from).find(|p| p.join("cgroup.controllers").exists())
}

#[test]
fn only_listed_devices_open_in_a_filtered_cgroup() {
    if !require_root() {
        return;
    }
    let Some(root) = v2_root() else {
        require(false, "a cgroup v2 hierarchy");
        return;
    };
    let cg = TestCgroup(root.join(format!("vserver-devtest-{}", std::process::id())));
    fs::create_dir(&cg.0).unwrap();
    vserver_core::cgroup::device_filter::attach(&cg.0, &vserver_core::rootfs::dev::GuestDevices::default()).unwrap();
    let procs = cg.0.join("cgroup.procs");
    // The shell moves itself into the cgroup, then tries both devices.
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}; (: < /dev/null) && echo null-ok; (: < /dev/kmsg) 2>/dev/null && echo kmsg-opened || echo kmsg-refused",
            procs.display()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("null-ok"), "{text}");
    assert!(text.contains("kmsg-refused"), "{text}");
    // Outside the cgroup the same open works: the refusal is the filter's.
    let out = Command::new("/bin/sh").arg("-c").arg("(: < /dev/kmsg) && echo kmsg-opened").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("kmsg-opened"));
}
