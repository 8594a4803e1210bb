//! The homeserver: client API over TLS, admin endpoint on loopback, storage, push.
//!
//! [`run`] takes already bound listeners and a shutdown future, so tests start real servers on
//! `127.0.0.1:0` and stop them when they like; the binary passes SIGINT/SIGTERM.
//!
//! The protocol itself (keys, wire types, topic rules, the tag log) is the
//! `rendezvous-protocol` crate; this crate enforces it and stores what it accepts, and never sees
//! plaintext.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod claims;
pub mod clock;
pub mod config;
pub mod directory;
pub mod error;
pub mod federation;
pub(crate) mod http;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod push;
pub mod state;
pub mod store;
pub mod tls;
pub mod topics;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::rt::task::JoinHandle;
use actix_web::{App, HttpResponse, HttpServer, web};

use crate::clock::Clock;
use crate::config::Config;
use crate::error::ApiResult;
use crate::federation::Federation;
use crate::federation::outbound::AwcTransport;
use crate::identity::ServerIdentity;
use crate::push::PushHub;
use crate::state::AppState;
use crate::store::Store;
use rendezvous_protocol::api::{ApiErrorBody, ErrorCode};
use rendezvous_protocol::ids::ServerName;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Keys or certificates.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// Storage.
    #[error("storage: {0}")]
    Store(#[from] store::StoreError),
    /// Sockets.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
}

/// The sockets the server serves on.
#[derive(Debug)]
pub struct Listeners {
    /// Client API (TLS).
    pub client: TcpListener,
    /// Admin endpoint (loopback, plain HTTP).
    pub admin: TcpListener,
    /// Federation listener (mutual TLS), when `federation.enabled`; `None` binds
    /// `federation.listen` at start.
    pub federation: Option<TcpListener>,
}

impl Listeners {
    /// Second handles of the same sockets: the servers take these, and the sockets outlive a
    /// restart of the servers after a storage fault.
    fn try_clone(&self) -> std::io::Result<Listeners> {
        Ok(Listeners {
            client: self.client.try_clone()?,
            admin: self.admin.try_clone()?,
            federation: match &self.federation {
                Some(l) => Some(l.try_clone()?),
                None => None,
            },
        })
    }

    /// Binds the addresses in the configuration.
    pub fn bind(config: &Config) -> std::io::Result<Listeners> {
        Ok(Listeners {
            client: TcpListener::bind(config.client_api.listen)?,
            admin: TcpListener::bind(config.admin.listen)?,
            federation: match config.federation.enabled {
                true => Some(TcpListener::bind(config.federation.listen)?),
                false => None,
            },
        })
    }
}

/// Loads the identity (making it on first start) and opens the store: what `run` needs.
pub fn prepare(config: &Config) -> Result<(ServerIdentity, Store), ServerError> {
    config.check()?;
    let name = config.server_name.clone();
    let tls = match (&config.client_api.tls_cert, &config.client_api.tls_key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ => None,
    };
    identity::make_private(&config.data_dir)?;
    let mut identity = ServerIdentity::load_or_create(&config.data_dir, &name, tls)?;
    if config.federation.enabled {
        // One reloadable certificate when federation uses the client API's files.
        let (cert, key) = federation::peer::certificate_files(config);
        let certificate = match identity.certificate.reads(&cert, &key) {
            true => identity.certificate.clone(),
            false => Arc::new(tls::ReloadableCert::load(&cert, &key)?),
        };
        identity.federation = Some(federation::peer::FederationTls::with_certificate(
            config,
            certificate,
        )?);
    }
    let store = Store::open(&config.data_dir.join("db"))?;
    identity.server_key =
        identity::rotation::settle(&config.data_dir, &store, &name, identity.server_key)?;
    Ok((identity, store))
}

