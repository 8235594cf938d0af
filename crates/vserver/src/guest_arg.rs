//! Naming a guest on the command line as util-vserver lets one: by its
//! directory name (`web1`), by the context id of a running guest
//! (`vserver 5501 status`), or by its configuration directory
//! (`vserver /etc/vservers/web1 status`, `./web1` from the config root).

use std::path::Path;

use anyhow::{bail, Context, Result};
use vserver_core::{config, runstate, Paths};

/// The guest a command acts on, and the name as the admin typed it
/// (util-vserver's messages repeat it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub as_given: String,
}

pub fn resolve(paths: &Paths, arg: &str) -> Result<Named> {
    let as_given = arg.trim_end_matches('/').to_string();
    let as_given = if as_given.is_empty() { arg.to_string() } else { as_given };
    let name = if as_given.contains('/') {
        by_path(paths, &as_given)?
    } else if !as_given.is_empty() && as_given.bytes().all(|b| b.is_ascii_digit()) {
        by_xid(paths, &as_given)?
    } else {
        as_given.clone()
    };
    Ok(Named { name, as_given })
}

/// A configuration directory: it must be one under the configuration root,
/// whose `.defaults` and run state the other commands use.
fn by_path(paths: &Paths, given: &str) -> Result<String> {
    let dir = Path::new(given).canonicalize().with_context(|| format!("no guest configuration at {given}"))?;
    let root = paths.confdir.canonicalize().with_context(|| format!("reading the configuration root {}", paths.confdir.display()))?;
    match (dir.parent(), dir.file_name().and_then(|n| n.to_str())) {
        (Some(parent), Some(name)) if parent == root && !name.starts_with('.') => Ok(name.to_string()),
        _ => bail!(
            "{given} is not a guest's configuration directory under {} (give --confdir for another configuration root)",
            paths.confdir.display()
        ),
    }
}

/// A number: the running guest with that context id first (util-vserver
/// asks the kernel), then a guest directory of that name, then the guest
/// whose `context` file says it.
fn by_xid(paths: &Paths, given: &str) -> Result<String> {
    let xid: u32 = given.parse().with_context(|| format!("{given} is not a context id"))?;
    if let Some(s) = runstate::running_guests(paths).unwrap_or_default().into_iter().find(|s| s.xid == xid) {
        return Ok(s.name);
    }
    if paths.guest_confdir(given).is_dir() {
        return Ok(given.to_string());
    }
    for name in config::list_guests(paths).unwrap_or_default() {
        let file = paths.guest_confdir(&name).join("context");
        if std::fs::read_to_string(&file).ok().and_then(|t| config::parse::meaningful_lines(&t).first().map(|l| l.text.clone()))
            == Some(xid.to_string())
        {
            return Ok(name);
        }
    }
    bail!("no guest has context id {xid} (and no guest is named {given:?})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(root: &Path) -> Paths {
        Paths { confdir: root.join("etc"), vdirbase: root.join("v"), rundir: root.join("run"), cgroup_root: root.join("cg") }
    }

    #[test]
    fn names_paths_and_context_ids() {
        let root = std::env::temp_dir().join(format!("vserver-guest-arg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let p = paths(&root);
        std::fs::create_dir_all(p.confdir.join("web1")).unwrap();
        std::fs::write(p.confdir.join("web1/context"), "5501\n").unwrap();
        std::fs::create_dir_all(p.confdir.join(".defaults")).unwrap();
        assert_eq!(resolve(&p, "web1").unwrap(), Named { name: "web1".into(), as_given: "web1".into() });
        let by_path = resolve(&p, &format!("{}/web1/", p.confdir.display())).unwrap();
        assert_eq!(by_path.name, "web1");
        assert_eq!(by_path.as_given, format!("{}/web1", p.confdir.display()));
        assert_eq!(resolve(&p, "5501").unwrap().name, "web1");
        assert!(resolve(&p, "5502").unwrap_err().to_string().contains("context id 5502"));
        assert!(resolve(&p, &format!("{}/.defaults", p.confdir.display())).is_err());
        assert!(resolve(&p, "/tmp").unwrap_err().to_string().contains("not a guest's configuration directory"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
