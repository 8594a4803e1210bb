//! Outbound federation queues (`federation-api.md` §8): one persistent queue of signed events
//! per destination server, the transaction in flight to it, and its retry backoff.
//!
//! | table | key | value |
//! |---|---|---|
//! | `outbound` | `id(destination) ‖ u64be(seq)` | CBOR signed event |
//! | `outbound_state` | `id(destination) ‖ 1` | `u64be` last sequence number given out |
//! | `outbound_state` | `id(destination) ‖ 2` | CBOR `[txn_id, [* seq]]`: the transaction in flight |
//! | `outbound_state` | `id(destination) ‖ 3` | CBOR `[attempts, next_attempt_ms]`: the backoff |
//! | `outbound_state` | `id(destination) ‖ 4` | CBOR `[events, bytes]` queued (kept with every change) |
//! | `outbound_state` | `id(destination) ‖ 5 ‖ id(topic)` | `u64be` seq of the queued `topic.cosignature` |
//!
//! Sequence numbers start at 1, grow per destination and are never reused. Writes are applied
//! at once; callers that must not lose them (an event acknowledged to a user, a transaction id
//! chosen before its first send) call [`Store::sync`] afterwards.

use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::keys::{Key, KeyReader, read_u64};
use super::{OrBackend, Store, StoreError, decode_record, encode_record, tx, tx_counter};
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::wire::SignedBytes;

/// The trees of the outbound queues, opened with the others in [`super::Tables`].
pub(super) struct OutboundTables {
    queue: sled::Tree,
    state: sled::Tree,
}

impl OutboundTables {
    pub(super) fn open(db: &sled::Db) -> Result<OutboundTables, StoreError> {
        Ok(OutboundTables {
            queue: db.open_tree("outbound").or_backend()?,
            state: db.open_tree("outbound_state").or_backend()?,
        })
    }
}

/// Kinds of per-destination state records (the last byte of an `outbound_state` key).
const STATE_SEQ: u8 = 1;
const STATE_IN_FLIGHT: u8 = 2;
const STATE_BACKOFF: u8 = 3;
const STATE_SIZE: u8 = 4;
const STATE_COSIGNATURE: u8 = 5;

fn state_key(destination: &ServerName, kind: u8) -> Vec<u8> {
    Key::new().id(destination.as_str()).u8(kind).build()
}

fn cosignature_key(destination: &ServerName, topic: &TopicId) -> Vec<u8> {
    Key::new()
        .id(destination.as_str())
        .u8(STATE_COSIGNATURE)
        .id(topic.as_str())
        .build()
}

fn queue_prefix(destination: &ServerName) -> Vec<u8> {
    Key::new().id(destination.as_str()).build()
}

fn queue_key(destination: &ServerName, seq: u64) -> Vec<u8> {
    Key::new().id(destination.as_str()).u64(seq).build()
}

/// A transaction sent (or about to be sent) to a destination and not yet answered: retries
/// reuse its id and exactly its events, so that the receiver can deduplicate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundInFlight {
    /// The transaction id (`federation-api.md` §4).
    pub txn_id: String,
    /// Sequence numbers of its events, in order.
    pub seqs: Vec<u64>,
}

/// Retry state of one destination: consecutive failed attempts and when to try next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundBackoff {
    /// Consecutive failed attempts (0: the destination is healthy).
    pub attempts: u32,
    /// Unix time in milliseconds before which no attempt is made.
    pub next_attempt_ms: u64,
}

/// How much one destination's queue may hold (`federation-api.md` §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBounds {
    /// Most events.
    pub events: u64,
    /// Most bytes (of stored events).
    pub bytes: u64,
}

impl QueueBounds {
    /// No bound.
    pub const NONE: QueueBounds = QueueBounds {
        events: u64::MAX,
        bytes: u64::MAX,
    };
}

/// `[events, bytes]` queued for one destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct QueueSize(u64, u64);

type TxResult<T> = Result<T, sled::transaction::ConflictableTransactionError<StoreError>>;

