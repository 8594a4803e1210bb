//! Cross-server topics (`federation-api.md` §9) between three real `rendezvous` processes, as
//! operators run them: `a.test` on 127.0.0.2, `b.test` on 127.0.0.3 and `c.test` on 127.0.0.4,
//! each with a config file the test kit writes, federating over mutual TLS with certificates from a
//! federation CA made by the binary's own `federation-ca` and `federation-cert` commands, and
//! finding each other only through DNS (§7): a real DNS server on 127.0.0.1 serves
//! `_rendezvous._tcp.<name>` SRV records whose targets are `fed.<name>`, names the
//! certificates do not carry, so every connection also shows that the certificate is checked
//! for the server name and not for the SRV target. No overrides.
//!
//! The in-process sibling is `tests/federation_topics.rs`; here a server is also killed with
//! SIGKILL, and the federation listener is attacked as a peer would (§1, §3.3).
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rendezvous_client::{Client, ClientError, EntryContent};
use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::federation::{
    Event, EventId, EventKind, Transaction, TransactionResponse,
};
use rendezvous_protocol::ids::{ServerName, TopicId, UserId};
use rendezvous_protocol::topic::{History, Role};
use rendezvous_testkit::ca::{client_config, peer_client};
use rendezvous_testkit::dns::RecordType;
use rendezvous_testkit::federation::Federation;
use rendezvous_testkit::process::run_ok;
use rendezvous_testkit::transaction::{self, server_key};
use rendezvous_testkit::{PATIENCE, raw, rendezvous_bin};
use rustls::AlertDescription;

/// The servers and their loopback addresses.
const SERVERS: [(&str, Ipv4Addr); 3] = [
    ("a.test", Ipv4Addr::new(127, 0, 0, 2)),
    ("b.test", Ipv4Addr::new(127, 0, 0, 3)),
    ("c.test", Ipv4Addr::new(127, 0, 0, 4)),
];

/// The servers named, as processes finding each other through DNS only.
fn federation(test: &str, names: &[&str]) -> Federation {
    let servers: Vec<(&str, Ipv4Addr)> = SERVERS
        .into_iter()
        .filter(|(n, _)| names.contains(n))
        .collect();
    Federation::processes(rendezvous_bin!(), test, &servers).start()
}

