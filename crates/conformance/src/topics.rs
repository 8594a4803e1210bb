//! A topic (`client-api.md` §6, `protocol.md` §6–§8): created by the vectors' user with its
//! vector Topic Key, one message posted, the log read back and every checkpoint checked with
//! the vectors' Server Key.

use awc::http::Method;
use rendezvous_protocol::api::{
    AppendResponse, CheckpointResponse, EntriesResponse, encode_segment,
};
use rendezvous_protocol::certs::TopicKeyCert;
use rendezvous_protocol::crypto::{MessageKey, Randomness, VectorRng};
use rendezvous_protocol::ids::{Epoch, MemberIndex};
use rendezvous_protocol::message::{self, Message};
use rendezvous_protocol::tlog::{CheckpointNote, Frontier, LogHash, TreeSize};
use rendezvous_protocol::topic::{
    ChangeBuilder, ChangeOutcome, History, HostKey, LogEntry, MemberSpec, Role,
    leaf_data_for_change,
};
use rendezvous_protocol::wire::Signed;

use crate::report::{Report, Target, flip_last, same};
use crate::vectors::Vectors;

/// The log as the runner wrote it: leaf data and entry wire forms, in order.
struct Written {
    leaves: Frontier,
    entries: Vec<Vec<u8>>,
}

impl Written {
    fn new() -> Self {
        Written {
            leaves: Frontier::new(),
            entries: Vec::new(),
        }
    }

    fn push(&mut self, leaf: &[u8], entry: Vec<u8>) -> Result<(), String> {
        self.leaves.append(leaf).map_err(|e| e.to_string())?;
        self.entries.push(entry);
        Ok(())
    }

    fn root(&self) -> LogHash {
        self.leaves.root()
    }
}

/// `note` is signed by the vectors' Server Key under the server's name, for exactly `log`.
fn check_note(v: &Vectors, note: &CheckpointNote, log: &Written) -> Result<(), String> {
    let signed = note.signed().map_err(|e| format!("checkpoint note: {e}"))?;
    let checkpoint = signed
        .verify(&v.server_key, v.server.as_str())
        .map_err(|e| format!("checkpoint not signed by the vectors' server key: {e}"))?;
    let want = TreeSize(log.entries.len() as u64);
    if checkpoint.size != want || checkpoint.root != log.root() {
        return Err(format!(
            "checkpoint size {} root {}, expected size {} root {}",
            checkpoint.size.0,
            hex::encode(checkpoint.root.0),
            want.0,
            hex::encode(log.root().0)
        ));
    }
    Ok(())
}

fn check_append(v: &Vectors, answer: &AppendResponse, log: &Written) -> Result<(), String> {
    let want = log.entries.len() as u64 - 1;
    if answer.index.0 != want {
        return Err(format!("logged at {}, expected {want}", answer.index.0));
    }
    check_note(v, &answer.checkpoint, log)
}

fn build_create(v: &Vectors) -> Result<(ChangeOutcome, MessageKey), String> {
    let cert = Signed::<TopicKeyCert>::from_wire(&v.topic_key_cert).map_err(|e| e.to_string())?;
    let spec = MemberSpec {
        user: v.user.clone(),
        identity_key: v.identity.public().clone(),
        role: Role::Admin,
        topic_key_cert: cert,
    };
    let mut rng = VectorRng::from_seed(v.create_rng);
    let builder = ChangeBuilder::create(
        &v.topic,
        &v.topic_key,
        History::Shared,
        vec![spec],
        HostKey::of(&v.server_key),
    );
    match builder.build(v.created, &mut Randomness::Fixed(&mut rng)) {
        Ok((outcome, Some(key))) => Ok((outcome, key)),
        Ok((_, None)) => Err("a create without a message key".into()),
        Err(e) => Err(format!("building the create: {e}")),
    }
}

