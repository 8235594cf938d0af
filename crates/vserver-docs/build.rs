//! Finds every binary crate that keeps its command line in `src/cli.rs`
//! (`pub struct Cli`) and writes the module declarations that compile those
//! files into vserver-docs, so a binary's pages appear as soon as it splits
//! its clap definitions out of main.rs. Also embeds the hand-written parts
//! of the man pages (`pages/*.txt`).

use std::fmt::Write;
use std::path::Path;

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crates = here.parent().expect("crates/").to_path_buf();
    println!("cargo:rerun-if-changed={}", crates.display());
    let mut names: Vec<String> = std::fs::read_dir(&crates)
        .expect("listing crates/")
        .flatten()
        .filter(|e| e.path().join("src/cli.rs").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != "vserver-core" && n != "vserver-docs")
        .collect();
    names.sort();
    let mut code = String::new();
    let mut list = String::new();
    for name in &names {
        let cli = crates.join(name).join("src/cli.rs");
        println!("cargo:rerun-if-changed={}", cli.display());
        let module = format!("{}_cli", name.replace('-', "_"));
        writeln!(code, "#[allow(dead_code)]\n#[path = {:?}]\nmod {module};", cli.display().to_string()).unwrap();
        write!(list, "{module}::Cli::command(), ").unwrap();
    }
    writeln!(code, "/// Every binary's command line, found by build.rs.").unwrap();
    writeln!(code, "pub fn commands() -> Vec<clap::Command> {{ vec![{list}] }}").unwrap();

    let pages_dir = here.join("pages");
    println!("cargo:rerun-if-changed={}", pages_dir.display());
    let mut pages: Vec<_> = std::fs::read_dir(&pages_dir)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "txt")).collect())
        .unwrap_or_default();
    pages.sort();
    writeln!(code, "/// The hand-written man page parts, by page name (`vserver-start`).").unwrap();
    writeln!(code, "pub const PAGES: &[(&str, &str)] = &[").unwrap();
    for p in &pages {
        println!("cargo:rerun-if-changed={}", p.display());
        let name = p.file_stem().unwrap().to_string_lossy();
        writeln!(code, "    ({name:?}, include_str!({:?})),", p.display().to_string()).unwrap();
    }
    writeln!(code, "];").unwrap();
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("clis.rs");
    std::fs::write(out, code).expect("writing clis.rs");
}
