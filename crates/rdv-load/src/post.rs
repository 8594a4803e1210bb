//! Post mode (the default): posters on one server, WebSocket watchers timing delivery.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use serde::Serialize;

use rendezvous_client::Client;
use rendezvous_client::http::Http;
use rendezvous_client::tls::Trust;
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::topic::{History, Role};

use crate::Res;
use crate::abuse::{ABUSE_LIMITS, ABUSE_RATES, AbuseReport, AbuseSettings, abuser_thread};
use crate::args::Args;
use crate::clients::{Slot, register_users, slots_for, token_of};
use crate::perf::{start_perf, stop_perf};
use crate::posters::{
    EndBarriers, PosterPlan, PosterResult, PosterSettings, plan_posters, poster_thread,
};
use crate::report::{Percentiles, log, mib, percentiles, print_report};
use crate::server::{Server, WorkDir, server_bin};
use crate::stats::{ProcStats, cpu_pressure, loadavg, socket_bytes};

/// Post mode: sets up users and topics, times the posts, reports.
pub(crate) fn post_mode(args: &Args) -> Res<()> {
    if args.topics == 0 || args.members == 0 || args.posters == 0 || args.threads == 0 {
        return Err("--topics, --members, --posters and --threads must be positive".into());
    }
    let bin = server_bin(args)?;
    let work = WorkDir::new(args.keep)?;
    let mut server = match args.abuse {
        true => Server::start_configured(
            &bin,
            &work.path,
            "localhost",
            args.server_workers,
            (ABUSE_LIMITS, ABUSE_RATES),
            "",
        )?,
        false => Server::start(&bin, &work.path, args.server_workers)?,
    };
    log(format!("server pid {} at {}", server.pid(), server.url));
    let (slots, watch_tokens, members) =
        actix_rt::System::new().block_on(set_up(args, &server, &work))?;
    let slots: Vec<Arc<Slot>> = slots.into_iter().map(Arc::new).collect();
    let (total, deadline) = budget(args);
    let per_thread = plan_posters(args.posters, args.threads, &slots, total)?;
    log(format!(
        "encrypting {total} messages of {} bytes for {} posters",
        args.size, args.posters
    ));
    let abusers = match args.abuse {
        true => {
            let (tokens, victims) = members.into_iter().unzip();
            let set_up = set_up_abuser(args, &server, &work, tokens, victims);
            Some(actix_rt::System::new().block_on(set_up)?)
        }
        false => None,
    };
    let run = timed_run(
        args,
        &server,
        &slots,
        watch_tokens,
        per_thread,
        deadline,
        abusers,
    )?;
    let report = post_report(args, &run);
    server.stop()?;
    print_report(args.json, &report)
}

/// Registers the members, creates the topics and gathers every member's slot in each, and the
/// watchers' tokens.
async fn set_up(
    args: &Args,
    server: &Server,
    work: &WorkDir,
) -> Res<(Vec<Slot>, Vec<String>, Vec<(String, UserId)>)> {
    server.wait_ready().await?;
    let mut users = register_users(
        server,
        &work.path,
        "u",
        args.members,
        args.setup_concurrency,
    )
    .await?;
    log(format!("registered {} users", users.len()));
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
    let http = Http::new(&server.url, &server.trust()?).map_err(|e| e.to_string())?;
    let refs: Vec<&Client> = users.iter().collect();
    let mut slots = Vec::new();
    for (no, t) in topics.iter().enumerate() {
        slots.extend(slots_for(&http, t, no as u32, &refs).await?);
    }
    let watch_tokens = (0..args.ws_watchers)
        .map(|w| token_of(&users[w % users.len()]))
        .collect::<Res<Vec<_>>>()?;
    let members = users
        .iter()
        .map(|c| token_of(c).map(|t| (t, c.user().clone())))
        .collect::<Res<Vec<_>>>()?;
    Ok((slots, watch_tokens, members))
}

/// The abusers of `--abuse`: a registered abuser, the members as its victims, and the members'
/// devices for the hogs.
async fn set_up_abuser(
    args: &Args,
    server: &Server,
    work: &WorkDir,
    member_tokens: Vec<String>,
    victims: Vec<UserId>,
) -> Res<AbuseSettings> {
    let abuser = register_users(server, &work.path, "abuser", 1, 1).await?;
    Ok(AbuseSettings {
        url: server.url.clone(),
        trust: server.trust()?,
        per_kind: args.abusers_per_kind,
        hog_tokens: member_tokens,
        abuser_token: token_of(abuser.first().ok_or("no abuser")?)?,
        victims,
    })
}

/// How many messages to prepare, and when to stop posting.
fn budget(args: &Args) -> (usize, Option<Duration>) {
    let seconds = match (args.messages, args.seconds) {
        (None, None) => Some(20.0),
        (_, s) => s,
    };
    let total = match (args.messages, seconds) {
        (Some(m), _) => m,
        (None, Some(s)) => (s * args.max_rate as f64).ceil() as usize,
        (None, None) => 0,
    };
    (total, seconds.map(Duration::from_secs_f64))
}

