//! Every file util-vserver reads in a guest's configuration directory and in
//! `.defaults`, and what it does here: the one table behind the README's
//! configuration table (a test keeps the two equal) and behind the warning
//! `start` prints for a file nobody knows.
//!
//! Most files are honoured by the parsers in this module's siblings; the
//! table also lists those whose mere presence is refused at start (a
//! setting a stock kernel cannot give, or that would weaken the guest's
//! confinement), and those accepted because here they are always so.

use std::fs;
use std::path::{Path, PathBuf};

/// What a file does here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Read and honoured (value errors and content-dependent refusals are
    /// the parsers' business).
    Honoured,
    /// Accepted: here it is always so, or it has no effect to honour.
    AlwaysSo,
    /// Accepted with a warning at start: it changes nothing here.
    Warned,
    /// `start` refuses the guest while the file exists.
    Refused,
    /// Read by another command (`build`, `vhashify`, disk limits), not by start.
    OtherTool,
}

/// Where a file lives: in a guest's directory, in `.defaults`, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Guest,
    Defaults,
    Both,
}

#[derive(Debug, Clone, Copy)]
pub struct KnownFile {
    /// Path below the guest's (or `.defaults`) directory; a component may
    /// hold `*` (any text) and `{a,b}` (alternatives); a last `**` matches
    /// one or more further components.
    pub pattern: &'static str,
    pub place: Place,
    pub treatment: Treatment,
    /// What it does here (the README table's right column).
    pub meaning: &'static str,
}

use Place::{Both, Defaults, Guest};
use Treatment::{AlwaysSo, Honoured, OtherTool, Refused, Warned};

const fn f(pattern: &'static str, place: Place, treatment: Treatment, meaning: &'static str) -> KnownFile {
    KnownFile { pattern, place, treatment, meaning }
}

/// The scriptlet stages, in util-vserver's order.
pub const SCRIPT_STAGES: &str = "{initialize,prepre-start,pre-start,post-start,pre-stop,post-stop,postpost-stop}";

