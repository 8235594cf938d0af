//! `chbind`: run one command in a transient network context. The context is
//! a cgroup `<v2 root>/vserver/chbind-<pid>` with the programs attached; the
//! command moves itself into it before exec, so its first socket is already
//! confined. chbind stays as the parent (and subreaper) of the command's
//! whole process tree, passes SIGTERM/SIGINT/SIGHUP/SIGQUIT on, and removes
//! the cgroup and its programs when the last process is gone. A context
//! with an IPv6 loopback address puts it on `lo` for that time, recorded in
//! `<rundir>/.chbind/PID` so a chbind killed with SIGKILL has it removed by
//! the next one.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::{probe, AddedAddress, AttachedPrograms, IoContext, NetContext, NetError};
use crate::paths::Paths;

const FORWARDED: [Signal; 4] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT];

/// The transient cgroup; dropping it detaches the programs and removes it,
/// and the host addresses the context added.
struct TransientCgroup {
    dir: PathBuf,
    attached: Option<AttachedPrograms>,
    added: Vec<AddedAddress>,
    /// Where `added` is recorded for a successor, if we die unannounced.
    record: Option<PathBuf>,
}

impl TransientCgroup {
    fn create(v2_root: &Path, records: &Path) -> Result<TransientCgroup, NetError> {
        let parent = v2_root.join("vserver");
        remove_stale(&parent, records);
        let dir = parent.join(format!("chbind-{}", std::process::id()));
        // The shared parent goes when the last chbind or guest in it ends
        // (`Drop` below, guest stop): one may remove it between our mkdir
        // of the parent and of our own cgroup. Then the parent is made again.
        let make = |d: &Path| {
            std::fs::create_dir(d).map_err(|e| std::io::Error::new(e.kind(), format!("cannot create cgroup {}: {e}", d.display())))
        };
        crate::cgroup::make_below_shared_parent(|| {
            match make(&parent) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            make(&dir)
        })
        .map_err(NetError::Sys)?;
        Ok(TransientCgroup { dir, attached: None, added: Vec::new(), record: None })
    }

    fn populated(&self) -> bool {
        populated(&self.dir)
    }

    fn pids(&self) -> Vec<Pid> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok().map(Pid::from_raw))
            .collect()
    }
}

impl Drop for TransientCgroup {
    fn drop(&mut self) {
        if let Some(mut a) = self.attached.take() {
            if let Err(e) = a.detach() {
                log::error!("{e:#}");
            }
        }
        if let Err(e) = super::remove_host_addresses(&std::mem::take(&mut self.added)) {
            log::error!("{e:#}");
        }
        if let Some(r) = self.record.take() {
            let _ = std::fs::remove_file(r);
        }
        if let Err(e) = crate::cgroup::remove_with_shared_parent(&self.dir, Duration::from_secs(1)) {
            log::error!("cannot remove cgroup: {e}");
        }
    }
}

fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events")).map(|s| s.lines().any(|l| l == "populated 1")).unwrap_or(false)
}

/// A chbind killed with SIGKILL cannot clean up: its cgroup stays, with the
/// programs attached, and the addresses it recorded. The next chbind removes
/// such a cgroup once it is empty and its chbind (the pid in the name) is
/// gone, and the addresses with it.
fn remove_stale(parent: &Path, records: &Path) {
    if let Ok(entries) = std::fs::read_dir(records) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.parse::<u32>().is_ok() && !Path::new("/proc").join(&name).exists() {
                let added: Vec<AddedAddress> =
                    std::fs::read_to_string(e.path()).unwrap_or_default().lines().filter_map(|l| l.parse().ok()).collect();
                let _ = super::remove_host_addresses(&added);
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("chbind-").and_then(|p| p.parse::<u32>().ok()) else { continue };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        if populated(&e.path()) {
            continue; // what that chbind ran still runs
        }
        let _ = super::detach_from_cgroup(&e.path());
        drop(TransientCgroup { dir: e.path(), attached: None, added: Vec::new(), record: None });
        // removes the directory
    }
}

