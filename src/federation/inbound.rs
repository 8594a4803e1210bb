//! The federation listener (`federation-api.md` §1, §2, §4, §5): a separate actix server that
//! demands client certificates chaining to the federation roots, serves this server's key
//! document, receives transactions and answers queries ([`super::queries`]).
//!
//! A transaction is handled as follows (`federation-api.md` §1.1, §4). Before any body byte is
//! read ([`super::gate`]): the origin named in `X-Rdv-Origin`, the connection's certificate valid
//! for it (`401 unauthorized`), the allow and deny lists (`403 forbidden`), the peer's `txn` and
//! `txn_kib` rates (`429 rate_limited`), the announced length (`413 too_large`), and the
//! per-origin lock (waited for at most [`LOCK_WAIT`], then `429`). Then the body is read under
//! its cap and decoded (`Transaction::from_wire`); its `origin` must be the header's and its
//! `destination` this server; a known transaction id is answered with the stored response;
//! else each event is checked (`Event::check`, keys from [`PeerKeys`], and its age) and handed
//! to the [`EventSink`], one result per event; applied event ids and the response are recorded,
//! the store flushed, then the answer sent.

use std::collections::HashMap;
use std::future::Future;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::ErrorHandlers;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use super::gate;
use super::keys::{PeerKeys, SERVER_KEYS_PATH, own_server_keys};
use super::peer::{self, PeerCertificate, PeerPolicy};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now};
use crate::store::StoreError;
use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::federation::event::EventError;
use rendezvous_protocol::federation::transaction::MAX_TRANSACTION_LEN;
use rendezvous_protocol::federation::{
    Event, EventId, EventResult, ServerKeys, Transaction, TransactionResponse, VerifiedEvent,
};
use rendezvous_protocol::ids::ServerName;
use rendezvous_protocol::wire::Signed;

/// Path of the transaction endpoint (`{txn_id}` appended).
pub const SEND_PATH: &str = "/_rdv/federation/v1/send";
/// How long a transaction waits for the one before it from the same origin (only one body per
/// origin is read at a time) before it is refused `429` (`federation-api.md` §1.1).
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Why a transaction was refused as a whole (`federation-api.md` §4), before any event in it
/// was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionRefusal {
    /// The path names another transaction id than the body.
    #[error("path names transaction {path:?}, body {body:?}")]
    PathMismatch {
        /// The id in the path.
        path: String,
        /// The id in the body.
        body: String,
    },
    /// The body names another origin than [`gate::ORIGIN_HEADER`].
    #[error("{ORIGIN_HEADER} names {header}, the transaction {body}", ORIGIN_HEADER = gate::ORIGIN_HEADER)]
    OriginMismatch {
        /// The origin of the header.
        header: ServerName,
        /// The transaction's `origin`.
        body: ServerName,
    },
    /// The transaction is for another server.
    #[error("transaction for {got}, this is {expected}")]
    WrongDestination {
        /// This server.
        expected: ServerName,
        /// The transaction's `destination`.
        got: ServerName,
    },
}

/// Where verified events go: the topic logic ([`super::topics::TopicSink`]), or a test's sink.
///
/// `apply` runs once per event id and origin in the normal case; after a crash between applying
/// and recording, the same event may come again, so sinks must tolerate a repeat. An `Err`
/// carries the event's result code, which fixes its status (`4xx` refused for good, `5xx` try
/// again later).
pub trait EventSink: Send + Sync {
    /// Applies one verified event.
    fn apply(&self, event: VerifiedEvent) -> impl Future<Output = Result<(), ErrorCode>>;

    /// Called after the store is synced at the end of each transaction from `origin`, so that a
    /// sink can defer what needs durable writes (publishing to devices) to one sync per
    /// transaction instead of one per event.
    fn settle(&self, origin: &ServerName) -> impl Future<Output = ()> {
        let _ = origin;
        std::future::ready(())
    }
}