/// The table. Order: as the README shows it.
pub const KNOWN_FILES: &[KnownFile] = &[
    f("context", Both, Honoured, "the xid, 2–49151; two running guests never share one; `vserver XID COMMAND` names a guest by it"),
    f("name", Guest, Honoured, "display name (default: the directory name)"),
    f("vdir", Guest, Honoured, "the guest root: a symlink, or a file naming it (default `<vdirbase>/NAME`)"),
    f("disabled", Guest, Honoured, "`start` refuses the guest; `--all-marked` skips it"),
    f("uts/{nodename,domainname}", Both, Honoured, "host and domain name in the guest's uts namespace (older names `hostname`, `domainname` are read too, with a warning)"),
    f("{hostname,domainname}", Guest, Honoured, "util-vserver's old names of `uts/nodename` and `uts/domainname`; read when those are missing, with a warning"),
    f("uts/machine", Both, Honoured, "only `i686`-style values with `personality` linux32 (a stock kernel derives `uname -m` from the personality); other values refused"),
    f("uts/{sysname,release,version}", Both, Honoured, "accepted when equal to the host's; other values refused (a stock kernel has no per-namespace kernel name, release or version)"),
    f("uts/context", Both, AlwaysSo, "set internally by util-vserver, never by the admin; not read"),
    f("personality", Both, Honoured, "first line `linux` or `linux32` (`uname -m` says i686), then personality flags one per line (`ADDR_NO_RANDOMIZE`, `UNAME26`, ...)"),
    f("bcapabilities", Both, Honoured, "edits of the bounding set, one name per line (`CAP_X`, `X`, any case); `~NAME` or `!NAME` removes"),
    f("ccapabilities", Both, Honoured, "context capabilities: `RAW_ICMP` (also `ICMP`, `PING`) lets the guest open ICMP datagram (ping) sockets; `SET_LEASE` lets it take file leases (`fcntl(F_SETLEASE)`, refused by the seccomp filter otherwise: a lease on a unified file would block every other guest's open of it); the others would need CAP_SYS_ADMIN or CAP_SYS_RESOURCE on a stock kernel and are refused"),
    f("ncapabilities", Both, Honoured, "network capabilities: `RAW_ICMP` as in `ccapabilities`; `TUN_CREATE` refused (creating tun devices needs CAP_NET_ADMIN on the host's network)"),
    f("capabilities", Both, Refused, "the Linux 2.4 capability list; use `bcapabilities`"),
    f("{cflags,flags}", Both, Honoured, "`VIRT_UPTIME` (also `default`: a time namespace, uptime starts near 0), `HIDE_NETIF` (also `secure`: own network namespace), `IO_URING`, `SCHED_HARD`, `SHARED_ABSTRACT_UNIX` (the guest's abstract unix sockets share the host's namespace: needed on kernels without Landlock scoping, before 6.12); flags always in effect here (`namespace`, `private`, `fakeinit`, `hideinfo`, `state_*`, `info_*`, ...) are accepted; flags with no stock-kernel mechanism (`virt_mem`, `virt_time`, `sched_pause`, `reboot_kill`, ...) are refused"),
    f("nflags", Both, Honoured, "`HIDE_NETIF` gives the guest a network namespace of its own; `lback_remap`, `lback_allow`, `single_ip` and the state/info flags are always so; `hide_lback` only with `HIDE_NETIF`"),
    f("umask", Both, Honoured, "namespaces a guest may unshare: `~NAME` lines are accepted (a guest never may), lines that allow one are refused (unshare needs CAP_SYS_ADMIN and the seccomp filter refuses it)"),
    f("namespaces", Both, Honoured, "extra namespaces: `net` (own network namespace with a veth pair), `time`, `cgroup`, `user` (guest ids 0–65535 are host ids xid·65536 + n)"),
    f("spaces/net", Both, Honoured, "empty: a network namespace of its own (as `namespaces` net); `0`: none; the xid of another guest (sharing its namespace) is refused"),
    f("spaces/pid", Both, AlwaysSo, "every guest has its own pid namespace"),
    f("spaces/mask", Both, Refused, "raw namespace masks: use `namespaces`"),
    f("namespace", Both, AlwaysSo, "every guest has its own mount namespace"),
    f("nonamespace", Both, Refused, "a guest always has its own mount namespace (pivot_root needs it; without one the host's mounts would be the guest's)"),
    f("namespace-cleanup", Both, AlwaysSo, "the host's mounts are always gone from a guest (pivot_root, old root detached)"),
    f("nonamespace-cleanup", Both, Refused, "the host's mounts are always detached from a guest; bind what it needs with `fstab`"),
    f("namespace-cleanup-skip", Both, Refused, "no host path stays visible in a guest; bind what it needs with `fstab`"),
    f("context.dynamic", Defaults, OtherTool, "`build` (dynamic xids do not exist here: refused there)"),
    f("context.next", Defaults, OtherTool, "`build`: the xid of the next new guest"),
    f("ncontext", Both, Honoured, "accepted when equal to `context`; a network context shared with other guests is refused"),
    f("noncontext", Both, Honoured, "with a network namespace of its own: accepted (no IP set inside it anyway); without one refused, say `interfaces/unrestricted`"),
    f("tag", Both, Honoured, "accepted when equal to `context` (files are tagged with the xid for disk limits); other values refused"),
    f("interfaces/*/{ip,prefix,mask,dev,name,nodev,disabled}", Guest, Honoured, "the IP set: one directory per address; `mask` (255.255.255.0) instead of `prefix`; `dev` adds the address to that host device at start (`nodev`: only in the set); `name` labels it `DEV:NAME`"),
    f("interfaces/*/{bcast,scope,peer,down}", Guest, Honoured, "passed on to the address as `ip addr add ... broadcast/scope/peer` does; `down`: the device is not set up"),
    f("interfaces/*/only_ip", Guest, Honoured, "util-vserver's old name of `nodev`, with a warning"),
    f("interfaces/{dev,prefix,mask,scope,bcast}", Guest, Honoured, "guest-wide defaults for every `interfaces/N/` that lacks its own"),
    f("interfaces/lback", Guest, Honoured, "the guest's own loopback address (default `127.<xid/256>.<xid%256>.1`; 127.0.0.1 turns remapping off)"),
    f("interfaces/allow-loopback", Guest, Honoured, "loopback addresses outside the set (the host's 127.0.0.53, ...) the guest may connect and send to, one per line; every other loopback address but its own is out of its reach"),
    f("interfaces/unrestricted", Guest, Honoured, "the guest shares the host network with no IP set (only without `interfaces/N/`)"),
    f("interfaces/{vlandev,novlandev}", Both, Honoured, "refused where a VLAN device would have to be made (`dev` like eth0.5): create it on the host and use it"),
    f("interfaces/*/{vlandev,novlandev}", Guest, Honoured, "as `interfaces/vlandev`, for one address"),
    f("interfaces/*/{tun,tap,nocsum,shared,uid,gid,linktype}", Guest, Refused, "a tun/tap device owned by a guest on the host's network would let it inject packets past its IP set; give it its own network namespace"),
    f("interfaces/*/{indirect,mac,extip}", Guest, Refused, "util-vserver's dummy-interface mode needs kernel module loading and NAT rules the host admin sets up"),
    f("rlimits/*", Both, Honoured, "resource limits `RES[.hard|.soft|.min]`; a plain `RES` sets soft and hard; `rss` and `nproc` are the whole guest's (cgroup), the rest per process (see `vlimit`)"),
    f("ulimits/*", Both, Honoured, "util-vserver's exec-ulimit: `RES[.hard|.soft]` (`inf`, `K`/`M` suffixes) set before the guest's init; `rlimits/` wins where both set one; `ulimits/nproc` is the guest's process limit as `rlimits/nproc`; `ulimits/rss` refused (Linux ignores RLIMIT_RSS; use `rlimits/rss`)"),
    f("nice", Both, Honoured, "the guest's processes start at this nice level (-20–19); `exec` and `enter` get it too"),
    f("ionice/{class,priority}", Both, Honoured, "the guest's I/O scheduling class (1 realtime, 2 best-effort, 3 idle, or the name) and priority (0–7), inherited by every process"),
    f("badness", Both, Honoured, "the guest's OOM bias: `oom_score_adj` of its processes, -1000–1000"),
    f("schedule", Both, Honoured, "the older six-line token bucket (fill-rate, interval, tokens, tokens-min, tokens-max, priority-bias), read as `sched/` when that is missing"),
    f("sched/{fill-rate,interval,tokens,tokens-max}", Both, Honoured, "the CPU token bucket as CFS bandwidth (see `vlimit`)"),
    f("sched/{tokens-min,priority-bias}", Both, Honoured, "accepted when they change nothing under CFS (`tokens-min` at most `fill-rate`, `priority-bias` 0); other values refused"),
    f("sched/{idle-time,fill-rate2,interval2}", Both, Refused, "CFS has no idle-time skipping for a context"),
    f("sched/*/**", Both, Refused, "per-CPU buckets: CFS bandwidth is one for the whole guest"),
    f("cpuset/{cpus,mems}", Both, Honoured, "the guest's cpuset (CPUs and memory nodes)"),
    f("cpuset/name", Both, AlwaysSo, "every guest's cpuset is its own cgroup"),
    f("cpuset/{cpu_exclusive,cpus_exclusive,mem_exclusive,mems_exclusive}", Both, Honoured, "`0` accepted; `1` refused (an exclusive cpuset takes the CPUs from the host and every other guest)"),
    f("cpuset/virtualized", Both, Honoured, "`0` accepted; `1` refused (no stock-kernel mechanism shows a guest only its cpuset's CPUs)"),
    f("cpuset/nocreate", Both, Refused, "every guest's cpuset is its own cgroup; put the CPUs in `cpuset/cpus`"),
    f("cgroup/*", Both, Honoured, "written into the guest's cgroup `vserver/NAME` before its first process runs (the guest's own directory, or else `.defaults/cgroup/`); cgroup v1 names are translated on v2-only hosts (`memory.limit_in_bytes` → `memory.max`, `cpu.shares` → `cpu.weight`, `blkio.*` → `io.*`, ...) and v2 names on v1; files that would open devices or move processes are refused"),
    f("cgroup/{mnt,subsys,inherit,base,per-ss}", Both, AlwaysSo, "where util-vserver mounts the cgroup hierarchies; here the layout is read from `/sys/fs/cgroup` and guests live under `vserver/`"),
    f("cgroup/name", Both, Honoured, "accepted when it is the guest's name; a cgroup shared by several guests is refused"),
    f("nocgroup", Guest, Honoured, "`.defaults/cgroup/` is not applied to this guest"),
    f("sysctl/*/{setting,value}", Both, Honoured, "set inside the guest's namespaces at start: uts (`kernel.hostname`, `kernel.domainname`), ipc (`kernel.shm*`, `kernel.msg*`, `kernel.sem`, `fs.mqueue.*`) and, with a network namespace of its own, `net.*`; host-wide settings are refused by name"),
    f("fstab", Both, Honoured, "`SOURCE TARGET TYPE OPTIONS`, mounted inside the guest root at start (`.defaults/fstab` when the guest has none)"),
    f("fstab.remote", Both, Honoured, "mounted after `fstab`, once the guest's network is up, from inside its network context"),
    f("fstab.local", Both, Honoured, "util-vserver's obsolete second fstab: mounted after `fstab`, with a warning"),
    f("apps/init/style", Both, Honoured, "`plain` (`/sbin/init` or `cmd.start` is pid 1), `sysv` (default: a built-in pid 1 with sysvinit's behaviour runs `cmd.start` or `/etc/init.d/rc RUNLEVEL`) or `systemd` (the guest's own systemd as pid 1, systemd's container interface)"),
    f("apps/init/ready-timeout", Both, Honoured, "seconds `start` waits for a `systemd` guest's `READY=1` before it kills the guest and fails (default 120)"),
    f("apps/init/{cmd.start,cmd.stop}", Both, Honoured, "one argument per line"),
    f("apps/init/{runlevel,runlevel.start}", Both, Honoured, "the start runlevel (default 3; `runlevel.start` wins)"),
    f("apps/init/runlevel.stop", Both, Honoured, "the stop runlevel of style `sysv` (default 0)"),
    f("apps/init/killseq", Both, Honoured, "`SIGNAL [WAIT SIGNAL]...` sent to every process of the guest at stop after its stop command (util-vserver: `15 5 9`)"),
    f("apps/init/cmd.prepare", Both, Honoured, "a host command run in the guest root before `pre-start` (util-vserver's init preparation)"),
    f("apps/init/{sync,cmd.start-sync,cmd.stop-sync}", Both, Honoured, "host commands: `cmd.start-sync` after the guest started (only with `sync`), `cmd.stop-sync` after its stop command"),
    f("apps/init/mark", Both, Honoured, "marks for `vserver --all-marked MARK start|stop`, one per line"),
    f("apps/init/depends", Both, Honoured, "guests `--all-marked ... start` starts first (and stops after this one)"),
    f("apps/init/environment", Both, Honoured, "`VAR=VALUE` lines: the environment of the guest's init"),
    f("apps/init/tty", Both, Honoured, "where `--all-marked` sends a guest's start and stop output (util-vserver's `--defaulttty`)"),
    f("apps/init/mtab", Both, Honoured, "the guest's initial `/etc/mtab` when it has an fstab, written at start unless `/etc/mtab` is a symlink (current distributions link it to /proc)"),
    f("init/mtab", Defaults, Honoured, "the initial `/etc/mtab` of guests without `apps/init/mtab`"),
    f("shell", Both, Honoured, "the shell of `vserver NAME enter` (default: bash, sh or csh, whichever the guest has)"),
    f("scripts/{initialize,prepre-start,pre-start,post-start,pre-stop,post-stop,postpost-stop}", Both, Honoured, "scriptlets run on the host with the stage and the guest's name as arguments (see \"Scriptlets\")"),
    f("scripts/{initialize,prepre-start,pre-start,post-start,pre-stop,post-stop,postpost-stop}.d/*", Both, Honoured, "more scriptlets of that stage, in sorted order"),
    f("apps/vdevmap/*/{device,open,create,remap,target}", Both, Honoured, "a host device for the guest: the node is made in its `/dev` and allowed by the device filters (`open`: read and write, `create`: mknod, `remap` + `target`: the node opens `target` instead)"),
    f("apps/vdevmap/*/flags", Both, Honoured, "accepted when 0; raw device-mapping flags are refused"),
    f("devices", Both, Honoured, "devices for the guest, one per line: `NAME[:PERM]` (a host node under /dev, made in the guest's /dev) or `c|b:MAJOR:MINOR[:PERM]` (allowed only); PERM of `r`, `w`, `m` (default `rw`)"),
    f("apps/vshelper/action", Both, Honoured, "`restart` (what a reboot inside does here) accepted; other actions refused"),
    f("apps/vshelper/{sync-timeout,disabled,debug,warning-disabled,logfile}", Both, AlwaysSo, "util-vserver's reboot helper; here the monitor handles a reboot or halt inside the guest itself"),
    f("apps/vshelper/{restart,halt,poweroff,swsusp,restart2}", Both, Refused, "per-event reboot helper scripts; a reboot restarts the guest, a halt stops it"),
    f("apps/{vshelper-methods,vshelper-delegate}/**", Both, AlwaysSo, "util-vserver's reboot helper methods and delegation; only an `action` other than restart (refused) would use them"),
    f("apps/vprocunhide/files", Defaults, AlwaysSo, "a guest sees its own /proc; only the entries listed in the README's security section are masked"),
    f("apps/vlogin/disable", Both, Warned, "`enter` always relays through a pty allocated inside the guest"),
    f("apps/pkgmgmt/**", Both, Warned, "util-vserver's external package management; the guest's own package manager is used"),
    f("apps/vunify/**", Both, OtherTool, "unification (see `vhashify`)"),
    f("apps/build/**", Defaults, OtherTool, "`build`: default options"),
    f("apps/debootstrap/**", Defaults, OtherTool, "`build -m debootstrap`: the mirror"),
    f("files/**", Defaults, OtherTool, "`build`: files copied into new guests"),
    f("dlimits/**", Both, Honoured, "`dlimits/N/{directory,space_total,inodes_total,reserved}` (all four; `dlimits/N/disabled` skips one): disk limits as project quotas with the xid as project id, set at start, refused where the filesystem has no project quota (see \"Disk limits\", `vdlimit`)"),
    f("{cache,cachebase}", Both, AlwaysSo, "util-vserver's cache of disk-limit figures; project quotas keep them in the filesystem"),
    f("{run,run.rev}", Both, AlwaysSo, "util-vserver's run-state links; the run state lives in the run dir (`--rundir`)"),
    f("vdirbase", Defaults, Honoured, "the base of guest roots"),
    f("netns", Both, Honoured, "an empty directory: a network namespace of its own (as `namespaces` net)"),
    f("netns/{name,shared}", Both, Refused, "named or shared network namespaces: here each guest's namespace is its own, with one veth pair, `vsXID` on the host, `eth0` inside"),
    f("netns/interfaces/**", Both, Refused, "custom veth pairs: here each guest's namespace gets one veth pair, `vsXID` on the host, `eth0` inside"),
    f("nonetns", Guest, Honoured, "`.defaults/netns` is not applied to this guest"),
    f("keepfds", Both, Refused, "no host descriptor may reach a guest"),
    f("legacy", Guest, Refused, "util-vserver's legacy (`NAME.conf`) configuration; convert it to this tree"),
    f("noisy", Both, AlwaysSo, "util-vserver's verbose mode; errors name what failed anyway"),
    f("styles/*", Defaults, AlwaysSo, "util-vserver's terminal colours"),
    f("README", Both, AlwaysSo, "documentation"),
];

