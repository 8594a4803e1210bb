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

#[cfg(test)]
mod tests {
    use super::*;
    use rendezvous_protocol::crypto::ServerKey;
    use rendezvous_protocol::federation::limits::{EVENT_HEADER_LEN, MAX_EVENT_LEN};
    use rendezvous_protocol::federation::{EventKind, Transaction};
    use rendezvous_protocol::ids::TopicId;

    /// A server name of 255 characters (the longest).
    fn longest(c: char) -> ServerName {
        let label = |n| c.to_string().repeat(n);
        format!("{}.{}.{}.{}:9", label(63), label(63), label(63), label(61))
            .parse()
            .unwrap()
    }

    /// Events with their queue positions.
    type Events = [(u64, SignedBytes)];

    /// `n` events of exactly `len` bytes between the longest names, and the transaction that
    /// carries them (with the longest id), encoded.
    fn events(len: usize, n: u64) -> (Vec<(u64, SignedBytes)>, impl Fn(&Events) -> usize) {
        let (origin, destination) = (longest('o'), longest('d'));
        let key = ServerKey::from_seed(&[1; 32]);
        let topic = TopicId::random(&origin);
        let payload = vec![0u8; len - EVENT_HEADER_LEN];
        let event = Event::sign(
            &origin,
            &destination,
            EventKind::TopicEntry,
            Some(&topic),
            payload,
            u64::MAX,
            &key,
        );
        assert_eq!(event.signed_bytes().0.len(), len);
        let batch = (0..n).map(|i| (i, event.signed_bytes().clone())).collect();
        let encoded = move |batch: &Events| {
            Transaction::new(
                "t".repeat(64),
                origin.clone(),
                destination.clone(),
                batch.iter().map(|(_, e)| e.clone()).collect(),
            )
            .to_wire()
            .len()
        };
        (batch, encoded)
    }

    /// `federation-api.md` §1.2: three of the largest events go in one transaction; the
    /// fourth waits for the next.
    #[test]
    fn the_largest_events_travel_three_to_a_transaction() {
        let (batch, encoded) = events(MAX_EVENT_LEN, 4);
        let packed = fit(batch);
        assert_eq!(packed.len(), 3);
        assert!(encoded(&packed) <= MAX_TRANSACTION_LEN);
    }

    /// Sixteen events whose transaction would be 7 bytes over the limit: fifteen are sent.
    /// The framing counted is what the encoding really adds (a packer that counted less would
    /// send all sixteen, and the peer refuse the transaction).
    #[test]
    fn packing_counts_every_byte_of_framing() {
        // 583: the transaction's own fields with the longest names and id, 16 events.
        let per_event = (MAX_TRANSACTION_LEN + 7 - 583) / 16;
        let (batch, encoded) = events(per_event - SIGNED_EVENT_FRAMING, 16);
        assert_eq!(encoded(&batch), MAX_TRANSACTION_LEN + 7);
        let packed = fit(batch);
        assert_eq!(packed.len(), 15);
        assert!(encoded(&packed) <= MAX_TRANSACTION_LEN);
    }
}
