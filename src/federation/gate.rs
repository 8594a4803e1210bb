//! What a federation request passes before its body is read (`federation-api.md` §1.1): the
//! origin named in [`ORIGIN_HEADER`] and authenticated by the connection's certificate, the
//! peer's rate classes (`[federation.limits]`), and the endpoint's body cap. Only then is the
//! body read, under that cap.

use actix_web::HttpRequest;
use actix_web::web::{self, Bytes};
use sha2::{Digest, Sha256};

use super::peer::{PeerCertificate, PeerPolicy};
use super::queries::{QueryRefusal, authenticate};
use crate::error::ApiError;
use crate::limits::Limits;
use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::ids::ServerName;

pub use super::client::ORIGIN_HEADER;

/// Why a body was not read, or not read in full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyRefusal {
    /// The announced or the received body is over the endpoint's cap.
    #[error("body over this endpoint's limit of {cap} bytes")]
    TooLarge {
        /// The cap.
        cap: usize,
    },
    /// The body could not be read.
    #[error("reading the body: {0}")]
    Read(String),
}

impl From<BodyRefusal> for ApiError {
    fn from(e: BodyRefusal) -> Self {
        match e {
            BodyRefusal::TooLarge { .. } => ApiError::new(ErrorCode::TooLarge, e.to_string()),
            BodyRefusal::Read(_) => ApiError::new(ErrorCode::Malformed, e.to_string()),
        }
    }
}

/// The announced body length, if the request says one.
fn content_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// KiB a body costs in `txn_kib`: its announced length, or the cap when none is announced (a
/// chunked body), never more than the cap, at least 1.
fn kib(req: &HttpRequest, cap: usize) -> u32 {
    let bytes = content_length(req).unwrap_or(cap as u64).min(cap as u64);
    u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .max(1)
}

/// The origin of a query (`federation-api.md` §1.1, §5): [`ORIGIN_HEADER`], the certificate
/// valid for it, allow and deny, then one cell of the peer's `query` class.
pub fn query_origin(
    req: &HttpRequest,
    policy: &PeerPolicy,
    limits: &Limits,
) -> Result<ServerName, ApiError> {
    let origin = authenticate(req, policy)?;
    limits.federation_query.check(origin.as_str(), 1)?;
    Ok(origin)
}

/// The origin of a transaction (`federation-api.md` §1.1, §4), before its body is read:
/// [`ORIGIN_HEADER`] authenticated as for a query, then one `txn` cell and a `txn_kib` cell per
/// announced KiB (the cap when none is announced), then the announced length against `cap`.
pub fn transaction_origin(
    req: &HttpRequest,
    policy: &PeerPolicy,
    limits: &Limits,
    cap: usize,
) -> Result<ServerName, ApiError> {
    let origin = authenticate(req, policy)?;
    limits.federation_txn.check(origin.as_str(), 1)?;
    limits
        .federation_txn_kib
        .check(origin.as_str(), kib(req, cap))?;
    Ok(origin)
}

/// The key of a request that names no origin (`server-keys`): the SHA-256 of the connection's
/// certificate, hex.
pub fn certificate_key(req: &HttpRequest) -> Result<String, ApiError> {
    let cert = req
        .conn_data::<PeerCertificate>()
        .ok_or(QueryRefusal::Peer(super::peer::PeerError::NoCertificate))?;
    let digest = Sha256::digest(cert.0.as_ref());
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Refuses a body announced over `cap` (`413 too_large`) without reading it.
pub fn check_length(req: &HttpRequest, cap: usize) -> Result<(), BodyRefusal> {
    match content_length(req) {
        Some(got) if got > cap as u64 => Err(BodyRefusal::TooLarge { cap }),
        _ => Ok(()),
    }
}

/// Reads the body, at most `cap` bytes (`413 too_large` beyond).
pub async fn read_body(payload: web::Payload, cap: usize) -> Result<Bytes, BodyRefusal> {
    match payload.to_bytes_limited(cap).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(BodyRefusal::Read(e.to_string())),
        Err(_) => Err(BodyRefusal::TooLarge { cap }),
    }
}
