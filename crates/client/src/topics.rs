//! Topic creation, changes and sending (`protocol.md` §6–7, `client-api.md` §6).
//!
//! Every change is built with [`ChangeBuilder`] on the state this device replayed and verified
//! itself, so the admin applies exactly the rules every member checks.

use awc::http::Method;

use super::reader::{Inclusion, Replay, topic_path};
use super::{Client, ClientError};
use rendezvous_protocol::api::{
    AppendResponse, Body, ClaimTopicKeysRequest, ClaimTopicKeysResponse, ErrorCode, TopicsResponse,
};
use rendezvous_protocol::certs::TopicKeyCert;
use rendezvous_protocol::crypto::Randomness;
use rendezvous_protocol::devices::topic_keys::verify_cert;
use rendezvous_protocol::directory::DirectoryError;
use rendezvous_protocol::ids::{Epoch, TopicId, UserId};
use rendezvous_protocol::message::encrypt;
use rendezvous_protocol::topic::{
    Action, ChangeBuilder, History, HostKey, MemberSpec, Role, leaf_data_for_change,
};
use rendezvous_protocol::wire::Signed;

/// A topic as `GET /v1/topics` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicEntry {
    /// The topic.
    pub topic: TopicId,
    /// Its log size.
    pub size: u64,
    /// The user's role.
    pub role: Role,
    /// Current epoch.
    pub epoch: u32,
}

/// How many times a change is built and posted before a `stale_change` answer is given up on.
pub const CHANGE_ATTEMPTS: usize = 3;

impl Client {
    /// Claims one Topic Key per user and checks each: the registration is self-signed by the
    /// user's Identity Key and names the user, the certificate is signed by that key and names the
    /// user. For this user, the Identity Key must be our own; for every other user, the one its
    /// homeserver's directory binds, as this device accepted it (`directory.md` §6.1: looked up
    /// first).
    async fn claim_members(
        &mut self,
        members: &[(UserId, Role)],
    ) -> Result<Vec<MemberSpec>, ClientError> {
        let mut bindings = Vec::with_capacity(members.len());
        for (user, _) in members {
            if *user != self.user {
                let binding = self
                    .lookup_identity(user)
                    .await
                    .map_err(|e| no_such_user(e, std::iter::once(user)))?;
                bindings.push((user.clone(), binding.identity_key));
            }
        }
        let request = ClaimTopicKeysRequest {
            users: members.iter().map(|(u, _)| u.clone()).collect(),
        };
        let answer: ClaimTopicKeysResponse = self
            .authed(
                Method::POST,
                "/v1/topic-keys/claim",
                Some(request.to_cbor()),
            )
            .await
            .map_err(|e| no_such_user(e, &request.users))?;
        let mut specs = Vec::with_capacity(members.len());
        for (user, role) in members {
            let claimed = answer
                .keys
                .iter()
                .find(|k| k.user == *user)
                .ok_or_else(|| ClientError::NoTopicKeyLeft(user.to_string()))?;
            let identity_key =
                super::account::verify_registration(claimed.registration.clone(), user)?;
            let expected = match bindings.iter().find(|(u, _)| u == user) {
                Some((_, key)) => key,
                None => self.identity.public(),
            };
            if identity_key != *expected {
                return Err(DirectoryError::Mismatch {
                    user: user.to_string(),
                    reason: "the topic key claim names another identity key than the directory \
                             binds"
                        .into(),
                }
                .into());
            }
            let cert = Signed::<TopicKeyCert>::from_signed_bytes(claimed.topic_key_cert.clone())
                .map_err(|error| ClientError::Malformed {
                    what: format!("topic key certificate of {user}"),
                    error,
                })?;
            verify_cert(cert.clone(), &identity_key, user)?;
            specs.push(MemberSpec {
                user: user.clone(),
                identity_key,
                role: *role,
                topic_key_cert: cert,
            });
        }
        Ok(specs)
    }

    /// Creates a topic hosted on the homeserver with this user as admin (member 0) and `members`
    /// (other users with their roles; readers may only read).
    pub async fn create_topic(
        &mut self,
        members: &[(UserId, Role)],
        history: History,
    ) -> Result<TopicId, ClientError> {
        let mut all = vec![(self.user.clone(), Role::Admin)];
        for (user, role) in members {
            if all.iter().any(|(u, _)| u == user) {
                return Err(ClientError::InvalidInput(format!("{user} is listed twice")));
            }
            all.push((user.clone(), *role));
        }
        // Topic Keys made by our other devices arrive through the inbox.
        self.sync_inbox().await?;
        let specs = self.claim_members(&all).await?;
        let my_key = self.own_topic_key(&specs[0])?;
        let topic = TopicId::random(&self.server);
        // The create names this server's current key (its rotations followed first,
        // `tag-log.md` §7.6): every member and mirror pins it from entry 0.
        let server = self.server.clone();
        let host_key = HostKey::of(self.follow_rotations(&server).await?.current());
        let (outcome, key) = ChangeBuilder::create(&topic, &my_key, history, specs, host_key)
            .build(self.now(), &mut Randomness::Os)?;
        if let Some(key) = &key {
            self.keystore
                .save_message_key(&topic, outcome.change.epoch.get(), key)?;
        }
        let answer: AppendResponse = self
            .authed(Method::POST, "/v1/topics", Some(outcome.change.to_wire()))
            .await?;
        if answer.index != 0 {
            return Err(ClientError::Misbehaved(format!(
                "topic create logged at index {}, not 0",
                answer.index
            )));
        }
        let leaf = leaf_data_for_change(outcome.change.signed_bytes());
        self.check_append(&topic, &answer, &leaf).await?;
        Ok(topic)
    }

