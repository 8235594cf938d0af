//! Reading and writing single files of a guest tree by descriptor. The trees
//! `build` personalises come from hostile places (a clone's source guest, a
//! template archive): any directory on the way may be a symlink. Parents are
//! resolved with openat2(RESOLVE_IN_ROOT), so a symlink means what it would
//! mean inside the guest and never leads out of it; the last component is
//! never followed (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW) and is replaced with
//! renameat(2), so a planted symlink is replaced, not written through.

use std::ffi::{CStr, CString, OsStr};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::rootfs::resolve::{GuestRoot, Symlinks};
use crate::sys::file as sys;
use crate::sys::openat2::{openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
/// Owner and mode a new file gets.
pub use crate::sys::Owner;

pub struct GuestTree {
    root: GuestRoot,
}

impl GuestTree {
    pub fn open(path: &Path) -> io::Result<GuestTree> {
        Ok(GuestTree { root: GuestRoot::open(path)? })
    }

    pub fn path(&self) -> &Path {
        &self.root.path
    }

    pub fn root_fd(&self) -> BorrowedFd<'_> {
        self.root.fd.as_fd()
    }

    /// The directory holding `rel` (resolved in the root) and the last name.
    fn parent(&self, rel: &Path, create: bool) -> io::Result<Option<(OwnedFd, CString)>> {
        let name = last_name(rel)?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        if create {
            return Ok(Some((self.root.ensure_dir(parent, Symlinks::InRoot, 0o755)?, name)));
        }
        let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
        match openat2(&self.root.fd, parent, libc::O_PATH | libc::O_DIRECTORY, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) {
            Ok(fd) => Ok(Some((fd, name))),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(None),
            Err(e) => Err(self.explain(rel, e)),
        }
    }

    /// The metadata of `rel` itself (a final symlink is not followed).
    pub fn stat(&self, rel: &Path) -> io::Result<Option<libc::stat>> {
        let Some((dir, name)) = self.parent(rel, false)? else { return Ok(None) };
        match sys::fstatat_nofollow(dir.as_fd(), &name) {
            Ok(st) => Ok(Some(st)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(self.explain(rel, e)),
        }
    }

    pub fn is_dir(&self, rel: &Path) -> io::Result<bool> {
        Ok(self.stat(rel)?.is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR))
    }

    /// The content of a regular file, at most `max` bytes (more is an
    /// error); `None` when it is missing or not a regular file.
    pub fn read(&self, rel: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
        let Some((dir, name)) = self.parent(rel, false)? else { return Ok(None) };
        let fd = match sys::open_at(dir.as_fd(), &name, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY, 0) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ELOOP | libc::ENXIO)) => return Ok(None),
            Err(e) => return Err(self.explain(rel, e)),
        };
        let st = sys::fstat(fd.as_fd())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Ok(None);
        }
        if st.st_size as u64 > max {
            return Err(self.explain(rel, io::Error::other(format!("is larger than {max} bytes"))));
        }
        let mut out = Vec::new();
        std::fs::File::from(fd).take(max + 1).read_to_end(&mut out)?;
        Ok(Some(out))
    }

    /// A symlink's target; `None` when `rel` is missing or no symlink.
    pub fn readlink(&self, rel: &Path) -> io::Result<Option<PathBuf>> {
        let Some((dir, name)) = self.parent(rel, false)? else { return Ok(None) };
        Ok(readlinkat(dir.as_fd(), &name).ok())
    }

    /// Writes `rel` whole: a new file under a temporary name, then renamed
    /// over whatever was there (a symlink included). Missing directories are
    /// created inside the guest.
    pub fn write(&self, rel: &Path, content: &[u8], owner: Owner) -> io::Result<()> {
        let (dir, name) = self.parent(rel, true)?.expect("created");
        let tmp = temp_name();
        let fd = sys::open_at(dir.as_fd(), &tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600).map_err(|e| self.explain(rel, e))?;
        let written = (|| {
            std::fs::File::from(fd.try_clone()?).write_all(content)?;
            // chown clears set-id bits and file capabilities: it goes first.
            sys::fchown(fd.as_fd(), owner.uid, owner.gid)?;
            sys::fchmod(fd.as_fd(), owner.mode)?;
            rename_at(dir.as_fd(), &tmp, dir.as_fd(), &name)
        })();
        if written.is_err() {
            let _ = sys::unlink_at(dir.as_fd(), &tmp, 0);
        }
        written.map_err(|e| self.explain(rel, e))
    }

    /// Makes `rel` a symlink to `target`, replacing what was there.
    pub fn symlink(&self, rel: &Path, target: &str) -> io::Result<()> {
        let (dir, name) = self.parent(rel, true)?.expect("created");
        let tmp = temp_name();
        let target = CString::new(target).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        sys::symlink_at(&target, dir.as_fd(), &tmp).map_err(|e| self.explain(rel, e))?;
        rename_at(dir.as_fd(), &tmp, dir.as_fd(), &name).map_err(|e| {
            let _ = sys::unlink_at(dir.as_fd(), &tmp, 0);
            self.explain(rel, e)
        })
    }

    /// Removes a file or symlink; false when there was none.
    pub fn remove(&self, rel: &Path) -> io::Result<bool> {
        let Some((dir, name)) = self.parent(rel, false)? else { return Ok(false) };
        match sys::unlink_at(dir.as_fd(), &name, 0) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(self.explain(rel, e)),
        }
    }

    /// Renames `from` to `to`, both names in directory `dir`.
    pub fn rename_in(&self, dir: &Path, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let Some(fd) = self.open_dir(dir)? else { return Err(io::Error::from(io::ErrorKind::NotFound)) };
        rename_at(fd.as_fd(), &cstr(from)?, fd.as_fd(), &cstr(to)?).map_err(|e| self.explain(&dir.join(from), e))
    }

    /// A directory of the guest, opened for listing.
    pub fn open_dir(&self, rel: &Path) -> io::Result<Option<OwnedFd>> {
        let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        match openat2(&self.root.fd, rel, libc::O_RDONLY | libc::O_DIRECTORY, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(None),
            Err(e) => Err(self.explain(rel, e)),
        }
    }

    /// The names in directory `rel`, sorted; empty when it is missing.
    pub fn list(&self, rel: &Path) -> io::Result<Vec<CString>> {
        let Some(fd) = self.open_dir(rel)? else { return Ok(Vec::new()) };
        let mut names = list_dir(fd.as_fd())?;
        names.sort();
        Ok(names)
    }

    /// Removes everything inside directory `rel` (never following a symlink).
    pub fn empty_dir(&self, rel: &Path) -> io::Result<()> {
        let Some(fd) = self.open_dir(rel)? else { return Ok(()) };
        super::delete::remove_contents(fd).map_err(|e| self.explain(rel, e))
    }

    fn explain(&self, rel: &Path, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("{} in guest tree {}: {e}", Path::new("/").join(rel).display(), self.root.path.display()))
    }
}