/// What the timed phase measured.
pub(crate) struct Run {
    pub(crate) result: PosterResult,
    pub(crate) arrivals: Arrivals,
    pub(crate) elapsed: Duration,
    pub(crate) before: ProcStats,
    pub(crate) after: ProcStats,
    pub(crate) load: (String, String),
    pub(crate) generator_cpu_secs: f64,
    pub(crate) wire: Option<(u64, u64)>,
    pub(crate) abuse: Option<AbuseReport>,
}

/// The timed phase: the poster threads and the watcher thread start together, the clock runs
/// until every poster is done.
fn timed_run(
    args: &Args,
    server: &Server,
    slots: &[Arc<Slot>],
    watch_tokens: Vec<String>,
    per_thread: Vec<Vec<PosterPlan>>,
    deadline: Option<Duration>,
    abusers: Option<AbuseSettings>,
) -> Res<Run> {
    let trust = server.trust()?;
    let topic_names: HashMap<String, u32> = slots
        .iter()
        .map(|s| (s.topic.as_str().to_owned(), s.topic_no))
        .collect();
    // Everyone waits here: the poster threads once their messages are encrypted, the watcher
    // thread once its streams are open, and this thread to start the clock.
    let barrier = Arc::new(Barrier::new(
        per_thread.len() + 2 + usize::from(abusers.is_some()),
    ));
    // The poster threads meet here again when they are done, and keep their connections open
    // until this thread has read the server side's socket counters.
    let end = Arc::new(EndBarriers::new(per_thread.len() + 1));
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let watcher = {
        let (barrier, url, trust) = (barrier.clone(), server.url.clone(), trust.clone());
        std::thread::spawn(move || {
            watcher_thread(url, trust, watch_tokens, topic_names, barrier, stop_rx)
        })
    };
    let stop_abuse = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let abuser = abusers.map(|settings| {
        let (barrier, stop) = (barrier.clone(), stop_abuse.clone());
        std::thread::spawn(move || abuser_thread(settings, barrier, stop))
    });
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
    stop_abuse.store(true, std::sync::atomic::Ordering::Relaxed);
    let generator_cpu_secs = ProcStats::read(std::process::id()).cpu_secs - gen_before.cpu_secs;
    let load_after = format!("{} (cpu pressure {})", loadavg(), cpu_pressure());
    let wire = socket_bytes(&server.url);
    end.release.wait();
    let mut result = PosterResult::default();
    for h in handles {
        result.merge(h.join().map_err(|_| "a poster thread panicked")??);
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
    let abuse = match abuser {
        Some(a) => Some(a.join().map_err(|_| "the abuser thread panicked")??),
        None => None,
    };
    Ok(Run {
        result,
        arrivals,
        elapsed,
        before,
        after,
        load: (load_before, load_after),
        generator_cpu_secs,
        wire,
        abuse,
    })
}

/// Frame arrivals: (topic number, index, when).
pub(crate) type Arrivals = Vec<(u32, u64, Instant)>;

pub(crate) fn watcher_thread(
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
pub(crate) struct PostReport<'a> {
    pub(crate) mode: &'static str,
    pub(crate) topics: usize,
    pub(crate) members: usize,
    pub(crate) posters: usize,
    pub(crate) size: usize,
    pub(crate) ws_watchers: usize,
    pub(crate) generator_threads: usize,
    pub(crate) http2_offered: bool,
    pub(crate) seconds: f64,
    pub(crate) accepted: usize,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) answers_with_bad_index: u64,
    pub(crate) duplicate_indices: usize,
    pub(crate) msgs_per_sec: f64,
    pub(crate) post_latency_ms: Percentiles,
    pub(crate) ws_delivery_ms: Percentiles,
    pub(crate) ws_frames_matched: usize,
    pub(crate) ws_frames_expected: usize,
    pub(crate) body_bytes_per_msg: f64,
    pub(crate) header_bytes_per_msg: f64,
    pub(crate) request_bytes_per_msg: f64,
    /// Bytes the server's sockets received (TLS records, handshakes included) per accepted
    /// message, from `ss -ti` while the connections were still open.
    pub(crate) wire_bytes_in_per_msg: Option<f64>,
    /// Bytes the server's sockets sent (answers and WebSocket frames) per accepted message.
    pub(crate) wire_bytes_out_per_msg: Option<f64>,
    pub(crate) server_rss_mib_before: f64,
    pub(crate) server_rss_mib_after: f64,
    pub(crate) server_hwm_mib: f64,
    pub(crate) server_cpu_secs: f64,
    pub(crate) server_cpu_cores: f64,
    pub(crate) server_cpu_us_per_msg: f64,
    pub(crate) generator_cpu_secs: f64,
    pub(crate) generator_cpu_cores: f64,
    pub(crate) loadavg_before: String,
    pub(crate) loadavg_after: String,
    /// What the abusers sent and were answered (`--abuse`).
    pub(crate) abuse: Option<&'a AbuseReport>,
}

/// The report of a timed run.
pub(crate) fn post_report<'a>(args: &Args, run: &'a Run) -> PostReport<'a> {
    let Run {
        result: r,
        arrivals,
        elapsed,
        before,
        after,
        load,
        generator_cpu_secs,
        wire,
        abuse,
    } = run;
    let (elapsed, generator_cpu_secs, wire) = (*elapsed, *generator_cpu_secs, *wire);
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
        loadavg_before: load.0.clone(),
        loadavg_after: load.1.clone(),
        abuse: abuse.as_ref(),
    }
}
