//! Discovery against a real DNS server on loopback (hickory-server, authoritative for `test.`),
//! with a clock that only moves when told. One file per concept: resolution order and names,
//! caching and timeouts, and the weighted order of SRV records.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_server::Server;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
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

mod caching;
mod resolution;
mod srv_weights;
