//! Raw protocol access for tests that must send what an honest client never would.

use awc::http::Method;
use rendezvous_client::Client;
use rendezvous_client::http::{Http, encode_segment};
use rendezvous_client::tls::Trust;
use rendezvous_protocol::api::EntriesResponse;
use rendezvous_protocol::crypto::{EpochKeys, MessageKey, TopicKey};
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::message;
use rendezvous_protocol::tlog::{LogHash, TreeSize};
use rendezvous_protocol::topic::{LogEntry, MemberIndex, Replayer, TopicState};

use crate::server::TestServer;

/// A server's client API as a device reaches it: an in-process [`TestServer`] or a real
/// `rendezvous` process.
pub trait Api {
    /// `https://ip:port`.
    fn url(&self) -> &str;
    /// How devices trust its certificate.
    fn trust(&self) -> Trust;
}

impl Api for TestServer {
    fn url(&self) -> &str {
        &self.url
    }

    fn trust(&self) -> Trust {
        TestServer::trust(self)
    }
}

/// An HTTP client for the server and the device's current token.
pub fn http(server: &impl Api, client: &Client) -> (Http, String) {
    let http = Http::new(server.url(), &server.trust()).unwrap();
    let token = client
        .keystore()
        .token()
        .unwrap()
        .expect("logged in")
        .to_string();
    (http, token)
}

/// The topic's log entries (wire forms) as the server serves them to `client`.
pub async fn entries(server: &impl Api, client: &Client, topic: &TopicId) -> Vec<Vec<u8>> {
    let (http, token) = http(server, client);
    let mut out = Vec::new();
    loop {
        let path = format!(
            "/v1/topics/{}/entries?from={}&limit=500",
            encode_segment(topic.as_str()),
            out.len()
        );
        let page: EntriesResponse = http
            .call(Method::GET, &path, None, Some(&token))
            .await
            .unwrap();
        if page.entries.is_empty() {
            return out;
        }
        out.extend(page.entries.into_iter().map(|e| e.entry.into_vec()));
    }
}

/// `server`'s key document for server `of` (`GET /v1/servers/{of}/keys`), as `client` gets it.
pub async fn key_document(
    server: &impl Api,
    client: &Client,
    of: &str,
) -> rendezvous_protocol::federation::ServerKeys {
    let (http, token) = http(server, client);
    let path = format!("/v1/servers/{}/keys", encode_segment(of));
    http.call(Method::GET, &path, None, Some(&token))
        .await
        .unwrap()
}

/// The topic's state, replayed from the server's log.
pub async fn state(server: &impl Api, client: &Client, topic: &TopicId) -> TopicState {
    replayed(server, client, topic)
        .await
        .state()
        .unwrap()
        .clone()
}

/// The root of `topic`'s log as replayed through `client`'s token.
pub async fn root(server: &impl Api, client: &Client, topic: &TopicId) -> LogHash {
    replayed(server, client, topic).await.roots().root()
}

/// Every entry of `topic`, replayed.
async fn replayed(server: &impl Api, client: &Client, topic: &TopicId) -> Replayer {
    let mut r = Replayer::new();
    for e in entries(server, client, topic).await {
        r.push(&LogEntry::from_wire(&e).unwrap()).unwrap();
    }
    r
}

/// What `client`'s member signs a change of `topic` with, over the log as `server` serves it:
/// the state, the root, its member index, its Topic Key and the current epoch's Message Key
/// (straight from its keystore) — what a lying member's modified client starts from.
pub struct Signing {
    /// The topic's state after the served log.
    pub state: TopicState,
    /// The served log's root.
    pub root: LogHash,
    /// The member's index.
    pub me: MemberIndex,
    /// The member's Topic Key.
    pub tk: TopicKey,
    /// The current epoch's Message Key.
    pub current: MessageKey,
}

/// [`Signing`] for `client` in `topic`.
pub async fn signing(server: &impl Api, client: &Client, topic: &TopicId) -> Signing {
    let replayer = replayed(server, client, topic).await;
    let state = replayer.state().unwrap().clone();
    let me = state.member_of(client.user()).expect("a member");
    let member = state.member(me).unwrap();
    let ik = client.keystore().identity().unwrap();
    let (tk, _) = client
        .keystore()
        .topic_key(&member.topic_key.key_id(), ik.public())
        .unwrap()
        .expect("topic key in keystore");
    let (_, current) = client
        .keystore()
        .message_keys(topic)
        .unwrap()
        .into_iter()
        .find(|(e, _)| *e == state.epoch().get())
        .expect("current epoch key");
    Signing {
        root: replayer.roots().root(),
        state,
        me,
        tk,
        current,
    }
}

/// The device's Topic Key and current epoch keys for `topic`, straight from its keystore.
pub async fn keys(
    server: &impl Api,
    client: &Client,
    topic: &TopicId,
) -> (u32, TopicKey, EpochKeys, u64) {
    let s = signing(server, client, topic).await;
    let epoch_keys = s.current.epoch_keys(topic, s.state.epoch());
    (s.me.0, s.tk, epoch_keys, s.state.size().get())
}

/// A message encrypted and signed by `client` as its member, for the current epoch.
pub async fn message(server: &impl Api, client: &Client, topic: &TopicId, text: &[u8]) -> Vec<u8> {
    let root = root(server, client, topic).await;
    message_over(server, client, topic, text, root).await
}

/// [`message`], but signed over `root` as the log's root at `seen` (another branch's root, to
/// test the fork binding of `protocol.md` §6.4).
pub async fn message_over(
    server: &impl Api,
    client: &Client,
    topic: &TopicId,
    text: &[u8],
    root: LogHash,
) -> Vec<u8> {
    let (me, tk, keys, size) = keys(server, client, topic).await;
    message::encrypt(
        topic,
        &keys,
        MemberIndex(me),
        tk.signing(),
        TreeSize(size),
        &root,
        text,
    )
    .unwrap()
    .to_wire()
}

/// POSTs `body` as CBOR; returns the status and the error code (if any).
pub async fn post(
    http: &Http,
    token: Option<&str>,
    path: &str,
    body: Vec<u8>,
) -> (u16, Option<String>) {
    match http
        .send(Method::POST, path, Some(body), token, 1 << 20)
        .await
    {
        Ok(_) => (200, None),
        Err(e) => (
            e.code().map_or(0, |c| c.status()),
            e.code().map(|c| c.as_str().to_owned()),
        ),
    }
}

/// The path of a topic's messages endpoint.
pub fn messages_path(topic: &TopicId) -> String {
    format!("/v1/topics/{}/messages", encode_segment(topic.as_str()))
}

/// The texts of the messages a read showed, in log order (undecryptable ones left out).
pub fn texts(report: &rendezvous_client::ReadReport) -> Vec<String> {
    message_texts(report).into_iter().flatten().collect()
}

/// Every message a read showed, in log order: its text, or `None` when it could not be opened.
pub fn message_texts(report: &rendezvous_client::ReadReport) -> Vec<Option<String>> {
    report
        .entries
        .iter()
        .filter_map(|e| match &e.content {
            rendezvous_client::EntryContent::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}
