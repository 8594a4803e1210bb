//! `rdv`: the Rendezvous command-line client, a thin shell over [`rendezvous_client::cli`].
//!
//! Every failure is exit status 1 and one line on stderr, or with `--json` exactly one
//! `{"type":"error","code":…,"error":…}` object on stdout and nothing on stderr. A command line
//! that does not parse exits with status 2 (with `--json`: the same object, code `usage`).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

use rendezvous_client::cli::{Cli, Output, Printer, run};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(e),
    };
    let mut printer = Printer::new(cli.json);
    match actix_rt::System::new().block_on(run(cli, &mut printer)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            printer.fail(&e);
            ExitCode::FAILURE
        }
    }
}

/// A command line that does not parse (or `--help`, `--version`, which clap prints itself).
fn usage(e: clap::Error) -> ExitCode {
    let json = std::env::args().any(|a| a == "--json");
    if !json || !e.use_stderr() {
        e.exit();
    }
    let error = e
        .render()
        .to_string()
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("the command line does not parse")
        .trim_start_matches("error: ")
        .to_owned();
    let output = Output::Error {
        code: "usage".into(),
        error,
        topic: None,
    };
    println!("{}", output.to_json());
    ExitCode::from(2)
}