fn tx_size(state: &sled::transaction::TransactionalTree, key: &[u8]) -> TxResult<QueueSize> {
    match state.get(key)? {
        Some(v) => super::in_tx(decode_record(&v, "outbound_state")),
        None => Ok(QueueSize::default()),
    }
}

/// Removes queued event `seq` in a transaction; the size it freed.
fn tx_remove(
    queue: &sled::transaction::TransactionalTree,
    destination: &ServerName,
    seq: u64,
) -> TxResult<QueueSize> {
    Ok(match queue.remove(queue_key(destination, seq))? {
        Some(v) => QueueSize(1, v.len() as u64),
        None => QueueSize::default(),
    })
}

/// Most events one [`Store::outbound_drop_head`] removes.
const MAX_DROPPED_PER_CALL: usize = 1000;

impl Store {
    /// Appends a signed event to `destination`'s queue; returns its sequence number. Durable
    /// after the next [`Store::sync`].
    pub fn outbound_enqueue(
        &self,
        destination: &ServerName,
        event: &SignedBytes,
    ) -> Result<u64, StoreError> {
        Ok(self
            .outbound_enqueue_bounded(destination, event, QueueBounds::NONE, None)?
            .unwrap_or_default())
    }

    /// Appends a signed event to `destination`'s queue unless that would take it over
    /// `bounds` (then `None`, nothing queued); returns its sequence number. With `replaces`, the
    /// event is a cosignature of that topic and takes the place of the one queued before (unless
    /// that one is in flight). Durable after the next [`Store::sync`].
    pub fn outbound_enqueue_bounded(
        &self,
        destination: &ServerName,
        event: &SignedBytes,
        bounds: QueueBounds,
        replaces: Option<&TopicId>,
    ) -> Result<Option<u64>, StoreError> {
        self.outbound_size_init(destination)?;
        let o = &self.t().outbound;
        let seq_key = state_key(destination, STATE_SEQ);
        let size_key = state_key(destination, STATE_SIZE);
        let in_flight_key = state_key(destination, STATE_IN_FLIGHT);
        let cosignature = replaces.map(|t| cosignature_key(destination, t));
        let value = encode_record(event);
        tx((&o.queue, &o.state).transaction(|(queue, state)| {
            let mut size = tx_size(state, &size_key)?;
            if let Some(key) = &cosignature
                && let Some(old) = state.get(key.as_slice())?
            {
                let old = super::in_tx(read_u64(&old, "outbound_state"))?;
                let in_flight: Option<OutboundInFlight> =
                    match state.get(in_flight_key.as_slice())? {
                        Some(v) => Some(super::in_tx(decode_record(&v, "outbound_state"))?),
                        None => None,
                    };
                if !in_flight.is_some_and(|t| t.seqs.contains(&old)) {
                    let freed = tx_remove(queue, destination, old)?;
                    size = QueueSize(size.0 - freed.0.min(size.0), size.1 - freed.1.min(size.1));
                }
            }
            let grown = QueueSize(size.0 + 1, size.1.saturating_add(value.len() as u64));
            if grown.0 > bounds.events || grown.1 > bounds.bytes {
                // Aborted, not committed: a cosignature it would have replaced stays queued,
                // and the recorded size with it.
                return super::abort(StoreError::TooMany {
                    limit: bounds.events,
                    stored: size.0,
                    adding: 1,
                });
            }
            let seq = tx_counter(state, &seq_key)? + 1;
            queue.insert(queue_key(destination, seq), value.as_slice())?;
            state.insert(seq_key.as_slice(), &seq.to_be_bytes())?;
            state.insert(size_key.as_slice(), encode_record(&grown))?;
            if let Some(key) = &cosignature {
                state.insert(key.as_slice(), &seq.to_be_bytes())?;
            }
            Ok(Some(seq))
        }))
        .or_else(|e| match e {
            StoreError::TooMany { .. } => Ok(None),
            e => Err(e),
        })
    }

