//! RENAME_EXCHANGE by path for the probes, and a scratch directory that
//! cleans up after them. Inode flags and FICLONE are `vserver_sys::file`'s.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use crate::sys::file::FS_IMMUTABLE_FL;

pub fn rename_exchange(a: &Path, b: &Path) -> io::Result<()> {
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both paths are NUL-terminated and live across the call.
    crate::sys::check(unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) }).map(drop)
}

/// A private directory for probe files; on drop the immutable flag is
/// cleared from whatever is left in it and it is removed.
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    pub fn new(parent: &Path) -> io::Result<ScratchDir> {
        use std::os::unix::fs::DirBuilderExt;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = parent.join(format!(".vserver-info-{}-{n}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(ScratchDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for entry in entries.flatten() {
                let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
                if let (true, Ok(f)) = (is_file, File::open(entry.path())) {
                    if let Ok(flags) = crate::sys::file::get_flags(f.as_fd()) {
                        let _ = crate::sys::file::set_flags(f.as_fd(), flags & !FS_IMMUTABLE_FL);
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
