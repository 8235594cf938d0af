//! Closing inherited descriptors before exec into a guest.

use std::io;


const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// Marks every descriptor from `first` upwards close-on-exec, so nothing of
/// the host survives the exec into the guest while descriptors we still need
/// until then (the error pipe) keep working.
pub fn cloexec_from(first: libc::c_uint) -> io::Result<()> {
    // SAFETY: close_range(2) takes plain integers.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        return Ok(());
    }
    // Kernels before 5.11 lack the flag: fall back to setting it one by one.
    let dir = std::fs::read_dir("/proc/self/fd")?;
    let fds: Vec<i32> = dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    for fd in fds.into_iter().filter(|fd| *fd >= first as i32) {
        // SAFETY: fcntl on a descriptor number; EBADF (the read_dir fd) is harmless.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}