    /// Events and bytes queued for `destination`.
    pub fn outbound_size(&self, destination: &ServerName) -> Result<(u64, u64), StoreError> {
        self.outbound_size_init(destination)?;
        let v = self
            .t()
            .outbound
            .state
            .get(state_key(destination, STATE_SIZE))
            .or_backend()?;
        let size: QueueSize = match v {
            Some(v) => decode_record(&v, "outbound_state")?,
            None => QueueSize::default(),
        };
        Ok((size.0, size.1))
    }

    /// Counts the queue once when it has no size record (a database from before sizes were
    /// kept), or recounts it when `force`.
    fn outbound_size_count(&self, destination: &ServerName, force: bool) -> Result<(), StoreError> {
        let o = &self.t().outbound;
        let key = state_key(destination, STATE_SIZE);
        if !force && o.state.get(&key).or_backend()?.is_some() {
            return Ok(());
        }
        let mut size = QueueSize::default();
        for item in o.queue.scan_prefix(queue_prefix(destination)) {
            let (_, v) = item.or_backend()?;
            size = QueueSize(size.0 + 1, size.1 + v.len() as u64);
        }
        o.state.insert(key, encode_record(&size)).or_backend()?;
        Ok(())
    }

    fn outbound_size_init(&self, destination: &ServerName) -> Result<(), StoreError> {
        self.outbound_size_count(destination, false)
    }

    /// Removes events from the head of `destination`'s queue, outside the transaction in
    /// flight, while `drop` says so; returns them.
    pub fn outbound_drop_head(
        &self,
        destination: &ServerName,
        drop: impl Fn(&SignedBytes) -> bool,
    ) -> Result<Vec<SignedBytes>, StoreError> {
        let in_flight = self.outbound_in_flight(destination)?;
        let mut gone = Vec::new();
        let mut seqs = Vec::new();
        // Read in order and stop at the first event kept: a long queue is not decoded on every
        // send attempt, and one call drops at most `MAX_DROPPED_PER_CALL` (the next goes on).
        let prefix = queue_prefix(destination);
        for item in self.t().outbound.queue.scan_prefix(&prefix) {
            let (k, v) = item.or_backend()?;
            let seq = read_seq(&k, prefix.len())?;
            if in_flight.as_ref().is_some_and(|t| t.seqs.contains(&seq)) {
                continue;
            }
            let event: SignedBytes = decode_record(&v, "outbound")?;
            if !drop(&event) || gone.len() >= MAX_DROPPED_PER_CALL {
                break;
            }
            seqs.push(seq);
            gone.push(event);
        }
        if !seqs.is_empty() {
            self.outbound_remove(destination, &seqs, false)?;
        }
        Ok(gone)
    }

    /// Removes queued events `seqs` (and, with `finish`, the transaction in flight), keeping
    /// the size record, atomically.
    fn outbound_remove(
        &self,
        destination: &ServerName,
        seqs: &[u64],
        finish: bool,
    ) -> Result<(), StoreError> {
        self.outbound_size_init(destination)?;
        let o = &self.t().outbound;
        let in_flight = state_key(destination, STATE_IN_FLIGHT);
        let size_key = state_key(destination, STATE_SIZE);
        tx((&o.queue, &o.state).transaction(|(queue, state)| {
            let mut size = tx_size(state, &size_key)?;
            for &seq in seqs {
                let freed = tx_remove(queue, destination, seq)?;
                size = QueueSize(size.0 - freed.0.min(size.0), size.1 - freed.1.min(size.1));
            }
            state.insert(size_key.as_slice(), encode_record(&size))?;
            if finish {
                state.remove(in_flight.as_slice())?;
            }
            Ok(())
        }))
    }

    /// The first `limit` queued events of `destination`, in order: `(seq, event)`.
    pub fn outbound_peek_batch(
        &self,
        destination: &ServerName,
        limit: usize,
    ) -> Result<Vec<(u64, SignedBytes)>, StoreError> {
        let prefix = queue_prefix(destination);
        let mut out = Vec::new();
        for item in self.t().outbound.queue.scan_prefix(&prefix).take(limit) {
            let (k, v) = item.or_backend()?;
            let seq = read_seq(&k, prefix.len())?;
            out.push((seq, decode_record(&v, "outbound")?));
        }
        Ok(out)
    }