    /// The private Topic Key of our own member spec.
    fn own_topic_key(
        &self,
        spec: &MemberSpec,
    ) -> Result<rendezvous_protocol::crypto::TopicKey, ClientError> {
        let cert = spec
            .topic_key_cert
            .clone()
            .verify(self.identity.public())
            .map_err(|e| ClientError::Misbehaved(format!("own topic key certificate: {e}")))?;
        let id = cert
            .topic_key()
            .map_err(|error| ClientError::Malformed {
                what: "own topic key certificate".into(),
                error,
            })?
            .key_id();
        Ok(self
            .keystore
            .topic_key(&id, self.identity.public())?
            .ok_or_else(|| ClientError::NoTopicKey {
                topic: "(new topic)".into(),
                key_id: id.to_hex(),
            })?
            .0)
    }

    /// Posts a change or message (`rest` is `/changes` or `/messages`). A topic hosted on
    /// another server may answer `202` with an empty body: the post is queued there
    /// ([`ClientError::Queued`]).
    async fn append(
        &mut self,
        topic: &TopicId,
        rest: &str,
        body: Vec<u8>,
    ) -> Result<AppendResponse, ClientError> {
        let path = topic_path(topic, rest);
        let bytes = self
            .authed_raw(Method::POST, &path, Some(body), AppendResponse::MAX_LEN)
            .await?;
        match AppendResponse::from_cbor(&bytes) {
            Ok(answer) => Ok(answer),
            Err(error) => match rendezvous_protocol::api::Empty::from_cbor(&bytes) {
                Ok(_) => Err(ClientError::Queued {
                    topic: topic.to_string(),
                    host: topic.server().to_string(),
                }),
                Err(_) => Err(ClientError::Malformed {
                    what: format!(
                        "reply when asked to {}",
                        super::http::operation(&Method::POST, &path)
                    ),
                    error,
                }),
            },
        }
    }

    /// The verified current state to write on: the replay without inclusion proofs, through
    /// the write gate ([`Replay::gate`]: complete, root recomputed, fresh, no evidence); its head
    /// is kept as this device's view before anything is encrypted or signed
    /// (`client-rules.md` C12, C3).
    async fn writable(&mut self, topic: &TopicId) -> Result<Replay, ClientError> {
        let replay = self.replay(topic, Inclusion::Skip, false).await?;
        replay.gate()?;
        let mut record = replay.record.clone();
        record.member = replay.me.map(|m| m.0);
        record.checkpoint = replay.view.latest().map(|c| c.to_note().into_string());
        self.keystore.save_topic(&record)?;
        Ok(replay)
    }

    /// Builds, signs and posts a change on the verified current state; built again on the new
    /// state when another entry took its position first (`stale_change`: a change is bound to
    /// the root at its position, `protocol.md` §7.2), at most [`CHANGE_ATTEMPTS`] times in all.
    async fn change(
        &mut self,
        topic: &TopicId,
        make: impl Fn(&Replay) -> Result<(Action, bool), ClientError>,
    ) -> Result<u64, ClientError> {
        let mut attempt = 1;
        loop {
            match self.change_once(topic, &make).await {
                Err(e) if e.code() == Some(ErrorCode::StaleChange) && attempt < CHANGE_ATTEMPTS => {
                    attempt += 1;
                }
                done => return done,
            }
        }
    }