/// Runs `command` confined to `ctx` and returns its exit code (128 + signal
/// number if it was killed), after all its descendants are gone too.
pub fn run_in_transient_context(paths: &Paths, ctx: &NetContext, command: &[OsString]) -> Result<i32, NetError> {
    let Some((program, args)) = command.split_first() else { return Err(NetError::NoCommand) };
    let v2_root = probe(paths)?;
    let records = paths.rundir.join(".chbind");
    let mut cgroup = TransientCgroup::create(&v2_root, &records)?;
    cgroup.attached = Some(ctx.apply_to_cgroup(&cgroup.dir, &paths.rundir)?);
    cgroup.added = ctx.add_host_addresses()?;
    if !cgroup.added.is_empty() {
        let record = records.join(std::process::id().to_string());
        let text: String = cgroup.added.iter().map(|a| format!("{a}\n")).collect();
        std::fs::create_dir_all(&records)
            .and_then(|()| std::fs::write(&record, text))
            .on_file("cannot record the added addresses in", &record)?;
        cgroup.record = Some(record);
    }

    let mut mask = SigSet::empty();
    for s in FORWARDED.iter().chain(&[Signal::SIGCHLD]) {
        mask.add(*s);
    }
    // Blocked before the child exists, so no signal is lost in between; the
    // child unblocks them again before exec.
    mask.thread_block().or_doing(|| "cannot block signals".into())?;
    // Orphaned grandchildren come back to us, so "all descendants gone" is
    // something waitpid can tell.
    nix::sys::prctl::set_child_subreaper(true).or_doing(|| "cannot become a child subreaper".into())?;

    let procs_path = cgroup.dir.join("cgroup.procs");
    let procs = CString::new(procs_path.as_os_str().as_bytes()).map_err(|err| NetError::NulInPath { path: procs_path, err })?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    crate::sys::process::unblock_and_join_cgroup_at_exec(&mut cmd, procs);
    // std reports a failure of pre_exec or exec through its own CLOEXEC pipe:
    // spawn returns only once the child is in the cgroup and exec'd.
    let child = cmd.spawn().or_doing(|| format!("cannot run {}", program.to_string_lossy()))?;
    let status = supervise(&cgroup, Pid::from_raw(child.id() as i32), &mask);
    let _ = mask.thread_unblock();
    drop(cgroup);
    Ok(status)
}

/// Waits for the command (recording its status) and then for the rest of
/// the cgroup, forwarding signals: to the command while it lives, then to
/// whatever is left in the cgroup.
fn supervise(cgroup: &TransientCgroup, child: Pid, mask: &SigSet) -> i32 {
    let mut status: Option<i32> = None;
    loop {
        reap(child, &mut status);
        if status.is_some() && !cgroup.populated() && no_children_left() {
            return status.unwrap_or(1);
        }
        if let Some(sig) = wait_signal(mask, Duration::from_millis(100)) {
            if FORWARDED.contains(&sig) {
                let targets = if status.is_none() { vec![child] } else { cgroup.pids() };
                for pid in targets {
                    let _ = kill(pid, sig);
                }
            }
        }
    }
}

fn reap(child: Pid, status: &mut Option<i32>) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => *status = Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => *status = Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {} // a reparented descendant: reaped, nothing to record
        }
    }
}

fn no_children_left() -> bool {
    matches!(waitpid(None, Some(WaitPidFlag::WNOHANG)), Err(nix::errno::Errno::ECHILD))
}

/// sigtimedwait: the next blocked signal, or None after `timeout`.
fn wait_signal(mask: &SigSet, timeout: Duration) -> Option<Signal> {
    crate::sys::signal::wait_signal(mask, timeout).and_then(|s| Signal::try_from(s).ok())
}
