//! The client API listener (`client-api.md` §1.2): per connection, the count per address
//! (before the TLS handshake), the handshake, the check of each request head ([`super::head`]), then
//! actix-http with the app. Built from actix-server and actix-http rather than `HttpServer`,
//! which has no place for a stream of our own between TLS and the HTTP dispatcher.

use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_http::{HttpService, Protocol};
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_factory, fn_service, map_config};
use actix_tls::accept::rustls_0_23::Acceptor;
use actix_web::dev::{AppConfig, Server, Service, ServiceFactory, ServiceResponse};
use actix_web::middleware::ErrorHandlers;
use actix_web::rt::net::TcpStream;
use actix_web::{App, web};

use super::head::HeadCheck;
use crate::limits::{Connections, ListenerLimits};
use crate::metrics::RequestLabels;
use crate::state::AppState;

/// actix's own head timer is a backstop behind ours, which answers with the JSON `408`.
const HEAD_BACKSTOP: Duration = Duration::from_secs(1);

/// The client API over TLS, counting requests by status.
pub(crate) fn client_server(
    state: &web::Data<AppState>,
    listener: TcpListener,
    workers: usize,
) -> std::io::Result<Server> {
    let tls = state.identity().tls.clone();
    let limits = ListenerLimits::new(&state.config().limits, workers);
    let connections = state.limits().connections.clone();
    let state = state.clone();
    let builder = actix_server::Server::build();
    // As `HttpServer`: a graceful stop also closes idle kept-alive connections.
    let stopping = builder.graceful_shutdown_signal();
    let server = builder
        .workers(workers)
        .max_concurrent_connections(limits.per_worker)
        .disable_signals()
        .shutdown_timeout(5)
        .listen("rendezvous-client-api", listener, move || {
            let stopping = stopping.clone();
            let app = client_app(state.clone())
                .into_factory()
                .map_err(|e| e.error_response());
            let http = HttpService::build()
                .graceful_shutdown_signal(move || {
                    let stopping = stopping.clone();
                    async move { stopping.notified().await }
                })
                .keep_alive(limits.keep_alive)
                .client_request_timeout(limits.head + HEAD_BACKSTOP)
                // What `HttpServer` sets: a refused body is discarded for at most 1 s.
                .client_disconnect_timeout(Duration::from_secs(1))
                .finish(map_config(app, |()| AppConfig::default()));
            let mut acceptor = Acceptor::new((*tls).clone());
            acceptor.set_handshake_timeout(limits.handshake);
            let connections = connections.clone();
            fn_factory(move || {
                let (http, tls) = (
                    http.new_service(()),
                    ServiceFactory::<TcpStream>::new_service(&acceptor, ()),
                );
                let connections = connections.clone();
                async move {
                    let http = Rc::new(http.await?);
                    let tls = Rc::new(tls.await?);
                    Ok::<_, ()>(fn_service(move |tcp: TcpStream| {
                        let (http, tls) = (http.clone(), tls.clone());
                        let connections = connections.clone();
                        async move {
                            let Some(io) = accept(tcp, &connections, &tls, limits.head).await
                            else {
                                return Ok(());
                            };
                            let (io, proto, peer) = io;
                            http.call((io, proto, peer)).await.map_err(|e| {
                                tracing::debug!(error = %e, "client connection");
                            })
                        }
                    }))
                }
            })
        })?
        .run();
    Ok(server)
}

type Accepted = (
    HeadCheck<actix_tls::accept::rustls_0_23::TlsStream<TcpStream>>,
    Protocol,
    Option<std::net::SocketAddr>,
);

/// Counts the connection by address (`connections_per_ip`: one too many is closed before the
/// handshake), does the TLS handshake, and wraps the stream for HTTP/1 or HTTP/2 by ALPN.
async fn accept(
    tcp: TcpStream,
    connections: &Arc<Connections>,
    tls: &impl Service<
        TcpStream,
        Response = actix_tls::accept::rustls_0_23::TlsStream<TcpStream>,
        Error = actix_tls::accept::TlsError<std::io::Error, std::convert::Infallible>,
    >,
    head: Duration,
) -> Option<Accepted> {
    let peer = tcp.peer_addr().ok()?;
    let Some(slot) = connections.open(peer.ip()) else {
        tracing::debug!(%peer, "connections per address: closed");
        return None;
    };
    // At most 256 handshakes at once per worker (actix-tls's counter, which only its
    // readiness enforces), as under `HttpServer`: the rest wait in the accept queue.
    if futures_util::future::poll_fn(|cx| tls.poll_ready(cx))
        .await
        .is_err()
    {
        return None;
    }
    let stream = match tls.call(tcp).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(%peer, error = ?e, "TLS handshake");
            return None;
        }
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    Some(match h2 {
        true => (
            HeadCheck::through(stream, slot),
            Protocol::Http2,
            Some(peer),
        ),
        false => (
            HeadCheck::http1(stream, slot, head),
            Protocol::Http1,
            Some(peer),
        ),
    })
}

/// The client API app: the gate, JSON errors, request metrics, the routes.
fn client_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let metrics_state = state.clone();
    App::new()
        .app_data(state)
        .app_data(web::PayloadConfig::new(
            rendezvous_protocol::topic::MAX_CHANGE_LEN + 1024,
        ))
        .wrap_fn(|mut req, srv| {
            // Auth, rate limits and the body cap, before any body byte is read.
            let outcome = match super::gate::check(&mut req) {
                Ok(()) => Ok(srv.call(req)),
                Err(refusal) => Err(req.into_response(refusal.response())),
            };
            async move {
                match outcome {
                    Ok(fut) => fut.await.map(ServiceResponse::map_into_left_body),
                    Err(res) => Ok(res.map_into_right_body()),
                }
            }
        })
        .wrap(ErrorHandlers::new().default_handler_client(crate::json_error))
        .wrap_fn(move |req, srv| {
            let state = metrics_state.clone();
            let fut = srv.call(req);
            async move {
                let res = fut.await?;
                let status = res.status().as_u16();
                state
                    .metrics()
                    .requests
                    .get_or_create(&RequestLabels { status })
                    .inc();
                Ok(res)
            }
        })
        .configure(super::configure)
        .default_service(web::to(crate::not_found))
}
