//! Outbound queue tests: real stores on disk, a scripted transport that behaves like a
//! deduplicating receiver, a manual clock and chosen jitter (no long sleeps), and the awc
//! transport against a real mutual-TLS actix server on loopback. This file holds the fixtures;
//! the tests are in one file per concept.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::*;
use base64::Engine;
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::federation::Event;
use rendezvous_protocol::federation::{EventKind, EventResult, TransactionResponse};
use rendezvous_protocol::ids::TopicId;

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
                retry_after: None,
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

mod delivery;
mod restart;
mod tls;
