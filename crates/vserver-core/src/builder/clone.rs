//! `build -m clone -- [--source] SOURCE [--exclude-from FILE]` (util-vserver's
//! clone method and vclone): a copy of another guest, by name or by root
//! directory, that becomes a new machine (personalise.rs). The source's
//! configuration is copied too, except what identifies it.
//!
//! A running source is frozen for the copy (freeze.rs) and thawed after; a
//! source that is unified keeps its store links in the clone.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::copy::{copy_tree, CopyReport, CopyRules, IdMap};
use super::error::{BuildError, Doing};
use super::freeze::Frozen;
use super::personalise::STALE_DIRS;
use super::UsageError;
use crate::config::parse::read_path_entry;
use crate::paths::Paths;
use crate::runstate;
use crate::sys::file as sys;
use crate::unify::{self, ExcludeList};

/// Configuration entries a clone takes over from its source: everything
/// but what identifies the source (context, name, uts/nodename, interfaces).
const CONFIG_COPIED: &[&str] = &[
    "bcapabilities",
    "ccapabilities",
    "cflags",
    "flags",
    "fstab",
    "rlimits",
    "apps",
    "personality",
    "namespaces",
    "sched",
    "cpuset",
    "uts/domainname",
    "nflags",
    "ncapabilities",
    "ulimits",
    "nice",
    "schedule",
    "sysctl",
    "cgroup",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub source: String,
    pub exclude_from: Option<PathBuf>,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Args, UsageError> {
        let (mut source, mut exclude_from) = (None, None);
        let mut it = args.iter();
        let usage = || UsageError("build -m clone needs the source: -- SOURCE (a guest name or a root directory)".into());
        while let Some(a) = it.next() {
            match a.as_str() {
                "-s" | "--source" => source = Some(it.next().ok_or_else(usage)?.clone()),
                "-X" | "--exclude-from" => {
                    let f = it.next().ok_or_else(|| UsageError("build -m clone: --exclude-from needs a file".into()))?;
                    exclude_from = Some(PathBuf::from(f));
                }
                "-d" => {
                    it.next(); // util-vserver's distribution: the source's is kept
                }
                "--" => {}
                other if other.starts_with('-') => return Err(UsageError(format!("build -m clone: unknown option {other:?}"))),
                other if source.is_none() => source = Some(other.to_string()),
                other => return Err(UsageError(format!("build -m clone: a second source {other:?}"))),
            }
        }
        Ok(Args { source: source.ok_or_else(usage)?, exclude_from })
    }
}

/// The source guest: its root, and its name when it is a configured guest.
struct Source {
    root: PathBuf,
    guest: Option<String>,
}

pub(super) fn build(paths: &Paths, name: &str, args: &Args, confdir: &Path, vdir: &Path) -> Result<CopyReport, BuildError> {
    let source = resolve_source(paths, &args.source)?;
    if source.guest.as_deref() == Some(name) {
        return Err(BuildError::CloneOntoItself);
    }
    let mut excludes = ExcludeList::default();
    if let Some(f) = &args.exclude_from {
        unify::config::add_required_file(&mut excludes, f)?;
    }
    let src = open_dir(&source.root).map_err(|err| BuildError::CloneSource { root: source.root.clone(), err: Box::new(err) })?;
    let dst = open_dir(vdir)?;
    let ids = source_ids(&src)?;
    let unified = source_store(paths, &source, &src)?.is_some();
    // Frozen last, thawed first: nothing but the copy happens while it is.
    let frozen = match &source.guest {
        Some(g) if runstate::is_running(paths, g) => Some(Frozen::freeze(paths, g)?),
        _ => None,
    };
    let mut rules = CopyRules { excludes, emptied: STALE_DIRS, ids };
    let report = copy_tree(src, dst, &mut rules).map_err(|err| BuildError::Copy { from: source.root.clone(), to: vdir.to_path_buf(), err });
    drop(frozen);
    let mut report = report?;
    if let Some(g) = &source.guest {
        copy_config(&paths.guest_confdir(g), confdir)?;
    }
    // util-vserver's vclone kept the unified links. The copies are made
    // private first and linked to the existing store entries afterwards by
    // the unifier, inside its windows (every running guest frozen while an
    // entry's immutable flag is off): linking during the copy would clear
    // the flag of entries other running guests have open.
    if unified {
        let linked = unify::link_clone(paths, name).map_err(|err| BuildError::UnifyStep {
            what: "linking the clone's copies of unified files to the hash store".to_string(),
            err,
        })?;
        report.unified_links = linked.linked + linked.already_shared;
    }
    Ok(report)
}

