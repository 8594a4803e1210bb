//! Wake-up endpoints (`client-api.md` §7.2): which URLs a device may register, and the empty
//! POSTs sent to them.
//!
//! A wake-up URL names a host the server did not choose, so it passes the
//! [`OutboundPolicy`](crate::net::OutboundPolicy): at registration and again at every wake-up
//! its host is resolved, every address checked, and the POST connects only to a checked address
//! ([`FixedAddrs`]: the HTTP stack never resolves the name again). Redirects are not followed:
//! a `3xx` ends the wake-up for good, like a `4xx`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_tls::connect::{Connector, Resolver};
use tokio::sync::mpsc;

use super::PushHub;
use crate::net::{FixedAddrs, Host, HostError, ResolveError, TargetResolver};

/// Longest wake-up URL accepted, bytes.
pub const MAX_PUSH_URL_LEN: usize = 2048;
/// Time for one wake-up POST, connection included.
const WAKEUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a wake-up URL was refused (`client-api.md` §7.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushUrlError {
    /// Longer than [`MAX_PUSH_URL_LEN`].
    #[error("push URL of {len} bytes, longer than {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// [`MAX_PUSH_URL_LEN`].
        max: usize,
    },
    /// Not a URL.
    #[error("push URL does not parse")]
    Unparsable,
    /// A URL without a host.
    #[error("push URL has no host")]
    NoHost,
    /// Plain HTTP to a host that is not a loopback address, although allowed on loopback.
    #[error("plain-HTTP push URLs are allowed to loopback addresses only, not to {host}")]
    PlainHttpNotLoopback {
        /// The URL's host.
        host: String,
    },
    /// Any other scheme than HTTPS (or HTTP on loopback when allowed).
    #[error("push URLs must be https")]
    NotHttps,
    /// The host is `localhost`, numeric without being an address, or not a DNS name.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The host resolves to an address this server does not connect to, or to none.
    #[error("push URL: {0}")]
    Target(#[from] ResolveError),
}

/// A wake-up URL that passed [`check_push_url`]: its host and port, to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// The URL as registered.
    pub url: String,
    /// Its host.
    pub host: Host,
    /// Its port (443 or 80 when the URL gives none).
    pub port: u16,
}

impl PushTarget {
    /// The target's addresses, resolved now, each checked.
    pub async fn resolve(&self, targets: &TargetResolver) -> Result<Vec<SocketAddr>, ResolveError> {
        targets.resolve(&self.host, self.port).await
    }
}

/// The form of a wake-up URL: HTTPS (plain HTTP to a loopback address when
/// `allow_loopback_http`), a host that is an IP literal or a DNS name (not `localhost`, not a
/// numeric form). Its addresses are checked by [`PushTarget::resolve`].
pub fn check_push_url(url: &str, allow_loopback_http: bool) -> Result<PushTarget, PushUrlError> {
    if url.len() > MAX_PUSH_URL_LEN {
        return Err(PushUrlError::TooLong {
            len: url.len(),
            max: MAX_PUSH_URL_LEN,
        });
    }
    let uri: actix_web::http::Uri = url.parse().map_err(|_| PushUrlError::Unparsable)?;
    let raw_host = uri.host().ok_or(PushUrlError::NoHost)?;
    let host = Host::parse(raw_host)?;
    let port = match uri.scheme_str() {
        Some("https") => 443,
        Some("http") if allow_loopback_http => match &host {
            Host::Ip(ip) if ip.is_loopback() => 80,
            _ => {
                return Err(PushUrlError::PlainHttpNotLoopback {
                    host: raw_host.to_owned(),
                });
            }
        },
        _ => return Err(PushUrlError::NotHttps),
    };
    Ok(PushTarget {
        url: url.to_owned(),
        host,
        port: uri.port_u16().unwrap_or(port),
    })
}

/// Delivers wake-ups: an empty POST per URL, retried with capped exponential backoff for up to
/// `retry_for`. Each attempt resolves and checks the host again; a refused address or any answer
/// but `2xx`, `429` and `5xx` ends the wake-up. Runs until the hub is dropped.
pub async fn run_wakeups(
    hub: Arc<PushHub>,
    mut rx: mpsc::UnboundedReceiver<String>,
    tls: Arc<rustls::ClientConfig>,
    allow_loopback_http: bool,
    retry_for: Duration,
) {
    while let Some(url) = rx.recv().await {
        let hub = hub.clone();
        let tls = tls.clone();
        actix_web::rt::spawn(async move {
            match check_push_url(&url, allow_loopback_http) {
                Ok(target) => wake(&hub, &target, &tls, retry_for).await,
                Err(e) => tracing::info!(%e, "stored push URL refused; no wake-up"),
            }
            hub.wake_done(&url);
        });
    }
}

