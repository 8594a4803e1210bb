//! What goes into one transaction and what its answer settles (`federation-api.md` §4, §8): the
//! head of a queue that fits one transaction, the matching of a response to its events, and
//! the whole-transaction refusals that no retry can change.

use base64::Engine;

use super::TransportError;
use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::federation::limits::{
    MAX_TRANSACTION_LEN, SIGNED_EVENT_FRAMING, TRANSACTION_HEADER_LEN,
};
use rendezvous_protocol::federation::{Event, TransactionResponse};
use rendezvous_protocol::ids::ServerName;
use rendezvous_protocol::wire::SignedBytes;

/// Whole-transaction refusals that no retry of the same bytes can change (`federation-api.md`
/// §8), with the status and code the events' authors are told: the body is malformed, too
/// large or of the wrong type for the peer (`malformed`); or this server does not send to the
/// destination at all (§7.1, `forbidden`: every event goes, whatever the batch).
pub(super) fn refused_for_good(error: &TransportError) -> Option<(u16, ErrorCode)> {
    match error {
        TransportError::Status { status, .. } if matches!(status, 400 | 413 | 415) => {
            Some((*status, ErrorCode::Malformed))
        }
        TransportError::Forbidden { .. } => Some((403, ErrorCode::Forbidden)),
        _ => None,
    }
}

/// The events of an answered transaction, by outcome.
pub(super) struct Settled {
    pub(super) delivered: Vec<u64>,
    /// `(seq, code, status)`.
    pub(super) refused: Vec<(u64, String, u16)>,
    pub(super) kept: Vec<u64>,
}

/// Matches a response to the transaction's events: one result per event, in order, with the
/// event's id (`federation-api.md` §4); anything else is no usable answer.
pub(super) fn settle(
    destination: &ServerName,
    events: &[(u64, SignedBytes)],
    response: &TransactionResponse,
) -> Result<Settled, TransportError> {
    let bad = |reason: String| TransportError::BadResponse {
        destination: destination.to_string(),
        reason,
    };
    if response.results.len() != events.len() {
        return Err(bad(format!(
            "{} results for {} events",
            response.results.len(),
            events.len()
        )));
    }
    let mut s = Settled {
        delivered: Vec::new(),
        refused: Vec::new(),
        kept: Vec::new(),
    };
    for ((seq, event), result) in events.iter().zip(&response.results) {
        if Event::id(event).0 != result.id {
            return Err(bad(format!(
                "result for event {seq} has another event's id"
            )));
        }
        match result.status {
            200..=299 => s.delivered.push(*seq),
            400..=499 => s.refused.push((*seq, result.code.clone(), result.status)),
            // 5xx, and anything unknown: try again later.
            _ => s.kept.push(*seq),
        }
    }
    Ok(s)
}

/// The longest head of `batch` that fits one transaction of at most [`MAX_TRANSACTION_LEN`]
/// bytes (`federation-api.md` §1.2, §4), counting the transaction's own fields at their
/// longest and each event with its signature framing; never empty when `batch` is not, since
/// one event of at most [`MAX_EVENT_LEN`](rendezvous_protocol::federation::event::MAX_EVENT_LEN)
/// bytes always fits.
pub(super) fn fit(mut batch: Vec<(u64, SignedBytes)>) -> Vec<(u64, SignedBytes)> {
    let mut total = TRANSACTION_HEADER_LEN;
    let mut n = 0;
    for (_, e) in &batch {
        total = total.saturating_add(e.0.len().saturating_add(SIGNED_EVENT_FRAMING));
        if total > MAX_TRANSACTION_LEN && n > 0 {
            break;
        }
        n += 1;
    }
    batch.truncate(n);
    batch
}

/// A fresh transaction id: 128 random bits, base64url (22 characters of `[A-Za-z0-9_-]`).
pub(super) fn new_txn_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(rendezvous_protocol::crypto::random_array::<16>())
}
