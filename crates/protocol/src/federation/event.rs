//! Signed federation events (`federation-api.md` §3).
//!
//! ```text
//! event   = [1, origin, destination, kind, topic / null, payload: bstr, time]
//! signed  = [event bytes, Ed25519(origin's Server Key, transcript("rdv/v1/federation-event", [event bytes]))]
//! id      = SHA-256(signed wire form)
//! ```
//!
//! The receiver checks, in order: size, decoding, version, that `origin` is the peer the mutual
//! TLS connection authenticated, that `destination` is itself, the signature with a key of
//! `origin` valid at `time`, and that `time` is within the allowed clock skew.

use serde_bytes::ByteBuf;
use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};
use sha2::{Digest, Sha256};

use crate::crypto::sign::Server;
use crate::crypto::transcript::LABEL_FEDERATION_EVENT;
use crate::crypto::{ServerKey, ServerPublicKey};
use crate::ids::{ServerName, TopicId};
use crate::wire::signed::SignedError;
use crate::wire::{Signed, SignedPayload, VERSION, Verified, WireError, check_version, encode};

/// Largest encoded event: the largest payload of any kind with every other field at its
/// longest ([`super::limits`], `federation-api.md` §1.2).
pub use super::limits::MAX_EVENT_LEN;
/// How far an event's time may be ahead of the receiver's clock, seconds.
pub const MAX_FUTURE_SKEW: u64 = 300;

/// What an event carries (`federation-api.md` §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Hosting server → participant: a new log entry and the checkpoint that includes it.
    TopicEntry,
    /// Participant → hosting server: a remote member's message or change to append.
    TopicSubmit,
    /// Participant → hosting server and the other participants: the participant's cosignature
    /// of a checkpoint. (Kind 4 is reserved; a submit's outcome is its per-event result.)
    TopicCosignature,
}

impl EventKind {
    /// Wire value.
    pub fn to_wire(self) -> u16 {
        match self {
            EventKind::TopicEntry => 1,
            EventKind::TopicSubmit => 2,
            EventKind::TopicCosignature => 3,
        }
    }

    /// Parses the wire value.
    pub fn from_wire(v: u16) -> Result<EventKind, WireError> {
        Ok(match v {
            1 => EventKind::TopicEntry,
            2 => EventKind::TopicSubmit,
            3 => EventKind::TopicCosignature,
            other => {
                return Err(WireError::InvalidField {
                    field: "kind",
                    reason: format!("unknown event kind {other}"),
                });
            }
        })
    }

    /// Whether events of this kind name a topic (every kind of version 1 does).
    pub fn has_topic(self) -> bool {
        match self {
            EventKind::TopicEntry | EventKind::TopicSubmit | EventKind::TopicCosignature => true,
        }
    }
}

/// A federation event: `[1, origin, destination, kind, topic / null, payload, time]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The server that made and signed the event.
    pub origin: ServerName,
    /// The server it is for.
    pub destination: ServerName,
    /// Wire value of [`EventKind`].
    pub kind: u16,
    /// The topic it concerns.
    pub topic: Option<TopicId>,
    /// Kind-specific payload (CBOR, `federation-api.md` §3.2).
    pub payload: ByteBuf,
    /// When the origin made it, Unix seconds.
    pub time: u64,
}

/// The wire form of [`Event`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct EventWire<'a> {
    version: u8,
    origin: Cow<'a, ServerName>,
    destination: Cow<'a, ServerName>,
    kind: u16,
    topic: Cow<'a, Option<TopicId>>,
    payload: Cow<'a, ByteBuf>,
    time: u64,
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EventWire {
            version: VERSION,
            origin: Cow::Borrowed(&self.origin),
            destination: Cow::Borrowed(&self.destination),
            kind: self.kind,
            topic: Cow::Borrowed(&self.topic),
            payload: Cow::Borrowed(&self.payload),
            time: self.time,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = EventWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(Event {
            origin: w.origin.into_owned(),
            destination: w.destination.into_owned(),
            kind: w.kind,
            topic: w.topic.into_owned(),
            payload: w.payload.into_owned(),
            time: w.time,
        })
    }
}

impl SignedPayload for Event {
    const LABEL: &'static str = LABEL_FEDERATION_EVENT;
    const MAX_LEN: usize = MAX_EVENT_LEN;
    type Signer = Server;

    fn validate(&self) -> Result<(), WireError> {
        let kind = EventKind::from_wire(self.kind)?;
        if kind.has_topic() && self.topic.is_none() {
            return Err(WireError::InvalidField {
                field: "topic",
                reason: "this kind of event names a topic".into(),
            });
        }
        Ok(())
    }
}

/// An event's id: SHA-256 of its signed wire form. Receivers apply each id once.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub [u8; 32]);

impl std::fmt::Debug for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventId({})", crate::crypto::sign::hex_string(&self.0))
    }
}

/// Why an event was refused (one variant per check of `federation-api.md` §3.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Not a well-formed event.
    #[error("malformed event: {0}")]
    Malformed(#[from] WireError),
    /// The event's origin is not the authenticated peer.
    #[error("event from {claimed} sent by {peer}")]
    WrongOrigin {
        /// The origin the event names.
        claimed: String,
        /// The peer the connection authenticated.
        peer: String,
    },
    /// The event is for another server.
    #[error("event for {got}, this is {expected}")]
    WrongDestination {
        /// This server.
        expected: String,
        /// The destination named.
        got: String,
    },
    /// No key of the origin that was valid at the event's time verifies the signature.
    #[error("bad event signature")]
    BadSignature,
    /// The event's time is too far in the future.
    #[error("event time {time} is more than {MAX_FUTURE_SKEW} s ahead of {now}")]
    FromTheFuture {
        /// The event's time.
        time: u64,
        /// The receiver's clock.
        now: u64,
    },
}

