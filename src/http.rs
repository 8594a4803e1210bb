//! What both HTTP surfaces (the client API and the federation listener) share: CBOR bodies in
//! and out, and parsing path values.

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::error::{ApiError, ApiResult};
use rendezvous_protocol::api::{Body, ErrorCode};

/// The request body must be CBOR.
pub(crate) fn require_cbor(req: &HttpRequest) -> ApiResult<()> {
    let ok = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/cbor"))
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the body must be application/cbor",
        ))
    }
}

/// Decodes a CBOR request body.
pub(crate) fn cbor_body<T: Body>(req: &HttpRequest, body: &[u8]) -> ApiResult<T> {
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
pub(crate) fn parse<T: std::str::FromStr>(what: &str, value: &str) -> ApiResult<T>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| ApiError::new(ErrorCode::Malformed, format!("{what}: {e}")))
}
