//! Federation mode (`--federation`, `BENCHMARKS.md` "Federation (three servers on one box)"):
//! three `rendezvous serve` processes named a.test, b.test and c.test on loopback, with
//! certificates from a private CA made by `rendezvous federation-ca` / `federation-cert` and
//! `[federation.overrides]` pointing each name at its federation listener (no DNS). Every topic
//! is hosted on a.test (`federation-api.md` §9). Three phases:
//!
//! - **latency**: a topic with members on a, b and c; a poster on b posts at a fixed rate (open
//!   loop: each post starts on its schedule, whether or not the earlier ones were answered) and
//!   a WebSocket watcher on c times each message from the start of b's `POST` to the arrival of
//!   its frame. A frame is matched to its post by the message's wire bytes: every message has a
//!   fresh random nonce, the hosting server stores the canonical bytes it was sent, and the
//!   frame carries the log entry `[1, message bytes]` unchanged, so equal bytes are the same
//!   post. This does not depend on b's answer (which may be `202 queued` without an index).
//! - **throughput**: topics with members on a and c; closed-loop posters on a as fast as they
//!   go; c's topic sizes (`GET /v1/topics`) are polled to count the entries c applied per
//!   second.
//! - **catch-up**: c is stopped (SIGTERM), `--catchup-messages` are posted on a, c is started
//!   again, and c's topic size is polled until it has them all.

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use awc::http::Method;
use serde::Serialize;

use rendezvous::api::{AppendResponse, Body, TopicsResponse};
use rendezvous::client::Client;
use rendezvous::client::http::{Http, error_from_response};
use rendezvous::client::tls::{Trust, client_config};
use rendezvous::ids::{TopicId, UserId};
use rendezvous::message::encrypt;
use rendezvous::topic::{ENTRY_MESSAGE, History, LogEntry, Role};

use super::{
    Args, EndBarriers, Percentiles, PosterPlan, PosterResult, PosterSettings, Res, Server, Slot,
    TIMEOUT, WorkDir, cpu_pressure, loadavg, log, percentiles, poster_thread, print_report,
    register_users, server_bin, slots_for, start_perf, stop_perf, token_of,
};

/// The three servers, in the order a (host), b, c.
const NAMES: [&str; 3] = ["a.test", "b.test", "c.test"];
/// How long to wait for entries to reach c before giving up.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(120);
/// How often c's topic sizes are read.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Makes the CA and each server's certificate with the homeserver binary itself.
fn make_certificates(bin: &Path, dir: &Path) -> Res<()> {
    let run = |args: &[&str]| -> Res<()> {
        let out = std::process::Command::new(bin)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} {}: {}",
                bin.display(),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    };
    let ca = dir.join("ca");
    let path = |p: &Path| p.display().to_string();
    run(&["federation-ca", "--out", &path(&ca)])?;
    for name in NAMES {
        run(&[
            "federation-cert",
            "--name",
            name,
            "--out",
            &path(&dir.join(name).join("cert")),
            "--ca-cert",
            &path(&ca.join("ca.pem")),
            "--ca-key",
            &path(&ca.join("ca.key")),
        ])?;
    }
    Ok(())
}

/// Starts the three servers, each with the others' federation listeners as static overrides.
fn start_servers(args: &Args, bin: &Path, dir: &Path) -> Res<Vec<Server>> {
    make_certificates(bin, dir)?;
    let ports = NAMES
        .iter()
        .map(|_| super::free_port())
        .collect::<Res<Vec<u16>>>()?;
    let overrides: String = NAMES
        .iter()
        .zip(&ports)
        .map(|(n, p)| format!("\"{n}\" = \"127.0.0.1:{p}\"\n"))
        .collect();
    let mut servers = Vec::new();
    for (name, port) in NAMES.iter().zip(&ports) {
        let own = dir.join(name);
        let cert = own.join("cert");
        let extra = format!(
            "\n[federation]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\ntls_cert = \
             \"{}\"\ntls_key = \"{}\"\nca_file = \"{}\"\n\n[federation.overrides]\n{overrides}",
            cert.join("cert.pem").display(),
            cert.join("key.pem").display(),
            dir.join("ca").join("ca.pem").display(),
        );
        let server = Server::start_named(bin, &own, name, args.server_workers, &extra)?;
        log(format!(
            "{name}: pid {}, client API {}, federation 127.0.0.1:{port}",
            server.pid(),
            server.url
        ));
        servers.push(server);
    }
    Ok(servers)
}

