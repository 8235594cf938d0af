//! Closing inherited descriptors before exec into a guest.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

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

/// Closes every descriptor from 3 up except those in `keep`. The monitor
/// calls it so that it holds nothing of the process that started it (the
/// start lock above all, which would otherwise stay locked while the guest
/// runs), and the guest's first process so that nothing of the monitor
/// (its signalfd, the start report pipe) reaches the guest.
pub fn close_all_except(keep: &[libc::c_int]) {
    let mut keep: Vec<libc::c_int> = keep.iter().copied().filter(|fd| *fd >= 3).collect();
    keep.sort_unstable();
    let mut first: libc::c_int = 3;
    for fd in keep.into_iter().chain(std::iter::once(libc::c_int::MAX)) {
        if first < fd {
            let last = if fd == libc::c_int::MAX { libc::c_uint::MAX } else { (fd - 1) as libc::c_uint };
            // SAFETY: close_range(2) on descriptor numbers nothing else uses here.
            unsafe { libc::syscall(libc::SYS_close_range, first as libc::c_uint, last, 0 as libc::c_uint) };
        }
        first = fd.saturating_add(1);
    }
}

/// Takes ownership of descriptor `fd`, which this process inherited and was
/// told about (a `--status-fd N` option): it is closed when the result is
/// dropped. EBADF for a negative number. No check that it is open: callers
/// check it first (e.g. with F_GETFL).
///
/// Only sound when nothing else in the process owns `fd` or closes it (not
/// a descriptor the process opened itself; std's handles of 0-2 never close
/// theirs): otherwise two owners would close it. (Belongs in `fds`.)
pub fn adopt_inherited(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: see the contract above: the caller hands over a descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_descriptor_is_not_adopted() {
        assert_eq!(adopt_inherited(-1).unwrap_err().raw_os_error(), Some(libc::EBADF));
    }
}
