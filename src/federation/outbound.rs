//! Outbound queues and retries (`federation-api.md` §4, §8).
//!
//! Every event for another server is first written to that destination's persistent queue
//! ([`Outbound::enqueue`], durable when it returns). One sender task per destination batches up
//! to [`MAX_EVENTS`] queued events (and at most
//! [`MAX_TRANSACTION_LEN`](rendezvous_protocol::federation::transaction::MAX_TRANSACTION_LEN)
//! bytes) into a [`Transaction`] whose random id is stored *before* the
//! first send, and sends it through a [`Transport`]:
//!
//! - an answer settles each event by its result: `2xx` applied (removed), `4xx` refused for good
//!   (removed, code logged), `5xx` try again later (kept for a later transaction, and the next
//!   one waits a backoff step);
//! - no answer (connection, TLS, timeout, non-200 status, undecodable body) retries the *same*
//!   transaction (same id, same events) after a capped exponential backoff with full jitter,
//!   `random(0, min(1 h, 2 s · 2^attempts))`, so the receiver can deduplicate it.
//!
//! Queue, in-flight transaction and backoff live in the store, so a restart loses nothing and
//! retries the same transaction id. [`Outbound::peer_heard_from`] (called by the inbound
//! listener) clears a peer's backoff and wakes its sender at once.

mod batch;
mod bounds;
mod clock;
#[cfg(test)]
mod tests;
mod transport;

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

pub use bounds::QueueLimits;
pub use clock::{Clock, Jitter, ServerClock, SystemClock, random_jitter};
pub use transport::{
    AwcTransport, DEFAULT_PORT, MAX_RESPONSE_LEN, Resolve, ResolveFuture, SEND_CONNECT_TIMEOUT,
    SEND_TIMEOUT, SEND_TIMEOUTS, Transport, TransportError, client_tls, discovery_resolver,
    load_client_tls, static_resolver,
};

use crate::federation::peer::PeerPolicy;
use crate::store::{OutboundBackoff, OutboundInFlight, Store, StoreError};
use batch::{Settled, fit, new_txn_id, refused_for_good, settle};
use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::federation::Transaction;
use rendezvous_protocol::federation::event::MAX_EVENT_LEN;
use rendezvous_protocol::federation::transaction::MAX_EVENTS;
use rendezvous_protocol::ids::ServerName;
use rendezvous_protocol::wire::SignedBytes;

/// The first retry waits up to this long (`federation-api.md` §8).
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// No retry waits longer than this (`federation-api.md` §8).
pub const BACKOFF_CAP: Duration = Duration::from_secs(3600);

/// The longest a retry may wait after `attempts` earlier consecutive failures:
/// `min(BACKOFF_CAP, BACKOFF_BASE · 2^attempts)`.
pub fn backoff_ceiling(attempts: u32) -> Duration {
    // 2 s · 2^11 already exceeds the cap; a smaller exponent keeps the product in range.
    let factor = 1u32 << attempts.min(12);
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_CAP)
}

/// Why the outbound service could not do its part.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The queue could not be read or written (details are for the log).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Events for this server itself are never queued.
    #[error("{0} is this server")]
    ToSelf(String),
    /// The destination's queue is at its bound (`federation.limits.queue_events`,
    /// `queue_bytes`): nothing was queued.
    #[error("the queue for {destination} is full")]
    QueueFull {
        /// The destination.
        destination: String,
    },
    /// The event is larger than any peer accepts.
    #[error("event of {len} bytes, over the limit of {max}")]
    TooLarge {
        /// Its encoded length.
        len: usize,
        /// [`MAX_EVENT_LEN`].
        max: usize,
    },
}

