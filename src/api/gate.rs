//! What every client API request passes before its handler runs (`client-api.md` §1.2–§1.3):
//! the endpoint's policy — who may call it, the rate classes it takes a cell from, and its body
//! cap — checked in that order, **before any body byte is read**. The body is then read under
//! the cap and a deadline.
//!
//! [`POLICIES`] is the one table of these rules; a test checks that every route has a row.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::dev::{Payload, ServiceRequest};
use actix_web::error::PayloadError;
use actix_web::http::Method;
use actix_web::web::{Bytes, Data};
use futures_util::Stream;

use crate::error::ApiError;
use crate::limits::{Limited, Limits, RateClass, Reservation};
use crate::state::{AppState, Caller};
use rendezvous_protocol::api::ErrorCode;

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// Anyone (the body proves what it needs: a pin, an Identity Key signature).
    None,
    /// A device token (`Authorization: Bearer`), checked before the body is read.
    Token,
}

/// A rate class an endpoint counts in (`client-api.md` §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    LoginIp,
    RegisterIp,
    DevicesIp,
    LinkOpen,
    LinkRelayIp,
    LinkRelay,
    TopicCreate,
    Send,
    /// One cell per KiB of body.
    SendKib,
    Identity,
    Push,
    Upload,
    Stream,
}

/// One endpoint's rules.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) auth: Auth,
    /// Most body bytes (0: no body).
    pub(crate) cap: usize,
    pub(crate) classes: &'static [Class],
}

const KIB: usize = 1024;
/// The WebSocket endpoint: its body is the connection's incoming frames.
const STREAM_PATH: &str = "/v1/stream";
/// Bodies up to this size are bookkeeping that a low disk does not stop.
const SMALL_WRITE: usize = KIB;
/// A signed topic change or create: the largest change plus its signature envelope.
const CHANGE_CAP: usize =
    rendezvous_protocol::topic::MAX_CHANGE_LEN + rendezvous_protocol::wire::signed::SIGNED_OVERHEAD;
/// A last-resort key upload: one `topic-key-upload` in its request.
const LAST_RESORT_CAP: usize =
    <rendezvous_protocol::api::UploadLastResortRequest as rendezvous_protocol::api::Body>::MAX_LEN;
/// A message: the largest message wire form.
const MESSAGE_CAP: usize = rendezvous_protocol::message::MAX_MESSAGE_LEN;

const fn p(
    method: &'static str,
    path: &'static str,
    auth: Auth,
    cap: usize,
    classes: &'static [Class],
) -> Policy {
    Policy {
        method,
        path,
        auth,
        cap,
        classes,
    }
}

use Auth::{None as Open, Token};
use Class::*;

