//! A guest's fresh `/dev`: its nodes and symlinks made from the one device
//! list, [`GuestDevices`] (`config::device_rule`, which says why it is one
//! list). Nothing of the host's /dev is visible; the guest has no CAP_MKNOD
//! to add nodes.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use super::resolve::{GuestRoot, Symlinks};
use super::{fd_path, mount};
use crate::sys::file;

pub use crate::config::device_rule::{check_node_path, Access, DevKind, DeviceRule, GuestDevices, BASE_LINKS, BASE_NODES, DEV_ENTRIES};

pub fn populate(root: &GuestRoot, devices: &GuestDevices) -> io::Result<()> {
    let dev = root.ensure_dir(Path::new("dev"), Symlinks::Refuse, 0o755)?;
    mount(Some("tmpfs"), &fd_path(&dev), Some("tmpfs"), libc::MS_NOSUID | libc::MS_NOEXEC, Some("mode=755,size=64k,nr_inodes=4096"))?;
    // Reopen: the first descriptor is the directory underneath the tmpfs.
    let dev = root.ensure_dir(Path::new("dev"), Symlinks::Refuse, 0o755)?;
    for rule in devices.rules() {
        if let Some(node) = &rule.node {
            make_node(&dev, node, rule)?;
        }
    }
    for (name, target) in BASE_LINKS {
        symlinkat(target, &dev, name)?;
    }
    let pts = root.ensure_dir(Path::new("dev/pts"), Symlinks::Refuse, 0o755)?;
    mount(
        Some("devpts"),
        &fd_path(&pts),
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    let shm = root.ensure_dir(Path::new("dev/shm"), Symlinks::Refuse, 0o1777)?;
    mount(Some("shm"), &fd_path(&shm), Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, Some("mode=1777,size=65536k"))
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{s:?} contains a NUL byte")))
}

/// Makes a node in the fresh tmpfs `/dev` (our own mount: nothing of the
/// guest's is in it yet), with the directories on its way.
fn make_node(dev: &OwnedFd, node: &Path, rule: &DeviceRule) -> io::Result<()> {
    let parts: Vec<&str> = node.iter().filter_map(|c| c.to_str()).collect();
    let (name, parents) = parts.split_last().ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut subdir: Option<OwnedFd> = None;
    for p in parents {
        let at = subdir.as_ref().unwrap_or(dev).as_fd();
        let c = cstr(p)?;
        // An error (it exists already) shows at the open.
        let _ = file::mkdir_at(at, &c, 0o755);
        subdir = Some(file::open_at(at, &c, libc::O_PATH | libc::O_DIRECTORY, 0)?);
    }
    let dir = subdir.as_ref().unwrap_or(dev);
    let (kind, mode) = match rule.kind {
        DevKind::Char => (libc::S_IFCHR, rule.node_mode()),
        DevKind::Block => (libc::S_IFBLK, rule.node_mode()),
    };
    let n = cstr(name)?;
    if let Err(e) = crate::sys::mount::mknod_at(dir.as_fd(), &n, kind, mode, rule.major, rule.minor.unwrap_or(0)) {
        return Err(io::Error::new(e.kind(), format!("creating /dev/{} in the guest: {e}", node.display())));
    }
    // The umask may have narrowed the mode.
    let _ = nix::sys::stat::fchmodat(
        Some(dir.as_raw_fd()),
        n.as_c_str(),
        nix::sys::stat::Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    );
    Ok(())
}

fn symlinkat(target: &str, dir: &OwnedFd, name: &str) -> io::Result<()> {
    let (t, n) = (cstr(target)?, cstr(name)?);
    Ok(nix::unistd::symlinkat(t.as_c_str(), Some(dir.as_raw_fd()), n.as_c_str())?)
}
