//! Taking a guest that is about to be deleted out of its hash store: its
//! names of store entries are unlinked (inside windows, since the entries'
//! flags must be off for that), and an entry no other guest links to any
//! more goes too. If another vhashify holds the store's lock, the entries
//! stay and the space they hold is reported for `vhashify --gc`.

use std::fmt;
use std::os::fd::AsFd;
use std::time::Duration;

use super::config;
use super::error::UnifyError;
use super::exclude::ExcludeList;
use super::store::Store;
use super::summary::Summary;
use super::walk::{self, show, Candidate, WalkRules};
use super::window::Windows;
use crate::paths::Paths;
use crate::sys::file as sys;

const WINDOW_BUDGET: Duration = Duration::from_millis(25);

/// What releasing a guest did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Release {
    /// The guest's names of store entries that were removed.
    pub unlinked: u64,
    /// Store entries removed because no other guest links to them.
    pub entries_removed: u64,
    pub bytes_freed: u64,
    /// Entries no guest links to any more that were left in the store
    /// (another vhashify held its lock), and their size: `vhashify --gc`.
    pub entries_left: u64,
    pub bytes_left: u64,
    pub errors: Vec<String>,
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} unified files unlinked, {} store entries removed ({} bytes freed)",
            self.unlinked, self.entries_removed, self.bytes_freed
        )?;
        if self.entries_left > 0 {
            write!(
                f,
                "; {} entries ({} bytes) no guest uses are left in the store: run vhashify --gc",
                self.entries_left, self.bytes_left
            )?;
        }
        Ok(())
    }
}

/// Unlinks the store entries of guest `name` (which must be stopped) from
/// its tree and removes the entries nobody else uses. Call it before the
/// guest's tree is removed (`vserver NAME delete`).
pub fn release_guest(paths: &Paths, name: &str) -> Result<Release, UnifyError> {
    let vdir = crate::config::load_guest(paths, name).map(|g| g.vdir).unwrap_or_else(|_| paths.default_vdir(name));
    let mut out = Release::default();
    if !vdir.is_dir() {
        return Ok(out);
    }
    let Ok(store_root) = config::pick_store(&config::store_candidates(paths, name)?, &vdir, &format!("guest {name:?}")) else {
        return Ok(out);
    };
    if !store_root.is_dir() {
        return Ok(out);
    }
    sys::ignore_sigio();
    let windows = Windows::new(paths);
    let mut store = match Store::open(&store_root, true, false, &windows) {
        Ok(Some((s, _))) => s,
        Ok(None) => return Ok(out),
        // Locked by a running vhashify: unlink our names, leave entries to --gc.
        Err(UnifyError::Locked { .. }) => Store::open(&store_root, false, false, &windows)?.ok_or(UnifyError::StoreVanished)?.0,
        Err(e) => return Err(e),
    };
    let root = super::open_root(&vdir, store.dev)?;
    let mut found = Vec::new();
    let mut sum = Summary::default();
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
        walk::walk(root, &rules, &mut sum, &mut |c| found.push(c));
    }
    out.errors.extend(sum.error_messages);
    let keys = store.keys_by_inode();
    let mut pending = found.into_iter().peekable();
    while pending.peek().is_some() {
        let window = windows.open(&store.root)?;
        for c in pending.by_ref() {
            if let Err(e) = release_one(&mut store, &keys, &c, &mut out) {
                out.errors.push(format!("{}: {e}", show(&c.rel)));
            }
            if window.elapsed() > WINDOW_BUDGET {
                break;
            }
        }
        window.close()?;
    }
    store.finish()?;
    Ok(out)
}

/// Inside a window: unlinks the guest's name of an entry; removes the entry
/// when that was the last guest name, or else sets its flag again.
fn release_one(
    store: &mut Store,
    keys: &std::collections::HashMap<u64, super::hash::Key>,
    c: &Candidate,
    out: &mut Release,
) -> std::io::Result<()> {
    let fd = sys::open_at(c.dir.as_fd(), &c.name, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
    let st = sys::fstat(fd.as_fd())?;
    if st.st_ino != c.ino {
        return Ok(()); // replaced since the walk: not an entry any more
    }
    sys::set_immutable(fd.as_fd(), false)?;
    let unlinked = sys::unlink_at(c.dir.as_fd(), &c.name, 0);
    let nlink = sys::fstat(fd.as_fd()).map(|s| s.st_nlink);
    let last = matches!(nlink, Ok(1));
    let key = keys.get(&c.ino);
    let mut removed = false;
    if unlinked.is_ok() && last && store.is_locked() {
        if let Some(key) = key {
            removed = store.remove_entry(key).is_ok();
        }
    }
    if !removed {
        sys::set_immutable(fd.as_fd(), true)?;
    }
    unlinked?;
    out.unlinked += 1;
    let bytes = st.st_blocks as u64 * 512;
    match (last, removed) {
        (true, true) => {
            out.entries_removed += 1;
            out.bytes_freed += bytes;
        }
        (true, false) => {
            out.entries_left += 1;
            out.bytes_left += bytes;
        }
        _ => {}
    }
    Ok(())
}
