//! Unification: guests share identical files as one immutable inode, found
//! through a BLAKE3 hash store (util-vserver's vhashify).
//!
//! A run, per store: lock and repair the store (store.rs), walk and hash
//! every guest in parallel (walk.rs, scan.rs, hash.rs), then link each key's
//! files to its entry with the exchange protocol (link.rs). `--revert`
//! (revert.rs) undoes it for a guest, some paths or a package's files
//! (package.rs), `--gc` drops entries no guest uses, release.rs takes a
//! deleted guest's links out of the store. Configuration (which guests,
//! which store, what is excluded) is in config.rs and exclude.rs.
//!
//! A store entry's immutable flag is off only inside a window (window.rs,
//! freezer.rs): all running guests frozen. Entries carry a mark guests cannot
//! forge (marker.rs), by which the copy-on-write supervisor (cow/) knows
//! them: when a guest process is about to change a unified file, it gets a
//! private copy in its place first.

pub mod config;
pub(crate) mod copy;
pub mod cow;
mod error;
pub mod exclude;
pub(crate) mod freezer;
pub mod hash;
mod hook;
mod link;
pub mod marker;
mod package;
mod release;
mod revert;
mod scan;
mod seen;
pub mod store;
pub mod summary;
mod walk;
pub mod window;

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use error::UnifyError;
pub use exclude::ExcludeList;
pub use release::{release_guest, Release};
pub use revert::RevertSelection;
pub use store::Store;
pub use summary::Summary;
pub use window::Windows;

use self::error::IoResultExt;
use crate::paths::Paths;
use crate::sys::file as sys;

/// Everything `vhashify` and `vserver NAME hashify` can ask for.
#[derive(Debug, Clone)]
pub struct UnifyOptions {
    /// Count what would be done; change nothing.
    pub dry_run: bool,
    /// The store to use instead of the configured one.
    pub destination: Option<PathBuf>,
    /// More exclude rules, after the configured ones.
    pub exclude_from: Option<PathBuf>,
    /// The names are directories, not guests: no configuration is read
    /// (needs `destination`).
    pub manually: bool,
    /// Also unify setuid and setgid files.
    pub insecure: bool,
    /// Make the mtime part of the key (less sharing, every path keeps its own).
    pub respect_mtime: bool,
    /// Files smaller than this are left alone (default 1: no empty files).
    pub min_size: u64,
    /// Share extents copy-on-write (FICLONE) instead of inodes.
    pub reflink: bool,
    /// Wait for another run's lock instead of failing.
    pub wait: bool,
    /// Show a progress line on stderr.
    pub progress: bool,
    /// Hashing threads; 0 means four per core.
    pub threads: usize,
    /// Link only to store entries that exist already; make no new ones
    /// (after `build -m clone`: the clone's copies of unified files).
    pub existing_only: bool,
}

impl Default for UnifyOptions {
    fn default() -> Self {
        UnifyOptions {
            dry_run: false,
            destination: None,
            exclude_from: None,
            manually: false,
            insecure: false,
            respect_mtime: false,
            min_size: 1,
            reflink: false,
            wait: false,
            progress: false,
            threads: 0,
            existing_only: false,
        }
    }
}

/// The guests `vhashify --all` works on: those with `apps/vunify/`.
pub fn participating_guests(paths: &Paths) -> Result<Vec<String>, UnifyError> {
    Ok(crate::config::list_guests(paths)?.into_iter().filter(|g| config::takes_part(paths, g)).collect())
}