/// What the federation handlers share besides [`AppState`].
pub struct Inbound<K, S> {
    policy: PeerPolicy,
    keys: K,
    sink: S,
    /// Transactions of one origin are handled one at a time, so that a retry racing the
    /// original cannot apply an event twice.
    locks: Mutex<HashMap<ServerName, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K, S> std::fmt::Debug for Inbound<K, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<K: PeerKeys, S: EventSink> Inbound<K, S> {
    /// Handlers' state: the peer policy, where peers' keys come from, where events go.
    pub fn new(policy: PeerPolicy, keys: K, sink: S) -> Self {
        Inbound {
            policy,
            keys,
            sink,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The allow and deny lists of peers.
    pub(super) fn policy(&self) -> &PeerPolicy {
        &self.policy
    }

    /// Where peers' keys come from.
    pub(super) fn peer_keys(&self) -> &K {
        &self.keys
    }

    fn lock_of(&self, origin: &ServerName) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(origin.clone()).or_default().clone()
    }
}

/// Routes of the federation listener.
pub fn configure<K: PeerKeys + 'static, S: EventSink + 'static>(cfg: &mut web::ServiceConfig) {
    cfg.route(SERVER_KEYS_PATH, web::get().to(server_keys))
        .route(
            &format!("{SEND_PATH}/{{txn_id}}"),
            web::put().to(send::<K, S>),
        )
        .configure(super::queries::configure::<K, S>)
        .configure(super::topic_queries::configure::<K, S>)
        .configure(super::directory::queries::configure::<K, S>);
}

/// Starts the federation listener on `listener` (mutual TLS with `tls`).
pub fn serve<K: PeerKeys + 'static, S: EventSink + 'static>(
    state: web::Data<AppState>,
    inbound: web::Data<Inbound<K, S>>,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    workers: usize,
) -> std::io::Result<Server> {
    let limits = crate::limits::ListenerLimits::new(&state.config().limits, workers);
    let connections = state.limits().federation_connections.clone();
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(inbound.clone())
            .wrap(ErrorHandlers::new().default_handler_client(crate::json_error))
            .configure(configure::<K, S>)
            .default_service(web::to(crate::not_found))
    })
    .on_connect(move |conn, ext| {
        crate::limits::count_connection(&connections, conn, ext);
        peer::on_connect(conn, ext);
    })
    .client_request_timeout(limits.head)
    .tls_handshake_timeout(limits.handshake)
    .keep_alive(limits.keep_alive)
    .max_connections(limits.per_worker)
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(5)
    .listen_rustls_0_23(listener, (*tls).clone())?
    .run())
}

fn cbor(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/cbor")
        .body(body)
}

/// `GET /_rdv/federation/v1/server-keys` (`federation-api.md` §2).
async fn server_keys(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    // federation-api.md §1.1: no origin is named, so the certificate is the key.
    state
        .limits()
        .federation_query
        .check(&gate::certificate_key(&req)?, 1)?;
    // federation-api.md §8: a peer that asks for our keys is up. If we hold events for a server
    // its certificate names, that server's backoff ends now (a restarted host asks at start).
    if let (Some(federation), Some(cert)) = (state.federation(), req.conn_data::<PeerCertificate>())
    {
        let outbound = federation.outbound();
        for waiting in state.store().outbound_destinations()? {
            if peer::certificate_names(&cert.0, &waiting) {
                outbound.peer_heard_from(&waiting);
            }
        }
    }
    let doc = own_server_keys(
        state.store(),
        state.server_name(),
        &state.identity().server_key,
        now(),
    )?;
    Ok(cbor(doc.to_wire()))
}

