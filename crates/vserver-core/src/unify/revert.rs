//! `vhashify --revert NAME [PATH...] [--package PKG...]`: give a guest, or
//! some of its files, private writable copies of what are now store entries.
//! The copy gets the same content, owner, mode, xattrs and times, and
//! replaces the shared name with the same exchange protocol as linking, so
//! the path never disappears.
//!
//! Which files: with neither PATH nor PKG, every file of the guest. A PATH
//! that is a file is that file; a PATH that is a directory is everything
//! below it only with `--recursive` (otherwise it is skipped and named in
//! the summary), so that `$(dpkg -L PKG)`, which lists `/.` and `/usr`, never
//! means the whole guest; `/` itself is refused with `--recursive` (give no
//! PATH for the whole guest). PKG means the regular files of the package as
//! the guest's dpkg lists them (package.rs).
//!
//! The copies are made outside any window; the swaps, which need the
//! entry's immutable flag off, are done in windows of at most WINDOW_BUDGET.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use super::copy;
use super::error::UnifyError;
use super::exclude::ExcludeList;
use super::package;
use super::scan::{open_regular, Skip};
use super::store::Store;
use super::summary::Summary;
use super::walk::{self, show, Candidate, WalkRules};
use super::window::Windows;
use crate::sys::file as sys;

const WINDOW_BUDGET: Duration = Duration::from_millis(25);
/// Copies prepared ahead of one window, at most.
const BATCH: usize = 256;

/// What to revert.
#[derive(Debug, Clone, Default)]
pub struct RevertSelection {
    /// Guest paths (absolute or relative to the guest root).
    pub paths: Vec<std::path::PathBuf>,
    /// Directory PATHs are reverted below them, not skipped.
    pub recursive: bool,
    /// Debian packages whose files are reverted.
    pub packages: Vec<String>,
}

impl RevertSelection {
    pub fn whole_guest(&self) -> bool {
        self.paths.is_empty() && self.packages.is_empty()
    }

    /// Refuses what would mean the whole guest by accident.
    pub fn check(&self) -> Result<(), String> {
        if self.recursive {
            if let Some(p) = self.paths.iter().find(|p| normalise(p).is_empty()) {
                return Err(format!(
                    "--revert --recursive {}: that is the whole guest; to revert the whole guest give no PATH",
                    p.display()
                ));
            }
        }
        for p in &self.packages {
            package::check_name(p)?;
        }
        Ok(())
    }
}

/// The path below the guest root, without leading slashes and `.` parts.
fn normalise(p: &Path) -> Vec<u8> {
    let parts: Vec<&[u8]> = p.as_os_str().as_encoded_bytes().split(|&b| b == b'/').filter(|c| !c.is_empty() && *c != b".").collect();
    parts.join(&b'/')
}

/// Reverts the selected files of the guest whose root is `root`.
pub fn revert_tree(
    store: &mut Store,
    windows: &Windows,
    root: &OwnedFd,
    sel: &RevertSelection,
    sum: &mut Summary,
) -> Result<(), UnifyError> {
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
        if sel.whole_guest() {
            walk_all(root, &rules, sum, &mut emit);
        }
        for p in &sel.paths {
            collect_path(root, p, sel.recursive, &rules, sum, &mut emit);
        }
        for pkg in &sel.packages {
            match package::files(root, pkg) {
                Ok(files) => {
                    for f in files {
                        collect_listed(root, f, &rules, sum, &mut emit);
                    }
                }
                Err(e) => sum.error(format!("{e:#}")),
            }
        }
    }
    found.sort_by(|a, b| a.rel.cmp(&b.rel));
    found.dedup_by(|a, b| a.rel == b.rel);
    for batch in found.chunks(BATCH) {
        let prepared: Vec<(Candidate, Result<Prepared, Skip>)> = batch.iter().map(|c| (c.clone(), prepare(store, c))).collect();
        let mut pending = prepared.into_iter().peekable();
        while pending.peek().is_some() {
            let window = windows.open(&store.root)?;
            store.mark_dirty()?;
            for (c, p) in pending.by_ref() {
                let result = p.and_then(|p| swap_out(store, &c, p));
                match result {
                    Ok(()) => sum.reverted += 1,
                    Err(Skip::Busy) => sum.skipped += 1,
                    Err(Skip::Gone) => {}
                    Err(Skip::Error(e)) => sum.error(format!("{}: {e}", show(&c.rel))),
                }
                if window.elapsed() > WINDOW_BUDGET {
                    break;
                }
            }
            sum.windows += 1;
            sum.window_secs += window.elapsed().as_secs_f64();
            let (took, froze) = (window.elapsed(), window.froze_anything());
            window.close()?;
            if froze && pending.peek().is_some() {
                std::thread::sleep(took);
            }
        }
    }
    Ok(())
}

