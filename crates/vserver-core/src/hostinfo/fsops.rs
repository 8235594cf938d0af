//! RENAME_EXCHANGE by path for the probes, and a scratch directory that
//! cleans up after them. Inode flags and FICLONE are `vserver_sys::file`'s.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

pub use crate::sys::file::FS_IMMUTABLE_FL;

pub fn rename_exchange(a: &Path, b: &Path) -> io::Result<()> {
    Ok(nix::fcntl::renameat2(None, a, None, b, nix::fcntl::RenameFlags::RENAME_EXCHANGE)?)
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
