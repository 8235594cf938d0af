//! pivot_root into the guest root, with the host's tree detached. Unlike
//! chroot(2), no "chroot; chdir .." trick gets back out: the old root is not
//! reachable from the new mount namespace at all.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::resolve::GuestRoot;

pub fn pivot_into(root: &GuestRoot) -> io::Result<()> {
    let ctx = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what} {}: {e}", root.path.display()));
    // SAFETY: fchdir on a descriptor we own.
    if unsafe { libc::fchdir(root.fd.as_raw_fd()) } != 0 {
        return Err(ctx("entering", io::Error::last_os_error()));
    }
    // pivot_root(".", ".") stacks the old root on top of the new one, so it
    // can be detached without needing a directory for it inside the guest.
    let dot = c".";
    // SAFETY: both arguments are the static string ".".
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } != 0 {
        return Err(ctx("pivot_root into", io::Error::last_os_error()));
    }
    // SAFETY: as above; MNT_DETACH lazily unmounts the whole old tree.
    if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(ctx("detaching the host root after pivot into", io::Error::last_os_error()));
    }
    std::env::set_current_dir(Path::new("/"))
}