fn last_name(rel: &Path) -> io::Result<CString> {
    match rel.file_name() {
        Some(n) if n != ".." => cstr(n),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{}: no file name", rel.display()))),
    }
}

pub fn cstr(s: &OsStr) -> io::Result<CString> {
    sys::cstr(s.as_bytes())
}

fn temp_name() -> CString {
    static N: AtomicU32 = AtomicU32::new(0);
    CString::new(format!(".vserver-build.{}.{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))).expect("no NUL")
}

pub use crate::sys::file::rename_at;

pub fn readlinkat(dir: BorrowedFd, name: &CStr) -> io::Result<PathBuf> {
    Ok(PathBuf::from(std::ffi::OsString::from_vec(sys::readlink_at(dir, name)?)))
}

/// The names in a directory (without `.` and `..`).
pub fn list_dir(dir: BorrowedFd) -> io::Result<Vec<CString>> {
    Ok(read_dir(dir)?.into_iter().map(|(n, _)| n).collect())
}

/// The names in a directory with the type their entry gives (`None`: unknown).
pub fn read_dir(dir: BorrowedFd) -> io::Result<Vec<(CString, Option<nix::dir::Type>)>> {
    let dup = sys::dup_cloexec(dir)?;
    let mut d = nix::dir::Dir::from(dup).map_err(io::Error::from)?;
    // A duplicate shares the file offset: start from the beginning.
    let _ = nix::unistd::lseek(d.as_raw_fd(), 0, nix::unistd::Whence::SeekSet);
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.map_err(io::Error::from)?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push((CString::from(e.file_name()), e.file_type()));
        }
    }
    Ok(out)
}