/// What one [`Outbound::attempt`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The queue is empty: nothing was sent.
    Idle,
    /// The transaction in flight named events no longer queued; it was dropped without being
    /// sent, and the next attempt starts a new one.
    Discarded {
        /// Its id.
        txn_id: String,
    },
    /// The peer answered: every event of the transaction was settled.
    Answered {
        /// The transaction id.
        txn_id: String,
        /// Sequence numbers of events applied (`2xx`), removed from the queue.
        delivered: Vec<u64>,
        /// Sequence numbers of events refused for good (`4xx`), removed from the queue.
        dropped: Vec<u64>,
        /// Sequence numbers of events to try again (`5xx`), still queued.
        kept: Vec<u64>,
    },
    /// The peer refused the whole transaction as malformed: nothing was applied, the
    /// transaction is dropped and its events are sent one per transaction from now on.
    Split {
        /// The dropped transaction's id.
        txn_id: String,
    },
    /// No usable answer: the same transaction will be retried after a backoff.
    Failed {
        /// The transaction id.
        txn_id: String,
        /// Why.
        error: TransportError,
    },
}

/// The outbound federation service: queues, one sender per destination, backoff.
///
/// `Send + Sync`: handlers anywhere call [`Outbound::enqueue`] and [`Outbound::peer_heard_from`]
/// through an `Arc`; the senders themselves run as local tasks of [`Outbound::run`].
pub struct Outbound {
    store: Store,
    origin: ServerName,
    limits: QueueLimits,
    clock: Arc<dyn Clock>,
    jitter: Jitter,
    /// Wake-ups of the destinations that have (or had) work since start.
    peers: Mutex<HashMap<ServerName, Arc<Notify>>>,
    /// Wakes [`Outbound::run`] when a destination appears in `peers`.
    new_peer: Notify,
    /// Told of each event a peer refused for good: `(signed event, status, code)`.
    on_refused: Mutex<Option<RefusalHook>>,
    /// The allow and deny lists: events for a server they shut out are never queued.
    policy: PeerPolicy,
    /// Destinations that refused a whole transaction as malformed: sent one event per
    /// transaction until one is answered, to find the event they cannot take.
    singles: Mutex<HashSet<ServerName>>,
}

