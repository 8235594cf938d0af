//! The utmp and wtmp records sysvinit keeps: a BOOT_TIME record at boot and
//! a RUN_LVL record (`runlevel + 256 * previous`) at every runlevel change.
//! `runlevel`, `who -r`, `halt`/`reboot` and invoke-rc.d read them.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

const UTMP: &str = "/var/run/utmp";
const WTMP: &str = "/var/log/wtmp";
const RUNLEVEL_LOG: &str = "/var/run/runlevel";
const RECORD: usize = std::mem::size_of::<libc::utmpx>();

/// At boot: an empty utmp with the boot record, and the boot record
/// appended to wtmp (when the guest keeps one).
pub fn record_boot() {
    let boot = record(libc::BOOT_TIME, 0, "reboot");
    if let Some(f) = open(UTMP, true) {
        let _ = f.write_all_at(&boot, 0);
    }
    append_wtmp(&boot);
}

/// Entering `level` from `previous` (`N` at boot).
pub fn record_runlevel(level: u8, previous: u8) {
    let rec = record(libc::RUN_LVL, i32::from(level) + 256 * i32::from(previous), "runlevel");
    if let Some(f) = open(UTMP, false) {
        let _ = replace_or_append(&f, libc::RUN_LVL, &rec);
    }
    append_wtmp(&rec);
    if let Some(f) = open(RUNLEVEL_LOG, true) {
        let _ = f.write_all_at(&[level], 0);
    }
}

fn append_wtmp(rec: &[u8]) {
    // Like sysvinit: only a wtmp that exists is written.
    if std::fs::symlink_metadata(WTMP).is_err() {
        return;
    }
    if let Some(f) = open(WTMP, false) {
        let end = f.metadata().map(|m| m.len()).unwrap_or(0);
        // A record boundary, even if the file was cut short.
        let _ = f.write_all_at(rec, end - end % RECORD as u64);
    }
}

/// A regular file only: pid 1 must never write through a guest's symlink
/// at the last component or block on a FIFO put in its place.
fn open(path: &str, truncate: bool) -> Option<File> {
    let f = OpenOptions::new()
        .write(true)
        .read(true)
        .create(true)
        .truncate(truncate)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    f.metadata().ok().filter(|m| m.is_file()).map(|_| f)
}

/// glibc's pututline matches RUN_LVL and BOOT_TIME records by type.
fn replace_or_append(f: &File, kind: libc::c_short, rec: &[u8]) -> io::Result<()> {
    let len = f.metadata()?.len();
    let mut buf = [0u8; RECORD];
    let mut at = 0u64;
    while at + RECORD as u64 <= len {
        f.read_exact_at(&mut buf, at)?;
        if libc::c_short::from_ne_bytes([buf[0], buf[1]]) == kind {
            return f.write_all_at(rec, at);
        }
        at += RECORD as u64;
    }
    f.write_all_at(rec, at)
}

fn record(kind: libc::c_short, pid: i32, user: &str) -> Vec<u8> {
    // SAFETY: utmpx is plain data; all-zero is a valid (empty) record.
    let mut u: libc::utmpx = unsafe { std::mem::zeroed() };
    u.ut_type = kind;
    u.ut_pid = pid;
    copy(&mut u.ut_line, "~");
    copy(&mut u.ut_id, "~~");
    copy(&mut u.ut_user, user);
    // sysvinit puts the kernel release where a login's host would be.
    if let Ok(uts) = nix::sys::utsname::uname() {
        copy(&mut u.ut_host, &uts.release().to_string_lossy());
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u.ut_tv.tv_sec = now.as_secs() as _;
    u.ut_tv.tv_usec = now.subsec_micros() as _;
    // SAFETY: viewing the plain-data struct as its bytes.
    unsafe { std::slice::from_raw_parts((&u as *const libc::utmpx).cast::<u8>(), RECORD) }.to_vec()
}

fn copy(field: &mut [libc::c_char], value: &str) {
    for (dst, src) in field.iter_mut().zip(value.bytes()) {
        *dst = src as libc::c_char;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runlevel_record_encodes_both_levels() {
        let rec = record(libc::RUN_LVL, i32::from(b'3') + 256 * i32::from(b'N'), "runlevel");
        assert_eq!(rec.len(), 384);
        // SAFETY: the bytes of a utmpx we just built.
        let u: libc::utmpx = unsafe { std::ptr::read_unaligned(rec.as_ptr().cast()) };
        assert_eq!(u.ut_type, libc::RUN_LVL);
        assert_eq!(u.ut_pid & 0xff, i32::from(b'3'));
        assert_eq!(u.ut_pid >> 8, i32::from(b'N'));
    }

    #[test]
    fn a_runlevel_record_replaces_the_previous_one() {
        let dir = crate::config::parse::tests::tempdir();
        let path = dir.join("utmp");
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        f.write_all_at(&record(libc::BOOT_TIME, 0, "reboot"), 0).unwrap();
        replace_or_append(&f, libc::RUN_LVL, &record(libc::RUN_LVL, 1, "runlevel")).unwrap();
        replace_or_append(&f, libc::RUN_LVL, &record(libc::RUN_LVL, 2, "runlevel")).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 2 * RECORD as u64);
        let mut buf = [0u8; RECORD];
        f.read_exact_at(&mut buf, RECORD as u64).unwrap();
        // SAFETY: the bytes of a utmpx record.
        let u: libc::utmpx = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) };
        assert_eq!(u.ut_pid, 2);
    }
}
