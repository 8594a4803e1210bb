//! Setup through the real client library: users, their tokens, and the keys a poster needs.

use std::path::Path;

use awc::http::Method;
use futures_util::future::join_all;

use rendezvous_client::Client;
use rendezvous_client::http::{Http, encode_segment};
use rendezvous_protocol::api::EntriesResponse;
use rendezvous_protocol::crypto::{MessageKey, TopicKey};
use rendezvous_protocol::ids::{TopicId, UserId};
use rendezvous_protocol::topic::{LogEntry, Replayer};

use crate::Res;
use crate::server::Server;

pub(crate) async fn register_users(
    server: &Server,
    dir: &Path,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> Res<Vec<Client>> {
    let trust = server.trust()?;
    // Registration is CPU-bound on this one thread (key generation): many at once only make
    // TLS handshakes wait past the server's handshake timeout.
    let concurrency = concurrency.clamp(1, 4);
    let mut out = Vec::with_capacity(count);
    let ids: Vec<usize> = (0..count).collect();
    for chunk in ids.chunks(concurrency.max(1)) {
        let mut pins = Vec::with_capacity(chunk.len());
        for _ in chunk {
            pins.push(server.pin().await?);
        }
        let futs = chunk.iter().zip(pins).map(|(i, pin)| {
            let trust = trust.clone();
            async move {
                let user: UserId = format!("@{prefix}{i}:{}", server.name)
                    .parse()
                    .map_err(|e| format!("user id: {e}"))?;
                Client::register(
                    &dir.join(format!("{prefix}{i}")),
                    &crate::clients::passphrase(),
                    &server.url,
                    trust,
                    &pin,
                    &user,
                )
                .await
                .map_err(|e| format!("register {user}: {e}"))
            }
        });
        for r in join_all(futs).await {
            out.push(r?);
        }
    }
    Ok(out)
}

/// The passphrase of the keystores rdv-load makes: they are throwaway load-test accounts, locked
/// all the same because the client library has no unlocked keystore (`devices.md` §5.5).
pub(crate) fn passphrase() -> rendezvous_client::Passphrase {
    rendezvous_client::Passphrase::new("rdv-load throwaway keystore")
}

pub(crate) fn token_of(client: &Client) -> Res<String> {
    client
        .keystore()
        .token()
        .map_err(|e| e.to_string())?
        .map(|t| t.as_str().to_owned())
        .ok_or_else(|| format!("{} has no token", client.user()))
}

pub(crate) fn topic_path(topic: &TopicId, rest: &str) -> String {
    format!("/v1/topics/{}{rest}", encode_segment(topic.as_str()))
}

/// One member of one topic, ready to post: everything `message::encrypt` needs.
pub(crate) struct Slot {
    pub(crate) topic: TopicId,
    pub(crate) topic_no: u32,
    pub(crate) member: u32,
    pub(crate) token: String,
    pub(crate) topic_key: TopicKey,
    pub(crate) message_key: MessageKey,
    pub(crate) path: String,
}

/// Reads a topic's create change back from the server, replays it with the topic state machine
/// and gathers each member's Topic Key (from that member's keystore) and the epoch 0 Message Key
/// (from the creator's keystore).
pub(crate) async fn slots_for(
    http: &Http,
    topic: &TopicId,
    topic_no: u32,
    users: &[&Client],
) -> Res<Vec<Slot>> {
    let creator = users.first().ok_or("no members")?;
    let token = token_of(creator)?;
    let entries: EntriesResponse = http
        .call(
            Method::GET,
            &topic_path(topic, "/entries?from=0&limit=1"),
            None,
            Some(&token),
        )
        .await
        .map_err(|e| e.to_string())?;
    let first = entries.entries.first().ok_or("the topic's log is empty")?;
    let entry = LogEntry::from_wire(&first.entry).map_err(|e| e.to_string())?;
    let mut replayer = Replayer::new();
    replayer.push(&entry).map_err(|e| e.to_string())?;
    let state = replayer.state().ok_or("no state after the create")?;
    let mk = creator
        .keystore()
        .message_keys(topic)
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|(epoch, _)| *epoch == state.epoch().get())
        .map(|(_, k)| k)
        .ok_or("the creator has no Message Key for the topic")?;
    let mut out = Vec::new();
    for client in users {
        let me = state
            .member_of(client.user())
            .ok_or_else(|| format!("{} is not a member of {topic}", client.user()))?;
        let member = state.member(me).ok_or("member vanished")?;
        let identity = client.keystore().identity().map_err(|e| e.to_string())?;
        let (topic_key, _) = client
            .keystore()
            .topic_key(&member.topic_key.key_id(), identity.public())
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} lacks its Topic Key for {topic}", client.user()))?;
        let message_key = MessageKey::from_slice(mk.as_bytes()).map_err(|e| e.to_string())?;
        out.push(Slot {
            topic: topic.clone(),
            topic_no,
            member: me.0,
            token: token_of(client)?,
            topic_key,
            message_key,
            path: topic_path(topic, "/messages"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_paths_are_percent_encoded() {
        let topic: TopicId = "!aaaaaaaaaaaaaaaaaaaaaaaaaa:localhost".parse().unwrap();
        assert_eq!(
            topic_path(&topic, "/messages"),
            "/v1/topics/%21aaaaaaaaaaaaaaaaaaaaaaaaaa%3Alocalhost/messages"
        );
    }
}
