//! Outbound queue tests: real stores on disk, a scripted transport that behaves like a
//! deduplicating receiver, a manual clock and chosen jitter (no long sleeps), and the awc
//! transport against a real mutual-TLS actix server on loopback.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::*;
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::federation::{EventKind, EventResult};
use rendezvous_protocol::ids::TopicId;

// ---- fixtures -------------------------------------------------------------------------------

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "rdv-outbound-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(rendezvous_protocol::crypto::random_array::<6>())
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn a() -> ServerName {
    "a.example".parse().unwrap()
}

fn b() -> ServerName {
    "b.example".parse().unwrap()
}

/// Signed events from a to b, payload `[i]`.
fn events(n: u8) -> Vec<SignedBytes> {
    let key = ServerKey::generate();
    let topic = TopicId::random(&a());
    (0..n)
        .map(|i| {
            Event::sign(
                &a(),
                &b(),
                EventKind::TopicEntry,
                Some(&topic),
                vec![i],
                1_000,
                &key,
            )
            .signed_bytes()
            .clone()
        })
        .collect()
}

/// A clock moved by hand; sleeps end when it passes their deadline.
struct ManualClock(watch::Sender<u64>);

impl ManualClock {
    fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock(watch::Sender::new(1_000_000)))
    }

    fn advance(&self, d: Duration) {
        self.0
            .send_modify(|now| *now += u64::try_from(d.as_millis()).unwrap());
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        *self.0.borrow()
    }

    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let deadline = self.now_ms() + u64::try_from(d.as_millis()).unwrap();
        let mut rx = self.0.subscribe();
        Box::pin(async move {
            let _ = rx.wait_for(|now| *now >= deadline).await;
        })
    }
}

/// Jitter that always takes the ceiling, and remembers the ceilings it was asked for.
fn max_jitter() -> (Jitter, Arc<Mutex<Vec<u64>>>) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    let jitter: Jitter = Arc::new(move |upper| {
        log.lock().unwrap().push(upper);
        upper
    });
    (jitter, asked)
}

/// How the scripted peer behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// Unreachable: nothing is received.
    Down,
    /// Receives and applies, but the answer is lost on the way back.
    AnswerLost,
    /// Receives, applies and answers.
    Up,
    /// Answers 200 with one result too few.
    ShortAnswer,
    /// Refuses with HTTP 400 every transaction holding the event with this id.
    RefusesWhole([u8; 32]),
}

#[derive(Debug)]
struct PeerState {
    mode: Peer,
    /// Status per event id for events not to be applied (4xx/5xx); others get 200.
    refuse: HashMap<[u8; 32], (u16, &'static str)>,
    /// Every transaction received: `(txn_id, event ids)`.
    received: Vec<(String, Vec<[u8; 32]>)>,
    /// Results of each transaction id already processed (the receiver's dedupe).
    processed: HashMap<String, TransactionResponse>,
    /// Event ids applied, in the order applied.
    applied: Vec<[u8; 32]>,
}

/// A transport to a scripted, deduplicating receiver (`federation-api.md` §4).
#[derive(Clone)]
struct TestTransport(Rc<RefCell<PeerState>>);

impl TestTransport {
    fn new(mode: Peer) -> TestTransport {
        TestTransport(Rc::new(RefCell::new(PeerState {
            mode,
            refuse: HashMap::new(),
            received: Vec::new(),
            processed: HashMap::new(),
            applied: Vec::new(),
        })))
    }

    fn set(&self, mode: Peer) {
        self.0.borrow_mut().mode = mode;
    }

    fn refuse(&self, event: &SignedBytes, status: u16, code: &'static str) {
        self.0
            .borrow_mut()
            .refuse
            .insert(Event::id(event).0, (status, code));
    }

    fn allow_all(&self) {
        self.0.borrow_mut().refuse.clear();
    }

    fn applied(&self) -> Vec<[u8; 32]> {
        self.0.borrow().applied.clone()
    }

