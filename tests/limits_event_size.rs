//! Federation object sizes (`federation-api.md` §1.2), end to end: a change as large as the
//! entry limit allows, appended on its hosting server, reaches a participating server's mirror
//! in a `topic.entry` event (client API, the host's outbound queue and transaction packing, the
//! participant's `send` listener and mirror), with server names as long as the test servers and
//! the client library allow. Those stay short of 255 characters (see [`Names`]), and with them
//! the event also fits the earlier limit (4 MiB + 1 KiB): this test guards the path (a limit
//! anywhere on it below the derived one fails it), while the largest events, with 255-character
//! names, are built in `crates/protocol/src/federation/limits/tests.rs`.
//!
//! The change is an `add` of thousands of members of a server that exists nowhere (the
//! largest object a member spec list makes: each spec carries its user id twice, in the spec
//! and in its Topic Key certificate). The host's directory lookup of those members is switched
//! off (`identity_check_skips_for_tests`): it would fail for a server that does not exist, and
//! it is not what this test is about; the mirror checks only its own users (§9.1), so it
//! applies every rule of the change as it would for real members. The same add posted by an
//! admin on the participant travels the other way first, as a `topic.submit`.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rendezvous_client::Client;
use rendezvous_protocol::api::{EntriesResponse, ErrorCode};
use rendezvous_protocol::certs::TopicKeyCert;
use rendezvous_protocol::crypto::{IdentityKey, Randomness, TopicKey};
use rendezvous_protocol::ids::{ServerName, TopicId, UserId};
use rendezvous_protocol::topic::{
    Action, ChangeBuilder, ChangeError, History, MAX_CHANGE_LEN, MAX_ENTRY_LEN, MemberSpec, Role,
};
use rendezvous_protocol::wire::{Signed, WireError};
use rendezvous_testkit::federation::Federation;
use rendezvous_testkit::raw;
use rendezvous_testkit::server::TestServer;
use rendezvous_testkit::topic::SUITE;

/// A valid host name of exactly `len` (≤ 253) characters: labels of 63 `c`s.
fn long_host(c: char, len: usize) -> String {
    let mut host = String::new();
    while host.len() < len {
        if !host.is_empty() {
            host.push('.');
        }
        let label = (len - host.len()).min(63);
        host.extend(std::iter::repeat_n(c, label));
    }
    assert_eq!(host.len(), len);
    host.parse::<ServerName>().unwrap();
    host
}

fn id(user: &str, server: &str) -> UserId {
    format!("@{user}:{server}").parse().unwrap()
}

/// The member spec of the `i`th made-up user of `server`: a localpart of `len` (7 to 64)
/// characters, keys of its own.
fn made_up(server: &str, i: usize, len: usize) -> MemberSpec {
    let mut local = format!("m{i:06}");
    local.extend(std::iter::repeat_n('x', len - local.len()));
    let user = id(&local, server);
    let ik = IdentityKey::generate();
    let tk = TopicKey::generate(SUITE);
    MemberSpec {
        user: user.clone(),
        identity_key: ik.public().clone(),
        role: Role::Reader,
        topic_key_cert: Signed::sign(TopicKeyCert::new(user, tk.public(), 0), &ik).unverified(),
    }
}

/// Polls `f` every 200 ms until it is true, or panics after `secs`.
async fn until(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "{what}");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The topic's log entries as `server` serves them to `client`: none while it has no such
/// topic (a mirror before its first entry).
async fn served(server: &TestServer, client: &Client, topic: &TopicId) -> Vec<Vec<u8>> {
    let (http, token) = raw::http(server, client);
    let mut out: Vec<Vec<u8>> = Vec::new();
    loop {
        let path = format!(
            "/v1/topics/{}/entries?from={}&limit=500",
            rendezvous_protocol::api::encode_segment(topic.as_str()),
            out.len()
        );
        let page: EntriesResponse = match http
            .call(awc::http::Method::GET, &path, None, Some(&token))
            .await
        {
            Ok(page) => page,
            Err(e) if e.code() == Some(ErrorCode::NotFound) => return out,
            Err(e) => panic!("{e}"),
        };
        if page.entries.is_empty() {
            return out;
        }
        out.extend(page.entries.into_iter().map(|e| e.entry.into_vec()));
    }
}

/// The servers' names: the hosting server's the longest the client library can keep topics of
/// (it names a topic's key file by the topic id in hex, 255 bytes at most: a topic id of 127
/// characters, a host of 99), the participant's the longest whose directory's log origin
/// (`<name>/directory`) is a checkpoint origin (256 characters, `tag-log.md` §4), the made-up
/// members' 253 (a host name's most).
struct Names {
    host: String,
    participant: String,
    nowhere: String,
}

fn names() -> Names {
    Names {
        host: long_host('a', (255 / 2) - 2 - 26),
        participant: long_host('b', 256 - "/directory".len()),
        nowhere: long_host('f', 253),
    }
}

/// The two servers (the made-up members' server sent nowhere), alice on the host, bob on the
/// participant, and alice's topic with bob as `role`, mirrored by b.
async fn topic_with_mirror(
    test: &str,
    n: &Names,
    role: Role,
) -> (Federation, Client, Client, TopicId) {
    let unreachable = n.nowhere.clone();
    let fed = Federation::in_process(test, &[&n.host, &n.participant])
        .adjust(move |_, c| {
            let fed = c.federation.as_mut().unwrap();
            fed.overrides
                .insert(unreachable.clone(), "127.0.0.1:1".into());
        })
        .start();
    let mut alice = fed.register(&n.host, "alice").await;
    let bob = fed.register(&n.participant, "bob").await;
    let topic = alice
        .create_topic(&[(id("bob", &n.participant), role)], History::Shared)
        .await
        .unwrap();
    let b = fed.server(&n.participant);
    until("b mirrors the create", 30, async || {
        served(b, &bob, &topic).await.len() == 1
    })
    .await;
    // The host's directory lookup of the made-up members would fail (module doc).
    fed.store(&n.host)
        .identity_check_skips_for_tests()
        .store(true, Ordering::SeqCst);
    (fed, alice, bob, topic)
}

