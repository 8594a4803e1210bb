//! Connection, head and body-memory limits of the client API (`client-api.md` §1.2), tried as an
//! abusive client would against a real `rendezvous` process: unfinished large bodies beyond the
//! budget are refused without being read, one address cannot hold more than its connections, a
//! slow head is cut without delaying others, and an oversized or malformed head gets the JSON
//! refusal (`431`, `400`), even where actix-http would refuse it bodiless — the first head of a
//! connection or a later one, after a body of either framing.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rendezvous_client::Client;
use rendezvous_protocol::topic::History;
use rendezvous_testkit::config::ServerConfig;
use rendezvous_testkit::http1::{RawTls, answer, answer_within, raw_tls, rss, send};
use rendezvous_testkit::process::{Launch, ServerProcess};
use rendezvous_testkit::server::uid;
use rendezvous_testkit::{TempDir, raw, rendezvous_bin};

const HERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const MIB: usize = 1024 * 1024;

fn start(dir: &TempDir, configure: impl FnOnce(&mut ServerConfig)) -> (ServerProcess, PathBuf) {
    let config = dir.join("rendezvous.toml");
    let mut c = ServerConfig::new("localhost", &dir.join("data"), [127, 0, 0, 1]);
    configure(&mut c);
    c.write(&config);
    (Launch::new(rendezvous_bin!(), &config).start(), config)
}

async fn user(dir: &TempDir, server: &ServerProcess, config: &Path, name: &str) -> Client {
    let pin = rendezvous_testkit::process::admin(rendezvous_bin!(), config, &["pin"]);
    Client::register(
        &dir.join(name),
        &rendezvous_testkit::passphrase(),
        server.url(),
        server.trust(),
        &pin,
        &uid(name),
    )
    .await
    .unwrap()
}

/// A connection that announced a 4 MiB topic-key upload and sent its head only.
fn large_upload(server: &ServerProcess, token: &str) -> RawTls {
    let mut s = raw_tls(server, HERE);
    let head = format!(
        "POST /v1/topic-keys HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         content-type: application/cbor\r\ncontent-length: {}\r\n\r\n",
        4 * MIB
    );
    assert!(send(&mut s, head.as_bytes()));
    s
}

/// Whether the server is still waiting for this connection's body (no answer, not closed).
fn waiting(s: &mut RawTls) -> Result<(), (u16, String)> {
    match answer_within(s, Duration::from_millis(700)) {
        None => Ok(()),
        Some(answer) => Err(answer),
    }
}