/// Sizes of the topics of the token's user on a server, by topic id.
async fn topic_sizes(http: &Http, token: &str) -> Res<HashMap<String, u64>> {
    let r: TopicsResponse = http
        .call(Method::GET, "/v1/topics", None, Some(token))
        .await
        .map_err(|e| e.to_string())?;
    Ok(r.topics
        .into_iter()
        .map(|t| (t.topic.as_str().to_owned(), t.size))
        .collect())
}

/// Waits until every topic in `topics` has at least `min` entries on the server.
async fn wait_sizes(http: &Http, token: &str, topics: &[TopicId], min: u64) -> Res<()> {
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        if let Ok(sizes) = topic_sizes(http, token).await
            && topics
                .iter()
                .all(|t| sizes.get(t.as_str()).is_some_and(|s| *s >= min))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "topics did not reach size {min} within {ARRIVAL_TIMEOUT:?}"
            ));
        }
        actix_rt::time::sleep(POLL_EVERY).await;
    }
}

/// Server CPU seconds (utime + stime) of the three servers.
fn cpu_of(servers: &[Server]) -> Vec<f64> {
    servers.iter().map(|s| s.stats().cpu_secs).collect()
}

fn cpu_since(servers: &[Server], before: &[f64]) -> BTreeMapF {
    NAMES
        .iter()
        .zip(cpu_of(servers).iter().zip(before))
        .map(|(n, (a, b))| ((*n).to_owned(), round3(a - b)))
        .collect()
}

type BTreeMapF = std::collections::BTreeMap<String, f64>;

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn load_now() -> String {
    format!("{} (cpu pressure {})", loadavg(), cpu_pressure())
}

#[derive(Debug, Serialize)]
struct FedReport {
    mode: &'static str,
    latency: Option<LatencyReport>,
    throughput: Option<ThroughputReport>,
    catchup: Vec<CatchupReport>,
}

/// Sets up users and topics and runs the phases asked for.
pub(super) fn federation_mode(args: &Args) -> Res<()> {
    let phases: Vec<&str> = args.phases.split(',').map(str::trim).collect();
    for p in &phases {
        if !["latency", "throughput", "catchup"].contains(p) {
            return Err(format!("unknown phase {p:?}"));
        }
    }
    let bin = server_bin(args)?;
    let work = WorkDir::new(args.keep)?;
    let mut servers = start_servers(args, &bin, &work.path)?;
    let sys = actix_rt::System::new();
    let throughput_topics = if phases.contains(&"throughput") {
        args.topics.max(1)
    } else {
        0
    };
    let setup = sys.block_on(setup(&servers, &work.path, throughput_topics))?;
    let mut report = FedReport {
        mode: "federation",
        latency: None,
        throughput: None,
        catchup: Vec::new(),
    };
    if phases.contains(&"latency") {
        let before = cpu_of(&servers);
        let mut r = sys.block_on(latency_phase(args, &work.path, &servers, &setup))?;
        r.server_cpu_secs = cpu_since(&servers, &before);
        log(format!(
            "latency: {} of {} arrived, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            r.arrived, r.measured, r.delivery_ms.p50, r.delivery_ms.p99, r.delivery_ms.max
        ));
        report.latency = Some(r);
    }
    if phases.contains(&"throughput") {
        let r = throughput_phase(&sys, args, &servers, &setup)?;
        log(format!(
            "throughput: a accepted {:.0}/s, c applied {:.0}/s while posting, {:.0}/s overall",
            r.a_msgs_per_sec, r.c_applied_per_sec_while_posting, r.c_applied_per_sec_overall
        ));
        report.throughput = Some(r);
    }
    if phases.contains(&"catchup") {
        for run in 0..args.catchup_runs.max(1) {
            let r = catchup_phase(&sys, args, &mut servers, &setup, run)?;
            log(format!(
                "catch-up {run}: {} entries on c {:.2} s after its start",
                r.messages, r.catchup_secs
            ));
            report.catchup.push(r);
        }
    }
    for s in &mut servers {
        let _ = s.stop();
    }
    print_report(args.json, &report)
}