/// util-vserver's lookup: a directory path, else a guest's name.
fn resolve_source(paths: &Paths, source: &str) -> Result<Source, BuildError> {
    if source.starts_with('/') {
        let root = PathBuf::from(source);
        if !root.is_dir() {
            return Err(BuildError::CloneSourceNotDir { from: source.to_string() });
        }
        return Ok(Source { guest: guest_with_root(paths, &root)?, root });
    }
    crate::paths::validate_guest_name(source).map_err(BuildError::InvalidName)?;
    let conf = paths.guest_confdir(source);
    if !conf.is_dir() {
        return Err(BuildError::NoSuchCloneSource { from: source.to_string(), conf });
    }
    let root = read_path_entry(&conf.join("vdir"))?.unwrap_or_else(|| paths.default_vdir(source));
    Ok(Source { root, guest: Some(source.to_string()) })
}

/// The configured guest whose root `root` is, if any (it may be running).
fn guest_with_root(paths: &Paths, root: &Path) -> Result<Option<String>, BuildError> {
    let want = std::fs::metadata(root)?;
    if !paths.confdir.is_dir() {
        return Ok(None);
    }
    for g in crate::config::list_guests(paths)? {
        let vdir = read_path_entry(&paths.guest_confdir(&g).join("vdir")).ok().flatten().unwrap_or_else(|| paths.default_vdir(&g));
        if std::fs::metadata(&vdir).is_ok_and(|m| (m.dev(), m.ino()) == (want.dev(), want.ino())) {
            return Ok(Some(g));
        }
    }
    Ok(None)
}

/// A source tree shifted for a user namespace is owned by `base + n`: the
/// copy goes back to plain ids (and is shifted to its own range later).
fn source_ids(src: &OwnedFd) -> io::Result<IdMap> {
    let st = sys::fstat(src.as_fd())?;
    let range = crate::config::idmap::RANGE;
    Ok(if st.st_uid >= range && st.st_uid % range == 0 && st.st_gid == st.st_uid {
        IdMap { from_base: st.st_uid }
    } else {
        IdMap::default()
    })
}

/// The store the source's unified files are entries of, when there is one.
fn source_store(paths: &Paths, source: &Source, src: &OwnedFd) -> Result<Option<PathBuf>, BuildError> {
    let candidates = match &source.guest {
        Some(g) => unify::config::store_candidates(paths, g)?,
        None => vec![unify::config::default_store(paths)],
    };
    let dev = sys::fstat(src.as_fd())?.st_dev;
    Ok(candidates.into_iter().find(|c| std::fs::metadata(c).is_ok_and(|m| m.is_dir() && m.dev() == dev)))
}

fn open_dir(path: &Path) -> Result<OwnedFd, BuildError> {
    let c = sys::cstr(path.as_os_str().as_encoded_bytes())?;
    // The path is host configuration: relative to our working directory.
    sys::open_at(sys::cwd(), &c, libc::O_RDONLY | libc::O_DIRECTORY, 0).doing(|| format!("opening {}", path.display()))
}

/// The source's configuration (host files, written by the admin).
fn copy_config(src_conf: &Path, confdir: &Path) -> Result<(), BuildError> {
    for entry in CONFIG_COPIED {
        let from = src_conf.join(entry);
        if std::fs::symlink_metadata(&from).is_err() {
            continue;
        }
        let to = confdir.join(entry);
        std::fs::create_dir_all(to.parent().expect("has parent"))?;
        let ok = Command::new("cp").args(["-a", "-T"]).arg(&from).arg(&to).status().doing(|| "running cp".to_string())?.success();
        if !ok {
            return Err(BuildError::ConfigCopyFailed { from, to });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_arguments() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(Args::parse(&s(&["web1"])).unwrap().source, "web1");
        let a = Args::parse(&s(&["--source", "/srv/g", "-X", "/tmp/x"])).unwrap();
        assert_eq!((a.source.as_str(), a.exclude_from), ("/srv/g", Some(PathBuf::from("/tmp/x"))));
        assert!(Args::parse(&s(&[])).is_err());
        assert!(Args::parse(&s(&["a", "b"])).is_err());
    }
}
