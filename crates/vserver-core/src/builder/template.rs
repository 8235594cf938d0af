//! `build -m template -- -t ARCHIVE [-t ARCHIVE...] [-d DIST]`: a guest from
//! tarballs of a root filesystem (util-vserver's method; OpenVZ's precreated
//! templates): tar, tar.gz, tar.xz or tar.zst, recognised by content.
//!
//! The archive is hostile. It is read here (the `tar` crate parses, we
//! create) and every member is made with *at calls below a descriptor of the
//! guest root, never through a path name:
//! - a leading `/` is dropped (as GNU tar does) and a `..` component refuses
//!   the archive, so no name leads outside the root;
//! - the directory a member goes into is opened with
//!   openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS): a symlink the archive
//!   made earlier is never followed (the member is refused);
//! - a hard link's target is resolved the same way, so it names a file of
//!   this guest, never one outside;
//! - device nodes are left out (a guest's /dev is made at start); fifos,
//!   symlinks, files and directories are made with the archive's numeric
//!   owners, modes and times, `user.*` and `security.capability` extended
//!   attributes (pax `SCHILY.xattr.*`); other attributes are left out and
//!   counted.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::UsageError;
use crate::sys::file as sys;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    pub archives: Vec<PathBuf>,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Args, UsageError> {
        let mut out = Args::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "-t" | "--template" => {
                    let t = it.next().ok_or_else(|| UsageError("build -m template: -t needs an archive".into()))?;
                    out.archives.push(PathBuf::from(t));
                }
                // util-vserver's distribution and device options: nothing to do here.
                "-d" => {
                    it.next();
                }
                "--nodevsanity" | "--" => {}
                other => return Err(UsageError(format!("build -m template: unknown argument {other:?} (-t ARCHIVE)"))),
            }
        }
        if out.archives.is_empty() {
            return Err(UsageError("build -m template needs an archive: -- -t ARCHIVE".into()));
        }
        Ok(out)
    }
}

/// What unpacking left out.
#[derive(Debug, Default)]
pub struct Report {
    pub members: u64,
    pub devices_skipped: u64,
    pub xattrs_skipped: u64,
}

pub(super) fn build(vdir: &Path, args: &Args) -> Result<Report> {
    let root = sys::open_at(cwd(), &path_cstr(vdir)?, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .with_context(|| format!("opening {}", vdir.display()))?;
    let mut report = Report::default();
    for archive in &args.archives {
        let file = File::open(archive).with_context(|| format!("opening template archive {}", archive.display()))?;
        let reader = decompressed(BufReader::new(file)).with_context(|| format!("template archive {}", archive.display()))?;
        unpack(root.as_fd(), reader, &mut report).with_context(|| format!("unpacking template archive {}", archive.display()))?;
    }
    Ok(report)
}

/// The archive's content, decompressed by what its first bytes say.
fn decompressed(mut r: BufReader<File>) -> Result<Box<dyn Read>> {
    let head = r.fill_buf()?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(xz2::read::XzDecoder::new_multi_decoder(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(ruzstd::decoding::StreamingDecoder::new(r).map_err(|e| anyhow::anyhow!("zstd: {e}"))?)
    } else if head.starts_with(b"BZh") {
        bail!("bzip2 archives are not read here; recompress it (bunzip2, then gzip, xz or zstd)")
    } else {
        Box::new(r)
    })
}

/// A directory whose metadata is set once every member is in place.
struct DirMeta {
    rel: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn unpack(root: BorrowedFd, reader: Box<dyn Read>, report: &mut Report) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    let mut dirs = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let member = || format!("member {shown:?}");
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let Some(rel) = clean(&raw_path).with_context(member)? else {
            continue; // the root itself ("./"): it stays as the build made it
        };
        let meta = Meta::of(&mut entry, report).with_context(member)?;
        report.members += 1;
        let (parent, name) = parent_of(root, &rel).with_context(member)?;
        match kind {
            tar::EntryType::Directory => {
                make_dir(parent.as_fd(), &name).with_context(member)?;
                dirs.push(DirMeta { rel, mode: meta.mode, uid: meta.uid, gid: meta.gid, mtime: meta.mtime, xattrs: meta.xattrs });
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                make_file(parent.as_fd(), &name, &mut entry, &meta).with_context(member)?
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().context("symlink without a target").with_context(member)?;
                make_symlink(parent.as_fd(), &name, &target, &meta).with_context(member)?
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().context("hard link without a target").with_context(member)?;
                let target = clean(&target)?.context("a hard link to the root directory").with_context(member)?;
                make_hard_link(root, &target, parent.as_fd(), &name).with_context(member)?
            }
            tar::EntryType::Fifo => make_fifo(parent.as_fd(), &name, &meta).with_context(member)?,
            tar::EntryType::Char | tar::EntryType::Block => report.devices_skipped += 1,
            other => bail!("{}: unsupported member type {other:?}", member()),
        }
    }
    for d in dirs.iter().rev() {
        let fd = sys::open_beneath(root, &sys::cstr(&d.rel)?, libc::O_RDONLY | libc::O_DIRECTORY)
            .with_context(|| format!("directory {:?}", String::from_utf8_lossy(&d.rel)))?;
        set_meta(fd.as_fd(), d.uid, d.gid, d.mode, &d.xattrs, d.mtime)
            .with_context(|| format!("directory {:?}: owner, mode or times", String::from_utf8_lossy(&d.rel)))?;
    }
    Ok(())
}

