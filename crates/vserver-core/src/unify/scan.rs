//! Phase one of a run: walk every guest of a store and hash each candidate,
//! on all cores, from an fd held under a read lease (so nobody writes the
//! file while we read it). The result is a list of hashed files; phase two
//! (link.rs) groups it by key. No pairwise comparison is ever needed. A file
//! an earlier run hashed and left private, unchanged since, is not read
//! again (seen.rs).
//!
//! Timestamps are coarse on many kernels (one clock tick, up to 10 ms): a
//! second write in the tick of the first leaves the identity the same and
//! the content not. So a file changed less than SETTLE ago is held (under
//! its lease, so nobody can write it) until SETTLE has passed: any later
//! write then gets a later ctime.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::mpsc;
use std::sync::Mutex;

use super::hash::{key_of, Key, Meta};
use super::seen::Seen;
use super::summary::{Progress, Summary};
use super::walk::{self, Candidate, WalkRules};
use crate::sys::file as sys;

/// The identity of a file at the moment it was hashed. ctime changes on every
/// write, chmod, chown and xattr change and cannot be set back by anyone, so
/// an equal ctime (with the same inode) means the same content and metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl FileId {
    pub fn of(st: &libc::stat) -> FileId {
        FileId {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }
}

pub struct Hashed {
    /// Index of the tree (guest) the file is in.
    pub target: usize,
    pub rel: Vec<u8>,
    pub key: Key,
    pub id: FileId,
}

/// Why a candidate was not hashed.
pub enum Skip {
    /// Open for writing by someone, or changed while we read it.
    Busy,
    /// Swapped for something else (symlink, other inode) since the walk.
    Gone,
    Error(String),
}

pub struct ScanOptions {
    pub respect_mtime: bool,
    pub threads: usize,
    pub progress: bool,
}

/// A tree to walk: its root fd and its rules.
pub struct ScanTree<'a> {
    pub root: OwnedFd,
    pub rules: WalkRules<'a>,
}

const SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

/// Known keys: of private files (`seen`), and of --reflink clones of an
/// entry (`cloned`), which need no linking again.
pub struct Known<'a> {
    pub seen: &'a Seen,
    pub cloned: &'a Seen,
}

/// The hashed files, and the clones found unchanged (kept for the next run).
pub fn scan(trees: Vec<ScanTree>, opts: &ScanOptions, known: &Known, sum: &mut Summary) -> (Vec<Hashed>, Vec<(FileId, Key)>) {
    let (tx, rx) = mpsc::sync_channel::<(usize, Candidate)>(512);
    let rx = Mutex::new(rx);
    let results = Mutex::new(Vec::new());
    let clones = Mutex::new(Vec::new());
    let worker_sums = Mutex::new(Summary::default());
    std::thread::scope(|s| {
        for _ in 0..opts.threads.max(1) {
            s.spawn(|| worker(&rx, (&results, &clones), &worker_sums, opts.respect_mtime, known));
        }
        let mut progress = Progress::new(opts.progress);
        let mut sent = 0u64;
        for (i, tree) in trees.into_iter().enumerate() {
            walk::walk(tree.root, &tree.rules, sum, &mut |c| {
                sent += 1;
                progress.show("hashing", sent, None);
                let _ = tx.send((i, c));
            });
        }
        drop(tx);
        progress.finish();
    });
    sum.merge(worker_sums.into_inner().unwrap());
    (results.into_inner().unwrap(), clones.into_inner().unwrap())
}

type Out<'a> = (&'a Mutex<Vec<Hashed>>, &'a Mutex<Vec<(FileId, Key)>>);

fn worker(rx: &Mutex<mpsc::Receiver<(usize, Candidate)>>, out: Out, sums: &Mutex<Summary>, respect_mtime: bool, known: &Known) {
    let mut buf = vec![0u8; 256 * 1024];
    let (mut mine, mut clones) = (Vec::new(), Vec::new());
    let mut sum = Summary::default();
    loop {
        let next = rx.lock().unwrap().recv();
        let Ok((target, cand)) = next else { break };
        if let Some((id, key)) = cand.id.and_then(|id| known.cloned.lookup(&id).map(|k| (id, k))) {
            sum.already_shared += 1;
            clones.push((id, key));
            continue;
        }
        if let Some((id, key)) = cand.id.and_then(|id| known.seen.lookup(&id).map(|k| (id, k))) {
            mine.push(Hashed { target, rel: cand.rel, key, id });
            continue;
        }
        sum.hashed += 1;
        match hash_candidate(&cand, respect_mtime, &mut buf) {
            Ok((key, id)) => mine.push(Hashed { target, rel: cand.rel, key, id }),
            Err(Skip::Busy) => sum.skipped += 1,
            Err(Skip::Gone) => {}
            Err(Skip::Error(m)) => sum.error(format!("{}: {m}", walk::show(&cand.rel))),
        }
    }
    out.0.lock().unwrap().append(&mut mine);
    out.1.lock().unwrap().append(&mut clones);
    sums.lock().unwrap().merge(sum);
}

fn hash_candidate(c: &Candidate, respect_mtime: bool, buf: &mut [u8]) -> Result<(Key, FileId), Skip> {
    let (file, st) = open_regular(c.dir.as_fd(), &c.name, Some(c.ino))?;
    let meta = Meta::read(file.as_fd(), &st, respect_mtime).map_err(err)?;
    let key = key_of(&file, &meta, st.st_size as u64, buf).map_err(|_| Skip::Busy)?;
    if let Some(wait) = unsettled(&st) {
        std::thread::sleep(wait);
    }
    let after = sys::fstat(file.as_fd()).map_err(err)?;
    if FileId::of(&after) != FileId::of(&st) {
        return Err(Skip::Busy);
    }
    Ok((key, FileId::of(&after)))
}

/// How much longer until the file's last change is SETTLE old.
fn unsettled(st: &libc::stat) -> Option<std::time::Duration> {
    let ctime = std::time::UNIX_EPOCH + std::time::Duration::new(st.st_ctime.max(0) as u64, st.st_ctime_nsec as u32);
    let age = std::time::SystemTime::now().duration_since(ctime).unwrap_or_default();
    SETTLE.checked_sub(age).filter(|d| !d.is_zero())
}

/// Opens `name` in `dir` for reading, only if it is a regular file (checked
/// on an O_PATH fd first: opening a device or fifo a guest swapped in could
/// block or have side effects), optionally of the expected inode, and takes a
/// read lease on it: from here until the fd is closed nobody can open it for
/// writing or truncate it.
pub fn open_regular(dir: BorrowedFd, name: &std::ffi::CStr, ino: Option<u64>) -> Result<(File, libc::stat), Skip> {
    let path_fd = sys::open_beneath(dir, name, libc::O_PATH).map_err(gone_or_err)?;
    let st = sys::fstat(path_fd.as_fd()).map_err(err)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || ino.is_some_and(|i| i != st.st_ino) {
        return Err(Skip::Gone);
    }
    let fd = sys::reopen_read(path_fd.as_fd()).map_err(|e| match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Skip::Busy,
        _ => err(e),
    })?;
    sys::take_read_lease(fd.as_fd()).map_err(|e| match e.raw_os_error() {
        Some(libc::EAGAIN) => Skip::Busy,
        _ => Skip::Error(format!("cannot take a read lease: {e}")),
    })?;
    Ok((File::from(fd), st))
}

fn gone_or_err(e: io::Error) -> Skip {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ELOOP | libc::EXDEV | libc::ENOTDIR) => Skip::Gone,
        _ => err(e),
    }
}

fn err(e: io::Error) -> Skip {
    Skip::Error(e.to_string())
}