fn build_message(v: &Vectors, key: &MessageKey, log: &Written) -> Result<Message, String> {
    let keys = key.epoch_keys(&v.topic, Epoch(0));
    let mut rng = VectorRng::from_seed(v.message_rng);
    let seen = TreeSize(log.entries.len() as u64);
    message::encrypt_with(
        &v.topic,
        &keys,
        MemberIndex(0),
        v.topic_key.signing(),
        (seen, &log.root()),
        &v.plaintext,
        &mut Randomness::Fixed(&mut rng),
    )
    .map_err(|e| format!("building the message: {e}"))
}

/// Create, message, replay and forgery refused, read back, checkpoint.
pub async fn topic(t: &Target, v: &Vectors, token: &str, r: &mut Report<'_>) {
    let Some((create, key)) = r.check("topic_build", build_create(v)) else {
        return;
    };
    let mut log = Written::new();
    let created = async {
        log.push(
            &leaf_data_for_change(create.change.signed_bytes()),
            LogEntry::change(&create.change).to_wire(),
        )?;
        let answer: AppendResponse = t
            .call(
                Method::POST,
                "/v1/topics",
                Some(create.change.to_wire()),
                Some(token),
            )
            .await?;
        check_append(v, &answer, &log)
    };
    if r.check("topic_create", created.await).is_none() {
        return r.skip("topic_message", "topic_create");
    }
    let path = |rest: &str| format!("/v1/topics/{}{rest}", encode_segment(v.topic.as_str()));
    let Some(msg) = r.check("message_build", build_message(v, &key, &log)) else {
        return;
    };
    let forged = flip_last(&msg.to_wire());
    let refused = t
        .refused(
            Method::POST,
            &path("/messages"),
            Some(forged),
            Some(token),
            (400, "bad_signature"),
        )
        .await;
    r.check("message_bad_signature", refused);
    let posted = async {
        log.push(&msg.leaf_data(), LogEntry::message(&msg).to_wire())?;
        let answer: AppendResponse = t
            .call(
                Method::POST,
                &path("/messages"),
                Some(msg.to_wire()),
                Some(token),
            )
            .await?;
        check_append(v, &answer, &log)
    };
    if r.check("message_post", posted.await).is_none() {
        return r.skip("entries_read", "message_post");
    }
    let again = t
        .refused(
            Method::POST,
            &path("/messages"),
            Some(msg.to_wire()),
            Some(token),
            (409, "replayed"),
        )
        .await;
    r.check("message_replayed", again);
    read_back(t, v, token, &log, r).await;
}

/// The log read back entry by entry, and its head.
async fn read_back(t: &Target, v: &Vectors, token: &str, log: &Written, r: &mut Report<'_>) {
    let path = |rest: &str| format!("/v1/topics/{}{rest}", encode_segment(v.topic.as_str()));
    let read = async {
        let answer: EntriesResponse = t
            .call(Method::GET, &path("/entries?from=0"), None, Some(token))
            .await?;
        if answer.entries.len() != log.entries.len() {
            return Err(format!(
                "{} entries, expected {}",
                answer.entries.len(),
                log.entries.len()
            ));
        }
        for (i, (got, want)) in answer.entries.iter().zip(&log.entries).enumerate() {
            if got.index.0 != i as u64 {
                return Err(format!("entry {i} answered as index {}", got.index.0));
            }
            same(&format!("entry {i}"), &got.entry, want)?;
        }
        Ok(())
    };
    r.check("entries_read", read.await);
    let head = async {
        let answer: CheckpointResponse = t
            .call(Method::GET, &path("/checkpoint"), None, Some(token))
            .await?;
        check_note(v, &answer.checkpoint, log)
    };
    r.check("checkpoint", head.await);
    let unauthenticated = t
        .refused(
            Method::GET,
            &path("/checkpoint"),
            None,
            None,
            (401, "unauthorized"),
        )
        .await;
    r.check("checkpoint_without_token", unauthenticated);
}