/// The largest add `admin` can sign over the topic's log as `server` serves it: made-up
/// members of `nowhere` until the signed change's payload is within 8 bytes of
/// [`MAX_CHANGE_LEN`]. Its wire form (what a client posts).
async fn largest_add(
    server: &TestServer,
    admin: &Client,
    topic: &TopicId,
    nowhere: &str,
) -> Vec<u8> {
    let raw::Signing {
        state,
        root,
        me,
        tk,
        current,
    } = raw::signing(server, admin, topic).await;
    // The signed change, or the length of its payload when over the limit (the builder checks
    // the change as everyone does, and a payload over it does not decode).
    let build = |specs: &[MemberSpec]| match ChangeBuilder::new(
        &state,
        root,
        me,
        &tk,
        Action::Add(specs.to_vec()),
    )
    .current_key(Some(&current))
    .build(rendezvous::state::now(), &mut Randomness::Os)
    {
        Ok((outcome, _)) => Ok(outcome.change),
        Err(ChangeError::Malformed(WireError::TooLarge { got, .. })) => Err(got),
        Err(e) => panic!("{e}"),
    };
    // Sizes at 300 and 600 members (member indices and list heads already at their widths
    // from there on) give the bytes per member; the add takes one member more than fit, then
    // shortens localparts from the last member on (each character is in the spec twice, in
    // the user id and in its certificate) until the change is at most the limit.
    let payload_len = |specs: &[MemberSpec]| build(specs).unwrap().signed_bytes().0.len();
    let mut specs: Vec<MemberSpec> = (0..600).map(|i| made_up(nowhere, i, 64)).collect();
    let at_300 = payload_len(&specs[..300]);
    let per_member = (payload_len(&specs) - at_300) / 300;
    let count = 300 + (MAX_CHANGE_LEN - at_300) / per_member + 1;
    specs.extend((600..count).map(|i| made_up(nowhere, i, 64)));
    let mut lengths: Vec<usize> = vec![64; count];
    let mut shortened = count;
    let change = loop {
        let len = match build(&specs) {
            Ok(change) => break change,
            Err(len) => len,
        };
        if lengths[shortened - 1] == 7 {
            shortened -= 1;
        }
        let j = shortened - 1;
        lengths[j] = lengths[j]
            .saturating_sub((len - MAX_CHANGE_LEN).div_ceil(2))
            .max(7);
        specs[j] = made_up(nowhere, j, lengths[j]);
    };
    let change_len = change.signed_bytes().0.len();
    assert!(
        MAX_CHANGE_LEN - change_len <= 8,
        "{change_len} bytes, {} members",
        specs.len()
    );
    change.to_wire()
}

/// POSTs `change` to `server`'s `changes` endpoint as `client`: status and code.
async fn post_change(
    server: &TestServer,
    client: &Client,
    topic: &TopicId,
    change: Vec<u8>,
) -> (u16, Option<String>) {
    let (http, token) = raw::http(server, client);
    let path = format!(
        "/v1/topics/{}/changes",
        rendezvous_protocol::api::encode_segment(topic.as_str())
    );
    raw::post(&http, Some(&token), &path, change).await
}

/// Waits until both servers serve the topic's two entries; returns the host's.
async fn both_have_the_add(
    fed: &Federation,
    n: &Names,
    alice: &Client,
    bob: &Client,
    topic: &TopicId,
) {
    let (a, b) = (fed.server(&n.host), fed.server(&n.participant));
    until("a has the add", 120, async || {
        served(a, alice, topic).await.len() == 2
    })
    .await;
    let on_a = served(a, alice, topic).await;
    assert!(MAX_ENTRY_LEN - on_a[1].len() <= 16, "{}", on_a[1].len());
    until("b mirrors the add", 120, async || {
        served(b, bob, topic).await.len() == 2
    })
    .await;
    assert_eq!(served(b, bob, topic).await, on_a);
}

/// `topic.entry`: alice's add, appended on a, reaches b's mirror, which ends with exactly a's
/// log.
#[actix_rt::test]
async fn a_change_at_the_entry_limit_reaches_a_mirror_with_long_server_names() {
    let n = names();
    let (fed, alice, bob, topic) = topic_with_mirror("fedsize-entry", &n, Role::Writer).await;
    let a = fed.server(&n.host);
    let add = largest_add(a, &alice, &topic, &n.nowhere).await;
    assert_eq!(post_change(a, &alice, &topic, add).await, (200, None));
    both_have_the_add(&fed, &n, &alice, &bob, &topic).await;
}

/// `topic.submit`: bob, an admin of alice's topic on b, posts the add to b, which submits it to
/// a; a appends it and b's mirror gets it back.
#[actix_rt::test]
async fn a_change_at_the_entry_limit_submitted_from_a_participant_is_appended() {
    let n = names();
    let (fed, alice, mut bob, topic) = topic_with_mirror("fedsize-submit", &n, Role::Admin).await;
    // bob's device takes its keys from the create.
    bob.read(&topic).await.unwrap();
    let b = fed.server(&n.participant);
    let add = largest_add(b, &bob, &topic, &n.nowhere).await;
    assert_eq!(post_change(b, &bob, &topic, add).await, (200, None));
    both_have_the_add(&fed, &n, &alice, &bob, &topic).await;
}
