//! Making a built tree this guest's own, as util-vserver's build and its
//! Debian `initpost` did, and keeping what cannot work in a guest from
//! running. Every file is written by descriptor in the guest's root
//! (guestfs.rs): the same code serves debootstrap builds, clones and
//! templates, whose trees are hostile.
//!
//! The lists below are the one place that says what a guest does without
//! and why. Units are masked (a symlink to /dev/null in /etc/systemd/system)
//! and sysv scripts disabled the way `update-rc.d disable` does it (their
//! S links renamed to K links): both are the admin's choice to a package
//! manager, which keeps them across upgrades.

use std::io;
use std::net::IpAddr;
use std::path::Path;

use super::error::{BuildError, Doing};
use super::guestfs::{GuestTree, Owner};

/// systemd units a guest does without, each with the reason.
pub const SYSTEMD_MASKS: &[(&str, &str)] = &[
    ("systemd-udevd.service", "devices are the host's; the guest's /dev is made by vserver at start"),
    ("systemd-udevd-control.socket", "udev: as systemd-udevd.service"),
    ("systemd-udevd-kernel.socket", "udev: as systemd-udevd.service"),
    ("systemd-udev-trigger.service", "udev: as systemd-udevd.service"),
    ("systemd-udev-settle.service", "udev: as systemd-udevd.service"),
    ("systemd-modules-load.service", "kernel modules are the host's (no CAP_SYS_MODULE in a guest)"),
    ("kmod-static-nodes.service", "device nodes for modules: the host's"),
    ("systemd-timesyncd.service", "the clock is the host's (no CAP_SYS_TIME in a guest)"),
    ("systemd-time-wait-sync.service", "waits for systemd-timesyncd, which a guest does not run"),
    ("hwclock.service", "the hardware clock is the host's"),
    ("getty@tty1.service", "a guest has no virtual consoles (its console is /dev/console)"),
    ("getty@tty2.service", "no virtual consoles"),
    ("getty@tty3.service", "no virtual consoles"),
    ("getty@tty4.service", "no virtual consoles"),
    ("getty@tty5.service", "no virtual consoles"),
    ("getty@tty6.service", "no virtual consoles"),
    ("networking.service", "ifupdown would configure the host's interfaces; the guest's addresses are set by vserver (interfaces/)"),
    ("ifupdown-pre.service", "ifupdown: as networking.service"),
    ("systemd-remount-fs.service", "remounting / is the host's business (mount(2) is refused in a guest)"),
    ("systemd-sysctl.service", "/proc/sys is read-only in a guest; settings are the host's"),
    ("systemd-binfmt.service", "binfmt_misc is host-wide"),
    ("proc-sys-fs-binfmt_misc.automount", "binfmt_misc is host-wide"),
    ("proc-sys-fs-binfmt_misc.mount", "binfmt_misc is host-wide"),
    ("sys-kernel-config.mount", "kernel file systems are the host's"),
    ("sys-kernel-debug.mount", "kernel file systems are the host's"),
    ("sys-kernel-tracing.mount", "kernel file systems are the host's"),
    ("sys-fs-fuse-connections.mount", "kernel file systems are the host's"),
    ("dev-hugepages.mount", "kernel file systems are the host's"),
    ("systemd-pstore.service", "the kernel's crash store (pstore) is the host's"),
    ("fstrim.timer", "trimming the host's filesystems is the host's job (FITRIM needs CAP_SYS_ADMIN)"),
    ("fstrim.service", "as fstrim.timer"),
];

