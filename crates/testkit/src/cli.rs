//! `rdv` as a user runs it, in process: the same parser and command code as the binary.

use std::path::Path;

use clap::Parser;
use rendezvous_client::cli::{Cli, Output};

/// `rdv --json --home HOME --passphrase-file … ARGS`: its outputs and, when it failed, its
/// error code.
pub async fn rdv(home: &Path, args: &[&str]) -> (Vec<Output>, Option<&'static str>) {
    let passphrase = crate::passphrase_file(home);
    let mut all = vec![
        "rdv",
        "--json",
        "--home",
        home.to_str().unwrap(),
        "--passphrase-file",
        passphrase.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let cli = Cli::try_parse_from(all).unwrap();
    let mut out: Vec<Output> = Vec::new();
    let result = rendezvous_client::cli::run(cli, &mut out).await;
    (out, result.err().map(|e| e.error_code()))
}