/// An event whose origin, destination and signature have been checked.
#[derive(Debug, Clone)]
pub struct VerifiedEvent {
    /// The signed event.
    pub event: Verified<Event>,
    /// Its id.
    pub id: EventId,
    /// Its kind.
    pub kind: EventKind,
}

impl Event {
    /// A new event, signed with `key`.
    pub fn sign(
        origin: &ServerName,
        destination: &ServerName,
        kind: EventKind,
        topic: Option<&TopicId>,
        payload: Vec<u8>,
        time: u64,
        key: &ServerKey,
    ) -> Verified<Event> {
        Signed::sign(
            Event {
                origin: origin.clone(),
                destination: destination.clone(),
                kind: kind.to_wire(),
                topic: topic.cloned(),
                payload: ByteBuf::from(payload),
                time,
            },
            key,
        )
    }

    /// The id of a signed event.
    pub fn id(signed: &crate::wire::SignedBytes) -> EventId {
        EventId(Sha256::digest(encode(signed)).into())
    }

    /// Checks a received event. `peer` is the server the mutual TLS connection authenticated;
    /// `keys` gives the origin's Server Keys that were valid at a time.
    pub fn check(
        signed: Signed<Event>,
        peer: &ServerName,
        me: &ServerName,
        keys: &dyn Fn(&ServerName, u64) -> Vec<ServerPublicKey>,
        now: u64,
    ) -> Result<VerifiedEvent, EventError> {
        let claimed = signed.decode_unverified()?;
        if claimed.origin != *peer {
            return Err(EventError::WrongOrigin {
                claimed: claimed.origin.to_string(),
                peer: peer.to_string(),
            });
        }
        if claimed.destination != *me {
            return Err(EventError::WrongDestination {
                expected: me.to_string(),
                got: claimed.destination.to_string(),
            });
        }
        if claimed.time > now.saturating_add(MAX_FUTURE_SKEW) {
            return Err(EventError::FromTheFuture {
                time: claimed.time,
                now,
            });
        }
        let id = Event::id(signed.signed_bytes());
        for key in keys(&claimed.origin, claimed.time) {
            match signed.clone().verify(&key) {
                Ok(event) => {
                    let kind = EventKind::from_wire(event.kind)?;
                    return Ok(VerifiedEvent { event, id, kind });
                }
                Err(SignedError::BadSignature) => continue,
                Err(SignedError::Wire(w)) => return Err(w.into()),
            }
        }
        Err(EventError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> (ServerName, ServerName, ServerName) {
        (
            "a.example".parse().unwrap(),
            "b.example".parse().unwrap(),
            "c.example".parse().unwrap(),
        )
    }

    #[test]
    fn signed_events_check_origin_destination_signature_and_time() {
        let (a, b, c) = names();
        let key = ServerKey::generate();
        let topic = TopicId::random(&a);
        let e = Event::sign(
            &a,
            &b,
            EventKind::TopicEntry,
            Some(&topic),
            vec![1, 2, 3],
            1000,
            &key,
        );
        let public = key.public().clone();
        let keys = move |s: &ServerName, _t: u64| {
            if s.as_str() == "a.example" {
                vec![public.clone()]
            } else {
                vec![]
            }
        };
        let wire = e.to_wire();
        let ok = Event::check(Signed::from_wire(&wire).unwrap(), &a, &b, &keys, 1000).unwrap();
        assert_eq!(ok.kind, EventKind::TopicEntry);
        assert_eq!(ok.id, Event::id(e.signed_bytes()));
        // Relayed by another peer: refused.
        assert!(matches!(
            Event::check(Signed::from_wire(&wire).unwrap(), &c, &b, &keys, 1000),
            Err(EventError::WrongOrigin { .. })
        ));
        // Delivered to the wrong server.
        assert!(matches!(
            Event::check(Signed::from_wire(&wire).unwrap(), &a, &c, &keys, 1000),
            Err(EventError::WrongDestination { .. })
        ));
        // Signed by a key that is not a's.
        let forged = Event::sign(
            &a,
            &b,
            EventKind::TopicEntry,
            Some(&topic),
            vec![1, 2, 3],
            1000,
            &ServerKey::generate(),
        );
        assert_eq!(
            Event::check(
                Signed::from_wire(&forged.to_wire()).unwrap(),
                &a,
                &b,
                &keys,
                1000
            )
            .unwrap_err(),
            EventError::BadSignature
        );
        // From the future.
        assert!(matches!(
            Event::check(Signed::from_wire(&wire).unwrap(), &a, &b, &keys, 100),
            Err(EventError::FromTheFuture { .. })
        ));
    }

    #[test]
    fn unknown_kinds_and_missing_topics_are_malformed() {
        let (a, b, _) = names();
        let key = ServerKey::generate();
        let mut e = Event::sign(&a, &b, EventKind::TopicEntry, None, vec![], 1, &key)
            .value()
            .clone();
        let check = |e: Event| {
            let public = key.public().clone();
            let signed = Signed::sign(e, &key);
            Event::check(
                Signed::from_wire(&signed.to_wire()).unwrap(),
                &a,
                &b,
                &move |_, _| vec![public.clone()],
                1,
            )
        };
        assert!(matches!(check(e.clone()), Err(EventError::Malformed(_))));
        e.topic = Some(TopicId::random(&a));
        e.kind = 99;
        assert!(matches!(check(e), Err(EventError::Malformed(_))));
    }
}
