//! Topic-key claims that cannot starve a user (issue 10; `client-api.md` §4,
//! `federation-api.md` §5), against real `rendezvous` processes:
//!
//! - a claim listing a user twice is refused whole, on the client API and from a peer;
//! - an attacker claiming a user over and over takes at most the per-victim limit of one-time
//!   keys (`limits.rate.claim_victim`); after that, and once they are gone, the user's
//!   last-resort key is handed out (and kept), so anyone can still add the user, who reads the
//!   topic;
//! - the last-resort key is marked served, the user's `sync` replaces it, the new one is served;
//! - a federated peer cannot drain a user either, and is limited per user listed
//!   (`federation.limits.claim`);
//! - a claimer is rate-limited per user listed (`limits.rate.claim`: `429` with `Retry-After`);
//! - a lying homeserver handing one one-time key to two topics is caught by its owner;
//! - re-uploading known topic keys files nothing in the other devices' inboxes.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use awc::http::Method;
use rendezvous::federation::client::{CLAIM_TOPIC_KEYS_PATH, ORIGIN_HEADER, check_claimed};
use rendezvous::limits::{PeerRateConfig, RateConfig};
use rendezvous_client::{Client, ClientError, EntryContent, TOPIC_KEY_STOCK};
use rendezvous_protocol::api::{
    Body, ClaimTopicKeysRequest, ClaimTopicKeysResponse, ClaimedKind, ErrorCode, InboxResponse,
    LastResortStatus,
};
use rendezvous_protocol::certs::TopicKeyCert;
use rendezvous_protocol::ids::{TopicId, UserId};
use rendezvous_protocol::topic::{History, Role};
use rendezvous_protocol::wire::{Signed, SignedBytes};
use rendezvous_testkit::federation::Federation;
use rendezvous_testkit::fork::Host;
use rendezvous_testkit::lying::point_at;
use rendezvous_testkit::raw::{self, Api};
use rendezvous_testkit::{PATIENCE, rendezvous_bin, user_id};

/// `limits.rate.claim_victim`'s default burst: one-time keys of one user handed out in an hour
/// to all claimers together.
const VICTIM_BURST: usize = 20;

/// Federating processes with the claim limits at their defaults (the test kit runs servers
/// unlimited otherwise).
fn servers(test: &str, names: &[(&str, Ipv4Addr)]) -> Federation {
    Federation::processes(rendezvous_bin!(), test, names)
        .adjust(|_, c| {
            let (rate, peers) = (RateConfig::default(), PeerRateConfig::default());
            c.limits.rate.claim = rate.claim;
            c.limits.rate.claim_victim = rate.claim_victim;
            c.limits.rate.remote = rate.remote;
            if let Some(f) = c.federation.as_mut() {
                f.limits.claim = peers.claim;
            }
        })
        .start()
}

/// Two federating processes, `a.test` and `b.test`.
fn pair(test: &str) -> Federation {
    servers(
        test,
        &[
            ("a.test", Ipv4Addr::new(127, 0, 0, 2)),
            ("b.test", Ipv4Addr::new(127, 0, 0, 3)),
        ],
    )
}

/// One process, `a.test`.
fn single(test: &str) -> Federation {
    servers(test, &[("a.test", Ipv4Addr::new(127, 0, 0, 2))])
}

/// `POST /v1/topic-keys/claim` as `client`'s device sends it to `server`.
async fn claim(
    server: &impl Api,
    client: &Client,
    users: &[UserId],
) -> Result<ClaimTopicKeysResponse, ClientError> {
    let (http, token) = raw::http(server, client);
    let request = ClaimTopicKeysRequest {
        users: users.to_vec(),
    };
    http.call(
        Method::POST,
        "/v1/topic-keys/claim",
        Some(request.to_cbor()),
        Some(&token),
    )
    .await
}

/// The one key a claim for `user` alone handed out, with its kind.
async fn claim_one(
    server: &impl Api,
    client: &Client,
    user: &UserId,
) -> (SignedBytes, ClaimedKind) {
    let answer = claim(server, client, std::slice::from_ref(user))
        .await
        .unwrap();
    assert_eq!(answer.keys.len(), 1, "one key for {user}");
    let key = &answer.keys[0];
    assert_eq!(key.user, *user);
    (key.topic_key_cert.clone(), key.kind)
}

