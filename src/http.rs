//! What both HTTP surfaces (the client API and the federation listener) share: CBOR bodies in
//! and out, and parsing path values.

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use rendezvous_protocol::api::Body;
use rendezvous_protocol::wire::WireError;

/// Why a request was refused before any handler logic ran: its body or a path or query value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not `application/cbor` where CBOR is required.
    #[error("the body must be application/cbor, not {got}")]
    NotCbor {
        /// The request's content type (`none` when it sent none).
        got: String,
    },
    /// The body does not decode as the expected CBOR body.
    #[error(transparent)]
    Body(#[from] WireError),
    /// A path or query value does not parse.
    #[error("{what}: {reason}")]
    BadValue {
        /// Which value (`user`, `topic`, a header name).
        what: String,
        /// Why it does not parse.
        reason: String,
    },
    /// No endpoint at this path.
    #[error("no such endpoint")]
    NoSuchEndpoint,
    /// A log position or range outside what the log holds (`client-api.md` §6).
    #[error("{rule}: asked for {asked}, the log holds {size} entries")]
    OutOfRange {
        /// The rule the request broke, e.g. `need index < size <= log size`.
        rule: &'static str,
        /// What was asked for.
        asked: String,
        /// The log's size.
        size: u64,
    },
}

/// The request body must be CBOR.
pub(crate) fn require_cbor(req: &HttpRequest) -> Result<(), RequestError> {
    let given = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let ok = given.is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/cbor"))
    });
    match ok {
        true => Ok(()),
        false => Err(RequestError::NotCbor {
            got: given.unwrap_or("none").chars().take(100).collect(),
        }),
    }
}

/// Decodes a CBOR request body.
pub(crate) fn cbor_body<T: Body>(req: &HttpRequest, body: &[u8]) -> Result<T, RequestError> {
    require_cbor(req)?;
    Ok(T::from_cbor(body)?)
}

/// A CBOR response.
pub(crate) fn cbor_response<T: Body>(value: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/cbor")))
        .body(value.to_cbor())
}

/// Parses a path or query value, or answers `malformed`.
pub(crate) fn parse<T: std::str::FromStr>(what: &str, value: &str) -> Result<T, RequestError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| RequestError::BadValue {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}