    /// One attempt of [`Self::change`].
    async fn change_once(
        &mut self,
        topic: &TopicId,
        make: &impl Fn(&Replay) -> Result<(Action, bool), ClientError>,
    ) -> Result<u64, ClientError> {
        self.sync_inbox().await?;
        let replay = self.writable(topic).await?;
        let state = replay.state()?;
        let me = replay.me(&self.user)?;
        let my_key = replay.my_key()?;
        let (action, share_history) = make(&replay)?;
        let current = replay.keyring.message_key(state.epoch());
        let history: Vec<(Epoch, &rendezvous_protocol::crypto::MessageKey)> =
            if share_history && state.history() == History::Shared {
                replay
                    .keyring
                    .epochs()
                    .filter(|e| *e < state.epoch())
                    .filter_map(|e| replay.keyring.message_key(e).map(|k| (e, k)))
                    .collect()
            } else {
                Vec::new()
            };
        // Signed over the root of the verified head it is built on (`protocol.md` §7.2).
        let (outcome, key) = ChangeBuilder::new(state, replay.checkpoint.root, me, my_key, action)
            .current_key(current)
            .history_keys(&history)
            .build(self.now(), &mut Randomness::Os)?;
        if let Some(key) = &key {
            self.keystore
                .save_message_key(topic, outcome.change.epoch.get(), key)?;
        }
        let answer = self
            .append(topic, "/changes", outcome.change.to_wire())
            .await?;
        let leaf = leaf_data_for_change(outcome.change.signed_bytes());
        self.check_append(topic, &answer, &leaf).await?;
        Ok(answer.index.get())
    }

    /// Adds members. In a `shared` topic they also receive the keys of the older epochs this
    /// device holds, so they read the messages from before they joined (`protocol.md` §7.3,
    /// §9.4); [`Self::add_members_without_history`] gives them only the current epoch's.
    pub async fn add_members(
        &mut self,
        topic: &TopicId,
        members: &[(UserId, Role)],
    ) -> Result<u64, ClientError> {
        self.add(topic, members, true).await
    }

    /// Adds members with only the current epoch's key (`rdv topic add --no-history`): in a
    /// `shared` topic they read from the current epoch on. In a `protected` topic this is what
    /// every add does.
    pub async fn add_members_without_history(
        &mut self,
        topic: &TopicId,
        members: &[(UserId, Role)],
    ) -> Result<u64, ClientError> {
        self.add(topic, members, false).await
    }

    async fn add(
        &mut self,
        topic: &TopicId,
        members: &[(UserId, Role)],
        share_history: bool,
    ) -> Result<u64, ClientError> {
        let specs = self.claim_members(members).await?;
        self.change(topic, move |_| {
            Ok((Action::Add(specs.clone()), share_history))
        })
        .await
    }