/// Serves until `shutdown` completes, then stops accepting, finishes in-flight requests,
/// flushes the store and returns. The protocol's times are read from `clock`
/// ([`Clock::system`] but in tests that move time forward).
///
/// A storage fault does not stop the server: requests that need the store answer `503
/// unavailable` while it lasts; once it has cleared, the servers stop, the database is reopened
/// and everything kept in memory is rebuilt from it, and they serve again on the same sockets
/// (`architecture.md` §5.1).
pub async fn run(
    config: Config,
    identity: ServerIdentity,
    store: Store,
    listeners: Listeners,
    clock: Clock,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let limits = limits::Limits::new(&config.limits.rate, &config.federation.limits)
        .map_err(config::ConfigError::Invalid)?
        .with_http(&config);
    let limits = Arc::new(limits);
    let identity = Arc::new(identity);
    let mut listeners = listeners;
    if config.federation.enabled && listeners.federation.is_none() {
        listeners.federation = Some(TcpListener::bind(config.federation.listen)?);
    }
    let mut shutdown = std::pin::pin!(shutdown);
    let mut store = store;
    loop {
        let built = build(
            config.clone(),
            identity.clone(),
            store.clone(),
            clock.clone(),
            limits.clone(),
        )?;
        let servers = serve(&built.state, listeners.try_clone()?).await?;
        let tasks = start_tasks(built);
        tokio::select! {
            () = &mut shutdown => return shut_down(servers, tasks).await,
            () = fault_cleared(&store, &config.storage) => {}
        }
        tracing::warn!("storage fault cleared: reopening the database and rebuilding the state");
        stop(servers, tasks).await;
        store = store.reopen().await?;
        tracing::warn!("database reopened; serving again");
    }
}

/// Completes once the store has failed (a write or flush error, which sled keeps until the
/// database is reopened) and the fault looks cleared: free space back above the threshold, or,
/// for other faults, `reopen_retry_secs` later.
async fn fault_cleared(store: &Store, storage: &config::Storage) {
    let every = Duration::from_secs(1);
    let error = loop {
        actix_web::rt::time::sleep(every).await;
        if let Err(e) = store.probe() {
            break e;
        }
    };
    tracing::error!(%error, "storage fault: writes answer 503 until it clears");
    // Room for sled to write its recovery and the next segment.
    let needed = storage.min_free_bytes.max(1024 * 1024);
    let retry = Duration::from_secs(storage.reopen_retry_secs);
    loop {
        actix_web::rt::time::sleep(retry).await;
        match store.free_bytes() {
            Some(free) if free < needed => {
                tracing::warn!(free, needed, "storage fault: waiting for free space");
            }
            _ => return,
        }
    }
}

/// What [`build`] makes: the state every handler gets, and what the background tasks run on.
struct Built {
    state: web::Data<AppState>,
    /// Wake-up URLs queued by the push hub.
    wake_rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// The TLS configuration of wake-up POSTs (the system roots).
    push_tls: Arc<rustls::ClientConfig>,
    /// The outbound federation transport (not `Send`: it runs on this thread).
    transport: Option<AwcTransport>,
}

/// The running servers (client API, admin, federation listener).
struct Servers {
    handles: Vec<ServerHandle>,
    running: JoinHandle<std::io::Result<()>>,
}

/// The background tasks, aborted at shutdown.
struct Tasks {
    state: web::Data<AppState>,
    running: Vec<JoinHandle<()>>,
}

/// Builds the state: the push hub, federation (once: one discovery cache, one peer policy,
/// one mutual-TLS client, the peer keys, the outbound queues) and the topic service.
fn build(
    config: Config,
    identity: Arc<ServerIdentity>,
    store: Store,
    clock: Clock,
    limits: Arc<limits::Limits>,
) -> Result<Built, ServerError> {
    let server_name = config.server_name.clone();
    let policy = net::OutboundPolicy::from_config(&config.outbound);
    if policy.is_relaxed() {
        tracing::warn!(outbound = ?config.outbound, "[outbound] admits special addresses: push and federation may reach private networks");
    }
    // Push hosts are looked up with the DNS servers of federation discovery (the system's
    // when none are set).
    let targets = net::TargetResolver::new(&config.federation.nameservers, policy)
        .map_err(|e| config::ConfigError::Invalid(format!("push resolver: {e}")))?;
    let (hub, wake_rx) = PushHub::new(config.limits.stream_quota(), targets);
    let push_tls = push_tls()?;
    let federation = build_federation(&config, &server_name, &identity, &store, &clock)?;
    let federation = federation.map(|(f, transport)| {
        (
            f.with_witness(&config, identity.clone(), &store, &clock),
            transport,
        )
    });
    let (federation, transport) = match federation {
        Some((federation, transport)) => (Some(Arc::new(federation)), Some(transport)),
        None => (None, None),
    };
    let state = web::Data::new(AppState::new(
        config,
        identity,
        store,
        Arc::new(hub),
        federation,
        clock,
        limits,
    ));
    // directory.md §2.2: users of before the directory get their entries before anything is
    // served.
    match state.directory().backfill()? {
        0 => {}
        n => tracing::info!(
            n,
            "directory: appended the entries of users registered before it"
        ),
    }
    if let Some(federation) = state.federation() {
        // A refused submit is told to the device waiting for it, or else filed in the
        // author's devices' inboxes (`federation-api.md` §9.3).
        let topics = Arc::downgrade(state.topics());
        federation
            .outbound()
            .on_refused(Arc::new(move |event, status, code| {
                if let Some(topics) = topics.upgrade() {
                    topics.submit_refused(event, status, code);
                }
            }));
    }
    Ok(Built {
        state,
        wake_rx,
        push_tls,
        transport,
    })
}

