//! The latency phase: b posts at a fixed rate into a topic hosted on a, c's watcher receives.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use serde::Serialize;

use rendezvous_client::http::{Http, error_from_response};
use rendezvous_client::tls::{Trust, client_config};
use rendezvous_protocol::api::{AppendResponse, Body};
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::topic::{ENTRY_MESSAGE, LogEntry};

use super::{BTreeMapF, Setup, load_now, ms, prepare};
use crate::Res;
use crate::args::Args;
use crate::clients::{Slot, token_of};
use crate::posters::TIMEOUT;
use crate::report::{Percentiles, log, percentiles};
use crate::server::Server;

#[derive(Debug, Serialize)]
pub(super) struct LatencyReport {
    pub(super) rate_per_sec: f64,
    pub(super) seconds: f64,
    pub(super) warmup_seconds: f64,
    pub(super) size: usize,
    /// Posts timed (after the warm-up).
    pub(super) measured: usize,
    /// Of those, frames that reached c's watcher.
    pub(super) arrived: usize,
    /// From the start of b's POST to the frame on c.
    pub(super) delivery_ms: Percentiles,
    /// b's answer to the POST (it waits for the entry to come back from a).
    pub(super) post_answer_ms: Percentiles,
    /// Answers by status (200, 202 queued, errors).
    pub(super) answers: std::collections::BTreeMap<String, u64>,
    /// Largest delay of a POST's start past its schedule (the generator falling behind).
    pub(super) max_schedule_lag_ms: f64,
    /// A 4 KiB write + `fdatasync` in the work directory every 20 ms during the phase: how
    /// long the disk the servers share took to sync.
    pub(super) probe_fsync_ms: Percentiles,
    /// Probe syncs over [`SLOW_MS`].
    pub(super) probe_slow_fsyncs: usize,
    /// Posts delivered in over [`SLOW_MS`], and how many of them were in flight while a slow
    /// probe sync was.
    pub(super) slow_deliveries: usize,
    pub(super) slow_deliveries_during_slow_fsync: usize,
    /// The same for every post: the base rate to compare with.
    pub(super) deliveries_during_slow_fsync: usize,
    pub(super) server_cpu_secs: BTreeMapF,
    pub(super) load_before: String,
    pub(super) load_after: String,
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

/// When each message's frame reached c's watcher, by the message's wire bytes.
type Arrivals = Rc<RefCell<HashMap<Vec<u8>, Instant>>>;

/// The latency phase: b posts on schedule, c watches, a probe times the shared disk's syncs.
pub(super) async fn latency_phase(
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
    let (c, b) = (&servers[2], &servers[1]);
    let (watcher, arrivals) = watch(c, &token_of(&setup.users[2])?, topic).await?;
    log(format!(
        "latency: b posts {n} messages at {rate}/s ({warm} warm-up), c watches"
    ));
    let load_before = load_now();
    let probe_stop = Arc::new(AtomicBool::new(false));
    let probe = {
        let (dir, stop) = (dir.to_owned(), probe_stop.clone());
        std::thread::spawn(move || fsync_probe(&dir, stop))
    };
    let (sent, start) = post_on_schedule(b, slot, &bodies, rate).await?;
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
    let arrivals = arrivals.take();
    let m = measure(&sent, warm, &keys, &arrivals, &slow_probes, start);
    if let Some(path) = &args.latency_dump {
        std::fs::write(path, &m.dump).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(LatencyReport {
        rate_per_sec: rate,
        seconds: args.latency_seconds,
        warmup_seconds: args.latency_warmup,
        size: args.size,
        measured: n - warm,
        arrived: m.delivery.len(),
        delivery_ms: percentiles(m.delivery),
        post_answer_ms: percentiles(m.answer),
        answers: m.answers,
        max_schedule_lag_ms: m.lag.as_secs_f64() * 1000.0,
        probe_fsync_ms: percentiles(
            probe
                .iter()
                .map(|(a, b)| b.saturating_duration_since(*a))
                .collect(),
        ),
        probe_slow_fsyncs: slow_probes.len(),
        slow_deliveries: m.slow,
        slow_deliveries_during_slow_fsync: m.slow_during,
        deliveries_during_slow_fsync: m.during,
        server_cpu_secs: BTreeMapF::new(),
        load_before,
        load_after,
    })
}

/// Opens a stream on c for `token` and records when each message of `topic` arrives.
async fn watch(
    c: &Server,
    token: &str,
    topic: &TopicId,
) -> Res<(actix_rt::task::JoinHandle<()>, Arrivals)> {
    let http_c = Http::new(&c.url, &c.trust()?).map_err(|e| e.to_string())?;
    let mut stream = http_c
        .stream(token)
        .await
        .map_err(|e| format!("stream on c: {e}"))?;
    let arrivals: Arrivals = Rc::default();
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
    Ok((watcher, arrivals))
}

/// Posts `bodies` on b at `rate`, open loop: each post starts on its schedule, whether or not
/// the earlier ones were answered. What each post did, and when the clock started.
async fn post_on_schedule(
    b: &Server,
    slot: &Slot,
    bodies: &[Bytes],
    rate: f64,
) -> Res<(Vec<Option<Posted>>, Instant)> {
    let client = Rc::new(awc_client(&b.trust()?)?);
    let url = format!("{}{}", b.url, slot.path);
    let auth = format!("Bearer {}", slot.token);
    let sent: Rc<RefCell<Vec<Option<Posted>>>> =
        Rc::new(RefCell::new((0..bodies.len()).map(|_| None).collect()));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(bodies.len());
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
    Ok((sent.take(), start))
}

/// What the timed posts (after the warm-up) show.
struct Measured {
    delivery: Vec<Duration>,
    answer: Vec<Duration>,
    answers: std::collections::BTreeMap<String, u64>,
    lag: Duration,
    slow: usize,
    slow_during: usize,
    during: usize,
    /// One line per post, for `--latency-dump`.
    dump: String,
}

fn measure(
    sent: &[Option<Posted>],
    warm: usize,
    keys: &[Vec<u8>],
    arrivals: &HashMap<Vec<u8>, Instant>,
    slow_probes: &[(Instant, Instant)],
    start: Instant,
) -> Measured {
    let mut m = Measured {
        delivery: Vec::new(),
        answer: Vec::new(),
        answers: std::collections::BTreeMap::new(),
        lag: Duration::ZERO,
        slow: 0,
        slow_during: 0,
        during: 0,
        dump: String::from("# i, start ms after the clock, delivery ms, answer ms\n"),
    };
    for (i, p) in sent.iter().enumerate().skip(warm) {
        let Some(p) = p else { continue };
        m.lag = m.lag.max(p.sent.saturating_duration_since(p.target));
        m.answer.push(p.answered.saturating_duration_since(p.sent));
        *m.answers.entry(p.status.clone()).or_default() += 1;
        let at = keys.get(i).and_then(|k| arrivals.get(k));
        if let Some(at) = at {
            let took = at.saturating_duration_since(p.sent);
            m.delivery.push(took);
            let overlaps = slow_probes.iter().any(|(a, b)| *a < *at && *b > p.sent);
            m.during += usize::from(overlaps);
            if ms(took) > SLOW_MS {
                m.slow += 1;
                m.slow_during += usize::from(overlaps);
            }
        }
        m.dump.push_str(&format!(
            "{i} {:.1} {} {:.2}\n",
            ms(p.sent.saturating_duration_since(start)),
            at.map(|a| format!("{:.2}", ms(a.saturating_duration_since(p.sent))))
                .unwrap_or_else(|| "-".into()),
            ms(p.answered.saturating_duration_since(p.sent)),
        ));
    }
    m
}
