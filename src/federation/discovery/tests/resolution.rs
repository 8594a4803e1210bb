//! Which endpoints a name resolves to, in which order, under which TLS name.

use super::*;

#[tokio::test]
async fn srv_orders_by_priority_then_weight() {
    let dns = dns_server().await;
    let discovery = Discovery::new(&federation(dns.addr, &[])).unwrap();
    let a = endpoint("a.hosts.test", "127.0.0.2:9001", "srv.test");
    let b = endpoint("b.hosts.test", "127.0.0.3:9002", "srv.test");
    let c = endpoint("c.hosts.test", "127.0.0.4:9003", "srv.test");
    let (mut a_first, mut b_first) = (0, 0);
    for _ in 0..400 {
        let found = discovery.resolve(&server_name("srv.test")).await.unwrap();
        assert_eq!(found.len(), 3);
        // The lower priority first, the higher one last.
        assert_eq!(found[2], c);
        if found[..2] == [a.clone(), b.clone()] {
            a_first += 1;
        } else {
            assert_eq!(found[..2], [b.clone(), a.clone()]);
            b_first += 1;
        }
    }
    // Weights 3:1: both orders appear, the heavier target first about 3/4 of the time
    // (the bounds are more than 6 standard deviations wide).
    assert!(b_first > 0 && a_first > 0, "{a_first} {b_first}");
    assert!((240..=360).contains(&a_first), "{a_first} {b_first}");
}

#[tokio::test]
async fn tls_name_is_the_server_name_not_the_srv_target() {
    let dns = dns_server().await;
    let discovery = Discovery::new(&federation(dns.addr, &[])).unwrap();
    let found = discovery
        .resolve(&server_name("ported.test"))
        .await
        .unwrap();
    assert_eq!(
        found,
        [endpoint("c.hosts.test", "127.0.0.4:9009", "ported.test")]
    );
}

#[tokio::test]
async fn no_srv_falls_back_to_a_and_aaaa_on_the_default_port() {
    let dns = dns_server().await;
    let discovery = Discovery::new(&federation(dns.addr, &[])).unwrap();
    let found = discovery.resolve(&server_name("plain.test")).await.unwrap();
    assert_eq!(
        found,
        [endpoint("plain.test", "127.0.0.5:8448", "plain.test")]
    );
    assert!(dns.asked("_rendezvous._tcp.plain.test.", RecordType::SRV));

    let mut found = discovery.resolve(&server_name("dual.test")).await.unwrap();
    found.sort_by_key(|e| e.addr);
    assert_eq!(
        found,
        [
            endpoint("dual.test", "127.0.0.6:8448", "dual.test"),
            endpoint("dual.test", "[::1]:8448", "dual.test"),
        ]
    );
}

#[tokio::test]
async fn explicit_port_skips_srv() {
    let dns = dns_server().await;
    let discovery = Discovery::new(&federation(dns.addr, &[])).unwrap();
    let found = discovery
        .resolve(&server_name("ported.test:8500"))
        .await
        .unwrap();
    assert_eq!(
        found,
        [endpoint("ported.test", "127.0.0.7:8500", "ported.test")]
    );
    assert!(dns.asked("ported.test.", RecordType::A));
    assert!(!dns.asked("_rendezvous._tcp.ported.test.", RecordType::SRV));
}

#[tokio::test]
async fn ip_literal_needs_no_dns() {
    let dns = dns_server().await;
    let discovery = Discovery::new(&federation(dns.addr, &[])).unwrap();
    let found = discovery
        .resolve(&server_name("127.0.0.9:9000"))
        .await
        .unwrap();
    assert_eq!(
        found,
        [endpoint("127.0.0.9", "127.0.0.9:9000", "127.0.0.9")]
    );
    let found = discovery.resolve(&server_name("127.0.0.9")).await.unwrap();
    assert_eq!(
        found,
        [endpoint("127.0.0.9", "127.0.0.9:8448", "127.0.0.9")]
    );
    assert_eq!(dns.queries(), 0);
}

#[tokio::test]
async fn override_skips_dns() {
    let dns = dns_server().await;
    let overrides = [
        ("srv.test", "127.0.0.10:7000"),
        ("other.example:8449", "[::1]:7001"),
        ("named.example", "plain.test:7002"),
    ];
    let discovery = Discovery::new(&federation(dns.addr, &overrides)).unwrap();
    let found = discovery.resolve(&server_name("srv.test")).await.unwrap();
    assert_eq!(
        found,
        [endpoint("127.0.0.10", "127.0.0.10:7000", "srv.test")]
    );
    let found = discovery
        .resolve(&server_name("other.example:8449"))
        .await
        .unwrap();
    assert_eq!(found, [endpoint("::1", "[::1]:7001", "other.example")]);
    assert_eq!(dns.queries(), 0);

    // An override by host name: only that host's addresses are looked up, no SRV.
    let found = discovery
        .resolve(&server_name("named.example"))
        .await
        .unwrap();
    assert_eq!(
        found,
        [endpoint("plain.test", "127.0.0.5:7002", "named.example")]
    );
    assert!(
        !dns.log
            .lock()
            .unwrap()
            .iter()
            .any(|(_, k)| *k == RecordType::SRV)
    );
}

#[test]
fn builds_outside_a_runtime() {
    let ns = SocketAddr::from(([127, 0, 0, 1], 53));
    let overrides = [
        ("a.example", "127.0.0.1:8448"),
        ("b.example", "a.example:8448"),
    ];
    let discovery = Discovery::new(&federation(ns, &overrides)).unwrap();
    assert_eq!(discovery.overrides.len(), 2);
}

#[test]
fn invalid_overrides_are_refused() {
    let ns = SocketAddr::from(([127, 0, 0, 1], 53));
    for (name, value) in [
        ("Not A Name", "127.0.0.1:1"),
        ("a.example", "a.example"),
        ("a.example", "a.example:0"),
        ("a.example", "bad host:1"),
        ("a.example", "::1:80"),
    ] {
        let err = Discovery::new(&federation(ns, &[(name, value)])).unwrap_err();
        assert_eq!(
            err,
            DiscoveryError::InvalidOverride {
                name: name.to_owned(),
                value: value.to_owned()
            }
        );
    }
}

#[tokio::test]
async fn srv_target_dot_means_no_service() {
    let dns = dns_server().await;
    let discovery = Discovery::new(&federation(dns.addr, &[])).unwrap();
    let err = discovery
        .resolve(&server_name("none.test"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        DiscoveryError::NotFound {
            name: "_rendezvous._tcp.none.test".to_owned()
        }
    );
    assert!(!dns.asked("none.test.", RecordType::A));
}

#[tokio::test]
async fn srv_target_without_address_is_skipped() {
    let dns = dns_server().await;
    let discovery = Discovery::new(&federation(dns.addr, &[])).unwrap();
    let found = discovery.resolve(&server_name("half.test")).await.unwrap();
    assert_eq!(
        found,
        [endpoint("a.hosts.test", "127.0.0.2:9011", "half.test")]
    );
}

#[tokio::test]
async fn missing_name_is_not_found() {
    let dns = dns_server().await;
    let discovery = Discovery::new(&federation(dns.addr, &[])).unwrap();
    let err = discovery
        .resolve(&server_name("missing.test"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        DiscoveryError::NotFound {
            name: "missing.test".to_owned()
        }
    );
}
