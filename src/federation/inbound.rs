//! The federation listener (`federation-api.md` §1, §2, §4, §5): a separate actix server that
//! demands client certificates chaining to the federation roots, serves this server's key
//! document, receives transactions and answers queries ([`super::queries`]).
//!
//! A transaction is handled as follows: decode it (`Transaction::from_wire`); check that the
//! connection's certificate is valid for its `origin` (`401 unauthorized`) and that the allow and
//! deny lists let that origin in (`403 forbidden`); check its `destination`; under a per-origin
//! lock, answer a known transaction id with the stored response; else check each event
//! (`Event::check`, keys from [`PeerKeys`]) and hand it to the [`EventSink`], one result per
//! event; record applied event ids and the response, flush the store, then answer.

use std::collections::HashMap;
use std::future::Future;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::dev::Server;
use actix_web::middleware::ErrorHandlers;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use super::keys::{PeerKeys, SERVER_KEYS_PATH, own_server_keys};
use super::peer::{self, PeerCertificate, PeerPolicy};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now};
use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::federation::event::EventError;
use rendezvous_protocol::federation::transaction::MAX_TRANSACTION_LEN;
use rendezvous_protocol::federation::{
    Event, EventResult, ServerKeys, Transaction, TransactionResponse, VerifiedEvent,
};
use rendezvous_protocol::ids::ServerName;

/// Path of the transaction endpoint (`{txn_id}` appended).
pub const SEND_PATH: &str = "/_rdv/federation/v1/send";

/// Where verified events go: the topic logic ([`super::topics::TopicSink`]), or a test's sink.
///
/// `apply` runs once per event id and origin in the normal case; after a crash between applying
/// and recording, the same event may come again, so sinks must tolerate a repeat. An `Err`
/// carries the event's result status and code (`4xx` refused for good, `5xx` try again later).
pub trait EventSink: Send + Sync {
    /// Applies one verified event.
    fn apply(&self, event: VerifiedEvent) -> impl Future<Output = Result<(), (u16, String)>>;

    /// Called after the store is synced at the end of each transaction from `origin`, so that a
    /// sink can defer what needs durable writes (publishing to devices) to one sync per
    /// transaction instead of one per event.
    fn settle(&self, origin: &ServerName) -> impl Future<Output = ()> {
        let _ = origin;
        std::future::ready(())
    }
}

/// Status and code of a refused event (`federation-api.md` §3.3, §6).
pub fn event_refusal(e: &EventError) -> (u16, &'static str) {
    match e {
        EventError::Malformed(_) => (400, "malformed"),
        EventError::WrongOrigin { .. } => (403, ErrorCode::WrongOrigin.as_str()),
        EventError::WrongDestination { .. } => (400, "wrong_destination"),
        EventError::BadSignature => (400, "bad_signature"),
        EventError::FromTheFuture { .. } => (400, "from_the_future"),
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

    fn lock_of(&self, origin: &ServerName) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(origin.clone()).or_default().clone()
    }
}

/// Routes of the federation listener.
pub fn configure<K: PeerKeys + 'static, S: EventSink + 'static>(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(MAX_TRANSACTION_LEN))
        .route(SERVER_KEYS_PATH, web::get().to(server_keys))
        .route(
            &format!("{SEND_PATH}/{{txn_id}}"),
            web::put().to(send::<K, S>),
        )
        .configure(super::queries::configure::<K, S>)
        .configure(super::topic_queries::configure::<K, S>);
}

/// Starts the federation listener on `listener` (mutual TLS with `tls`).
pub fn serve<K: PeerKeys + 'static, S: EventSink + 'static>(
    state: web::Data<AppState>,
    inbound: web::Data<Inbound<K, S>>,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    workers: usize,
) -> std::io::Result<Server> {
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(inbound.clone())
            .wrap(ErrorHandlers::new().default_handler_client(crate::json_error))
            .configure(configure::<K, S>)
            .default_service(web::to(crate::not_found))
    })
    .on_connect(peer::on_connect)
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
    // federation-api.md §8: a peer that asks for our keys is up. If we hold events for a server
    // its certificate names, that server's backoff ends now (a restarted host asks at start).
    if let (Some(outbound), Some(cert)) = (&state.outbound, req.conn_data::<PeerCertificate>()) {
        for waiting in state.store.outbound_destinations()? {
            if peer::certificate_names(&cert.0, &waiting) {
                outbound.peer_heard_from(&waiting);
            }
        }
    }
    let doc = own_server_keys(
        &state.store,
        &state.server_name,
        &state.identity.server_key,
        now(),
    )?;
    Ok(cbor(doc.to_wire()))
}