/// Users, topics and the keys to post with.
struct Setup {
    /// a0, b0, c0.
    users: Vec<Client>,
    /// The latency topic (members on a, b, c) and b0's slot in it.
    latency: (TopicId, Arc<Slot>),
    /// Throughput topics (members on a and c) and a0's slots in them.
    throughput: Vec<(TopicId, Arc<Slot>)>,
    /// The catch-up topic (members on a and c) and a0's slot in it.
    catchup: (TopicId, Arc<Slot>),
}

async fn setup(servers: &[Server], dir: &Path, k: usize) -> Res<Setup> {
    let mut users = Vec::new();
    for (server, prefix) in servers.iter().zip(["a", "b", "c"]) {
        server.wait_ready().await?;
        let mut u = register_users(server, &dir.join(&server.name), prefix, 1, 1).await?;
        users.push(u.pop().ok_or("no user registered")?);
    }
    log("registered a0@a.test, b0@b.test, c0@c.test");
    let (b0, c0) = (users[1].user().clone(), users[2].user().clone());
    let latency = create(
        &mut users[0],
        &[(b0.clone(), Role::Writer), (c0.clone(), Role::Writer)],
    )
    .await?;
    let mut throughput = Vec::new();
    for _ in 0..k {
        throughput.push(create(&mut users[0], &[(c0.clone(), Role::Writer)]).await?);
    }
    let catchup = create(&mut users[0], &[(c0.clone(), Role::Writer)]).await?;
    log(format!("created {} topics on a.test", k + 2));
    let http_a = Http::new(&servers[0].url, &servers[0].trust()?).map_err(|e| e.to_string())?;
    let refs: Vec<&Client> = users.iter().collect();
    let latency_slot = slots_for(&http_a, &latency, 0, &refs)
        .await?
        .into_iter()
        .nth(1)
        .ok_or("no slot for b0")?;
    let mut tp = Vec::new();
    for (no, t) in throughput.iter().enumerate() {
        let slot = slots_for(&http_a, t, no as u32 + 1, &[refs[0], refs[2]])
            .await?
            .into_iter()
            .next()
            .ok_or("no slot for a0")?;
        tp.push((t.clone(), Arc::new(slot)));
    }
    let catchup_slot = slots_for(&http_a, &catchup, k as u32 + 1, &[refs[0], refs[2]])
        .await?
        .into_iter()
        .next()
        .ok_or("no slot for a0")?;
    // Every topic has reached c's mirror (and b's, for the latency topic).
    let (c, c_token) = (&servers[2], token_of(&users[2])?);
    let http_c = Http::new(&c.url, &c.trust()?).map_err(|e| e.to_string())?;
    let mut all: Vec<TopicId> = throughput.clone();
    all.push(latency.clone());
    all.push(catchup.clone());
    wait_sizes(&http_c, &c_token, &all, 1).await?;
    let http_b = Http::new(&servers[1].url, &servers[1].trust()?).map_err(|e| e.to_string())?;
    wait_sizes(
        &http_b,
        &token_of(&users[1])?,
        std::slice::from_ref(&latency),
        1,
    )
    .await?;
    log("every topic is mirrored");
    Ok(Setup {
        users,
        latency: (latency, Arc::new(latency_slot)),
        throughput: tp,
        catchup: (catchup, Arc::new(catchup_slot)),
    })
}

/// A topic created by `creator` (on a.test) with `members`.
async fn create(creator: &mut Client, members: &[(UserId, Role)]) -> Res<TopicId> {
    creator
        .create_topic(members, History::Shared)
        .await
        .map_err(|e| format!("create topic: {e}"))
}