/// Federation when `federation.enabled`: its TLS from [`prepare`] (else loaded now).
fn build_federation(
    config: &Config,
    name: &ServerName,
    identity: &ServerIdentity,
    store: &Store,
    clock: &Clock,
) -> Result<Option<(Federation, AwcTransport)>, ServerError> {
    if !config.federation.enabled {
        return Ok(None);
    }
    let tls = match &identity.federation {
        Some(tls) => tls.clone(),
        None => federation::peer::FederationTls::load(config)?,
    };
    Ok(Some(Federation::build(config, name, tls, store, clock)?))
}

/// Number of HTTP workers per server.
fn workers(config: &Config) -> usize {
    match config.limits.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
}

/// Starts the client API, the admin endpoint and (when federating) the federation listener.
async fn serve(state: &web::Data<AppState>, listeners: Listeners) -> Result<Servers, ServerError> {
    let workers = workers(state.config());
    let client = api::listener::client_server(state, listeners.client, workers)?;
    let admin = admin_server(state, listeners.admin)?;
    let federation = match state.federation() {
        Some(federation) => {
            Some(federation_server(state, federation, listeners.federation, workers).await?)
        }
        None => None,
    };
    let mut handles = vec![client.handle(), admin.handle()];
    handles.extend(federation.as_ref().map(Server::handle));
    let running = actix_web::rt::spawn(async move {
        let federation = async move {
            match federation {
                Some(f) => f.await,
                None => Ok(()),
            }
        };
        let (a, b, c) = futures_util::future::join3(client, admin, federation).await;
        a.and(b).and(c)
    });
    Ok(Servers { handles, running })
}

/// The admin endpoint, plain HTTP on loopback.
fn admin_server(state: &web::Data<AppState>, listener: TcpListener) -> Result<Server, ServerError> {
    let state = state.clone();
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(ErrorHandlers::new().default_handler_client(json_error))
            .configure(admin::configure)
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run())
}

/// The federation listener (mutual TLS), on `listener` or else `federation.listen`.
async fn federation_server(
    state: &web::Data<AppState>,
    federation: &Arc<Federation>,
    listener: Option<TcpListener>,
    workers: usize,
) -> Result<Server, ServerError> {
    // Fixes (and makes durable) when our current key was first announced, before any peer can
    // fetch it.
    federation::keys::own_server_keys(
        state.store(),
        state.server_name(),
        &state.identity().server_key,
        state::now(),
    )?;
    state.store().sync().await?;
    let listener = match listener {
        Some(l) => l,
        None => TcpListener::bind(state.config().federation.listen)?,
    };
    let inbound = web::Data::new(federation::inbound::Inbound::new(
        federation.policy().clone(),
        federation.peer_keys().clone(),
        federation::topics::TopicSink::new(state.topics().clone()),
    ));
    let tls = federation.tls().server.clone();
    Ok(federation::inbound::serve(
        state.clone(),
        inbound,
        tls,
        listener,
        workers,
    )?)
}

