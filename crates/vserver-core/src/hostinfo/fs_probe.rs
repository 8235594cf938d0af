//! What the filesystems of the guest base and of the hash store can do for
//! vhashify: immutable inodes, shared extents (reflink), RENAME_EXCHANGE, and
//! whether the two are one filesystem (hard links cannot cross). A directory
//! that does not exist yet is judged by its nearest existing parent, where
//! it would be created.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::fsops::{self, ScratchDir, FS_IMMUTABLE_FL};
use super::{Check, Host, Status};
use crate::sys::file as sys;
use std::os::fd::AsFd;

const IMMUTABLE_NEEDED_FOR: &str = "vhashify: unified files are immutable, so no guest can change a file for every guest sharing it";
const REFLINK_NEEDED_FOR: &str = "vhashify --reflink: sharing extents copy-on-write instead of immutable hard links";
const EXCHANGE_NEEDED_FOR: &str = "vhashify: replacing a guest file by its store link in one atomic step";
const SAME_FS_NEEDED_FOR: &str = "vhashify: hard links from the guests into the hash store cannot cross filesystems";

/// Where a probe runs for one configured directory.
struct Place {
    /// `vdirbase` or `hash`.
    tag: &'static str,
    configured: PathBuf,
    existing: PathBuf,
}

impl Place {
    fn new(tag: &'static str, configured: &Path) -> Place {
        let existing = configured.ancestors().find(|p| p.is_dir()).unwrap_or(Path::new("/")).to_path_buf();
        Place { tag, configured: configured.to_path_buf(), existing }
    }

    fn describe(&self) -> String {
        let fs = fs_name(&self.existing);
        if self.existing == self.configured {
            format!("{} ({fs})", self.configured.display())
        } else {
            format!("{} ({fs}; {} does not exist yet)", self.existing.display(), self.configured.display())
        }
    }
}

pub fn checks(host: &Host) -> Vec<Check> {
    let base = Place::new("vdirbase", &host.vdirbase);
    let store = Place::new("hash", &host.hash_store);
    let mut checks = Vec::new();
    for place in [&base, &store] {
        checks.push(immutable(place));
        checks.push(reflink(place));
    }
    checks.push(exchange(&base));
    checks.push(same_filesystem(&base, &store));
    checks
}

fn scratch(place: &Place, id: &str, needed_for: &str) -> Result<ScratchDir, Check> {
    ScratchDir::new(&place.existing).map_err(|e| {
        let detail = format!("cannot test in {}: {e}", place.existing.display());
        Check::new(id, Status::Limited, detail, needed_for, false)
    })
}

fn new_file(dir: &Path, name: &str, content: &[u8]) -> io::Result<File> {
    let path = dir.join(name);
    let mut f = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    f.write_all(content)?;
    f.sync_all()?;
    Ok(f)
}

fn immutable(place: &Place) -> Check {
    let id = format!("fs.immutable.{}", place.tag);
    let dir = match scratch(place, &id, IMMUTABLE_NEEDED_FOR) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let make = |status, detail: String| Check::new(id.clone(), status, detail, IMMUTABLE_NEEDED_FOR, false);
    let result = (|| -> io::Result<bool> {
        let f = new_file(dir.path(), "immutable", b"probe")?;
        let flags = sys::get_flags(f.as_fd())?;
        sys::set_flags(f.as_fd(), flags | FS_IMMUTABLE_FL)?;
        let refused = OpenOptions::new().write(true).open(dir.path().join("immutable")).is_err();
        sys::set_flags(f.as_fd(), flags & !FS_IMMUTABLE_FL)?;
        Ok(refused)
    })();
    match result {
        Ok(true) => make(Status::Ok, format!("FS_IMMUTABLE_FL works on {}", place.describe())),
        Ok(false) => make(Status::Missing, format!("FS_IMMUTABLE_FL is accepted but not enforced on {}", place.describe())),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            make(Status::Limited, format!("setting FS_IMMUTABLE_FL on {} was refused ({e}): needs CAP_LINUX_IMMUTABLE", place.describe()))
        }
        Err(e) => make(Status::Missing, format!("no FS_IMMUTABLE_FL on {}: {e}", place.describe())),
    }
}

fn reflink(place: &Place) -> Check {
    let id = format!("fs.reflink.{}", place.tag);
    let dir = match scratch(place, &id, REFLINK_NEEDED_FOR) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let make = |status, detail: String| Check::new(id.clone(), status, detail, REFLINK_NEEDED_FOR, false);
    let result = (|| -> io::Result<()> {
        let src = new_file(dir.path(), "source", &[0x5a; 4096])?;
        let dst = new_file(dir.path(), "clone", b"")?;
        sys::ficlone(dst.as_fd(), src.as_fd())
    })();
    match result {
        Ok(()) => make(Status::Ok, format!("FICLONE works on {}", place.describe())),
        Err(e) => make(Status::Missing, format!("no FICLONE on {}: {e} (XFS and btrfs have it)", place.describe())),
    }
}

fn exchange(place: &Place) -> Check {
    let id = format!("fs.rename_exchange.{}", place.tag);
    let dir = match scratch(place, &id, EXCHANGE_NEEDED_FOR) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let make = |status, detail: String| Check::new(id.clone(), status, detail, EXCHANGE_NEEDED_FOR, false);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let result = (|| -> io::Result<bool> {
        new_file(dir.path(), "a", b"a")?;
        new_file(dir.path(), "b", b"b")?;
        fsops::rename_exchange(&a, &b)?;
        Ok(std::fs::read(&a)? == b"b" && std::fs::read(&b)? == b"a")
    })();
    match result {
        Ok(true) => make(Status::Ok, format!("renameat2(RENAME_EXCHANGE) works on {}", place.describe())),
        Ok(false) => make(Status::Missing, format!("RENAME_EXCHANGE did not swap the files on {}", place.describe())),
        Err(e) => make(Status::Missing, format!("no RENAME_EXCHANGE on {}: {e}", place.describe())),
    }
}

fn same_filesystem(base: &Place, store: &Place) -> Check {
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev());
    let make = |status, detail: String| Check::new("fs.hash_on_vdirbase", status, detail, SAME_FS_NEEDED_FOR, false);
    match (dev(&base.existing), dev(&store.existing)) {
        (Ok(a), Ok(b)) if a == b => {
            make(Status::Ok, format!("hash store {} is on the filesystem of {}", store.configured.display(), base.configured.display()))
        }
        (Ok(_), Ok(_)) => make(
            Status::Missing,
            format!(
                "hash store {} and guest base {} are on different filesystems; configure a store per filesystem \
                 (apps/vunify/hash)",
                store.configured.display(),
                base.configured.display()
            ),
        ),
        (Err(e), _) | (_, Err(e)) => make(Status::Limited, format!("cannot stat: {e}")),
    }
}

fn fs_name(path: &Path) -> String {
    let Ok(st) = nix::sys::statfs::statfs(path) else { return "unknown filesystem".into() };
    let magic = st.filesystem_type().0 as u64;
    let name = match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0xF2F5_2010 => "f2fs",
        _ => return format!("filesystem 0x{magic:x}"),
    };
    name.to_string()
}
