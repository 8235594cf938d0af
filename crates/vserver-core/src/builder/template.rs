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
use std::num::TryFromIntError;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::error::{BuildError, Doing};
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

/// An archive that cannot be read or unpacked (the [`BuildError`] names it).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading the archive (or making a directory) failed.
    #[error("{}", with_causes(.0))]
    Io(io::Error),
    #[error("zstd: {0}")]
    Zstd(String),
    #[error("bzip2 archives are not read here; recompress it (bunzip2, then gzip, xz or zstd)")]
    Bzip2,
    /// `name`: the member's name as the archive has it.
    #[error("member {name:?}: {err}")]
    Member { name: String, err: MemberError },
    /// `kind`: the tar entry type, as tar's `Debug` shows it.
    #[error("member {name:?}: unsupported member type {kind}")]
    UnsupportedType { name: String, kind: String },
    /// The name a hard link points to, refused (the message does not name
    /// the link).
    #[error("{0}")]
    LinkTarget(MemberError),
    #[error("directory {dir:?}: {err}")]
    Directory { dir: String, err: io::Error },
    #[error("directory {dir:?}: owner, mode or times: {err}")]
    DirectoryMeta { dir: String, err: MemberError },
}

/// A member that cannot be made (the [`ArchiveError`] names it).
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// Reading the member or a system call making it failed.
    #[error("{}", with_causes(.0))]
    Io(io::Error),
    #[error("names a path outside the guest root (\"..\")")]
    DotDot,
    #[error("name contains a NUL byte")]
    Nul,
    /// A directory of the member's path that cannot be entered safely.
    #[error("directory {dir:?} {}", refusal(err))]
    Beneath { dir: String, err: io::Error },
    #[error("owner id out of range: {0}")]
    IdRange(TryFromIntError),
    /// What the member lacks: "pax uid", "symlink without a target", ...
    #[error("{0}")]
    Missing(&'static str),
    #[error("a directory of that name exists")]
    DirectoryExists,
    #[error("extended attribute {name}: {err}")]
    Xattr { name: String, err: io::Error },
    #[error("hard link target {target:?}: directory {target:?} {}", refusal(err))]
    HardLinkTarget { target: String, err: io::Error },
    #[error("is a hard link to a directory")]
    HardLinkToDirectory,
}

impl From<io::Error> for ArchiveError {
    fn from(err: io::Error) -> Self {
        ArchiveError::Io(err)
    }
}

impl From<io::Error> for MemberError {
    fn from(err: io::Error) -> Self {
        MemberError::Io(err)
    }
}