/// Called with each event a peer refused for good: `(signed event, status, code)`.
pub type RefusalHook = Arc<dyn Fn(&SignedBytes, u16, &str) + Send + Sync>;

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// The service of server `origin`, on the system clock with random jitter.
    pub fn new(store: Store, origin: ServerName) -> Outbound {
        Outbound::with_clock(store, origin, Arc::new(SystemClock), random_jitter())
    }

    /// The service with an explicit clock and jitter (tests).
    pub fn with_clock(
        store: Store,
        origin: ServerName,
        clock: Arc<dyn Clock>,
        jitter: Jitter,
    ) -> Outbound {
        Outbound {
            store,
            origin,
            limits: QueueLimits::default(),
            clock,
            jitter,
            peers: Mutex::new(HashMap::new()),
            new_peer: Notify::new(),
            on_refused: Mutex::new(None),
            singles: Mutex::new(HashSet::new()),
            policy: PeerPolicy::default(),
        }
    }

    /// Queues only for servers `policy` admits (`[federation] allow`, `deny`, §1).
    pub fn with_policy(mut self, policy: PeerPolicy) -> Outbound {
        self.policy = policy;
        self
    }

    /// The same service with its queues bounded by `limits`.
    pub fn with_limits(mut self, limits: QueueLimits) -> Outbound {
        self.limits = limits;
        self
    }

    fn singles(&self) -> std::sync::MutexGuard<'_, HashSet<ServerName>> {
        self.singles.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets what is told of events that peers refuse for good (e.g. the devices waiting for a
    /// submitted post, `federation-api.md` §9.3).
    pub fn on_refused(&self, hook: RefusalHook) {
        *self.on_refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    /// Queues a signed event for `destination`; returns its sequence number once it is durable
    /// (`None`: dropped, the allow and deny lists shut the destination out), and wakes the
    /// destination's sender.
    pub async fn enqueue(
        &self,
        destination: &ServerName,
        event: &SignedBytes,
    ) -> Result<Option<u64>, OutboundError> {
        let seq = self.enqueue_unsynced(destination, event)?;
        self.store.sync().await?;
        Ok(seq)
    }

    /// Queues a signed event for `destination` without waiting for durability (the caller
    /// flushes the store before acknowledging anything that depends on it), and wakes the
    /// destination's sender. Events are sent in the order they are queued.
    pub fn enqueue_unsynced(
        &self,
        destination: &ServerName,
        event: &SignedBytes,
    ) -> Result<Option<u64>, OutboundError> {
        if *destination == self.origin {
            return Err(OutboundError::ToSelf(destination.to_string()));
        }
        if !self.policy.permits(destination) {
            tracing::info!(%destination, "event for a server the federation policy shuts out; dropped");
            return Ok(None);
        }
        // `federation-api.md` §3.3 check 1: a larger event would be refused by every peer.
        if event.0.len() > MAX_EVENT_LEN {
            return Err(OutboundError::TooLarge {
                len: event.0.len(),
                max: MAX_EVENT_LEN,
            });
        }
        let seq = self.enqueue_bounded(destination, event)?;
        self.wake(destination);
        Ok(Some(seq))
    }

    /// Called when `peer` has been heard from (an authenticated inbound transaction): it is up,
    /// so its backoff is cleared and its sender tries at once.
    pub fn peer_heard_from(&self, peer: &ServerName) {
        match self.store.outbound_backoff(peer) {
            Ok(b) if b == OutboundBackoff::default() => return,
            Ok(_) => {}
            Err(e) => tracing::warn!(%peer, %e, "reading the outbound backoff failed"),
        }
        if let Err(e) = self
            .store
            .outbound_set_backoff(peer, OutboundBackoff::default())
        {
            tracing::warn!(%peer, %e, "clearing the outbound backoff failed");
        }
        if let Some(wake) = self.lock_peers().get(peer) {
            wake.notify_one();
        }
    }

    /// The backoff state of `destination`.
    pub fn backoff(&self, destination: &ServerName) -> Result<OutboundBackoff, OutboundError> {
        Ok(self.store.outbound_backoff(destination)?)
    }

    /// Number of events queued for `destination`.
    pub fn pending(&self, destination: &ServerName) -> Result<usize, OutboundError> {
        Ok(self.store.outbound_len(destination)?)
    }

    fn lock_peers(&self) -> std::sync::MutexGuard<'_, HashMap<ServerName, Arc<Notify>>> {
        // The map only holds wake-ups; a panic elsewhere cannot leave it inconsistent.
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes `destination`'s sender, asking [`Outbound::run`] to start one if needed.
    fn wake(&self, destination: &ServerName) {
        let mut peers = self.lock_peers();
        match peers.get(destination) {
            Some(wake) => wake.notify_one(),
            None => {
                let wake = Arc::new(Notify::new());
                wake.notify_one();
                peers.insert(destination.clone(), wake);
                self.new_peer.notify_one();
            }
        }
    }

    fn waker(&self, destination: &ServerName) -> Arc<Notify> {
        self.lock_peers()
            .entry(destination.clone())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    /// Runs the senders: one local task per destination with queued events (those in the store
    /// at start, and every destination enqueued to later). Never returns; abort its task to
    /// stop it. Must run inside a `LocalSet` (actix's runtime is one).
    pub async fn run<T: Transport + 'static>(self: Arc<Self>, transport: T) {
        let transport = Rc::new(transport);
        let mut running: HashSet<ServerName> = HashSet::new();
        let mut senders = Vec::new();
        loop {
            let mut todo = match self.store.outbound_destinations() {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(%e, "listing outbound destinations failed");
                    Vec::new()
                }
            };
            todo.extend(self.lock_peers().keys().cloned());
            for destination in todo {
                if running.insert(destination.clone()) {
                    let wake = self.waker(&destination);
                    senders.push(AbortOnDrop(tokio::task::spawn_local(self.clone().sender(
                        transport.clone(),
                        destination,
                        wake,
                    ))));
                }
            }
            self.new_peer.notified().await;
        }
    }

    /// One destination's sender: waits out the backoff, attempts, and sleeps while idle.
    async fn sender<T: Transport>(
        self: Arc<Self>,
        transport: Rc<T>,
        destination: ServerName,
        wake: Arc<Notify>,
    ) {
        loop {
            let next = match self.store.outbound_backoff(&destination) {
                Ok(b) => b.next_attempt_ms,
                Err(e) => {
                    tracing::warn!(%destination, %e, "reading the outbound backoff failed");
                    self.clock.sleep(BACKOFF_BASE).await;
                    continue;
                }
            };
            let now = self.clock.now_ms();
            if next > now {
                tokio::select! {
                    () = self.clock.sleep(Duration::from_millis(next - now)) => {}
                    () = wake.notified() => {}
                }
                continue;
            }
            match self.attempt(&*transport, &destination).await {
                Ok(Attempt::Idle) => wake.notified().await,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%destination, %e, "outbound attempt failed");
                    self.clock.sleep(BACKOFF_BASE).await;
                }
            }
        }
    }

    /// Makes one delivery attempt to `destination`, regardless of its backoff: sends the
    /// transaction in flight, or starts one from the head of the queue, and settles the outcome
    /// (queue, in-flight transaction, backoff). Only one attempt per destination may run at a
    /// time; [`Outbound::run`] guarantees that.
    pub async fn attempt<T: Transport>(
        &self,
        transport: &T,
        destination: &ServerName,
    ) -> Result<Attempt, OutboundError> {
        let Some(in_flight) = self.in_flight_or_begin(destination).await? else {
            return Ok(Attempt::Idle);
        };
        let events = self.store.outbound_events(destination, &in_flight.seqs)?;
        if events.len() != in_flight.seqs.len() {
            // Only `outbound_ack` by someone else can get here; resending the same id with
            // other events would be answered with the stored results of the first ones.
            tracing::warn!(%destination, txn_id = %in_flight.txn_id, "in-flight events vanished");
            self.store.outbound_finish(destination, &[])?;
            return Ok(Attempt::Discarded {
                txn_id: in_flight.txn_id,
            });
        }
        let txn = Transaction::new(
            in_flight.txn_id.clone(),
            self.origin.clone(),
            destination.clone(),
            events.iter().map(|(_, e)| e.clone()).collect(),
        );
        let answer = transport
            .send(destination, &txn)
            .await
            .and_then(|r| settle(destination, &events, &r));
        match answer {
            Ok(settled) => self.answered(destination, in_flight, &events, settled),
            Err(error) => match refused_for_good(&error) {
                Some((_, ErrorCode::Malformed)) if in_flight.seqs.len() > 1 => {
                    self.split(destination, in_flight, &error)
                }
                Some(refused) => {
                    self.drop_refused(destination, in_flight, &events, refused, &error)
                }
                None => self.failed(destination, in_flight, error),
            },
        }
    }

    /// The transaction in flight to `destination`, or a new one from the head of its queue
    /// (one event only while finding an event the peer cannot take); `None` when the queue is
    /// empty. A new transaction's id is durable before its first send, so a retry after a
    /// restart reuses it and the receiver deduplicates (`federation-api.md` §4).
    async fn in_flight_or_begin(
        &self,
        destination: &ServerName,
    ) -> Result<Option<OutboundInFlight>, OutboundError> {
        self.drop_aged(destination)?;
        if let Some(in_flight) = self.store.outbound_in_flight(destination)? {
            return Ok(Some(in_flight));
        }
        let most = match self.singles().contains(destination) {
            true => 1,
            false => MAX_EVENTS,
        };
        let batch = fit(self.store.outbound_peek_batch(destination, most)?);
        if batch.is_empty() {
            self.singles().remove(destination);
            return Ok(None);
        }
        let txn = OutboundInFlight {
            txn_id: new_txn_id(),
            seqs: batch.iter().map(|(seq, _)| *seq).collect(),
        };
        self.store.outbound_begin(destination, &txn)?;
        self.store.sync().await?;
        Ok(Some(txn))
    }

    /// The peer answered: delivered and refused events leave the queue (the refused ones told
    /// to the refusal hook), events to try later stay and the destination backs off.
    fn answered(
        &self,
        destination: &ServerName,
        in_flight: OutboundInFlight,
        events: &[(u64, SignedBytes)],
        settled: Settled,
    ) -> Result<Attempt, OutboundError> {
        let hook = self.refusal_hook();
        for (seq, code, status) in &settled.refused {
            tracing::warn!(%destination, seq, status, %code, "peer refused an event; dropped");
            if let (Some(hook), Some((_, event))) = (&hook, events.iter().find(|(s, _)| s == seq)) {
                hook(event, *status, code);
            }
        }
        let mut done = settled.delivered.clone();
        done.extend(settled.refused.iter().map(|(seq, _, _)| *seq));
        self.store.outbound_finish(destination, &done)?;
        if settled.kept.is_empty() {
            self.store
                .outbound_set_backoff(destination, OutboundBackoff::default())?;
        } else {
            // The peer asked to try these later: do not hammer it.
            self.back_off(destination)?;
        }
        Ok(Attempt::Answered {
            txn_id: in_flight.txn_id,
            delivered: settled.delivered,
            dropped: settled.refused.into_iter().map(|(s, _, _)| s).collect(),
            kept: settled.kept,
        })
    }

    /// A transaction of several events refused as a whole: the peer applied nothing (a whole
    /// refusal changes nothing, §4), so the events go one per transaction, with new ids, to find
    /// the one it cannot take.
    fn split(
        &self,
        destination: &ServerName,
        in_flight: OutboundInFlight,
        error: &TransportError,
    ) -> Result<Attempt, OutboundError> {
        tracing::warn!(%destination, txn_id = %in_flight.txn_id, %error, "transaction refused as a whole; sending its events one by one");
        self.store.outbound_finish(destination, &[])?;
        self.singles().insert(destination.clone());
        Ok(Attempt::Split {
            txn_id: in_flight.txn_id,
        })
    }

    /// A transaction of one event refused as a whole: that event is the one the peer cannot
    /// take in any transaction; it is dropped, and batching resumes. A destination this server
    /// does not send to (§7.1) loses the whole transaction this way.
    fn drop_refused(
        &self,
        destination: &ServerName,
        in_flight: OutboundInFlight,
        events: &[(u64, SignedBytes)],
        (status, code): (u16, ErrorCode),
        error: &TransportError,
    ) -> Result<Attempt, OutboundError> {
        tracing::error!(%destination, txn_id = %in_flight.txn_id, %error, "events refused for good; dropped");
        if let Some(hook) = self.refusal_hook() {
            for (_, event) in events {
                hook(event, status, code.as_str());
            }
        }
        self.store.outbound_finish(destination, &in_flight.seqs)?;
        self.singles().remove(destination);
        Ok(Attempt::Answered {
            txn_id: in_flight.txn_id,
            delivered: Vec::new(),
            dropped: in_flight.seqs,
            kept: Vec::new(),
        })
    }

    /// No usable answer: the same transaction is retried after a backoff.
    fn failed(
        &self,
        destination: &ServerName,
        in_flight: OutboundInFlight,
        error: TransportError,
    ) -> Result<Attempt, OutboundError> {
        tracing::info!(%destination, txn_id = %in_flight.txn_id, %error, "transaction failed; will retry");
        self.back_off(destination)?;
        // federation-api.md §8: a whole-request 429 or 503 retries the same transaction, not
        // before its Retry-After.
        if let TransportError::Status {
            retry_after: Some(secs),
            ..
        } = &error
        {
            let earliest = self
                .clock
                .now_ms()
                .saturating_add(secs.min(&BACKOFF_CAP.as_secs()).saturating_mul(1000));
            let mut b = self.store.outbound_backoff(destination)?;
            if b.next_attempt_ms < earliest {
                b.next_attempt_ms = earliest;
                self.store.outbound_set_backoff(destination, b)?;
            }
        }
        Ok(Attempt::Failed {
            txn_id: in_flight.txn_id,
            error,
        })
    }

    fn refusal_hook(&self) -> Option<RefusalHook> {
        self.on_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One more failure: `next = now + random(0, min(cap, base · 2^attempts))`.
    fn back_off(&self, destination: &ServerName) -> Result<(), OutboundError> {
        let b = self.store.outbound_backoff(destination)?;
        let ceiling = u64::try_from(backoff_ceiling(b.attempts).as_millis()).unwrap_or(u64::MAX);
        let delay = (self.jitter)(ceiling).min(ceiling);
        self.store.outbound_set_backoff(
            destination,
            OutboundBackoff {
                attempts: b.attempts.saturating_add(1),
                next_attempt_ms: self.clock.now_ms().saturating_add(delay),
            },
        )?;
        Ok(())
    }
}

/// Aborts a sender task when [`Outbound::run`] is dropped or aborted.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
