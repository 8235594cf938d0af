//! util-vserver's scriptlets: host commands the admin hooks into a guest's
//! start and stop. For each stage, `scripts/STAGE` and then every file of
//! `scripts/STAGE.d/` in sorted order run with the stage and the guest's
//! name as arguments; then the same from `.defaults/scripts/`, unless the
//! guest had a scriptlet of that stage (a sourced one may set
//! `DONT_SKIP_DEFAULTS` to run them anyway). Executable files are run;
//! others are sourced by a shell, as util-vserver sources them into its own.
//!
//! One entry point per stage. Where each runs:
//!
//! | stage | caller | working directory | a failure |
//! | --- | --- | --- | --- |
//! | initialize | `vserver start`, before the configuration is read | config dir | aborts the start |
//! | prepre-start | `vserver start`, after its checks | config dir | aborts the start |
//! | pre-start | the monitor, once the cgroup and the network (addresses, or the veth pair) are set up, before the guest's first process runs anything | guest root | aborts the start; everything set up is undone |
//! | post-start | `vserver start`, once the guest runs | guest root | `start` fails; the guest keeps running |
//! | pre-stop | `vserver stop`, before the stop command | guest root | a warning |
//! | post-stop | the monitor, once every guest process is gone, before the network is undone | guest root | a warning |
//! | postpost-stop | the monitor, at the very end | guest root | a warning |
//!
//! The monitor's scriptlets (and its `apps/init/cmd.*` host commands) run
//! in the host cgroups the monitor came from, not in the guest's: there the
//! guest's limits and IP set would hold for them. They do share the
//! monitor's Landlock scope, which keeps them off abstract unix sockets
//! outside it (`net::abstract_unix`).
//!
//! When the guest reboots from inside, the monitor runs post-stop and
//! postpost-stop, then initialize, prepre-start, pre-start and post-start.
//! Output goes to the terminal `vserver start` or `stop` ran on; the monitor
//! writes to the terminal `start` had until the guest is up, later to its
//! log (`<rundir>/NAME/monitor.log`).

use std::fs;
use std::io::{IsTerminal, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::context::error::{ContextError, OrMissing, Result, StepResult};

use crate::config::{Guest, GuestBasics};
use crate::paths::Paths;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Initialize,
    PrepreStart,
    PreStart,
    PostStart,
    PreStop,
    PostStop,
    PostpostStop,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Initialize => "initialize",
            Stage::PrepreStart => "prepre-start",
            Stage::PreStart => "pre-start",
            Stage::PostStart => "post-start",
            Stage::PreStop => "pre-stop",
            Stage::PostStop => "post-stop",
            Stage::PostpostStop => "postpost-stop",
        }
    }

    /// util-vserver runs the start stages under `set -e`: the first
    /// failing scriptlet ends the start. Stop goes on past failures.
    fn fails_the_command(self) -> bool {
        matches!(self, Stage::Initialize | Stage::PrepreStart | Stage::PreStart | Stage::PostStart)
    }

    fn runs_in_config_dir(self) -> bool {
        matches!(self, Stage::Initialize | Stage::PrepreStart)
    }
}

/// What a scriptlet is told about its guest.
struct Target<'a> {
    paths: &'a Paths,
    name: String,
    confdir: PathBuf,
    guest: Option<GuestBasics>,
}

/// Before the configuration is read (it may still change it).
pub fn initialize(paths: &Paths, name: &str) -> Result<()> {
    run_stage(&Target { paths, name: name.to_string(), confdir: paths.guest_confdir(name), guest: None }, Stage::Initialize)
}

pub fn prepre_start(paths: &Paths, guest: &Guest) -> Result<()> {
    run_stage(&target(paths, guest), Stage::PrepreStart)
}

/// util-vserver's init preparation (the initial `/etc/mtab`,
/// `apps/init/cmd.prepare`), then the pre-start scriptlets.
pub fn pre_start(paths: &Paths, guest: &Guest) -> Result<()> {
    write_mtab(guest)?;
    if let Some(cmd) = &guest.init.cmd_prepare {
        run_host_command(&guest.basics(), cmd, "apps/init/cmd.prepare")?;
    }
    run_stage(&target(paths, guest), Stage::PreStart)
}

