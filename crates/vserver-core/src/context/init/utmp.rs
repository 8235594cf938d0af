//! The utmp and wtmp records sysvinit keeps: a BOOT_TIME record at boot and
//! a RUN_LVL record (`runlevel + 256 * previous`) at every runlevel change.
//! `runlevel`, `who -r`, `halt`/`reboot` and invoke-rc.d read them.

use std::fs::{File, OpenOptions};
use std::io;
use std::mem::offset_of;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use libc::utmpx;

const UTMP: &str = "/var/run/utmp";
const WTMP: &str = "/var/log/wtmp";
const RUNLEVEL_LOG: &str = "/var/run/runlevel";
const RECORD: usize = std::mem::size_of::<utmpx>();

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

/// A `struct utmpx` as glibc reads and writes it, built as its bytes: each
/// field at the offset libc's definition gives it, everything else (the
/// padding too) zero.
fn record(kind: libc::c_short, pid: i32, user: &str) -> Vec<u8> {
    let mut rec = vec![0u8; RECORD];
    put(&mut rec, offset_of!(utmpx, ut_type), &kind.to_ne_bytes());
    put(&mut rec, offset_of!(utmpx, ut_pid), &pid.to_ne_bytes());
    copy(&mut rec, Field::LINE, "~");
    copy(&mut rec, Field::ID, "~~");
    copy(&mut rec, Field::USER, user);
    // sysvinit puts the kernel release where a login's host would be.
    if let Ok(uts) = nix::sys::utsname::uname() {
        copy(&mut rec, Field::HOST, &uts.release().to_string_lossy());
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    // ut_tv's two fields are 32 bits wide on x86_64 (__timeval), a long elsewhere.
    let (sec, usec) = (offset_of!(utmpx, ut_tv), offset_of!(utmpx, ut_tv) + TV_FIELD);
    match TV_FIELD {
        4 => {
            put(&mut rec, sec, &(now.as_secs() as i32).to_ne_bytes());
            put(&mut rec, usec, &(now.subsec_micros() as i32).to_ne_bytes());
        }
        _ => {
            put(&mut rec, sec, &(now.as_secs() as i64).to_ne_bytes());
            put(&mut rec, usec, &i64::from(now.subsec_micros()).to_ne_bytes());
        }
    }
    rec
}

/// The width of ut_tv.tv_sec and ut_tv.tv_usec: ut_tv, two of them, is
/// followed by ut_addr_v6.
const TV_FIELD: usize = (offset_of!(utmpx, ut_addr_v6) - offset_of!(utmpx, ut_tv)) / 2;

/// A character array of utmpx: its offset and length (up to the next field).
struct Field(usize, usize);

impl Field {
    const LINE: Field = Field(offset_of!(utmpx, ut_line), offset_of!(utmpx, ut_id) - offset_of!(utmpx, ut_line));
    const ID: Field = Field(offset_of!(utmpx, ut_id), offset_of!(utmpx, ut_user) - offset_of!(utmpx, ut_id));
    const USER: Field = Field(offset_of!(utmpx, ut_user), offset_of!(utmpx, ut_host) - offset_of!(utmpx, ut_user));
    const HOST: Field = Field(offset_of!(utmpx, ut_host), offset_of!(utmpx, ut_exit) - offset_of!(utmpx, ut_host));
}

fn put(rec: &mut [u8], at: usize, bytes: &[u8]) {
    rec[at..at + bytes.len()].copy_from_slice(bytes);
}

/// As many bytes of `value` as the field holds (no NUL when it is full).
fn copy(rec: &mut [u8], field: Field, value: &str) {
    for (dst, src) in rec[field.0..field.0 + field.1].iter_mut().zip(value.bytes()) {
        *dst = src;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runlevel_record_encodes_both_levels() {
        let rec = record(libc::RUN_LVL, i32::from(b'3') + 256 * i32::from(b'N'), "runlevel");
        assert_eq!(rec.len(), 384);
        assert_eq!(libc::c_short::from_ne_bytes([rec[0], rec[1]]), libc::RUN_LVL);
        let pid = i32::from_ne_bytes(rec[4..8].try_into().unwrap());
        assert_eq!(pid & 0xff, i32::from(b'3'));
        assert_eq!(pid >> 8, i32::from(b'N'));
        assert_eq!(&rec[8..10], b"~\0");
        assert_eq!(&rec[40..44], b"~~\0\0");
        assert_eq!(&rec[44..53], b"runlevel\0");
    }

    /// glibc's struct utmpx on x86_64 (bits/utmpx.h), which `runlevel` and
    /// `who` read: the record must keep exactly this layout.
    #[test]
    #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
    fn the_record_has_glibcs_layout() {
        assert_eq!(RECORD, 384);
        let offsets = [
            offset_of!(utmpx, ut_type),
            offset_of!(utmpx, ut_pid),
            offset_of!(utmpx, ut_line),
            offset_of!(utmpx, ut_id),
            offset_of!(utmpx, ut_user),
            offset_of!(utmpx, ut_host),
            offset_of!(utmpx, ut_exit),
            offset_of!(utmpx, ut_session),
            offset_of!(utmpx, ut_tv),
            offset_of!(utmpx, ut_addr_v6),
        ];
        assert_eq!(offsets, [0, 4, 8, 40, 44, 76, 332, 336, 340, 348]);
        assert_eq!((Field::LINE.1, Field::ID.1, Field::USER.1, Field::HOST.1, TV_FIELD), (32, 4, 32, 256, 4));
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let rec = record(libc::BOOT_TIME, 0, "reboot");
        let sec = i32::from_ne_bytes(rec[340..344].try_into().unwrap());
        assert!(i64::from(sec) >= before as i64 && i64::from(sec) <= before as i64 + 5);
        assert!(rec[2..4].iter().chain(&rec[332..340]).chain(&rec[348..]).all(|b| *b == 0), "padding and unused fields stay zero");
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
        assert_eq!(i32::from_ne_bytes(buf[4..8].try_into().unwrap()), 2);
    }
}
