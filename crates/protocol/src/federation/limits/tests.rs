//! The largest events are built for real, with the longest names and the largest note, and
//! must encode to exactly the derived sizes, within the limits, and decode.

use base64::Engine;
use serde_bytes::ByteBuf;

use super::*;
use crate::crypto::ServerKey;
use crate::federation::topic_events::{EntryBatch, Submit};
use crate::federation::{Event, EventKind, Transaction};
use crate::ids::{ServerName, TopicId, UserId};
use crate::tlog::checkpoint::MAX_NAME_LEN;
use crate::tlog::{Checkpoint, CheckpointNote, LeafIndex, SignedCheckpoint, TreeSize, empty_root};
use crate::topic::{ENTRY_CHANGE, LogEntry, MAX_CHANGE_LEN, log_origin};
use crate::wire::signed::SIGNED_OVERHEAD;
use crate::wire::{Signed, encode};

/// A valid server name of exactly `len` characters (labels of 63 of `c`; a port when the host
/// would pass its 253).
fn long_name(c: char, len: usize) -> ServerName {
    let host_len = len.min(253);
    let mut host = String::new();
    while host.len() < host_len {
        if !host.is_empty() {
            host.push('.');
        }
        let label = (host_len - host.len()).min(63);
        host.extend(std::iter::repeat_n(c, label));
    }
    let name = match len - host_len {
        0 => host,
        port => format!("{host}:{}", "9".repeat(port - 1)),
    };
    assert_eq!(name.len(), len);
    name.parse().unwrap()
}

/// The largest entry any server accepts: a change entry of [`MAX_ENTRY_LEN`] bytes.
fn largest_entry() -> Vec<u8> {
    let entry = LogEntry(ENTRY_CHANGE, vec![0xa5; MAX_CHANGE_LEN + SIGNED_OVERHEAD]).to_wire();
    assert_eq!(entry.len(), MAX_ENTRY_LEN);
    LogEntry::from_wire(&entry).unwrap();
    entry
}

/// A checkpoint note of `topic` signed by its host, padded with cosignature-shaped lines to
/// exactly [`MAX_NOTE_SIZE`] bytes.
fn largest_note(topic: &TopicId, key: &ServerKey) -> CheckpointNote {
    let checkpoint = Checkpoint::new(
        &log_origin(topic),
        TreeSize(u64::MAX),
        empty_root(),
        i64::MAX as u64,
    )
    .unwrap();
    let mut text = SignedCheckpoint::sign(&checkpoint, key, topic.server().as_str())
        .unwrap()
        .to_note()
        .as_str()
        .to_owned();
    // "— name base64(key id 4 + signature 64)\n": 4 + name + 1 + 92 + 1 bytes.
    let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 68]);
    let fixed = "\u{2014} ".len() + 1 + b64.len() + 1;
    while text.len() < MAX_NOTE_SIZE {
        let rest = MAX_NOTE_SIZE - text.len();
        let name = match rest <= fixed + MAX_NAME_LEN {
            true => rest - fixed,
            false => MAX_NAME_LEN.min(rest - fixed - (fixed + 1)),
        };
        text.push_str(&format!("\u{2014} {} {b64}\n", "w".repeat(name)));
    }
    assert_eq!(text.len(), MAX_NOTE_SIZE);
    CheckpointNote::parse(text).unwrap()
}

#[test]
fn cbor_heads_are_as_counted() {
    for n in [0, 23, 24, 255, 256, 65_535, 65_536, MAX_ENTRY_LEN] {
        assert_eq!(
            encode(&ByteBuf::from(vec![0u8; n])).len(),
            string_len(n),
            "{n}"
        );
    }
    assert_eq!(encode(&u64::MAX).len(), MAX_UINT_LEN);
    let user = format!("@{}:{}", "u".repeat(MAX_LOCALPART_LEN), long_name('s', 255));
    assert_eq!(
        user.parse::<UserId>().unwrap().as_str().len(),
        MAX_USER_ID_LEN
    );
    let topic = TopicId::random(&long_name('h', 255));
    assert_eq!(topic.as_str().len(), MAX_TOPIC_ID_LEN);
}

