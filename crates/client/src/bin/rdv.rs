//! `rdv`: the Rendezvous command-line client, a thin shell over [`rendezvous_client::cli`].
//!
//! Every failure is one line on stderr (with `--json`, also an `{"type": "error", …}` object on
//! stdout) and exit status 1.
#![forbid(unsafe_code)]

use clap::Parser;
use serde_json::json;

use rendezvous_client::cli::{Cli, run};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let result = actix_rt::System::new().block_on(run(cli));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let line = e.to_string().replace('\n', " ");
            if json {
                println!(
                    "{}",
                    json!({"type": "error", "error": line, "code": e.code().map(|c| c.as_str())})
                );
            }
            eprintln!("rdv: error: {line}");
            std::process::ExitCode::FAILURE
        }
    }
}