/// An error and its causes, as `{:#}` shows a chain: a decompressor's
/// error inside the read error carries its own causes, and the messages
/// above keep them (they are not the source of the error that holds them).
fn with_causes(err: &io::Error) -> String {
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

pub(super) fn build(vdir: &Path, args: &Args) -> Result<Report, BuildError> {
    let root =
        sys::open_at(cwd(), &path_cstr(vdir)?, libc::O_RDONLY | libc::O_DIRECTORY, 0).doing(|| format!("opening {}", vdir.display()))?;
    let mut report = Report::default();
    for archive in &args.archives {
        let file = File::open(archive).doing(|| format!("opening template archive {}", archive.display()))?;
        let reader = decompressed(BufReader::new(file)).map_err(|err| BuildError::Decompress { archive: archive.clone(), err })?;
        unpack(root.as_fd(), reader, &mut report).map_err(|err| BuildError::Unpack { archive: archive.clone(), err })?;
    }
    Ok(report)
}

/// The archive's content, decompressed by what its first bytes say.
fn decompressed(mut r: BufReader<File>) -> Result<Box<dyn Read>, ArchiveError> {
    let head = r.fill_buf()?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(xz2::read::XzDecoder::new_multi_decoder(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(ruzstd::decoding::StreamingDecoder::new(r).map_err(|e| ArchiveError::Zstd(e.to_string()))?)
    } else if head.starts_with(b"BZh") {
        return Err(ArchiveError::Bzip2);
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

fn unpack(root: BorrowedFd, reader: Box<dyn Read>, report: &mut Report) -> Result<(), ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    let mut dirs = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let member = |err| ArchiveError::Member { name: shown.clone(), err };
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let Some(rel) = clean(&raw_path).map_err(member)? else {
            continue; // the root itself ("./"): it stays as the build made it
        };
        let meta = Meta::of(&mut entry, report).map_err(member)?;
        report.members += 1;
        let (parent, name) = parent_of(root, &rel).map_err(member)?;
        match kind {
            tar::EntryType::Directory => {
                make_dir(parent.as_fd(), &name).map_err(member)?;
                dirs.push(DirMeta { rel, mode: meta.mode, uid: meta.uid, gid: meta.gid, mtime: meta.mtime, xattrs: meta.xattrs });
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                make_file(parent.as_fd(), &name, &mut entry, &meta).map_err(member)?
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or(MemberError::Missing("symlink without a target")).map_err(member)?;
                make_symlink(parent.as_fd(), &name, &target, &meta).map_err(member)?
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().ok_or(MemberError::Missing("hard link without a target")).map_err(member)?;
                let target = clean(&target).map_err(ArchiveError::LinkTarget)?;
                let target = target.ok_or(MemberError::Missing("a hard link to the root directory")).map_err(member)?;
                make_hard_link(root, &target, parent.as_fd(), &name).map_err(member)?
            }
            tar::EntryType::Fifo => make_fifo(parent.as_fd(), &name, &meta).map_err(member)?,
            tar::EntryType::Char | tar::EntryType::Block => report.devices_skipped += 1,
            other => return Err(ArchiveError::UnsupportedType { name: shown, kind: format!("{other:?}") }),
        }
    }
    for d in dirs.iter().rev() {
        let dir = || String::from_utf8_lossy(&d.rel).into_owned();
        let fd = sys::open_beneath(root, &sys::cstr(&d.rel)?, libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(|err| ArchiveError::Directory { dir: dir(), err })?;
        set_meta(fd.as_fd(), d.uid, d.gid, d.mode, &d.xattrs, d.mtime).map_err(|err| ArchiveError::DirectoryMeta { dir: dir(), err })?;
    }
    Ok(())
}

/// A member's name without a leading `/` or `.` components; `..` refuses
/// it. `None` for the root itself.
fn clean(path: &[u8]) -> Result<Option<Vec<u8>>, MemberError> {
    let mut parts = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(MemberError::DotDot),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    if parts.iter().any(|p| p.contains(&0)) {
        return Err(MemberError::Nul);
    }
    Ok(Some(parts.join(&b'/')))
}

/// The directory a member goes into (created as needed, never through a
/// symlink) and its last name.
fn parent_of(root: BorrowedFd, rel: &[u8]) -> Result<(OwnedFd, CString), MemberError> {
    let (dir, name) = match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&b"."[..], rel),
    };
    let name = sys::cstr(name)?;
    match sys::open_beneath(root, &sys::cstr(dir)?, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => return Ok((fd, name)),
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(beneath(dir, e)),
        Err(_) => {}
    }
    let mut cur = sys::open_beneath(root, c".", libc::O_PATH | libc::O_DIRECTORY)?;
    for comp in dir.split(|&b| b == b'/') {
        let c = sys::cstr(comp)?;
        cur = match sys::open_beneath(cur.as_fd(), &c, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                sys::mkdir_at(cur.as_fd(), &c, 0o755)?;
                sys::open_beneath(cur.as_fd(), &c, libc::O_PATH | libc::O_DIRECTORY).map_err(|e| beneath(dir, e))?
            }
            Err(e) => return Err(beneath(dir, e)),
        };
    }
    Ok((cur, name))
}

fn beneath(dir: &[u8], err: io::Error) -> MemberError {
    MemberError::Beneath { dir: String::from_utf8_lossy(dir).into_owned(), err }
}