/// What one wake-up attempt came to.
enum Outcome {
    Done,
    /// Refused for good: logged, not retried.
    GiveUp,
    /// Try again after the backoff.
    Retry(String),
}

async fn wake(
    hub: &PushHub,
    target: &PushTarget,
    tls: &Arc<rustls::ClientConfig>,
    retry_for: Duration,
) {
    let started = std::time::Instant::now();
    let mut delay = Duration::from_secs(1);
    loop {
        match attempt(hub, target, tls).await {
            Outcome::Done | Outcome::GiveUp => return,
            Outcome::Retry(why) => {
                if started.elapsed() + delay > retry_for {
                    tracing::info!(%why, "push endpoint unreachable; giving up");
                    return;
                }
                actix_web::rt::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(300));
            }
        }
    }
}

/// One POST: resolve and check, connect only to the checked addresses, follow no redirect.
async fn attempt(hub: &PushHub, target: &PushTarget, tls: &Arc<rustls::ClientConfig>) -> Outcome {
    let addrs = match target.resolve(hub.targets()).await {
        Ok(addrs) => addrs,
        Err(ResolveError::Failed { detail, .. }) => return Outcome::Retry(detail),
        Err(e) => {
            tracing::info!(%e, "push endpoint refused: not a public address; giving up");
            return Outcome::GiveUp;
        }
    };
    let connector = awc::Connector::new()
        .connector(Connector::new(Resolver::custom(FixedAddrs(addrs))).service())
        .timeout(WAKEUP_TIMEOUT)
        .rustls_0_23(tls.clone());
    let client = awc::Client::builder()
        .connector(connector)
        .disable_redirects()
        .timeout(WAKEUP_TIMEOUT)
        .finish();
    match client
        .post(target.url.as_str())
        .send_body(Vec::<u8>::new())
        .await
    {
        Ok(resp) if resp.status().is_success() => Outcome::Done,
        Ok(resp) if resp.status().is_redirection() => {
            tracing::info!(status = %resp.status(), "push endpoint redirects; not followed, giving up");
            Outcome::GiveUp
        }
        Ok(resp) if resp.status().is_client_error() && resp.status().as_u16() != 429 => {
            tracing::info!(status = %resp.status(), "push endpoint refused a wake-up; giving up");
            Outcome::GiveUp
        }
        Ok(resp) => Outcome::Retry(format!("HTTP {}", resp.status())),
        Err(e) => Outcome::Retry(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_url_forms() {
        let ok = check_push_url("https://push.example.com:8443/up/x", false).unwrap();
        assert_eq!(ok.host, Host::Name("push.example.com".into()));
        assert_eq!(ok.port, 8443);
        assert_eq!(
            check_push_url("https://push.example.com/", false)
                .unwrap()
                .port,
            443
        );
        assert_eq!(check_push_url("http://127.0.0.1:9/", true).unwrap().port, 9);
        assert_eq!(check_push_url("http://[::1]/", true).unwrap().port, 80);
        assert_eq!(
            check_push_url("http://127.0.0.1/", false),
            Err(PushUrlError::NotHttps)
        );
        assert!(matches!(
            check_push_url("http://localhost/", true),
            Err(PushUrlError::Host(HostError::Localhost(_)))
        ));
        assert!(matches!(
            check_push_url("http://push.example.com/", true),
            Err(PushUrlError::PlainHttpNotLoopback { .. })
        ));
        for numeric in [
            "https://2130706433/",
            "https://0x7f.1/",
            "https://0177.0.0.1/",
        ] {
            let e = check_push_url(numeric, false).unwrap_err();
            assert!(
                matches!(e, PushUrlError::Host(HostError::Numeric(_))),
                "{numeric}"
            );
            assert!(e.to_string().contains("not a public address"), "{e}");
        }
        assert!(matches!(
            check_push_url("https://a.localhost/", false),
            Err(PushUrlError::Host(HostError::Localhost(_)))
        ));
        assert_eq!(
            check_push_url("ftp://x.example/", false),
            Err(PushUrlError::NotHttps)
        );
        let long = format!("https://x.example/{}", "a".repeat(MAX_PUSH_URL_LEN));
        assert!(matches!(
            check_push_url(&long, false),
            Err(PushUrlError::TooLong { .. })
        ));
    }
}
