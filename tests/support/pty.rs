//! A terminal for tests that play the admin at a shell: a host pty whose
//! slave is given to `vserver` as stdin, stdout and stderr, and whose master
//! the test reads and types into.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub struct Pty {
    pub master: File,
    pub slave: OwnedFd,
    seen: Vec<u8>,
}

impl Pty {
    /// A pty of `rows` x `cols`.
    pub fn new(rows: u16, cols: u16) -> Pty {
        let (mut master, mut slave) = (0, 0);
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: openpty fills two descriptors that we then own.
        let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &ws) };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: descriptors openpty just gave us.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        // SAFETY: fcntl on our own descriptor.
        unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        Pty { master, slave, seen: Vec::new() }
    }

    pub fn stdio(&self) -> Stdio {
        Stdio::from(self.slave.try_clone().unwrap())
    }

    /// The slave's filesystem and inode, to find it among other processes'
    /// descriptors (its device number alone is not unique: every devpts
    /// instance, a guest's too, numbers its ptys from 0).
    pub fn slave_id(&self) -> (u64, u64) {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat into a struct we own.
        assert_eq!(unsafe { libc::fstat(self.slave.as_raw_fd(), &mut st) }, 0);
        (st.st_dev, st.st_ino)
    }

    pub fn termios(&self) -> libc::termios {
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr into a struct we own.
        assert_eq!(unsafe { libc::tcgetattr(self.slave.as_raw_fd(), &mut t) }, 0);
        t
    }

    /// What the admin types.
    pub fn type_in(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    /// Everything shown on the terminal so far.
    pub fn screen(&mut self) -> String {
        self.pump();
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Waits until the terminal shows `needle`; returns the screen.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(Instant::now() < end, "the terminal never showed {needle:?}; it shows:\n{screen}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pump(&mut self) {
        let mut buf = [0u8; 65536];
        while let Ok(n) = self.master.read(&mut buf) {
            if n == 0 {
                break;
            }
            self.seen.extend_from_slice(&buf[..n]);
        }
    }
}

/// Host pids (of `pids`) that hold a descriptor of the terminal `id`.
pub fn holders_of(id: (u64, u64), pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|pid| {
            let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
            dir.flatten().any(|e| {
                std::fs::metadata(e.path()).is_ok_and(|m| {
                    use std::os::unix::fs::MetadataExt;
                    (m.dev(), m.ino()) == id
                })
            })
        })
        .collect()
}