    fn received(&self) -> Vec<(String, Vec<[u8; 32]>)> {
        self.0.borrow().received.clone()
    }
}

impl Transport for TestTransport {
    async fn send(
        &self,
        destination: &ServerName,
        txn: &Transaction,
    ) -> Result<TransactionResponse, TransportError> {
        let mut p = self.0.borrow_mut();
        let down = || TransportError::Send {
            destination: destination.to_string(),
            reason: "connection refused".into(),
        };
        if p.mode == Peer::Down {
            return Err(down());
        }
        if let Peer::RefusesWhole(bad) = p.mode
            && txn.events.iter().any(|e| Event::id(e).0 == bad)
        {
            p.received.push((txn.txn_id.clone(), Vec::new()));
            return Err(TransportError::Status {
                destination: destination.to_string(),
                status: 400,
            });
        }
        // What a receiver does with it: validate the shape, dedupe by id, apply.
        let wire = txn.to_wire();
        let (txn, _) = Transaction::from_wire(&wire).map_err(|e| TransportError::Send {
            destination: destination.to_string(),
            reason: e.to_string(),
        })?;
        assert_eq!(txn.origin, a());
        assert_eq!(&txn.destination, destination);
        let ids: Vec<[u8; 32]> = txn.events.iter().map(|e| Event::id(e).0).collect();
        p.received.push((txn.txn_id.clone(), ids.clone()));
        let response = match p.processed.get(&txn.txn_id) {
            Some(r) => r.clone(),
            None => {
                let mut results = Vec::new();
                for id in ids {
                    let (status, code) = p.refuse.get(&id).copied().unwrap_or((200, ""));
                    if status == 200 && !p.applied.contains(&id) {
                        p.applied.push(id);
                    }
                    results.push(EventResult {
                        id,
                        status,
                        code: code.into(),
                    });
                }
                let r = TransactionResponse { results };
                p.processed.insert(txn.txn_id.clone(), r.clone());
                r
            }
        };
        match p.mode {
            Peer::AnswerLost => Err(down()),
            Peer::ShortAnswer => {
                let mut r = response;
                r.results.pop();
                Ok(r)
            }
            _ => Ok(response),
        }
    }
}

fn ids(events: &[SignedBytes]) -> Vec<[u8; 32]> {
    events.iter().map(|e| Event::id(e).0).collect()
}

struct Fixture {
    _dir: TempDir,
    store: Store,
    clock: Arc<ManualClock>,
    asked: Arc<Mutex<Vec<u64>>>,
    outbound: Arc<Outbound>,
}

fn fixture() -> Fixture {
    let dir = TempDir::new();
    let store = Store::open(dir.path()).unwrap();
    let clock = ManualClock::new();
    let (jitter, asked) = max_jitter();
    let outbound = Arc::new(Outbound::with_clock(
        store.clone(),
        a(),
        clock.clone(),
        jitter,
    ));
    Fixture {
        _dir: dir,
        store,
        clock,
        asked,
        outbound,
    }
}

async fn enqueue_all(o: &Outbound, events: &[SignedBytes]) {
    for e in events {
        o.enqueue(&b(), e).await.unwrap();
    }
}

/// Polls `cond` (yielding to the senders) until it holds; fails after 5 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---- logic ----------------------------------------------------------------------------------

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

// ---- restart and the running service --------------------------------------------------------

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
    let store = Store::open(dir.path()).unwrap();
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

// ---- the awc transport over mutual TLS ------------------------------------------------------

mod tls {
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose,
    };
    use rustls::RootCertStore;
    use rustls::server::WebPkiClientVerifier;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::*;

    /// The client certificate the TLS handshake got, stored per connection.
    #[derive(Clone)]
    struct PeerCert(Option<CertificateDer<'static>>);

    struct Pki {
        roots: RootCertStore,
        server: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
        client: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    }

    fn pki() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![name.to_owned()])
                .unwrap()
                .signed_by(&key, &ca)
                .unwrap();
            (
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        Pki {
            server: leaf("b.example"),
            client: leaf("a.example"),
            roots,
        }
    }

