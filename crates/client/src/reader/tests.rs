//! The write gate's refusals (`tag-log.md` §9.4), on a replay built by hand.

use super::checkpoint::Head;
use super::replay::Replay;
use crate::ClientError;
use crate::keystore::TopicRecord;
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::tlog::{Checkpoint, Frontier, LogView, TreeSize};
use rendezvous_protocol::topic::log_origin;

/// A replay of a one-leaf log whose root does (`matches`) or does not match the head.
fn replay(missing: Vec<u64>, age: u64, stale: bool) -> Replay {
    let server: ServerName = "a.example".parse().unwrap();
    let topic = TopicId::random(&server);
    let mut frontier = Frontier::new();
    frontier.append(b"leaf").unwrap();
    let checkpoint = Checkpoint::new(&log_origin(&topic), TreeSize(1), frontier.root(), 1).unwrap();
    let key = ServerKey::generate();
    let head = Head {
        view: LogView::new(&log_origin(&topic), key.public().clone(), "a.example"),
        checkpoint,
        consistent_with: None,
        age,
        stale,
    };
    let record = TopicRecord {
        topic: topic.to_string(),
        member: None,
        processed: 0,
        checkpoint: None,
        appends: Vec::new(),
        refused: Vec::new(),
    };
    let mut r = Replay::new(&topic, record, head, missing, Vec::new());
    r.root_matches = Some(true);
    r
}

#[test]
fn a_complete_fresh_view_passes_the_gate() {
    replay(vec![], 3, false).gate().unwrap();
}

#[test]
fn missing_or_skipped_entries_are_log_incomplete_naming_them() {
    let mut r = replay(vec![4], 3, false);
    r.skipped = vec![2, 4];
    match r.gate().unwrap_err() {
        ClientError::LogIncomplete { indices, .. } => assert_eq!(indices, vec![2, 4]),
        other => panic!("{other}"),
    }
    let mut r = replay(vec![], 3, false);
    r.root_matches = Some(false);
    let e = r.gate().unwrap_err();
    assert_eq!(e.error_code(), "log_incomplete", "{e}");
    r.root_matches = None;
    assert_eq!(r.gate().unwrap_err().error_code(), "log_incomplete");
}

#[test]
fn a_stale_head_is_refused_with_its_age() {
    let e = replay(vec![], 500, true).gate().unwrap_err();
    assert_eq!(e.error_code(), "stale_head");
    assert!(e.to_string().contains("500 s ago"), "{e}");
}

#[test]
fn evidence_refuses_every_write_first() {
    let mut r = replay(vec![1], 500, true);
    r.forked = Some("split view".into());
    let e = r.gate().unwrap_err();
    assert_eq!(e.error_code(), "log_forked");
    assert!(e.to_string().contains("split view"), "{e}");
}
