//! Users with identity keys and topic keys, and topics they share, for tests of the protocol
//! rules without a server.

use std::collections::HashSet;

use rendezvous_protocol::certs::TopicKeyCert;
use rendezvous_protocol::crypto::{IdentityKey, Randomness, Suite, TopicKey};
use rendezvous_protocol::ids::{TopicId, UserId};
use rendezvous_protocol::message::{self, Message, MessageIn};
use rendezvous_protocol::tlog::Roots;
use rendezvous_protocol::topic::{
    Action, ChangeBuilder, ChangeOutcome, EpochKeyring, HostKey, MemberIndex, MemberSpec, Role,
    TopicState, leaf_data_for_change,
};
use rendezvous_protocol::wire::Signed;

pub const SUITE: Suite = Suite::X25519Sha256ChaCha20Poly1305;

/// A user with an identity key and one topic key for the topic under test.
pub struct User {
    pub id: UserId,
    pub ik: IdentityKey,
    pub tk: TopicKey,
    pub keys: EpochKeyring,
}

impl User {
    pub fn new(name: &str) -> User {
        User {
            id: format!("@{name}:a.example").parse().unwrap(),
            ik: IdentityKey::generate(),
            tk: TopicKey::generate(SUITE),
            keys: EpochKeyring::new(),
        }
    }

    pub fn spec(&self, role: Role) -> MemberSpec {
        MemberSpec {
            user: self.id.clone(),
            identity_key: self.ik.public().clone(),
            role,
            topic_key_cert: Signed::sign(
                TopicKeyCert::new(self.id.clone(), self.tk.public(), 0),
                &self.ik,
            )
            .unverified(),
        }
    }
}

/// alice (admin), bob (writer) and carol (reader) in a new topic with `history`.
pub fn three(history: rendezvous_protocol::topic::History) -> (User, User, User, Topic) {
    let mut a = User::new("alice");
    let mut b = User::new("bob");
    let mut c = User::new("carol");
    let t = Topic::create(
        &mut [&mut a, &mut b, &mut c],
        &[Role::Admin, Role::Writer, Role::Reader],
        history,
    );
    (a, b, c, t)
}

/// A topic with its log position, as every participant sees it.
pub struct Topic {
    pub id: TopicId,
    pub state: TopicState,
    pub tags: HashSet<rendezvous_protocol::message::MessageTag>,
    /// The signed create change, when the fixture made it.
    pub create: Option<Signed<rendezvous_protocol::topic::TopicChange>>,
    /// The root of the topic's log at every size (what signatures bind).
    pub roots: Roots,
}

/// The Server Key of the fixtures' hosting server `a.example` (fixed, so that tests signing
/// checkpoints for a fixture topic use the key its create names).
pub fn host_key() -> rendezvous_protocol::crypto::ServerKey {
    rendezvous_protocol::crypto::ServerKey::from_seed(&[0xa5; 32])
}

impl Topic {
    /// `users[0]` creates the topic with everyone in `roles`, hosted under [`host_key`].
    pub fn create(
        users: &mut [&mut User],
        roles: &[Role],
        history: rendezvous_protocol::topic::History,
    ) -> Topic {
        let id = TopicId::random(&"a.example".parse().unwrap());
        let members = users.iter().zip(roles).map(|(u, r)| u.spec(*r)).collect();
        let (outcome, key) = ChangeBuilder::create(
            &id,
            &users[0].tk,
            history,
            members,
            HostKey::of(host_key().public()),
        )
        .build(0, &mut Randomness::Os)
        .unwrap();
        assert!(key.is_some());
        let mut roots = Roots::new();
        roots
            .append(&leaf_data_for_change(outcome.change.signed_bytes()))
            .unwrap();
        let topic = Topic {
            id,
            state: outcome.next.clone(),
            tags: HashSet::new(),
            create: Some(outcome.change.unverified()),
            roots,
        };
        topic.deliver(users, &outcome);
        topic
    }

    /// Every user who is a member after the change takes its keys.
    pub fn deliver(&self, users: &mut [&mut User], outcome: &ChangeOutcome) {
        for u in users.iter_mut() {
            if let Some(me) = outcome.next.member_of(&u.id) {
                u.keys
                    .receive(&outcome.change, &outcome.next, me, &u.tk)
                    .unwrap();
            }
        }
    }

    /// Builds a change by `author` and applies it.
    pub fn change(
        &mut self,
        users: &mut [&mut User],
        author: usize,
        action: Action,
    ) -> ChangeOutcome {
        let me = self.state.member_of(&users[author].id).unwrap();
        let current = users[author]
            .keys
            .message_key(self.state.epoch())
            .map(|k| rendezvous_protocol::crypto::MessageKey::from_slice(k.as_bytes()).unwrap());
        let (outcome, _) = ChangeBuilder::new(
            &self.state,
            self.roots.root(),
            me,
            &users[author].tk,
            action,
        )
        .current_key(current.as_ref())
        .build(0, &mut Randomness::Os)
        .unwrap();
        self.state = outcome.next.clone();
        self.roots
            .append(&leaf_data_for_change(outcome.change.signed_bytes()))
            .unwrap();
        self.deliver(users, &outcome);
        outcome
    }

    /// `user` encrypts a message for the current epoch (not yet checked by anyone).
    pub fn compose(&self, user: &User, text: &[u8]) -> Vec<u8> {
        let me = self.state.member_of(&user.id).unwrap_or(MemberIndex(999));
        let keys = user
            .keys
            .epoch_keys(self.state.epoch())
            .expect("sender holds the current key");
        message::encrypt(
            &self.id,
            keys,
            me,
            user.tk.signing(),
            self.state.size(),
            &self.roots.root(),
            text,
        )
        .unwrap()
        .to_wire()
    }

    /// The hosting server's check and append.
    pub fn post(&mut self, wire: &[u8]) -> Result<Message, message::MessageError> {
        let msg = self
            .state
            .check_message(MessageIn::from_wire(wire)?, &self.tags, &self.roots)?;
        self.state.append_message(&msg)?;
        self.tags.insert(*msg.tag());
        self.roots.append(&msg.leaf_data()).unwrap();
        Ok(msg)
    }
}

/// What `user` reads from `msg`.
pub fn read(topic: &Topic, user: &User, msg: &Message) -> Result<Vec<u8>, message::MessageError> {
    let keys = user
        .keys
        .epoch_keys(msg.header().epoch)
        .ok_or(message::MessageError::UnknownEpoch(msg.header().epoch))?;
    msg.open(&topic.id, keys).map(|p| p.to_vec())
}
