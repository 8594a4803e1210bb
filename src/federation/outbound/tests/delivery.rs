//! Delivery, batching, backoff and the settling of each event's result.

use super::*;

#[test]
fn backoff_ceiling_doubles_and_is_capped_at_an_hour() {
    assert_eq!(backoff_ceiling(0), Duration::from_secs(2));
    assert_eq!(backoff_ceiling(1), Duration::from_secs(4));
    assert_eq!(backoff_ceiling(10), Duration::from_secs(2048));
    assert_eq!(backoff_ceiling(11), Duration::from_secs(3600));
    assert_eq!(backoff_ceiling(u32::MAX), Duration::from_secs(3600));
    let jitter = random_jitter();
    for _ in 0..100 {
        assert!(jitter(1000) <= 1000);
    }
    assert_eq!(jitter(0), 0);
    // No overflow at the extreme.
    let _ = jitter(u64::MAX);
}

#[tokio::test]
async fn delivered_in_order_in_one_transaction() {
    let f = fixture();
    let peer = TestTransport::new(Peer::Up);
    let evs = events(3);
    enqueue_all(&f.outbound, &evs).await;
    assert_eq!(f.outbound.pending(&b()).unwrap(), 3);

    let Attempt::Answered {
        txn_id,
        delivered,
        dropped,
        kept,
    } = f.outbound.attempt(&peer, &b()).await.unwrap()
    else {
        panic!("not answered")
    };
    assert_eq!(delivered, vec![1, 2, 3]);
    assert!(dropped.is_empty() && kept.is_empty());
    assert_eq!(txn_id.len(), 22);
    assert_eq!(peer.received(), vec![(txn_id, ids(&evs))]);
    assert_eq!(peer.applied(), ids(&evs));
    assert_eq!(f.outbound.pending(&b()).unwrap(), 0);
    assert_eq!(f.store.outbound_in_flight(&b()).unwrap(), None);
    assert_eq!(
        f.outbound.attempt(&peer, &b()).await.unwrap(),
        Attempt::Idle
    );
    assert_eq!(peer.received().len(), 1);
}

#[tokio::test]
async fn batches_hold_at_most_100_events() {
    let f = fixture();
    let peer = TestTransport::new(Peer::Up);
    let one = events(1).remove(0);
    for _ in 0..150 {
        f.outbound.enqueue(&b(), &one).await.unwrap();
    }
    f.outbound.attempt(&peer, &b()).await.unwrap();
    f.outbound.attempt(&peer, &b()).await.unwrap();
    let sizes: Vec<usize> = peer.received().iter().map(|(_, e)| e.len()).collect();
    assert_eq!(sizes, vec![100, 50]);
    let received = peer.received();
    assert_ne!(received[0].0, received[1].0, "each batch has its own id");
    assert_eq!(f.outbound.pending(&b()).unwrap(), 0);
}

#[tokio::test]
async fn batches_stay_under_the_transaction_size_limit() {
    let f = fixture();
    let peer = TestTransport::new(Peer::Up);
    let key = ServerKey::generate();
    let topic = TopicId::random(&a());
    let big = |i: u8| {
        Event::sign(
            &a(),
            &b(),
            EventKind::TopicEntry,
            Some(&topic),
            vec![i; 4 * 1024 * 1024],
            1,
            &key,
        )
        .signed_bytes()
        .clone()
    };
    for i in 0..5 {
        f.outbound.enqueue(&b(), &big(i)).await.unwrap();
    }
    for _ in 0..2 {
        // The test peer decodes with `Transaction::from_wire`, which enforces the limit.
        assert!(matches!(
            f.outbound.attempt(&peer, &b()).await.unwrap(),
            Attempt::Answered { .. }
        ));
    }
    let sizes: Vec<usize> = peer.received().iter().map(|(_, e)| e.len()).collect();
    assert_eq!(sizes, vec![3, 2]);
    // An event no peer would accept is refused at once rather than blocking the queue.
    let mut huge = big(9);
    huge.0.resize(MAX_EVENT_LEN + 1, 0);
    assert!(matches!(
        f.outbound.enqueue(&b(), &huge).await,
        Err(OutboundError::TooLarge { .. })
    ));
}

