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
//!   federation throughput and catch-up after an outage (`federation.rs`).
//! - **idle** (`--idle-topics N`): creates N 2-member topics and reports the server's memory
//!   after creating them, after touching each once (one message each), after a restart (topics
//!   are loaded lazily) and after touching each once more.
//!
//! This is a tool: it reports errors and carries on where that makes sense, and never trusts
//! the network (no unwrap on anything the server sends).

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use awc::http::Method;
use clap::Parser;
use futures_util::future::join_all;
use serde::Serialize;

use rendezvous_client::Client;
use rendezvous_client::http::{Http, encode_segment, error_from_response};
use rendezvous_client::tls::{Fingerprint, Trust, client_config};
use rendezvous_protocol::api::{AppendResponse, Body, EntriesResponse};
use rendezvous_protocol::crypto::{MessageKey, TopicKey};
use rendezvous_protocol::ids::{Epoch, MemberIndex, TopicId, UserId};
use rendezvous_protocol::message::encrypt;
use rendezvous_protocol::tlog::TreeSize;
use rendezvous_protocol::topic::{History, LogEntry, Replayer, Role};

mod federation;

type Res<T> = Result<T, String>;

/// Request timeout for timed posts.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Topic Keys a new user has in stock (`client::TOPIC_KEY_STOCK`), minus a margin.
const TOPIC_KEYS_PER_USER: usize = 45;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "rdv-load",
    about = "Load generator and memory benchmark for the Rendezvous homeserver"
)]
struct Args {
    /// The homeserver binary (default: `rendezvous` next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Topics to post into.
    #[arg(long, default_value_t = 10)]
    topics: usize,
    /// Members per topic (all of them post; user 0 creates every topic).
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Concurrent posters (each sends one request at a time).
    #[arg(long, default_value_t = 64)]
    posters: usize,
    /// Total messages to post (default: as many as `--seconds` allows).
    #[arg(long)]
    messages: Option<usize>,
    /// Stop posting after this many seconds (default 20 when `--messages` is not given).
    #[arg(long)]
    seconds: Option<f64>,
    /// Messages prepared per second of `--seconds` (the budget when only a duration is given).
    #[arg(long, default_value_t = 8000)]
    max_rate: usize,
    /// Plaintext bytes per message.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// WebSocket stream devices measuring delivery latency.
    #[arg(long, default_value_t = 4)]
    ws_watchers: usize,
    /// Generator threads for the posters (each its own event loop).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Offer HTTP/2 (ALPN h2) on the posters' connections; the default is HTTP/1.1 as the
    /// client library speaks it today.
    #[arg(long)]
    h2: bool,
    /// HTTP worker threads of the server (0: one per core).
    #[arg(long, default_value_t = 0)]
    server_workers: usize,
    /// Memory mode: create this many 2-member topics and report server RSS.
    #[arg(long)]
    idle_topics: Option<usize>,
    /// Concurrent topic creations (memory mode) and setup calls.
    #[arg(long, default_value_t = 32)]
    setup_concurrency: usize,
    /// Record a `perf` profile of the server during the timed phase into this file.
    #[arg(long)]
    perf: Option<PathBuf>,
    /// perf's call-graph mode (`fp`, or `dwarf,16384` for Rust code built without frame
    /// pointers) and sampling frequency.
    #[arg(long, default_value = "dwarf,16384")]
    perf_call_graph: String,
    /// perf's sampling frequency, Hz.
    #[arg(long, default_value_t = 250)]
    perf_freq: u32,
    /// Keep the temporary directory (server data, logs, keystores).
    #[arg(long)]
    keep: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Federation mode: three federating servers (a.test hosts, b.test and c.test take part);
    /// see `federation.rs`. `--topics`, `--posters`, `--threads` and `--seconds` apply to the
    /// throughput phase.
    #[arg(long)]
    federation: bool,
    /// Federation phases to run, comma-separated: latency, throughput, catchup.
    #[arg(long, default_value = "latency,throughput,catchup")]
    phases: String,
    /// Federation latency phase: posts per second on b (open loop).
    #[arg(long, default_value_t = 100.0)]
    latency_rate: f64,
    /// Federation latency phase: seconds timed.
    #[arg(long, default_value_t = 30.0)]
    latency_seconds: f64,
    /// Federation latency phase: seconds posted at the same rate before the timed part.
    #[arg(long, default_value_t = 2.0)]
    latency_warmup: f64,
    /// Federation catch-up phase: messages posted on a while c is down.
    #[arg(long, default_value_t = 10_000)]
    catchup_messages: usize,
    /// Federation mode: the server `--perf` records during the throughput phase.
    #[arg(long, default_value = "c.test")]
    perf_server: String,
    /// Federation latency phase: write every timed post (start, delivery, answer) here.
    #[arg(long)]
    latency_dump: Option<PathBuf>,
    /// Federation catch-up phase: seconds c stays down after the messages are posted (a
    /// longer outage, so that a's retry backoff towards c grows).
    #[arg(long, default_value_t = 0.0)]
    catchup_pause: f64,
    /// Federation catch-up phase: how many times to run it.
    #[arg(long, default_value_t = 1)]
    catchup_runs: usize,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let result = match args.idle_topics {
        _ if args.federation => federation::federation_mode(&args),
        Some(n) => idle_mode(&args, n),
        None => post_mode(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rdv-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[rdv-load {:>8.1?}] {}", started().elapsed(), msg.as_ref());
}

fn started() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

// ---------------------------------------------------------------------------------------------
// The server process

/// A temporary directory, removed on drop unless kept.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    fn new(keep: bool) -> Res<WorkDir> {
        let suffix: [u8; 6] = rendezvous_protocol::crypto::random_array();
        let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("rdv-load-{hex}"));
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(WorkDir { path, keep })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("rdv-load: kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A `rendezvous serve` child process.
struct Server {
    child: Child,
    /// The server name (`server_name`): the part after `:` in its users' ids.
    name: String,
    bin: PathBuf,
    config: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    url: String,
    admin: String,
    fingerprint: String,
}

/// A port that was free a moment ago.
fn free_port() -> Res<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("bind: {e}"))
}