/// Encrypts `n` messages of `size` bytes as the slot's member (`seen` = 0).
fn prepare(slot: &Slot, n: usize, size: usize) -> Res<Vec<Bytes>> {
    let keys = slot.message_key.epoch_keys(&slot.topic, 0);
    let plaintext = vec![b'x'; size];
    (0..n)
        .map(|_| {
            encrypt(
                &slot.topic,
                &keys,
                slot.member,
                slot.topic_key.signing(),
                0,
                &plaintext,
            )
            .map(|m| Bytes::from(m.to_wire()))
            .map_err(|e| format!("encrypt: {e}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Latency: b posts at a fixed rate, c's watcher receives

#[derive(Debug, Serialize)]
struct LatencyReport {
    rate_per_sec: f64,
    seconds: f64,
    warmup_seconds: f64,
    size: usize,
    /// Posts timed (after the warm-up).
    measured: usize,
    /// Of those, frames that reached c's watcher.
    arrived: usize,
    /// From the start of b's POST to the frame on c.
    delivery_ms: Percentiles,
    /// b's answer to the POST (it waits for the entry to come back from a).
    post_answer_ms: Percentiles,
    /// Answers by status (200, 202 queued, errors).
    answers: std::collections::BTreeMap<String, u64>,
    /// Largest delay of a POST's start past its schedule (the generator falling behind).
    max_schedule_lag_ms: f64,
    /// A 4 KiB write + `fdatasync` in the work directory every 20 ms during the phase: how
    /// long the disk the servers share took to sync.
    probe_fsync_ms: Percentiles,
    /// Probe syncs over [`SLOW_MS`].
    probe_slow_fsyncs: usize,
    /// Posts delivered in over [`SLOW_MS`], and how many of them were in flight while a slow
    /// probe sync was.
    slow_deliveries: usize,
    slow_deliveries_during_slow_fsync: usize,
    /// The same for every post: the base rate to compare with.
    deliveries_during_slow_fsync: usize,
    server_cpu_secs: BTreeMapF,
    load_before: String,
    load_after: String,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A delivery or a probe sync slower than this is "slow".
const SLOW_MS: f64 = 50.0;

/// Writes 4 KiB and syncs it every 20 ms in `dir` until `stop`; each sync's start and end.
fn fsync_probe(dir: &Path, stop: Arc<AtomicBool>) -> Res<Vec<(Instant, Instant)>> {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let block = vec![0u8; 4096];
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        file.write_all(&block)
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        out.push((t, Instant::now()));
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(out)
}

/// One scheduled post: its schedule, its start, its answer.
struct Posted {
    target: Instant,
    sent: Instant,
    answered: Instant,
    status: String,
}

/// Posts and returns the answer's status (`200`, `202`, or the error).
async fn post_status(client: &awc::Client, url: &str, auth: &str, body: Bytes) -> String {
    let resp = client
        .post(url)
        .insert_header(("authorization", auth))
        .insert_header(("content-type", "application/cbor"))
        .send_body(body)
        .await;
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => return format!("transport: {e}"),
    };
    let status = resp.status();
    let bytes = match resp.body().limit(64 * 1024).await {
        Ok(b) => b,
        Err(e) => return format!("transport: {e}"),
    };
    match status.as_u16() {
        200 => match AppendResponse::from_cbor(&bytes) {
            Ok(_) => "200".into(),
            Err(e) => format!("200 with a bad answer: {e}"),
        },
        202 => "202".into(),
        s => error_from_response("post", s, &bytes).to_string(),
    }
}

fn awc_client(trust: &Trust) -> Res<awc::Client> {
    let tls = client_config(trust).map_err(|e| e.to_string())?;
    Ok(awc::Client::builder()
        .connector(
            awc::Connector::new()
                .rustls_0_23(Arc::new(tls))
                .limit(0)
                .timeout(TIMEOUT),
        )
        .no_default_headers()
        .timeout(TIMEOUT)
        .finish())
}

async fn latency_phase(
    args: &Args,
    dir: &Path,
    servers: &[Server],
    setup: &Setup,
) -> Res<LatencyReport> {
    let rate = args.latency_rate;
    if rate.is_nan() || rate <= 0.0 {
        return Err("--latency-rate must be positive".into());
    }
    let (topic, slot) = &setup.latency;
    let warm = (args.latency_warmup * rate).round() as usize;
    let n = warm + (args.latency_seconds * rate).round() as usize;
    let bodies = prepare(slot, n, args.size)?;
    // Watcher on c.
    let (c, b) = (&servers[2], &servers[1]);
    let http_c = Http::new(&c.url, &c.trust()?).map_err(|e| e.to_string())?;
    let mut stream = http_c
        .stream(&token_of(&setup.users[2])?)
        .await
        .map_err(|e| format!("stream on c: {e}"))?;
    let arrivals: Rc<std::cell::RefCell<HashMap<Vec<u8>, Instant>>> = Rc::default();
    let watcher = {
        let (arrivals, topic) = (arrivals.clone(), topic.clone());
        actix_rt::spawn(async move {
            while let Ok(Some(frame)) = stream.next_frame().await {
                let now = Instant::now();
                if frame.topic != topic {
                    continue;
                }
                if let Ok(LogEntry(ENTRY_MESSAGE, bytes)) = LogEntry::from_wire(&frame.entry) {
                    arrivals.borrow_mut().entry(bytes).or_insert(now);
                }
            }
        })
    };
    let client = Rc::new(awc_client(&b.trust()?)?);
    let url = format!("{}{}", b.url, slot.path);
    let auth = format!("Bearer {}", slot.token);
    let sent: Rc<std::cell::RefCell<Vec<Option<Posted>>>> =
        Rc::new(std::cell::RefCell::new((0..n).map(|_| None).collect()));
    log(format!(
        "latency: b posts {n} messages at {rate}/s ({warm} warm-up), c watches"
    ));
    let load_before = load_now();
    let probe_stop = Arc::new(AtomicBool::new(false));
    let probe = {
        let (dir, stop) = (dir.to_owned(), probe_stop.clone());
        std::thread::spawn(move || fsync_probe(&dir, stop))
    };
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(n);
    for (i, body) in bodies.iter().enumerate() {
        let target = start + interval.mul_f64(i as f64);
        actix_rt::time::sleep_until(target.into()).await;
        let (client, url, auth, sent, body) = (
            client.clone(),
            url.clone(),
            auth.clone(),
            sent.clone(),
            body.clone(),
        );
        tasks.push(actix_rt::spawn(async move {
            let at = Instant::now();
            let status = post_status(&client, &url, &auth, body).await;
            let answered = Instant::now();
            if let Some(s) = sent.borrow_mut().get_mut(i) {
                *s = Some(Posted {
                    target,
                    sent: at,
                    answered,
                    status,
                });
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    // Let the last frames arrive.
    let keys: Vec<Vec<u8>> = bodies.iter().map(|b| b.to_vec()).collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && keys.iter().any(|k| !arrivals.borrow().contains_key(k)) {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.abort();
    probe_stop.store(true, Ordering::Relaxed);
    let probe = probe.join().map_err(|_| "the probe thread panicked")??;
    let slow_probes: Vec<(Instant, Instant)> = probe
        .iter()
        .copied()
        .filter(|(a, b)| ms(b.saturating_duration_since(*a)) > SLOW_MS)
        .collect();
    let load_after = load_now();
    let sent = sent.take();
    let arrivals = arrivals.take();
    let mut delivery = Vec::new();
    let mut answer = Vec::new();
    let mut answers = std::collections::BTreeMap::<String, u64>::new();
    let mut lag = Duration::ZERO;
    let (mut slow, mut slow_during, mut during) = (0, 0, 0);
    let mut dump = String::from("# i, start ms after the clock, delivery ms, answer ms\n");
    for (i, p) in sent.iter().enumerate().skip(warm) {
        let Some(p) = p else { continue };
        lag = lag.max(p.sent.saturating_duration_since(p.target));
        answer.push(p.answered.saturating_duration_since(p.sent));
        *answers.entry(p.status.clone()).or_default() += 1;
        let at = keys.get(i).and_then(|k| arrivals.get(k));
        if let Some(at) = at {
            let took = at.saturating_duration_since(p.sent);
            delivery.push(took);
            let overlaps = slow_probes.iter().any(|(a, b)| *a < *at && *b > p.sent);
            during += usize::from(overlaps);
            if ms(took) > SLOW_MS {
                slow += 1;
                slow_during += usize::from(overlaps);
            }
        }
        dump.push_str(&format!(
            "{i} {:.1} {} {:.2}\n",
            ms(p.sent.saturating_duration_since(start)),
            at.map(|a| format!("{:.2}", ms(a.saturating_duration_since(p.sent))))
                .unwrap_or_else(|| "-".into()),
            ms(p.answered.saturating_duration_since(p.sent)),
        ));
    }
    if let Some(path) = &args.latency_dump {
        std::fs::write(path, dump).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(LatencyReport {
        rate_per_sec: rate,
        seconds: args.latency_seconds,
        warmup_seconds: args.latency_warmup,
        size: args.size,
        measured: n - warm,
        arrived: delivery.len(),
        delivery_ms: percentiles(delivery),
        post_answer_ms: percentiles(answer),
        answers,
        max_schedule_lag_ms: lag.as_secs_f64() * 1000.0,
        probe_fsync_ms: percentiles(
            probe
                .iter()
                .map(|(a, b)| b.saturating_duration_since(*a))
                .collect(),
        ),
        probe_slow_fsyncs: slow_probes.len(),
        slow_deliveries: slow,
        slow_deliveries_during_slow_fsync: slow_during,
        deliveries_during_slow_fsync: during,
        server_cpu_secs: BTreeMapF::new(),
        load_before,
        load_after,
    })
}

// ---------------------------------------------------------------------------------------------
// Closed-loop posters on a, and c's sizes

/// Runs `posters` closed-loop posters over `threads` threads against `server` with `slots`
/// (round-robin), `total` messages or until `deadline`. Returns what they did, when the clock
/// started and how long they took.
fn run_posters(
    args: &Args,
    server: &Server,
    slots: &[Arc<Slot>],
    total: usize,
    deadline: Option<Duration>,
) -> Res<(PosterResult, Instant, Duration)> {
    let (posters, threads) = (args.posters.max(1), args.threads.max(1));
    let mut per_thread: Vec<Vec<PosterPlan>> = (0..threads).map(|_| Vec::new()).collect();
    for p in 0..posters {
        let count = total / posters + usize::from(p < total % posters);
        let slot = slots
            .get(p % slots.len().max(1))
            .ok_or("no slots to post with")?
            .clone();
        per_thread[p % threads].push(PosterPlan { slot, count });
    }
    let barrier = Arc::new(Barrier::new(threads + 1));
    let end = Arc::new(EndBarriers::new(threads + 1));
    let trust = server.trust()?;
    let mut handles = Vec::new();
    for plans in per_thread {
        let settings = PosterSettings {
            url: server.url.clone(),
            trust: trust.clone(),
            size: args.size,
            h2: args.h2,
            deadline,
        };
        let (barrier, end) = (barrier.clone(), end.clone());
        handles.push(std::thread::spawn(move || {
            poster_thread(settings, plans, barrier, end)
        }));
    }
    barrier.wait();
    let start = Instant::now();
    end.done.wait();
    let elapsed = start.elapsed();
    end.release.wait();
    let mut result = PosterResult::default();
    for h in handles {
        let r = h.join().map_err(|_| "a poster thread panicked")??;
        result.samples.extend(r.samples);
        for (k, v) in r.errors {
            *result.errors.entry(k).or_default() += v;
        }
    }
    Ok((result, start, elapsed))
}

/// Reads the summed size of `topics` on a server every [`POLL_EVERY`] from its own thread,
/// until the sum reaches `target` (once set above 0) or `stop` is set.
struct Poller {
    target: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(Instant, u64)>>,
}

impl Poller {
    fn start(server: &Server, token: String, topics: Vec<TopicId>) -> Res<Poller> {
        let (url, trust) = (server.url.clone(), server.trust()?);
        let target = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (target.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let mut samples = Vec::new();
                let Ok(http) = Http::new(&url, &trust) else {
                    return samples;
                };
                while !s.load(Ordering::Relaxed) {
                    if let Ok(sizes) = topic_sizes(&http, &token).await {
                        let sum = topics
                            .iter()
                            .map(|t| sizes.get(t.as_str()).copied().unwrap_or(0))
                            .sum::<u64>();
                        samples.push((Instant::now(), sum));
                        let want = t.load(Ordering::Relaxed);
                        if want > 0 && sum >= want {
                            break;
                        }
                    }
                    actix_rt::time::sleep(POLL_EVERY).await;
                }
                samples
            })
        });
        Ok(Poller {
            target,
            stop,
            handle,
        })
    }

    /// Waits until the target is reached or `timeout` passes; the samples.
    fn finish(self, target: u64, timeout: Duration) -> Res<Vec<(Instant, u64)>> {
        self.target.store(target, Ordering::Relaxed);
        let deadline = Instant::now() + timeout;
        while !self.handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .map_err(|_| "the poller thread panicked".into())
    }
}

/// The first sample with a size of at least `size`.
fn first_reaching(samples: &[(Instant, u64)], size: u64) -> Option<Instant> {
    samples.iter().find(|(_, s)| *s >= size).map(|(at, _)| *at)
}

/// The last size seen at or before `at`.
fn size_at(samples: &[(Instant, u64)], at: Instant) -> u64 {
    samples
        .iter()
        .take_while(|(t, _)| *t <= at)
        .last()
        .map(|(_, s)| *s)
        .unwrap_or(0)
}

#[derive(Debug, Serialize)]
struct ThroughputReport {
    topics: usize,
    posters: usize,
    size: usize,
    seconds: f64,
    a_accepted: usize,
    a_errors: std::collections::BTreeMap<String, u64>,
    a_msgs_per_sec: f64,
    a_post_latency_ms: Percentiles,
    /// Entries c applied from the clock's start to the end of posting, per second.
    c_applied_per_sec_while_posting: f64,
    /// Entries c was behind a when posting ended.
    c_behind_at_end: u64,
    /// When c had every entry, seconds after the clock started (None: not within the timeout).
    c_complete_after_secs: Option<f64>,
    /// Every entry over the time c took to have them all.
    c_applied_per_sec_overall: f64,
    server_cpu_secs: BTreeMapF,
    load_before: String,
    load_after: String,
}

fn throughput_phase(
    sys: &actix_rt::SystemRunner,
    args: &Args,
    servers: &[Server],
    setup: &Setup,
) -> Res<ThroughputReport> {
    let topics: Vec<TopicId> = setup.throughput.iter().map(|(t, _)| t.clone()).collect();
    let slots: Vec<Arc<Slot>> = setup.throughput.iter().map(|(_, s)| s.clone()).collect();
    let c_token = token_of(&setup.users[2])?;
    let seconds = args.seconds.unwrap_or(20.0);
    let total = (seconds * args.max_rate as f64).ceil() as usize;
    let before_sizes = sys.block_on(async {
        let http = Http::new(&servers[2].url, &servers[2].trust()?).map_err(|e| e.to_string())?;
        topic_sizes(&http, &c_token).await
    })?;
    let initial: u64 = topics
        .iter()
        .map(|t| before_sizes.get(t.as_str()).copied().unwrap_or(0))
        .sum();
    let poller = Poller::start(&servers[2], c_token, topics.clone())?;
    let perf = match &args.perf {
        Some(out) => {
            let i = NAMES
                .iter()
                .position(|n| *n == args.perf_server)
                .ok_or_else(|| format!("--perf-server must be one of {NAMES:?}"))?;
            Some(start_perf(
                servers[i].pid(),
                out,
                &args.perf_call_graph,
                args.perf_freq,
            )?)
        }
        None => None,
    };
    log(format!(
        "throughput: {} posters on a into {} topics for {seconds} s, c polled",
        args.posters,
        topics.len()
    ));
    let load_before = load_now();
    let before = cpu_of(servers);
    let (result, start, elapsed) = run_posters(
        args,
        &servers[0],
        &slots,
        total,
        Some(Duration::from_secs_f64(seconds)),
    )?;
    let end = start + elapsed;
    let n = result.samples.len();
    let target = initial + n as u64;
    let samples = poller.finish(target, ARRIVAL_TIMEOUT)?;
    let c_at_end = size_at(&samples, end).max(initial);
    let done = first_reaching(&samples, target);
    if let Some(p) = perf {
        stop_perf(p);
    }
    let load_after = load_now();
    let cpu = cpu_since(servers, &before);
    let applied_while = c_at_end.saturating_sub(initial) as f64 / elapsed.as_secs_f64();
    let complete = done.map(|d| d.saturating_duration_since(start).as_secs_f64());
    Ok(ThroughputReport {
        topics: topics.len(),
        posters: args.posters,
        size: args.size,
        seconds: elapsed.as_secs_f64(),
        a_accepted: n,
        a_errors: result.errors,
        a_msgs_per_sec: n as f64 / elapsed.as_secs_f64(),
        a_post_latency_ms: percentiles(result.samples.iter().map(|s| s.latency).collect()),
        c_applied_per_sec_while_posting: applied_while,
        c_behind_at_end: target.saturating_sub(c_at_end),
        c_complete_after_secs: complete,
        c_applied_per_sec_overall: complete.map(|s| n as f64 / s).unwrap_or(0.0),
        server_cpu_secs: cpu,
        load_before,
        load_after,
    })
}

// ---------------------------------------------------------------------------------------------
// Catch-up: c is down while a takes messages

#[derive(Debug, Serialize)]
struct CatchupReport {
    run: usize,
    messages: usize,
    a_accepted: usize,
    a_errors: std::collections::BTreeMap<String, u64>,
    a_post_secs: f64,
    /// How long c was down (SIGTERM to the start of its new process).
    c_down_secs: f64,
    /// From starting c's process until it printed its certificate fingerprint (started).
    c_start_secs: f64,
    /// From starting c's process until its mirror first grew.
    first_entry_secs: Option<f64>,
    /// From starting c's process until its mirror had every message: the figure.
    catchup_secs: f64,
    complete: bool,
    c_size_before: u64,
    c_size_after: u64,
    /// a's failed transactions to c in this run (its log's "transaction failed" lines).
    a_failed_transactions: usize,
    server_cpu_secs: BTreeMapF,
    load_before: String,
    load_after: String,
}

fn count_in_log(server: &Server, needle: &str) -> usize {
    std::fs::read_to_string(&server.log)
        .map(|t| t.lines().filter(|l| l.contains(needle)).count())
        .unwrap_or(0)
}

fn catchup_phase(
    sys: &actix_rt::SystemRunner,
    args: &Args,
    servers: &mut [Server],
    setup: &Setup,
    run: usize,
) -> Res<CatchupReport> {
    let (topic, slot) = &setup.catchup;
    let m = args.catchup_messages;
    let c_token = token_of(&setup.users[2])?;
    let http_sizes = |server: &Server| -> Res<u64> {
        let http = Http::new(&server.url, &server.trust()?).map_err(|e| e.to_string())?;
        let token = c_token.clone();
        let t = topic.as_str().to_owned();
        sys.block_on(async move {
            Ok(topic_sizes(&http, &token)
                .await?
                .get(&t)
                .copied()
                .unwrap_or(0))
        })
    };
    let before_size = http_sizes(&servers[2])?;
    let load_before = load_now();
    let mut before = cpu_of(servers);
    let failed_before = count_in_log(&servers[0], "transaction failed");
    log(format!("catch-up {run}: stopping c (SIGTERM)"));
    servers[2].stop()?;
    let down = Instant::now();
    let (result, _, elapsed) = run_posters(args, &servers[0], std::slice::from_ref(slot), m, None)?;
    let accepted = result.samples.len();
    log(format!(
        "catch-up {run}: a accepted {accepted} in {:.2} s; starting c",
        elapsed.as_secs_f64()
    ));
    let target = before_size + accepted as u64;
    let t0 = Instant::now();
    let c_down = t0.duration_since(down);
    servers[2].spawn()?;
    let started = t0.elapsed();
    // c's CPU time is its new process's.
    before[2] = 0.0;
    let samples = Poller::start(&servers[2], c_token.clone(), vec![topic.clone()])?
        .finish(target, ARRIVAL_TIMEOUT)?;
    let done = first_reaching(&samples, target);
    let grew = samples
        .iter()
        .find(|(_, s)| *s > before_size)
        .map(|(at, _)| at.saturating_duration_since(t0).as_secs_f64());
    let after_size = samples.last().map(|(_, s)| *s).unwrap_or(0);
    let load_after = load_now();
    Ok(CatchupReport {
        run,
        messages: m,
        a_accepted: accepted,
        a_errors: result.errors,
        a_post_secs: elapsed.as_secs_f64(),
        c_down_secs: c_down.as_secs_f64(),
        c_start_secs: started.as_secs_f64(),
        first_entry_secs: grew,
        catchup_secs: done
            .map(|d| d.saturating_duration_since(t0))
            .unwrap_or(ARRIVAL_TIMEOUT)
            .as_secs_f64(),
        complete: done.is_some(),
        c_size_before: before_size,
        c_size_after: after_size,
        a_failed_transactions: count_in_log(&servers[0], "transaction failed")
            .saturating_sub(failed_before),
        server_cpu_secs: cpu_since(servers, &before),
        load_before,
        load_after,
    })
}
