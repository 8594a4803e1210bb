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
pub mod config;
pub mod error;
pub mod federation;
pub mod identity;
pub mod metrics;
pub mod push;
pub mod state;
pub mod store;
pub mod tls;
pub mod topics;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{App, HttpResponse, HttpServer, web};

use crate::config::Config;
use crate::error::ApiResult;
use crate::federation::outbound::{self, AwcTransport, Outbound};
use crate::identity::ServerIdentity;
use crate::metrics::{Metrics, RequestLabels};
use crate::push::PushHub;
use crate::state::AppState;
use crate::store::Store;
use crate::topics::TopicHost;
use rendezvous_protocol::api::{ApiErrorBody, ErrorCode};

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
    Ok((identity, store))
}

/// Serves until `shutdown` completes, then stops accepting, finishes in-flight requests,
/// flushes the store and returns.
pub async fn run(
    config: Config,
    identity: ServerIdentity,
    store: Store,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let server_name = config.server_name.clone();
    let (hub, wake_rx) = PushHub::new();
    let hub = Arc::new(hub);
    let tls = identity.tls.clone();
    let workers = match config.limits.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let retry_for = Duration::from_secs(config.push.retry_for_secs);
    let federation_tls = match (config.federation.enabled, &identity.federation) {
        (true, Some(tls)) => Some(tls.clone()),
        (true, None) => Some(federation::peer::FederationTls::load(&config)?),
        (false, _) => None,
    };
    let outbound = match &federation_tls {
        Some(tls) => Some((
            Arc::new(Outbound::new(store.clone(), server_name.clone())),
            outbound_transport(&config, tls)?,
        )),
        None => None,
    };
    // One discovery (and its DNS cache) for peers' key documents and for queries.
    let federation_resolver = match &federation_tls {
        Some(_) => {
            let discovery = federation::discovery::Discovery::new(&config.federation)
                .map_err(|e| config::ConfigError::Invalid(format!("federation discovery: {e}")))?;
            Some(federation::keys::discovery_resolver(Arc::new(discovery)))
        }
        None => None,
    };
    let federation_client = match (&federation_tls, &federation_resolver) {
        (Some(tls), Some(resolver)) => Some(Arc::new(
            federation::client::FederationClient::new(tls.client.clone(), resolver.clone())
                .with_origin(server_name.clone())
                .with_policy(federation::peer::PeerPolicy::from_config(
                    &config.federation,
                )),
        )),
        _ => None,
    };
    let peer_keys = match (&federation_tls, &federation_resolver) {
        (Some(tls), Some(resolver)) => Some(Arc::new(
            federation::keys::HttpPeerKeys::new(tls.client.clone(), resolver.clone()).with_policy(
                federation::peer::PeerPolicy::from_config(&config.federation),
            ),
        )),
        _ => None,
    };
    let state = web::Data::new(AppState {
        config,
        server_name: server_name.clone(),
        identity,
        store: store.clone(),
        topics: TopicHost::new(server_name.clone()),
        push: hub.clone(),
        metrics: Metrics::default(),
        auth_cache: Default::default(),
        outbound: outbound.as_ref().map(|(o, _)| o.clone()),
        federation: federation_client,
        peer_keys: peer_keys.clone(),
        submits: Default::default(),
    });
    if let Some(outbound) = &state.outbound {
        // A refused submit is told to the device waiting for it (`federation-api.md` §9.3).
        let weak = Arc::downgrade(&state.clone().into_inner());
        outbound.on_refused(Arc::new(move |id, status, code| {
            if let Some(state) = weak.upgrade() {
                state.submits.refused(id, status, code);
            }
        }));
    }

    let client_state = state.clone();
    let client = HttpServer::new(move || {
        let metrics_state = client_state.clone();
        App::new()
            .app_data(client_state.clone())
            .app_data(web::PayloadConfig::new(
                rendezvous_protocol::topic::MAX_CHANGE_LEN + 1024,
            ))
            .wrap(ErrorHandlers::new().default_handler_client(json_error))
            .wrap_fn(move |req, srv| {
                let state = metrics_state.clone();
                let fut = actix_web::dev::Service::call(srv, req);
                async move {
                    let res = fut.await?;
                    state
                        .metrics
                        .requests
                        .get_or_create(&RequestLabels {
                            status: res.status().as_u16(),
                        })
                        .inc();
                    Ok(res)
                }
            })
            .configure(api::configure)
            .default_service(web::to(not_found))
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(5)
    .listen_rustls_0_23(listeners.client, (*tls).clone())?
    .run();

    let admin_state = state.clone();
    let admin = HttpServer::new(move || {
        App::new()
            .app_data(admin_state.clone())
            .wrap(ErrorHandlers::new().default_handler_client(json_error))
            .configure(admin::configure)
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listeners.admin)?
    .run();

    let federation = match federation_tls.zip(peer_keys) {
        Some((tls, keys)) => {
            // Fixes (and makes durable) when our current key was first announced, before any
            // peer can fetch it.
            federation::keys::own_server_keys(
                &store,
                &state.server_name,
                &state.identity.server_key,
                state::now(),
            )?;
            store.sync().await?;
            let listener = match listeners.federation {
                Some(l) => l,
                None => TcpListener::bind(state.config.federation.listen)?,
            };
            let inbound = web::Data::new(federation::inbound::Inbound::new(
                federation::peer::PeerPolicy::from_config(&state.config.federation),
                keys.clone(),
                federation::topics::TopicSink::new(state.clone(), keys),
            ));
            Some(federation::inbound::serve(
                state.clone(),
                inbound,
                tls.server,
                listener,
                workers,
            )?)
        }
        None => None,
    };
    let federation_handle = federation.as_ref().map(|s| s.handle());

    let client_handle = client.handle();
    let admin_handle = admin.handle();
    let wake_client = push_client();
    let wakeups = actix_web::rt::spawn(push::run_wakeups(hub, wake_rx, wake_client, retry_for));
    // Expired challenges, tokens, pins and link slots go once a minute.
    let purge_store = store.clone();
    let purger = actix_web::rt::spawn(async move {
        let mut every = actix_web::rt::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            if let Err(e) = purge_store.purge_expired(state::now()) {
                tracing::warn!(%e, "purging expired items failed");
            }
        }
    });
    // Outbound federation senders run as local tasks of this thread (awc is single-threaded).
    let senders = outbound.map(|(o, transport)| actix_web::rt::spawn(o.run(transport)));
    if state.outbound.is_some() {
        actix_web::rt::spawn(federation::topics::announce_to_hosts(state.clone()));
    }
    let servers = actix_web::rt::spawn(async move {
        let federation = async move {
            match federation {
                Some(f) => f.await,
                None => Ok(()),
            }
        };
        let (a, b, c) = futures_util::future::join3(client, admin, federation).await;
        a.and(b).and(c)
    });
    shutdown.await;
    tracing::info!("shutting down: finishing in-flight requests");
    let federation_stop = async move {
        if let Some(h) = federation_handle {
            h.stop(true).await;
        }
    };
    futures_util::future::join3(
        client_handle.stop(true),
        admin_handle.stop(true),
        federation_stop,
    )
    .await;
    let _ = servers.await;
    wakeups.abort();
    purger.abort();
    if let Some(senders) = senders {
        senders.abort();
    }
    store.sync().await?;
    tracing::info!("store flushed; bye");
    Ok(())
}

/// The transport of outbound federation: federation's client TLS configuration (its
/// reloadable certificate as client certificate, peers checked against `federation.ca_file`,
/// else the system roots), addresses through discovery.
fn outbound_transport(
    config: &Config,
    tls: &federation::peer::FederationTls,
) -> Result<AwcTransport, ServerError> {
    // federation-api.md §7: overrides, explicit ports, SRV, then A/AAAA on 8448.
    let discovery = federation::discovery::Discovery::new(&config.federation)
        .map_err(|e| config::ConfigError::Invalid(format!("federation discovery: {e}")))?;
    Ok(AwcTransport::new(
        (*tls.client).clone(),
        outbound::discovery_resolver(Arc::new(discovery)),
    ))
}

/// An HTTPS client for wake-up POSTs, trusting the system roots.
fn push_client() -> awc::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    match config {
        Ok(config) => awc::Client::builder()
            .connector(awc::Connector::new().rustls_0_23(Arc::new(config)))
            .finish(),
        Err(_) => awc::Client::default(),
    }
}

async fn not_found() -> ApiResult<HttpResponse> {
    Err(crate::error::ApiError::new(
        ErrorCode::NotFound,
        "no such endpoint",
    ))
}

/// Gives every client error that did not come from our own handlers (bad query string, payload
/// over the limit, wrong method) the same JSON shape as ours.
fn json_error<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let code = match status.as_u16() {
        401 => ErrorCode::Unauthorized,
        404 | 405 => ErrorCode::NotFound,
        413 => ErrorCode::TooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        _ => ErrorCode::Malformed,
    };
    let message = match res.response().error() {
        Some(e) => e.to_string(),
        None => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let (req, _) = res.into_parts();
    let body = HttpResponse::build(status).json(ApiErrorBody {
        code: code.as_str().to_owned(),
        message,
    });
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, body).map_into_right_body(),
    ))
}