/// `PUT /_rdv/federation/v1/send/{txn_id}` (`federation-api.md` §1.1, §4).
async fn send<K: PeerKeys, S: EventSink>(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
    inbound: web::Data<Inbound<K, S>>,
) -> ApiResult<HttpResponse> {
    // federation-api.md §1.1: everything the head can settle, before any body byte is read.
    let origin =
        gate::transaction_origin(&req, &inbound.policy, state.limits(), MAX_TRANSACTION_LEN)?;
    // federation-api.md §8: hearing from a peer resets our backoff towards it.
    if let Some(federation) = state.federation() {
        federation.outbound().peer_heard_from(&origin);
    }
    crate::http::require_cbor(&req)?;
    gate::check_length(&req, MAX_TRANSACTION_LEN)?;
    // Nothing applied while the disk is almost full: the whole transaction is retried later.
    state.refuse_writes_if_low_on_space()?;
    // One body per origin is read at a time; a retry racing the original waits for it.
    let lock = inbound.lock_of(&origin);
    let _guard = actix_web::rt::time::timeout(LOCK_WAIT, lock.lock())
        .await
        .map_err(|_| crate::limits::Limited {
            class: "federation.txn",
            retry_after_secs: 1,
        })?;
    let body = gate::read_body(payload, MAX_TRANSACTION_LEN).await?;
    let (txn, events) = accept_transaction(&origin, &path, &body, &state)?;
    // federation-api.md §4: a known transaction id gets the stored results, nothing applied.
    if let Some(stored) = state.store().federation_txn(&origin, &txn.txn_id)? {
        return Ok(cbor(stored));
    }
    let mut keys = OriginKeys::new(&inbound.keys, &origin);
    let mut results = Vec::with_capacity(events.len());
    for signed in events {
        results.push(handle_event(&state, &inbound.sink, &mut keys, signed).await?);
    }
    let response = finish_transaction(&state, &txn, results).await?;
    inbound.sink.settle(&origin).await;
    Ok(cbor(response))
}

/// Decodes a transaction and checks it as a whole (`federation-api.md` §4): the path's id is
/// the body's, its `origin` is the authenticated one of the header, and its `destination` is
/// this server.
fn accept_transaction(
    origin: &ServerName,
    path: &str,
    body: &[u8],
    state: &AppState,
) -> ApiResult<(Transaction, Vec<Signed<Event>>)> {
    let (txn, events) = Transaction::from_wire(body)?;
    if path != txn.txn_id {
        return Err(TransactionRefusal::PathMismatch {
            path: path.to_owned(),
            body: txn.txn_id.clone(),
        }
        .into());
    }
    if txn.origin != *origin {
        return Err(TransactionRefusal::OriginMismatch {
            header: origin.clone(),
            body: txn.origin.clone(),
        }
        .into());
    }
    if txn.destination != *state.server_name() {
        return Err(TransactionRefusal::WrongDestination {
            expected: state.server_name().clone(),
            got: txn.destination.clone(),
        }
        .into());
    }
    Ok((txn, events))
}

/// One event of a transaction, to its result (`federation-api.md` §4): an event id applied
/// before is answered 200 and not applied again; otherwise it is checked
/// ([`OriginKeys::check`]), handed to the sink, and recorded as applied. Only storage faults
/// fail the whole transaction.
async fn handle_event<K: PeerKeys, S: EventSink>(
    state: &AppState,
    sink: &S,
    keys: &mut OriginKeys<'_, K>,
    signed: Signed<Event>,
) -> Result<EventResult, StoreError> {
    let id = Event::id(signed.signed_bytes());
    let origin = keys.origin;
    if state.store().federation_applied(origin, &id.0)?.is_some() {
        return Ok(event_result(&id, None));
    }
    let (outcome, time) = match keys.check(state, signed).await {
        Ok(event) => {
            let time = event.event.value().time;
            (sink.apply(event).await, time)
        }
        Err(code) => (Err(code), 0),
    };
    if outcome.is_ok() {
        // Dated on the clock the age check reads, and never before the event's own time: an
        // event dated ahead (within the allowed skew) keeps its id until it is too old to
        // apply, so the purge cannot let it apply twice (`federation-api.md` §3.3).
        let applied_at = state.clock().now().max(time);
        state
            .store()
            .mark_federation_applied(origin, &id.0, applied_at)?;
    }
    Ok(event_result(&id, outcome.err()))
}

/// An event's result: `200` applied, else its code's status and the code.
fn event_result(id: &EventId, refused: Option<ErrorCode>) -> EventResult {
    EventResult {
        id: id.0,
        status: refused.map_or(200, ErrorCode::status),
        code: refused.map_or("", ErrorCode::as_str).to_owned(),
    }
}