/// Unifies the given guests (or, with `manually`, directories).
pub fn hashify(paths: &Paths, names: &[String], opts: &UnifyOptions) -> Result<Summary, UnifyError> {
    let started = Instant::now();
    if names.is_empty() {
        return Err(UnifyError::NoGuestGiven);
    }
    let mut sum = Summary { dry_run: opts.dry_run, guests: names.to_vec(), ..Summary::default() };
    // Lease breaks are signalled with SIGIO, whose default action would kill us.
    sys::ignore_sigio();
    let targets = names.iter().map(|n| resolve_target(paths, n, opts)).collect::<Result<Vec<_>, UnifyError>>()?;
    let mut by_store: BTreeMap<PathBuf, Vec<config::Target>> = BTreeMap::new();
    for (store, target) in targets {
        by_store.entry(store).or_default().push(target);
    }
    for (store_root, targets) in by_store {
        check_store_outside_guests(&store_root, &targets)?;
        run_store(paths, &store_root, targets, opts, &mut sum)?;
    }
    sum.duration_secs = started.elapsed().as_secs_f64();
    Ok(sum)
}

fn resolve_target(paths: &Paths, name: &str, opts: &UnifyOptions) -> Result<(PathBuf, config::Target), UnifyError> {
    if opts.manually {
        let store = opts.destination.clone().ok_or(UnifyError::ManuallyWithoutDestination)?;
        let mut excludes = ExcludeList::builtin();
        if let Some(f) = &opts.exclude_from {
            config::add_required_file(&mut excludes, f)?;
        }
        let root = PathBuf::from(name);
        if !root.is_dir() {
            return Err(UnifyError::NoSuchDirectory { name: name.to_string() });
        }
        return Ok((store, config::Target { name: name.to_string(), root, excludes, running: false }));
    }
    let guest = crate::config::load_guest(paths, name)?;
    let store = match &opts.destination {
        Some(d) => d.clone(),
        None => config::pick_store(&config::store_candidates(paths, name)?, &guest.vdir, &format!("guest {name:?}"))?,
    };
    let excludes = config::guest_excludes(paths, name, opts.exclude_from.as_deref())?;
    let running = crate::runstate::is_running(paths, name);
    Ok((store, config::Target { name: name.to_string(), root: guest.vdir, excludes, running }))
}

/// A store inside a guest would be writable by that guest.
fn check_store_outside_guests(store: &Path, targets: &[config::Target]) -> Result<(), UnifyError> {
    let store_abs = canonical_or_parent(store);
    for t in targets {
        let root = t.root.canonicalize().what(|| format!("{}: guest root {}", t.name, t.root.display()))?;
        if store_abs.starts_with(&root) || root.starts_with(&store_abs) {
            return Err(UnifyError::StoreInsideGuest { store: store.to_path_buf(), root, guest: t.name.clone() });
        }
    }
    Ok(())
}

fn canonical_or_parent(p: &Path) -> PathBuf {
    p.canonicalize()
        .or_else(|_| p.parent().map_or(Ok(p.to_path_buf()), |d| d.canonicalize().map(|d| d.join(p.file_name().unwrap_or_default()))))
        .unwrap_or_else(|_| p.to_path_buf())
}