/// `apps/init/cmd.start-sync` (with `apps/init/sync`), then the post-start
/// scriptlets.
pub fn post_start(paths: &Paths, guest: &Guest) -> Result<()> {
    if let Some(cmd) = &guest.init.cmd_start_sync {
        run_host_command(&guest.basics(), cmd, "apps/init/cmd.start-sync")?;
    }
    run_stage(&target(paths, guest), Stage::PostStart)
}

/// Never fails: stop goes on.
pub fn pre_stop(paths: &Paths, guest: &GuestBasics) {
    warn(&guest.name, run_stage(&basics_target(paths, guest.clone()), Stage::PreStop));
}

/// `apps/init/cmd.stop-sync`, after the stop command. Never fails.
pub fn stop_sync(guest: &GuestBasics) {
    if let Some(cmd) = &guest.init.cmd_stop_sync {
        warn(&guest.name, run_host_command(guest, cmd, "apps/init/cmd.stop-sync"));
    }
}

pub fn post_stop(paths: &Paths, guest: &Guest) {
    warn(&guest.name, run_stage(&target(paths, guest), Stage::PostStop));
}

pub fn postpost_stop(paths: &Paths, guest: &Guest) {
    warn(&guest.name, run_stage(&target(paths, guest), Stage::PostpostStop));
}

/// For a reboot from inside: the monitor runs what `vserver start` runs
/// before the monitor exists.
pub fn before_reboot(paths: &Paths, guest: &Guest) -> Result<()> {
    initialize(paths, &guest.name)?;
    prepre_start(paths, guest)
}

/// How long `vserver stop` waits for the monitor's teardown: longer when
/// post-stop scriptlets run in it (util-vserver gives them no limit).
pub fn teardown_grace(paths: &Paths, guest: &GuestBasics) -> std::time::Duration {
    let t = basics_target(paths, guest.clone());
    let any = [Stage::PostStop, Stage::PostpostStop]
        .iter()
        .any(|s| [t.confdir.join("scripts"), paths.defaults_dir().join("scripts")].iter().any(|b| !scriptlets(b, *s).is_empty()));
    std::time::Duration::from_secs(if any { 300 } else { 10 })
}

fn target<'a>(paths: &'a Paths, guest: &'a Guest) -> Target<'a> {
    basics_target(paths, guest.basics())
}

fn basics_target(paths: &Paths, guest: GuestBasics) -> Target<'_> {
    Target { paths, name: guest.name.clone(), confdir: guest.confdir.clone(), guest: Some(guest) }
}

fn warn(guest: &str, r: Result<()>) {
    if let Err(e) = r {
        log::warn!("guest {guest}: {e:#}");
    }
}

/// The terminal `vserver start` runs on, kept for the monitor's scriptlets
/// until the guest is up (stdout and stderr, duplicated, close-on-exec).
static CALLER_TERMINAL: Mutex<Option<[OwnedFd; 2]>> = Mutex::new(None);

/// Called by `vserver start` before it forks the monitor: when its output
/// is a terminal, the monitor's scriptlets write there too. Returns the
/// descriptors the monitor must keep open.
pub fn keep_caller_terminal() -> Vec<RawFd> {
    let on_terminal = std::io::stdout().is_terminal() || std::io::stderr().is_terminal();
    // try_clone_to_owned is fcntl(F_DUPFD_CLOEXEC, 3).
    let dup = |fd: BorrowedFd| fd.try_clone_to_owned().ok();
    let out = on_terminal.then(|| dup(std::io::stdout().as_fd())).flatten();
    let err = on_terminal.then(|| dup(std::io::stderr().as_fd())).flatten();
    let (Some(out), Some(err)) = (out, err) else {
        return Vec::new();
    };
    let fds = [out, err];
    let raw = fds.iter().map(AsRawFd::as_raw_fd).collect();
    *CALLER_TERMINAL.lock().unwrap_or_else(|e| e.into_inner()) = Some(fds);
    raw
}

