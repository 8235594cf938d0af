//! Finds every binary crate that keeps its command line in `src/cli.rs`
//! (`pub struct Cli`) and writes the module declarations that compile those
//! files into vserver-docs, so a binary's pages appear as soon as it splits
//! its clap definitions out of main.rs.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("crates/").to_path_buf();
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
    writeln!(code, "fn commands() -> Vec<clap::Command> {{ vec![{list}] }}").unwrap();
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("clis.rs");
    std::fs::write(out, code).expect("writing clis.rs");
}