/// Records a transaction's results and makes them durable before they are answered
/// (`federation-spec/architecture.md` §5). Results that say "try again later" are not stored:
/// the retry must be processed afresh (events applied meanwhile are answered 200 by their id).
async fn finish_transaction(
    state: &AppState,
    txn: &Transaction,
    results: Vec<EventResult>,
) -> Result<Vec<u8>, StoreError> {
    let is_final = results.iter().all(|r| r.status < 500);
    let response = TransactionResponse { results }.to_wire();
    if is_final {
        state.store().set_federation_txn(
            &txn.origin,
            &txn.txn_id,
            &response,
            state.clock().now(),
            retention(state),
        )?;
    }
    state.store().sync().await?;
    Ok(response)
}

/// How long inbound bookkeeping is kept (`[federation.limits]`, `federation-api.md` §1.1).
pub fn retention(state: &AppState) -> crate::store::FederationRetention {
    let limits = &state.config().federation.limits;
    crate::store::FederationRetention {
        txn_memory: limits.txn_memory,
        txn_secs: limits.txn_retention_secs,
        applied_secs: limits.applied_retention_secs,
    }
}

/// The `time` an event claims, unverified (for deciding only whether to try later).
fn signed_time(signed: &Signed<Event>) -> Option<u64> {
    signed.decode_unverified().ok().map(|e| e.time)
}

/// The origin's key document for one transaction: fetched when the first event needs it, and
/// fetched again at most once when a signature does not verify (the origin may have rotated
/// its key; the source rate-limits refreshes too).
struct OriginKeys<'a, K> {
    source: &'a K,
    origin: &'a ServerName,
    doc: Option<Arc<ServerKeys>>,
    refreshed: bool,
}

impl<'a, K: PeerKeys> OriginKeys<'a, K> {
    fn new(source: &'a K, origin: &'a ServerName) -> Self {
        OriginKeys {
            source,
            origin,
            doc: None,
            refreshed: false,
        }
    }

    /// The document, fetched (`refresh`: anew) when needed; `unavailable` when it cannot be had.
    async fn document(&mut self, refresh: bool) -> Result<Arc<ServerKeys>, ErrorCode> {
        if let (Some(doc), false) = (&self.doc, refresh) {
            return Ok(doc.clone());
        }
        match self.source.server_keys(self.origin, refresh).await {
            Ok(doc) => {
                self.doc = Some(doc.clone());
                Ok(doc)
            }
            // Logged by the mapping, answered `unavailable`: the origin retries later.
            Err(e) => Err(ApiError::from(e).code),
        }
    }

    /// `Event::check` (`federation-api.md` §3.3) with the origin's keys; a refused event's code.
    async fn check(
        &mut self,
        state: &AppState,
        signed: Signed<Event>,
    ) -> Result<VerifiedEvent, ErrorCode> {
        loop {
            let doc = self.document(false).await?;
            let valid_at = move |_: &ServerName, time: u64| doc.valid_at(time);
            match Event::check(
                signed.clone(),
                self.origin,
                state.server_name(),
                &valid_at,
                state.clock().now(),
            ) {
                // federation-api.md §3.3 check 5b: older than the applied ids are kept, it
                // could apply twice once its id is purged.
                Ok(event) => {
                    let oldest = state
                        .clock()
                        .now()
                        .saturating_sub(retention(state).applied_secs);
                    return match event.event.value().time < oldest {
                        true => Err(ErrorCode::Invalid),
                        false => Ok(event),
                    };
                }
                Err(EventError::BadSignature) if !self.refreshed => {
                    self.refreshed = true;
                    self.document(true).await?;
                }
                // Signed after the document was fetched, which could not be fetched again yet
                // (refreshed moments ago): the origin may have rotated its key since, so this
                // is "try later", not a verdict on the event (`federation-api.md` §2).
                Err(EventError::BadSignature)
                    if self
                        .source
                        .fetched_at(self.origin)
                        .is_some_and(|f| signed_time(&signed).is_some_and(|t| t > f)) =>
                {
                    return Err(ErrorCode::Unavailable);
                }
                Err(e) => return Err(ApiError::from(e).code),
            }
        }
    }
}