/// Files under a guest's directory (or `.defaults`) that match no entry of
/// the table, each once; a directory nobody knows is named once, not its
/// contents. Symlinks are not followed (`vdir` points into the guest).
pub fn unknown_files(dir: &Path, place: Place) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dir, &mut Vec::new(), place, &mut out);
    out
}

fn walk(dir: &Path, rel: &mut Vec<String>, place: Place, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_backup(&name) {
            continue;
        }
        rel.push(name);
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if known(rel, place) {
            if is_dir && !is_subtree(rel, place) {
                walk(&entry.path(), rel, place, out);
            }
        } else if is_dir && is_prefix(rel, place) {
            walk(&entry.path(), rel, place, out);
        } else {
            out.push(entry.path());
        }
        rel.pop();
    }
}

/// Editor and package-manager leftovers, which util-vserver skips too.
fn is_backup(name: &str) -> bool {
    name.ends_with('~')
        || [".rpmsave", ".rpmnew", ".rpmorig", ".dpkg-old", ".dpkg-new", ".dpkg-dist", ".swp"].iter().any(|s| name.ends_with(s))
        || name.contains(".cfsaved")
}

fn applies(k: &KnownFile, place: Place) -> bool {
    k.place == Both || k.place == place
}

fn entries(place: Place) -> impl Iterator<Item = &'static KnownFile> {
    KNOWN_FILES.iter().filter(move |k| applies(k, place))
}

