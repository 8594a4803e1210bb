//! A lying hosting server: a TLS proxy on loopback that presents the real server's own
//! certificate and key (read from its data directory, so a device's pinned fingerprint passes)
//! and forwards every client API request to the real `rendezvous serve` (a [`ServerProcess`] or
//! an in-process [`TestServer`]), while a test rewrites requests and answers:
//!
//! - with rules ([`Rule`]): drop `/entries` items, freeze a topic at a checkpoint it already
//!   served, swallow posts and answer them with a forged `[1, index, checkpoint]` signed with
//!   the server's own Server Key, serve another topic's log;
//! - with a **forged log** ([`LyingHost::forge`]): the host holds its Server Key (read from
//!   `server.key`) and serves a log it builds itself (checkpoints, entries, inclusion and
//!   consistency proofs from [`forged::ForgedLog`]), taking posts into it: how a host that
//!   holds its own key forks;
//! - with closures ([`LyingHost::before`], [`LyingHost::after`]) for anything else.
//!
//! Every request is recorded with its body ([`LyingHost::requests`]), so a test can check what
//! left the device: e.g. whether a ciphertext under an old epoch ever did.
//!
//! `/v1/stream` (WebSocket) is not proxied: devices that need push talk to the real server.
//!
//! [`ServerProcess`]: crate::ServerProcess
//! [`TestServer`]: crate::TestServer

mod exchange;
pub mod forged;

pub use exchange::{Answer, Request};
use exchange::{Upstream, forward};

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use rendezvous::identity::ServerIdentity;
use rendezvous_client::tls::Trust;
use rendezvous_protocol::api::{
    AppendResponse, Body, CheckpointResponse, EntriesResponse, encode_segment,
};
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::tlog::CheckpointNote;
use rendezvous_protocol::topic::LogEntry;
use rendezvous_protocol::wire::encode;

use forged::ForgedLog;

/// Now, Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What the lying host does to one topic's traffic.
#[derive(Debug, Clone)]
pub enum Rule {
    /// Leaves the entries at these indices out of every `/entries` answer.
    DropEntries(TopicId, BTreeSet<u64>),
    /// Serves this checkpoint note and no entry at or past its size: the topic as it was.
    Freeze(TopicId, CheckpointNote),
    /// Keeps posts and changes from the real server and answers each with a forged
    /// `[1, index, checkpoint]` (the real log plus the entry, signed with the Server Key).
    Swallow(TopicId),
    /// Answers requests about the first topic with the second topic's (the path rewritten).
    ServeOtherTopic(TopicId, TopicId),
}

type Before = Box<dyn Fn(&Request) -> Option<Answer> + Send + Sync>;
type After = Box<dyn Fn(&Request, &mut Answer) + Send + Sync>;

struct Shared {
    upstream: String,
    key: ServerKey,
    key_name: String,
    rules: Mutex<Vec<Rule>>,
    forged: Mutex<HashMap<TopicId, ForgedLog>>,
    requests: Mutex<Vec<Request>>,
    swallowed: Mutex<Vec<Request>>,
    swallow_logs: Mutex<HashMap<TopicId, ForgedLog>>,
    heads: Mutex<HashMap<TopicId, CheckpointNote>>,
    before: Mutex<Option<Before>>,
    after: Mutex<Option<After>>,
}

/// A running lying host.
pub struct LyingHost {
    /// `https://127.0.0.1:<port>`: where devices are pointed instead of the real server.
    pub url: String,
    /// Its address.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LyingHost {
    /// A lying host for the server named `server_name` whose data directory is `data_dir`
    /// (its certificate, TLS key and Server Key are read from there), forwarding to `upstream`
    /// (its client API URL), which it trusts as `trust`.
    pub fn start(data_dir: &Path, server_name: &str, upstream: &str, trust: &Trust) -> LyingHost {
        Self::start_on(data_dir, server_name, upstream, trust, "127.0.0.1:0")
    }

