//! The credentials of a guest task (from /proc/TID/status) and the kernel's
//! permission rules for the changes the supervisor breaks links for. A link
//! is only broken when the task would be allowed the change on a file of its
//! own: a guest user who may not write /usr/bin/passwd cannot make the guest
//! lose its sharing of it. (The call itself is then checked by the kernel.)

use std::io;

/// The owner, group and mode (with its type) of the file a rule is about.
pub use crate::sys::Owner;

const CAP_CHOWN: u32 = 0;
const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_FOWNER: u32 = 3;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SETFCAP: u32 = 31;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Creds {
    pub fsuid: u32,
    pub fsgid: u32,
    pub groups: Vec<u32>,
    pub cap_effective: u64,
    /// The task's id maps when it is in a user namespace of its own: its
    /// capabilities count for a file only if the file's owner and group are
    /// mapped in it. Ranges as (first host id, count).
    pub uid_map: Option<Vec<(u32, u32)>>,
    pub gid_map: Option<Vec<(u32, u32)>>,
}

impl Creds {
    pub fn of(tid: i32) -> io::Result<Creds> {
        let status = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
        let mut c = parse_status(&status).ok_or_else(|| io::Error::other(format!("/proc/{tid}/status: no credentials")))?;
        let own_ns = |t: &str| std::fs::read_link(format!("/proc/{t}/ns/user")).ok();
        if own_ns(&tid.to_string()) != own_ns("self") {
            c.uid_map = Some(parse_map(&std::fs::read_to_string(format!("/proc/{tid}/uid_map"))?));
            c.gid_map = Some(parse_map(&std::fs::read_to_string(format!("/proc/{tid}/gid_map"))?));
        }
        Ok(c)
    }

    fn has(&self, cap: u32) -> bool {
        self.cap_effective & (1 << cap) != 0
    }

    /// capable_wrt_inode_uidgid(): the capability, over this file.
    fn capable_over(&self, cap: u32, o: &Owner) -> bool {
        let mapped = |map: &Option<Vec<(u32, u32)>>, id: u32| {
            map.as_ref().is_none_or(|m| m.iter().any(|&(first, count)| id >= first && id - first < count))
        };
        self.has(cap) && mapped(&self.uid_map, o.uid) && mapped(&self.gid_map, o.gid)
    }

    fn in_group(&self, gid: u32) -> bool {
        self.fsgid == gid || self.groups.contains(&gid)
    }

    /// The mode bits `want` (4 read, 2 write, 1 search) for this task,
    /// without capabilities.
    fn dac(&self, o: &Owner, want: u32) -> bool {
        let bits = if self.fsuid == o.uid {
            o.mode >> 6
        } else if self.in_group(o.gid) {
            o.mode >> 3
        } else {
            o.mode
        } & 7;
        bits & want == want
    }

    /// May write the file (open for writing, truncate).
    pub fn may_write(&self, file: &Owner) -> bool {
        self.dac(file, 2) || self.capable_over(CAP_DAC_OVERRIDE, file)
    }

    /// May remove or replace a name in `dir` (unlink, rename), sticky bit included.
    pub fn may_change_name(&self, dir: &Owner, file: &Owner) -> bool {
        let dir_ok = self.dac(dir, 3) || self.capable_over(CAP_DAC_OVERRIDE, dir);
        let sticky_ok =
            dir.mode & libc::S_ISVTX == 0 || self.fsuid == file.uid || self.fsuid == dir.uid || self.capable_over(CAP_FOWNER, file);
        dir_ok && sticky_ok
    }

    /// May give the file another name (fs.protected_hardlinks=1, Debian's default).
    pub fn may_link(&self, file: &Owner) -> bool {
        let setid = file.mode & libc::S_ISUID != 0 || file.mode & (libc::S_ISGID | libc::S_IXGRP) == (libc::S_ISGID | libc::S_IXGRP);
        self.fsuid == file.uid || self.capable_over(CAP_FOWNER, file) || (!setid && self.dac(file, 6))
    }

    pub fn may_chmod(&self, file: &Owner) -> bool {
        self.fsuid == file.uid || self.capable_over(CAP_FOWNER, file)
    }

    /// Changing the owner needs CAP_CHOWN; the group alone, the owner
    /// (to a group of its own, which the kernel checks).
    pub fn may_chown(&self, file: &Owner) -> bool {
        self.capable_over(CAP_CHOWN, file) || self.fsuid == file.uid
    }

    /// Times to now: the owner or a writer; given times: the owner.
    pub fn may_set_times(&self, file: &Owner, now: bool) -> bool {
        self.fsuid == file.uid || self.capable_over(CAP_FOWNER, file) || (now && self.may_write(file))
    }