impl Server {
    fn start(bin: &Path, dir: &Path, workers: usize) -> Res<Server> {
        Self::start_named(bin, dir, "localhost", workers, "")
    }

    /// Starts a server named `name` with its files in `dir`; `extra` is appended to the
    /// generated configuration (e.g. a `[federation]` section).
    fn start_named(bin: &Path, dir: &Path, name: &str, workers: usize, extra: &str) -> Res<Server> {
        let data_dir = dir.join("server");
        let config = dir.join("server.toml");
        let (client_port, admin_port) = (free_port()?, free_port()?);
        let text = format!(
            "server_name = \"{name}\"\ndata_dir = \"{}\"\n\n[client_api]\nlisten = \
             \"127.0.0.1:{client_port}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n\
             [limits]\nworkers = {workers}\n{extra}",
            data_dir.display()
        );
        std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
        let mut server = Server {
            child: spawn_placeholder()?,
            name: name.to_owned(),
            bin: bin.to_owned(),
            config,
            data_dir,
            log: dir.join("server.log"),
            url: format!("https://127.0.0.1:{client_port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            fingerprint: String::new(),
        };
        server.spawn()?;
        Ok(server)
    }

    /// Starts the process and waits until it prints its certificate fingerprint.
    fn spawn(&mut self) -> Res<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let mut child = Command::new(&self.bin)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env(
                "RUST_LOG",
                std::env::var("RDV_SERVER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout from the server")?;
        let (tx, rx) = mpsc::channel::<String>();
        // The server logs to stdout: keep every line in the log file.
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(out, "{line}");
                if let Some(fp) = line.strip_prefix("TLS certificate fingerprint: ") {
                    let _ = tx.send(fp.trim().to_owned());
                }
            }
        });
        let _ = std::mem::replace(&mut self.child, child).kill();
        let fp = rx
            .recv_timeout(Duration::from_secs(20))
            .map_err(|_| format!("the server did not start (log: {})", self.log.display()))?;
        self.fingerprint = fp;
        Ok(())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn trust(&self) -> Res<Trust> {
        let fp: Fingerprint = self.fingerprint.parse().map_err(|e| format!("{e}"))?;
        Ok(Trust::Pinned(fp))
    }

    /// Graceful stop (SIGTERM: in-flight requests finish, the store is flushed).
    fn stop(&mut self) -> Res<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err("the server did not stop within 20 s after SIGTERM".into())
    }

    fn restart(&mut self) -> Res<()> {
        self.stop()?;
        self.spawn()
    }

    /// Waits until the client API answers.
    async fn wait_ready(&self) -> Res<()> {
        let http = Http::new(&self.url, &self.trust()?).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match http.get_json::<serde_json::Value>("/v1/status").await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("the server does not answer: {e}"));
                }
                Err(_) => actix_rt::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// A one-time registration pin from the admin endpoint.
    async fn pin(&self) -> Res<String> {
        let path = self.data_dir.join("admin.token");
        let token =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut resp = awc::Client::default()
            .post(format!("{}/admin/pins", self.admin))
            .insert_header(("Authorization", format!("Bearer {}", token.trim())))
            .send()
            .await
            .map_err(|e| format!("admin endpoint: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("admin endpoint answered {}", resp.status()));
        }
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| format!("admin endpoint: {e}"))?;
        v["pin"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "admin endpoint: no pin in the answer".into())
    }

    fn stats(&self) -> ProcStats {
        ProcStats::read(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.stop();
        }
    }
}

/// A child that exits at once, to hold the place of the real one until it is spawned.
fn spawn_placeholder() -> Res<Child> {
    Command::new("true")
        .spawn()
        .map_err(|e| format!("cannot run `true`: {e}"))
}

/// What `/proc` says about a process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct ProcStats {
    rss_kib: u64,
    hwm_kib: u64,
    /// utime + stime, seconds (USER_HZ = 100).
    cpu_secs: f64,
}

