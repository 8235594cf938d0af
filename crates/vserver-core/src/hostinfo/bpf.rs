//! cgroup-BPF socket hooks: what a guest's network context is made of. On
//! the live host a trivial program (`r0 = 1; exit`) of each kind a context
//! attaches is loaded with bpf(2) and closed again; a described host is
//! judged by the hook functions in its kallsyms. Either way the programs
//! need a cgroup2 mount to attach to.
//! The programs are built and loaded with `net`'s assembler and bpf(2)
//! wrapper, the same code a context uses.

use std::io;

use crate::sys::ebpf::asm::Asm;
use crate::sys::ebpf::load::{self, ProgSpec};

use super::cgroups::CgroupSummary;
use super::kallsyms::{Evidence, Symbols};
use super::{Check, Status};

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
                format!("the kernel cannot load {} programs ({e}): it needs CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF", h.what),
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

/// Loads `r0 = 1; exit` as a program of the hook's kind; the fd is closed on return.
fn load_trivial(hook: &Hook) -> io::Result<()> {
    let mut a = Asm::new();
    a.ret(1);
    let insns = a.finish().map_err(io::Error::other)?;
    let spec =
        ProgSpec { prog_type: hook.prog_type, expected_attach_type: hook.expected_attach_type, attach_btf_id: 0, name: "vs_info_probe" };
    load::try_prog_load(&spec, &insns).map(drop)
}