/// sysv init scripts a guest does without (S links become K links).
pub const SYSV_DISABLED: &[(&str, &str)] = &[
    ("hwclock.sh", "the hardware clock is the host's"),
    ("udev", "devices are the host's; the guest's /dev is made by vserver at start"),
    ("kmod", "kernel modules are the host's"),
    ("networking", "ifupdown would configure the host's interfaces; the guest's addresses are set by vserver"),
    ("hostname.sh", "the guest's name is set by vserver (uts/nodename)"),
    ("mountkernfs.sh", "/proc, /sys and /run are mounted by vserver before the guest's init"),
    ("mountdevsubfs.sh", "/dev and /dev/pts are mounted by vserver"),
    ("mount-configfs", "kernel file systems are the host's"),
    ("checkroot.sh", "checking and remounting / is the host's business"),
    ("checkfs.sh", "checking file systems is the host's business"),
    ("mountall.sh", "the guest's mounts are vserver's (its fstab configuration)"),
    ("mountnfs.sh", "the guest's mounts are vserver's (fstab, fstab.remote)"),
    ("brightness", "the backlight is the host's"),
    ("procps", "/proc/sys is read-only in a guest; settings are the host's"),
    ("keyboard-setup.sh", "the console keyboard is the host's"),
    ("console-setup.sh", "the console is the host's"),
];

/// Directories whose content is one boot's run state, not copied into
/// clones and emptied in templates.
pub const STALE_DIRS: &[&str] = &["run", "var/run", "var/lock", "tmp"];

/// Files that identify one machine, removed from clones and templates (the
/// guest makes new ones; machine-id and SSH host keys are made here).
pub const MACHINE_STATE: &[(&str, &str)] = &[
    ("var/lib/systemd/random-seed", "the seed of the source's random pool"),
    ("var/lib/systemd/credential.secret", "systemd's per-machine key for encrypted credentials"),
];

/// util-vserver copies these from `.defaults/files/` into every new guest.
const DEFAULT_FILES: &[&str] = &["nsswitch.conf", "krb5.conf", "krb.conf", "krb.realms", "ldap.conf", "localtime"];

/// The guest's name and addresses, for /etc/hostname and /etc/hosts.
#[derive(Debug, Clone)]
pub struct Identity {
    pub hostname: String,
    pub addresses: Vec<IpAddr>,
}

/// What to do to a tree.
pub struct Plan<'a> {
    pub identity: &'a Identity,
    /// `<confdir>/.defaults` (util-vserver's `files/` there).
    pub defaults: &'a Path,
    /// A fresh /etc/machine-id.
    pub machine_id: bool,
    /// The tree came from another machine: new SSH host keys, its
    /// per-machine state and stale run files gone.
    pub new_machine: bool,
    /// Mask and disable what cannot work in a guest.
    pub guest_fit: bool,
}

/// Applies `plan`; what the admin should know goes to `notes`.
pub fn personalise(tree: &GuestTree, plan: &Plan, notes: &mut Vec<String>) -> Result<(), BuildError> {
    let id = plan.identity;
    let old_name = tree.read(Path::new("etc/hostname"), 4096)?.map(|b| String::from_utf8_lossy(&b).trim().to_string());
    tree.write(Path::new("etc/hostname"), format!("{}\n", id.hostname).as_bytes(), Owner::ROOT_FILE)?;
    let old_hosts = tree.read(Path::new("etc/hosts"), 1 << 20)?.unwrap_or_default();
    let hosts = hosts_file(id, &old_hosts, old_name.as_deref(), plan.defaults)?;
    tree.write(Path::new("etc/hosts"), hosts.as_bytes(), Owner::ROOT_FILE)?;
    let resolv = super::resolv::guest_resolv_conf(plan.defaults, notes)?;
    tree.write(Path::new("etc/resolv.conf"), resolv.as_bytes(), Owner::ROOT_FILE)?;
    for f in DEFAULT_FILES {
        let src = plan.defaults.join("files").join(f);
        if let Some(content) = read_host_file(&src)? {
            tree.write(&Path::new("etc").join(f), &content, Owner::ROOT_FILE)?;
        }
    }
    tree.symlink(Path::new("etc/mtab"), "../proc/self/mounts")?;
    if plan.machine_id {
        new_machine_id(tree)?;
    }
    if plan.new_machine {
        for (rel, _why) in MACHINE_STATE {
            tree.remove(Path::new(rel))?;
        }
        super::sshkeys::renew_host_keys(tree, &id.hostname, notes)?;
    }
    if plan.guest_fit {
        fit_for_a_guest(tree, notes)?;
    }
    Ok(())
}

