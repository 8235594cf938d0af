//! The files of a Debian package as the guest's own dpkg lists them:
//! `/var/lib/dpkg/info/PKG.list` (or `PKG:ARCH.list` for a Multi-Arch: same
//! package), read from the guest tree with the guest's symlinks resolved
//! inside its root. The list holds directories too (`/.`, `/usr`); which of
//! the paths are regular files is decided by the caller, on the tree.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use super::error::{IoResultExt, UnifyError};
use crate::sys::file as sys;

pub(super) const INFO_DIR: &str = "var/lib/dpkg/info";
/// A list longer than this is not a dpkg list (the guest may write anything there).
pub(super) const MAX_LIST: u64 = 64 << 20;

/// Debian package names (policy 5.6.1), optionally with `:ARCH`.
pub fn check_name(pkg: &str) -> Result<(), String> {
    let (name, arch) = match pkg.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (pkg, None),
    };
    let name_ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    let arch_ok = arch.is_none_or(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if name_ok && arch_ok {
        Ok(())
    } else {
        Err(format!("--package {pkg:?}: not a Debian package name"))
    }
}

/// The paths the package's list names (as written there: absolute guest paths).
pub fn files(root: &OwnedFd, pkg: &str) -> Result<Vec<Vec<u8>>, UnifyError> {
    check_name(pkg).map_err(UnifyError::Selection)?;
    let info = sys::open_in_root(root.as_fd(), &sys::cstr(INFO_DIR.as_bytes())?, libc::O_RDONLY | libc::O_DIRECTORY)
        .what(|| format!("package {pkg}: cannot open /{INFO_DIR} in the guest (no dpkg there?)"))?;
    let list = open_list(&info, pkg)?;
    let mut text = Vec::new();
    std::fs::File::from(list).take(MAX_LIST + 1).read_to_end(&mut text).what(|| format!("reading the file list of package {pkg}"))?;
    if text.len() as u64 > MAX_LIST {
        return Err(UnifyError::PackageListTooLarge { pkg: pkg.to_string() });
    }
    Ok(text.split(|&b| b == b'\n').filter(|l| l.starts_with(b"/")).map(<[u8]>::to_vec).collect())
}

/// `PKG.list`, else the one `PKG:ARCH.list` there is.
fn open_list(info: &OwnedFd, pkg: &str) -> Result<OwnedFd, UnifyError> {
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let mut names = vec![format!("{pkg}.list")];
    if !pkg.contains(':') {
        let dir = nix::dir::Dir::from_fd(nix::unistd::dup(std::os::fd::AsRawFd::as_raw_fd(info))?)?;
        for e in dir.into_iter().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&format!("{pkg}:")) && n.ends_with(".list") {
                names.push(n);
            }
        }
    }
    for n in &names {
        match sys::open_beneath(info.as_fd(), &sys::cstr(n.as_bytes())?, flags) {
            Ok(fd) if sys::fstat(fd.as_fd())?.st_mode & libc::S_IFMT == libc::S_IFREG => return Ok(fd),
            Ok(_) => return Err(UnifyError::PackageListNotAFile { pkg: pkg.to_string(), list: n.clone() }),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(err) => return Err(UnifyError::Io { what: format!("package {pkg}: /{INFO_DIR}/{n}"), err }),
        }
    }
    Err(UnifyError::PackageNotInstalled { pkg: pkg.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_follow_debian_policy() {
        for ok in ["nginx", "libc6", "libstdc++6", "python3.11", "libc6:amd64", "g++"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "x", "Nginx", "../../etc/passwd", "a/b", "-rf", "nginx:", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