/// `(status, code, message)` of a refused request.
fn refusal(e: &ClientError) -> (u16, ErrorCode, String) {
    match e {
        ClientError::Api {
            code,
            status,
            message,
            ..
        } => (*status, *code, message.clone()),
        other => panic!("not an API refusal: {other}"),
    }
}

/// The Topic Key id a certificate certifies.
fn key_id(cert: &SignedBytes) -> rendezvous_protocol::crypto::KeyId {
    Signed::<TopicKeyCert>::from_signed_bytes(cert.clone())
        .unwrap()
        .decode_unverified()
        .unwrap()
        .topic_key()
        .unwrap()
        .key_id()
}

/// Texts of the messages `client` reads of `topic` (every entry verified), polling until
/// `expected` are all there.
async fn read_until(client: &mut Client, topic: &TopicId, expected: &[&str]) {
    let deadline = Instant::now() + PATIENCE;
    let mut seen: Vec<String> = Vec::new();
    loop {
        match client.read(topic).await {
            Ok(report) => {
                for e in report.entries {
                    assert!(e.verified(), "{}: {e:?}", client.user());
                    if let EntryContent::Message {
                        text: Some(text), ..
                    } = e.content
                    {
                        seen.push(text);
                    }
                }
            }
            Err(e) => assert!(Instant::now() < deadline, "{}: read: {e}", client.user()),
        }
        if expected.iter().all(|t| seen.iter().any(|s| s == t)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} read only {seen:?}",
            client.user()
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A raw claim to `to`'s federation listener from peer `from`: `(status, body)`.
async fn peer_claim(fed: &Federation, from: &str, to: &str, users: &[UserId]) -> (u16, Vec<u8>) {
    let (status, _, body) = peer_claim_with_headers(fed, from, to, users).await;
    (status, body)
}

/// [`peer_claim`], with the `Retry-After` header.
async fn peer_claim_with_headers(
    fed: &Federation,
    from: &str,
    to: &str,
    users: &[UserId],
) -> (u16, Option<String>, Vec<u8>) {
    let peer = fed.peer_as(to, from);
    let body = ClaimTopicKeysRequest {
        users: users.to_vec(),
    }
    .to_cbor();
    let mut resp = peer
        .post(format!("https://{to}:8448{CLAIM_TOPIC_KEYS_PATH}"))
        .insert_header((ORIGIN_HEADER, from))
        .insert_header(("Content-Type", "application/cbor"))
        .send_body(body)
        .await
        .unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.body().await.unwrap().to_vec();
    (resp.status().as_u16(), retry_after, body)
}

#[actix_rt::test]
async fn duplicate_users_in_a_claim_are_refused() {
    let fed = pair("lc-dup");
    let alice = fed.register("a.test", "alice").await;
    let mut carol = fed.register("a.test", "carol").await;
    let mut bob = fed.register("b.test", "bob").await;
    let a = fed.process("a.test");
    let carol_before = carol.key_status().await.unwrap();
    let bob_before = bob.key_status().await.unwrap();
    assert_eq!(carol_before.last_resort, LastResortStatus::Unused);

    // A local user twice: refused whole, naming the user.
    let err = claim(a, &alice, &[carol.user().clone(), carol.user().clone()])
        .await
        .unwrap_err();
    let (status, code, message) = refusal(&err);
    assert_eq!((status, code), (400, ErrorCode::Invalid), "{err}");
    assert!(message.contains("@carol:a.test"), "{message}");
    // A remote user twice, beside a local one: refused before anything is claimed, here or
    // on b.test.
    let err = claim(
        a,
        &alice,
        &[bob.user().clone(), carol.user().clone(), bob.user().clone()],
    )
    .await
    .unwrap_err();
    let (status, code, message) = refusal(&err);
    assert_eq!((status, code), (400, ErrorCode::Invalid), "{err}");
    assert!(message.contains("@bob:b.test"), "{message}");

    // A peer listing a user twice: refused too, naming the user.
    let twice = [bob.user().clone(), bob.user().clone()];
    let (status, body) = peer_claim(&fed, "a.test", "b.test", &twice).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("\"invalid\"") && text.contains("@bob:b.test"),
        "{text}"
    );

    // Nothing was claimed by the refused claims, and no last-resort key was handed out.
    assert_eq!(carol.key_status().await.unwrap(), carol_before);
    assert_eq!(bob.key_status().await.unwrap(), bob_before);
    // Each user once: one one-time key each.
    let answer = claim(a, &alice, &[bob.user().clone(), carol.user().clone()])
        .await
        .unwrap();
    assert_eq!(answer.keys.len(), 2);
    assert!(answer.keys.iter().all(|k| k.kind == ClaimedKind::OneTime));
    assert_eq!(
        bob.key_status().await.unwrap().topic_keys_left,
        bob_before.topic_keys_left - 1
    );
}

#[actix_rt::test]
async fn drained_user_can_still_be_added() {
    let fed = single("lc-drained");
    let server = fed.process("a.test");
    let mallory = fed.register("a.test", "mallory").await;
    let mut bob = fed.register("a.test", "bob").await;
    let mut carol = fed.register("a.test", "carol").await;

    // Mallory claims bob's keys over and over, more than he ever uploaded.
    let mut one_time = 0;
    let mut last_resort = Vec::new();
    for _ in 0..TOPIC_KEY_STOCK + 10 {
        match claim_one(server, &mallory, bob.user()).await {
            (_, ClaimedKind::OneTime) => one_time += 1,
            (cert, ClaimedKind::LastResort) => last_resort.push(cert),
        }
    }
    // At most the per-victim limit of one-time keys went; then the last-resort key, kept.
    assert_eq!(one_time, VICTIM_BURST);
    assert!(last_resort.windows(2).all(|w| w[0] == w[1]));
    let status = bob.key_status().await.unwrap();
    assert_eq!(status.topic_keys_left, (TOPIC_KEY_STOCK - one_time) as u64);
    assert_eq!(status.last_resort, LastResortStatus::Served);
    assert!(status.refill);

    // Carol can still add bob, in two topics (both with his last-resort key), and bob reads
    // and writes in both.
    let topic = carol
        .create_topic(&[(bob.user().clone(), Role::Writer)], History::Shared)
        .await
        .unwrap();
    let other = carol
        .create_topic(&[(bob.user().clone(), Role::Writer)], History::Protected)
        .await
        .unwrap();
    for t in [&topic, &other] {
        let member = raw::state(server, &bob, t).await;
        let me = member.member_of(bob.user()).unwrap();
        assert_eq!(
            member.member(me).unwrap().topic_key.key_id(),
            key_id(&last_resort[0]),
            "bob was added with his last-resort key"
        );
    }
    carol.send(&topic, b"hello bob").await.unwrap();
    carol.send(&other, b"hello again").await.unwrap();
    read_until(&mut bob, &topic, &["hello bob"]).await;
    read_until(&mut bob, &other, &["hello again"]).await;
    bob.send(&topic, b"hi carol").await.unwrap();
    read_until(&mut carol, &topic, &["hi carol"]).await;
}

#[actix_rt::test]
async fn last_resort_is_served_kept_and_replaced() {
    let host = Host::start(rendezvous_bin!(), "lc-replace");
    let server = &host.server.process;
    let alice = host.register("alice").await;
    let mut bob = host.register("bob").await;

    // Registration uploaded a last-resort key besides the one-time stock; it is not counted.
    let status = bob.key_status().await.unwrap();
    assert_eq!(status.topic_keys_left, TOPIC_KEY_STOCK as u64);
    assert_eq!(status.last_resort, LastResortStatus::Unused);
    assert!(!status.refill);

    // Claimed until the last-resort key comes; it comes again: it is kept.
    let first = claim_until_last_resort(server, &alice, bob.user()).await;
    assert_eq!(
        claim_one(server, &alice, bob.user()).await,
        (first.clone(), ClaimedKind::LastResort)
    );
    let status = bob.key_status().await.unwrap();
    assert_eq!(status.last_resort, LastResortStatus::Served);
    assert!(status.refill, "a served last-resort key asks for a refill");
    let ik = bob.keystore().identity().unwrap().public().clone();
    assert!(
        bob.keystore()
            .topic_key(&key_id(&first), &ik)
            .unwrap()
            .is_some()
    );
    assert!(bob.keystore().is_last_resort(&key_id(&first)));

    // One-time keys alone do not answer the request: a sync asks for the last-resort key too
    // (its `refill` is the key status's), and the device's sync uploads one.
    bob.make_topic_keys(TOPIC_KEY_STOCK).await.unwrap();
    let status = bob.key_status().await.unwrap();
    assert!(status.topic_keys_left >= 20 && status.refill, "{status:?}");
    bob.sync().await.unwrap();
    let status = bob.key_status().await.unwrap();
    assert_eq!(status.last_resort, LastResortStatus::Unused, "{status:?}");
    assert!(!status.refill);

    // Bob's sync replaces it (and refills the one-time keys).
    bob.sync_inbox().await.unwrap();
    bob.refill(false).await.unwrap();
    let status = bob.key_status().await.unwrap();
    assert_eq!(status.last_resort, LastResortStatus::Unused);
    assert!(!status.refill);

    // The new one is served from now on; the old one's private half stays with bob.
    let second = claim_until_last_resort(server, &alice, bob.user()).await;
    assert_ne!(second, first);
    assert!(bob.keystore().is_last_resort(&key_id(&second)));
    assert!(
        bob.keystore()
            .topic_key(&key_id(&second), &ik)
            .unwrap()
            .is_some()
    );
    assert!(
        bob.keystore()
            .topic_key(&key_id(&first), &ik)
            .unwrap()
            .is_some()
    );
    assert_eq!(
        bob.key_status().await.unwrap().last_resort,
        LastResortStatus::Served
    );
}

/// Claims `user`'s keys one at a time until the last-resort key is handed out; returns it.
async fn claim_until_last_resort(server: &impl Api, client: &Client, user: &UserId) -> SignedBytes {
    for _ in 0..=2 * TOPIC_KEY_STOCK {
        if let (cert, ClaimedKind::LastResort) = claim_one(server, client, user).await {
            return cert;
        }
    }
    panic!("no last-resort key for {user}");
}

#[actix_rt::test]
async fn peer_cannot_drain_a_user() {
    let fed = pair("lc-peer");
    let mut alice = fed.register("a.test", "alice").await;
    let mut bob = fed.register("b.test", "bob").await;
    let asked = [bob.user().clone()];

    // a.test claims bob again and again, as a lying or compromised peer would.
    let mut kinds = Vec::new();
    for _ in 0..2 * VICTIM_BURST {
        let (status, body) = peer_claim(&fed, "a.test", "b.test", &asked).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let answer = ClaimTopicKeysResponse::from_cbor(&body).unwrap();
        let keys = check_claimed(&"b.test".parse().unwrap(), &asked, answer.keys).unwrap();
        assert_eq!(keys.len(), 1);
        kinds.push(keys[0].kind);
    }
    let one_time = kinds.iter().filter(|k| **k == ClaimedKind::OneTime).count();
    assert_eq!(one_time, VICTIM_BURST, "{kinds:?}");
    let status = bob.key_status().await.unwrap();
    assert_eq!(
        status.topic_keys_left,
        (TOPIC_KEY_STOCK - VICTIM_BURST) as u64
    );
    assert_eq!(status.last_resort, LastResortStatus::Served);

    // Alice, on a.test, can still add bob; he reads her message.
    let topic = alice
        .create_topic(&[(bob.user().clone(), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&topic, b"hello from a").await.unwrap();
    read_until(&mut bob, &topic, &["hello from a"]).await;

    // The peer's own claim rate: 1000 users listed an hour in all (41 so far), then 429. The
    // cells are taken before anything else: these claims of unknown users are `404 not_found`.
    let hundred: Vec<UserId> = (0..100)
        .map(|i| user_id(&format!("u{i}"), "b.test"))
        .collect();
    for _ in 0..9 {
        let (status, body) = peer_claim(&fed, "a.test", "b.test", &hundred).await;
        assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    }
    let (status, retry_after, body) =
        peer_claim_with_headers(&fed, "a.test", "b.test", &hundred).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("rate_limited"), "{text}");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
}

#[actix_rt::test]
async fn known_certs_file_nothing() {
    let host = Host::start(rendezvous_bin!(), "lc-known");
    let server = &host.server.process;
    let mut bob = host.register("bob").await;
    let bob2 = link(&host, &mut bob, "bob2").await;

    // Bob's first device talks through an honest proxy that records what it sends.
    let proxy = host.server.lying();
    point_at(&host.home("bob"), &proxy.url);
    let mut bob = Client::open(&host.home("bob"), &rendezvous_testkit::passphrase()).unwrap();
    assert_eq!(bob.make_topic_keys(3).await.unwrap(), 3);
    bob.upload_last_resort().await.unwrap();
    let sent = |method: &str, path: &str| {
        proxy
            .requests()
            .into_iter()
            .find(|r| r.method == method && r.path == path)
            .unwrap()
            .body
    };
    let upload = sent("POST", "/v1/topic-keys");
    let last_resort = sent("PUT", "/v1/topic-keys/last-resort");
    let items = inbox(server, &bob2).await;
    let kinds: Vec<u8> = items.iter().map(|i| i.kind).collect();
    assert_eq!(
        kinds,
        [1, 1, 1, 3],
        "three one-time keys and a last-resort key"
    );
    let left = bob.key_status().await.unwrap().topic_keys_left;

    // The same upload again, five times: accepted, nothing stored, nothing filed.
    let (http, token) = raw::http(server, &bob);
    for _ in 0..5 {
        let (status, code) = raw::post(&http, Some(&token), "/v1/topic-keys", upload.clone()).await;
        assert_eq!((status, code), (200, None));
    }
    // A known key as a last-resort key again: refused (a last-resort key is new), nothing filed.
    let err = http
        .send(
            Method::PUT,
            "/v1/topic-keys/last-resort",
            Some(last_resort),
            Some(&token),
            1024,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Invalid), "{err}");
    assert_eq!(inbox(server, &bob2).await.len(), items.len());
    assert_eq!(bob.key_status().await.unwrap().topic_keys_left, left);

    // Bob's other device takes the four keys, the last one marked as last-resort.
    let mut bob2 = bob2;
    let report = bob2.sync_inbox().await.unwrap();
    assert_eq!((report.topic_keys, report.failed.len()), (4, 0));
    let marked: Vec<bool> = bob2
        .keystore()
        .topic_key_ids()
        .unwrap()
        .iter()
        .map(|id| bob2.keystore().is_last_resort(id))
        .collect();
    assert_eq!(marked.iter().filter(|m| **m).count(), 1, "{marked:?}");
}

/// Links a new device `name` for `existing`'s user.
async fn link(host: &Host, existing: &mut Client, name: &str) -> Client {
    let pending = existing.link_offer_start().await.unwrap();
    let code = pending.code().to_string();
    let (joined, offered) = futures_util::future::join(
        Client::link_join(
            &host.home(name),
            &rendezvous_testkit::passphrase(),
            host.server.url(),
            host.server.trust(),
            &code,
        ),
        existing.link_offer_finish(pending, Duration::from_secs(20)),
    )
    .await;
    offered.unwrap();
    joined.unwrap()
}

/// Every unacknowledged inbox item of `client`'s device.
async fn inbox(server: &impl Api, client: &Client) -> Vec<rendezvous_protocol::api::InboxItem> {
    let (http, token) = raw::http(server, client);
    let answer: InboxResponse = http
        .call(Method::GET, "/v1/inbox?after=0", None, Some(&token))
        .await
        .unwrap();
    answer.items
}

#[actix_rt::test]
async fn one_time_key_served_twice_is_refused_by_its_owner() {
    let host = Host::start(rendezvous_bin!(), "lc-twice");
    let mut bob = host.register("bob").await;
    host.register("carol").await;
    // Carol's homeserver lies: it hands out bob's first claimed one-time key again, and calls
    // it a last-resort key (`kind` is its word).
    let proxy = host.server.lying();
    let first: std::sync::Arc<std::sync::Mutex<Option<SignedBytes>>> = Default::default();
    let kept = first.clone();
    let bob_id = bob.user().clone();
    proxy.after(move |req, answer| {
        if req.path != "/v1/topic-keys/claim" || answer.status != 200 {
            return;
        }
        let mut claimed = ClaimTopicKeysResponse::from_cbor(&answer.body).unwrap();
        let mut kept = kept.lock().unwrap();
        for key in claimed.keys.iter_mut().filter(|k| k.user == bob_id) {
            match kept.as_ref() {
                None => *kept = Some(key.topic_key_cert.clone()),
                Some(cert) => {
                    key.topic_key_cert = cert.clone();
                    key.kind = ClaimedKind::LastResort;
                }
            }
        }
        answer.body = claimed.to_cbor();
    });
    point_at(&host.home("carol"), &proxy.url);
    let mut carol = Client::open(&host.home("carol"), &rendezvous_testkit::passphrase()).unwrap();
    let members = [(bob.user().clone(), Role::Writer)];
    let topic = carol.create_topic(&members, History::Shared).await.unwrap();
    let second = carol.create_topic(&members, History::Shared).await.unwrap();
    carol.send(&topic, b"first").await.unwrap();
    carol.send(&second, b"second").await.unwrap();

    // Bob reads the first topic; in the second he refuses his key: the change that added him
    // is not verified and he opens nothing there.
    read_until(&mut bob, &topic, &["first"]).await;
    let report = bob.read(&second).await.unwrap();
    let problems: Vec<&String> = report.entries.iter().flat_map(|e| &e.problems).collect();
    assert!(
        problems.iter().any(|p| p.contains("already used in topic")),
        "{problems:?}"
    );
    assert!(
        !report
            .entries
            .iter()
            .any(|e| matches!(&e.content, EntryContent::Message { text: Some(_), .. }))
    );
}

#[actix_rt::test]
async fn claimer_rate_is_limited() {
    let fed = single("lc-rate");
    let server = fed.process("a.test");
    let mallory = fed.register("a.test", "mallory").await;
    let carol = fed.register("a.test", "carol").await;
    let mut bob = fed.register("a.test", "bob").await;

    // 1000 users listed (`limits.rate.claim`'s burst), nobody among them: all cells taken,
    // then the claim refused for its unknown users (`404 not_found`).
    let many: Vec<UserId> = (0..1000)
        .map(|i| user_id(&format!("u{i}"), "a.test"))
        .collect();
    let refused = claim(server, &mallory, &many).await.unwrap_err();
    assert_eq!(
        refused.code().map(|c| c.as_str()),
        Some("not_found"),
        "{refused}"
    );
    let before = bob.key_status().await.unwrap();

    // One more user listed: 429 with Retry-After, nothing claimed.
    let (status, retry_after, body) = raw_claim(server, &mallory, bob.user()).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("rate_limited"), "{body}");
    let retry: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!(retry >= 1, "{retry}");
    assert_eq!(bob.key_status().await.unwrap(), before);

    // The limit is mallory's: carol still claims.
    assert_eq!(
        claim_one(server, &carol, bob.user()).await.1,
        ClaimedKind::OneTime
    );
}

/// A claim for `user` sent with awc, to see the headers: `(status, Retry-After, body)`.
async fn raw_claim(
    server: &impl Api,
    client: &Client,
    user: &UserId,
) -> (u16, Option<String>, String) {
    let (_, token) = raw::http(server, client);
    let tls = rendezvous_client::tls::client_config(&server.trust()).unwrap();
    let awc = awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(std::sync::Arc::new(tls)))
        .finish();
    let body = ClaimTopicKeysRequest {
        users: vec![user.clone()],
    }
    .to_cbor();
    let mut resp = awc
        .post(format!("{}/v1/topic-keys/claim", server.url()))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Content-Type", "application/cbor"))
        .send_body(body)
        .await
        .unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.body().await.unwrap();
    (
        resp.status().as_u16(),
        retry_after,
        String::from_utf8_lossy(&body).into_owned(),
    )
}