    /// Extended attributes, by namespace (xattr_permission() and the LSM
    /// defaults): user.* need write permission, ACLs ownership, file
    /// capabilities CAP_SETFCAP, trusted.* and other security.* attributes
    /// CAP_SYS_ADMIN of the host's user namespace.
    pub fn may_set_xattr(&self, file: &Owner, name: &[u8]) -> bool {
        if name.starts_with(b"user.") {
            self.may_write(file)
        } else if name.starts_with(b"system.posix_acl_") {
            self.may_chmod(file)
        } else if name == b"security.capability" {
            self.capable_over(CAP_SETFCAP, file)
        } else if name.starts_with(b"trusted.") || name.starts_with(b"security.") {
            self.uid_map.is_none() && self.has(CAP_SYS_ADMIN)
        } else {
            false
        }
    }
}

fn parse_status(text: &str) -> Option<Creds> {
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    let ids = |name: &str| -> Option<Vec<u32>> { field(name)?.split_whitespace().map(|v| v.parse().ok()).collect() };
    let uids = ids("Uid:")?;
    let gids = ids("Gid:")?;
    Some(Creds {
        fsuid: *uids.get(3)?,
        fsgid: *gids.get(3)?,
        groups: ids("Groups:").unwrap_or_default(),
        cap_effective: u64::from_str_radix(field("CapEff:")?, 16).ok()?,
        uid_map: None,
        gid_map: None,
    })
}

/// uid_map lines: "inside outside count"; kept as (outside, count).
fn parse_map(text: &str) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let v: Vec<u32> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            (v.len() == 3).then(|| (v[1], v[2]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\nGroups:\t100 27 \nCapEff:\t0000000000000000\n";

    fn root() -> Creds {
        Creds { cap_effective: 0x1ff, ..Creds::default() }
    }

    #[test]
    fn status_gives_fs_ids_groups_and_capabilities() {
        let c = parse_status(STATUS).unwrap();
        assert_eq!((c.fsuid, c.fsgid, c.groups.clone(), c.cap_effective), (1000, 100, vec![100, 27], 0));
    }

    #[test]
    fn a_user_may_not_touch_roots_files_but_root_may() {
        let user = parse_status(STATUS).unwrap();
        let bin = Owner { uid: 0, gid: 0, mode: libc::S_IFREG | 0o755 };
        let usr_bin = Owner { uid: 0, gid: 0, mode: libc::S_IFDIR | 0o755 };
        assert!(!user.may_write(&bin) && !user.may_chmod(&bin) && !user.may_change_name(&usr_bin, &bin));
        assert!(!user.may_set_times(&bin, true) && !user.may_chown(&bin));
        let r = root();
        assert!(r.may_write(&bin) && r.may_chmod(&bin) && r.may_change_name(&usr_bin, &bin) && r.may_link(&bin));
        let own = Owner { uid: 1000, gid: 100, mode: libc::S_IFREG | 0o444 };
        assert!(user.may_chmod(&own) && user.may_set_times(&own, false) && !user.may_write(&own));
    }

    #[test]
    fn sticky_directories_protect_other_peoples_names() {
        let user = parse_status(STATUS).unwrap();
        let tmp = Owner { uid: 0, gid: 0, mode: libc::S_IFDIR | 0o1777 };
        let theirs = Owner { uid: 0, gid: 0, mode: libc::S_IFREG | 0o644 };
        let mine = Owner { uid: 1000, gid: 100, mode: libc::S_IFREG | 0o644 };
        assert!(!user.may_change_name(&tmp, &theirs));
        assert!(user.may_change_name(&tmp, &mine));
    }

    #[test]
    fn capabilities_in_a_user_namespace_count_only_for_mapped_owners() {
        // Guest root in a user namespace: host uid 100000, its capabilities.
        let mut c = Creds { fsuid: 100000, fsgid: 100000, ..root() };
        c.uid_map = Some(parse_map("0 100000 65536\n"));
        c.gid_map = Some(parse_map("0 100000 65536\n"));
        let host_file = Owner { uid: 0, gid: 0, mode: libc::S_IFREG | 0o644 };
        let guest_file = Owner { uid: 100000, gid: 100000, mode: libc::S_IFREG | 0o644 };
        assert!(!c.may_chmod(&host_file) && !c.may_write(&host_file));
        assert!(c.may_chmod(&guest_file) && c.may_write(&guest_file));
        assert!(!c.may_set_xattr(&guest_file, b"trusted.vhashify"), "trusted.* needs the host's CAP_SYS_ADMIN");
    }

    #[test]
    fn xattr_namespaces_have_their_own_rules() {
        let guest_root = Creds { cap_effective: (1 << CAP_DAC_OVERRIDE) | (1 << CAP_FOWNER) | (1 << CAP_SETFCAP), ..Creds::default() };
        let f = Owner { uid: 0, gid: 0, mode: libc::S_IFREG | 0o644 };
        assert!(guest_root.may_set_xattr(&f, b"user.x") && guest_root.may_set_xattr(&f, b"system.posix_acl_access"));
        assert!(guest_root.may_set_xattr(&f, b"security.capability"));
        assert!(!guest_root.may_set_xattr(&f, b"trusted.vhashify") && !guest_root.may_set_xattr(&f, b"security.selinux"));
        assert!(!guest_root.may_set_xattr(&f, b"bogus.x"));
    }
}
