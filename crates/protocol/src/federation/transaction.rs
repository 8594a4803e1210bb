//! Transactions: batches of signed events, idempotent by id (`federation-api.md` §4).
//!
//! ```text
//! transaction = [1, txn_id: tstr, origin, destination, [+ signed event]]
//! response    = [1, [* [event id, status: uint, code: tstr]]]
//! ```
//!
//! A transaction is not signed itself: the mutual TLS connection authenticates its sender, and
//! each event carries its origin's signature. The receiver answers one result per event, so one
//! bad event does not block the others; a transaction id seen before is answered with the
//! results it got the first time, and nothing is applied twice.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::event::Event;
use crate::ids::ServerName;
use crate::wire::{
    Signed, SignedBytes, VERSION, WireError, check_version, decode_versioned, encode, fixed_bytes,
};

pub use super::limits::{MAX_EVENTS, MAX_TRANSACTION_LEN, MAX_TXN_ID_LEN};

/// `[1, txn_id, origin, destination, [+ event]]`.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// Chosen by the origin, unique per destination; retries reuse it.
    pub txn_id: String,
    /// The sending server.
    pub origin: ServerName,
    /// The receiving server.
    pub destination: ServerName,
    /// Signed events, in the order the origin made them.
    pub events: Vec<SignedBytes>,
}

/// The wire form of [`Transaction`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct TransactionWire<'a> {
    version: u8,
    txn_id: Cow<'a, str>,
    origin: Cow<'a, ServerName>,
    destination: Cow<'a, ServerName>,
    events: Cow<'a, [SignedBytes]>,
}

impl Serialize for Transaction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TransactionWire {
            version: VERSION,
            txn_id: Cow::Borrowed(&self.txn_id),
            origin: Cow::Borrowed(&self.origin),
            destination: Cow::Borrowed(&self.destination),
            events: Cow::Borrowed(&self.events),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Transaction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = TransactionWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(Transaction {
            txn_id: w.txn_id.into_owned(),
            origin: w.origin.into_owned(),
            destination: w.destination.into_owned(),
            events: w.events.into_owned(),
        })
    }
}

impl Transaction {
    /// A transaction of signed events.
    pub fn new(
        txn_id: String,
        origin: ServerName,
        destination: ServerName,
        events: Vec<SignedBytes>,
    ) -> Self {
        Transaction {
            txn_id,
            origin,
            destination,
            events,
        }
    }

    /// The wire form.
    pub fn to_wire(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes and checks the shape: size, version, id length, 1 to [`MAX_EVENTS`] events,
    /// each a well-formed signed event (signatures are checked per event by the receiver).
    pub fn from_wire(bytes: &[u8]) -> Result<(Transaction, Vec<Signed<Event>>), WireError> {
        let t: Transaction = decode_versioned(bytes, MAX_TRANSACTION_LEN)?;
        if t.txn_id.is_empty()
            || t.txn_id.len() > MAX_TXN_ID_LEN
            || !t
                .txn_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(WireError::InvalidField {
                field: "txn_id",
                reason: format!("1 to {MAX_TXN_ID_LEN} characters of [A-Za-z0-9_-]"),
            });
        }
        if t.events.is_empty() || t.events.len() > MAX_EVENTS {
            return Err(WireError::InvalidField {
                field: "events",
                reason: format!("1 to {MAX_EVENTS} events"),
            });
        }
        let events = t
            .events
            .iter()
            .cloned()
            .map(Signed::<Event>::from_signed_bytes)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((t, events))
    }
}

/// The outcome of one event: `[event id, status, code]` (status 200 applied, 4xx refused for
/// good, 5xx try again later; `code` as in `federation-api.md` §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct EventResult {
    /// The event's id.
    #[serde(with = "fixed_bytes")]
    pub id: [u8; 32],
    /// HTTP-like status.
    pub status: u16,
    /// Machine-readable code (empty when applied).
    pub code: String,
}

/// `[1, [* event-result]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionResponse {
    /// One per event, in order.
    pub results: Vec<EventResult>,
}

/// The wire form of [`TransactionResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct TransactionResponseWire<'a> {
    version: u8,
    results: Cow<'a, [EventResult]>,
}

impl Serialize for TransactionResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TransactionResponseWire {
            version: VERSION,
            results: Cow::Borrowed(&self.results),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for TransactionResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = TransactionResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(TransactionResponse {
            results: w.results.into_owned(),
        })
    }
}

impl TransactionResponse {
    /// The wire form.
    pub fn to_wire(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a response.
    pub fn from_wire(bytes: &[u8]) -> Result<TransactionResponse, WireError> {
        decode_versioned(bytes, 64 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ServerKey;
    use crate::federation::EventKind;
    use crate::ids::TopicId;

    #[test]
    fn round_trip_and_shape_checks() {
        let a: ServerName = "a.example".parse().unwrap();
        let b: ServerName = "b.example".parse().unwrap();
        let key = ServerKey::generate();
        let topic = TopicId::random(&a);
        let e = Event::sign(
            &a,
            &b,
            EventKind::TopicEntry,
            Some(&topic),
            vec![9],
            5,
            &key,
        );
        let t = Transaction::new(
            "t-1".into(),
            a.clone(),
            b.clone(),
            vec![e.signed_bytes().clone()],
        );
        let (back, events) = Transaction::from_wire(&t.to_wire()).unwrap();
        assert_eq!(back.txn_id, "t-1");
        assert_eq!(events.len(), 1);
        for bad_id in ["", "has space", &"x".repeat(65)] {
            let t = Transaction::new(
                bad_id.into(),
                a.clone(),
                b.clone(),
                vec![e.signed_bytes().clone()],
            );
            assert!(Transaction::from_wire(&t.to_wire()).is_err(), "{bad_id:?}");
        }
        let empty = Transaction::new("t".into(), a.clone(), b.clone(), vec![]);
        assert!(Transaction::from_wire(&empty.to_wire()).is_err());
        let many = Transaction::new(
            "t".into(),
            a,
            b,
            vec![e.signed_bytes().clone(); MAX_EVENTS + 1],
        );
        assert!(Transaction::from_wire(&many.to_wire()).is_err());
    }
}
