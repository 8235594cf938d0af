#![forbid(unsafe_code)]
//! `vserver-complete`: the shells' completer for every vserver-rs binary
//! (run by the installed completion scripts; see vserver_docs::complete).

fn main() -> std::process::ExitCode {
    let mut out = std::io::stdout().lock();
    match vserver_docs::complete::answer(std::env::args_os().collect(), &mut out) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vserver-complete: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