/// The refusal of a body that was not read: status, code and `Retry-After: 1`, at once.
fn refused(s: &mut RawTls, status: u16, code: &str) {
    let started = Instant::now();
    let (got, text) = answer_within(s, Duration::from_secs(5)).expect("an answer");
    assert_eq!(got, status, "{text}");
    assert!(text.contains(&format!("\"code\":\"{code}\"")), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// After a refusal the connection closes soon (actix discards what is still in flight, without
/// keeping it, for its 1 s `client_disconnect_timeout`): the rest of the body goes nowhere.
fn closes_soon(s: &mut RawTls) {
    let started = Instant::now();
    let chunk = vec![0u8; MIB];
    while send(s, &chunk) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the server goes on reading a refused body"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[actix_rt::test]
async fn body_budget_answers_503_with_retry_after() {
    let dir = TempDir::new("budget");
    let (server, config) = start(&dir, |c| {
        c.limits.body_memory_bytes = Some(26 * MIB as u64);
        c.limits.bodies_per_user = 4;
    });
    let mut tokens = Vec::new();
    let mut clients = Vec::new();
    for name in ["alice", "bob", "carol", "dave", "erin"] {
        let client = user(&dir, &server, &config, name).await;
        tokens.push(raw::http(&server, &client).1);
        clients.push(client);
    }
    let pid = server.ready.pid;
    let before = rss(pid);
    // (Blocking I/O in the test's task: the server is another process.)
    let mut held = Vec::new();
    // Alice: four bodies over 64 KiB at once, the fifth is refused (429).
    for _ in 0..4 {
        let mut s = large_upload(&server, &tokens[0]);
        waiting(&mut s).unwrap();
        held.push(s);
    }
    let mut fifth = large_upload(&server, &tokens[0]);
    refused(&mut fifth, 429, "rate_limited");
    closes_soon(&mut fifth);
    // Bob: two more fill 24 of the 26 MiB; the third does not fit (503).
    for _ in 0..2 {
        let mut s = large_upload(&server, &tokens[1]);
        waiting(&mut s).unwrap();
        held.push(s);
    }
    let mut third = large_upload(&server, &tokens[1]);
    refused(&mut third, 503, "unavailable");
    closes_soon(&mut third);
    // Everyone else's large bodies: 503 without reading, however many. Their senders go on
    // sending and keep their connections: what they send is not kept.
    let mut gone = Vec::new();
    for token in &tokens[2..] {
        for _ in 0..4 {
            let mut s = large_upload(&server, token);
            refused(&mut s, 503, "unavailable");
            let _ = send(&mut s, &vec![0u8; 4 * MIB - 1]);
            gone.push(s);
        }
    }
    // The held bodies arrive but for their last byte.
    for s in &mut held {
        assert!(send(s, &vec![0u8; 4 * MIB - 1]));
    }
    std::thread::sleep(Duration::from_secs(1));
    let grown = rss(pid).saturating_sub(before);
    // 24 MiB of bodies admitted; without the budget 22 bodies, 88 MiB.
    assert!(
        grown < 64 * MIB as u64,
        "RSS grew by {grown} bytes with 26 MiB of bodies admitted"
    );
    // A small request still goes through.
    let mut carol = clients.remove(2);
    carol.create_topic(&[], History::Shared).await.unwrap();
    // Dropped bodies give their share back: alice may upload again.
    drop((held, gone, fifth, third));
    std::thread::sleep(Duration::from_millis(500));
    let mut again = large_upload(&server, &tokens[0]);
    waiting(&mut again).unwrap();
    server.terminate();
}

#[actix_rt::test]
async fn connections_per_ip_are_capped() {
    let dir = TempDir::new("conns");
    let (server, _config) = start(&dir, |c| c.limits.connections_per_ip = 4);
    let crowded = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));
    let status = |s: &mut RawTls| {
        if !send(s, b"GET /v1/status HTTP/1.1\r\nhost: localhost\r\n\r\n") {
            return 0;
        }
        answer(s).0
    };
    let mut open: Vec<RawTls> = (0..4).map(|_| raw_tls(&server, crowded)).collect();
    for s in &mut open {
        assert_eq!(status(s), 200);
    }
    // The fifth from that address is closed before any request is read.
    let mut fifth = raw_tls(&server, crowded);
    assert_eq!(status(&mut fifth), 0, "a fifth connection was served");
    // Other addresses are not limited by it.
    assert_eq!(status(&mut raw_tls(&server, other)), 200);
    // A closed connection frees its place.
    drop(open.pop());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(status(&mut raw_tls(&server, crowded)), 200);
    server.terminate();
}

#[actix_rt::test]
async fn slow_head_times_out() {
    let dir = TempDir::new("slowhead");
    let (server, _config) = start(&dir, |c| c.limits.head_timeout_ms = Some(1000));
    let started = Instant::now();
    let mut slow = raw_tls(&server, HERE);
    assert!(send(&mut slow, b"GET /v1/status HTTP/1.1\r\nhost: loc"));
    // Meanwhile another request is served at once.
    let mut quick = raw_tls(&server, HERE);
    assert!(send(
        &mut quick,
        b"GET /v1/status HTTP/1.1\r\nhost: localhost\r\n\r\n"
    ));
    assert_eq!(answer(&mut quick).0, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    // The slow head is cut with the JSON 408, well before actix's own 5 s.
    let (status, text) = answer_within(&mut slow, Duration::from_secs(10)).unwrap();
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("\"code\":\"timeout\""), "{text}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
    server.terminate();
}

/// A `GET /v1/status` with `fields` header fields besides `host`, each of `value` bytes.
fn head_with(server: &ServerProcess, fields: usize, value: usize) -> (u16, String) {
    let mut s = raw_tls(server, HERE);
    let mut head = String::from("GET /v1/status HTTP/1.1\r\nhost: localhost\r\n");
    for i in 0..fields {
        head.push_str(&format!("x-field-{i}: {}\r\n", "v".repeat(value)));
    }
    head.push_str("\r\n");
    assert!(send(&mut s, head.as_bytes()));
    answer(&mut s)
}

#[actix_rt::test]
async fn too_many_headers_get_json_431() {
    let dir = TempDir::new("headers");
    let (server, _config) = start(&dir, |_| {});
    // 64 fields (host and 63 more) pass; 65 are refused with the JSON body.
    assert_eq!(head_with(&server, 63, 1).0, 200);
    let (status, text) = head_with(&server, 64, 1);
    assert_eq!(status, 431, "{text}");
    assert!(text.contains("\"code\":\"headers_too_large\""), "{text}");
    // Few fields but more than 16 KiB of head: the same.
    let (status, text) = head_with(&server, 3, 6000);
    assert_eq!(status, 431, "{text}");
    assert!(text.contains("\"code\":\"headers_too_large\""), "{text}");
    // Over 96 fields, which actix-http would refuse bodiless, the first-head check answers.
    let (status, text) = head_with(&server, 100, 1);
    assert_eq!(status, 431, "{text}");
    assert!(text.contains("\"code\":\"headers_too_large\""), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    server.terminate();
}

#[actix_rt::test]
async fn bad_content_length_gets_json_400() {
    let dir = TempDir::new("badlength");
    let (server, _config) = start(&dir, |_| {});
    for head in [
        "POST /v1/login HTTP/1.1\r\nhost: localhost\r\ncontent-length: abc\r\n\r\n",
        "POST /v1/login HTTP/1.1\r\nhost: localhost\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
        "GET /v1/status HTTP/1.1\r\nhost: localhost\r\nbad field\r\n\r\n",
    ] {
        let mut s = raw_tls(&server, HERE);
        assert!(send(&mut s, head.as_bytes()));
        let (status, text) = answer(&mut s);
        assert_eq!(status, 400, "{head:?}: {text}");
        assert!(text.contains("\"code\":\"malformed\""), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
    }
    // A good head on the next connection is served as before.
    let mut s = raw_tls(&server, HERE);
    assert!(send(
        &mut s,
        b"GET /v1/status HTTP/1.1\r\nhost: localhost\r\n\r\n"
    ));
    assert_eq!(answer(&mut s).0, 200);
    server.terminate();
}

/// Everything the server writes until it closes the connection.
fn until_closed(s: &mut RawTls) -> String {
    use std::io::Read;
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        text.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// `text` is an answer with status `first`, then the JSON `400 malformed`, and nothing else.
fn answered_then_refused(text: &str, first: u16) {
    let starts: Vec<_> = text.match_indices("HTTP/1.1 ").map(|(i, _)| i).collect();
    assert_eq!(starts.len(), 2, "{text}");
    assert!(text.starts_with(&format!("HTTP/1.1 {first} ")), "{text}");
    let refusal = &text[starts[1]..];
    assert!(refusal.starts_with("HTTP/1.1 400 "), "{text}");
    assert!(refusal.contains("\"code\":\"malformed\""), "{text}");
    assert!(
        refusal.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
}

const BAD_LATER: &str = "GET /v1/status HTTP/1.1\r\nhost: localhost\r\ncontent-length: abc\r\n\r\n";

#[actix_rt::test]
async fn a_later_head_is_checked() {
    let dir = TempDir::new("laterhead");
    let (server, _config) = start(&dir, |_| {});
    // Kept alive: a good request answered, then a bad head on the same connection.
    let mut s = raw_tls(&server, HERE);
    assert!(send(
        &mut s,
        b"GET /v1/status HTTP/1.1\r\nhost: localhost\r\n\r\n"
    ));
    assert_eq!(answer(&mut s).0, 200);
    assert!(send(&mut s, BAD_LATER.as_bytes()));
    let (status, text) = answer(&mut s);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("\"code\":\"malformed\""), "{text}");
    server.terminate();
}

/// A `POST /v1/login` with a JSON body, where the endpoint takes CBOR: its JSON refusal.
const LOGIN_REFUSED: u16 = 415;

#[actix_rt::test]
async fn a_head_after_a_length_body_is_checked() {
    let dir = TempDir::new("afterlength");
    let (server, _config) = start(&dir, |_| {});
    // Pipelined in one write: a POST with a Content-Length body, then the bad head.
    let body = r#"{"user":"nobody"}"#;
    let post = format!(
        "POST /v1/login HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}{BAD_LATER}",
        body.len()
    );
    let mut s = raw_tls(&server, HERE);
    assert!(send(&mut s, post.as_bytes()));
    answered_then_refused(&until_closed(&mut s), LOGIN_REFUSED);
    server.terminate();
}

#[actix_rt::test]
async fn a_head_after_a_chunked_body_is_checked() {
    let dir = TempDir::new("afterchunked");
    let (server, _config) = start(&dir, |_| {});
    // A chunked POST (an extension, a trailer), split across writes, then the bad head.
    let mut s = raw_tls(&server, HERE);
    let chunked = "POST /v1/login HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
                   transfer-encoding: chunked\r\n\r\n5;x=1\r\n{\"use\r\n";
    assert!(send(&mut s, chunked.as_bytes()));
    let rest = format!("c\r\nr\":\"nobody\"}}\r\n0\r\nx-t: 1\r\n\r\n{BAD_LATER}");
    assert!(send(&mut s, rest.as_bytes()));
    answered_then_refused(&until_closed(&mut s), LOGIN_REFUSED);
    server.terminate();
}

#[actix_rt::test]
async fn http2_is_served_unchecked() {
    use std::io::{Read, Write};
    let dir = TempDir::new("h2");
    let (server, _config) = start(&dir, |_| {});
    let mut tls = rendezvous_client::tls::client_config(&server.trust()).unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let addr = server.url().trim_start_matches("https://").to_owned();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(tls), name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
    let mut s = rustls::StreamOwned::new(conn, tcp);
    // The client preface and an empty SETTINGS frame; the server's first frame is its SETTINGS.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    s.flush().unwrap();
    let mut frame = [0u8; 9];
    s.read_exact(&mut frame).unwrap();
    assert_eq!(frame[3], 0x04, "not a SETTINGS frame: {frame:?}");
    server.terminate();
}