/// The entry that describes this path, if any.
pub fn lookup(rel: &[String], place: Place) -> Option<&'static KnownFile> {
    entries(place).find(|k| matches_all(&components(k.pattern), rel))
}

fn known(rel: &[String], place: Place) -> bool {
    lookup(rel, place).is_some()
}

/// Does a pattern end in `**` exactly at this directory or above (so its
/// contents are all known)?
fn is_subtree(rel: &[String], place: Place) -> bool {
    subtree_entry(rel, place).is_some()
}

fn subtree_entry(rel: &[String], place: Place) -> Option<&'static KnownFile> {
    entries(place).find(|k| {
        let p = components(k.pattern);
        p.last() == Some(&"**") && p.len() - 1 <= rel.len() && matches_all(&p[..p.len() - 1], &rel[..p.len() - 1])
    })
}

/// Is this directory on the way to a known file?
fn is_prefix(rel: &[String], place: Place) -> bool {
    entries(place).any(|k| {
        let p = components(k.pattern);
        p.len() > rel.len() && p[..rel.len()].iter().zip(rel).all(|(pat, name)| component_matches(pat, name))
    })
}

fn components(pattern: &str) -> Vec<&str> {
    // `{a/b,c}` never occurs: alternatives stay inside one component.
    pattern.split('/').collect()
}

