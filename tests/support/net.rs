//! Helpers of the network-context tests: a python3 socket probe run inside
//! `chbind` (and on the host as the other end), and checks of what a run
//! left behind. Only 127.0.0.0/8 and ::1 are used.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::{bin, require, require_root};

/// The probe. Every subcommand prints one JSON object per line.
///
/// ```text
///   bind FAMILY ADDR [freebind|noport|dualstack]  -> {"name": [addr, port]} | {"errno": "E..."}
///   connect ADDR PORT                       -> {"name": .., "peer": .., "data": ..}
///   sendto ADDR PORT                        -> {"name": ..}
///   listen ADDR|unbound|dualstack [N]       -> {"port": P, "name": ..} then {"peer": .., "local": ..} per accept
///   recvfrom ADDR                           -> {"port": P} then {"from": ..}
///   own-localhost NAME PORT                 -> listen on 127.0.0.1:PORT, connect to it, report
///   nginx                                   -> Debian nginx's default listens: 0.0.0.0:P and [::]:P
///                                              with IPV6_V6ONLY; then a client to [::1]:P -> names
/// ```
/// `bind ... v6only` sets IPV6_V6ONLY before binding.
pub const PROBE: &str = r#"
import errno, json, socket, sys, threading
def out(**kw):
    print(json.dumps(kw), flush=True)
def fam(a):
    return socket.AF_INET6 if ":" in a else socket.AF_INET
def err(e):
    out(errno="ETIMEDOUT" if isinstance(e, TimeoutError) and e.errno is None else errno.errorcode.get(e.errno, str(e.errno)))
cmd, args = sys.argv[1], sys.argv[2:]
try:
    if cmd == "bind":
        s = socket.socket(fam(args[0]))
        opt = args[1] if len(args) > 1 else ""
        if opt == "freebind": s.setsockopt(socket.SOL_IP, 15, 1)
        if opt == "noport": s.setsockopt(socket.SOL_IP, 24, 1)
        if opt == "dualstack": s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if opt == "v6only": s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((args[0], 0))
        out(name=s.getsockname()[:2])
    elif cmd == "connect":
        s = socket.socket(fam(args[0])); s.settimeout(3)
        s.connect((args[0], int(args[1])))
        out(name=s.getsockname()[:2], peer=s.getpeername()[:2], data=s.recv(200).decode())
    elif cmd == "sendto":
        s = socket.socket(fam(args[0]), socket.SOCK_DGRAM)
        s.sendto(b"probe", (args[0], int(args[1])))
        out(name=s.getsockname()[:2])
    elif cmd == "listen":
        n = int(args[1]) if len(args) > 1 else 1
        if args[0] == "unbound":
            s = socket.socket()
        elif args[0] == "dualstack":
            s = socket.socket(socket.AF_INET6)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind(("::", 0))
        else:
            s = socket.socket(fam(args[0])); s.bind((args[0], 0))
        s.listen(16)
        out(port=s.getsockname()[1], name=s.getsockname()[:2])
        s.settimeout(120)  # a slow machine (a TCG VM) runs other probes first
        for _ in range(n):
            c, a = s.accept()
            c.sendall(b"hello")
            out(peer=a[:2], local=c.getsockname()[:2])
            c.close()
    elif cmd == "recvfrom":
        s = socket.socket(fam(args[0]), socket.SOCK_DGRAM); s.bind((args[0], 0)); s.settimeout(120)
        out(port=s.getsockname()[1])
        data, a = s.recvfrom(100)
        out(**{"from": a[:2]})
    elif cmd == "own-localhost":
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(args[1]))); s.listen(4)
        def serve():
            c, a = s.accept(); c.sendall(args[0].encode()); c.close()
        t = threading.Thread(target=serve); t.start()
        c = socket.socket(); c.settimeout(3); c.connect(("127.0.0.1", int(args[1])))
        out(listen=s.getsockname()[:2], name=c.getsockname()[:2], peer=c.getpeername()[:2], data=c.recv(100).decode())
        t.join()
    elif cmd == "nginx":
        s4 = socket.socket(); s4.bind(("0.0.0.0", 0)); s4.listen(4)
        port = s4.getsockname()[1]
        s6 = socket.socket(socket.AF_INET6); s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s6.bind(("::", port)); s6.listen(4)
        c = socket.socket(socket.AF_INET6); c.settimeout(3); c.connect(("::1", port))
        a, peer = s6.accept()
        out(v4=s4.getsockname()[:2], v6=s6.getsockname()[:2], client=c.getsockname()[:2], peer=peer[:2])
    else:
        sys.exit("unknown probe command " + cmd)