/// Starts the background tasks: wake-ups, the purge of expired items, and when federating the
/// outbound senders and the announcement that this server is up.
fn start_tasks(built: Built) -> Tasks {
    let Built {
        state,
        wake_rx,
        push_tls,
        transport,
    } = built;
    let retry_for = Duration::from_secs(state.config().push.retry_for_secs);
    let mut running = vec![
        actix_web::rt::spawn(push::run_wakeups(
            state.push().clone(),
            wake_rx,
            push_tls,
            state.config().push.allow_loopback_http,
            retry_for,
        )),
        actix_web::rt::spawn(purge_expired(state.clone())),
    ];
    if let (Some(federation), Some(transport)) = (state.federation(), transport) {
        // Outbound federation senders run as local tasks of this thread (awc is
        // single-threaded).
        running.push(actix_web::rt::spawn(
            federation.outbound().clone().run(transport),
        ));
        // directory.md §5: every peer's directory, every `directory_witness_secs`.
        if let Some(witness) = federation.witness() {
            running.push(actix_web::rt::spawn(witness.clone().run()));
        }
        let state = state.clone();
        actix_web::rt::spawn(async move {
            if let Some(federation) = state.federation() {
                federation.announce(state.store()).await;
            }
            state.topics().announce_to_hosts().await;
        });
    }
    Tasks { state, running }
}

/// Expired challenges, tokens, pins and link slots go once a minute (and at start), and so do
/// rate-limit keys back to a fresh state and old federation bookkeeping.
async fn purge_expired(state: web::Data<AppState>) {
    let mut every = actix_web::rt::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        if let Err(e) = state.store().purge_expired(state::now()) {
            tracing::warn!(%e, "purging expired items failed");
        }
        // federation-api.md §1.1: stored answers and applied event ids are bounded in time.
        let retention = federation::inbound::retention(&state);
        match state
            .store()
            .purge_federation(state.clock().now(), retention)
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(n, "purged federation bookkeeping"),
            Err(e) => tracing::warn!(%e, "purging federation bookkeeping failed"),
        }
        state.limits().prune();
    }
}

/// Stops accepting, finishes in-flight requests, stops the background tasks and flushes the
/// store.
async fn shut_down(servers: Servers, tasks: Tasks) -> Result<(), ServerError> {
    tracing::info!("shutting down: finishing in-flight requests");
    let store = tasks.state.store().clone();
    stop(servers, tasks).await;
    store.sync().await?;
    tracing::info!("store flushed; bye");
    Ok(())
}

/// Stops the servers (finishing in-flight requests) and the background tasks, and drops the
/// state; the sockets stay open in [`run`]'s hands.
async fn stop(servers: Servers, tasks: Tasks) {
    futures_util::future::join_all(servers.handles.iter().map(|h| h.stop(true))).await;
    let _ = servers.running.await;
    for task in tasks.running {
        task.abort();
        let _ = task.await;
    }
}

/// The TLS configuration of wake-up POSTs, trusting the system roots (`SSL_CERT_FILE` when
/// set).
fn push_tls() -> Result<Arc<rustls::ClientConfig>, ServerError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config::ConfigError::Invalid(format!("push TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub(crate) async fn not_found() -> ApiResult<HttpResponse> {
    Err(http::RequestError::NoSuchEndpoint.into())
}

/// Gives every client error that did not come from our own handlers (bad query string, payload
/// over the limit, wrong method) the same JSON shape as ours.
pub(crate) fn json_error<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let mut code = match status.as_u16() {
        401 => ErrorCode::Unauthorized,
        404 | 405 => ErrorCode::NotFound,
        408 => ErrorCode::Timeout,
        413 => ErrorCode::TooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        431 => ErrorCode::HeadersTooLarge,
        _ => ErrorCode::Malformed,
    };
    let mut message = match res.response().error() {
        Some(e) => e.to_string(),
        None => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    // A body that broke its cap or deadline while being read (`api::gate`).
    if let Some(e) = res
        .response()
        .error()
        .and_then(|e| e.as_error::<actix_web::error::PayloadError>())
    {
        (code, message) = api::gate::payload_code(e);
    }
    let status = actix_web::http::StatusCode::from_u16(code.status()).unwrap_or(status);
    let (req, _) = res.into_parts();
    let body = HttpResponse::build(status).json(ApiErrorBody {
        code: code.as_str().to_owned(),
        message,
    });
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, body).map_into_right_body(),
    ))
}