fn matches_all(pattern: &[&str], rel: &[String]) -> bool {
    match (pattern.first(), rel.first()) {
        (Some(&"**"), Some(_)) => true,
        (Some(p), Some(n)) => component_matches(p, n) && matches_all(&pattern[1..], &rel[1..]),
        (None, None) => true,
        _ => false,
    }
}

/// One path component against `*`, `{a,b}` and literal text.
pub fn component_matches(pattern: &str, name: &str) -> bool {
    if pattern == "**" {
        return true;
    }
    if let Some(rest) = pattern.strip_prefix('*') {
        return (0..=name.len()).filter(|i| name.is_char_boundary(*i)).any(|i| component_matches(rest, &name[i..]));
    }
    if let Some(rest) = pattern.strip_prefix('{') {
        let Some((alts, after)) = rest.split_once('}') else { return pattern == name };
        return alts.split(',').any(|alt| name.strip_prefix(alt).is_some_and(|tail| component_matches(after, tail)));
    }
    match (pattern.chars().next(), name.chars().next()) {
        (Some(p), Some(n)) if p == n => component_matches(&pattern[p.len_utf8()..], &name[n.len_utf8()..]),
        (None, None) => true,
        _ => false,
    }
}

/// Files whose presence alone makes `start` refuse the guest, with the
/// reason, looked up in the guest's directory and in `.defaults`.
pub fn refused_files(guest_dir: &Path, defaults_dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    for (dir, place) in [(guest_dir, Guest), (defaults_dir, Defaults)] {
        collect_refused(dir, &mut Vec::new(), place, &mut out);
    }
    out
}