/// Every client API endpoint: auth, body cap, rate classes. Every request also counts in
/// `any_ip` (unauthenticated) or `any_user` (token).
pub(crate) const POLICIES: &[Policy] = &[
    p("POST", "/v1/register", Open, 4 * KIB, &[RegisterIp]),
    p("GET", "/v1/users/{user}/identity", Token, 0, &[Identity]),
    p("GET", "/v1/directory/checkpoint", Token, 0, &[Identity]),
    p("GET", "/v1/directory/entries", Token, 0, &[Identity]),
    p("GET", "/v1/directory/consistency", Token, 0, &[Identity]),
    p("GET", "/v1/directory/proof", Token, 0, &[Identity]),
    p("POST", "/v1/devices", Open, 2 * KIB, &[DevicesIp]),
    p("GET", "/v1/devices", Token, 0, &[]),
    p("POST", "/v1/devices/revoke", Token, 2 * KIB, &[DevicesIp]),
    p("POST", "/v1/identity/rotate", Token, 64 * KIB, &[DevicesIp]),
    p("POST", "/v1/login/challenge", Open, KIB, &[LoginIp]),
    p("POST", "/v1/login", Open, KIB, &[LoginIp]),
    p("POST", "/v1/prekeys", Token, 64 * KIB, &[Upload]),
    p("POST", "/v1/prekeys/claim", Token, 256, &[]),
    p("POST", "/v1/topic-keys", Token, 4096 * KIB, &[Upload]),
    p(
        "PUT",
        "/v1/topic-keys/last-resort",
        Token,
        LAST_RESORT_CAP,
        &[Upload],
    ),
    p(
        "POST",
        "/v1/topic-keys/own",
        Token,
        LAST_RESORT_CAP,
        &[Upload],
    ),
    p("POST", "/v1/topic-keys/claim", Token, 64 * KIB, &[]),
    p("GET", "/v1/keys/status", Token, 0, &[]),
    p("GET", "/v1/inbox", Token, 0, &[]),
    p("POST", "/v1/inbox/ack", Token, 256, &[]),
    p("POST", "/v1/link", Token, 256, &[LinkOpen]),
    p("POST", "/v1/link/{id}/request", Open, KIB, &[LinkRelayIp]),
    p("GET", "/v1/link/{id}/request", Token, 0, &[LinkRelay]),
    p(
        "POST",
        "/v1/link/{id}/response",
        Token,
        4096 * KIB + KIB,
        &[LinkRelay],
    ),
    p("GET", "/v1/link/{id}/response", Open, 0, &[LinkRelayIp]),
    p(
        "POST",
        "/v1/topics",
        Token,
        CHANGE_CAP,
        &[TopicCreate, Send, SendKib],
    ),
    p("GET", "/v1/topics", Token, 0, &[]),
    p(
        "POST",
        "/v1/topics/{topic}/changes",
        Token,
        CHANGE_CAP,
        &[Send, SendKib],
    ),
    p(
        "POST",
        "/v1/topics/{topic}/messages",
        Token,
        MESSAGE_CAP,
        &[Send, SendKib],
    ),
    p("GET", "/v1/topics/{topic}/entries", Token, 0, &[]),
    p("GET", "/v1/topics/{topic}/checkpoint", Token, 0, &[]),
    p("GET", "/v1/topics/{topic}/proof/inclusion", Token, 0, &[]),
    p("GET", "/v1/topics/{topic}/proof/consistency", Token, 0, &[]),
    p("PUT", "/v1/topics/{topic}/cursor", Token, 256, &[]),
    p("GET", "/v1/topics/{topic}/witnesses", Token, 0, &[]),
    p("GET", "/v1/servers/{server}/keys", Token, 0, &[]),
    p("GET", "/v1/sync", Token, 0, &[]),
    p("GET", STREAM_PATH, Token, 0, &[Stream]),
    p("PUT", "/v1/push", Token, 4 * KIB, &[Push]),
    p("DELETE", "/v1/push", Token, 0, &[Push]),
    p("GET", "/v1/status", Open, 0, &[]),
];

/// The policy of a request, by method and route pattern; `None` for a path no route serves.
pub(crate) fn policy(method: &Method, pattern: &str) -> Option<&'static Policy> {
    POLICIES
        .iter()
        .find(|p| p.path == pattern && p.method == method.as_str())
}

/// Why a request was stopped at the gate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// The announced body is over the endpoint's cap.
    #[error("body of {got} bytes is over this endpoint's limit of {cap}")]
    TooLarge {
        /// The cap.
        cap: usize,
        /// The announced length.
        got: u64,
    },
    /// The head has more header fields or more bytes than allowed.
    #[error(
        "request head of {fields} header fields and {bytes} bytes is over the limit of {max_fields} fields, {max_bytes} bytes"
    )]
    HeadTooLarge {
        /// Header fields.
        fields: usize,
        /// Bytes of the request line and header fields.
        bytes: usize,
        /// `limits.max_headers`.
        max_fields: usize,
        /// `limits.max_head_bytes`.
        max_bytes: usize,
    },
    /// The body did not arrive before its deadline.
    #[error("the request body did not arrive within {secs} s")]
    Timeout {
        /// The deadline.
        secs: u64,
    },
}

/// The refusal, and whether the connection must be closed after it (the body was not read).
pub(crate) struct Refusal {
    pub(crate) error: ApiError,
    pub(crate) close: bool,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Refusal {
            error,
            close: false,
        }
    }
}

impl From<Limited> for Refusal {
    fn from(e: Limited) -> Self {
        ApiError::from(e).into()
    }
}