#[tokio::test]
async fn peer_down_backs_off_capped_then_delivers_once() {
    let f = fixture();
    let peer = TestTransport::new(Peer::Down);
    let evs = events(3);
    enqueue_all(&f.outbound, &evs).await;

    let mut txn_ids = HashSet::new();
    for n in 1..=14u32 {
        let before = f.clock.now_ms();
        match f.outbound.attempt(&peer, &b()).await.unwrap() {
            Attempt::Failed { txn_id, error } => {
                assert!(matches!(error, TransportError::Send { .. }));
                txn_ids.insert(txn_id);
            }
            other => panic!("{other:?}"),
        }
        let backoff = f.outbound.backoff(&b()).unwrap();
        assert_eq!(backoff.attempts, n);
        // Full jitter taken at its ceiling: 2 s · 2^(n-1), capped at one hour.
        let expected = (2_000u64 << (n - 1)).min(3_600_000);
        assert_eq!(backoff.next_attempt_ms - before, expected, "attempt {n}");
        f.clock.advance(Duration::from_millis(expected));
    }
    assert_eq!(
        *f.asked.lock().unwrap().last().unwrap(),
        3_600_000,
        "the ceiling is capped in hours"
    );
    assert_eq!(txn_ids.len(), 1, "every retry reuses the transaction id");
    assert_eq!(f.outbound.pending(&b()).unwrap(), 3, "nothing lost");

    // An event queued meanwhile waits for the next transaction.
    let late = events(1).remove(0);
    f.outbound.enqueue(&b(), &late).await.unwrap();

    peer.set(Peer::Up);
    let Attempt::Answered {
        txn_id, delivered, ..
    } = f.outbound.attempt(&peer, &b()).await.unwrap()
    else {
        panic!("not answered")
    };
    assert!(txn_ids.contains(&txn_id));
    assert_eq!(delivered, vec![1, 2, 3]);
    assert_eq!(
        f.outbound.backoff(&b()).unwrap(),
        OutboundBackoff::default()
    );
    f.outbound.attempt(&peer, &b()).await.unwrap();
    let mut all = ids(&evs);
    all.push(Event::id(&late).0);
    assert_eq!(peer.applied(), all, "delivered in order, once each");
    assert_eq!(peer.received().len(), 2);
    assert_eq!(f.outbound.pending(&b()).unwrap(), 0);
}

#[tokio::test]
async fn refused_event_is_dropped_while_the_others_are_acked() {
    let f = fixture();
    let peer = TestTransport::new(Peer::Up);
    let evs = events(3);
    peer.refuse(&evs[1], 403, "forbidden");
    enqueue_all(&f.outbound, &evs).await;
    let Attempt::Answered {
        delivered,
        dropped,
        kept,
        ..
    } = f.outbound.attempt(&peer, &b()).await.unwrap()
    else {
        panic!("not answered")
    };
    assert_eq!((delivered, dropped, kept), (vec![1, 3], vec![2], vec![]));
    assert_eq!(f.outbound.pending(&b()).unwrap(), 0);
    assert_eq!(
        f.outbound.backoff(&b()).unwrap(),
        OutboundBackoff::default()
    );
    assert_eq!(
        peer.applied(),
        vec![Event::id(&evs[0]).0, Event::id(&evs[2]).0]
    );
}

