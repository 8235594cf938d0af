//! `vserver --all-marked MARK start|stop [-j N]`: util-vserver's
//! start-vservers, which its init script runs at boot. Every guest whose
//! `apps/init/mark` has MARK (a comma list; `!MARK` inverts) and that is not
//! `disabled`; for start also the guests they name in `apps/init/depends`,
//! each started only after its dependencies, independent ones in parallel
//! (up to N at a time); stop goes the other way round. Each guest is
//! started or stopped by a `vserver NAME start|stop` of its own, whose
//! output goes to `apps/init/tty` when the guest has one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use vserver_core::config::{self, Guest};
use vserver_core::{runstate, Paths};

/// util-vserver's init script starts six at a time.
pub const DEFAULT_JOBS: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop { timeout: u64 },
}

/// The guests to act on, each with the ones it must wait for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub waits_for: BTreeMap<String, BTreeSet<String>>,
    /// Guests that cannot be acted on, and why (a missing or disabled dependency).
    pub blocked: BTreeMap<String, String>,
}

pub fn run(paths: &Paths, mark: &str, action: Action, jobs: usize) -> Result<u8> {
    let mut failed = false;
    let mut guests = BTreeMap::new();
    for name in config::list_guests(paths)? {
        match config::load_guest(paths, &name) {
            Ok(g) => {
                guests.insert(name, g);
            }
            Err(e) => {
                // A broken guest only matters if it carries the mark; its mark
                // file cannot be trusted either, so say so and go on.
                eprintln!("vserver: {e}");
                failed = true;
            }
        }
    }
    let plan = plan(&guests, mark, action)?;
    for (name, why) in &plan.blocked {
        eprintln!("vserver {name}: not {}: {why}", verb(action));
        failed = true;
    }
    failed |= execute(paths, &guests, &plan, action, jobs.max(1))?;
    Ok(u8::from(failed))
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Start => "started",
        Action::Stop { .. } => "stopped",
    }
}

/// Works out the order. For start: the marked guests and their
/// dependencies (transitively), each waiting for its dependencies. For
/// stop: the marked guests, each waiting for the marked guests that depend
/// on it.
pub fn plan(guests: &BTreeMap<String, Guest>, mark: &str, action: Action) -> Result<Plan> {
    let marked: BTreeSet<String> = guests.values().filter(|g| !g.disabled && g.has_mark(mark)).map(|g| g.name.clone()).collect();
    let mut p = Plan::default();
    match action {
        Action::Start => {
            let mut todo: Vec<String> = marked.iter().cloned().collect();
            while let Some(name) = todo.pop() {
                if p.waits_for.contains_key(&name) || p.blocked.contains_key(&name) {
                    continue;
                }
                let g = &guests[&name];
                let mut deps = BTreeSet::new();
                for d in &g.init.depends {
                    match guests.get(d) {
                        None => {
                            p.blocked.insert(
                                name.clone(),
                                format!("it depends on {d:?}, which does not exist ({})", g.confdir.join("apps/init/depends").display()),
                            );
                        }
                        Some(dg) if dg.disabled => {
                            p.blocked.insert(name.clone(), format!("it depends on {d:?}, which is disabled"));
                        }
                        Some(_) => {
                            deps.insert(d.clone());
                            todo.push(d.clone());
                        }
                    }
                }
                if !p.blocked.contains_key(&name) {
                    p.waits_for.insert(name, deps);
                }
            }
        }
        Action::Stop { .. } => {
            for name in &marked {
                let dependents = marked.iter().filter(|o| guests[*o].init.depends.contains(name)).cloned().collect();
                p.waits_for.insert(name.clone(), dependents);
            }
        }
    }
    check_acyclic(&p)?;
    Ok(p)
}

fn check_acyclic(p: &Plan) -> Result<()> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    loop {
        let ready: Vec<&str> = p
            .waits_for
            .iter()
            .filter(|(n, w)| !done.contains(n.as_str()) && w.iter().all(|d| done.contains(d.as_str()) || !p.waits_for.contains_key(d)))
            .map(|(n, _)| n.as_str())
            .collect();
        if ready.is_empty() {
            break;
        }
        done.extend(ready);
    }
    let stuck: Vec<&str> = p.waits_for.keys().map(String::as_str).filter(|n| !done.contains(n)).collect();
    if !stuck.is_empty() {
        bail!("apps/init/depends of {} form a cycle", stuck.join(", "));
    }
    Ok(())
}

