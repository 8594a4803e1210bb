//! The throughput and catch-up phases: closed-loop posters on a, and c's topic sizes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde::Serialize;

use rendezvous_client::http::Http;
use rendezvous_protocol::ids::TopicId;

use super::{
    ARRIVAL_TIMEOUT, BTreeMapF, NAMES, POLL_EVERY, Setup, cpu_of, cpu_since, load_now, topic_sizes,
};
use crate::Res;
use crate::args::Args;
use crate::clients::{Slot, token_of};
use crate::perf::{start_perf, stop_perf};
use crate::posters::{EndBarriers, PosterResult, PosterSettings, plan_posters, poster_thread};
use crate::report::{Percentiles, log, percentiles};
use crate::server::Server;

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
    let per_thread = plan_posters(args.posters, args.threads, slots, total)?;
    let threads = per_thread.len();
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
        result.merge(h.join().map_err(|_| "a poster thread panicked")??);
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
pub(super) struct ThroughputReport {
    pub(super) topics: usize,
    pub(super) posters: usize,
    pub(super) size: usize,
    pub(super) seconds: f64,
    pub(super) a_accepted: usize,
    pub(super) a_errors: std::collections::BTreeMap<String, u64>,
    pub(super) a_msgs_per_sec: f64,
    pub(super) a_post_latency_ms: Percentiles,
    /// Entries c applied from the clock's start to the end of posting, per second.
    pub(super) c_applied_per_sec_while_posting: f64,
    /// Entries c was behind a when posting ended.
    pub(super) c_behind_at_end: u64,
    /// When c had every entry, seconds after the clock started (None: not within the timeout).
    pub(super) c_complete_after_secs: Option<f64>,
    /// Every entry over the time c took to have them all.
    pub(super) c_applied_per_sec_overall: f64,
    pub(super) server_cpu_secs: BTreeMapF,
    pub(super) load_before: String,
    pub(super) load_after: String,
}

pub(super) fn throughput_phase(
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
pub(super) struct CatchupReport {
    pub(super) run: usize,
    pub(super) messages: usize,
    pub(super) a_accepted: usize,
    pub(super) a_errors: std::collections::BTreeMap<String, u64>,
    pub(super) a_post_secs: f64,
    /// How long c was down (SIGTERM to the start of its new process).
    pub(super) c_down_secs: f64,
    /// From starting c's process until it printed its certificate fingerprint (started).
    pub(super) c_start_secs: f64,
    /// From starting c's process until its mirror first grew.
    pub(super) first_entry_secs: Option<f64>,
    /// From starting c's process until its mirror had every message: the figure.
    pub(super) catchup_secs: f64,
    pub(super) complete: bool,
    pub(super) c_size_before: u64,
    pub(super) c_size_after: u64,
    /// a's failed transactions to c in this run (its log's "transaction failed" lines).
    pub(super) a_failed_transactions: usize,
    pub(super) server_cpu_secs: BTreeMapF,
    pub(super) load_before: String,
    pub(super) load_after: String,
}

fn count_in_log(server: &Server, needle: &str) -> usize {
    std::fs::read_to_string(&server.log)
        .map(|t| t.lines().filter(|l| l.contains(needle)).count())
        .unwrap_or(0)
}

pub(super) fn catchup_phase(
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
        "catch-up {run}: a accepted {accepted} in {:.2} s; c stays down {} s more",
        elapsed.as_secs_f64(),
        args.catchup_pause
    ));
    std::thread::sleep(Duration::from_secs_f64(args.catchup_pause.max(0.0)));
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