    /// Removes members (a new epoch for everyone who stays).
    pub async fn remove_members(
        &mut self,
        topic: &TopicId,
        users: &[UserId],
    ) -> Result<u64, ClientError> {
        self.change(topic, |replay| {
            let state = replay.state()?;
            let indices = users
                .iter()
                .map(|u| {
                    state.member_of(u).ok_or_else(|| ClientError::NotAMember {
                        topic: topic.to_string(),
                        user: u.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((Action::Remove(indices), false))
        })
        .await
    }

    /// Changes a member's role.
    pub async fn set_role(
        &mut self,
        topic: &TopicId,
        user: &UserId,
        role: Role,
    ) -> Result<u64, ClientError> {
        self.change(topic, |replay| {
            let member =
                replay
                    .state()?
                    .member_of(user)
                    .ok_or_else(|| ClientError::NotAMember {
                        topic: topic.to_string(),
                        user: user.to_string(),
                    })?;
            Ok((Action::SetRole(member, role), false))
        })
        .await
    }

    /// Moves this user's membership of `topic` to its current Identity Key and a new Topic Key
    /// (`protocol.md` §7.2, after an identity rotation, `directory.md` §8): any role, the same
    /// role, a new epoch whose key only the new Topic Key opens for this user. Returns the
    /// change's log index, or `None` when the membership is already under the current key.
    pub async fn move_topic(&mut self, topic: &TopicId) -> Result<Option<u64>, ClientError> {
        let replay = self.writable(topic).await?;
        let state = replay.state()?;
        let me = replay.me(&self.user)?;
        let member = state.member(me).ok_or_else(|| ClientError::NotAMember {
            topic: topic.to_string(),
            user: self.user.to_string(),
        })?;
        if member.identity_key == *self.identity.public() {
            return Ok(None);
        }
        let role = member.role;
        let cert = self.make_own_topic_key().await?;
        let spec = rendezvous_protocol::topic::MemberSpec {
            user: self.user.clone(),
            identity_key: self.identity.public().clone(),
            role,
            topic_key_cert: cert.unverified(),
        };
        self.change(topic, move |_| {
            Ok((Action::Move(Box::new(spec.clone())), false))
        })
        .await
        .map(Some)
    }

    /// [`Self::move_topic`] for every topic of this user's (after a rotation): each topic with
    /// its outcome, in the order `GET /v1/topics` lists them.
    pub async fn move_topics(
        &mut self,
    ) -> Result<Vec<(TopicId, Result<Option<u64>, ClientError>)>, ClientError> {
        let mut moved = Vec::new();
        for t in self.topics().await? {
            let outcome = self.move_topic(&t.topic).await;
            moved.push((t.topic, outcome));
        }
        Ok(moved)
    }

    /// Starts a new epoch for the same members.
    pub async fn rekey(&mut self, topic: &TopicId) -> Result<u64, ClientError> {
        self.change(topic, |_| Ok((Action::Rekey, false))).await
    }

    /// Encrypts, tags, signs and posts a message for the topic's current epoch. Returns its log
    /// index.
    pub async fn send(&mut self, topic: &TopicId, text: &[u8]) -> Result<u64, ClientError> {
        let replay = self.writable(topic).await?;
        let state = replay.state()?;
        let me = replay.me(&self.user)?;
        let role = state.member(me).map(|m| m.role);
        if !role.is_some_and(Role::can_post) {
            return Err(ClientError::MayNotPost {
                topic: topic.to_string(),
                user: self.user.to_string(),
            });
        }
        let key = replay.my_key()?;
        let keys =
            replay
                .keyring
                .epoch_keys(state.epoch())
                .ok_or_else(|| ClientError::NoMessageKey {
                    topic: topic.to_string(),
                    epoch: state.epoch().get(),
                })?;
        let seen = replay.checkpoint.size;
        // Signed over the root of the verified head (`protocol.md` §6.4), which is not sent.
        let msg = encrypt(
            topic,
            keys,
            me,
            key.signing(),
            seen,
            &replay.checkpoint.root,
            text,
        )?;
        let answer = self.append(topic, "/messages", msg.to_wire()).await?;
        self.check_append(topic, &answer, &msg.leaf_data()).await?;
        Ok(answer.index.get())
    }

    /// The user's topics (`GET /v1/topics`).
    pub async fn topics(&mut self) -> Result<Vec<TopicEntry>, ClientError> {
        let answer: TopicsResponse = self.authed(Method::GET, "/v1/topics", None).await?;
        answer
            .topics
            .into_iter()
            .map(|t| {
                Ok(TopicEntry {
                    role: t.role,
                    topic: t.topic,
                    size: t.size.get(),
                    epoch: t.epoch.get(),
                })
            })
            .collect()
    }
}

/// A `404 not_found` answer to a lookup or claim naming `users` as [`ClientError::NoSuchUser`]
/// (`client-api.md` §2, §4): the user does not exist, which is not a missing Topic Key. With one
/// user that is the user asked about; with several, the one the server's message names as a
/// whole word (so `@al:h` is not found inside `@val:h`). Any other error is passed on.
fn no_such_user<'a>(
    error: ClientError,
    users: impl IntoIterator<Item = &'a UserId>,
) -> ClientError {
    let ClientError::Api {
        code: ErrorCode::NotFound,
        message,
        ..
    } = &error
    else {
        return error;
    };
    let users: Vec<&UserId> = users.into_iter().collect();
    let named = |u: &&UserId| {
        message
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| ",;.()\"'`".contains(c)))
            .any(|w| w == u.as_str())
    };
    let user = match users.as_slice() {
        [only] => Some(*only),
        many => many.iter().copied().find(|u| named(u)),
    };
    match user {
        Some(user) => ClientError::NoSuchUser(user.to_string()),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::{ClientError, ErrorCode, UserId, no_such_user};

    fn not_found(message: &str) -> ClientError {
        ClientError::Api {
            what: "claim".into(),
            code: ErrorCode::NotFound,
            status: 404,
            message: message.into(),
        }
    }

    fn blamed(e: ClientError) -> Option<String> {
        match e {
            ClientError::NoSuchUser(u) => Some(u),
            _ => None,
        }
    }

    #[test]
    fn the_user_named_as_a_whole_word_is_blamed() {
        let al: UserId = "@al:h.example".parse().unwrap();
        let val: UserId = "@val:h.example".parse().unwrap();
        let users = [al.clone(), val.clone()];
        // `@al:h.example` is inside `@val:h.example`: only the whole word counts.
        let e = not_found("no such user: @val:h.example.");
        assert_eq!(blamed(no_such_user(e, &users)), Some(val.to_string()));
        let e = not_found("no such user (@al:h.example)");
        assert_eq!(blamed(no_such_user(e, &users)), Some(al.to_string()));
        // Naming nobody listed: the error passes on unchanged.
        let e = not_found("no such user @eve:h.example");
        assert_eq!(blamed(no_such_user(e, &users)), None);
        // One user asked about: that one, whatever the text.
        let e = not_found("not found");
        assert_eq!(blamed(no_such_user(e, [&al])), Some(al.to_string()));
        // Another code is not a missing user.
        let e = ClientError::Api {
            what: "claim".into(),
            code: ErrorCode::Invalid,
            status: 400,
            message: "@al:h.example".into(),
        };
        assert_eq!(blamed(no_such_user(e, [&al])), None);
    }
}
