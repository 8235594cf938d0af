//! cgroup-BPF socket hooks: what a guest's network context is made of. On
//! the live host a trivial program (`r0 = 1; exit`) of each kind a context
//! attaches is loaded with bpf(2) and closed again; a described host is
//! judged by the hook functions in its kallsyms. Either way the programs
//! need a cgroup2 mount to attach to.
//!
//! The loader is here, not borrowed from `net`, whose bpf module is private
//! to it; it is one command with one attribute layout.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use super::cgroups::CgroupSummary;
use super::kallsyms::{Evidence, Symbols};
use super::{Check, Status};

const BPF_PROG_LOAD: libc::c_int = 5;

// enum bpf_prog_type
const PROG_TYPE_CGROUP_SKB: u32 = 8;
const PROG_TYPE_CGROUP_SOCK: u32 = 9;
const PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
// enum bpf_attach_type
const ATTACH_INET_INGRESS: u32 = 0;
const ATTACH_INET4_BIND: u32 = 8;
const ATTACH_INET4_POST_BIND: u32 = 12;

struct Hook {
    what: &'static str,
    prog_type: u32,
    expected_attach_type: u32,
    /// The kernel function that runs programs of this kind.
    kernel_function: &'static str,
}

const HOOKS: &[Hook] = &[
    Hook {
        what: "sock_addr (bind/connect)",
        prog_type: PROG_TYPE_CGROUP_SOCK_ADDR,
        expected_attach_type: ATTACH_INET4_BIND,
        kernel_function: "__cgroup_bpf_run_filter_sock_addr",
    },
    Hook {
        what: "sock (post_bind)",
        prog_type: PROG_TYPE_CGROUP_SOCK,
        expected_attach_type: ATTACH_INET4_POST_BIND,
        kernel_function: "__cgroup_bpf_run_filter_sk",
    },
    Hook {
        what: "skb (packet filter)",
        prog_type: PROG_TYPE_CGROUP_SKB,
        expected_attach_type: ATTACH_INET_INGRESS,
        kernel_function: "__cgroup_bpf_run_filter_skb",
    },
];

const NEEDED_FOR: &str = "network contexts: a guest's IP set from interfaces/ and chbind; guests then start \
                          only with interfaces/unrestricted (sharing the host network unrestricted)";

pub fn check(cgroup: &CgroupSummary, symbols: Option<&Symbols>) -> Check {
    let make = |status, detail: String| Check::new("cgroup.bpf", status, detail, NEEDED_FOR, true);
    let Some(v2) = &cgroup.v2_mount else {
        return make(
            Status::Missing,
            format!(
                "no cgroup2 mount under {}: the socket hooks attach to cgroup2 directories only \
                 (mount one at {}/unified, or boot with systemd.unified_cgroup_hierarchy=1)",
                cgroup.root.display(),
                cgroup.root.display()
            ),
        );
    };
    let names: Vec<&str> = HOOKS.iter().map(|h| h.what).collect();
    match symbols {
        None => match HOOKS.iter().find_map(|h| load_trivial(h).err().map(|e| (h, e))) {
            None => make(Status::Ok, format!("loaded {} programs; they attach at {}", names.join(", "), v2.display())),
            Some((h, e)) if e.raw_os_error() == Some(libc::EPERM) => make(
                Status::Limited,
                format!("loading a {} program was refused ({e}): needs CAP_BPF and CAP_NET_ADMIN, run as root", h.what),
            ),
            Some((h, e)) => make(
                Status::Missing,
                format!(
                    "the kernel cannot load {} programs ({e}): it needs CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF",
                    h.what
                ),
            ),
        },
        Some(symbols) => {
            for h in HOOKS {
                match symbols.function(h.kernel_function) {
                    Evidence::Present => {}
                    Evidence::Absent => {
                        return make(
                            Status::Missing,
                            format!(
                                "{} has no {}: the kernel was built without CONFIG_CGROUP_BPF ({} hooks)",
                                symbols.path().display(),
                                h.kernel_function,
                                h.what
                            ),
                        )
                    }
                    Evidence::Unknown(why) => return make(Status::Limited, format!("cannot tell: {why}")),
                }
            }
            make(Status::Ok, format!("kernel has the {} hooks; they attach at {}", names.join(", "), v2.display()))
        }
    }
}

/// `union bpf_attr` for BPF_PROG_LOAD: 8-byte aligned, zero past the fields set.
#[repr(C, align(8))]
struct Attr([u8; 128]);

/// Loads `r0 = 1; exit` as a program of the hook's kind; the fd is closed on return.
fn load_trivial(hook: &Hook) -> io::Result<()> {
    // BPF_ALU64|BPF_MOV|BPF_K r0 = 1, then BPF_JMP|BPF_EXIT (code, regs, off, imm).
    let insns: [u64; 2] = [insn(0xb7, 0, 0, 1), insn(0x95, 0, 0, 0)];
    let license = c"GPL";
    let mut a = Attr([0; 128]);
    put(&mut a, 0, &hook.prog_type.to_ne_bytes());
    put(&mut a, 4, &(insns.len() as u32).to_ne_bytes());
    put(&mut a, 8, &(insns.as_ptr() as u64).to_ne_bytes());
    put(&mut a, 16, &(license.as_ptr() as u64).to_ne_bytes());
    put(&mut a, 48, b"vs_info_probe\0");
    put(&mut a, 68, &hook.expected_attach_type.to_ne_bytes());
    // SAFETY: `a` is a writable buffer laid out as union bpf_attr for
    // BPF_PROG_LOAD; insns and license outlive the call.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, a.0.as_mut_ptr(), a.0.len() as u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a successful BPF_PROG_LOAD returns a new fd nobody else owns.
    drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    Ok(())
}

fn insn(code: u8, regs: u8, off: i16, imm: i32) -> u64 {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = regs;
    b[2..4].copy_from_slice(&off.to_ne_bytes());
    b[4..8].copy_from_slice(&imm.to_ne_bytes());
    u64::from_ne_bytes(b)
}

fn put(a: &mut Attr, off: usize, bytes: &[u8]) {
    a.0[off..off + bytes.len()].copy_from_slice(bytes);
}