    /// The queued events of `destination` with these sequence numbers, in the order given;
    /// numbers no longer queued are skipped.
    pub fn outbound_events(
        &self,
        destination: &ServerName,
        seqs: &[u64],
    ) -> Result<Vec<(u64, SignedBytes)>, StoreError> {
        let mut out = Vec::with_capacity(seqs.len());
        for &seq in seqs {
            if let Some(v) = self
                .t()
                .outbound
                .queue
                .get(queue_key(destination, seq))
                .or_backend()?
            {
                out.push((seq, decode_record(&v, "outbound")?));
            }
        }
        Ok(out)
    }

    /// Removes `destination`'s queued events up to and including `up_to`; returns how many.
    pub fn outbound_ack(&self, destination: &ServerName, up_to: u64) -> Result<u64, StoreError> {
        let queue = &self.t().outbound.queue;
        let lo = queue_key(destination, 0);
        let hi = queue_key(destination, up_to);
        let mut batch = sled::Batch::default();
        let mut n = 0u64;
        for k in queue.range(lo..=hi).keys() {
            batch.remove(k.or_backend()?);
            n += 1;
        }
        queue.apply_batch(batch).or_backend()?;
        self.outbound_size_count(destination, true)?;
        Ok(n)
    }

    /// The transaction in flight to `destination`, if any.
    pub fn outbound_in_flight(
        &self,
        destination: &ServerName,
    ) -> Result<Option<OutboundInFlight>, StoreError> {
        self.t()
            .outbound
            .state
            .get(state_key(destination, STATE_IN_FLIGHT))
            .or_backend()?
            .map(|v| decode_record(&v, "outbound_state"))
            .transpose()
    }

    /// Records the transaction about to be sent to `destination` (replacing any other). Call
    /// [`Store::sync`] before sending it, so that a retry after a restart reuses its id.
    pub fn outbound_begin(
        &self,
        destination: &ServerName,
        txn: &OutboundInFlight,
    ) -> Result<(), StoreError> {
        self.t()
            .outbound
            .state
            .insert(state_key(destination, STATE_IN_FLIGHT), encode_record(txn))
            .or_backend()?;
        Ok(())
    }

    /// Ends the transaction in flight to `destination` once it has been answered: removes the
    /// events in `done` (applied or refused for good) and forgets the transaction, atomically.
    /// Events of the transaction not in `done` stay queued for a later one.
    pub fn outbound_finish(
        &self,
        destination: &ServerName,
        done: &[u64],
    ) -> Result<(), StoreError> {
        self.outbound_remove(destination, done, true)
    }

    /// The backoff state of `destination` (default: no failures, no wait).
    pub fn outbound_backoff(
        &self,
        destination: &ServerName,
    ) -> Result<OutboundBackoff, StoreError> {
        Ok(self
            .t()
            .outbound
            .state
            .get(state_key(destination, STATE_BACKOFF))
            .or_backend()?
            .map(|v| decode_record(&v, "outbound_state"))
            .transpose()?
            .unwrap_or_default())
    }

    /// Sets the backoff state of `destination`; the default state removes the record.
    pub fn outbound_set_backoff(
        &self,
        destination: &ServerName,
        backoff: OutboundBackoff,
    ) -> Result<(), StoreError> {
        let state = &self.t().outbound.state;
        let key = state_key(destination, STATE_BACKOFF);
        if backoff == OutboundBackoff::default() {
            state.remove(key).or_backend()?;
        } else {
            state.insert(key, encode_record(&backoff)).or_backend()?;
        }
        Ok(())
    }