    async fn send(req: HttpRequest, txn_id: web::Path<String>, body: web::Bytes) -> HttpResponse {
        let cert = req.conn_data::<PeerCert>().and_then(|c| c.0.clone());
        if cert.is_none() {
            return HttpResponse::Unauthorized().finish();
        }
        let expected = req
            .app_data::<web::Data<CertificateDer<'static>>>()
            .unwrap();
        assert_eq!(
            cert.as_ref(),
            Some(&***expected),
            "the client's certificate"
        );
        let Ok((txn, _)) = Transaction::from_wire(&body) else {
            return HttpResponse::BadRequest().finish();
        };
        assert_eq!(txn.txn_id, *txn_id);
        assert_eq!(req.connection_info().host(), "b.example");
        let results = txn
            .events
            .iter()
            .map(|e| EventResult {
                id: Event::id(e).0,
                status: 200,
                code: String::new(),
            })
            .collect();
        HttpResponse::Ok()
            .content_type("application/cbor")
            .body(TransactionResponse { results }.to_wire())
    }

    #[actix_rt::test]
    async fn awc_transport_puts_the_transaction_over_mutual_tls() {
        let pki = pki();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(pki.roots.clone()),
            provider.clone(),
        )
        .build()
        .unwrap();
        let mut server_tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(pki.server.0.clone(), pki.server.1.clone_key())
            .unwrap();
        server_tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client_cert = web::Data::new(pki.client.0[0].clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(client_cert.clone())
                .route("/_rdv/federation/v1/send/{txn_id}", web::put().to(send))
        })
        .on_connect(|conn, ext| {
            use actix_tls::accept::rustls_0_23::TlsStream;
            if let Some(tls) = conn.downcast_ref::<TlsStream<actix_web::rt::net::TcpStream>>() {
                let (_, session) = tls.get_ref();
                let cert = session
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.clone().into_owned());
                ext.insert(PeerCert(cert));
            }
        })
        .workers(1)
        .disable_signals()
        .listen_rustls_0_23(listener, server_tls)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);

        let resolve: Resolve = Box::new(move |_: &ServerName| -> ResolveFuture {
            Box::pin(async move { Ok(vec![addr]) })
        });
        let tls = client_tls(
            pki.roots.clone(),
            pki.client.0.clone(),
            pki.client.1.clone_key(),
        )
        .unwrap();
        let transport = AwcTransport::new(tls, resolve);
        let evs = events(2);
        let txn = Transaction::new("txn-1".into(), a(), b(), evs.clone());
        let response = transport.send(&b(), &txn).await.unwrap();
        assert_eq!(
            response.results.iter().map(|r| r.id).collect::<Vec<_>>(),
            ids(&evs)
        );
        assert!(response.results.iter().all(|r| r.status == 200));

        // Through the whole service, on real files, with a first endpoint where nothing
        // listens: the next one is tried (`federation-api.md` §7).
        let f = fixture();
        enqueue_all(&f.outbound, &evs).await;
        let tls = client_tls(
            pki.roots.clone(),
            pki.client.0.clone(),
            pki.client.1.clone_key(),
        )
        .unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let resolve: Resolve = Box::new(move |_: &ServerName| -> ResolveFuture {
            Box::pin(async move { Ok(vec![closed, addr]) })
        });
        let transport = AwcTransport::new(tls, resolve);
        let Attempt::Answered { delivered, .. } =
            f.outbound.attempt(&transport, &b()).await.unwrap()
        else {
            panic!("not answered")
        };
        assert_eq!(delivered, vec![1, 2]);

        // A server certificate for another name is refused: the name checked is the
        // destination's, not the address's.
        let c: ServerName = "c.example".parse().unwrap();
        let txn = Transaction::new("txn-2".into(), a(), c.clone(), evs);
        assert!(matches!(
            transport.send(&c, &txn).await,
            Err(TransportError::Send { .. })
        ));
        // A client without a certificate is refused at the handshake.
        let no_cert = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.roots.clone())
        .with_no_client_auth();
        let client = awc::Client::builder()
            .connector(awc::Connector::new().rustls_0_23(Arc::new(no_cert)))
            .finish();
        let refused = client
            .put("https://b.example/_rdv/federation/v1/send/x")
            .address(addr)
            .send_body(vec![0u8])
            .await;
        assert!(refused.is_err() || refused.is_ok_and(|r| r.status() == 401));
        handle.stop(false).await;
    }
}
