//! `vhashify --revert NAME [PATH...]`: give a guest, or some of its files,
//! private writable copies of what are now store entries. The copy gets the
//! same content, owner, mode, xattrs and times, and replaces the shared name
//! with the same exchange protocol as linking, so the path never disappears.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::copy;
use super::exclude::ExcludeList;
use super::scan::{open_regular, Skip};
use super::store::Store;
use super::summary::Summary;
use super::sys;
use super::walk::{self, show, Candidate, WalkRules};

/// Reverts the files below each of `paths` (all of the guest when empty).
pub fn revert_tree(store: &mut Store, root: &OwnedFd, paths: &[&Path], sum: &mut Summary) {
    let mut found = Vec::new();
    {
        let nothing = ExcludeList::default();
        let rules = WalkRules {
            excludes: &nothing,
            store_inodes: store.inode_set(),
            dev: store.dev,
            min_size: 0,
            insecure: true,
            select_entries: true,
        };
        let mut emit = |c: Candidate| found.push(c);
        if paths.is_empty() {
            walk_all(root, &rules, sum, &mut emit);
        }
        for p in paths {
            collect_path(root, p, &rules, sum, &mut emit);
        }
    }
    for c in found {
        match revert_one(store, &c) {
            Ok(()) => sum.reverted += 1,
            Err(Skip::Busy) => sum.skipped += 1,
            Err(Skip::Gone) => {}
            Err(Skip::Error(e)) => sum.error(format!("{}: {e}", show(&c.rel))),
        }
    }
}

fn collect_path(root: &OwnedFd, path: &Path, rules: &WalkRules, sum: &mut Summary, emit: &mut dyn FnMut(Candidate)) {
    let rel: Vec<u8> = path.as_os_str().as_encoded_bytes().iter().copied().skip_while(|&b| b == b'/').collect();
    if rel.is_empty() {
        return walk_all(root, rules, sum, emit);
    }
    let Ok(crel) = sys::cstr(&rel) else { return sum.error(format!("{}: contains a NUL byte", path.display())) };
    match sys::open_beneath(root.as_fd(), &crel, libc::O_RDONLY | libc::O_DIRECTORY) {
        Ok(dir) => walk::walk_at(dir, rel, rules, sum, emit),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => collect_file(root, rel, rules, sum, emit),
        Err(e) => sum.error(format!("{}: cannot open below the guest root (no symlinks, no mount points): {e}", show(&rel))),
    }
}

fn collect_file(root: &OwnedFd, rel: Vec<u8>, rules: &WalkRules, sum: &mut Summary, emit: &mut dyn FnMut(Candidate)) {
    let (parent, base) = match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (rel[..i].to_vec(), rel[i + 1..].to_vec()),
        None => (b".".to_vec(), rel.clone()),
    };
    let opened = sys::cstr(&parent).and_then(|p| sys::open_beneath(root.as_fd(), &p, libc::O_RDONLY | libc::O_DIRECTORY));
    let (dir, name) = match (opened, sys::cstr(&base)) {
        (Ok(d), Ok(n)) => (d, n),
        (Err(e), _) | (_, Err(e)) => return sum.error(format!("{}: {e}", show(&rel))),
    };
    match sys::fstatat_nofollow(dir.as_fd(), &name) {
        Ok(st) if rules.store_inodes.contains(&st.st_ino) && st.st_mode & libc::S_IFMT == libc::S_IFREG => {
            emit(Candidate { dir: std::sync::Arc::new(dir), name, rel, ino: st.st_ino })
        }
        Ok(_) => {}
        Err(e) => sum.error(format!("{}: {e}", show(&rel))),
    }
}

fn revert_one(store: &mut Store, c: &Candidate) -> Result<(), Skip> {
    let (entry, st) = open_regular(c.dir.as_fd(), &c.name, Some(c.ino))?;
    let staging = store.staging();
    let private = copy::private_copy(entry.as_fd(), &st, staging, false).map_err(err)?;
    let tmp = store.tmp_name();
    sys::link_fd(private.as_fd(), staging, &tmp).map_err(err)?;
    drop(private);
    store.mark_dirty().map_err(err)?;
    let result = swap_out(store, &entry, c, &tmp, &st);
    // The staging name goes first: unlinking a name of an immutable inode fails.
    let _ = sys::unlink_at(store.staging(), &tmp, 0);
    let refrozen = sys::set_immutable(entry.as_fd(), true);
    if refrozen.is_err() {
        store.keep_dirty();
    }
    result
}

/// Exchanges the private copy (at staging/tmp) with the guest's name of the
/// entry, with the entry's flag off for the moment the kernel needs it off.
fn swap_out(store: &Store, entry: &File, c: &Candidate, tmp: &CString, st: &libc::stat) -> Result<(), Skip> {
    let staging = store.staging();
    sys::set_immutable(entry.as_fd(), false).map_err(err)?;
    sys::exchange(staging, tmp, c.dir.as_fd(), &c.name).map_err(err)?;
    let out = sys::fstatat_nofollow(staging, tmp).map_err(err)?;
    if (out.st_dev, out.st_ino) != (st.st_dev, st.st_ino) {
        let _ = sys::exchange(staging, tmp, c.dir.as_fd(), &c.name);
        return Err(Skip::Error("was replaced while being reverted; left as it was".into()));
    }
    Ok(())
}

fn walk_all(root: &OwnedFd, rules: &WalkRules, sum: &mut Summary, emit: &mut dyn FnMut(Candidate)) {
    match root.try_clone() {
        Ok(fd) => walk::walk(fd, rules, sum, emit),
        Err(e) => sum.error(format!("cannot walk the guest root: {e}")),
    }
}

fn err(e: std::io::Error) -> Skip {
    Skip::Error(e.to_string())
}