/// Checks `req` against its endpoint's policy and, when it passes, puts the caller (for token
/// endpoints) in its extensions and bounds its body by the cap and a deadline.
pub(crate) fn check(req: &mut ServiceRequest) -> Result<(), Refusal> {
    let Some(state) = req.app_data::<Data<AppState>>().cloned() else {
        return Err(ApiError::internal("app state", "missing").into());
    };
    check_head(req, &state.config().limits)?;
    let pattern = req.match_pattern();
    let Some(policy) = pattern.as_deref().and_then(|p| policy(req.method(), p)) else {
        // No route: the router answers 404 (or 405), reading nothing.
        return Ok(());
    };
    // Bookkeeping writes (bodies of at most 1 KiB: logins, cursors, acknowledgements, claims)
    // go on; the threshold leaves them room.
    if policy.method != "GET" && policy.cap > SMALL_WRITE {
        state.refuse_writes_if_low_on_space()?;
    }
    let limits = state.limits();
    let ip = req.peer_addr().map(|a| a.ip());
    let caller = match policy.auth {
        Auth::Token => {
            // A refused token costs its address an `any_ip` cell: made-up tokens are no
            // unlimited way to keep the server busy (`client-api.md` §1.3).
            let caller =
                crate::state::authenticate(req.request()).map_err(|refused| {
                    match limits.check_ip(&limits.any_ip, ip) {
                        Err(limited) => ApiError::from(limited),
                        Ok(()) => refused,
                    }
                })?;
            limits.any_user.check(caller.user.as_str(), 1)?;
            Some(caller)
        }
        Auth::None => {
            limits.check_ip(&limits.any_ip, ip)?;
            None
        }
    };
    let length = content_length(req);
    for class in policy.classes {
        take(limits, *class, caller.as_ref(), ip, length, policy.cap)?;
    }
    if let Some(got) = length
        && got > policy.cap as u64
    {
        return Err(Refusal {
            error: GateError::TooLarge {
                cap: policy.cap,
                got,
            }
            .into(),
            close: true,
        });
    }
    let caller_user = caller.as_ref().map(|c| c.user.as_str().to_owned());
    if let Some(caller) = caller {
        req.extensions_mut().insert(caller);
    }
    // The stream's "body" is its WebSocket, open for hours: the WebSocket codec bounds each
    // incoming frame (`stream.rs`), and neither the cap nor the deadline applies.
    if policy.path == STREAM_PATH {
        return Ok(());
    }
    // A body reserves what it may hold from the body-memory budget, before it is read.
    let reserve = length.unwrap_or(policy.cap as u64);
    let reservation = match reserve {
        0 => None,
        bytes => Some(
            limits
                .bodies
                .reserve(bytes, caller_user.as_deref())
                .map_err(|e| Refusal {
                    error: e.into(),
                    close: true,
                })?,
        ),
    };
    let deadline = body_deadline(&state, reserve);
    let payload = req.take_payload();
    req.set_payload(Payload::Stream {
        payload: Box::pin(Bounded {
            inner: payload,
            read: 0,
            cap: policy.cap,
            deadline: Box::pin(actix_web::rt::time::sleep(deadline)),
            secs: deadline.as_secs(),
            reservation,
        }),
    });
    Ok(())
}

/// Refuses a head of more than `max_headers` fields or `max_head_bytes` bytes (`431
/// headers_too_large`). The bytes are those of the request line and of each field as sent
/// (`name: value` and its line end); more than 96 fields the first-head check refuses
/// ([`super::head`]), or actix on a later head, bodiless.
fn check_head(req: &ServiceRequest, limits: &crate::config::Limits) -> Result<(), Refusal> {
    let fields = req.headers().len();
    let line = req.method().as_str().len() + req.uri().to_string().len() + " HTTP/1.1\r\n".len();
    let bytes = req.headers().iter().fold(line, |n, (name, value)| {
        n + name.as_str().len() + value.len() + 4
    });
    match fields <= limits.max_headers && bytes <= limits.max_head_bytes {
        true => Ok(()),
        false => Err(Refusal {
            error: GateError::HeadTooLarge {
                fields,
                bytes,
                max_fields: limits.max_headers,
                max_bytes: limits.max_head_bytes,
            }
            .into(),
            close: true,
        }),
    }
}