#[tokio::test]
async fn retry_later_event_is_sent_again_in_a_new_transaction() {
    let f = fixture();
    let peer = TestTransport::new(Peer::Up);
    let evs = events(3);
    peer.refuse(&evs[1], 503, "unavailable");
    enqueue_all(&f.outbound, &evs).await;
    let Attempt::Answered {
        txn_id: first,
        delivered,
        kept,
        ..
    } = f.outbound.attempt(&peer, &b()).await.unwrap()
    else {
        panic!("not answered")
    };
    assert_eq!((delivered, kept), (vec![1, 3], vec![2]));
    assert_eq!(f.outbound.pending(&b()).unwrap(), 1);
    assert_eq!(
        f.outbound.backoff(&b()).unwrap().attempts,
        1,
        "5xx backs off"
    );

    peer.allow_all();
    let Attempt::Answered {
        txn_id: second,
        delivered,
        ..
    } = f.outbound.attempt(&peer, &b()).await.unwrap()
    else {
        panic!("not answered")
    };
    assert_ne!(first, second);
    assert_eq!(delivered, vec![2]);
    assert_eq!(peer.received()[1].1, vec![Event::id(&evs[1]).0]);
    assert_eq!(f.outbound.pending(&b()).unwrap(), 0);
    assert_eq!(
        f.outbound.backoff(&b()).unwrap(),
        OutboundBackoff::default()
    );
}

#[tokio::test]
async fn an_invalid_answer_is_retried_with_the_same_id() {
    let f = fixture();
    let peer = TestTransport::new(Peer::ShortAnswer);
    enqueue_all(&f.outbound, &events(2)).await;
    let Attempt::Failed { txn_id, error } = f.outbound.attempt(&peer, &b()).await.unwrap() else {
        panic!("not failed")
    };
    assert!(matches!(error, TransportError::BadResponse { .. }));
    assert_eq!(f.outbound.pending(&b()).unwrap(), 2);
    peer.set(Peer::Up);
    let Attempt::Answered { txn_id: again, .. } = f.outbound.attempt(&peer, &b()).await.unwrap()
    else {
        panic!("not answered")
    };
    assert_eq!(txn_id, again);
    assert_eq!(f.outbound.pending(&b()).unwrap(), 0);
}

/// A peer that refuses whole transactions as malformed because of one event: the transaction
/// is split, the one event it cannot take is dropped, the others are delivered, nothing waits
/// forever (`federation-api.md` §8).
#[tokio::test]
async fn a_transaction_refused_as_a_whole_is_split_and_only_the_bad_event_dropped() {
    let f = fixture();
    let evs = events(3);
    let peer = TestTransport::new(Peer::RefusesWhole(Event::id(&evs[1]).0));
    enqueue_all(&f.outbound, &evs).await;
    let Attempt::Split { txn_id } = f.outbound.attempt(&peer, &b()).await.unwrap() else {
        panic!("not split")
    };
    assert_eq!(f.outbound.pending(&b()).unwrap(), 3, "nothing dropped yet");
    let mut delivered_all = Vec::new();
    let mut dropped_all = Vec::new();
    for _ in 0..3 {
        let Attempt::Answered {
            txn_id: single,
            delivered,
            dropped,
            ..
        } = f.outbound.attempt(&peer, &b()).await.unwrap()
        else {
            panic!("not answered")
        };
        assert_ne!(single, txn_id, "a new id for a new transaction");
        delivered_all.extend(delivered);
        dropped_all.extend(dropped);
    }
    assert_eq!(delivered_all, vec![1, 3]);
    assert_eq!(dropped_all, vec![2]);
    assert_eq!(f.outbound.pending(&b()).unwrap(), 0);
    assert_eq!(
        peer.applied(),
        vec![Event::id(&evs[0]).0, Event::id(&evs[2]).0]
    );
    assert!(matches!(
        f.outbound.attempt(&peer, &b()).await.unwrap(),
        Attempt::Idle
    ));
}

#[tokio::test]
async fn events_for_this_server_are_refused() {
    let f = fixture();
    let e = events(1).remove(0);
    assert!(matches!(
        f.outbound.enqueue(&a(), &e).await,
        Err(OutboundError::ToSelf(_))
    ));
}