/// Runs the plan; true when any guest failed.
fn execute(paths: &Paths, guests: &BTreeMap<String, Guest>, plan: &Plan, action: Action, jobs: usize) -> Result<bool> {
    let exe = std::env::current_exe()?;
    let mut ok: BTreeSet<String> = BTreeSet::new();
    let mut failed: BTreeSet<String> = BTreeSet::new();
    let mut running: Vec<(String, Child)> = Vec::new();
    let mut pending: Vec<&String> = plan.waits_for.keys().collect();
    loop {
        // A guest whose dependency (or dependent, for stop) failed is not touched.
        pending.retain(|n| {
            let bad = plan.waits_for[*n].iter().find(|d| failed.contains(*d) || plan.blocked.contains_key(*d));
            if let Some(d) = bad {
                eprintln!("vserver {n}: not {}: {d} failed", verb(action));
                failed.insert((*n).clone());
                return false;
            }
            true
        });
        while running.len() < jobs {
            let Some(i) = pending.iter().position(|n| plan.waits_for[*n].iter().all(|d| ok.contains(d) || !plan.waits_for.contains_key(d)))
            else {
                break;
            };
            let name = pending.remove(i).clone();
            match spawn(paths, &exe, &guests[&name], action) {
                Ok(Some(child)) => running.push((name, child)),
                Ok(None) => {
                    ok.insert(name);
                }
                Err(e) => {
                    eprintln!("vserver {name}: cannot run: {e:#}");
                    failed.insert(name);
                }
            }
        }
        if running.is_empty() {
            break;
        }
        sleep(Duration::from_millis(20));
        let mut i = 0;
        while i < running.len() {
            match running[i].1.try_wait()? {
                None => i += 1,
                Some(status) => {
                    let (name, _) = running.remove(i);
                    if status.success() {
                        ok.insert(name);
                    } else {
                        eprintln!(
                            "vserver {name}: {} failed ({status})",
                            match action {
                                Action::Start => "start",
                                Action::Stop { .. } => "stop",
                            }
                        );
                        failed.insert(name);
                    }
                }
            }
        }
    }
    Ok(!failed.is_empty())
}

/// `vserver NAME start|stop` for one guest, or None when there is nothing
/// to do (already running, already stopped).
fn spawn(paths: &Paths, exe: &std::path::Path, guest: &Guest, action: Action) -> Result<Option<Child>> {
    let running = runstate::is_running(paths, &guest.name);
    let mut cmd = Command::new(exe);
    cmd.arg("--confdir").arg(&paths.confdir).arg("--vdirbase").arg(&paths.vdirbase).arg("--rundir").arg(&paths.rundir).arg(&guest.name);
    match action {
        Action::Start if running => return Ok(None),
        Action::Stop { .. } if !running => return Ok(None),
        Action::Start => cmd.arg("start"),
        Action::Stop { timeout } => cmd.arg("stop").arg("--timeout").arg(timeout.to_string()),
    };
    if let Some(tty) = &guest.init.tty {
        // util-vserver's --defaulttty: a terminal is input and output, a plain file output only.
        let out = OpenOptions::new()
            .append(true)
            .create(false)
            .open(tty)
            .with_context(|| format!("opening {} (apps/init/tty)", tty.display()))?;
        let input = if tty.metadata().map(|m| m.is_file()).unwrap_or(true) {
            Stdio::null()
        } else {
            Stdio::from(OpenOptions::new().read(true).open(tty)?)
        };
        cmd.stdin(input).stdout(Stdio::from(out.try_clone()?)).stderr(Stdio::from(out));
    }
    Ok(Some(cmd.spawn()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn guests(specs: &[(&str, &str, &[&str], bool)]) -> BTreeMap<String, Guest> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("vserver-all-marked-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let paths = Paths { confdir: root.join("etc"), vdirbase: root.join("v"), rundir: root.join("run"), cgroup_root: root.join("cg") };
        let mut out = BTreeMap::new();
        for (i, (name, mark, deps, disabled)) in specs.iter().enumerate() {
            let d = paths.guest_confdir(name);
            std::fs::create_dir_all(d.join("apps/init")).unwrap();
            std::fs::write(d.join("context"), format!("{}\n", 100 + i)).unwrap();
            if !mark.is_empty() {
                std::fs::write(d.join("apps/init/mark"), format!("{mark}\n")).unwrap();
            }
            std::fs::write(d.join("apps/init/depends"), deps.join("\n")).unwrap();
            if *disabled {
                std::fs::write(d.join("disabled"), "").unwrap();
            }
            out.insert(name.to_string(), config::load_guest(&paths, name).unwrap());
        }
        let _ = std::fs::remove_dir_all(Path::new(&root));
        out
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn start_pulls_in_dependencies_and_skips_disabled() {
        let g = guests(&[
            ("db", "", &[], false),
            ("web", "default", &["db"], false),
            ("off", "default", &[], true),
            ("other", "x", &[], false),
        ]);
        let p = plan(&g, "default", Action::Start).unwrap();
        assert_eq!(p.waits_for.keys().cloned().collect::<BTreeSet<_>>(), set(&["db", "web"]));
        assert_eq!(p.waits_for["web"], set(&["db"]));
        let stop = plan(&g, "default", Action::Stop { timeout: 1 }).unwrap();
        assert_eq!(stop.waits_for.keys().cloned().collect::<BTreeSet<_>>(), set(&["web"]), "unmarked dependencies are not stopped");
        let inverted = plan(&g, "!default", Action::Start).unwrap();
        assert_eq!(inverted.waits_for.keys().cloned().collect::<BTreeSet<_>>(), set(&["db", "other"]));
    }

    #[test]
    fn stop_waits_for_dependents_and_cycles_are_refused() {
        let g = guests(&[("db", "m", &[], false), ("web", "m", &["db"], false), ("dis", "", &[], true), ("app", "m", &["dis"], false)]);
        let stop = plan(&g, "m", Action::Stop { timeout: 1 }).unwrap();
        assert_eq!(stop.waits_for["db"], set(&["web"]));
        let start = plan(&g, "m", Action::Start).unwrap();
        assert!(start.blocked["app"].contains("disabled"));
        let c = guests(&[
            ("a", "m", &["b"], false),
            ("b", "m", &["a"], false),
            ("x", "", &[], false),
            ("y", "", &[], false),
            ("z", "", &[], false),
        ]);
        assert!(plan(&c, "m", Action::Start).unwrap_err().to_string().contains("cycle"));
    }
}
