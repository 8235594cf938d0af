//! pivot_root into the guest root, with the host's tree detached. Unlike
//! chroot(2), no "chroot; chdir .." trick gets back out: the old root is not
//! reachable from the new mount namespace at all.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::resolve::GuestRoot;
use crate::sys::mount;

pub fn pivot_into(root: &GuestRoot) -> io::Result<()> {
    let ctx = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what} {}: {e}", root.path.display()));
    nix::unistd::fchdir(root.fd.as_raw_fd()).map_err(|e| ctx("entering", e.into()))?;
    // pivot_root(".", ".") stacks the old root on top of the new one, so it
    // can be detached without needing a directory for it inside the guest.
    let dot = c".";
    mount::pivot_root(dot, dot).map_err(|e| ctx("pivot_root into", e))?;
    // MNT_DETACH lazily unmounts the whole old tree.
    mount::umount2(dot, libc::MNT_DETACH).map_err(|e| ctx("detaching the host root after pivot into", e))?;
    std::env::set_current_dir(Path::new("/"))
}
