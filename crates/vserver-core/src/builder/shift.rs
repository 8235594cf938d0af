//! Shifting a freshly built guest tree into the id range of its user
//! namespace. Runs at build time, before the guest ever ran: nothing hostile
//! can race it yet, and symlinks are never followed (lchown).

use std::fs;
use std::io;
use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::config::idmap::RANGE;

/// Adds `base` to every uid and gid below the range size; chown clears the
/// setuid and setgid bits, so they are set again afterwards.
pub fn shift_ids(path: &Path, base: u32) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    let (uid, gid) = (meta.uid(), meta.gid());
    if uid < RANGE || gid < RANGE {
        let new_uid = if uid < RANGE { uid + base } else { uid };
        let new_gid = if gid < RANGE { gid + base } else { gid };
        lchown(path, Some(new_uid), Some(new_gid))
            .map_err(|e| io::Error::new(e.kind(), format!("shifting the owner of {}: {e}", path.display())))?;
        let special = meta.mode() & 0o7000;
        if special != 0 && !meta.file_type().is_symlink() {
            fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            shift_ids(&entry?.path(), base)?;
        }
    }
    Ok(())
}