fn collect_path(root: &OwnedFd, path: &Path, recursive: bool, rules: &WalkRules, sum: &mut Summary, emit: &mut dyn FnMut(Candidate)) {
    let rel = normalise(path);
    let Ok(crel) = sys::cstr(if rel.is_empty() { b"." } else { &rel }) else {
        return sum.error(format!("{}: contains a NUL byte", path.display()));
    };
    match sys::open_beneath(root.as_fd(), &crel, libc::O_RDONLY | libc::O_DIRECTORY) {
        Ok(dir) if recursive => walk::walk_at(dir, rel, rules, sum, emit),
        Ok(_) => sum.skipped_dirs.push(show(&rel)),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => collect_file(root, rel, rules, sum, emit),
        Err(e) => sum.error(format!("{}: cannot open below the guest root (no symlinks, no mount points): {e}", show(&rel))),
    }
}

fn collect_file(root: &OwnedFd, rel: Vec<u8>, rules: &WalkRules, sum: &mut Summary, emit: &mut dyn FnMut(Candidate)) {
    let (parent, base) = split(&rel);
    let opened = sys::cstr(parent).and_then(|p| sys::open_beneath(root.as_fd(), &p, libc::O_RDONLY | libc::O_DIRECTORY));
    match (opened, sys::cstr(base)) {
        (Ok(d), Ok(n)) => emit_if_entry(d, n, rel, rules, sum, emit),
        (Err(e), _) | (_, Err(e)) => sum.error(format!("{}: {e}", show(&rel))),
    }
}

/// A path from a package's file list: the guest's own symlinks on the way
/// (merged /usr: /bin -> usr/bin) are followed, inside the guest root only.
fn collect_listed(root: &OwnedFd, path: Vec<u8>, rules: &WalkRules, sum: &mut Summary, emit: &mut dyn FnMut(Candidate)) {
    let rel = normalise(Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&path)));
    let (parent, base) = split(&rel);
    let opened = sys::cstr(parent).and_then(|p| sys::open_in_root(root.as_fd(), &p, libc::O_RDONLY | libc::O_DIRECTORY));
    match (opened, sys::cstr(base)) {
        (Ok(d), Ok(n)) => emit_if_entry(d, n, rel, rules, sum, emit),
        // Listed but gone, or a directory's parent that is not one: not a regular file to revert.
        (Err(e), _) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {}
        (Err(e), _) | (_, Err(e)) => sum.error(format!("{}: {e}", show(&rel))),
    }
}

fn emit_if_entry(dir: OwnedFd, name: CString, rel: Vec<u8>, rules: &WalkRules, sum: &mut Summary, emit: &mut dyn FnMut(Candidate)) {
    match sys::fstatat_nofollow(dir.as_fd(), &name) {
        Ok(st) if rules.store_inodes.contains(&st.st_ino) && st.st_mode & libc::S_IFMT == libc::S_IFREG => {
            emit(Candidate { dir: std::sync::Arc::new(dir), name, rel, ino: st.st_ino, id: None })
        }
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => sum.error(format!("{}: {e}", show(&rel))),
    }
}

fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (b".", rel),
    }
}

/// A private copy, staged under a temporary name, waiting for its window.
struct Prepared {
    entry: File,
    st: libc::stat,
    tmp: CString,
}

fn prepare(store: &Store, c: &Candidate) -> Result<Prepared, Skip> {
    let (entry, st) = open_regular(c.dir.as_fd(), &c.name, Some(c.ino))?;
    let staging = store.staging();
    let private = copy::private_copy(entry.as_fd(), &st, staging, false).map_err(err)?;
    let tmp = store.tmp_name();
    sys::link_fd(private.as_fd(), staging, &tmp).map_err(err)?;
    Ok(Prepared { entry, st, tmp })
}

/// Inside a window: exchanges the private copy with the guest's name of
/// the entry, with the entry's flag off only for that, then drops the
/// staging name (now the entry's).
fn swap_out(store: &Store, c: &Candidate, p: Prepared) -> Result<(), Skip> {
    let staging = store.staging();
    let result = exchange_checked(store, c, &p);
    // The staging name goes before the flag is set again: unlinking a name
    // of an immutable inode fails.
    let _ = sys::unlink_at(staging, &p.tmp, 0);
    if sys::set_immutable(p.entry.as_fd(), true).is_err() {
        store.keep_dirty();
    }
    result
}

fn exchange_checked(store: &Store, c: &Candidate, p: &Prepared) -> Result<(), Skip> {
    let staging = store.staging();
    sys::set_immutable(p.entry.as_fd(), false).map_err(err)?;
    sys::exchange(staging, &p.tmp, c.dir.as_fd(), &c.name).map_err(err)?;
    let out = sys::fstatat_nofollow(staging, &p.tmp).map_err(err)?;
    if (out.st_dev, out.st_ino) != (p.st.st_dev, p.st.st_ino) {
        let _ = sys::exchange(staging, &p.tmp, c.dir.as_fd(), &c.name);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_in_any_spelling_is_the_whole_guest() {
        for p in ["/", "/.", ".", "//./", ""] {
            assert!(normalise(Path::new(p)).is_empty(), "{p}");
        }
        assert_eq!(normalise(Path::new("/usr/./sbin/")), b"usr/sbin");
        let sel = RevertSelection { paths: vec!["/.".into()], recursive: true, packages: vec![] };
        assert!(sel.check().unwrap_err().contains("whole guest"));
        let sel = RevertSelection { paths: vec!["/.".into(), "/usr".into()], recursive: false, packages: vec![] };
        assert!(sel.check().is_ok());
    }
}
