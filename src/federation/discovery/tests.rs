//! Discovery against a real DNS server on loopback (hickory-server, authoritative for `test.`),
//! with a clock that only moves when told.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, Record};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};

use super::*;

/// A clock that only moves when told.
struct FakeClock {
    start: Instant,
    offset: Mutex<Duration>,
}

impl FakeClock {
    fn new() -> Arc<Self> {
        Arc::new(FakeClock {
            start: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        })
    }

    fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap() += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.start + *self.offset.lock().unwrap()
    }
}

/// The queries a test DNS server has answered, as `(name, type)`.
type QueryLog = Arc<Mutex<Vec<(String, RecordType)>>>;

/// Serves the catalog and logs every query.
struct Logging {
    catalog: Catalog,
    log: QueryLog,
}

#[async_trait::async_trait]
impl RequestHandler for Logging {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        if let Ok(info) = request.request_info() {
            let name = info.query.name().to_string();
            self.log
                .lock()
                .unwrap()
                .push((name, info.query.query_type()));
        }
        self.catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

/// A real DNS server on loopback (UDP and TCP on one port) authoritative for `test.`.
struct DnsServer {
    addr: SocketAddr,
    log: QueryLog,
    _server: Server<Logging>,
}

impl DnsServer {
    fn queries(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    fn asked(&self, name: &str, kind: RecordType) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|(n, k)| n == name && *k == kind)
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn a(host: &str, ttl: u32, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(host), ttl, RData::A(A(Ipv4Addr::from(ip))))
}

fn srv(host: &str, priority: u16, weight: u16, port: u16, target: &str) -> Record {
    let data = SRV::new(priority, weight, port, name(target));
    Record::from_rdata(name(&format!("{SRV_PREFIX}{host}")), 300, RData::SRV(data))
}

/// The zone every test serves.
fn zone() -> Vec<Record> {
    vec![
        // Two priorities; weights 3:1 in the first.
        srv("srv.test.", 10, 3, 9001, "a.hosts.test."),
        srv("srv.test.", 10, 1, 9002, "b.hosts.test."),
        srv("srv.test.", 20, 0, 9003, "c.hosts.test."),
        a("a.hosts.test.", 300, [127, 0, 0, 2]),
        a("b.hosts.test.", 300, [127, 0, 0, 3]),
        a("c.hosts.test.", 300, [127, 0, 0, 4]),
        // No SRV: A (and AAAA) on the default port.
        a("plain.test.", 300, [127, 0, 0, 5]),
        a("dual.test.", 300, [127, 0, 0, 6]),
        Record::from_rdata(
            name("dual.test."),
            300,
            RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
        ),
        // SRV and A: an explicit port must use the A record.
        srv("ported.test.", 10, 1, 9009, "c.hosts.test."),
        a("ported.test.", 300, [127, 0, 0, 7]),
        // A TTL beyond the 24 h cap.
        a("long.test.", 7 * 24 * 3600, [127, 0, 0, 8]),
        // "No service" (RFC 2782).
        srv("none.test.", 0, 0, 0, "."),
        // An SRV target that does not exist, then one that does.
        srv("half.test.", 10, 0, 9010, "gone.test."),
        srv("half.test.", 20, 0, 9011, "a.hosts.test."),
    ]
}

async fn dns_server() -> DnsServer {
    let origin = name("test.");
    let mut handler = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
        origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    );
    let soa = SOA::new(
        name("ns.test."),
        name("admin.test."),
        1,
        3600,
        600,
        86400,
        60,
    );
    assert!(handler.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1));
    for record in zone() {
        assert!(handler.upsert_mut(record, 1));
    }
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![Arc::new(handler)]);
    let log = QueryLog::default();
    let mut server = Server::new(Logging {
        catalog,
        log: log.clone(),
    });
    // UDP and TCP on the same loopback port.
    let (udp, tcp) = loop {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = tokio::net::TcpListener::bind(udp.local_addr().unwrap()).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().unwrap();
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(5), 64);
    DnsServer {
        addr,
        log,
        _server: server,
    }
}

fn federation(nameserver: SocketAddr, overrides: &[(&str, &str)]) -> config::Federation {
    config::Federation {
        nameservers: vec![nameserver],
        overrides: overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..config::Federation::default()
    }
}

fn server_name(s: &str) -> ServerName {
    s.parse().unwrap()
}

fn endpoint(host: &str, addr: &str, tls_name: &str) -> Endpoint {
    Endpoint {
        host: host.to_owned(),
        addr: addr.parse().unwrap(),
        tls_name: tls_name.to_owned(),
    }
}

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

fn record(priority: u16, weight: u16, target: &str) -> SrvRecord {
    SrvRecord {
        priority,
        weight,
        port: 1,
        target: target.to_owned(),
    }
}

/// splitmix64 with a fixed seed: reproducible draws.
fn seeded(mut state: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % (n + 1)
    }
}

#[test]
fn weights_are_respected_over_many_draws() {
    let records = vec![
        record(5, 0, "zero."),
        record(5, 60, "sixty."),
        record(1, 0, "only-zero."),
        record(5, 30, "thirty."),
        record(5, 10, "ten."),
        record(9, 0, "last-a."),
        record(9, 0, "last-b."),
    ];
    let mut draw = seeded(42);
    let mut first_in_group = HashMap::<String, u32>::new();
    let draws = 20_000;
    for _ in 0..draws {
        let ordered = order_srv(records.clone(), &mut draw);
        let targets: Vec<&str> = ordered.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets.len(), records.len(), "nothing lost or repeated");
        assert_eq!(targets[0], "only-zero.");
        let mut group: Vec<&str> = targets[1..5].to_vec();
        group.sort_unstable();
        assert_eq!(group, ["sixty.", "ten.", "thirty.", "zero."]);
        assert_eq!(targets[5..], ["last-a.", "last-b."]);
        *first_in_group.entry(targets[1].to_owned()).or_default() += 1;
    }
    // Weights 60:30:10 out of 100; weight 0 only on a draw of exactly 0 (1 in 101).
    let share = |t: &str| f64::from(first_in_group.get(t).copied().unwrap_or(0)) / f64::from(draws);
    assert!(
        (share("sixty.") - 0.60 * 100.0 / 101.0).abs() < 0.02,
        "{first_in_group:?}"
    );
    assert!(
        (share("thirty.") - 0.30 * 100.0 / 101.0).abs() < 0.02,
        "{first_in_group:?}"
    );
    assert!(
        (share("ten.") - 0.10 * 100.0 / 101.0).abs() < 0.02,
        "{first_in_group:?}"
    );
    assert!(share("zero.") < 0.03, "{first_in_group:?}");
}

#[test]
fn all_zero_weights_keep_every_record() {
    let records = vec![record(0, 0, "x."), record(0, 0, "y."), record(0, 0, "z.")];
    let ordered = order_srv(records, &mut seeded(7));
    let mut targets: Vec<String> = ordered.into_iter().map(|r| r.target).collect();
    targets.sort();
    assert_eq!(targets, ["x.", "y.", "z."]);
}
