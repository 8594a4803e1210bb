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
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use awc::http::Method;
use serde::Serialize;

use rendezvous_client::Client;
use rendezvous_client::http::Http;
use rendezvous_protocol::api::TopicsResponse;
use rendezvous_protocol::ids::{Epoch, MemberIndex, TopicId, UserId};
use rendezvous_protocol::message::encrypt;
use rendezvous_protocol::tlog::{TreeSize, empty_root};
use rendezvous_protocol::topic::{History, Role};

use crate::Res;
use crate::args::Args;
use crate::clients::{Slot, register_users, slots_for, token_of};
use crate::report::{log, print_report};
use crate::server::{Server, WorkDir, free_port, server_bin};
use crate::stats::{cpu_pressure, loadavg};

mod latency;
mod posting;

use latency::{LatencyReport, latency_phase};
use posting::{CatchupReport, ThroughputReport, catchup_phase, throughput_phase};

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
        .map(|_| free_port())
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
        .map(|t| (t.topic.as_str().to_owned(), t.size.get()))
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
    let keys = slot.message_key.epoch_keys(&slot.topic, Epoch(0));
    let plaintext = vec![b'x'; size];
    (0..n)
        .map(|_| {
            encrypt(
                &slot.topic,
                &keys,
                MemberIndex(slot.member),
                slot.topic_key.signing(),
                TreeSize(0),
                &empty_root(),
                &plaintext,
            )
            .map(|m| Bytes::from(m.to_wire()))
            .map_err(|e| format!("encrypt: {e}"))
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
