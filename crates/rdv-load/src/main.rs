//! `rdv-load`: a load generator for the homeserver (`BENCHMARKS.md`, "Homeserver (load
//! generator)").
//!
//! It starts `rendezvous serve` as a separate process (its own temporary data directory, free
//! ports on 127.0.0.1), so the server's memory (`/proc/<pid>/status`) and CPU time
//! (`/proc/<pid>/stat`) are its own and not the generator's. Then, in one of three modes:
//!
//! - **post** (default): registers `--members` users through the real client library, creates
//!   `--topics` topics with all of them as members, and lets `--posters` concurrent posters send
//!   pre-encrypted `--size`-byte messages (`message::encrypt`, done before the clock starts) with
//!   their bearer tokens over HTTPS, each request timed. `--ws-watchers` devices listen on
//!   `/v1/stream` and time each post from its send to its frame's arrival.
//! - **federation** (`--federation`): three federating servers; cross-server delivery latency,
//!   federation throughput and catch-up after an outage (`federation`).
//! - **idle** (`--idle-topics N`): creates N 2-member topics and reports the server's memory
//!   after creating them, after touching each once (one message each), after a restart (topics
//!   are loaded lazily) and after touching each once more.
//!
//! This is a tool: it reports errors and carries on where that makes sense, and never trusts
//! the network (no unwrap on anything the server sends).

//!
//! Modules: [`args`] (the command line), [`server`] (the server process), [`clients`] (setup
//! through the client library), [`posters`] (timed posters), [`stats`] (`/proc` and `ss`),
//! [`perf`], [`report`] (percentiles, output), and one per mode: [`post`], [`idle`],
//! [`federation`].

#![forbid(unsafe_code)]

use clap::Parser;

mod abuse;
mod args;
mod clients;
mod federation;
mod idle;
mod perf;
mod post;
mod posters;
mod report;
mod server;
mod stats;

/// What can fail, said for the person running the tool.
type Res<T> = Result<T, String>;

fn main() -> std::process::ExitCode {
    let args = args::Args::parse();
    let result = match args.idle_topics {
        _ if args.federation => federation::federation_mode(&args),
        Some(n) => idle::idle_mode(&args, n),
        None => post::post_mode(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rdv-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
