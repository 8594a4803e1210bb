//! Size limits of the federation objects, each computed from the limits of its parts
//! (`federation-api.md` §1.2), so that the largest object any server accepts from a client
//! always fits the events and transactions that carry it to other servers.
//!
//! Every bound takes each field at its own largest encoding (CBOR heads by RFC 8949 §3.1:
//! 1 byte below 24, 2 below 256, 3 below 65 536, 5 below 2³²; an unsigned integer of 64 bits
//! 9), whether or not all fields can reach it at once.

use super::topic_events::{ENTRY_BATCH_BYTES, MAX_ENTRIES_PER_EVENT};
use crate::ids::{MAX_LOCALPART_LEN, MAX_SERVER_NAME_LEN, TOPIC_ID_CHARS};
use crate::tlog::checkpoint::MAX_NOTE_SIZE;
use crate::topic::MAX_ENTRY_LEN;

/// Bytes of the CBOR head of an array of `n` items, or of a text or byte string of `n` bytes.
pub const fn head_len(n: usize) -> usize {
    let n = n as u64;
    if n < 24 {
        1
    } else if n < 0x100 {
        2
    } else if n < 0x1_0000 {
        3
    } else if n < 0x1_0000_0000 {
        5
    } else {
        9
    }
}

/// Bytes of a text or byte string of `n` bytes: its head and its content.
pub const fn string_len(n: usize) -> usize {
    head_len(n) + n
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// Largest encoded unsigned integer (a `u64`: head byte and 8 bytes).
pub const MAX_UINT_LEN: usize = 9;
/// Longest user id, `@localpart:server` (`protocol.md` §2.2).
pub const MAX_USER_ID_LEN: usize = 1 + MAX_LOCALPART_LEN + 1 + MAX_SERVER_NAME_LEN;
/// Longest topic id, `!<26 characters>:server` (`protocol.md` §2.3).
pub const MAX_TOPIC_ID_LEN: usize = 1 + TOPIC_ID_CHARS + 1 + MAX_SERVER_NAME_LEN;
/// Bytes of an Ed25519 signature as it travels: a byte string of 64.
pub const SIGNATURE_LEN: usize = string_len(64);

/// Largest `topic.entry` payload, `[first, [entry], note]`: one entry of [`MAX_ENTRY_LEN`] (a
/// larger entry than [`ENTRY_BATCH_BYTES`] travels alone) and a note of [`MAX_NOTE_SIZE`].
pub const MAX_ENTRY_PAYLOAD_LEN: usize = head_len(3)
    + MAX_UINT_LEN
    + head_len(1)
    + string_len(MAX_ENTRY_LEN)
    + string_len(MAX_NOTE_SIZE);
/// Largest `topic.entry` payload of several entries: at most [`MAX_ENTRIES_PER_EVENT`] entries
/// of at most [`ENTRY_BATCH_BYTES`] together, each string head at most that of the whole.
pub const MAX_BATCH_PAYLOAD_LEN: usize = head_len(3)
    + MAX_UINT_LEN
    + head_len(MAX_ENTRIES_PER_EVENT)
    + MAX_ENTRIES_PER_EVENT * head_len(ENTRY_BATCH_BYTES)
    + ENTRY_BATCH_BYTES
    + string_len(MAX_NOTE_SIZE);
/// Largest backfill answer (`topic-entries-response`): a `topic.entry` payload with the
/// version in front (the array head of 4 items is still one byte).
pub const MAX_BACKFILL_LEN: usize = max(MAX_ENTRY_PAYLOAD_LEN, MAX_BATCH_PAYLOAD_LEN) + 1;
/// Largest `topic.submit` payload, `[submitter, entry]`.
pub const MAX_SUBMIT_PAYLOAD_LEN: usize =
    head_len(2) + string_len(MAX_USER_ID_LEN) + string_len(MAX_ENTRY_LEN);
/// Largest `topic.cosignature` payload: one note.
pub const MAX_COSIGNATURE_PAYLOAD_LEN: usize = string_len(MAX_NOTE_SIZE);
/// Largest payload of any event kind.
pub const MAX_PAYLOAD_LEN: usize = max(
    max(MAX_ENTRY_PAYLOAD_LEN, MAX_BATCH_PAYLOAD_LEN),
    max(MAX_SUBMIT_PAYLOAD_LEN, MAX_COSIGNATURE_PAYLOAD_LEN),
);

/// An event's fields around its payload, `[1, origin, destination, kind, topic, payload, time]`:
/// array head, version, two server names, kind (1..3, one byte), topic id, the payload's
/// byte-string head and the time.
pub const EVENT_HEADER_LEN: usize = head_len(7)
    + 1
    + 2 * string_len(MAX_SERVER_NAME_LEN)
    + 1
    + string_len(MAX_TOPIC_ID_LEN)
    + head_len(MAX_PAYLOAD_LEN)
    + MAX_UINT_LEN;
/// Largest encoded event (the signed payload): 4 MiB + 5019 bytes.
pub const MAX_EVENT_LEN: usize = EVENT_HEADER_LEN + MAX_PAYLOAD_LEN;
/// What signing adds to an event, `[bstr event, bstr signature]`: array head, the event's
/// byte-string head, the signature.
pub const SIGNED_EVENT_FRAMING: usize = head_len(2) + head_len(MAX_EVENT_LEN) + SIGNATURE_LEN;
/// Largest signed event.
pub const MAX_SIGNED_EVENT_LEN: usize = MAX_EVENT_LEN + SIGNED_EVENT_FRAMING;

/// Most events in one transaction.
pub const MAX_EVENTS: usize = 100;
/// Longest transaction id.
pub const MAX_TXN_ID_LEN: usize = 64;
/// A transaction's fields around its events, `[1, txn_id, origin, destination, [events]]`.
pub const TRANSACTION_HEADER_LEN: usize = head_len(5)
    + 1
    + string_len(MAX_TXN_ID_LEN)
    + 2 * string_len(MAX_SERVER_NAME_LEN)
    + head_len(MAX_EVENTS);
/// Largest encoded transaction: 16 MiB, room for three of the largest events (a sender packs
/// events up to it, so one event always travels alone if need be).
pub const MAX_TRANSACTION_LEN: usize = 16 * 1024 * 1024;

const _: () = assert!(TRANSACTION_HEADER_LEN + 3 * MAX_SIGNED_EVENT_LEN <= MAX_TRANSACTION_LEN);
const _: () = assert!(MAX_BATCH_PAYLOAD_LEN < MAX_ENTRY_PAYLOAD_LEN);
const _: () = assert!(MAX_SUBMIT_PAYLOAD_LEN < MAX_ENTRY_PAYLOAD_LEN);

#[cfg(test)]
mod tests;