    /// Every destination ever queued to, in key order.
    pub fn outbound_peers(&self) -> Result<Vec<ServerName>, StoreError> {
        let mut out = Vec::new();
        for k in self.t().outbound.state.iter().keys() {
            let k = k.or_backend()?;
            if k.last() != Some(&STATE_SEQ) {
                continue;
            }
            let mut r = KeyReader::new(&k, "outbound_state");
            out.push(r.id()?);
        }
        Ok(out)
    }

    /// Destinations with queued events, in key order.
    pub fn outbound_destinations(&self) -> Result<Vec<ServerName>, StoreError> {
        let o = &self.t().outbound;
        let mut out = Vec::new();
        // Every destination ever queued to has a sequence record; those are few.
        for k in o.state.iter().keys() {
            let k = k.or_backend()?;
            if k.last() != Some(&STATE_SEQ) {
                continue;
            }
            let mut r = KeyReader::new(&k, "outbound_state");
            let destination: ServerName = r.id()?;
            r.array::<1>()?;
            r.end()?;
            if o.queue
                .scan_prefix(queue_prefix(&destination))
                .next()
                .transpose()
                .or_backend()?
                .is_some()
            {
                out.push(destination);
            }
        }
        Ok(out)
    }

    /// Number of events queued for `destination`.
    pub fn outbound_len(&self, destination: &ServerName) -> Result<usize, StoreError> {
        let mut n = 0;
        for k in self
            .t()
            .outbound
            .queue
            .scan_prefix(queue_prefix(destination))
            .keys()
        {
            k.or_backend()?;
            n += 1;
        }
        Ok(n)
    }
}

/// The sequence number after a queue key's destination prefix.
fn read_seq(key: &[u8], prefix_len: usize) -> Result<u64, StoreError> {
    let rest = key
        .get(prefix_len..)
        .ok_or(StoreError::Corrupt { table: "outbound" })?;
    read_u64(rest, "outbound")
}

#[cfg(test)]
mod tests {
    use super::super::tests::{open, signed};
    use super::*;