/// Why a directory of a member's path was refused, from the errno of
/// openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS).
fn refusal(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(libc::ELOOP) => "passes through a symlink (archives may not write through their own symlinks)".to_string(),
        Some(libc::ENOTDIR) => "passes through something that is not a directory".to_string(),
        Some(libc::EXDEV) => "leaves the guest root".to_string(),
        _ => err.to_string(),
    }
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
    fn of<R: Read>(entry: &mut tar::Entry<R>, report: &mut Report) -> Result<Meta, MemberError> {
        let h = entry.header();
        let id = |v: u64| u32::try_from(v).map_err(MemberError::IdRange);
        let mut m = Meta { mode: h.mode()? & 0o7777, uid: id(h.uid()?)?, gid: id(h.gid()?)?, mtime: h.mtime()? as i64, xattrs: Vec::new() };
        if let Some(pax) = entry.pax_extensions()? {
            for ext in pax {
                let ext = ext?;
                let (key, value) = (ext.key_bytes(), ext.value_bytes());
                let number = || std::str::from_utf8(value).ok().and_then(|v| v.split('.').next()?.parse::<u64>().ok());
                match key {
                    b"uid" => m.uid = id(number().ok_or(MemberError::Missing("pax uid"))?)?,
                    b"gid" => m.gid = id(number().ok_or(MemberError::Missing("pax gid"))?)?,
                    b"mtime" => m.mtime = number().ok_or(MemberError::Missing("pax mtime"))? as i64,
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
fn clear_name(dir: BorrowedFd, name: &CString) -> Result<(), MemberError> {
    match sys::fstatat_nofollow(dir, name) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Err(MemberError::DirectoryExists),
        Ok(_) => Ok(sys::unlink_at(dir, name, 0)?),
    }
}

fn make_dir(dir: BorrowedFd, name: &CString) -> Result<(), MemberError> {
    match sys::fstatat_nofollow(dir, name) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => return Ok(()),
        Ok(_) => sys::unlink_at(dir, name, 0)?,
        Err(_) => {}
    }
    sys::mkdir_at(dir, name, 0o700)?;
    Ok(())
}

fn make_file<R: Read>(dir: BorrowedFd, name: &CString, content: &mut R, meta: &Meta) -> Result<(), MemberError> {
    clear_name(dir, name)?;
    let fd = sys::open_at(dir, name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600)?;
    io::copy(content, &mut File::from(fd.try_clone()?))?;
    set_meta(fd.as_fd(), meta.uid, meta.gid, meta.mode, &meta.xattrs, meta.mtime)
}

/// chown first (it clears set-id bits and file capabilities), then the
/// mode, the attributes and the times.
fn set_meta(fd: BorrowedFd, uid: u32, gid: u32, mode: u32, xattrs: &[(Vec<u8>, Vec<u8>)], mtime: i64) -> Result<(), MemberError> {
    sys::fchown(fd, uid, gid)?;
    sys::fchmod(fd, mode)?;
    for (n, v) in xattrs {
        sys::set_xattr(fd, n, v).map_err(|err| MemberError::Xattr { name: String::from_utf8_lossy(n).into_owned(), err })?;
    }
    let times = [libc::timespec { tv_sec: mtime, tv_nsec: 0 }, libc::timespec { tv_sec: mtime, tv_nsec: 0 }];
    sys::futimens(fd, &times)?;
    Ok(())
}

fn make_symlink(dir: BorrowedFd, name: &CString, target: &[u8], meta: &Meta) -> Result<(), MemberError> {
    clear_name(dir, name)?;
    let target = sys::cstr(target)?;
    // The symlink is only made, never followed.
    sys::symlink_at(&target, dir, name)?;
    Ok(own_and_time(dir, name, meta)?)
}

fn make_fifo(dir: BorrowedFd, name: &CString, meta: &Meta) -> Result<(), MemberError> {
    clear_name(dir, name)?;
    sys::mkfifo_at(dir, name, 0o600)?;
    own_and_time(dir, name, meta)?;
    sys::chmod_at(dir, name, meta.mode, 0)?;
    Ok(())
}

fn own_and_time(dir: BorrowedFd, name: &CString, meta: &Meta) -> io::Result<()> {
    // AT_SYMLINK_NOFOLLOW: the entry itself.
    sys::chown_at(dir, name, meta.uid, meta.gid, libc::AT_SYMLINK_NOFOLLOW)?;
    let times = [libc::timespec { tv_sec: meta.mtime, tv_nsec: 0 }, libc::timespec { tv_sec: meta.mtime, tv_nsec: 0 }];
    sys::set_times_at(dir, name, &times, libc::AT_SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// A hard link to a file of this guest: the target is resolved beneath the
/// root without symlinks, and linked by descriptor.
fn make_hard_link(root: BorrowedFd, target: &[u8], dir: BorrowedFd, name: &CString) -> Result<(), MemberError> {
    let fd = sys::open_beneath(root, &sys::cstr(target)?, libc::O_PATH)
        .map_err(|err| MemberError::HardLinkTarget { target: String::from_utf8_lossy(target).into_owned(), err })?;
    if sys::fstat(fd.as_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Err(MemberError::HardLinkToDirectory);
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

    #[test]
    fn a_refused_member_names_the_archive_the_member_and_why() {
        let refused = MemberError::Beneath { dir: "etc".into(), err: io::Error::from_raw_os_error(libc::ELOOP) };
        let err = BuildError::Unpack { archive: "/t.tar".into(), err: ArchiveError::Member { name: "etc/x".into(), err: refused } };
        assert_eq!(
            err.to_string(),
            "unpacking template archive /t.tar: member \"etc/x\": directory \"etc\" passes through a symlink \
             (archives may not write through their own symlinks)"
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("corrupt block")]
    struct Block(#[source] Literals);

    #[derive(Debug, thiserror::Error)]
    #[error("bad literals")]
    struct Literals;

    #[test]
    fn a_read_error_keeps_the_decompressors_causes() {
        let read = io::Error::other(Block(Literals));
        let err = ArchiveError::Member { name: "a".into(), err: MemberError::from(read) };
        assert_eq!(err.to_string(), "member \"a\": corrupt block: bad literals");
    }
}