/// A member's name without a leading `/` or `.` components; `..` refuses
/// it. `None` for the root itself.
fn clean(path: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut parts = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => bail!("names a path outside the guest root (\"..\")"),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    if parts.iter().any(|p| p.contains(&0)) {
        bail!("name contains a NUL byte");
    }
    Ok(Some(parts.join(&b'/')))
}

/// The directory a member goes into (created as needed, never through a
/// symlink) and its last name.
fn parent_of(root: BorrowedFd, rel: &[u8]) -> Result<(OwnedFd, CString)> {
    let (dir, name) = match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&b"."[..], rel),
    };
    let name = sys::cstr(name)?;
    match sys::open_beneath(root, &sys::cstr(dir)?, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => return Ok((fd, name)),
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(refusal(dir, e)),
        Err(_) => {}
    }
    let mut cur = sys::open_beneath(root, c".", libc::O_PATH | libc::O_DIRECTORY)?;
    for comp in dir.split(|&b| b == b'/') {
        let c = sys::cstr(comp)?;
        cur = match sys::open_beneath(cur.as_fd(), &c, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                sys::mkdir_at(cur.as_fd(), &c, 0o755)?;
                sys::open_beneath(cur.as_fd(), &c, libc::O_PATH | libc::O_DIRECTORY).map_err(|e| refusal(dir, e))?
            }
            Err(e) => return Err(refusal(dir, e)),
        };
    }
    Ok((cur, name))
}

fn refusal(dir: &[u8], e: io::Error) -> anyhow::Error {
    let why = match e.raw_os_error() {
        Some(libc::ELOOP) => "passes through a symlink (archives may not write through their own symlinks)".to_string(),
        Some(libc::ENOTDIR) => "passes through something that is not a directory".to_string(),
        Some(libc::EXDEV) => "leaves the guest root".to_string(),
        _ => e.to_string(),
    };
    anyhow::anyhow!("directory {:?} {why}", String::from_utf8_lossy(dir))
}

