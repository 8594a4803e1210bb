//! `rdv-conform`: a conformance runner for the Rendezvous client API
//! (`federation-spec/conformance.md`). It drives a running homeserver with the objects of the
//! committed vectors (`federation-spec/vectors/`) and checks its answers: one line per check,
//! `ok NAME` or `FAIL NAME: why`, and exit status 1 when any check failed (2: it could not
//! start).
//!
//! The target must be a fresh homeserver named as the vectors' user's server (`a.example`),
//! signing with the vectors' Server Key (keys.json `server.seed` as its key), with one
//! registration pin: the runner registers the vectors' user, so it runs once per server.
#![forbid(unsafe_code)]

mod accounts;
mod report;
mod topics;
mod vectors;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rendezvous_client::http::Http;
use rendezvous_client::tls::{Fingerprint, Trust};

use report::{Report, Target};
use vectors::Vectors;

/// The vectors of the repository this runner was built from.
const DEFAULT_VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../federation-spec/vectors");

/// Checks a homeserver's client API against the committed vectors.
#[derive(Debug, Parser)]
#[command(name = "rdv-conform", version)]
struct Args {
    /// The client API, `https://host:port`.
    #[arg(long)]
    url: String,
    /// The SHA-256 fingerprint (hex) of the server's TLS certificate, pinned.
    #[arg(long, conflicts_with = "ca_file")]
    fingerprint: Option<String>,
    /// A PEM file of the CA that signed the server's TLS certificate.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// A one-time registration pin of the server (`rendezvous admin pin`).
    #[arg(long)]
    pin: String,
    /// The vectors directory.
    #[arg(long, default_value = DEFAULT_VECTORS)]
    vectors: PathBuf,
}

fn trust(args: &Args) -> Result<Trust, String> {
    match (&args.fingerprint, &args.ca_file) {
        (Some(fp), _) => fp
            .parse::<Fingerprint>()
            .map(Trust::Pinned)
            .map_err(|e| e.to_string()),
        (None, Some(path)) => Ok(Trust::CaFile(path.clone())),
        (None, None) => Ok(Trust::SystemRoots),
    }
}

/// Every check, in order; returns how many failed.
async fn run(args: &Args, out: &mut dyn std::io::Write) -> Result<usize, String> {
    let vectors = Vectors::load(&args.vectors)?;
    let http = Http::new(&args.url, &trust(args)?).map_err(|e| e.to_string())?;
    let target = Target { http };
    let mut r = Report::new(out);
    r.check::<()>("vectors_load", Ok(()));
    let (t, v) = (&target, &vectors);
    if !accounts::register(t, v, &args.pin, &mut r).await {
        r.skip("login", "register");
        return Ok(r.failed);
    }
    let Some(token) = accounts::login(t, v, &v.device, &mut r, "login").await else {
        return Ok(r.failed);
    };
    // Topic keys while the user has one device: an upload carries no deliveries then.
    accounts::topic_keys(t, v, &token, &mut r).await;
    accounts::prekeys(t, v, &token, &mut r).await;
    topics::topic(t, v, &token, &mut r).await;
    eprintln!("{} passed, {} failed", r.passed, r.failed);
    Ok(r.failed)
}

#[actix_rt::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut stdout = std::io::stdout();
    match run(&args, &mut stdout).await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("rdv-conform: {e}");
            ExitCode::from(2)
        }
    }
}