fn collect_refused(dir: &Path, rel: &mut Vec<String>, place: Place, out: &mut Vec<(PathBuf, &'static str)>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_backup(&name) {
            continue;
        }
        rel.push(name);
        match lookup(rel, place).or_else(|| subtree_entry(rel, place)) {
            Some(k) if k.treatment == Refused => out.push((entry.path(), k.meaning)),
            _ => {
                let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                if is_dir && (is_prefix(rel, place) || known(rel, place)) && !is_subtree(rel, place) {
                    collect_refused(&entry.path(), rel, place, out);
                }
            }
        }
        rel.pop();
    }
}

/// Files that are accepted with a warning, with the reason.
pub fn warned_files(guest_dir: &Path, defaults_dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    for (dir, place) in [(guest_dir, Guest), (defaults_dir, Defaults)] {
        for k in entries(place).filter(|k| k.treatment == Warned) {
            let top = k.pattern.split('/').take_while(|c| !c.contains(['*', '{'])).collect::<Vec<_>>().join("/");
            let p = dir.join(&top);
            if p.symlink_metadata().is_ok() {
                out.push((p, k.meaning));
            }
        }
    }
    out
}

/// The README's configuration table, rendered from [`KNOWN_FILES`].
pub fn readme_table() -> String {
    let mut out = String::from("| file | what it does here |\n| --- | --- |\n");
    for k in KNOWN_FILES {
        let place = match k.place {
            Guest => "",
            Defaults => " (`.defaults`)",
            Both => "",
        };
        let tag = match k.treatment {
            Honoured | AlwaysSo | OtherTool => "",
            Warned => "accepted with a warning: ",
            Refused => "**refused**: ",
        };
        out.push_str(&format!("| `{}`{place} | {tag}{} |\n", k.pattern.replace('|', "\\|"), k.meaning.replace('|', "\\|")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::tests::tempdir;

    fn rel(p: &str) -> Vec<String> {
        p.split('/').map(str::to_string).collect()
    }

    #[test]
    fn patterns_match_components() {
        assert!(component_matches("{a,bc}.d", "bc.d"));
        assert!(!component_matches("{a,bc}.d", "b.d"));
        assert!(component_matches("*", "anything"));
        assert!(component_matches("x*", "xyz"));
        assert!(!component_matches("x*", "yz"));
        assert!(lookup(&rel("interfaces/0/ip"), Guest).is_some());
        assert!(lookup(&rel("interfaces/0/mask"), Guest).is_some());
        assert!(lookup(&rel("scripts/pre-start.d/10-net"), Guest).is_some());
        assert!(lookup(&rel("scripts/pre-started"), Guest).is_none());
        assert!(lookup(&rel("apps/vunify/hash/x/y"), Guest).is_some());
        assert!(lookup(&rel("context.next"), Guest).is_none(), "context.next is a .defaults file");
        assert!(lookup(&rel("context.next"), Defaults).is_some());
        assert_eq!(lookup(&rel("nonamespace"), Guest).unwrap().treatment, Refused);
    }

    #[test]
    fn alternatives_stay_inside_one_component() {
        for k in KNOWN_FILES {
            for c in k.pattern.split('/') {
                assert_eq!(c.matches('{').count(), c.matches('}').count(), "{}: braces must not span a /", k.pattern);
            }
        }
        assert!(lookup(&rel("apps/init/mtab"), Guest).is_some());
        assert!(lookup(&rel("init/mtab"), Defaults).is_some());
        assert!(lookup(&rel("apps/vshelper-delegate/x"), Defaults).is_some());
    }

    #[test]
    fn unknown_files_are_named_once_and_backups_skipped() {
        let d = tempdir();
        for f in [
            "context",
            "interfaces/0/ip",
            "interfaces/0/colour",
            "scripts/pre-start",
            "mystery/a/b",
            "rlimits/nofile",
            "context~",
            "apps/init/mark",
        ] {
            let p = d.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "1\n").unwrap();
        }
        std::os::unix::fs::symlink("/", d.join("vdir")).unwrap();
        let unknown = unknown_files(&d, Guest);
        assert_eq!(unknown, vec![d.join("interfaces/0/colour"), d.join("mystery")]);
    }

    #[test]
    fn refused_files_name_file_and_reason() {
        let d = tempdir();
        let defaults = tempdir();
        fs::create_dir_all(d.join("interfaces/0")).unwrap();
        fs::write(d.join("interfaces/0/tun"), "").unwrap();
        fs::write(defaults.join("nonamespace"), "").unwrap();
        fs::write(d.join("context"), "5\n").unwrap();
        fs::create_dir_all(d.join("sched/0")).unwrap();
        fs::write(d.join("sched/0/fill-rate"), "1\n").unwrap();
        fs::write(d.join("sched/fill-rate"), "1\n").unwrap();
        let r = refused_files(&d, &defaults);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(r[1].0, d.join("sched/0"));
        let r: Vec<_> = r.into_iter().filter(|(p, _)| !p.starts_with(d.join("sched"))).collect();
        assert_eq!(r[0].0, d.join("interfaces/0/tun"));
        assert!(r[0].1.contains("tun/tap"));
        assert_eq!(r[1].0, defaults.join("nonamespace"));
    }

    #[test]
    fn every_pattern_is_in_the_readme_table() {
        let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
        let table = readme_table();
        assert!(
            readme.contains(&table),
            "README.md's configuration table differs from config/known.rs; put this table under \"The configuration tree\":\n\n{table}"
        );
    }
}