except OSError as e:
    err(e)
"#;

/// Preconditions of every network test: root, python3 and a cgroup2 mount.
pub fn require_net() -> bool {
    require_root()
        && require(Command::new("python3").arg("-c").arg("pass").status().is_ok_and(|s| s.success()), "python3")
        && require(cgroup2_root().is_some(), "a cgroup2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}

pub fn cgroup2_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.procs").exists() && p.join("cgroup.controllers").exists())
}

/// The probe, written next to the test binaries (a build artifact, so
/// nothing is left in /tmp).
pub fn probe_path() -> PathBuf {
    let p = crate::bin_dir().join("vs-net-probe.py");
    if std::fs::read_to_string(&p).ok().as_deref() != Some(PROBE) {
        let tmp = p.with_extension(format!("tmp{}", crate::unique()));
        std::fs::write(&tmp, PROBE).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }
    p
}

/// `chbind ARGS -- python3 probe CMD...`
pub fn chbind_probe(chbind_args: &[&str], probe_args: &[&str]) -> Command {
    let mut c = Command::new(bin("chbind"));
    c.args(chbind_args).arg("--").arg("python3").arg(probe_path()).args(probe_args);
    c
}

/// The probe on the host, outside any context.
pub fn host_probe(probe_args: &[&str]) -> Command {
    let mut c = Command::new("python3");
    c.arg(probe_path()).args(probe_args);
    c
}

/// Runs to the end and parses the single JSON line of output.
pub fn json_of(cmd: &mut Command) -> serde_json::Value {
    let out = crate::run(cmd);
    let text = crate::stdout(&out);
    let line = text.lines().last().unwrap_or_else(|| panic!("no output: {}", crate::describe(&out)));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {}", crate::describe(&out)))
}

/// A probe running in the background whose JSON lines are read one by one;
/// killed on drop.
pub struct Background {
    child: Child,
    lines: BufReader<ChildStdout>,
}

impl Background {
    pub fn start(mut cmd: Command) -> Background {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start probe");
        let lines = BufReader::new(child.stdout.take().unwrap());
        Background { child, lines }
    }

    #[allow(clippy::should_implement_trait)] // one value per call, never ending: not an Iterator
    pub fn next(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.lines.read_line(&mut line).expect("read probe output");
        assert!(!line.is_empty(), "probe ended without output");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }
}

/// SIGTERM first: chbind passes it on and removes its cgroup and programs
/// (SIGKILL would leave them for the next chbind to clean up).
impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill on the pid of a child we have not reaped yet.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            for _ in 0..50 {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `[addr, port]` of a probe field.
pub fn addr_of(v: &serde_json::Value, field: &str) -> String {
    v[field][0].as_str().unwrap_or_else(|| panic!("no {field} in {v}")).to_string()
}

pub fn port_of(v: &serde_json::Value) -> String {
    v["port"].as_u64().unwrap_or_else(|| panic!("no port in {v}")).to_string()
}

/// Ids of the BPF programs attached to a cgroup directory (bpftool).
pub fn attached_prog_ids(cgroup: &Path) -> Vec<u64> {
    let out = crate::run(Command::new("bpftool").args(["-j", "cgroup", "show"]).arg(cgroup));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    v.as_array().into_iter().flatten().filter_map(|p| p["id"].as_u64()).collect()
}

/// Ids of every BPF program loaded on the host (bpftool).
pub fn loaded_prog_ids() -> Vec<u64> {
    let out = crate::run(Command::new("bpftool").args(["-j", "prog", "show"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bpftool -j prog show");
    v.as_array().into_iter().flatten().filter_map(|p| p["id"].as_u64()).collect()
}

pub fn require_bpftool() -> bool {
    require(Command::new("bpftool").arg("version").output().is_ok_and(|o| o.status.success()), "bpftool (apt-get install bpftool)")
}
