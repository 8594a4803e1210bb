//! The command line.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "rdv-load",
    about = "Load generator and memory benchmark for the Rendezvous homeserver"
)]
pub(crate) struct Args {
    /// The homeserver binary (default: `rendezvous` next to this binary).
    #[arg(long)]
    pub(crate) server_bin: Option<PathBuf>,
    /// Topics to post into.
    #[arg(long, default_value_t = 10)]
    pub(crate) topics: usize,
    /// Members per topic (all of them post; user 0 creates every topic).
    #[arg(long, default_value_t = 3)]
    pub(crate) members: usize,
    /// Concurrent posters (each sends one request at a time).
    #[arg(long, default_value_t = 64)]
    pub(crate) posters: usize,
    /// Total messages to post (default: as many as `--seconds` allows).
    #[arg(long)]
    pub(crate) messages: Option<usize>,
    /// Stop posting after this many seconds (default 20 when `--messages` is not given).
    #[arg(long)]
    pub(crate) seconds: Option<f64>,
    /// Messages prepared per second of `--seconds` (the budget when only a duration is given).
    #[arg(long, default_value_t = 8000)]
    pub(crate) max_rate: usize,
    /// Plaintext bytes per message.
    #[arg(long, default_value_t = 100)]
    pub(crate) size: usize,
    /// WebSocket stream devices measuring delivery latency.
    #[arg(long, default_value_t = 4)]
    pub(crate) ws_watchers: usize,
    /// Generator threads for the posters (each its own event loop).
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
    /// Offer HTTP/2 (ALPN h2) on the posters' connections; the default is HTTP/1.1 as the
    /// client library speaks it today.
    #[arg(long)]
    pub(crate) h2: bool,
    /// HTTP worker threads of the server (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub(crate) server_workers: usize,
    /// Abusers beside the posters, with the server's default limits for them (see
    /// `abuse.rs`): login floods, oversized bodies, made-up tokens, streams that never read.
    #[arg(long)]
    pub(crate) abuse: bool,
    /// Abusive connections of each kind (flood, oversize, guess), each from its own address.
    #[arg(long, default_value_t = 4)]
    pub(crate) abusers_per_kind: usize,
    /// Memory mode: create this many 2-member topics and report server RSS.
    #[arg(long)]
    pub(crate) idle_topics: Option<usize>,
    /// Concurrent topic creations (memory mode) and setup calls.
    #[arg(long, default_value_t = 32)]
    pub(crate) setup_concurrency: usize,
    /// Record a `perf` profile of the server during the timed phase into this file.
    #[arg(long)]
    pub(crate) perf: Option<PathBuf>,
    /// perf's call-graph mode (`fp`, or `dwarf,16384` for Rust code built without frame
    /// pointers) and sampling frequency.
    #[arg(long, default_value = "dwarf,16384")]
    pub(crate) perf_call_graph: String,
    /// perf's sampling frequency, Hz.
    #[arg(long, default_value_t = 250)]
    pub(crate) perf_freq: u32,
    /// Keep the temporary directory (server data, logs, keystores).
    #[arg(long)]
    pub(crate) keep: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Federation mode: three federating servers (a.test hosts, b.test and c.test take part);
    /// see `federation.rs`. `--topics`, `--posters`, `--threads` and `--seconds` apply to the
    /// throughput phase.
    #[arg(long)]
    pub(crate) federation: bool,
    /// Federation phases to run, comma-separated: latency, throughput, catchup.
    #[arg(long, default_value = "latency,throughput,catchup")]
    pub(crate) phases: String,
    /// Federation latency phase: posts per second on b (open loop).
    #[arg(long, default_value_t = 100.0)]
    pub(crate) latency_rate: f64,
    /// Federation latency phase: seconds timed.
    #[arg(long, default_value_t = 30.0)]
    pub(crate) latency_seconds: f64,
    /// Federation latency phase: seconds posted at the same rate before the timed part.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) latency_warmup: f64,
    /// Federation catch-up phase: messages posted on a while c is down.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) catchup_messages: usize,
    /// Federation mode: the server `--perf` records during the throughput phase.
    #[arg(long, default_value = "c.test")]
    pub(crate) perf_server: String,
    /// Federation latency phase: write every timed post (start, delivery, answer) here.
    #[arg(long)]
    pub(crate) latency_dump: Option<PathBuf>,
    /// Federation catch-up phase: seconds c stays down after the messages are posted (a
    /// longer outage, so that a's retry backoff towards c grows).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) catchup_pause: f64,
    /// Federation catch-up phase: how many times to run it.
    #[arg(long, default_value_t = 1)]
    pub(crate) catchup_runs: usize,
}