fn run_store(
    paths: &Paths,
    store_root: &Path,
    targets: Vec<config::Target>,
    opts: &UnifyOptions,
    sum: &mut Summary,
) -> Result<(), UnifyError> {
    let windows = Windows::new(paths);
    let Some((mut store, repair)) = Store::open(store_root, !opts.dry_run, opts.wait, &windows)? else {
        // Dry run without a store yet: everything would be new.
        return dry_run_without_store(targets, opts, sum);
    };
    sum.repaired += repair.refrozen + repair.stale_removed;
    let mut trees = Vec::new();
    for t in &targets {
        match open_root(&t.root, store.dev) {
            Ok(fd) => trees.push((t, fd)),
            Err(e) => sum.error(format!("{}: {e:#}", t.name)),
        }
    }
    let no_inodes = Default::default();
    let inodes = if opts.reflink { &no_inodes } else { store.inode_set() };
    let scan_trees = trees.iter().map(|(t, fd)| scan_tree(t, fd, inodes, store.dev, opts)).collect::<Result<Vec<_>, UnifyError>>()?;
    let meta_dir = store.root.join(".vhashify");
    let (seen_file, cloned_file) =
        (seen::Seen::file(&meta_dir, opts.respect_mtime), seen::Seen::cloned_file(&meta_dir, opts.respect_mtime));
    let seen = seen::Seen::load(&seen_file);
    let mut cloned = if opts.reflink { seen::Seen::load(&cloned_file) } else { seen::Seen::default() };
    cloned.retain_keys(|k| store.lookup(k).is_some());
    let known = scan::Known { seen: &seen, cloned: &cloned };
    let (mut hashed, kept_clones) = scan::scan(scan_trees, &scan_options(opts), &known, sum);
    drop((seen, cloned));
    if opts.existing_only {
        hashed.retain(|h| store.lookup(&h.key).is_some());
    }
    if !opts.dry_run && !hashed.is_empty() {
        store.mark_dirty().what(|| "cannot write the store's dirty marker")?;
    }
    let link_trees: Vec<link::Tree> =
        trees.into_iter().map(|(t, root)| link::Tree { name: t.name.clone(), root, running: t.running }).collect();
    let link_opts = link::LinkOptions {
        dry_run: opts.dry_run,
        reflink: opts.reflink,
        progress: opts.progress,
        threads: scan_options(opts).threads * 2,
    };
    let linked = link::link_all(&mut store, &link_trees, hashed, &link_opts, &windows, sum)?;
    if !opts.dry_run && !opts.existing_only {
        seen::Seen::save(&seen_file, linked.unshared.into_iter()).what(|| format!("writing {}", seen_file.display()))?;
        if opts.reflink {
            let clones = kept_clones.into_iter().chain(linked.cloned);
            seen::Seen::save(&cloned_file, clones).what(|| format!("writing {}", cloned_file.display()))?;
        }
    }
    if !opts.dry_run {
        store.finish().what(|| "cannot remove the store's dirty marker")?;
    }
    Ok(())
}

fn dry_run_without_store(targets: Vec<config::Target>, opts: &UnifyOptions, sum: &mut Summary) -> Result<(), UnifyError> {
    // A dry run never creates a store: count against an empty index instead.
    let empty = Default::default();
    let trees = targets
        .iter()
        .filter_map(|t| match open_root(&t.root, 0) {
            Ok(fd) => Some((t, fd)),
            Err(e) => {
                sum.error(format!("{}: {e:#}", t.name));
                None
            }
        })
        .collect::<Vec<_>>();
    let scan_trees = trees
        .iter()
        .map(|(t, fd)| {
            let dev = sys::fstat(fd.as_fd())?.st_dev;
            scan_tree(t, fd, &empty, dev, opts)
        })
        .collect::<Result<Vec<_>, UnifyError>>()?;
    let none = seen::Seen::default();
    let (mut hashed, _) = scan::scan(scan_trees, &scan_options(opts), &scan::Known { seen: &none, cloned: &none }, sum);
    hashed.sort_unstable_by_key(|a| (a.key, a.id.ino));
    for group in hashed.chunk_by(|a, b| a.key == b.key) {
        if opts.existing_only || group.iter().all(|m| m.target == group[0].target) {
            sum.unshared += group.len() as u64;
            continue;
        }
        sum.new_entries += 1;
        for m in group.iter().filter(|m| m.id.ino != group[0].id.ino) {
            sum.linked += 1;
            sum.bytes_saved += m.id.size;
        }
    }
    Ok(())
}

fn scan_tree<'a>(
    t: &'a config::Target,
    root: &OwnedFd,
    inodes: &'a std::collections::HashSet<u64>,
    dev: u64,
    opts: &UnifyOptions,
) -> Result<scan::ScanTree<'a>, UnifyError> {
    Ok(scan::ScanTree {
        root: root.try_clone()?,
        rules: walk::WalkRules {
            excludes: &t.excludes,
            store_inodes: inodes,
            dev,
            min_size: opts.min_size,
            insecure: opts.insecure,
            select_entries: false,
        },
    })
}

fn scan_options(opts: &UnifyOptions) -> scan::ScanOptions {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    scan::ScanOptions {
        respect_mtime: opts.respect_mtime,
        // Hashing waits on the disk more than on the CPU when the page cache
        // is cold: four readers per core keep the device busy (measured: 8
        // threads took 3.9 s where 2 took 6.8 s on a cold 693 MB corpus).
        threads: if opts.threads == 0 { cores * 4 } else { opts.threads },
        progress: opts.progress,
    }
}

