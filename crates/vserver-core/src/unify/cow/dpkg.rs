//! dpkg replaces every file of a package it unpacks, each starting with a
//! backup link `link(P, P.dpkg-tmp)`. When such a link needs P's link to a
//! store entry broken, the package's other unified files are broken in the
//! same window: one window per package instead of one per file. Breaking a
//! file dpkg is about to replace anyway changes nothing but when the private
//! copy is made (and a file the new version drops is removed by dpkg).
//!
//! The package is found in the guest's own dpkg database
//! (`/var/lib/dpkg/info/*.list`), read in the task's view like everything
//! else; the guest writes those files, so sizes are bounded and what they
//! name is checked like any path a call names.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant};

use super::resolve::Task;

const INFO: &[u8] = b"/var/lib/dpkg/info";
/// How long an index of the lists is trusted (dpkg rewrites a package's
/// list after unpacking it; the lists of packages still to come are as read).
const FRESH: Duration = Duration::from_secs(30);
/// What a guest's lists may hold, at most, before we stop reading.
const MAX_BYTES: usize = 256 << 20;
const MAX_FILES: usize = 100_000;

/// Whether a link's new name is dpkg's backup name.
pub fn is_backup_name(new: &[u8]) -> bool {
    new.ends_with(b".dpkg-tmp")
}

/// The owners of paths, from the lists of one guest root.
pub struct Index {
    root: (u64, u64),
    built: Instant,
    /// path -> list file it is in
    owner: HashMap<Vec<u8>, usize>,
    lists: Vec<Vec<Vec<u8>>>,
}

impl Index {
    fn fresh_for(&self, root: (u64, u64)) -> bool {
        self.root == root && self.built.elapsed() < FRESH
    }
}

/// The other paths of the package `path` (as the task names it) belongs
/// to, or nothing if no list has it.
pub fn package_mates(task: &Task, cache: &mut Option<Index>, path: &[u8]) -> Vec<Vec<u8>> {
    let Ok(root) = task.root_id() else { return Vec::new() };
    if !cache.as_ref().is_some_and(|i| i.fresh_for(root)) {
        *cache = build(task, root);
    }
    let Some(index) = cache.as_ref() else { return Vec::new() };
    match index.owner.get(path) {
        Some(&list) => index.lists[list].iter().filter(|p| p.as_slice() != path).cloned().collect(),
        None => Vec::new(),
    }
}

fn build(task: &Task, root: (u64, u64)) -> Option<Index> {
    let names = task.list_dir(INFO).ok()?;
    let mut index = Index { root, built: Instant::now(), owner: HashMap::new(), lists: Vec::new() };
    let (mut bytes, mut files) = (0usize, 0usize);
    for name in names.into_iter().filter(|n| n.ends_with(b".list")) {
        let mut path = INFO.to_vec();
        path.push(b'/');
        path.extend_from_slice(&name);
        let Ok(file) = task.open_in_root(&path) else { continue };
        let mut text = Vec::new();
        if file.take((MAX_BYTES - bytes) as u64).read_to_end(&mut text).is_err() {
            continue;
        }
        bytes += text.len();
        let paths: Vec<Vec<u8>> = text.split(|&b| b == b'\n').filter(|l| l.starts_with(b"/")).map(<[u8]>::to_vec).collect();
        files += paths.len();
        let id = index.lists.len();
        for p in &paths {
            index.owner.insert(p.clone(), id);
        }
        index.lists.push(paths);
        if bytes >= MAX_BYTES || files >= MAX_FILES {
            break;
        }
    }
    Some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dpkgs_backup_name_counts() {
        assert!(is_backup_name(b"/usr/bin/less.dpkg-tmp"));
        assert!(!is_backup_name(b"/usr/bin/less.dpkg-new"));
        assert!(!is_backup_name(b"/usr/bin/less"));
    }
}
