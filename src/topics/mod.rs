//! The topic service: every topic this server hosts or mirrors, with the hosting server's side
//! of the topic state machine and the tag log (`federation-spec/protocol.md` §5–§7,
//! `federation-api.md` §9).
//!
//! [`TopicService`] owns hosting ([`hosted`]), mirroring ([`mirror`]), the append path of
//! creations, changes, posts and remote submits ([`append`], [`remote`]), durability and its
//! ordering ([`durable`]), fan-out to other servers ([`fanout`]), cosigning ([`cosign`]) and
//! the waiters of submitted posts ([`waiters`]) and the notice of a queued post refused later
//! ([`refused`]). The client API and the federation listener are
//! adapters over it; it reaches other servers only through the narrow [`Relay`] interface
//! that federation implements, and devices through [`Deliver`].
//!
//! Each topic is kept in memory as its state and the frontier of its tag log (O(log n)
//! hashes). An append checks the entry under the topic's lock, writes it in one atomic store
//! write, records it as pending, and releases the lock; the answer waits for the group flush
//! that makes it durable. Entries are pushed to connected devices in log order, once durable.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

mod append;
mod cosign;
mod durable;
mod error;
mod fanout;
mod fresh;
mod hosted;
mod ik_refusals;
mod mirror;
mod mirror_quota;
mod pinned;
mod refused;
mod relay;
mod remote;
mod service;
mod waiters;

pub use append::{Appended, NewEntry};
pub use error::{TopicError, TopicResult};
pub use mirror::Mirrored;
pub use relay::{Relay, RelayError};
pub use remote::{Submitted, Witnesses};
pub use service::TopicService;
pub use waiters::Landed;

use crate::store::Store;
use rendezvous_protocol::crypto::{IdentityPublicKey, ServerKey};
use rendezvous_protocol::ids::{TopicId, UserId};

/// Entries that became publishable, in log order, with the users to send them to.
#[derive(Debug)]
pub struct Publish {
    /// The topic.
    pub topic: TopicId,
    /// `(index, entry)` in order.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// Current members (user ids).
    pub members: Vec<UserId>,
    /// Entries were queued for other servers: flush before acknowledging, so that an
    /// acknowledged entry also reaches them after a crash (`federation-api.md` §9.2).
    pub queued_for_peers: bool,
}

/// Where durable entries go to reach members' devices (the push hub).
pub trait Deliver: Send + Sync {
    /// Sends `publish`'s entries to connected devices and wakes the others.
    fn deliver(&self, store: &Store, publish: &Publish);
}

/// Holds the Server Key that signs this server's checkpoints, cosignatures and events (the
/// server's identity).
pub trait ServerSigner: Send + Sync {
    /// The Server Key.
    fn server_key(&self) -> &ServerKey;
}

/// Identity Keys of users of other servers, fetched before an append that adds them.
pub type RemoteIdentities = HashMap<UserId, IdentityPublicKey>;

/// Entries a transaction mirrored, published once the store is durable: (topic, last entry,
/// leaf hashes).
type Unsynced = Vec<remote::UnsyncedEntry>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere while holding it; the data is still consistent
    // (every mutation is a single assignment after all checks), so go on with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