/// Takes the cells of one class.
fn take(
    limits: &Limits,
    class: Class,
    caller: Option<&Caller>,
    ip: Option<std::net::IpAddr>,
    length: Option<u64>,
    cap: usize,
) -> Result<(), Limited> {
    let user = |c: &RateClass, cost: u32| match caller {
        Some(caller) => c.check(caller.user.as_str(), cost),
        None => Ok(()),
    };
    match class {
        Class::LoginIp => limits.check_ip(&limits.login_ip, ip),
        Class::RegisterIp => limits.check_ip(&limits.register_ip, ip),
        Class::DevicesIp => limits.check_ip(&limits.devices_ip, ip),
        Class::LinkRelayIp => limits.check_ip(&limits.link_relay_ip, ip),
        Class::LinkOpen => user(&limits.link_open, 1),
        Class::LinkRelay => user(&limits.link_relay, 1),
        Class::TopicCreate => user(&limits.topic_create, 1),
        Class::Send => user(&limits.send, 1),
        Class::SendKib => {
            let bytes = length.unwrap_or(cap as u64).min(cap as u64);
            let kib = u32::try_from(bytes.div_ceil(1024))
                .unwrap_or(u32::MAX)
                .max(1);
            user(&limits.send_kib, kib)
        }
        Class::Identity => user(&limits.identity, 1),
        Class::Push => user(&limits.push, 1),
        Class::Upload => user(&limits.upload, 1),
        Class::Stream => user(&limits.stream, 1),
    }
}

/// The announced body length, if the request says one.
fn content_length(req: &ServiceRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// How long a body of `length` bytes may take: the base time plus its length at the slowest
/// accepted rate.
fn body_deadline(state: &AppState, length: u64) -> Duration {
    let limits = &state.config().limits;
    let rate = limits.body_min_rate.max(1);
    Duration::from_secs(limits.body_timeout_secs.saturating_add(length / rate))
}

/// A request body bounded by its endpoint's cap and a deadline.
struct Bounded {
    inner: Payload,
    read: usize,
    cap: usize,
    deadline: Pin<Box<actix_web::rt::time::Sleep>>,
    secs: u64,
    /// The body's share of the body-memory budget: given back when the body has ended or is
    /// dropped unread.
    reservation: Option<Reservation>,
}

/// The I/O error a late body ends with; [`timed_out`] recognizes it.
fn late(secs: u64) -> PayloadError {
    PayloadError::Io(io::Error::new(
        io::ErrorKind::TimedOut,
        GateError::Timeout { secs },
    ))
}

/// Whether a body error is the deadline of [`Bounded`], and its text.
pub(crate) fn timed_out(e: &PayloadError) -> Option<String> {
    match e {
        PayloadError::Io(io) if io.kind() == io::ErrorKind::TimedOut => Some(io.to_string()),
        _ => None,
    }
}

impl Stream for Bounded {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.read = this.read.saturating_add(chunk.len());
                match this.read > this.cap {
                    true => Poll::Ready(Some(Err(PayloadError::Overflow))),
                    false => Poll::Ready(Some(Ok(chunk))),
                }
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(late(this.secs)))),
                Poll::Pending => Poll::Pending,
            },
            other => {
                // Ended or failed: the handler holds what it read; the reservation goes.
                this.reservation = None;
                other
            }
        }
    }
}

/// An [`ErrorCode`] for a body error that actix reports (`413`, `408` from [`Bounded`]).
pub(crate) fn payload_code(e: &PayloadError) -> (ErrorCode, String) {
    match (e, timed_out(e)) {
        (_, Some(text)) => (ErrorCode::Timeout, text),
        (PayloadError::Overflow, _) => (
            ErrorCode::TooLarge,
            "body over this endpoint's limit".to_owned(),
        ),
        _ => (ErrorCode::Malformed, e.to_string()),
    }
}

impl Refusal {
    /// The response: the error's JSON, closing the connection when the body was left unread.
    pub(crate) fn response(&self) -> actix_web::HttpResponse {
        use actix_web::ResponseError;
        let mut response = self.error.error_response();
        if self.close {
            response
                .head_mut()
                .set_connection_type(actix_web::http::ConnectionType::Close);
        }
        response
    }
}

#[cfg(test)]
mod tests;
