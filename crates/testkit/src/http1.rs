//! The client API at the HTTP level, from a loopback address of the test's choosing: one request
//! and its refusal ([`request`]), and raw TLS connections ([`raw_tls`]) for heads and bodies
//! no HTTP client sends, with their answers read by hand ([`answer`], [`answer_within`]).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::raw::Api;

/// What a refusal said.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The JSON body's `code` (empty below 400).
    pub code: String,
    pub retry_after: Option<u64>,
}

/// One request from `from`; an answer of 400 or more must carry the JSON error body.
pub async fn request(
    server: &impl Api,
    from: IpAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    let tls = rendezvous_client::tls::client_config(&server.trust()).unwrap();
    let client = awc::Client::builder()
        .connector(
            awc::Connector::new()
                .rustls_0_23(Arc::new(tls))
                .local_address(from),
        )
        .timeout(Duration::from_secs(30))
        .finish();
    let mut req = client
        .request(method.parse().unwrap(), format!("{}{path}", server.url()))
        .insert_header(("content-type", "application/cbor"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let mut resp = req.send_body(body).await.unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bytes = resp.body().limit(1 << 20).await.unwrap_or_default();
    let code = match status >= 400 {
        true => {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "{status} without a JSON body: {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            });
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
            v["code"].as_str().unwrap().to_owned()
        }
        false => String::new(),
    };
    Answer {
        status,
        code,
        retry_after,
    }
}

/// A raw TLS connection from `from` to the client API, its handshake done.
pub type RawTls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Opens a [`RawTls`] from `from` (port 0) and completes the handshake.
pub fn raw_tls(server: &impl Api, from: IpAddr) -> RawTls {
    let tls = rendezvous_client::tls::client_config(&server.trust()).unwrap();
    let addr: SocketAddr = server.url().trim_start_matches("https://").parse().unwrap();
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    socket.bind(&SocketAddr::new(from, 0).into()).unwrap();
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(10))
        .unwrap();
    let mut tcp: TcpStream = socket.into();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(tls), name).unwrap();
    while conn.is_handshaking() {
        if conn.complete_io(&mut tcp).is_err() {
            break;
        }
    }
    rustls::StreamOwned::new(conn, tcp)
}

/// Writes `bytes`; false when the connection is gone.
pub fn send(stream: &mut RawTls, bytes: &[u8]) -> bool {
    stream.write_all(bytes).is_ok() && stream.flush().is_ok()
}

/// Reads an HTTP/1.1 answer until the connection closes or the body ends: status (0 when the
/// connection closed without one) and text.
pub fn answer(stream: &mut impl Read) -> (u16, String) {
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
        let s = String::from_utf8_lossy(&text);
        if let Some((head, body)) = s.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if len.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    let s = String::from_utf8_lossy(&text).into_owned();
    let status = s
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, s)
}

/// The answer, if one starts (or the connection closes) within `wait`; `None` while the server
/// is still waiting for more of the request.
pub fn answer_within(stream: &mut RawTls, wait: Duration) -> Option<(u16, String)> {
    stream.sock.set_read_timeout(Some(wait)).unwrap();
    let mut first = [0u8; 1];
    let got = match stream.read(&mut first) {
        Ok(0) => Some((0, String::new())),
        Ok(_) => None,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return None;
        }
        Err(_) => Some((0, String::new())),
    };
    stream
        .sock
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    if let Some(closed) = got {
        return Some(closed);
    }
    let (_, rest) = answer(stream);
    let text = format!("{}{rest}", first[0] as char);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Some((status, text))
}

/// The resident memory of process `pid`, bytes.
pub fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}