/// The hosting server's `topic.entry` of the largest entry, under the largest note, both
/// servers of the longest name (a topic log's origin allows it: `MAX_NAME_LEN`): exactly
/// [`MAX_EVENT_LEN`], and decodes.
#[test]
fn the_largest_topic_entry_event_fits_and_decodes() {
    let host = long_name('h', MAX_SERVER_NAME_LEN);
    let participant = long_name('p', MAX_SERVER_NAME_LEN);
    let key = ServerKey::from_seed(&[3; 32]);
    let topic = TopicId::random(&host);
    let batch = EntryBatch {
        first: LeafIndex(u64::MAX - 1),
        entries: vec![ByteBuf::from(largest_entry())],
        checkpoint: largest_note(&topic, &key),
    };
    let payload = batch.to_wire();
    assert_eq!(payload.len(), MAX_ENTRY_PAYLOAD_LEN);
    assert_eq!(EntryBatch::from_wire(&payload).unwrap(), batch);
    assert_eq!(batch.to_backfill_wire().len(), MAX_BACKFILL_LEN);
    assert_eq!(
        EntryBatch::from_backfill_wire(&batch.to_backfill_wire()).unwrap(),
        batch
    );
    let event = Event::sign(
        &host,
        &participant,
        EventKind::TopicEntry,
        Some(&topic),
        payload.clone(),
        u64::MAX,
        &key,
    );
    let event_len = event.signed_bytes().0.len();
    assert_eq!(topic.as_str().len(), MAX_TOPIC_ID_LEN);
    assert_eq!(event_len, MAX_EVENT_LEN, "every field at its longest");
    // The limit the previous text gave (4 MiB + 1 KiB) did not hold it.
    assert!(event_len > 4 * 1024 * 1024 + 1024);
    let wire = event.to_wire();
    assert_eq!(wire.len(), event_len + SIGNED_EVENT_FRAMING);
    let back = Signed::<Event>::from_wire(&wire)
        .unwrap()
        .verify(key.public())
        .unwrap();
    assert_eq!(back.value().payload.as_slice(), payload.as_slice());

    // Three of them in one transaction with the longest id still fit it, and decode.
    let txn = Transaction::new(
        "t".repeat(MAX_TXN_ID_LEN),
        host.clone(),
        participant.clone(),
        vec![event.signed_bytes().clone(); 3],
    );
    let txn_wire = txn.to_wire();
    assert!(txn_wire.len() <= MAX_TRANSACTION_LEN, "{}", txn_wire.len());
    assert_eq!(
        txn_wire.len(),
        TRANSACTION_HEADER_LEN - 1 + 3 * (event_len + SIGNED_EVENT_FRAMING)
    );
    let (_, events) = Transaction::from_wire(&txn_wire).unwrap();
    assert_eq!(events.len(), 3);
}

/// A remote member of the longest id posts the largest entry: the participant's
/// `topic.submit` to the hosting server fits, and decodes.
#[test]
fn the_largest_topic_submit_event_fits_and_decodes() {
    let member_server = long_name('m', MAX_SERVER_NAME_LEN);
    let host = long_name('h', MAX_SERVER_NAME_LEN);
    let key = ServerKey::from_seed(&[4; 32]);
    let submitter: UserId = format!("@{}:{member_server}", "u".repeat(MAX_LOCALPART_LEN))
        .parse()
        .unwrap();
    let submit = Submit {
        submitter,
        entry: ByteBuf::from(largest_entry()),
    };
    let payload = submit.to_wire();
    assert_eq!(payload.len(), MAX_SUBMIT_PAYLOAD_LEN);
    assert_eq!(Submit::from_wire(&payload).unwrap(), submit);
    let topic = TopicId::random(&host);
    let event = Event::sign(
        &member_server,
        &host,
        EventKind::TopicSubmit,
        Some(&topic),
        payload.clone(),
        u64::MAX,
        &key,
    );
    let event_len = event.signed_bytes().0.len();
    assert_eq!(
        event_len,
        EVENT_HEADER_LEN + MAX_SUBMIT_PAYLOAD_LEN,
        "every field at its longest"
    );
    assert!(event_len <= MAX_EVENT_LEN);
    let back = Signed::<Event>::from_wire(&event.to_wire())
        .unwrap()
        .verify(key.public())
        .unwrap();
    assert_eq!(
        Submit::from_wire(back.value().payload.as_slice()).unwrap(),
        submit
    );
}

/// One more byte than the derived limits is refused: the limits are what the decoders apply.
#[test]
fn one_byte_more_is_refused() {
    let key = ServerKey::from_seed(&[5; 32]);
    let a = long_name('a', 20);
    let topic = TopicId::random(&a);
    let sized = |len: usize| {
        let e = Event::sign(&a, &a, EventKind::TopicEntry, Some(&topic), vec![], 1, &key);
        let overhead = e.signed_bytes().0.len() - 1;
        // The payload's head grows with it: 1 byte at 0, 5 bytes from 65 536 on.
        let payload = vec![0u8; len - overhead - 5];
        Event::sign(
            &a,
            &a,
            EventKind::TopicEntry,
            Some(&topic),
            payload,
            1,
            &key,
        )
    };
    let fits = sized(MAX_EVENT_LEN);
    assert_eq!(fits.signed_bytes().0.len(), MAX_EVENT_LEN);
    assert!(Signed::<Event>::from_wire(&fits.to_wire()).is_ok());
    let over = sized(MAX_EVENT_LEN + 1);
    assert!(Signed::<Event>::from_wire(&over.to_wire()).is_err());
}
