//! The topic service: the one owner of every topic this server hosts or mirrors, of the
//! append path and its durability, of fan-out, cosigning and the waiters of submitted posts.
//! The client API and the federation listener are adapters over it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::error::{TopicError, TopicResult};
use super::hosted::Topic;
use super::relay::Relay;
use super::waiters::SubmitWaiters;
use super::{Deliver, ServerSigner, Unsynced, lock};
use crate::clock::Clock;
use crate::store::{Store, TopicNodes};
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::ids::{ServerName, TopicId, UserId};
use rendezvous_protocol::tlog::{LogHash, Tree, TreeSize};
use rendezvous_protocol::topic::TopicState;

/// Every topic this server hosts or mirrors, and what appending to them needs.
pub struct TopicService {
    pub(super) server_name: ServerName,
    pub(super) store: Store,
    /// The Server Key signs checkpoints, cosignatures and events.
    signer: Arc<dyn ServerSigner>,
    /// Where durable entries go to reach members' devices.
    pub(super) deliver: Arc<dyn Deliver>,
    /// Federation; `None` when it is off.
    relay: Option<Arc<dyn Relay>>,
    topics: Mutex<HashMap<TopicId, Arc<Mutex<Topic>>>>,
    /// Posts submitted to other servers' topics, awaiting their entries.
    pub(super) waiters: SubmitWaiters,
    /// Topics whose cosigning is scheduled.
    pub(super) cosigning: Mutex<HashSet<TopicId>>,
    /// Per origin (whose transactions the inbound side applies one at a time): entries
    /// mirrored by its transaction in progress, published by [`TopicService::settle`] after
    /// the transaction's one sync instead of one sync per event.
    pub(super) unsynced: Mutex<HashMap<ServerName, Unsynced>>,
    /// What checkpoints, cosignatures and events are dated by, and heads' ages measured by.
    pub(super) clock: Clock,
    /// Mirrored topics per hosting server, counted from the store on first use.
    pub(super) mirrors_by_host: Mutex<Option<HashMap<ServerName, u64>>>,
}

impl std::fmt::Debug for TopicService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicService")
            .field("server_name", &self.server_name)
            .field("federation", &self.relay.is_some())
            .finish_non_exhaustive()
    }
}

impl TopicService {
    /// The topics of server `server_name`, stored in `store`, signed with `signer`'s key;
    /// entries reach devices through `deliver`, other servers through `relay` (`None`:
    /// federation is off).
    pub fn new(
        server_name: ServerName,
        store: Store,
        signer: Arc<dyn ServerSigner>,
        deliver: Arc<dyn Deliver>,
        relay: Option<Arc<dyn Relay>>,
        clock: Clock,
    ) -> Self {
        TopicService {
            server_name,
            store,
            signer,
            deliver,
            relay,
            topics: Mutex::new(HashMap::new()),
            waiters: SubmitWaiters::default(),
            cosigning: Mutex::new(HashSet::new()),
            unsynced: Mutex::new(HashMap::new()),
            clock,
            mirrors_by_host: Mutex::new(None),
        }
    }

    pub(super) fn server_key(&self) -> &ServerKey {
        self.signer.server_key()
    }

    /// Federation, or `invalid` naming what `needs` it.
    pub(super) fn relay(&self, needs: impl FnOnce() -> String) -> TopicResult<&dyn Relay> {
        self.relay
            .as_deref()
            .ok_or_else(|| TopicError::FederationOff { needs: needs() })
    }

    /// Federation, if it is on.
    pub(super) fn relay_if_on(&self) -> Option<&dyn Relay> {
        self.relay.as_deref()
    }

    /// The hosted or mirrored topic, loaded from the store on first use.
    pub(super) fn get(&self, topic: &TopicId) -> TopicResult<Arc<Mutex<Topic>>> {
        if let Some(t) = lock(&self.topics).get(topic) {
            return Ok(t.clone());
        }
        let loaded = Arc::new(Mutex::new(Topic::load(
            &self.store,
            topic,
            &self.server_name,
        )?));
        Ok(lock(&self.topics)
            .entry(topic.clone())
            .or_insert(loaded)
            .clone())
    }

    /// Puts a topic just created (or a mirror just started) in the map, unless one is there.
    pub(super) fn insert_new(&self, topic: &TopicId, t: Arc<Mutex<Topic>>) -> TopicResult<()> {
        let mut map = lock(&self.topics);
        if map.contains_key(topic) {
            return Err(TopicError::MirrorRace);
        }
        map.insert(topic.clone(), t);
        Ok(())
    }

    /// Takes a topic out of the map again (its first writes failed).
    pub(super) fn forget(&self, topic: &TopicId) {
        lock(&self.topics).remove(topic);
    }

    /// Replaces the map's entry for a topic just created here.
    pub(super) fn put(&self, topic: &TopicId, t: Topic) {
        lock(&self.topics).insert(topic.clone(), Arc::new(Mutex::new(t)));
    }

    /// A snapshot of the topic's state.
    pub fn state(&self, topic: &TopicId) -> TopicResult<TopicState> {
        let t = self.get(topic)?;
        let t = lock(&t);
        Ok(t.log().state.clone())
    }

    /// The topic's state, if `user` is a current member.
    pub fn member_state(&self, topic: &TopicId, user: &UserId) -> TopicResult<TopicState> {
        let s = self.state(topic)?;
        if s.member_of(user).is_none() {
            return Err(TopicError::NotAMember);
        }
        Ok(s)
    }

    /// The size of the topic's durable log (what checkpoints may vouch for).
    pub fn durable_size(&self, topic: &TopicId) -> TopicResult<u64> {
        let t = self.get(topic)?;
        Ok(lock(&t).log().durable.size().0)
    }

    /// The root of the topic's tag log at `size`, if the durable log is that large.
    pub fn root_at(&self, topic: &TopicId, size: TreeSize) -> TopicResult<Option<LogHash>> {
        let t = self.get(topic)?;
        let durable = lock(&t).log().durable.size();
        if size > durable {
            return Ok(None);
        }
        let tree = Tree::open(TopicNodes::new(&self.store, topic), durable)
            .map_err(|e| TopicError::internal("tag log", e))?;
        tree.root_at(size)
            .map(Some)
            .map_err(|e| TopicError::internal("tag log", e))
    }

    /// A topic hosted here in which `origin` has a member: what a peer's query may read
    /// (`federation-api.md` §5).
    pub fn participant(&self, topic: &TopicId, origin: &ServerName) -> TopicResult<()> {
        if topic.server() != self.server_name {
            return Err(TopicError::NotHostedHere {
                topic: topic.clone(),
            });
        }
        let s = self.state(topic)?;
        if !s.members().values().any(|m| m.user.server() == *origin) {
            return Err(TopicError::NoMember {
                server: origin.clone(),
                topic: topic.clone(),
            });
        }
        Ok(())
    }
}