/// Called by the monitor once `vserver start` has its answer: from now on
/// scriptlets write to the monitor's log.
pub fn release_caller_terminal() {
    CALLER_TERMINAL.lock().unwrap_or_else(|e| e.into_inner()).take();
}

/// The host cgroups the monitor came from, once it sits in the guest's
/// `supervisor`: the scriptlets and host commands it runs go back there.
/// In `supervisor` they would be counted against the guest's limits, fall
/// under its IP set (the programs on `vserver/NAME` hold for every cgroup
/// below), and a daemon one of them left behind would keep the guest's
/// cgroup from being removed.
static HOST_CGROUPS: Mutex<Vec<[PathBuf; 2]>> = Mutex::new(Vec::new());

/// Called by the monitor once it is in the guest's `supervisor`: per
/// hierarchy, the `cgroup.procs`/`tasks` file of where it came from and
/// the hierarchy root's.
pub fn run_in_host_cgroups(files: Vec<[PathBuf; 2]>) {
    *HOST_CGROUPS.lock().unwrap_or_else(|e| e.into_inner()) = files;
}

/// Chosen at each spawn: the cgroup the monitor came from may be gone by
/// now (then the hierarchy's root).
fn in_host_cgroups(cmd: &mut Command) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let choices = HOST_CGROUPS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut files = Vec::new();
    for [origin, root] in choices {
        let file = if origin.exists() { origin } else { root };
        files.push(std::ffi::CString::new(file.as_os_str().as_bytes()).with_step(|| format!("cgroup file {}", file.display()))?);
    }
    if !files.is_empty() {
        crate::sys::process::join_cgroups_at_exec(cmd, files);
    }
    Ok(())
}

fn output_for(cmd: &mut Command) -> Result<()> {
    if let Some([out, err]) = CALLER_TERMINAL.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        cmd.stdout(Stdio::from(out.try_clone()?)).stderr(Stdio::from(err.try_clone()?));
    }
    Ok(())
}

/// The scriptlets of one stage from one directory, in util-vserver's order.
fn scriptlets(base: &Path, stage: Stage) -> Vec<PathBuf> {
    let mut out = vec![base.join(stage.name())];
    if let Ok(entries) = fs::read_dir(base.join(format!("{}.d", stage.name()))) {
        let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        more.sort();
        out.extend(more);
    }
    out.into_iter().filter(|p| is_scriptlet(p)).collect()
}

/// A regular file (symlinks followed) that is not a backup left by an
/// editor or a package manager.
fn is_scriptlet(p: &Path) -> bool {
    let name = p.file_name().unwrap_or_default().to_string_lossy();
    let backup = name.ends_with('~')
        || [".rpmsave", ".rpmnew", ".rpmorig", ".dpkg-old", ".dpkg-new", ".dpkg-dist"].iter().any(|s| name.ends_with(s))
        || name.contains(".cfsaved")
        || (name.contains(".~") && name.ends_with('~'));
    !backup && p.metadata().map(|m| m.is_file()).unwrap_or(false)
}

fn run_stage(t: &Target, stage: Stage) -> Result<()> {
    let mut first_error = None;
    for base in [t.confdir.join("scripts"), t.paths.defaults_dir().join("scripts")] {
        let files = scriptlets(&base, stage);
        let mut run_defaults = files.is_empty();
        for file in files {
            match run_one(t, stage, &file) {
                Ok(dont_skip) => run_defaults |= dont_skip,
                Err(e) if stage.fails_the_command() => return Err(e),
                Err(e) => {
                    log::warn!("guest {}: {e:#}", t.name);
                    first_error.get_or_insert(e);
                }
            }
        }
        if !run_defaults {
            break;
        }
    }
    match first_error {
        Some(e) if stage.fails_the_command() => Err(e),
        _ => Ok(()),
    }
}