/// A fresh random id; D-Bus's copy becomes a link to it (as Debian makes it).
fn new_machine_id(tree: &GuestTree) -> Result<(), BuildError> {
    let mut raw = [0u8; 16];
    let want = raw.len();
    let short_read = |n| if n == want { Ok(()) } else { Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)) };
    crate::sys::misc::getrandom(&mut raw).and_then(short_read).doing(|| "getrandom for /etc/machine-id".to_string())?;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    tree.write(Path::new("etc/machine-id"), format!("{hex}\n").as_bytes(), Owner { mode: 0o444, ..Owner::ROOT_FILE })?;
    let dbus = Path::new("var/lib/dbus/machine-id");
    if tree.stat(dbus)?.is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG) {
        tree.symlink(dbus, "/etc/machine-id")?;
    }
    Ok(())
}

/// /etc/hosts: localhost, the guest's addresses with its name, and the
/// lines of an existing file that name neither localhost nor the old name.
fn hosts_file(id: &Identity, old: &[u8], old_name: Option<&str>, defaults: &Path) -> Result<String, BuildError> {
    let short = id.hostname.split('.').next().unwrap_or(&id.hostname);
    let names = if short == id.hostname { id.hostname.clone() } else { format!("{} {short}", id.hostname) };
    let mut out = match read_host_file(&defaults.join("files/hosts"))? {
        Some(base) => String::from_utf8_lossy(&base).into_owned(),
        None if id.addresses.is_empty() => format!("127.0.0.1\tlocalhost {names}\n"),
        None => "127.0.0.1\tlocalhost\n".to_string(),
    };
    for a in &id.addresses {
        out.push_str(&format!("{a}\t{names}\n"));
    }
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
    let old_short = old_name.map(|n| n.split('.').next().unwrap_or(n).to_string());
    let old = String::from_utf8_lossy(old);
    let kept: Vec<&str> = old
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| keep_host_line(l, id, old_name, old_short.as_deref()))
        .collect();
    if !kept.is_empty() {
        out.push_str("# kept from the tree's earlier /etc/hosts\n");
        for l in kept {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

fn keep_host_line(line: &str, id: &Identity, old_name: Option<&str>, old_short: Option<&str>) -> bool {
    let mut words = line.split_whitespace();
    let Some(addr) = words.next().and_then(|a| a.parse::<IpAddr>().ok()) else { return false };
    let standard = addr.is_loopback()
        || matches!(addr, IpAddr::V6(v6) if v6.segments()[0] & 0xff00 == 0xff00 || v6.segments()[0] == 0xfe00)
        || id.addresses.contains(&addr);
    let names: Vec<&str> = words.take_while(|w| !w.starts_with('#')).collect();
    let mentions_old = names.iter().any(|n| Some(*n) == old_name || Some(*n) == old_short || *n == id.hostname);
    !standard && !mentions_old
}

/// A host file (configuration), or None when it does not exist.
fn read_host_file(path: &Path) -> Result<Option<Vec<u8>>, BuildError> {
    match std::fs::read(path) {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).doing(|| format!("reading {}", path.display())),
    }
}

/// Masks, disabled scripts and commented-out gettys, for whichever init
/// systems the tree has.
fn fit_for_a_guest(tree: &GuestTree, notes: &mut Vec<String>) -> io::Result<()> {
    let has_systemd = tree.stat(Path::new("lib/systemd/systemd"))?.is_some() || tree.stat(Path::new("usr/lib/systemd/systemd"))?.is_some();
    if has_systemd {
        for (unit, _why) in SYSTEMD_MASKS {
            let rel = Path::new("etc/systemd/system").join(unit);
            match tree.stat(&rel)? {
                Some(st) if st.st_mode & libc::S_IFMT != libc::S_IFLNK => {
                    notes.push(format!("/{} is the admin's own unit file; left unmasked", rel.display()))
                }
                _ => tree.symlink(&rel, "/dev/null")?,
            }
        }
    }
    for level in ["S", "2", "3", "4", "5"] {
        let dir = Path::new("etc").join(format!("rc{level}.d"));
        for name in tree.list(&dir)? {
            let name = name.to_string_lossy().into_owned();
            let Some(script) = start_link_script(&name) else { continue };
            if SYSV_DISABLED.iter().any(|(s, _)| *s == script) {
                tree.rename_in(&dir, name.as_ref(), format!("K{}", &name[1..]).as_ref())?;
            }
        }
    }
    // Nor do they run at halt or reboot (saving the hardware clock, taking
    // the host's interfaces down). Their K links in rc2-5 stay, so an
    // upgrade's `update-rc.d defaults` finds links and adds none.
    for level in ["0", "6"] {
        let dir = Path::new("etc").join(format!("rc{level}.d"));
        for name in tree.list(&dir)? {
            let name = name.to_string_lossy().into_owned();
            let Some(script) = link_script(&name, 'K') else { continue };
            if SYSV_DISABLED.iter().any(|(s, _)| *s == script) {
                tree.remove(&dir.join(&name))?;
            }
        }
    }
    comment_out_gettys(tree)
}

/// `S01udev` -> `udev`.
fn start_link_script(name: &str) -> Option<&str> {
    link_script(name, 'S')
}

/// `K01hwclock.sh` -> `hwclock.sh` for kind 'K'.
fn link_script(name: &str, kind: char) -> Option<&str> {
    let rest = name.strip_prefix(kind)?;
    (rest.len() > 2 && rest.as_bytes()[..2].iter().all(u8::is_ascii_digit)).then(|| &rest[2..])
}

/// sysvinit's gettys on tty1-6 (a console getty stays).
fn comment_out_gettys(tree: &GuestTree) -> io::Result<()> {
    let rel = Path::new("etc/inittab");
    let Some(old) = tree.read(rel, 1 << 20)? else { return Ok(()) };
    let old = String::from_utf8_lossy(&old);
    let mut changed = false;
    let new: String = old
        .lines()
        .map(|l| {
            let vt = (1..=6).any(|n| l.split_whitespace().any(|w| w == format!("tty{n}")));
            if !l.trim_start().starts_with('#') && l.contains("getty") && vt {
                changed = true;
                format!("#{l}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    if changed {
        let st = tree.stat(rel)?.expect("just read");
        tree.write(rel, new.as_bytes(), Owner { uid: st.st_uid, gid: st.st_gid, mode: st.st_mode & 0o7777 })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_names_the_guest_and_keeps_foreign_lines() {
        let id = Identity { hostname: "web2.example.org".into(), addresses: vec!["192.0.2.7".parse().unwrap()] };
        let old = b"127.0.0.1 localhost\n192.0.2.5 web1.example.org web1\n10.1.1.1 db # the database\n::1 localhost\n";
        let dir = crate::config::parse::tests::tempdir();
        let out = hosts_file(&id, old, Some("web1.example.org"), &dir).unwrap();
        assert!(out.contains("192.0.2.7\tweb2.example.org web2\n"), "{out}");
        assert!(out.contains("10.1.1.1 db"), "{out}");
        assert!(!out.contains("web1"), "{out}");
        let id = Identity { hostname: "lone".into(), addresses: vec![] };
        assert!(hosts_file(&id, b"", None, &dir).unwrap().starts_with("127.0.0.1\tlocalhost lone\n"));
    }

    #[test]
    fn start_links_name_their_script() {
        assert_eq!(start_link_script("S01hwclock.sh"), Some("hwclock.sh"));
        assert_eq!(start_link_script("K01udev"), None);
        assert_eq!(start_link_script("README"), None);
    }
}
