//! `/proc` for the guest's own pid namespace, and `/sys` read-only. What
//! /proc shares with the host (kernel memory, the kernel log, sysrq, timer
//! and scheduler internals, kernel symbol addresses) is masked; `/proc/sys`
//! is read-only because the guest shares most sysctls with the host.

use std::io;
use std::path::Path;

use super::resolve::{GuestRoot, Symlinks};
use super::{fd_path, mount, remount_readonly};

/// Files replaced by /dev/null bound read-only and nodev: opening them fails
/// with EACCES for reading and for writing. Not an empty readable file: a
/// reader such as rsyslog's imklog on /proc/kmsg would get EOF and retry
/// forever; not a writable node either: a device opens for writing even on
/// a read-only mount, so `echo b > /proc/sysrq-trigger` would "succeed".
pub const MASKED_FILES: &[&str] = &[
    "/proc/kcore",
    "/proc/kmsg",
    "/proc/kallsyms",
    "/proc/sysrq-trigger",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/latency_stats",
    "/proc/keys",
    "/proc/key-users",
    "/proc/kpagecount",
    "/proc/kpageflags",
    "/proc/kpagecgroup",
    "/proc/vmallocinfo",
    "/proc/slabinfo",
    "/proc/iomem",
    "/proc/modules",
    "/proc/config.gz",
];

/// Directories hidden under an empty read-only tmpfs.
pub const MASKED_DIRS: &[&str] = &["/proc/acpi", "/proc/scsi", "/proc/asound", "/proc/driver"];

/// Directories bound read-only onto themselves.
pub const READONLY_DIRS: &[&str] = &["/proc/sys", "/proc/irq", "/proc/bus", "/proc/fs"];

const PROC_FLAGS: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// Mounts proc inside the guest root. Must run in the guest's pid namespace
/// (as its pid 1) so that the guest sees only its own processes.
pub fn mount_proc(root: &GuestRoot) -> io::Result<()> {
    let dir = root.ensure_dir(Path::new("proc"), Symlinks::Refuse, 0o555)?;
    mount(Some("proc"), &fd_path(&dir), Some("proc"), PROC_FLAGS, None)
}

pub fn mount_sys_readonly(root: &GuestRoot) -> io::Result<()> {
    let dir = root.ensure_dir(Path::new("sys"), Symlinks::Refuse, 0o555)?;
    mount(Some("sysfs"), &fd_path(&dir), Some("sysfs"), PROC_FLAGS | libc::MS_RDONLY, None)
}

/// Runs after pivot_root: the paths are then the guest's fresh procfs (which
/// no guest process has touched yet) and its /dev/null.
pub fn mask() -> io::Result<()> {
    for file in MASKED_FILES.iter().map(Path::new).filter(|p| p.exists()) {
        mount(Some("/dev/null"), file, None, libc::MS_BIND, None)?;
        // nodev: the device node behind the mask cannot be opened at all.
        remount_readonly(file, libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV)?;
    }
    for dir in MASKED_DIRS.iter().map(Path::new).filter(|p| p.is_dir()) {
        mount(Some("tmpfs"), dir, Some("tmpfs"), PROC_FLAGS | libc::MS_RDONLY, Some("size=0,mode=555"))?;
    }
    for dir in READONLY_DIRS.iter().map(Path::new).filter(|p| p.is_dir()) {
        mount(Some(&dir.to_string_lossy()), dir, None, libc::MS_BIND | libc::MS_REC, None)?;
        remount_readonly(dir, PROC_FLAGS)?;
    }
    Ok(())
}
