//! `--abuse`: abusive clients beside the posters, with the server's limits on (`BENCHMARKS.md`,
//! "Limits under load"). The posters and the setup come from 127.0.0.1, which the run's
//! configuration exempts from the per-address classes; the abusers come from other loopback
//! addresses and meet every default:
//!
//! - **flooders** post login challenges without end (`login_ip`, `any_ip`: `429`);
//! - **oversize** senders post 64 KiB registrations (cap 4 KiB: `413`, unread);
//! - **guessers** call `/v1/sync` with made-up tokens (`401`, then `any_ip`);
//! - **hogs** hold `/v1/stream` open on members' devices and never read: each falls 2 MiB
//!   behind and is closed;
//! - a registered **abuser** drains the members' topic keys (`claim`, `claim_victim`: the
//!   last-resort key is served instead) and floods topic creates (`topic_create`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde::Serialize;

use rendezvous_client::http::Http;
use rendezvous_client::tls::{Trust, client_config};

use crate::Res;

/// The configuration of an abuse run: `[limits]` lines and `[limits.rate]`. Only the classes
/// of the members' own traffic are lifted (they post as fast as they can, which the per-user
/// defaults would refuse; `topic_create`'s burst holds the setup's creates); the address
/// classes keep their defaults, with the posters' address exempt.
pub(crate) const ABUSE_LIMITS: &str = "ws_per_device = 8\n";
pub(crate) const ABUSE_RATES: &str = "[limits.rate]\n\
    exempt_ips = [\"127.0.0.1\"]\n\
    upload = { per_second = 1000000, burst = 1000000 }\n\
    topic_create = { per_hour = 30, burst = 64 }\n\
    send = { per_second = 1000000, burst = 1000000 }\n\
    send_kib = { per_second = 1000000, burst = 1000000 }\n\
    stream = { per_second = 1000000, burst = 1000000 }\n\
    any_user = { per_second = 1000000, burst = 1000000 }\n";

/// What the abusers were answered.
#[derive(Debug, Default, Serialize)]
pub(crate) struct AbuseReport {
    /// Requests sent, by kind.
    pub(crate) requests: BTreeMap<&'static str, u64>,
    /// Answers by kind and status (`"flood 429"`), and transport failures (`"flood error"`).
    pub(crate) answers: BTreeMap<String, u64>,
    /// Streams opened by the hogs.
    pub(crate) hogs: usize,
}

/// What the abuser thread needs.
pub(crate) struct AbuseSettings {
    pub(crate) url: String,
    pub(crate) trust: Trust,
    /// Concurrent abusive connections of each kind but the hogs.
    pub(crate) per_kind: usize,
    /// Members' tokens whose devices the hogs hold streams on (two each).
    pub(crate) hog_tokens: Vec<String>,
    /// The abusive user's token (claims and topic creates).
    pub(crate) abuser_token: String,
    /// The users whose topic keys the abuser claims.
    pub(crate) victims: Vec<rendezvous_protocol::ids::UserId>,
}

/// How an abusive request authenticates.
#[derive(Clone)]
enum Auth {
    None,
    /// A new made-up token each time.
    Guess,
    Token(String),
}

/// Runs the abusers from when `barrier` opens until `stop` is set.
pub(crate) fn abuser_thread(
    settings: AbuseSettings,
    barrier: Arc<Barrier>,
    stop: Arc<AtomicBool>,
) -> Res<AbuseReport> {
    actix_rt::System::new().block_on(async move {
        let mut report = AbuseReport::default();
        let mut hogs = Vec::new();
        for token in &settings.hog_tokens {
            for _ in 0..2 {
                let http = Http::new(&settings.url, &settings.trust).map_err(|e| e.to_string());
                match http {
                    Ok(http) => match http.stream(token).await {
                        // Never polled: nothing is read from the socket again.
                        Ok(s) => hogs.push((http, s)),
                        Err(e) => *report.answers.entry(format!("hog {e}")).or_default() += 1,
                    },
                    Err(e) => return Err(e),
                }
            }
        }
        report.hogs = hogs.len();
        barrier.wait();
        use rendezvous_protocol::api::{Body, ClaimTopicKeysRequest};
        let claim = ClaimTopicKeysRequest {
            users: settings.victims.clone(),
        }
        .to_cbor();
        let abuser = Auth::Token(settings.abuser_token.clone());
        let kinds: [(&'static str, &'static str, &'static str, Vec<u8>, Auth); 5] = [
            (
                "flood",
                "POST",
                "/v1/login/challenge",
                vec![0x80],
                Auth::None,
            ),
            (
                "oversize",
                "POST",
                "/v1/register",
                vec![0x5a; 64 * 1024],
                Auth::None,
            ),
            ("guess", "GET", "/v1/sync?since=0", Vec::new(), Auth::Guess),
            (
                "claim",
                "POST",
                "/v1/topic-keys/claim",
                claim,
                abuser.clone(),
            ),
            ("topics", "POST", "/v1/topics", vec![0x80], abuser),
        ];
        let mut tasks = Vec::new();
        let mut address = 2u8;
        for (kind, method, path, body, auth) in kinds {
            // One abusive user: one connection for each of its kinds.
            let connections = match auth {
                Auth::Token(_) => 1,
                _ => settings.per_kind,
            };
            for _ in 0..connections {
                let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, address));
                address = address.wrapping_add(1).max(2);
                let (url, stop) = (format!("{}{path}", settings.url), stop.clone());
                let tls = client_config(&settings.trust).map_err(|e| e.to_string())?;
                let (body, auth) = (body.clone(), auth.clone());
                tasks.push(actix_rt::spawn(async move {
                    abuse_loop(kind, method, url, body, auth, from, tls, stop).await
                }));
            }
        }
        for t in tasks {
            let (kind, sent, answers) = t.await.map_err(|e| format!("abuser task: {e}"))?;
            *report.requests.entry(kind).or_default() += sent;
            for (k, n) in answers {
                *report.answers.entry(k).or_default() += n;
            }
        }
        drop(hogs);
        Ok(report)
    })
}

/// One abusive connection: the same request again and again until `stop`.
#[allow(clippy::too_many_arguments)]
async fn abuse_loop(
    kind: &'static str,
    method: &'static str,
    url: String,
    body: Vec<u8>,
    auth: Auth,
    from: IpAddr,
    tls: rustls::ClientConfig,
    stop: Arc<AtomicBool>,
) -> (&'static str, u64, BTreeMap<String, u64>) {
    let client = awc::Client::builder()
        .connector(
            awc::Connector::new()
                .rustls_0_23(Arc::new(tls))
                .local_address(from)
                .timeout(Duration::from_secs(10)),
        )
        .timeout(Duration::from_secs(30))
        .finish();
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap_or_default();
    let (mut sent, mut answers) = (0u64, BTreeMap::new());
    let mut guess = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut req = client
            .request(method.clone(), &url)
            .insert_header(("content-type", "application/cbor"));
        match &auth {
            Auth::None => {}
            Auth::Guess => {
                guess += 1;
                req = req.bearer_auth(format!("{guess:064x}"));
            }
            Auth::Token(t) => req = req.bearer_auth(t),
        }
        sent += 1;
        let answer = match req.send_body(body.clone()).await {
            Ok(mut resp) => {
                // Read what little the refusal says, so the connection can be reused.
                let _ = resp.body().limit(64 * 1024).await;
                format!("{kind} {}", resp.status().as_u16())
            }
            Err(_) => format!("{kind} error"),
        };
        *answers.entry(answer).or_default() += 1;
    }
    (kind, sent, answers)
}
