//! A guest user for `exec --user` and `suexec`, resolved by the joiner after
//! it entered the guest's mount namespace: from the guest's own /etc/passwd
//! and /etc/group, never from the host's user database (and never through
//! NSS, whose modules would be the host's code reading the guest's files).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use crate::context::error::{ContextError, Result, StepResult};

/// A guest's database is the guest's to make: it may be huge or a FIFO.
const MAX_DB: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the primary one included, as initgroups does).
    pub groups: Vec<u32>,
    pub home: String,
    pub shell: String,
}

impl GuestUser {
    /// The default: root, without reading anything.
    pub fn root() -> GuestUser {
        GuestUser { name: "root".into(), uid: 0, gid: 0, groups: Vec::new(), home: "/root".into(), shell: "/bin/sh".into() }
    }

    /// HOME, USER, LOGNAME and SHELL for the command's environment.
    pub fn environment(&self) -> Vec<String> {
        vec![
            format!("HOME={}", self.home),
            format!("USER={}", self.name),
            format!("LOGNAME={}", self.name),
            format!("SHELL={}", self.shell),
        ]
    }

    /// Groups, then gid, then uid: each later step needs the privilege the
    /// next one gives up. Every result is checked.
    pub fn switch_to(&self) -> Result<()> {
        let groups: Vec<nix::unistd::Gid> = self.groups.iter().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
        nix::unistd::setgroups(&groups).with_step(|| format!("setting the groups of {}", self.name))?;
        let gid = nix::unistd::Gid::from_raw(self.gid);
        nix::unistd::setresgid(gid, gid, gid).with_step(|| format!("becoming gid {}", self.gid))?;
        let uid = nix::unistd::Uid::from_raw(self.uid);
        nix::unistd::setresuid(uid, uid, uid).with_step(|| format!("becoming uid {}", self.uid))?;
        Ok(())
    }
}

/// A name or a number. A number that /etc/passwd does not list is that uid
/// with the same gid and no supplementary groups (util-vserver accepted
/// any number).
pub fn resolve(spec: &str) -> Result<GuestUser> {
    if spec.is_empty() || spec.contains([':', '\n', '\0']) {
        return Err(ContextError::InGuest(format!("{spec:?} is not a user name or number")));
    }
    let passwd = read_db("/etc/passwd")?;
    let number: Option<u32> = spec.parse().ok();
    let entry = passwd.lines().filter_map(PasswdEntry::parse).find(|e| match number {
        Some(n) => e.uid == n,
        None => e.name == spec,
    });
    let Some(entry) = entry else {
        return match number {
            Some(n) => Ok(GuestUser { name: n.to_string(), uid: n, gid: n, groups: vec![n], home: "/".into(), shell: "/bin/sh".into() }),
            None => return Err(ContextError::InGuest(format!("no user {spec:?} in the guest's /etc/passwd"))),
        };
    };
    let group_db = read_db("/etc/group").unwrap_or_default();
    let mut groups = vec![entry.gid];
    for line in group_db.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if let [_, _, gid, members] = fields[..] {
            if let Ok(gid) = gid.parse::<u32>() {
                if members.split(',').any(|m| m.trim() == entry.name) && !groups.contains(&gid) {
                    groups.push(gid);
                }
            }
        }
    }
    Ok(GuestUser {
        name: entry.name.to_string(),
        uid: entry.uid,
        gid: entry.gid,
        groups,
        home: if entry.home.is_empty() { "/".into() } else { entry.home.to_string() },
        shell: if entry.shell.is_empty() { "/bin/sh".into() } else { entry.shell.to_string() },
    })
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
    shell: &'a str,
}

impl<'a> PasswdEntry<'a> {
    fn parse(line: &'a str) -> Option<PasswdEntry<'a>> {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 7 || f[0].is_empty() || f[0].starts_with(['#', '+', '-']) {
            return None;
        }
        Some(PasswdEntry { name: f[0], uid: f[2].parse().ok()?, gid: f[3].parse().ok()?, home: f[5], shell: f[6] })
    }
}

/// A regular file of bounded size; a FIFO or device in its place is refused
/// without blocking.
fn read_db(path: &str) -> Result<String> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .with_step(|| format!("opening the guest's {path}"))?;
    let meta = f.metadata()?;
    if !meta.is_file() || meta.len() > MAX_DB {
        return Err(ContextError::InGuest(format!("the guest's {path} is not a regular file of at most 16 MiB")));
    }
    let mut text = String::new();
    f.by_ref().take(MAX_DB).read_to_string(&mut text).with_step(|| format!("reading the guest's {path}"))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_parse_and_comments_do_not() {
        let e = PasswdEntry::parse("www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin").unwrap();
        assert_eq!((e.name, e.uid, e.gid, e.home), ("www-data", 33, 33, "/var/www"));
        assert!(PasswdEntry::parse("# comment").is_none());
        assert!(PasswdEntry::parse("broken:x:notanumber:1:::").is_none());
        assert!(PasswdEntry::parse("+::::::").is_none());
    }

    #[test]
    fn odd_specs_are_refused() {
        assert!(resolve("").is_err());
        assert!(resolve("a:b").is_err());
    }
}