/// Runs one scriptlet; true when it set DONT_SKIP_DEFAULTS (only a sourced
/// one can).
fn run_one(t: &Target, stage: Stage, file: &Path) -> Result<bool> {
    let executable = file.metadata().map(|m| m.permissions().mode() & 0o111 != 0).unwrap_or(false);
    // Non-blocking: a daemon the scriptlet leaves behind may hold fd 3 open.
    let (pipe_r, pipe_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
    let mut cmd = if executable {
        let mut c = Command::new(file);
        c.arg(stage.name()).arg(&t.name);
        c
    } else {
        let shell = if Path::new("/bin/bash").exists() { "/bin/bash" } else { "/bin/sh" };
        let mut c = Command::new(shell);
        c.arg("-c")
            .arg(r#". "$0" "$@"; rc=$?; [ -n "$DONT_SKIP_DEFAULTS" ] && printf y >&3; exit $rc"#)
            .arg(file)
            .arg(stage.name())
            .arg(&t.name);
        c
    };
    environment(&mut cmd, t, stage);
    cmd.current_dir(working_dir(t, stage));
    output_for(&mut cmd)?;
    // Between fork and exec: the scriptlet gets fd 3 (the DONT_SKIP_DEFAULTS
    // pipe), no other inherited descriptor, and no signal blocked (the
    // monitor blocks the ones it reads from a signalfd). `cmd` owns the
    // pipe's write end from here.
    crate::sys::signal::exec_clean(&mut cmd, Some(pipe_w));
    in_host_cgroups(&mut cmd)?;
    let status = cmd.status().with_step(|| format!("running scriptlet {}", file.display()))?;
    // Closes our copy of the write end.
    drop(cmd);
    let mut flag = [0u8; 1];
    let dont_skip = matches!(fs::File::from(pipe_r).read(&mut flag), Ok(1) if flag[0] == b'y');
    if !status.success() {
        return Err(ContextError::CommandFailed(format!("scriptlet {} ({} {}) failed: {status}", file.display(), stage.name(), t.name)));
    }
    Ok(dont_skip)
}

/// util-vserver's scriptlets see its shell variables (sourced ones) and
/// what it exports; these are the ones scriptlets use.
fn environment(cmd: &mut Command, t: &Target, stage: Stage) {
    cmd.env("VSERVER_NAME", &t.name)
        .env("VSERVER_DIR", &t.confdir)
        .env("__CONFDIR", &t.paths.confdir)
        .env("__DEFAULT_VSERVERDIR", &t.paths.vdirbase)
        .env("__RUNDIR", &t.paths.rundir)
        .env_remove("DONT_SKIP_DEFAULTS");
    if let Ok(cwd) = std::env::current_dir() {
        cmd.env("INIT_CWD", cwd);
    }
    let Some(g) = &t.guest else { return };
    cmd.env("S_CONTEXT", g.xid.to_string()).env("VSERVER_VDIR", &g.vdir);
    if matches!(stage, Stage::PreStop | Stage::PostStop | Stage::PostpostStop) && g.init.style == crate::config::InitStyle::Sysv {
        // As util-vserver exports them for Debian's initscripts at stop.
        cmd.env("PREVLEVEL", &g.init.runlevel).env("RUNLEVEL", g.init.runlevel_stop.as_deref().unwrap_or("0"));
    }
}

fn working_dir(t: &Target, stage: Stage) -> PathBuf {
    match &t.guest {
        Some(g) if !stage.runs_in_config_dir() && g.vdir.is_dir() => g.vdir.clone(),
        _ => t.confdir.clone(),
    }
}

/// A host command of `apps/init/` (cmd.prepare, cmd.*-sync), run in the
/// guest root as util-vserver runs it.
fn run_host_command(guest: &GuestBasics, argv: &[String], file: &str) -> Result<()> {
    let (prog, args) = argv.split_first().or_missing("empty command")?;
    let mut cmd = Command::new(prog);
    cmd.args(args).current_dir(&guest.vdir);
    output_for(&mut cmd)?;
    // As in run_one: no descriptor beyond stdio, no blocked signal.
    crate::sys::signal::exec_clean(&mut cmd, None);
    in_host_cgroups(&mut cmd)?;
    let path = guest.confdir.join(file);
    let status = cmd.status().with_step(|| format!("{}: running {prog}", path.display()))?;
    if !status.success() {
        return Err(ContextError::CommandFailed(format!("{}: {} failed: {status}", path.display(), argv.join(" "))));
    }
    Ok(())
}

/// util-vserver's initial `/etc/mtab` for a guest with an fstab, written
/// from the host into the guest's tree without following anything the
/// guest could have planted: `etc` must be a real directory, `etc/mtab` a
/// plain file (a symlink, as current distributions have, is left alone).
fn write_mtab(guest: &Guest) -> Result<()> {
    use crate::sys::openat2::{openat2, RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS};
    let Some(src) = guest.init.mtab.as_ref().filter(|_| !guest.fstab.is_empty()) else { return Ok(()) };
    let content = fs::read(src).with_step(|| format!("reading {}", src.display()))?;
    let root = fs::File::open(&guest.vdir).with_step(|| format!("opening {}", guest.vdir.display()))?;
    let strict = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
    let etc = match openat2(&root, Path::new("etc"), libc::O_PATH | libc::O_DIRECTORY, 0, strict) {
        Ok(fd) => fd,
        Err(_) => return Ok(()),
    };
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let file = match openat2(&etc, Path::new("mtab"), flags, 0o644, strict) {
        Ok(fd) => fs::File::from(fd),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(()),
        Err(e) => return Err(e).with_step(|| format!("{}: writing the guest's /etc/mtab", src.display())),
    };
    let meta = file.metadata()?;
    if !meta.is_file() || meta.nlink() > 1 {
        return Err(ContextError::InGuest(format!("{}: the guest's /etc/mtab is not a plain file; not writing it", src.display())));
    }
    file.set_len(0)?;
    std::io::Write::write_all(&mut &file, &content)?;
    Ok(())
}

use std::os::unix::fs::MetadataExt;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::tests::tempdir;

    fn world() -> (Paths, PathBuf) {
        let root = tempdir();
        let paths = Paths { confdir: root.join("etc"), vdirbase: root.join("v"), rundir: root.join("run"), cgroup_root: root.join("cg") };
        let g = paths.guest_confdir("g1");
        fs::create_dir_all(g.join("scripts/pre-start.d")).unwrap();
        fs::create_dir_all(paths.defaults_dir().join("scripts")).unwrap();
        (paths, g)
    }

    fn script(path: &Path, body: &str, executable: bool) {
        fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(if executable { 0o755 } else { 0o644 })).unwrap();
    }

    #[test]
    fn order_arguments_defaults_and_dont_skip() {
        let (paths, g) = world();
        let log = g.join("log");
        let rec = |tag: &str| format!("echo {tag} \"$1\" \"$2\" \"$VSERVER_NAME\" >> {}", log.display());
        script(&g.join("scripts/initialize"), &rec("own"), true);
        script(&g.join("scripts/initialize.d"), "", true); // not a directory here: a file of that name is ignored
        script(&paths.defaults_dir().join("scripts/initialize"), &rec("default"), true);
        initialize(&paths, "g1").unwrap();
        assert_eq!(fs::read_to_string(&log).unwrap(), "own initialize g1 g1\n", "defaults are skipped once the guest has one");
        fs::remove_file(&log).unwrap();
        // A sourced scriptlet can ask for the defaults too.
        script(&g.join("scripts/initialize"), &format!("{}\nDONT_SKIP_DEFAULTS=1", rec("sourced")), false);
        initialize(&paths, "g1").unwrap();
        assert_eq!(fs::read_to_string(&log).unwrap(), "sourced initialize g1 g1\ndefault initialize g1 g1\n");
    }

    #[test]
    fn a_failing_start_stage_stops_at_once() {
        let (paths, g) = world();
        let log = g.join("log");
        fs::create_dir_all(g.join("scripts/initialize.d")).unwrap();
        script(&g.join("scripts/initialize.d/10-fails"), &format!("echo 10 >> {}; exit 3", log.display()), true);
        script(&g.join("scripts/initialize.d/20-never"), &format!("echo 20 >> {}", log.display()), true);
        script(&g.join("scripts/initialize.d/05-backup~"), &format!("echo backup >> {}", log.display()), true);
        let e = format!("{:#}", initialize(&paths, "g1").unwrap_err());
        assert!(e.contains("10-fails") && e.contains("exit status: 3"), "{e}");
        assert_eq!(fs::read_to_string(&log).unwrap(), "10\n");
    }
}