/// Opens a guest root (a host path, from host configuration) and checks it
/// is on the store's filesystem (`dev` 0: any).
fn open_root(root: &Path, dev: u64) -> Result<OwnedFd, UnifyError> {
    let c = sys::cstr(root.as_os_str().as_encoded_bytes())?;
    // The guest root path is host configuration: relative to our working directory.
    let fd = sys::open_at(sys::cwd(), &c, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .what(|| format!("cannot open guest root {}", root.display()))?;
    let st = sys::fstat(fd.as_fd())?;
    if dev != 0 && st.st_dev != dev {
        return Err(UnifyError::RootOnOtherFilesystem { root: root.to_path_buf() });
    }
    Ok(fd)
}

/// `vhashify --revert NAME [PATH...] [--recursive] [--package PKG...]`:
/// private writable copies again (revert.rs says which files).
pub fn revert(paths: &Paths, name: &str, sel: &RevertSelection, opts: &UnifyOptions) -> Result<Summary, UnifyError> {
    let started = Instant::now();
    sel.check().map_err(UnifyError::Selection)?;
    sys::ignore_sigio();
    let (store_root, target) = resolve_target(paths, name, opts)?;
    let mut sum = Summary { guests: vec![name.to_string()], ..Summary::default() };
    if !store_root.is_dir() {
        // No store: nothing of this guest was ever unified, nothing to revert.
        return Ok(sum);
    }
    let windows = Windows::new(paths);
    let (mut store, repair) = Store::open(&store_root, true, opts.wait, &windows)?.ok_or(UnifyError::StoreVanished)?;
    sum.repaired += repair.refrozen + repair.stale_removed;
    let root = open_root(&target.root, store.dev)?;
    revert::revert_tree(&mut store, &windows, &root, sel, &mut sum)?;
    store.finish()?;
    sum.duration_secs = started.elapsed().as_secs_f64();
    Ok(sum)
}

/// After `build -m clone` of a unified guest: the clone's copies of the
/// source's unified files are linked to their store entries again (util-
/// vserver's vclone kept the links). Only existing entries are used: no file
/// of the clone is made shared that was not shared before. The clone must
/// take part (its `apps/vunify`, copied from the source).
pub fn link_clone(paths: &Paths, clone: &str) -> Result<Summary, UnifyError> {
    let opts = UnifyOptions { existing_only: true, wait: true, ..UnifyOptions::default() };
    hashify(paths, &[clone.to_string()], &opts)
}

/// `vhashify --gc`: removes entries of the given stores (or the configured
/// ones of every guest) that no guest links to any more.
pub fn gc(paths: &Paths, opts: &UnifyOptions) -> Result<Summary, UnifyError> {
    let started = Instant::now();
    let mut roots: Vec<PathBuf> = match &opts.destination {
        Some(d) => vec![d.clone()],
        None => {
            let mut r = vec![config::default_store(paths)];
            for g in crate::config::list_guests(paths)? {
                r.extend(config::store_candidates(paths, &g)?);
            }
            r
        }
    };
    roots.sort();
    roots.dedup();
    let mut sum = Summary { dry_run: opts.dry_run, ..Summary::default() };
    for root in roots.iter().filter(|r| r.is_dir()) {
        let Some((mut store, repair)) = Store::open(root, true, opts.wait, &Windows::new(paths))? else { continue };
        sum.repaired += repair.refrozen + repair.stale_removed;
        if !opts.dry_run {
            let (n, bytes) = store.gc().map_err(|err| UnifyError::Gc { store: root.clone(), err: Box::new(err) })?;
            sum.gc_removed += n;
            sum.gc_bytes += bytes;
        }
        store.finish()?;
    }
    sum.duration_secs = started.elapsed().as_secs_f64();
    Ok(sum)
}