/// Runs the binary with `args`; its stdout, or a panic with its stderr.
fn run(args: &[&str]) -> String {
    run_ok(rendezvous_bin!(), args)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn id(user: &str, server: &str) -> UserId {
    rendezvous_testkit::user_id(user, server)
}

/// A device and every message text it has read of one topic, in the order read.
struct Member {
    client: Client,
    read: Vec<String>,
    /// The epoch each message read was sent in, by text.
    epochs: BTreeMap<String, u32>,
}

impl Member {
    fn new(client: Client) -> Member {
        Member {
            client,
            read: Vec::new(),
            epochs: BTreeMap::new(),
        }
    }

    /// One read; returns the texts it brought.
    async fn read_once(&mut self, topic: &TopicId) -> Result<Vec<String>, ClientError> {
        let report = self.client.read(topic).await?;
        let mut new = Vec::new();
        for e in report.entries {
            assert!(e.verified(), "{}: {e:?}", self.client.user());
            if let EntryContent::Message {
                text: Some(text),
                epoch,
                ..
            } = e.content
            {
                self.epochs.insert(text.clone(), epoch);
                new.push(text);
            }
        }
        self.read.extend(new.iter().cloned());
        Ok(new)
    }

    /// Reads until the whole history read is `expected`: then once more, which must bring
    /// nothing (nothing is shown twice).
    async fn read_all(&mut self, topic: &TopicId, expected: &[String]) {
        self.read_count(topic, expected.len()).await;
        assert_eq!(self.read, expected, "{}", self.client.user());
    }

    /// Reads until `total` texts have been read in all; then once more, which must bring
    /// nothing.
    async fn read_count(&mut self, topic: &TopicId, total: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.read.len() < total {
            if let Err(e) = self.read_once(topic).await {
                assert!(
                    Instant::now() < deadline,
                    "{}: read: {e}",
                    self.client.user()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} read only {:?}, not {total}",
                self.client.user(),
                self.read
            );
            if self.read.len() < total {
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let again = self.read_once(topic).await.unwrap();
        assert!(
            again.is_empty(),
            "{} read again {again:?}",
            self.client.user()
        );
    }
}

fn texts(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[actix_rt::test]
async fn a_conversation_across_three_processes_survives_a_kill_and_an_outage() {
    let mut fed = federation("fed-procs", &["a.test", "b.test", "c.test"]);
    let mut alice = Member::new(fed.register("a.test", "alice").await);
    let mut bob = Member::new(fed.register("b.test", "bob").await);
    let mut dave = Member::new(fed.register("b.test", "dave").await);
    let mut carol = Member::new(fed.register("c.test", "carol").await);

    // 1. A topic hosted on a, with writers on b and a reader on c: a asks b and c for their
    // users' identities and topic keys, finding them through SRV records only.
    let topic = alice
        .client
        .create_topic(
            &[
                (id("bob", "b.test"), Role::Writer),
                (id("dave", "b.test"), Role::Writer),
                (id("carol", "c.test"), Role::Reader),
            ],
            History::Shared,
        )
        .await
        .unwrap();
    alice.client.send(&topic, b"hello from a").await.unwrap();
    let mut expected = texts(&["hello from a"]);
    bob.read_all(&topic, &expected).await;
    // Bob posts through b, which submits to a and answers once the entry is back.
    assert_eq!(bob.client.send(&topic, b"hello from b").await.unwrap(), 2);
    expected.push("hello from b".into());
    for m in [&mut alice, &mut bob, &mut dave, &mut carol] {
        m.read_all(&topic, &expected).await;
    }
    for name in ["a.test", "b.test", "c.test"] {
        assert!(
            fed.dns()
                .asked(&format!("_rendezvous._tcp.{name}."), RecordType::SRV),
            "{name} was found without its SRV record"
        );
        assert!(fed.dns().asked(&format!("fed.{name}."), RecordType::A));
    }

    // Carol is a reader: her client refuses, and so does c for a client that tries anyway.
    assert!(carol.client.send(&topic, b"may I?").await.is_err());
    let c = fed.process("c.test");
    let body = raw::message(c, &carol.client, &topic, b"may I?").await;
    let (http, token) = raw::http(c, &carol.client);
    let (status, code) = raw::post(&http, Some(&token), &raw::messages_path(&topic), body).await;
    assert_eq!(
        (status, code.as_deref()),
        (409, Some("not_allowed_to_post"))
    );

    // 2. Removing Dave rekeys for the rest; b learns of it and locks Dave out.
    alice
        .client
        .remove_members(&topic, &[id("dave", "b.test")])
        .await
        .unwrap();
    alice.client.send(&topic, b"after dave left").await.unwrap();
    expected.push("after dave left".into());
    for m in [&mut alice, &mut bob, &mut carol] {
        m.read_all(&topic, &expected).await;
        assert!(m.epochs["after dave left"] > m.epochs["hello from b"]);
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        match dave.client.read(&topic).await {
            Err(e) if e.code() == Some(ErrorCode::Forbidden) => break,
            other => {
                assert!(Instant::now() < deadline, "dave still reads: {other:?}");
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    // 3. b is killed in the middle of the conversation, with entries on their way to it, and
    // misses more; restarted on the same files, it gets everything, once, in order.
    for i in 0..3 {
        let text = format!("before b was killed {i}");
        alice.client.send(&topic, text.as_bytes()).await.unwrap();
        expected.push(text);
    }
    fed.kill("b.test");
    for i in 0..3 {
        let text = format!("while b was dead {i}");
        alice.client.send(&topic, text.as_bytes()).await.unwrap();
        expected.push(text);
    }
    fed.up("b.test");
    let started = Instant::now();
    bob.read_all(&topic, &expected).await;
    eprintln!("b caught up {:?} after its restart", started.elapsed());
    for m in [&mut alice, &mut carol] {
        m.read_all(&topic, &expected).await;
    }

    // 4. a stops: Bob's post is queued at b, which still serves what it has (so does c);
    // when a is back, the post lands, once. Alice's first post after the restart reaches b,
    // which then retries at once instead of waiting out its backoff (§8), so the two land in
    // either order.
    fed.stop("a.test");
    match bob.client.send(&topic, b"queued while a was down").await {
        Err(ClientError::Queued { host, .. }) => assert_eq!(host, "a.test"),
        other => panic!("expected the post to be queued: {other:?}"),
    }
    assert_eq!(bob.read_once(&topic).await.unwrap(), Vec::<String>::new());
    assert_eq!(carol.read_once(&topic).await.unwrap(), Vec::<String>::new());
    fed.up("a.test");
    let started = Instant::now();
    alice.client.send(&topic, b"a is back").await.unwrap();
    alice.read_count(&topic, expected.len() + 2).await;
    let mut landed = alice.read[expected.len()..].to_vec();
    expected.extend(landed.iter().cloned());
    landed.sort();
    assert_eq!(landed, texts(&["a is back", "queued while a was down"]));
    for m in [&mut carol, &mut bob] {
        m.read_all(&topic, &expected).await;
    }
    eprintln!(
        "the queued post landed {:?} after a's restart",
        started.elapsed()
    );

    // 6. `rdv verify` everywhere: one log, and the hosting server holds the participants'
    // cosignatures of it.
    for m in [&mut alice, &mut bob, &mut carol] {
        let report = m.client.verify(&topic).await.unwrap();
        assert!(report.ok(), "{}: {report:?}", m.client.user());
        assert!(report.witnesses.problems.is_empty());
        assert_eq!(report.size, log_size(&expected));
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let report = alice.client.verify(&topic).await.unwrap();
        assert!(report.ok(), "{report:?}");
        let cosigners: Vec<&str> = report
            .witnesses
            .cosigned
            .iter()
            .map(|(s, _)| s.as_str())
            .collect();
        if cosigners.contains(&"b.test") && cosigners.contains(&"c.test") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cosigned only by {cosigners:?}: {report:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The log's size once the messages `expected` are all in: one entry per message, and two
/// changes (the create and Dave's removal).
fn log_size(expected: &[String]) -> u64 {
    expected.len() as u64 + 2
}

/// The outcome of one TLS connection that sends a request: the start of the answer, or the
/// TLS error that ended it.
fn tls_request(
    addr: SocketAddr,
    sni: &str,
    roots: &Path,
    cert: Option<&(PathBuf, PathBuf)>,
) -> Result<String, rustls::Error> {
    let config = client_config(roots, cert);
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), sni.to_owned().try_into().unwrap())
            .unwrap();
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Under TLS 1.3 the server judges the client's certificate after the client has finished
    // its side of the handshake, so a refusal arrives as an alert on the first read.
    conn.writer()
        .write_all(
            format!(
                "GET /_rdv/federation/v1/server-keys HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    loop {
        while conn.wants_write() {
            conn.write_tls(&mut sock).unwrap();
        }
        if conn.read_tls(&mut sock).unwrap() == 0 {
            return Ok(String::new());
        }
        conn.process_new_packets()?;
        let mut buf = [0u8; 64];
        match conn.reader().read(&mut buf) {
            Ok(n) if n > 0 => return Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Ok(_) => return Ok(String::new()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

async fn put_transaction(client: &awc::Client, to: &str, txn: &Transaction) -> (u16, Vec<u8>) {
    transaction::send(client, to, txn).await.unwrap()
}

fn server_name(s: &str) -> ServerName {
    s.parse().unwrap()
}

/// A `topic.entry` event from a.test to b.test signed by `key`, dated now.
fn event(payload: &[u8], key: &ServerKey) -> rendezvous_protocol::wire::Verified<Event> {
    event_at(payload, key, rendezvous::state::now())
}

/// [`event`] dated `time`.
fn event_at(
    payload: &[u8],
    key: &ServerKey,
    time: u64,
) -> rendezvous_protocol::wire::Verified<Event> {
    Event::sign(
        &server_name("a.test"),
        &server_name("b.test"),
        EventKind::TopicEntry,
        Some(&TopicId::random(&server_name("a.test"))),
        payload.to_vec(),
        time,
        key,
    )
}

#[actix_rt::test]
async fn a_real_federation_listener_authenticates_its_peers() {
    let fed = federation("fed-procs-auth", &["a.test", "b.test"]);
    let (a, b) = (fed.node("a.test"), fed.node("b.test"));
    let ca_file = fed.ca.ca_file();

    // a's certificate opens b's listener (the control for what follows)...
    let answer = tls_request(b.federation, "b.test", &ca_file, Some(&a.certificate)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // ...no certificate, or one that does not chain to the federation CA, does not.
    assert_eq!(
        tls_request(b.federation, "b.test", &ca_file, None),
        Err(rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
        ))
    );
    let self_signed = fed.dir.join("self-signed");
    run(&[
        "federation-cert",
        "--name",
        "a.test",
        "--out",
        path_str(&self_signed),
    ]);
    let self_signed = (self_signed.join("cert.pem"), self_signed.join("key.pem"));
    assert_eq!(
        tls_request(b.federation, "b.test", &ca_file, Some(&self_signed)),
        Err(rustls::Error::AlertReceived(AlertDescription::UnknownCA))
    );

    // A certificate from the CA for another name cannot speak for a.test.
    let evil = fed.dir.join("evil");
    run(&[
        "federation-cert",
        "--name",
        "evil.test",
        "--out",
        path_str(&evil),
        "--ca-cert",
        path_str(&ca_file),
        "--ca-key",
        path_str(&fed.ca.ca_key()),
    ]);
    let a_key = server_key(&a.data_dir);
    let genuine = event(b"not an entry batch", &a_key);
    // Dated before b fetches a's key document: a verdict (`federation-api.md` §2).
    let forged = event_at(
        b"not an entry batch either",
        &ServerKey::generate(),
        rendezvous::state::now() - 10,
    );
    let txn = |id: &str| {
        Transaction::new(
            id.into(),
            server_name("a.test"),
            server_name("b.test"),
            vec![
                genuine.signed_bytes().clone(),
                forged.signed_bytes().clone(),
            ],
        )
    };
    let as_evil = peer_client(
        b.federation,
        &ca_file,
        Some(&(evil.join("cert.pem"), evil.join("key.pem"))),
    );
    let (status, body) = put_transaction(&as_evil, "b.test", &txn("evil-1")).await;
    let code: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, code["code"].as_str()), (401, Some("unauthorized")));

    // a's own certificate: b fetches a's server keys (through the SRV record) and judges each
    // event by its signature: the genuine one reaches the topic logic (which finds no entry
    // batch in it), the forged one does not.
    let as_a = peer_client(b.federation, &ca_file, Some(&a.certificate));
    let (status, body) = put_transaction(&as_a, "b.test", &txn("real-1")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let results: Vec<(EventId, u16, String)> = TransactionResponse::from_wire(&body)
        .unwrap()
        .results
        .into_iter()
        .map(|r| (EventId(r.id), r.status, r.code))
        .collect();
    assert_eq!(
        results,
        vec![
            (
                Event::id(genuine.signed_bytes()),
                400,
                "malformed".to_owned()
            ),
            (
                Event::id(forged.signed_bytes()),
                400,
                "bad_signature".to_owned()
            ),
        ]
    );
    // Forged and dated after that fetch: a may have rotated its key since, and b may not fetch
    // the document again yet, so "try later"; once it may, the verdict.
    let late = event_at(
        b"forged, dated later",
        &ServerKey::generate(),
        rendezvous::state::now() + 1,
    );
    let late_txn = |id: &str| {
        Transaction::new(
            id.into(),
            server_name("a.test"),
            server_name("b.test"),
            vec![late.signed_bytes().clone()],
        )
    };
    let codes = |body: &[u8]| -> Vec<(u16, String)> {
        TransactionResponse::from_wire(body)
            .unwrap()
            .results
            .into_iter()
            .map(|r| (r.status, r.code))
            .collect()
    };
    let (_, body) = put_transaction(&as_a, "b.test", &late_txn("late-1")).await;
    assert_eq!(codes(&body), [(503, "unavailable".to_owned())]);
    actix_rt::time::sleep(Duration::from_millis(2100)).await;
    let (_, body) = put_transaction(&as_a, "b.test", &late_txn("late-2")).await;
    assert_eq!(codes(&body), [(400, "bad_signature".to_owned())]);
    assert!(fed.dns().asked("_rendezvous._tcp.a.test.", RecordType::SRV));
    assert!(fed.dns().asked("fed.a.test.", RecordType::A));
}
