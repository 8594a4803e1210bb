//! Every rate class of the client API (`client-api.md` §1.3) refuses against a real
//! `rendezvous` process: with the class alone set to a burst of 2, the third request to an
//! endpoint it covers is `429 rate_limited` with `Retry-After`, before the endpoint reads its
//! body (junk bodies get the endpoint's own refusal within the burst), and another key (an
//! address or a user) still passes.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};

use rendezvous::limits::{Rate, RateConfig};
use rendezvous_testkit::config::ServerConfig;
use rendezvous_testkit::http1::request;
use rendezvous_testkit::process::{Launch, ServerProcess, register};
use rendezvous_testkit::{TempDir, raw, rendezvous_bin};

/// One class and a request it covers.
struct Case {
    class: &'static str,
    set: fn(&mut RateConfig, Rate),
    method: &'static str,
    path: &'static str,
    /// Whether the request takes a token (the key is then the user).
    token: bool,
}

const CASES: &[Case] = &[
    Case {
        class: "register_ip",
        set: |r, x| r.register_ip = x,
        method: "POST",
        path: "/v1/register",
        token: false,
    },
    Case {
        class: "devices_ip",
        set: |r, x| r.devices_ip = x,
        method: "POST",
        path: "/v1/devices",
        token: false,
    },
    Case {
        class: "login_ip",
        set: |r, x| r.login_ip = x,
        method: "POST",
        path: "/v1/login",
        token: false,
    },
    Case {
        class: "link_relay_ip",
        set: |r, x| r.link_relay_ip = x,
        method: "GET",
        path: "/v1/link/0011223344556677/response",
        token: false,
    },
    Case {
        class: "identity",
        set: |r, x| r.identity = x,
        method: "GET",
        path: "/v1/users/%40bob%3Alocalhost/identity",
        token: true,
    },
    Case {
        class: "link_open",
        set: |r, x| r.link_open = x,
        method: "POST",
        path: "/v1/link",
        token: true,
    },
    Case {
        class: "link_relay",
        set: |r, x| r.link_relay = x,
        method: "GET",
        path: "/v1/link/0011223344556677/request",
        token: true,
    },
    Case {
        class: "push",
        set: |r, x| r.push = x,
        method: "PUT",
        path: "/v1/push",
        token: true,
    },
    Case {
        class: "upload",
        set: |r, x| r.upload = x,
        method: "POST",
        path: "/v1/prekeys",
        token: true,
    },
    Case {
        class: "stream",
        set: |r, x| r.stream = x,
        method: "GET",
        path: "/v1/stream",
        token: true,
    },
    Case {
        class: "any_user",
        set: |r, x| r.any_user = x,
        method: "GET",
        path: "/v1/topics",
        token: true,
    },
];

fn addr(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 2, n))
}

/// Three requests of `case` as `token` (or none) from `from`: their statuses and codes.
async fn three(
    server: &ServerProcess,
    case: &Case,
    from: IpAddr,
    token: Option<&str>,
) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for _ in 0..3 {
        let body = match case.method {
            "GET" | "DELETE" => Vec::new(),
            _ => vec![0x80],
        };
        let a = request(server, from, case.method, case.path, token, body).await;
        if a.status == 429 {
            assert!(
                a.retry_after.is_some_and(|s| s >= 1),
                "{}: {a:?}",
                case.class
            );
        }
        out.push((a.status, a.code));
    }
    out
}

#[actix_rt::test]
async fn every_class_refuses_past_its_burst_and_only_its_key() {
    for (n, case) in CASES.iter().enumerate() {
        let dir = TempDir::new(&format!("rate-{}", case.class));
        // Users register on an unlimited run; the limited run starts on the same data (the
        // tokens are stored, the limiters' state is not).
        let config = dir.join("rendezvous.toml");
        let mut c = ServerConfig::new("localhost", &dir.join("data"), [127, 0, 0, 1]);
        c.write(&config);
        let server = Launch::new(rendezvous_bin!(), &config).start();
        let alice = register(rendezvous_bin!(), &dir, &server, &config, "alice").await;
        let bob = register(rendezvous_bin!(), &dir, &server, &config, "bob").await;
        let (mine, other) = match case.token {
            true => (
                Some(raw::http(&server, &alice).1),
                Some(raw::http(&server, &bob).1),
            ),
            false => (None, None),
        };
        server.terminate();
        (case.set)(&mut c.limits.rate, Rate::minute(1, 2));
        c.write(&config);
        let server = Launch::new(rendezvous_bin!(), &config).start();
        let from = addr(10 + n as u8);
        let got = three(&server, case, from, mine.as_deref()).await;
        for (status, code) in &got[..2] {
            assert_ne!(*status, 429, "{}: within the burst: {got:?}", case.class);
            assert_ne!(code, "rate_limited", "{}: {got:?}", case.class);
        }
        assert_eq!(
            (got[2].0, got[2].1.as_str()),
            (429, "rate_limited"),
            "{}: past the burst: {got:?}",
            case.class
        );
        // Another key: another user from the same address, or another address.
        let other_from = match case.token {
            true => from,
            false => addr(200 + n as u8),
        };
        let body = match case.method {
            "GET" | "DELETE" => Vec::new(),
            _ => vec![0x80],
        };
        let a = request(
            &server,
            other_from,
            case.method,
            case.path,
            other.as_deref(),
            body,
        )
        .await;
        assert_ne!(
            a.status, 429,
            "{}: another key was limited: {a:?}",
            case.class
        );
        server.terminate();
    }
}
