//! `GET /v1/stream` (WebSocket) and wake-up endpoint registration (`client-api.md` §7).

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};

use super::{cbor_body, cbor_response};
use crate::error::{ApiError, ApiResult};
use crate::push::check_push_url;
use crate::state::{AppState, Caller};
use rendezvous_protocol::api::{Empty, PushRegisterRequest};

/// Interval between pings.
const PING_EVERY: Duration = Duration::from_secs(20);

/// Largest frame a device may send on its stream: it sends only pings, pongs and a close.
const MAX_INCOMING_FRAME: usize = 4096;

/// Why a stream was not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamRefused {
    /// Not a valid WebSocket upgrade request.
    #[error("not a WebSocket upgrade: {0}")]
    Upgrade(String),
    /// The user holds as many streams as allowed.
    #[error(transparent)]
    Quota(#[from] crate::push::TooManyStreams),
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/stream", web::get().to(stream))
        .route("/v1/push", web::put().to(register_push))
        .route("/v1/push", web::delete().to(remove_push));
}

async fn stream(
    req: HttpRequest,
    body: web::Payload,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let upgrade = actix_ws::handle(&req, body).map_err(|e| StreamRefused::Upgrade(e.to_string()));
    let (response, mut session, messages) = upgrade.map_err(ApiError::from)?;
    let mut messages = messages.max_frame_size(MAX_INCOMING_FRAME);
    let sub = state
        .push()
        .subscribe(&caller.user, caller.device)
        .map_err(|e| ApiError::from(StreamRefused::Quota(e)))?;
    let (id, mut frames, queued) = (sub.id, sub.frames, sub.queued);
    let hub = state.push().clone();
    let user = caller.user.clone();
    actix_web::rt::spawn(async move {
        let mut ping = actix_web::rt::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Some(bytes) => {
                        let len = bytes.len();
                        let sent = session.binary(bytes).await;
                        queued.fetch_sub(len, std::sync::atomic::Ordering::Relaxed);
                        if sent.is_err() { break }
                    }
                    // Dropped by the hub: the device fell behind and must re-sync.
                    None => {
                        let _ = session.close(Some(actix_ws::CloseReason {
                            code: actix_ws::CloseCode::Again,
                            description: Some("fell behind; catch up with /v1/sync".into()),
                        })).await;
                        hub.unsubscribe(&user, id);
                        return;
                    }
                },
                msg = messages.recv() => match msg {
                    Some(Ok(actix_ws::Message::Ping(p))) => if session.pong(&p).await.is_err() { break },
                    Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                _ = ping.tick() => if session.ping(b"").await.is_err() { break },
            }
        }
        hub.unsubscribe(&user, id);
        let _ = session.close(None).await;
    });
    Ok(response)
}

async fn register_push(
    req: HttpRequest,
    body: web::Bytes,
    caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let r: PushRegisterRequest = cbor_body(&req, &body)?;
    // client-api.md §7.2: the form, then every address the host resolves to now.
    let target = check_push_url(&r.url, state.config().push.allow_loopback_http)?;
    target
        .resolve(state.push().targets())
        .await
        .map_err(crate::push::PushUrlError::from)?;
    state
        .store()
        .set_push(&caller.user, caller.device, Some(r.url))?;
    state.store().sync().await?;
    state.push().forget_endpoints(&caller.user);
    Ok(cbor_response(&Empty::default()))
}

async fn remove_push(caller: Caller, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    state.store().set_push(&caller.user, caller.device, None)?;
    state.store().sync().await?;
    state.push().forget_endpoints(&caller.user);
    Ok(cbor_response(&Empty::default()))
}
