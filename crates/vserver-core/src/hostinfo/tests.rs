use std::path::PathBuf;

use super::kallsyms::{Evidence, Symbols};
use super::kernel::parse_release;
use super::tools::elf_is_static;
use super::*;

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vs-hostinfo-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn kernel_releases_parse() {
    assert_eq!(parse_release("6.18.0-1-amd64"), Some((6, 18)));
    assert_eq!(parse_release("5.4.0"), Some((5, 4)));
    assert_eq!(parse_release("garbage"), None);
}

#[test]
fn kallsyms_names_syscalls_on_every_architecture() {
    let d = scratch("kallsyms");
    let f = d.join("kallsyms");
    std::fs::write(&f, "0000000000000000 T __x64_sys_openat2\n0000000000000000 T __arm64_sys_pidfd_open\n0 t foo_sys_read [mod]\n")
        .unwrap();
    let s = Symbols::read(&f);
    assert!(matches!(s.syscall("openat2"), Evidence::Present));
    assert!(matches!(s.syscall("pidfd_open"), Evidence::Present));
    assert!(matches!(s.syscall("open"), Evidence::Absent), "sys_open must not match sys_openat2");
    assert!(matches!(s.function("__cgroup_bpf_run_filter_sock_addr"), Evidence::Absent));
    assert!(matches!(Symbols::read(&d.join("none")).syscall("openat2"), Evidence::Unknown(_)));
    std::fs::remove_dir_all(&d).unwrap();
}

fn elf64(phdr_types: &[u32]) -> Vec<u8> {
    let mut b = vec![0u8; 64 + 56 * phdr_types.len()];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // 64-bit
    b[5] = 1; // little endian
    b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    b[0x38..0x3a].copy_from_slice(&(phdr_types.len() as u16).to_le_bytes());
    for (i, t) in phdr_types.iter().enumerate() {
        b[64 + i * 56..68 + i * 56].copy_from_slice(&t.to_le_bytes());
    }
    b
}

#[test]
fn a_program_interpreter_makes_an_elf_dynamic() {
    let d = scratch("elf");
    std::fs::write(d.join("static"), elf64(&[1, 1, 4])).unwrap();
    std::fs::write(d.join("dynamic"), elf64(&[6, 3, 1])).unwrap();
    std::fs::write(d.join("script"), b"#!/bin/sh\necho not an elf, but long enough to pass the size check ..........\n").unwrap();
    assert!(elf_is_static(&d.join("static")).unwrap());
    assert!(!elf_is_static(&d.join("dynamic")).unwrap());
    assert!(elf_is_static(&d.join("script")).is_err());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn the_text_report_names_what_stops_working() {
    let report = Report {
        kernel: "6.1.0".into(),
        live: false,
        cgroup: CgroupSummary::default(),
        checks: vec![
            Check::new("seccomp", Status::Ok, "filter mode", "the deny list", true),
            Check::new("cgroup.bpf", Status::Missing, "no hooks", "network contexts", true),
            Check::new("fs.reflink.vdirbase", Status::Missing, "no FICLONE", "vhashify --reflink", false),
        ],
        missing_required: vec!["cgroup.bpf".into()],
    };
    let text = render_text(&report);
    assert!(text.contains("without it: network contexts (needed by the default configuration)"), "{text}");
    assert!(text.contains("without it: vhashify --reflink (optional)"), "{text}");
    assert!(text.contains("1 ok, 0 limited, 2 missing; the default configuration cannot run here: cgroup.bpf missing"), "{text}");

    let mut unconfirmed = report.clone();
    unconfirmed.checks[1].status = Status::Limited;
    unconfirmed.missing_required.clear();
    let text = render_text(&unconfirmed);
    assert!(text.ends_with("; not confirmed for the default configuration: cgroup.bpf\n"), "{text}");
}
