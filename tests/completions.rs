//! Completion that knows the guests: the installed bash, zsh and fish
//! scripts hand the line to vserver-complete, which offers the guest names
//! of the configuration root for `vserver`, `vlimit -c`, `vhashify`, `vkill
//! --xid`, ..., build methods for `-m` and options (vlimit's resources) from
//! the tools' own clap definitions. Tested through real bash and fish.

use std::fs;
use std::path::Path;
use std::process::Command;

use vserver_rs_tests::{bin_dir, describe, require, run, stdout, Scratch};

/// A config root with three guests, and the completion scripts generated
/// for the built vserver-complete.
fn setup() -> (Scratch, Scratch) {
    let conf = Scratch::new("complconf");
    for g in ["web1", "web2", "db1"] {
        fs::create_dir_all(conf.0.join(g)).unwrap();
    }
    fs::create_dir_all(conf.0.join(".defaults")).unwrap();
    let docs = Scratch::new("compldocs");
    let completer = bin_dir().join("vserver-complete");
    let out = run(Command::new(bin_dir().join("vserver-docs")).arg("--completer").arg(&completer).arg(&docs.0));
    assert!(out.status.success(), "{}", describe(&out));
    (conf, docs)
}

/// What bash offers for `line` (completed at its end), through the installed script.
fn bash(docs: &Path, conf: &Path, line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split(' ').collect();
    let cmd = words[0];
    let script = format!(
        "source {}\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\nCOMP_TYPE=9\n\
         _clap_complete_{} {cmd} '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
        docs.join("completions/bash").join(cmd).display(),
        words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
        words.len() - 1,
        cmd.replace('-', "_"),
        words[words.len() - 1],
        words.get(words.len().wrapping_sub(2)).unwrap_or(&""),
    );
    let out = run(Command::new("bash").arg("-c").arg(script).env("VSERVER_CONFDIR", conf));
    assert!(out.status.success(), "{}", describe(&out));
    stdout(&out).lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

fn has(list: &[String], items: &[&str]) -> bool {
    items.iter().all(|i| list.iter().any(|l| l == i))
}

#[test]
fn bash_completes_guest_names_methods_and_options() {
    let (conf, docs) = setup();
    let c = |line: &str| bash(&docs.0, &conf.0, line);
    assert_eq!(c("vserver we"), ["web1", "web2"]);
    let first = c("vserver ");
    assert!(has(&first, &["web1", "web2", "db1", "start", "build"]), "{first:?}");
    assert!(!first.iter().any(|w| w == ".defaults"), "{first:?}");
    let sub = c("vserver web1 st");
    assert!(has(&sub, &["start", "stop", "status"]) && !sub.iter().any(|w| w == "web1"), "{sub:?}");
    assert_eq!(c("vserver web1 build -m d"), ["debootstrap"]);
    assert_eq!(c("vlimit -c d"), ["db1"]);
    let res = c("vlimit -c web1 --r");
    assert!(has(&res, &["--rss", "--rundir"]), "{res:?}");
    assert!(has(&c("vhashify "), &["web1", "web2", "db1"]));
    assert_eq!(c("vkill --xid w"), ["web1", "web2"]);
    assert_eq!(c("vwait d"), ["db1"]);
    assert_eq!(c("vuname --xid web"), ["web1", "web2"]);
    assert_eq!(c("vdlimit --xid web2"), ["web2"]);
    // A guest made now is offered at once: the names are read at Tab time.
    fs::create_dir_all(conf.0.join("mail1")).unwrap();
    assert_eq!(c("vapt-get m"), ["mail1"]);
}

#[test]
fn fish_completes_guest_names() {
    let have = Command::new("fish").arg("--version").output().is_ok_and(|o| o.status.success());
    if !require(have, "fish (apt-get install fish)") {
        return;
    }
    let (conf, docs) = setup();
    let fish = |line: &str| {
        let cmd = line.split(' ').next().unwrap();
        let script = format!("source {}; complete -C'{line}'", docs.0.join(format!("completions/fish/{cmd}.fish")).display());
        let out = run(Command::new("fish").arg("-c").arg(script).env("VSERVER_CONFDIR", &conf.0));
        assert!(out.status.success(), "{}", describe(&out));
        stdout(&out).lines().map(|l| l.split('\t').next().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(fish("vserver we"), ["web1", "web2"]);
    assert_eq!(fish("vlimit -c d"), ["db1"]);
    assert!(has(&fish("vserver web1 build -m "), &["skeleton", "busybox", "debootstrap", "clone"]));
}

#[test]
fn zsh_script_and_completer_agree() {
    let have = Command::new("zsh").arg("--version").output().is_ok_and(|o| o.status.success());
    if !require(have, "zsh (apt-get install zsh)") {
        return;
    }
    let (conf, docs) = setup();
    let script = docs.0.join("completions/zsh/_vserver");
    let out = run(Command::new("zsh").arg("-n").arg(&script));
    assert!(out.status.success(), "{}", describe(&out));
    let text = fs::read_to_string(&script).unwrap();
    let completer = bin_dir().join("vserver-complete");
    assert!(text.contains(&completer.display().to_string()) && text.contains("compdef"), "{text}");
    // What the script runs for `vserver we<TAB>`.
    let out = run(Command::new(&completer)
        .args(["--", "vserver", "we"])
        .env("COMPLETE", "zsh")
        .env("_CLAP_COMPLETE_INDEX", "1")
        .env("VSERVER_CONFDIR", &conf.0));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out).lines().map(|l| l.split(':').next().unwrap()).collect::<Vec<_>>(), ["web1", "web2"]);
}

#[test]
fn the_completer_never_runs_a_tool_and_refuses_strangers() {
    let (conf, _docs) = setup();
    let completer = bin_dir().join("vserver-complete");
    let out = run(Command::new(&completer).args(["--", "rm", "-rf"]).env("COMPLETE", "bash").env("VSERVER_CONFDIR", &conf.0));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a vserver-rs binary"));
    let out = run(Command::new(&completer).args(["--", "vserver", "web1", "stop"]).env_remove("COMPLETE"));
    assert_eq!(out.status.code(), Some(1), "without COMPLETE nothing happens: {}", describe(&out));
}