/// `PUT /_rdv/federation/v1/send/{txn_id}` (`federation-api.md` §4).
async fn send<K: PeerKeys, S: EventSink>(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
    inbound: web::Data<Inbound<K, S>>,
) -> ApiResult<HttpResponse> {
    crate::api::require_cbor(&req)?;
    let (txn, events) = Transaction::from_wire(&body)?;
    if *path != txn.txn_id {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            format!("path names transaction {:?}, body {:?}", *path, txn.txn_id),
        ));
    }
    let origin = txn.origin.clone();
    // federation-api.md §1: the certificate must be valid for the claimed origin; allow/deny.
    peer::authenticate(req.conn_data::<PeerCertificate>(), &origin, &inbound.policy)?;
    // federation-api.md §8: hearing from a peer resets our backoff towards it.
    if let Some(outbound) = &state.outbound {
        outbound.peer_heard_from(&origin);
    }
    if txn.destination != state.server_name {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            format!(
                "wrong_destination: transaction for {}, this is {}",
                txn.destination, state.server_name
            ),
        ));
    }

    let lock = inbound.lock_of(&origin);
    let _guard = lock.lock().await;
    let store = &state.store;
    // federation-api.md §4: a known transaction id gets the stored results, nothing applied.
    if let Some(stored) = store.federation_txn(&origin, &txn.txn_id)? {
        return Ok(cbor(stored));
    }

    // The origin's keys, fetched when the first event needs them.
    let mut keys: Option<Arc<ServerKeys>> = None;
    let mut refreshed = false;
    let mut results = Vec::with_capacity(events.len());
    for signed in events {
        let id = Event::id(signed.signed_bytes());
        let result = |status: u16, code: &str| EventResult {
            id: id.0,
            status,
            code: code.to_owned(),
        };
        // An event id applied before is answered 200 and not applied again.
        if store.federation_applied(&origin, &id.0)?.is_some() {
            results.push(result(200, ""));
            continue;
        }
        let unavailable = (503, ErrorCode::Unavailable.as_str());
        let checked = loop {
            let doc = match &keys {
                Some(doc) => doc.clone(),
                None => match inbound.keys.server_keys(&origin, false).await {
                    Ok(doc) => {
                        keys = Some(doc.clone());
                        doc
                    }
                    Err(e) => {
                        tracing::warn!(%e, "no keys for a federation peer");
                        break Err(unavailable);
                    }
                },
            };
            let valid_at = move |_: &ServerName, time: u64| doc.valid_at(time);
            match Event::check(
                signed.clone(),
                &origin,
                &state.server_name,
                &valid_at,
                now(),
            ) {
                Ok(event) => break Ok(event),
                // The origin may have rotated its key: fetch its document again, once per
                // transaction (the source rate-limits refreshes too).
                Err(EventError::BadSignature) if !refreshed => {
                    refreshed = true;
                    match inbound.keys.server_keys(&origin, true).await {
                        Ok(doc) => keys = Some(doc),
                        Err(e) => {
                            tracing::warn!(%e, "refreshing a federation peer's keys");
                            break Err(unavailable);
                        }
                    }
                }
                Err(e) => break Err(event_refusal(&e)),
            }
        };
        match checked {
            Ok(event) => match inbound.sink.apply(event).await {
                Ok(()) => {
                    store.mark_federation_applied(&origin, &id.0, now())?;
                    results.push(result(200, ""));
                }
                Err((status, code)) => results.push(result(status, &code)),
            },
            Err((status, code)) => results.push(result(status, code)),
        }
    }

    // Results that say "try again later" are not stored: the retry must be processed afresh
    // (events applied meanwhile are answered 200 by their id).
    let is_final = results.iter().all(|r| r.status < 500);
    let response = TransactionResponse { results }.to_wire();
    if is_final {
        store.set_federation_txn(&origin, &txn.txn_id, &response)?;
    }
    // Durable before answering (federation-spec/architecture.md §5).
    store.sync().await?;
    inbound.sink.settle(&origin).await;
    Ok(cbor(response))
}
