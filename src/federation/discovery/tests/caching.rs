//! How long answers are kept, and how long a silent or closed nameserver may take.

use super::*;

#[tokio::test]
async fn positive_answers_are_cached_for_their_ttl() {
    let dns = dns_server().await;
    let clock = FakeClock::new();
    let discovery = Discovery::with_clock(&federation(dns.addr, &[]), clock.clone()).unwrap();
    let name = server_name("srv.test");
    let first = discovery.resolve(&name).await.unwrap();
    let asked = dns.queries();
    assert!(asked >= 4, "SRV and three targets: {asked}");

    clock.advance(Duration::from_secs(299));
    let again = discovery.resolve(&name).await.unwrap();
    assert_eq!(dns.queries(), asked, "served from the cache");
    assert_eq!(again.len(), first.len());

    clock.advance(Duration::from_secs(1));
    discovery.resolve(&name).await.unwrap();
    assert_eq!(dns.queries(), 2 * asked, "the TTL of 300 s has passed");
}

#[tokio::test]
async fn positive_answers_are_kept_at_most_a_day() {
    let dns = dns_server().await;
    let clock = FakeClock::new();
    let discovery = Discovery::with_clock(&federation(dns.addr, &[]), clock.clone()).unwrap();
    let name = server_name("long.test:8448");
    discovery.resolve(&name).await.unwrap();
    let asked = dns.queries();
    clock.advance(MAX_CACHE_AGE - Duration::from_secs(1));
    discovery.resolve(&name).await.unwrap();
    assert_eq!(dns.queries(), asked);
    clock.advance(Duration::from_secs(1));
    discovery.resolve(&name).await.unwrap();
    assert_eq!(dns.queries(), 2 * asked, "a week's TTL is capped at 24 h");
}

#[tokio::test]
async fn negative_answers_are_cached_for_five_minutes() {
    let dns = dns_server().await;
    let clock = FakeClock::new();
    let discovery = Discovery::with_clock(&federation(dns.addr, &[]), clock.clone()).unwrap();
    let name = server_name("missing.test");
    discovery.resolve(&name).await.unwrap_err();
    let asked = dns.queries();
    assert!(asked >= 2, "SRV, then A/AAAA: {asked}");

    clock.advance(NEGATIVE_CACHE_TTL - Duration::from_secs(1));
    let err = discovery.resolve(&name).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::NotFound { .. }));
    assert_eq!(dns.queries(), asked, "served from the cache");

    clock.advance(Duration::from_secs(1));
    discovery.resolve(&name).await.unwrap_err();
    assert_eq!(dns.queries(), 2 * asked, "five minutes have passed");
}

#[tokio::test]
async fn silent_nameserver_times_out() {
    // Bound but never read: every query goes unanswered.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let limit = Duration::from_millis(300);
    let discovery = Discovery::new(&federation(silent.local_addr().unwrap(), &[]))
        .unwrap()
        .with_lookup_timeout(limit);
    let started = Instant::now();
    let err = discovery.resolve(&server_name("a.test")).await.unwrap_err();
    assert!(started.elapsed() < limit + Duration::from_secs(1));
    assert_eq!(
        err,
        DiscoveryError::Timeout {
            name: "_rendezvous._tcp.a.test".to_owned(),
            after: limit
        }
    );
}

#[tokio::test]
async fn closed_nameserver_port_fails_within_the_timeout() {
    let port = {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.local_addr().unwrap()
    };
    let limit = Duration::from_millis(500);
    let discovery = Discovery::new(&federation(port, &[]))
        .unwrap()
        .with_lookup_timeout(limit);
    let started = Instant::now();
    let err = discovery.resolve(&server_name("a.test")).await.unwrap_err();
    assert!(started.elapsed() < limit + Duration::from_secs(1));
    assert!(
        matches!(
            err,
            DiscoveryError::Timeout { .. } | DiscoveryError::Dns { .. }
        ),
        "{err:?}"
    );
    // Failures are not cached: the next call asks again (and fails again).
    let err = discovery.resolve(&server_name("a.test")).await.unwrap_err();
    assert!(!matches!(err, DiscoveryError::NotFound { .. }), "{err:?}");
}
