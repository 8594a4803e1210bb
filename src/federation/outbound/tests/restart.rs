//! A restart retries the same transaction; the running service and its wake-ups.

use super::*;

#[tokio::test]
async fn restart_retries_the_same_transaction_and_delivers_once() {
    let dir = TempDir::new();
    let clock = ManualClock::new();
    let peer = TestTransport::new(Peer::AnswerLost);
    let evs = events(3);
    let first_id = {
        let store = Store::open(dir.path()).unwrap();
        let (jitter, _) = max_jitter();
        let o = Outbound::with_clock(store.clone(), a(), clock.clone(), jitter);
        enqueue_all(&o, &evs).await;
        // The peer applies the transaction but its answer never arrives.
        let Attempt::Failed { txn_id, .. } = o.attempt(&peer, &b()).await.unwrap() else {
            panic!("not failed")
        };
        assert_eq!(peer.applied(), ids(&evs));
        store.sync().await.unwrap();
        txn_id
    };

    // Reopened: a new event arrives before the retry; it must not join the old transaction.
    let store = Store::reopen_for_tests(dir.path());
    let (jitter, _) = max_jitter();
    let o = Arc::new(Outbound::with_clock(
        store.clone(),
        a(),
        clock.clone(),
        jitter,
    ));
    assert_eq!(
        store.outbound_in_flight(&b()).unwrap().map(|t| t.txn_id),
        Some(first_id.clone())
    );
    assert_eq!(o.backoff(&b()).unwrap().attempts, 1);
    let late = events(1).remove(0);
    o.enqueue(&b(), &late).await.unwrap();
    peer.set(Peer::Up);

    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let service = tokio::task::spawn_local(o.clone().run(peer.clone()));
            // The sender found the destination in the store and waits out the stored backoff.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(peer.received().len(), 1, "the backoff is respected");
            clock.advance(BACKOFF_BASE);
            eventually("all delivered", || o.pending(&b()).unwrap() == 0).await;
            service.abort();
        })
        .await;

    let received = peer.received();
    assert_eq!(received.len(), 3);
    assert_eq!(
        received[1],
        (first_id.clone(), ids(&evs)),
        "same id, same events"
    );
    assert_ne!(received[2].0, first_id);
    assert_eq!(received[2].1, vec![Event::id(&late).0]);
    let mut all = ids(&evs);
    all.push(Event::id(&late).0);
    assert_eq!(peer.applied(), all, "each event applied once");
    assert_eq!(store.outbound_in_flight(&b()).unwrap(), None);
}

#[tokio::test]
async fn peer_heard_from_resets_the_backoff_and_wakes_the_sender() {
    let f = fixture();
    let peer = TestTransport::new(Peer::Down);
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let service = tokio::task::spawn_local(f.outbound.clone().run(peer.clone()));
            // Enqueued after start: the service starts a sender for the new destination.
            enqueue_all(&f.outbound, &events(2)).await;
            eventually("a failed send", || {
                f.outbound.backoff(&b()).unwrap().attempts == 1
            })
            .await;
            // The clock does not move: only the wake-up can make the sender try again.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(peer.received().len(), 0);
            assert_eq!(f.outbound.backoff(&b()).unwrap().attempts, 1);

            peer.set(Peer::Up);
            // An enqueue wakes the sender, but it goes on waiting out the backoff.
            let more = events(1).remove(0);
            f.outbound.enqueue(&b(), &more).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(peer.received().len(), 0);

            f.outbound.peer_heard_from(&b());
            eventually("delivered", || f.outbound.pending(&b()).unwrap() == 0).await;
            assert_eq!(
                f.outbound.backoff(&b()).unwrap(),
                OutboundBackoff::default()
            );
            assert_eq!(peer.applied().len(), 3);
            // Hearing from a healthy peer changes nothing.
            f.outbound.peer_heard_from(&b());
            f.outbound.peer_heard_from(&"c.example".parse().unwrap());
            service.abort();
        })
        .await;
}
