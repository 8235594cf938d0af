//! Opening paths inside the guest root without ever leaving it. The guest's
//! root user owns the tree and may plant symlinks or swap directories at any
//! time, so every lookup goes through openat2(2) confined to the root, and
//! mounts are made on the resulting descriptors, not on path names.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use crate::sys::openat2::{openat2, RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS};

/// A descriptor on the guest root (the bind mount made for it).
pub struct GuestRoot {
    pub fd: OwnedFd,
    pub path: PathBuf,
}

/// How symlinks inside the guest are treated on the way to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    /// Resolved as if the guest root were `/` (they cannot point out).
    InRoot,
    /// Refused: the path must be real directories all the way.
    Refuse,
}

impl Symlinks {
    fn resolve_flags(self) -> u64 {
        match self {
            Symlinks::InRoot => RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
            Symlinks::Refuse => RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
        }
    }
}

impl GuestRoot {
    pub fn open(path: &Path) -> io::Result<GuestRoot> {
        let fd =
            std::fs::File::open(path).map_err(|e| io::Error::new(e.kind(), format!("opening the guest root {}: {e}", path.display())))?;
        Ok(GuestRoot { fd: fd.into(), path: path.to_path_buf() })
    }

    /// Opens (O_PATH) the directory `rel` inside the root, creating missing
    /// components as directories with `mode`.
    pub fn ensure_dir(&self, rel: &Path, symlinks: Symlinks, mode: u32) -> io::Result<OwnedFd> {
        self.ensure_dir_following(rel, symlinks, mode, 0)
    }

    fn ensure_dir_following(&self, rel: &Path, symlinks: Symlinks, mode: u32, depth: u32) -> io::Result<OwnedFd> {
        if depth > 40 {
            return Err(self.explain(rel, io::Error::from_raw_os_error(libc::ELOOP)));
        }
        // Each prefix is resolved from the root, so that an absolute symlink
        // in the guest means the guest's `/`, not the directory it sits in.
        let comps = components(rel)?;
        let mut cur = self.open_path(Path::new("."), symlinks)?;
        let mut prefix = PathBuf::new();
        for (i, comp) in comps.iter().enumerate() {
            let parent = prefix.clone();
            prefix.push(comp);
            match self.open_path(&prefix, symlinks) {
                Ok(fd) => cur = fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    // A dangling guest symlink: create what it points to,
                    // inside the guest, and go on from there.
                    if let Some(target) = readlinkat(&cur, comp) {
                        let mut redirected = if target.is_absolute() { target } else { parent.join(target) };
                        redirected.extend(&comps[i + 1..]);
                        return self.ensure_dir_following(&redirected, symlinks, mode, depth + 1);
                    }
                    mkdirat(&cur, comp, mode).map_err(|e| self.explain(&prefix, e))?;
                    cur = self.open_path(&prefix, symlinks).map_err(|e| self.explain(&prefix, e))?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(cur)
    }

    /// Opens (O_PATH) the file `rel`, creating it empty when missing (a
    /// target for a file bind mount).
    pub fn ensure_file(&self, rel: &Path, symlinks: Symlinks) -> io::Result<OwnedFd> {
        let parent = rel.parent().unwrap_or(Path::new("/"));
        let name = rel.file_name().ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let dir = self.ensure_dir(parent, symlinks, 0o755)?;
        let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW;
        drop(openat2(&dir, Path::new(name), flags, 0o644, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS).map_err(|e| self.explain(rel, e))?);
        openat2(&dir, Path::new(name), libc::O_PATH | libc::O_NOFOLLOW, 0, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
            .map_err(|e| self.explain(rel, e))
    }

    /// Is `rel` an executable regular file, resolved as the guest would
    /// resolve it (its symlinks lead inside its root, never to the host's)?
    pub fn is_executable_file(&self, rel: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        openat2(&self.fd, rel, libc::O_PATH, 0, Symlinks::InRoot.resolve_flags())
            .ok()
            .and_then(|fd| std::fs::File::from(fd).metadata().ok())
            .is_some_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }

    fn open_path(&self, rel: &Path, symlinks: Symlinks) -> io::Result<OwnedFd> {
        let nofollow = if symlinks == Symlinks::Refuse { libc::O_NOFOLLOW } else { 0 };
        let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        openat2(&self.fd, rel, libc::O_PATH | libc::O_DIRECTORY | nofollow, 0, symlinks.resolve_flags()).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOENT) {
                e
            } else {
                self.explain(rel, e)
            }
        })
    }

    fn explain(&self, rel: &Path, e: io::Error) -> io::Error {
        let why = match e.raw_os_error() {
            Some(libc::ELOOP) => "passes through a symlink inside the guest".to_string(),
            Some(libc::EXDEV) => "leaves the guest root".to_string(),
            Some(libc::ENOTDIR) => "is not a directory inside the guest".to_string(),
            _ => e.to_string(),
        };
        io::Error::new(e.kind(), format!("{} inside guest root {}: {why}", rel.display(), self.path.display()))
    }
}

fn components(rel: &Path) -> io::Result<Vec<PathBuf>> {
    rel.components()
        .filter_map(|c| match c {
            Component::RootDir | Component::CurDir => None,
            Component::Normal(n) => Some(Ok(PathBuf::from(n))),
            _ => Some(Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{}: \"..\" is not allowed", rel.display())))),
        })
        .collect()
}

/// The target of `name` in `dir` if it is a symlink.
fn readlinkat(dir: &OwnedFd, name: &Path) -> Option<PathBuf> {
    nix::fcntl::readlinkat(Some(std::os::fd::AsRawFd::as_raw_fd(dir)), name).ok().map(PathBuf::from)
}

fn mkdirat(dir: &OwnedFd, name: &Path, mode: u32) -> io::Result<()> {
    nix::sys::stat::mkdirat(Some(std::os::fd::AsRawFd::as_raw_fd(dir)), name, nix::sys::stat::Mode::from_bits_truncate(mode)).or_else(|e| {
        if e == nix::errno::Errno::EEXIST {
            Ok(())
        } else {
            Err(io::Error::from(e))
        }
    })
}
