//! `firedrill`: one binary, many roles.
//!
//! `firedrill up` runs the whole lab as separate OS processes, each started
//! as `firedrill <role>` by the supervisor in [`up`]. Compose and Kubernetes
//! run the same binary with the same subcommands.

mod cli;
mod ctl;
mod services;
mod up;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints usage errors naming the offending flag.
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if cli.command.is_client() {
        quiet_on_closed_stdout();
    }
    // Two workers per process: the lab runs ~20 processes on small machines,
    // and the OTel exporters need a multi-threaded runtime (see STACK.md).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A client verb piped into `head` stops when the pipe closes, as `cat`
/// does, instead of panicking on its next `println!`: SIGPIPE gets its
/// default action back (Rust starts programs with it ignored). Only client
/// verbs: the lab's servers keep it ignored. Their sockets never raise it
/// anyway (writes use MSG_NOSIGNAL), and neither do the clients'.
fn quiet_on_closed_stdout() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: called first thing in `main`, before any thread exists, and
    // installs the default disposition, not a handler.
    #[allow(unsafe_code)]
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}
