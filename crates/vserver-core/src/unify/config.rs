//! util-vserver's vunify configuration: which guests take part, where their
//! hash store is and what they exclude.
//!
//! - a guest takes part when `<confdir>/NAME/apps/vunify/` exists;
//! - the store root is `apps/vunify/hash` of the guest, else of `.defaults`,
//!   else `<vdirbase>/.hash`. The entry is a symlink or a file naming a
//!   directory, or a directory holding such entries (the FAQ's
//!   `hash/root -> /vservers/.hash`); of several, the one on the guest's
//!   filesystem is used, since hard links cannot cross filesystems.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::error::{IoResultExt, UnifyError};
use super::exclude::ExcludeList;
use crate::config::parse::read_path_entry;
use crate::paths::Paths;

/// One tree to unify: a configured guest, or a directory given with --manually.
#[derive(Debug, Clone)]
pub struct Target {
    /// Guest name, or the directory as given.
    pub name: String,
    pub root: PathBuf,
    pub excludes: ExcludeList,
    /// Whether a process may have the guest's files open (new store entries
    /// are then fresh copies).
    pub running: bool,
}

pub fn takes_part(paths: &Paths, guest: &str) -> bool {
    paths.guest_confdir(guest).join("apps/vunify").is_dir()
}

pub fn default_store(paths: &Paths) -> PathBuf {
    paths.vdirbase.join(".hash")
}

/// The configured store candidates for a guest (not yet matched to its fs).
pub fn store_candidates(paths: &Paths, guest: &str) -> Result<Vec<PathBuf>, UnifyError> {
    for entry in [paths.guest_confdir(guest).join("apps/vunify/hash"), paths.defaults_dir().join("apps/vunify/hash")] {
        let meta = match std::fs::symlink_metadata(&entry) {
            Ok(m) => m,
            Err(_) => continue,
        };
        if meta.is_dir() {
            return dir_of_entries(&entry);
        }
        if let Some(p) = read_path_entry(&entry)? {
            return Ok(vec![p]);
        }
    }
    Ok(vec![default_store(paths)])
}

fn dir_of_entries(dir: &Path) -> Result<Vec<PathBuf>, UnifyError> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .what(|| format!("{}: cannot list hash store entries", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        if let Some(p) = read_path_entry(&n)? {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err(UnifyError::NoStoreNamed { dir: dir.to_path_buf() });
    }
    Ok(out)
}

/// Of the candidates, the store on the same filesystem as `root`; a missing
/// candidate counts as being where its parent is (it will be created).
pub fn pick_store(candidates: &[PathBuf], root: &Path, who: &str) -> Result<PathBuf, UnifyError> {
    let root_dev = std::fs::metadata(root).what(|| format!("{who}: guest root {}", root.display()))?.dev();
    for c in candidates {
        let probe = if c.exists() { c.as_path() } else { c.parent().unwrap_or(c) };
        if std::fs::metadata(probe).map(|m| m.dev() == root_dev).unwrap_or(false) {
            return Ok(c.clone());
        }
    }
    Err(UnifyError::NoStoreOnFilesystem { who: who.to_string(), root: root.to_path_buf(), candidates: candidates.to_vec() })
}

/// The exclude rules of a configured guest: built-in, `.defaults`, the
/// guest's own, then `--exclude-from`.
pub fn guest_excludes(paths: &Paths, guest: &str, extra: Option<&Path>) -> Result<ExcludeList, UnifyError> {
    let mut list = ExcludeList::builtin();
    list.add_file(&paths.defaults_dir().join("apps/vunify/exclude"))?;
    list.add_file(&paths.guest_confdir(guest).join("apps/vunify/exclude"))?;
    if let Some(f) = extra {
        add_required_file(&mut list, f)?;
    }
    Ok(list)
}

pub fn add_required_file(list: &mut ExcludeList, f: &Path) -> Result<(), UnifyError> {
    if !f.is_file() {
        return Err(UnifyError::NoExcludeFile { file: f.to_path_buf() });
    }
    list.add_file(f)?;
    Ok(())
}