/// Owner, mode, time and attributes of a member.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    fn of<R: Read>(entry: &mut tar::Entry<R>, report: &mut Report) -> Result<Meta> {
        let h = entry.header();
        let id = |v: u64| u32::try_from(v).context("owner id out of range");
        let mut m = Meta { mode: h.mode()? & 0o7777, uid: id(h.uid()?)?, gid: id(h.gid()?)?, mtime: h.mtime()? as i64, xattrs: Vec::new() };
        if let Some(pax) = entry.pax_extensions()? {
            for ext in pax {
                let ext = ext?;
                let (key, value) = (ext.key_bytes(), ext.value_bytes());
                let number = || std::str::from_utf8(value).ok().and_then(|v| v.split('.').next()?.parse::<u64>().ok());
                match key {
                    b"uid" => m.uid = id(number().context("pax uid")?)?,
                    b"gid" => m.gid = id(number().context("pax gid")?)?,
                    b"mtime" => m.mtime = number().context("pax mtime")? as i64,
                    k if k.starts_with(b"SCHILY.xattr.") => {
                        let name = &k[b"SCHILY.xattr.".len()..];
                        if name.starts_with(b"user.") || name == b"security.capability" {
                            m.xattrs.push((name.to_vec(), value.to_vec()));
                        } else {
                            report.xattrs_skipped += 1;
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(m)
    }
}

/// Removes what a name holds unless it is a directory (a later member
/// replaces an earlier one, as GNU tar does).
fn clear_name(dir: BorrowedFd, name: &CString) -> Result<()> {
    match sys::fstatat_nofollow(dir, name) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => bail!("a directory of that name exists"),
        Ok(_) => Ok(sys::unlink_at(dir, name, 0)?),
    }
}

fn make_dir(dir: BorrowedFd, name: &CString) -> Result<()> {
    match sys::fstatat_nofollow(dir, name) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => return Ok(()),
        Ok(_) => sys::unlink_at(dir, name, 0)?,
        Err(_) => {}
    }
    sys::mkdir_at(dir, name, 0o700)?;
    Ok(())
}

fn make_file<R: Read>(dir: BorrowedFd, name: &CString, content: &mut R, meta: &Meta) -> Result<()> {
    clear_name(dir, name)?;
    let fd = sys::open_at(dir, name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600)?;
    io::copy(content, &mut File::from(fd.try_clone()?))?;
    set_meta(fd.as_fd(), meta.uid, meta.gid, meta.mode, &meta.xattrs, meta.mtime)
}

/// chown first (it clears set-id bits and file capabilities), then the
/// mode, the attributes and the times.
fn set_meta(fd: BorrowedFd, uid: u32, gid: u32, mode: u32, xattrs: &[(Vec<u8>, Vec<u8>)], mtime: i64) -> Result<()> {
    sys::fchown(fd, uid, gid)?;
    sys::fchmod(fd, mode)?;
    for (n, v) in xattrs {
        sys::set_xattr(fd, n, v).with_context(|| format!("extended attribute {}", String::from_utf8_lossy(n)))?;
    }
    let times = [libc::timespec { tv_sec: mtime, tv_nsec: 0 }, libc::timespec { tv_sec: mtime, tv_nsec: 0 }];
    sys::futimens(fd, &times)?;
    Ok(())
}

fn make_symlink(dir: BorrowedFd, name: &CString, target: &[u8], meta: &Meta) -> Result<()> {
    clear_name(dir, name)?;
    let target = sys::cstr(target)?;
    // The symlink is only made, never followed.
    sys::symlink_at(&target, dir, name)?;
    own_and_time(dir, name, meta)
}

fn make_fifo(dir: BorrowedFd, name: &CString, meta: &Meta) -> Result<()> {
    clear_name(dir, name)?;
    sys::mkfifo_at(dir, name, 0o600)?;
    own_and_time(dir, name, meta)?;
    sys::chmod_at(dir, name, meta.mode, 0)?;
    Ok(())
}

fn own_and_time(dir: BorrowedFd, name: &CString, meta: &Meta) -> Result<()> {
    // AT_SYMLINK_NOFOLLOW: the entry itself.
    sys::chown_at(dir, name, meta.uid, meta.gid, libc::AT_SYMLINK_NOFOLLOW)?;
    let times = [libc::timespec { tv_sec: meta.mtime, tv_nsec: 0 }, libc::timespec { tv_sec: meta.mtime, tv_nsec: 0 }];
    sys::set_times_at(dir, name, &times, libc::AT_SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// A hard link to a file of this guest: the target is resolved beneath the
/// root without symlinks, and linked by descriptor.
fn make_hard_link(root: BorrowedFd, target: &[u8], dir: BorrowedFd, name: &CString) -> Result<()> {
    let fd = sys::open_beneath(root, &sys::cstr(target)?, libc::O_PATH)
        .map_err(|e| refusal(target, e))
        .with_context(|| format!("hard link target {:?}", String::from_utf8_lossy(target)))?;
    if sys::fstat(fd.as_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR {
        bail!("is a hard link to a directory");
    }
    clear_name(dir, name)?;
    sys::link_fd(fd.as_fd(), dir, name)?;
    Ok(())
}

fn path_cstr(p: &Path) -> io::Result<CString> {
    sys::cstr(p.as_os_str().as_encoded_bytes())
}

fn cwd() -> BorrowedFd<'static> {
    sys::cwd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_stay_inside() {
        assert_eq!(clean(b"./etc/passwd").unwrap(), Some(b"etc/passwd".to_vec()));
        assert_eq!(clean(b"/etc//hosts").unwrap(), Some(b"etc/hosts".to_vec()));
        assert_eq!(clean(b"./").unwrap(), None);
        assert!(clean(b"../etc/passwd").is_err());
        assert!(clean(b"a/../../b").is_err());
    }
}