    fn name(s: &str) -> ServerName {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn queue_survives_restart_with_state() {
        let (dir, store) = open();
        let b = name("b.example");
        let c = name("c.example:8448");
        for tag in 1..=3 {
            assert_eq!(
                store.outbound_enqueue(&b, &signed(tag)).unwrap(),
                u64::from(tag)
            );
        }
        store.outbound_enqueue(&c, &signed(9)).unwrap();
        let txn = OutboundInFlight {
            txn_id: "abc".into(),
            seqs: vec![1, 2],
        };
        store.outbound_begin(&b, &txn).unwrap();
        let backoff = OutboundBackoff {
            attempts: 3,
            next_attempt_ms: 77,
        };
        store.outbound_set_backoff(&b, backoff).unwrap();
        store.sync().await.unwrap();
        drop(store);

        let store = Store::reopen_for_tests(dir.path());
        assert_eq!(
            store.outbound_destinations().unwrap(),
            vec![b.clone(), c.clone()]
        );
        let batch = store.outbound_peek_batch(&b, 100).unwrap();
        assert_eq!(batch, vec![(1, signed(1)), (2, signed(2)), (3, signed(3))]);
        assert_eq!(store.outbound_peek_batch(&b, 2).unwrap().len(), 2);
        assert_eq!(store.outbound_in_flight(&b).unwrap(), Some(txn));
        assert_eq!(store.outbound_in_flight(&c).unwrap(), None);
        assert_eq!(store.outbound_backoff(&b).unwrap(), backoff);
        assert_eq!(
            store.outbound_backoff(&c).unwrap(),
            OutboundBackoff::default()
        );

        // Finishing removes only the events done and forgets the transaction.
        store.outbound_finish(&b, &[1]).unwrap();
        assert_eq!(store.outbound_in_flight(&b).unwrap(), None);
        assert_eq!(
            store.outbound_events(&b, &[1, 2]).unwrap(),
            vec![(2, signed(2))]
        );
        // Sequence numbers are never reused, even once the queue is empty.
        assert_eq!(store.outbound_ack(&b, 3).unwrap(), 2);
        assert_eq!(store.outbound_len(&b).unwrap(), 0);
        assert_eq!(store.outbound_destinations().unwrap(), vec![c.clone()]);
        assert_eq!(store.outbound_enqueue(&b, &signed(4)).unwrap(), 4);
        store
            .outbound_set_backoff(&b, OutboundBackoff::default())
            .unwrap();
        assert_eq!(
            store.outbound_backoff(&b).unwrap(),
            OutboundBackoff::default()
        );
        // Another destination's queue is untouched.
        assert_eq!(store.outbound_len(&c).unwrap(), 1);
    }

    #[tokio::test]
    async fn bounds_sizes_and_coalesced_cosignatures() {
        let (_dir, store) = open();
        let b = name("b.example");
        let topic = TopicId::random(&name("a.example"));
        let one = signed(1);
        let len = encode_record(&one).len() as u64;
        let two = QueueBounds {
            events: 2,
            bytes: u64::MAX,
        };
        assert_eq!(
            store.outbound_enqueue_bounded(&b, &one, two, None).unwrap(),
            Some(1)
        );
        // A cosignature replaces the one queued before it for the same topic.
        let co = |tag| store.outbound_enqueue_bounded(&b, &signed(tag), two, Some(&topic));
        assert_eq!(co(2).unwrap(), Some(2));
        assert_eq!(co(3).unwrap(), Some(3));
        assert_eq!(store.outbound_size(&b).unwrap(), (2, 2 * len));
        assert_eq!(store.outbound_events(&b, &[1, 2, 3]).unwrap().len(), 2);
        // Full: nothing more is queued, but a cosignature still replaces its predecessor.
        assert_eq!(
            store.outbound_enqueue_bounded(&b, &one, two, None).unwrap(),
            None
        );
        assert_eq!(co(4).unwrap(), Some(4));
        // One in flight is not replaced (a retry must send exactly it); then the bound holds.
        store
            .outbound_begin(
                &b,
                &OutboundInFlight {
                    txn_id: "t".into(),
                    seqs: vec![4],
                },
            )
            .unwrap();
        assert_eq!(co(6).unwrap(), None);
        let by_bytes = QueueBounds {
            events: 10,
            bytes: 3 * len,
        };
        assert_eq!(
            store
                .outbound_enqueue_bounded(&b, &one, by_bytes, None)
                .unwrap(),
            Some(5)
        );
        assert_eq!(
            store
                .outbound_enqueue_bounded(&b, &one, by_bytes, None)
                .unwrap(),
            None
        );
        // A cosignature too large for the room its predecessor leaves changes nothing: the
        // predecessor stays queued and the size with it.
        let c = name("c.example");
        let room = QueueBounds {
            events: 10,
            bytes: 2 * len,
        };
        let on_c = |e: &SignedBytes| store.outbound_enqueue_bounded(&c, e, room, Some(&topic));
        assert_eq!(on_c(&one).unwrap(), Some(1));
        assert_eq!(
            store
                .outbound_enqueue_bounded(&c, &one, room, None)
                .unwrap(),
            Some(2)
        );
        let big = SignedBytes(
            vec![7; 4 * len as usize],
            rendezvous_protocol::crypto::Signature([7; 64]),
        );
        assert_eq!(on_c(&big).unwrap(), None);
        assert_eq!(store.outbound_len(&c).unwrap(), 2);
        assert_eq!(store.outbound_size(&c).unwrap(), (2, 2 * len));
        // Removing keeps the size; the head outside the transaction in flight can be dropped.
        store.outbound_finish(&b, &[4]).unwrap();
        assert_eq!(store.outbound_size(&b).unwrap(), (2, 2 * len));
        let gone = store.outbound_drop_head(&b, |e| *e == signed(1)).unwrap();
        assert_eq!(gone.len(), 2);
        assert_eq!(store.outbound_size(&b).unwrap(), (0, 0));
        assert_eq!(store.outbound_len(&b).unwrap(), 0);
    }
}