impl ProcStats {
    fn read(pid: u32) -> ProcStats {
        let mut s = ProcStats::default();
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in status.lines() {
                let kib = |l: &str| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                if line.starts_with("VmRSS:") {
                    s.rss_kib = kib(line);
                } else if line.starts_with("VmHWM:") {
                    s.hwm_kib = kib(line);
                }
            }
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // Fields after the command name (which may hold spaces) start at field 3.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                // utime is field 14, stime 15; `rest` starts at field 3.
                s.cpu_secs = (tick(11) + tick(12)) as f64 / 100.0;
            }
        }
        s
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU pressure (`/proc/pressure/cpu`, "some" line: share of time some runnable task waited
/// for a CPU, averaged over 10 s and 60 s): how much other work competed for the cores.
fn cpu_pressure() -> String {
    std::fs::read_to_string("/proc/pressure/cpu")
        .ok()
        .and_then(|t| t.lines().next().map(str::to_owned))
        .map(|l| {
            l.split_whitespace()
                .filter(|f| f.starts_with("avg10=") || f.starts_with("avg60="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn server_bin(args: &Args) -> Res<PathBuf> {
    if let Some(p) = &args.server_bin {
        return Ok(p.clone());
    }
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let bin = me.with_file_name("rendezvous");
    if !bin.exists() {
        return Err(format!(
            "{} not found: build it (cargo build --release --bins) or pass --server-bin",
            bin.display()
        ));
    }
    Ok(bin)
}

// ---------------------------------------------------------------------------------------------
// Setup through the client library

async fn register_users(
    server: &Server,
    dir: &Path,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> Res<Vec<Client>> {
    let trust = server.trust()?;
    // Registration is CPU-bound on this one thread (key generation): many at once only make
    // TLS handshakes wait past the server's handshake timeout.
    let concurrency = concurrency.clamp(1, 4);
    let mut out = Vec::with_capacity(count);
    let ids: Vec<usize> = (0..count).collect();
    for chunk in ids.chunks(concurrency.max(1)) {
        let mut pins = Vec::with_capacity(chunk.len());
        for _ in chunk {
            pins.push(server.pin().await?);
        }
        let futs = chunk.iter().zip(pins).map(|(i, pin)| {
            let trust = trust.clone();
            async move {
                let user: UserId = format!("@{prefix}{i}:{}", server.name)
                    .parse()
                    .map_err(|e| format!("user id: {e}"))?;
                Client::register(
                    &dir.join(format!("{prefix}{i}")),
                    &server.url,
                    trust,
                    &pin,
                    &user,
                )
                .await
                .map_err(|e| format!("register {user}: {e}"))
            }
        });
        for r in join_all(futs).await {
            out.push(r?);
        }
    }
    Ok(out)
}

fn token_of(client: &Client) -> Res<String> {
    client
        .keystore()
        .token()
        .map_err(|e| e.to_string())?
        .map(|t| t.as_str().to_owned())
        .ok_or_else(|| format!("{} has no token", client.user()))
}

fn topic_path(topic: &TopicId, rest: &str) -> String {
    format!("/v1/topics/{}{rest}", encode_segment(topic.as_str()))
}

/// One member of one topic, ready to post: everything `message::encrypt` needs.
struct Slot {
    topic: TopicId,
    topic_no: u32,
    member: u32,
    token: String,
    topic_key: TopicKey,
    message_key: MessageKey,
    path: String,
}

/// Reads a topic's create change back from the server, replays it with the topic state machine
/// and gathers each member's Topic Key (from that member's keystore) and the epoch 0 Message Key
/// (from the creator's keystore).
async fn slots_for(
    http: &Http,
    topic: &TopicId,
    topic_no: u32,
    users: &[&Client],
) -> Res<Vec<Slot>> {
    let creator = users.first().ok_or("no members")?;
    let token = token_of(creator)?;
    let entries: EntriesResponse = http
        .call(
            Method::GET,
            &topic_path(topic, "/entries?from=0&limit=1"),
            None,
            Some(&token),
        )
        .await
        .map_err(|e| e.to_string())?;
    let first = entries.entries.first().ok_or("the topic's log is empty")?;
    let entry = LogEntry::from_wire(&first.entry).map_err(|e| e.to_string())?;
    let mut replayer = Replayer::new();
    replayer.push(&entry).map_err(|e| e.to_string())?;
    let state = replayer.state().ok_or("no state after the create")?;
    let mk = creator
        .keystore()
        .message_keys(topic)
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|(epoch, _)| *epoch == state.epoch().get())
        .map(|(_, k)| k)
        .ok_or("the creator has no Message Key for the topic")?;
    let mut out = Vec::new();
    for client in users {
        let me = state
            .member_of(client.user())
            .ok_or_else(|| format!("{} is not a member of {topic}", client.user()))?;
        let member = state.member(me).ok_or("member vanished")?;
        let identity = client.keystore().identity().map_err(|e| e.to_string())?;
        let (topic_key, _) = client
            .keystore()
            .topic_key(&member.topic_key.key_id(), identity.public())
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} lacks its Topic Key for {topic}", client.user()))?;
        let message_key = MessageKey::from_slice(mk.as_bytes()).map_err(|e| e.to_string())?;
        out.push(Slot {
            topic: topic.clone(),
            topic_no,
            member: me.0,
            token: token_of(client)?,
            topic_key,
            message_key,
            path: topic_path(topic, "/messages"),
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Post mode

/// One timed post.
#[derive(Clone, Copy)]
struct Sample {
    topic_no: u32,
    index: u64,
    sent: Instant,
    latency: Duration,
}

#[derive(Default)]
struct PosterResult {
    samples: Vec<Sample>,
    errors: BTreeMap<String, u64>,
    bad_index: u64,
    body_bytes: u64,
    header_bytes: u64,
}

/// The requests one poster sends.
struct PosterPlan {
    slot: Arc<Slot>,
    count: usize,
}

fn post_mode(args: &Args) -> Res<()> {
    if args.topics == 0 || args.members == 0 || args.posters == 0 || args.threads == 0 {
        return Err("--topics, --members, --posters and --threads must be positive".into());
    }
    let bin = server_bin(args)?;
    let work = WorkDir::new(args.keep)?;
    let mut server = Server::start(&bin, &work.path, args.server_workers)?;
    log(format!("server pid {} at {}", server.pid(), server.url));
    let trust = server.trust()?;

    let (slots, watch_tokens) = actix_rt::System::new().block_on(async {
        server.wait_ready().await?;
        let users = register_users(
            &server,
            &work.path,
            "u",
            args.members,
            args.setup_concurrency,
        )
        .await?;
        log(format!("registered {} users", users.len()));
        let mut users = users;
        let others: Vec<(UserId, Role)> = users
            .iter()
            .skip(1)
            .map(|c| (c.user().clone(), Role::Writer))
            .collect();
        let mut topics = Vec::with_capacity(args.topics);
        for _ in 0..args.topics {
            let t = users
                .first_mut()
                .ok_or("no users")?
                .create_topic(&others, History::Shared)
                .await
                .map_err(|e| format!("create topic: {e}"))?;
            topics.push(t);
        }
        log(format!(
            "created {} topics x {} members",
            topics.len(),
            args.members
        ));
        let http = Http::new(&server.url, &trust).map_err(|e| e.to_string())?;
        let refs: Vec<&Client> = users.iter().collect();
        let mut slots = Vec::new();
        for (no, t) in topics.iter().enumerate() {
            slots.extend(slots_for(&http, t, no as u32, &refs).await?);
        }
        let watch_tokens = (0..args.ws_watchers)
            .map(|w| token_of(&users[w % users.len()]))
            .collect::<Res<Vec<_>>>()?;
        Ok::<_, String>((slots, watch_tokens))
    })?;
    let slots: Vec<Arc<Slot>> = slots.into_iter().map(Arc::new).collect();
    let topic_names: HashMap<String, u32> = slots
        .iter()
        .map(|s| (s.topic.as_str().to_owned(), s.topic_no))
        .collect();

    let seconds = match (args.messages, args.seconds) {
        (None, None) => Some(20.0),
        (_, s) => s,
    };
    let total = match (args.messages, seconds) {
        (Some(m), _) => m,
        (None, Some(s)) => (s * args.max_rate as f64).ceil() as usize,
        (None, None) => 0,
    };
    let deadline = seconds.map(Duration::from_secs_f64);

    // Posters, spread over threads round-robin; poster p posts as slot p mod slots.
    let mut per_thread: Vec<Vec<PosterPlan>> = (0..args.threads).map(|_| Vec::new()).collect();
    for p in 0..args.posters {
        let count = total / args.posters + usize::from(p < total % args.posters);
        let slot = slots[p % slots.len()].clone();
        per_thread[p % args.threads].push(PosterPlan { slot, count });
    }
    // Everyone waits here: the poster threads once their messages are encrypted, the watcher
    // thread once its streams are open, and this thread to start the clock.
    let barrier = Arc::new(Barrier::new(args.threads + 2));
    // The poster threads meet here again when they are done, and keep their connections open
    // until this thread has read the server side's socket counters.
    let end = Arc::new(EndBarriers::new(args.threads + 1));
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let watcher = {
        let (barrier, url, trust) = (barrier.clone(), server.url.clone(), trust.clone());
        let tokens = watch_tokens.clone();
        let names = topic_names.clone();
        std::thread::spawn(move || watcher_thread(url, trust, tokens, names, barrier, stop_rx))
    };
    let mut handles = Vec::new();
    for plans in per_thread {
        let (barrier, url, trust) = (barrier.clone(), server.url.clone(), trust.clone());
        let (size, h2) = (args.size, args.h2);
        let end = end.clone();
        handles.push(std::thread::spawn(move || {
            let settings = PosterSettings {
                url,
                trust,
                size,
                h2,
                deadline,
            };
            poster_thread(settings, plans, barrier, end)
        }));
    }
    log(format!(
        "encrypting {total} messages of {} bytes for {} posters",
        args.size, args.posters
    ));
    barrier.wait();
    let load_before = format!("{} (cpu pressure {})", loadavg(), cpu_pressure());
    let before = server.stats();
    let gen_before = ProcStats::read(std::process::id());
    let start = Instant::now();
    let perf = match &args.perf {
        Some(out) => Some(start_perf(
            server.pid(),
            out,
            &args.perf_call_graph,
            args.perf_freq,
        )?),
        None => None,
    };
    log("posting");
    end.done.wait();
    let elapsed = start.elapsed();
    let after = server.stats();
    let gen_cpu = ProcStats::read(std::process::id()).cpu_secs - gen_before.cpu_secs;
    let load_after = format!("{} (cpu pressure {})", loadavg(), cpu_pressure());
    let wire = socket_bytes(&server.url);
    end.release.wait();
    let mut result = PosterResult::default();
    for h in handles {
        let r = h.join().map_err(|_| "a poster thread panicked")??;
        result.samples.extend(r.samples);
        for (k, v) in r.errors {
            *result.errors.entry(k).or_default() += v;
        }
        result.bad_index += r.bad_index;
        result.body_bytes += r.body_bytes;
        result.header_bytes += r.header_bytes;
    }
    if let Some(p) = perf {
        stop_perf(p);
    }
    // Let the last frames arrive.
    std::thread::sleep(Duration::from_millis(1000));
    let _ = stop_tx.send(());
    let arrivals = watcher
        .join()
        .map_err(|_| "the watcher thread panicked")??;
    let report = post_report(
        args,
        &result,
        &arrivals,
        elapsed,
        &before,
        &after,
        (load_before, load_after),
        gen_cpu,
        wire,
    );
    server.stop()?;
    print_report(args.json, &report)
}

fn start_perf(pid: u32, out: &Path, call_graph: &str, freq: u32) -> Res<Child> {
    let log_path = out.with_extension("log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    // cpu-clock: this KVM guest has no hardware counters.
    Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-F"])
        .arg(freq.to_string())
        .arg("--call-graph")
        .arg(call_graph)
        .arg("-p")
        .arg(pid.to_string())
        .arg("-o")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot run perf: {e}"))
}

fn stop_perf(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

/// What every poster thread is told.
struct PosterSettings {
    url: String,
    trust: Trust,
    size: usize,
    h2: bool,
    deadline: Option<Duration>,
}

fn poster_thread(
    settings: PosterSettings,
    plans: Vec<PosterPlan>,
    barrier: Arc<Barrier>,
    end: Arc<EndBarriers>,
) -> Res<PosterResult> {
    let PosterSettings {
        url,
        trust,
        size,
        h2,
        deadline,
    } = settings;
    // Encrypt before the clock starts: the generator should spend its CPU on the wire.
    let plaintext = vec![b'x'; size];
    let mut prepared = Vec::with_capacity(plans.len());
    let mut failure = None;
    for plan in &plans {
        let s = &plan.slot;
        let keys = s.message_key.epoch_keys(&s.topic, Epoch(0));
        let mut bodies = Vec::with_capacity(plan.count);
        for _ in 0..plan.count {
            // seen = 0 is valid at every log position.
            match encrypt(
                &s.topic,
                &keys,
                MemberIndex(s.member),
                s.topic_key.signing(),
                TreeSize(0),
                &plaintext,
            ) {
                Ok(m) => bodies.push(Bytes::from(m.to_wire())),
                Err(e) => failure = Some(format!("encrypt: {e}")),
            }
        }
        prepared.push((s.clone(), bodies));
    }
    barrier.wait();
    let tls = match (failure, client_config(&trust)) {
        (None, Ok(tls)) => tls,
        (Some(f), _) => {
            end.wait();
            return Err(f);
        }
        (None, Err(e)) => {
            end.wait();
            return Err(e.to_string());
        }
    };
    let mut tls = tls;
    if h2 {
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    actix_rt::System::new().block_on(async move {
        let client = awc::Client::builder()
            .connector(
                awc::Connector::new()
                    .rustls_0_23(Arc::new(tls))
                    .limit(0)
                    .timeout(TIMEOUT),
            )
            .no_default_headers()
            .timeout(TIMEOUT)
            .finish();
        let client = Rc::new(client);
        let host = url.trim_start_matches("https://").to_owned();
        let start = Instant::now();
        let futs = prepared.into_iter().map(|(slot, bodies)| {
            let client = client.clone();
            let url = format!("{url}{}", slot.path);
            let host = host.clone();
            async move {
                let mut r = PosterResult::default();
                let auth = format!("Bearer {}", slot.token);
                for body in bodies {
                    if deadline.is_some_and(|d| start.elapsed() >= d) {
                        break;
                    }
                    // What goes on the wire besides the body (HTTP/1.1, as awc writes it; with
                    // --h2 HPACK sends far less after the first request on a connection).
                    r.header_bytes += (format!("POST {} HTTP/1.1\r\n", slot.path).len()
                        + format!("host: {host}\r\n").len()
                        + format!("authorization: {auth}\r\n").len()
                        + "content-type: application/cbor\r\n".len()
                        // awc asks for no compression unless built with a compression feature.
                        + "accept-encoding: identity\r\n".len()
                        + format!("content-length: {}\r\n", body.len()).len()
                        + 2) as u64;
                    r.body_bytes += body.len() as u64;
                    let sent = Instant::now();
                    match post_one(&client, &url, &auth, body).await {
                        Ok(index) => {
                            if index == 0 {
                                r.bad_index += 1;
                            }
                            r.samples.push(Sample {
                                topic_no: slot.topic_no,
                                index,
                                sent,
                                latency: sent.elapsed(),
                            });
                        }
                        Err(e) => *r.errors.entry(e).or_default() += 1,
                    }
                }
                r
            }
        });
        let mut out = PosterResult::default();
        for r in join_all(futs).await {
            out.samples.extend(r.samples);
            for (k, v) in r.errors {
                *out.errors.entry(k).or_default() += v;
            }
            out.bad_index += r.bad_index;
            out.body_bytes += r.body_bytes;
            out.header_bytes += r.header_bytes;
        }
        // Connections stay open (the client is alive) until the socket counters are read.
        end.wait();
        drop(client);
        Ok(out)
    })
}

/// Where poster threads wait when they are done ([`EndBarriers::done`]) and until the main
/// thread has read the socket counters ([`EndBarriers::release`]).
struct EndBarriers {
    done: Barrier,
    release: Barrier,
}

impl EndBarriers {
    fn new(n: usize) -> Self {
        EndBarriers {
            done: Barrier::new(n),
            release: Barrier::new(n),
        }
    }

    fn wait(&self) {
        self.done.wait();
        self.release.wait();
    }
}

/// Bytes received and sent by the server's established sockets on the client API port, from
/// `ss -tin` (`bytes_received`, `bytes_acked`), or `None` if `ss` is not available.
fn socket_bytes(url: &str) -> Option<(u64, u64)> {
    let port = url.rsplit(':').next()?;
    let out = Command::new("ss")
        .args(["-tinH", "state", "established"])
        .arg(format!("( sport = :{port} )"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let sum = |key: &str| -> u64 {
        text.split_whitespace()
            .filter_map(|f| f.strip_prefix(key))
            .filter_map(|v| v.parse::<u64>().ok())
            .sum()
    };
    Some((sum("bytes_received:"), sum("bytes_acked:")))
}

/// Posts one message; its log index, or why not.
async fn post_one(client: &awc::Client, url: &str, auth: &str, body: Bytes) -> Res<u64> {
    let mut resp = client
        .post(url)
        .insert_header(("authorization", auth))
        .insert_header(("content-type", "application/cbor"))
        .send_body(body)
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = resp.status();
    let bytes = resp
        .body()
        .limit(64 * 1024)
        .await
        .map_err(|e| format!("transport: {e}"))?;
    if !status.is_success() {
        return Err(error_from_response("post", status.as_u16(), &bytes).to_string());
    }
    let answer = AppendResponse::from_cbor(&bytes).map_err(|e| format!("answer: {e}"))?;
    Ok(answer.index.get())
}

/// Frame arrivals: (topic number, index, when).
type Arrivals = Vec<(u32, u64, Instant)>;

fn watcher_thread(
    url: String,
    trust: Trust,
    tokens: Vec<String>,
    names: HashMap<String, u32>,
    barrier: Arc<Barrier>,
    stop: mpsc::Receiver<()>,
) -> Res<Arrivals> {
    actix_rt::System::new().block_on(async move {
        let mut streams = Vec::new();
        let mut failure = None;
        for token in &tokens {
            let opened = match Http::new(&url, &trust) {
                Ok(http) => http.stream(token).await.map(|s| (http, s)),
                Err(e) => Err(e),
            };
            match opened {
                Ok(s) => streams.push(s),
                Err(e) => failure = Some(format!("stream: {e}")),
            }
        }
        barrier.wait();
        if let Some(f) = failure {
            return Err(f);
        }
        let arrivals = Rc::new(std::cell::RefCell::new(Arrivals::new()));
        let names = Rc::new(names);
        let mut tasks = Vec::new();
        for (_http, mut stream) in streams {
            let arrivals = arrivals.clone();
            let names = names.clone();
            tasks.push(actix_rt::spawn(async move {
                while let Ok(Some(frame)) = stream.next_frame().await {
                    let now = Instant::now();
                    if let Some(no) = names.get(frame.topic.as_str()) {
                        arrivals.borrow_mut().push((*no, frame.index.get(), now));
                    }
                }
            }));
        }
        // The stop signal comes through a std channel: poll it.
        while let Err(mpsc::TryRecvError::Empty) = stop.try_recv() {
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        for t in tasks {
            t.abort();
        }
        Ok(arrivals.take())
    })
}

#[derive(Debug, Serialize)]
struct PostReport {
    mode: &'static str,
    topics: usize,
    members: usize,
    posters: usize,
    size: usize,
    ws_watchers: usize,
    generator_threads: usize,
    http2_offered: bool,
    seconds: f64,
    accepted: usize,
    errors: BTreeMap<String, u64>,
    answers_with_bad_index: u64,
    duplicate_indices: usize,
    msgs_per_sec: f64,
    post_latency_ms: Percentiles,
    ws_delivery_ms: Percentiles,
    ws_frames_matched: usize,
    ws_frames_expected: usize,
    body_bytes_per_msg: f64,
    header_bytes_per_msg: f64,
    request_bytes_per_msg: f64,
    /// Bytes the server's sockets received (TLS records, handshakes included) per accepted
    /// message, from `ss -ti` while the connections were still open.
    wire_bytes_in_per_msg: Option<f64>,
    /// Bytes the server's sockets sent (answers and WebSocket frames) per accepted message.
    wire_bytes_out_per_msg: Option<f64>,
    server_rss_mib_before: f64,
    server_rss_mib_after: f64,
    server_hwm_mib: f64,
    server_cpu_secs: f64,
    server_cpu_cores: f64,
    server_cpu_us_per_msg: f64,
    generator_cpu_secs: f64,
    generator_cpu_cores: f64,
    loadavg_before: String,
    loadavg_after: String,
}

#[derive(Debug, Default, Serialize)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

fn percentiles(mut v: Vec<Duration>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_unstable();
    let at = |q: f64| {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v[i].as_secs_f64() * 1000.0
    };
    Percentiles {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[allow(clippy::too_many_arguments)]
fn post_report(
    args: &Args,
    r: &PosterResult,
    arrivals: &Arrivals,
    elapsed: Duration,
    before: &ProcStats,
    after: &ProcStats,
    load: (String, String),
    generator_cpu_secs: f64,
    wire: Option<(u64, u64)>,
) -> PostReport {
    let n = r.samples.len();
    let sent: HashMap<(u32, u64), Instant> = r
        .samples
        .iter()
        .map(|s| ((s.topic_no, s.index), s.sent))
        .collect();
    let delivery: Vec<Duration> = arrivals
        .iter()
        .filter_map(|(t, i, at)| {
            sent.get(&(*t, *i))
                .map(|s| at.saturating_duration_since(*s))
        })
        .collect();
    let attempts = n as u64 + r.errors.values().sum::<u64>();
    let per_attempt = |b: u64| {
        if attempts == 0 {
            0.0
        } else {
            b as f64 / attempts as f64
        }
    };
    let per_msg = |x: f64| if n == 0 { 0.0 } else { x / n as f64 };
    let cpu = after.cpu_secs - before.cpu_secs;
    PostReport {
        mode: "post",
        topics: args.topics,
        members: args.members,
        posters: args.posters,
        size: args.size,
        ws_watchers: args.ws_watchers,
        generator_threads: args.threads,
        http2_offered: args.h2,
        seconds: elapsed.as_secs_f64(),
        accepted: n,
        errors: r.errors.clone(),
        answers_with_bad_index: r.bad_index,
        duplicate_indices: n - sent.len(),
        msgs_per_sec: n as f64 / elapsed.as_secs_f64(),
        post_latency_ms: percentiles(r.samples.iter().map(|s| s.latency).collect()),
        ws_frames_matched: delivery.len(),
        ws_frames_expected: n * args.ws_watchers,
        ws_delivery_ms: percentiles(delivery),
        body_bytes_per_msg: per_attempt(r.body_bytes),
        header_bytes_per_msg: per_attempt(r.header_bytes),
        request_bytes_per_msg: per_attempt(r.body_bytes + r.header_bytes),
        server_rss_mib_before: mib(before.rss_kib),
        server_rss_mib_after: mib(after.rss_kib),
        server_hwm_mib: mib(after.hwm_kib),
        server_cpu_secs: cpu,
        server_cpu_cores: cpu / elapsed.as_secs_f64(),
        server_cpu_us_per_msg: per_msg(cpu * 1e6),
        generator_cpu_secs,
        wire_bytes_in_per_msg: wire.map(|(rx, _)| per_msg(rx as f64)),
        wire_bytes_out_per_msg: wire.map(|(_, tx)| per_msg(tx as f64)),
        generator_cpu_cores: generator_cpu_secs / elapsed.as_secs_f64(),
        loadavg_before: load.0,
        loadavg_after: load.1,
    }
}

fn print_report<T: Serialize + std::fmt::Debug>(json: bool, report: &T) -> Res<()> {
    let text = if json {
        serde_json::to_string_pretty(report).map_err(|e| e.to_string())?
    } else {
        // A readable listing: one `key: value` per line.
        let value = serde_json::to_value(report).map_err(|e| e.to_string())?;
        let mut out = String::new();
        if let serde_json::Value::Object(map) = value {
            for (k, v) in map {
                out.push_str(&format!("{k:<28} {v}\n"));
            }
        }
        out
    };
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{text}").map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Idle mode: memory with many topics

#[derive(Debug, Serialize)]
struct IdleReport {
    mode: &'static str,
    topics: usize,
    users: usize,
    create_seconds: f64,
    rss_mib_fresh: f64,
    rss_mib_after_create: f64,
    hwm_mib_after_create: f64,
    rss_mib_after_touch: f64,
    hwm_mib_after_touch: f64,
    touch_seconds: f64,
    touch_errors: usize,
    rss_mib_after_restart: f64,
    rss_mib_after_restart_touch: f64,
    hwm_mib_after_restart_touch: f64,
    restart_touch_errors: usize,
    data_dir_mib: f64,
    loadavg_after: String,
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn idle_mode(args: &Args, n: usize) -> Res<()> {
    let bin = server_bin(args)?;
    let work = WorkDir::new(args.keep)?;
    let mut server = Server::start(&bin, &work.path, args.server_workers)?;
    log(format!("server pid {} at {}", server.pid(), server.url));
    // Each topic takes one Topic Key from its creator and one from its partner.
    let user_count = (2 * n).div_ceil(TOPIC_KEYS_PER_USER).max(2);
    let conc = args.setup_concurrency.max(1);
    let sys = actix_rt::System::new();
    let fresh = sys.block_on(async {
        server.wait_ready().await?;
        Ok::<_, String>(server.stats())
    })?;
    let mut users = sys.block_on(register_users(&server, &work.path, "m", user_count, conc))?;
    log(format!("registered {user_count} users"));
    // Topic i: creator i mod U, partner i+1 mod U.
    let created = Instant::now();
    let mut topics: Vec<Option<TopicId>> = vec![None; n];
    sys.block_on(async {
        let partner_ids: Vec<UserId> = users.iter().map(|c| c.user().clone()).collect();
        let u = users.len();
        let mut work_lists: Vec<(usize, &mut Client)> = users.iter_mut().enumerate().collect();
        for chunk in work_lists.chunks_mut(conc) {
            let futs = chunk.iter_mut().map(|(ui, client)| {
                let ui = *ui;
                let partner = partner_ids[(ui + 1) % u].clone();
                async move {
                    let mut mine = Vec::new();
                    for i in (ui..n).step_by(u) {
                        match client
                            .create_topic(&[(partner.clone(), Role::Writer)], History::Shared)
                            .await
                        {
                            Ok(t) => mine.push((i, t)),
                            Err(e) => return Err(format!("create topic {i}: {e}")),
                        }
                    }
                    Ok(mine)
                }
            });
            for r in join_all(futs).await {
                for (i, t) in r? {
                    topics[i] = Some(t);
                }
            }
            log(format!(
                "created {} topics",
                topics.iter().filter(|t| t.is_some()).count()
            ));
        }
        Ok::<_, String>(())
    })?;
    let create_seconds = created.elapsed().as_secs_f64();
    let after_create = server.stats();
    log("touching every topic once");
    let touched = Instant::now();
    let errors = sys.block_on(touch_all(&mut users, &topics, conc));
    let touch_seconds = touched.elapsed().as_secs_f64();
    let after_touch = server.stats();
    log("restarting the server (topics load lazily)");
    server.restart()?;
    let after_restart = sys.block_on(async {
        server.wait_ready().await?;
        // Let the allocator settle.
        actix_rt::time::sleep(Duration::from_millis(500)).await;
        Ok::<_, String>(server.stats())
    })?;
    log("touching every topic once after the restart");
    let restart_errors = sys.block_on(touch_all(&mut users, &topics, conc));
    let after_restart_touch = server.stats();
    let report = IdleReport {
        mode: "idle",
        topics: n,
        users: user_count,
        create_seconds,
        rss_mib_fresh: mib(fresh.rss_kib),
        rss_mib_after_create: mib(after_create.rss_kib),
        hwm_mib_after_create: mib(after_create.hwm_kib),
        rss_mib_after_touch: mib(after_touch.rss_kib),
        hwm_mib_after_touch: mib(after_touch.hwm_kib),
        touch_seconds,
        touch_errors: errors,
        rss_mib_after_restart: mib(after_restart.rss_kib),
        rss_mib_after_restart_touch: mib(after_restart_touch.rss_kib),
        hwm_mib_after_restart_touch: mib(after_restart_touch.hwm_kib),
        restart_touch_errors: restart_errors,
        data_dir_mib: dir_size(&server.data_dir) as f64 / (1024.0 * 1024.0),
        loadavg_after: format!("{} (cpu pressure {})", loadavg(), cpu_pressure()),
    };
    server.stop()?;
    print_report(args.json, &report)
}

/// Posts one message into every topic through the client library (which reads the topic's
/// log and checkpoint first); returns how many failed.
async fn touch_all(users: &mut [Client], topics: &[Option<TopicId>], conc: usize) -> usize {
    let n = topics.len();
    let u = users.len();
    let mut work_lists: Vec<(usize, &mut Client)> = users.iter_mut().enumerate().collect();
    let mut errors = 0usize;
    for chunk in work_lists.chunks_mut(conc.max(1)) {
        let futs = chunk.iter_mut().map(|(ui, client)| {
            let ui = *ui;
            async move {
                let mut errors = 0usize;
                for i in (ui..n).step_by(u) {
                    let Some(t) = &topics[i] else { continue };
                    if let Err(e) = client.send(t, b"touch").await {
                        if errors == 0 {
                            log(format!("touch {t}: {e}"));
                        }
                        errors += 1;
                    }
                }
                errors
            }
        });
        errors += join_all(futs).await.into_iter().sum::<usize>();
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = percentiles(v);
        assert_eq!(p.p50, 50.0);
        assert_eq!(p.p90, 90.0);
        assert_eq!(p.p99, 99.0);
        assert_eq!(p.max, 100.0);
        let one = percentiles(vec![Duration::from_millis(7)]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert_eq!(percentiles(Vec::new()).max, 0.0);
    }

    #[test]
    fn proc_stats_of_this_process() {
        let s = ProcStats::read(std::process::id());
        assert!(s.rss_kib > 0);
        assert!(s.hwm_kib >= s.rss_kib);
        assert!(s.cpu_secs >= 0.0);
        // A process that does not exist reads as zeros, not a panic.
        let none = ProcStats::read(u32::MAX);
        assert_eq!(none.rss_kib, 0);
    }

    #[test]
    fn topic_paths_are_percent_encoded() {
        let topic: TopicId = "!aaaaaaaaaaaaaaaaaaaaaaaaaa:localhost".parse().unwrap();
        assert_eq!(
            topic_path(&topic, "/messages"),
            "/v1/topics/%21aaaaaaaaaaaaaaaaaaaaaaaaaa%3Alocalhost/messages"
        );
    }
}
