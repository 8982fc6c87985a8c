//! `vserver`: the command line of Linux-VServer on a stock kernel.
//!
//! `vserver [--root DIR] NAME COMMAND [ARGS]` acts on one guest, as
//! util-vserver's `vserver` does; `vserver [--root DIR] list [--json]` looks
//! at all of them. One file per verb under `cmd/`. This binary parses and
//! validates arguments, then calls the library crates; it prints errors as
//! one line and maps them to util-vserver's exit codes.

mod cli;
mod cmd;
mod exit;
mod format;
mod output;

use std::process::ExitCode;

fn main() -> ExitCode {
    vs_runtime::timing::mark("main");
    // A command whose output goes to a closed pipe (`vserver NAME status |
    // head -1`) ends quietly, as C tools do, instead of panicking in
    // println!. Not the monitor (the same binary): it must survive its CLI.
    if std::env::args_os().nth(1).is_none_or(|a| a != "--monitor") {
        // SAFETY: signal(2) with a valid signal and SIG_DFL, before any
        // thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match cli::run() {
        Ok(code) => code,
        Err(e) => {
            let code = exit::code_of(&e);
            eprintln!("vserver: {}", output::one_line(&e));
            ExitCode::from(code)
        }
    }
}