    /// [`LyingHost::start`] listening on `addr`.
    pub fn start_on(
        data_dir: &Path,
        server_name: &str,
        upstream: &str,
        trust: &Trust,
        addr: &str,
    ) -> LyingHost {
        crate::init_test_log();
        let name: ServerName = server_name.parse().unwrap();
        let identity = ServerIdentity::load_or_create(data_dir, &name, None).unwrap();
        let tls = (*identity.tls).clone();
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        let client_tls = rendezvous_client::tls::client_config(trust).unwrap();
        let upstream = upstream.trim_end_matches('/').to_owned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel::<Arc<Shared>>();
        let key = identity.server_key;
        let key_name = server_name.to_owned();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let client_tls = Arc::new(client_tls);
                let shared = Arc::new(Shared {
                    upstream,
                    key,
                    key_name,
                    rules: Mutex::default(),
                    forged: Mutex::default(),
                    requests: Mutex::default(),
                    swallowed: Mutex::default(),
                    swallow_logs: Mutex::default(),
                    heads: Mutex::default(),
                    before: Mutex::default(),
                    after: Mutex::default(),
                });
                ready_tx.send(shared.clone()).unwrap();
                let data = web::Data::from(shared);
                let server = HttpServer::new(move || {
                    // awc clients are per thread: one per worker.
                    let client = awc::Client::builder()
                        .connector(awc::Connector::new().rustls_0_23(client_tls.clone()))
                        .timeout(crate::PATIENCE)
                        .finish();
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::Data::new(client))
                        .app_data(web::PayloadConfig::new(8 * 1024 * 1024))
                        .default_service(web::to(handle))
                })
                .workers(1)
                .disable_signals()
                .listen_rustls_0_23(listener, tls)
                .unwrap()
                .run();
                let handle = server.handle();
                actix_web::rt::spawn(async move {
                    let _ = stopped.await;
                    handle.stop(false).await;
                });
                let _ = server.await;
            });
        });
        let shared = ready.recv().unwrap();
        LyingHost {
            url: format!("https://{addr}"),
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Adds a rule (rules apply in the order they were added).
    pub fn add(&self, rule: Rule) {
        self.shared.rules.lock().unwrap().push(rule);
    }

    /// Removes every rule, forged log and closure: from now on the host forwards honestly.
    pub fn honest(&self) {
        self.shared.rules.lock().unwrap().clear();
        self.shared.forged.lock().unwrap().clear();
        self.shared.swallow_logs.lock().unwrap().clear();
        *self.shared.before.lock().unwrap() = None;
        *self.shared.after.lock().unwrap() = None;
    }

    /// Freezes `topic` at the newest checkpoint this host served for it (from a checkpoint
    /// answer or an append answer); that note.
    pub fn freeze(&self, topic: &TopicId) -> CheckpointNote {
        let note = self
            .head(topic)
            .expect("the host served no checkpoint of the topic yet");
        self.add(Rule::Freeze(topic.clone(), note.clone()));
        note
    }

    /// The newest checkpoint note of `topic` this host passed on.
    pub fn head(&self, topic: &TopicId) -> Option<CheckpointNote> {
        self.shared.heads.lock().unwrap().get(topic).cloned()
    }

    /// Serves `topic` from a log of `entries` (wire forms) signed with the Server Key, taking
    /// posts and changes to it into that log.
    pub fn forge(&self, topic: &TopicId, entries: &[Vec<u8>]) {
        let log = ForgedLog::new(topic, entries);
        self.shared
            .forged
            .lock()
            .unwrap()
            .insert(topic.clone(), log);
    }

    /// Runs `change` on the forged log of `topic` (e.g. to deliver another branch's entry).
    pub fn with_forged<R>(&self, topic: &TopicId, change: impl FnOnce(&mut ForgedLog) -> R) -> R {
        let mut forged = self.shared.forged.lock().unwrap();
        change(forged.get_mut(topic).expect("a forged log of the topic"))
    }

    /// Answers a request itself when `before` returns an answer (checked before every rule).
    pub fn before(&self, before: impl Fn(&Request) -> Option<Answer> + Send + Sync + 'static) {
        *self.shared.before.lock().unwrap() = Some(Box::new(before));
    }

    /// Rewrites every answer (after every rule).
    pub fn after(&self, after: impl Fn(&Request, &mut Answer) + Send + Sync + 'static) {
        *self.shared.after.lock().unwrap() = Some(Box::new(after));
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The posts and changes kept from the real server by [`Rule::Swallow`].
    pub fn swallowed(&self) -> Vec<Request> {
        self.shared.swallowed.lock().unwrap().clone()
    }

    /// The entries (posts and changes) devices sent for `topic`, in order.
    pub fn sent_entries(&self, topic: &TopicId) -> Vec<LogEntry> {
        self.requests()
            .iter()
            .filter_map(|r| r.entry_for(topic))
            .collect()
    }

    /// The Server Key the host holds (the real server's).
    pub fn server_key(&self) -> &ServerKey {
        &self.shared.key
    }

    /// Stops listening.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LyingHost {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl crate::raw::Api for LyingHost {
    fn url(&self) -> &str {
        &self.url
    }

    fn trust(&self) -> Trust {
        panic!("devices trust the lying host as they trust the real server: use its trust")
    }
}

/// Makes the device whose keystore is `dir` hold `key` as server `server`'s Server Key, as if
/// its first lookup had been answered by someone else (a TLS-key holder, or a homeserver that
/// substitutes a remote server's key document).
pub fn pin_server_key(
    dir: &Path,
    server: &str,
    key: &rendezvous_protocol::crypto::ServerPublicKey,
) {
    let keystore = rendezvous_client::keystore::Keystore::open(dir, &crate::passphrase()).unwrap();
    let mut config = keystore.config().unwrap();
    config.server_keys.insert(
        server.to_owned(),
        rendezvous_protocol::crypto::sign::hex_string(key.as_bytes()),
    );
    keystore.save_config(&config).unwrap();
}

/// Points the device whose keystore is `dir` at `url` (its trust unchanged): what a DNS or
/// routing change does for the lying host. Reopen the `Client` afterwards.
pub fn point_at(dir: &Path, url: &str) {
    let keystore = rendezvous_client::keystore::Keystore::open(dir, &crate::passphrase()).unwrap();
    let mut config = keystore.config().unwrap();
    config.server_url = url.to_owned();
    keystore.save_config(&config).unwrap();
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let up = Upstream {
        shared: &shared,
        client: &client,
    };
    let request = Request {
        method: req.method().as_str().to_owned(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        auth: req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.to_vec(),
    };
    shared.requests.lock().unwrap().push(request.clone());
    let mut answer = match answer(&up, &request).await {
        Ok(a) => a,
        Err(e) => Answer::error(502, &format!("lying host: {e}")),
    };
    if let Some(after) = shared.after.lock().unwrap().as_ref() {
        after(&request, &mut answer);
    }
    let status = actix_web::http::StatusCode::from_u16(answer.status)
        .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
    HttpResponse::build(status)
        .content_type(answer.content_type)
        .body(answer.body)
}

/// The answer to one request: the closure's, the forged log's, a rule's, or the real server's
/// with the rules applied.
async fn answer(up: &Upstream<'_>, request: &Request) -> Result<Answer, String> {
    let shared = up.shared;
    if let Some(before) = shared.before.lock().unwrap().as_ref()
        && let Some(answer) = before(request)
    {
        return Ok(answer);
    }
    let Some((topic, what)) = request.topic() else {
        return forward(up, request, &request.path).await;
    };
    let forged = shared
        .forged
        .lock()
        .unwrap()
        .get_mut(&topic)
        .and_then(|log| {
            log.answer(
                &request.method,
                &what,
                &request.query,
                &request.body,
                &shared.key,
                &shared.key_name,
            )
        });
    if let Some(answer) = forged {
        return Ok(answer);
    }
    let rules = shared.rules.lock().unwrap().clone();
    let mut path = request.path.clone();
    for rule in &rules {
        match rule {
            Rule::Swallow(t) if *t == topic && request.entry_for(t).is_some() => {
                shared.swallowed.lock().unwrap().push(request.clone());
                return swallow(up, request, &topic).await;
            }
            Rule::Swallow(t) if *t == topic => {
                if let Some(answer) = swallowed_proof(shared, request, &topic, &what) {
                    return Ok(answer);
                }
            }
            Rule::Freeze(t, note) if *t == topic && what == "checkpoint" => {
                return Ok(Answer::cbor(&CheckpointResponse {
                    checkpoint: note.clone(),
                }));
            }
            Rule::ServeOtherTopic(t, other) if *t == topic => {
                path = format!("/v1/topics/{}/{what}", encode_segment(other.as_str()));
            }
            _ => {}
        }
    }
    let mut answer = forward(up, request, &path).await?;
    if answer.status == 200 {
        remember_head(shared, &topic, &what, &answer);
        for rule in &rules {
            rewrite(rule, &topic, &what, &mut answer);
        }
    }
    Ok(answer)
}

/// Applies `rule` to a successful answer about `topic`.
fn rewrite(rule: &Rule, topic: &TopicId, what: &str, answer: &mut Answer) {
    let keep: Box<dyn Fn(u64) -> bool> = match rule {
        Rule::DropEntries(t, drop) if t == topic => {
            let drop = drop.clone();
            Box::new(move |i| !drop.contains(&i))
        }
        Rule::Freeze(t, note) if t == topic => {
            let size = note.signed().unwrap().unverified_checkpoint().size.0;
            Box::new(move |i| i < size)
        }
        _ => return,
    };
    if what != "entries" {
        return;
    }
    let Ok(mut entries) = EntriesResponse::from_cbor(&answer.body) else {
        return;
    };
    entries.entries.retain(|e| keep(e.index.0));
    answer.body = encode(&entries);
}

/// Keeps the newest checkpoint of `topic` this host passed on (for [`LyingHost::freeze`]).
fn remember_head(shared: &Shared, topic: &TopicId, what: &str, answer: &Answer) {
    let note = match what {
        "checkpoint" => CheckpointResponse::from_cbor(&answer.body)
            .ok()
            .map(|r| r.checkpoint),
        "messages" | "changes" => AppendResponse::from_cbor(&answer.body)
            .ok()
            .map(|r| r.checkpoint),
        _ => None,
    };
    let Some(note) = note else { return };
    let size = |n: &CheckpointNote| n.signed().map(|s| s.unverified_checkpoint().size.0);
    let mut heads = shared.heads.lock().unwrap();
    let newer = match heads.get(topic) {
        Some(old) => size(&note).ok() >= size(old).ok(),
        None => true,
    };
    if newer {
        heads.insert(topic.clone(), note);
    }
}

/// A forged append answer for a swallowed entry: the real log (read with the device's own
/// token) plus the entry, signed with the Server Key. The host keeps that log to answer the
/// proofs a device asks for about the answer's checkpoint ([`swallowed_proof`]).
async fn swallow(up: &Upstream<'_>, request: &Request, topic: &TopicId) -> Result<Answer, String> {
    let shared = up.shared;
    let mut entries = Vec::new();
    loop {
        let page = Request {
            method: "GET".into(),
            path: format!("/v1/topics/{}/entries", encode_segment(topic.as_str())),
            query: format!("from={}&limit=500", entries.len()),
            auth: request.auth.clone(),
            body: Vec::new(),
        };
        let got = forward(up, &page, &page.path).await?;
        let page = EntriesResponse::from_cbor(&got.body).map_err(|e| e.to_string())?;
        if page.entries.is_empty() {
            break;
        }
        entries.extend(page.entries.into_iter().map(|e| e.entry.into_vec()));
    }
    let mut log = ForgedLog::new(topic, &entries);
    let (_, what) = request.topic().ok_or("not a topic request")?;
    let answer = log
        .answer(
            &request.method,
            &what,
            &request.query,
            &request.body,
            &shared.key,
            &shared.key_name,
        )
        .ok_or("not an entry")?;
    shared
        .swallow_logs
        .lock()
        .unwrap()
        .insert(topic.clone(), log);
    Ok(answer)
}

/// A proof about the checkpoint of a swallowed entry's answer, from the log the host made it
/// from (`None`: another size, which the real server answers).
fn swallowed_proof(
    shared: &Shared,
    request: &Request,
    topic: &TopicId,
    what: &str,
) -> Option<Answer> {
    let mut logs = shared.swallow_logs.lock().unwrap();
    let log = logs.get_mut(topic)?;
    let size = match what {
        "proof/inclusion" => forged::query_param(&request.query, "size")?,
        "proof/consistency" => forged::query_param(&request.query, "new")?,
        _ => return None,
    };
    if size != log.size() {
        return None;
    }
    log.answer(
        &request.method,
        what,
        &request.query,
        &[],
        &shared.key,
        &shared.key_name,
    )
}
