//! Closed-loop posters: threads with their own event loop, each posting pre-encrypted messages
//! one request at a time per poster and timing every request (post mode and the federation
//! throughput phase).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use futures_util::future::join_all;

use rendezvous_client::http::error_from_response;
use rendezvous_client::tls::{Trust, client_config};
use rendezvous_protocol::api::{AppendResponse, Body};
use rendezvous_protocol::ids::{Epoch, MemberIndex};
use rendezvous_protocol::message::encrypt;
use rendezvous_protocol::tlog::{TreeSize, empty_root};

use crate::Res;
use crate::clients::Slot;

/// Request timeout for timed posts.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

/// One timed post.
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) topic_no: u32,
    pub(crate) index: u64,
    pub(crate) sent: Instant,
    pub(crate) latency: Duration,
}

#[derive(Default)]
pub(crate) struct PosterResult {
    pub(crate) samples: Vec<Sample>,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) bad_index: u64,
    pub(crate) body_bytes: u64,
    pub(crate) header_bytes: u64,
}

/// The requests one poster sends.
pub(crate) struct PosterPlan {
    pub(crate) slot: Arc<Slot>,
    pub(crate) count: usize,
}

/// What every poster thread is told.
pub(crate) struct PosterSettings {
    pub(crate) url: String,
    pub(crate) trust: Trust,
    pub(crate) size: usize,
    pub(crate) h2: bool,
    pub(crate) deadline: Option<Duration>,
}

/// Spreads `posters` posters over `threads` threads round-robin, `total` messages in all;
/// poster p posts as slot p mod slots.
pub(crate) fn plan_posters(
    posters: usize,
    threads: usize,
    slots: &[Arc<Slot>],
    total: usize,
) -> Res<Vec<Vec<PosterPlan>>> {
    let (posters, threads) = (posters.max(1), threads.max(1));
    let mut per_thread: Vec<Vec<PosterPlan>> = (0..threads).map(|_| Vec::new()).collect();
    for p in 0..posters {
        let count = total / posters + usize::from(p < total % posters);
        let slot = slots
            .get(p % slots.len().max(1))
            .ok_or("no slots to post with")?
            .clone();
        per_thread[p % threads].push(PosterPlan { slot, count });
    }
    Ok(per_thread)
}

impl PosterResult {
    /// Adds what another poster did.
    pub(crate) fn merge(&mut self, other: PosterResult) {
        self.samples.extend(other.samples);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.bad_index += other.bad_index;
        self.body_bytes += other.body_bytes;
        self.header_bytes += other.header_bytes;
    }
}

/// One poster thread: encrypts its messages, waits at `barrier` for the clock to start, posts
/// them on its own event loop, and waits at `end` until the socket counters are read.
pub(crate) fn poster_thread(
    settings: PosterSettings,
    plans: Vec<PosterPlan>,
    barrier: Arc<Barrier>,
    end: Arc<EndBarriers>,
) -> Res<PosterResult> {
    // Encrypt before the clock starts: the generator should spend its CPU on the wire.
    let prepared = encrypt_all(&plans, settings.size);
    barrier.wait();
    let (prepared, tls) = match (prepared, tls_for(&settings.trust, settings.h2)) {
        (Ok(prepared), Ok(tls)) => (prepared, tls),
        (Err(e), _) | (_, Err(e)) => {
            end.wait();
            return Err(e);
        }
    };
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
        let start = Instant::now();
        let futs = prepared.into_iter().map(|(slot, bodies)| {
            let to = Target {
                client: client.clone(),
                url: settings.url.clone(),
                start,
                deadline: settings.deadline,
            };
            async move { to.post(&slot, bodies).await }
        });
        let mut out = PosterResult::default();
        for r in join_all(futs).await {
            out.merge(r);
        }
        // Connections stay open (the client is alive) until the socket counters are read.
        end.wait();
        drop(client);
        Ok(out)
    })
}

/// Every message of every plan, encrypted for its slot.
fn encrypt_all(plans: &[PosterPlan], size: usize) -> Res<Vec<(Arc<Slot>, Vec<Bytes>)>> {
    let plaintext = vec![b'x'; size];
    let mut prepared = Vec::with_capacity(plans.len());
    for plan in plans {
        let s = &plan.slot;
        let keys = s.message_key.epoch_keys(&s.topic, Epoch(0));
        let mut bodies = Vec::with_capacity(plan.count);
        for _ in 0..plan.count {
            // seen = 0 is valid at every log position.
            let m = encrypt(
                &s.topic,
                &keys,
                MemberIndex(s.member),
                s.topic_key.signing(),
                TreeSize(0),
                &empty_root(),
                &plaintext,
            )
            .map_err(|e| format!("encrypt: {e}"))?;
            bodies.push(Bytes::from(m.to_wire()));
        }
        prepared.push((s.clone(), bodies));
    }
    Ok(prepared)
}

/// The posters' TLS configuration, offering HTTP/2 with `h2`.
fn tls_for(trust: &Trust, h2: bool) -> Res<rustls::ClientConfig> {
    let mut tls = client_config(trust).map_err(|e| e.to_string())?;
    if h2 {
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    Ok(tls)
}

/// Where one poster posts, and until when.
struct Target {
    client: Rc<awc::Client>,
    url: String,
    start: Instant,
    deadline: Option<Duration>,
}

impl Target {
    /// Posts `bodies` into the slot's topic one after the other, timing each.
    async fn post(&self, slot: &Slot, bodies: Vec<Bytes>) -> PosterResult {
        let mut r = PosterResult::default();
        let url = format!("{}{}", self.url, slot.path);
        let host = self.url.trim_start_matches("https://");
        let auth = format!("Bearer {}", slot.token);
        for body in bodies {
            if self.deadline.is_some_and(|d| self.start.elapsed() >= d) {
                break;
            }
            r.header_bytes += header_bytes(&slot.path, host, &auth, body.len());
            r.body_bytes += body.len() as u64;
            let sent = Instant::now();
            match post_one(&self.client, &url, &auth, body).await {
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
}

/// What goes on the wire besides the body (HTTP/1.1, as awc writes it; with --h2 HPACK sends
/// far less after the first request on a connection).
fn header_bytes(path: &str, host: &str, auth: &str, body_len: usize) -> u64 {
    (format!("POST {path} HTTP/1.1\r\n").len()
        + format!("host: {host}\r\n").len()
        + format!("authorization: {auth}\r\n").len()
        + "content-type: application/cbor\r\n".len()
        // awc asks for no compression unless built with a compression feature.
        + "accept-encoding: identity\r\n".len()
        + format!("content-length: {body_len}\r\n").len()
        + 2) as u64
}

/// Where poster threads wait when they are done ([`EndBarriers::done`]) and until the main
/// thread has read the socket counters ([`EndBarriers::release`]).
pub(crate) struct EndBarriers {
    pub(crate) done: Barrier,
    pub(crate) release: Barrier,
}

impl EndBarriers {
    pub(crate) fn new(n: usize) -> Self {
        EndBarriers {
            done: Barrier::new(n),
            release: Barrier::new(n),
        }
    }

    pub(crate) fn wait(&self) {
        self.done.wait();
        self.release.wait();
    }
}

/// Posts one message; its log index, or why not.
pub(crate) async fn post_one(client: &awc::Client, url: &str, auth: &str, body: Bytes) -> Res<u64> {
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
