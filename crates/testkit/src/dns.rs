//! A real DNS server on loopback (hickory-server, UDP and TCP on one port of 127.0.0.1),
//! authoritative for one zone, in its own thread and runtime, so that it keeps answering while
//! a test blocks (waiting for a process, running a command). It logs every query it answers.
//! A *rebinding* name answers each A query with the next address of its list (TTL 0), as a
//! DNS-rebinding attacker's server does.
//!
//! `src/federation/discovery/tests.rs` has the same kind of server inside the library's
//! unit tests (with a fake clock), which integration tests cannot reach.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
pub use hickory_server::proto::rr::RecordType;
use hickory_server::proto::rr::rdata::{A, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordSet, RrKey};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};

/// The queries answered, as `(name, type)`.
type QueryLog = Arc<Mutex<Vec<(String, RecordType)>>>;

/// Rebinding names (lowercase, fully qualified): their addresses and the next one to answer.
type Rebinding = Arc<Mutex<HashMap<String, (Vec<Ipv4Addr>, usize)>>>;

/// Serves the catalog and logs every query.
struct Logging {
    catalog: Catalog,
    log: QueryLog,
    zone: Arc<InMemoryZoneHandler<TokioRuntimeProvider>>,
    rebinding: Rebinding,
}

impl Logging {
    /// Before an A query for a rebinding name is answered, its record becomes the next address.
    async fn rebind(&self, name: &Name, kind: RecordType) {
        if kind != RecordType::A {
            return;
        }
        let next = {
            let mut rebinding = self.rebinding.lock().unwrap();
            let Some((ips, at)) = rebinding.get_mut(&name.to_ascii().to_ascii_lowercase()) else {
                return;
            };
            let ip = ips[*at % ips.len()];
            *at += 1;
            ip
        };
        let record = Record::from_rdata(name.clone(), 0, RData::A(A(next)));
        self.zone.records_mut().await.insert(
            RrKey::new(LowerName::new(name), RecordType::A),
            Arc::new(RecordSet::from(record)),
        );
    }
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
            self.rebind(&Name::from(info.query.name()), info.query.query_type())
                .await;
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

/// A running DNS server; stopped when dropped.
pub struct DnsServer {
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    log: QueryLog,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Serves `records` as the zone `origin` (e.g. `"test."`, with an SOA made here).
    pub fn start(origin: &str, records: Vec<Record>) -> DnsServer {
        Self::start_rebinding(origin, records, Vec::new())
    }

    /// As [`DnsServer::start`], with rebinding names (`("rebind.test.", [a, b])`): their
    /// successive A queries are answered `a`, `b`, `a`, … with TTL 0.
    pub fn start_rebinding(
        origin: &str,
        records: Vec<Record>,
        rebinding: Vec<(String, Vec<Ipv4Addr>)>,
    ) -> DnsServer {
        let origin = name(origin);
        let mut handler = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let soa = SOA::new(
            Name::from_ascii("ns")
                .unwrap()
                .append_domain(&origin)
                .unwrap(),
            Name::from_ascii("admin")
                .unwrap()
                .append_domain(&origin)
                .unwrap(),
            1,
            3600,
            600,
            86400,
            60,
        );
        assert!(handler.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1));
        for record in records {
            assert!(handler.upsert_mut(record, 1));
        }
        for (host, ips) in &rebinding {
            assert!(!ips.is_empty(), "{host} answers some address");
            assert!(handler.upsert_mut(a(host, ips[0]), 1));
        }
        let rebinding: Rebinding = Arc::new(Mutex::new(
            rebinding
                .into_iter()
                .map(|(host, ips)| (host.to_ascii_lowercase(), (ips, 0)))
                .collect(),
        ));
        let zone = Arc::new(handler);
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![zone.clone()]);
        let log = QueryLog::default();
        let logging = Logging {
            catalog,
            log: log.clone(),
            zone,
            rebinding,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, bound) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut server = Server::new(logging);
                // UDP and TCP on the same loopback port.
                let (udp, tcp) = loop {
                    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                    if let Ok(tcp) = tokio::net::TcpListener::bind(udp.local_addr().unwrap()).await
                    {
                        break (udp, tcp);
                    }
                };
                ready.send(udp.local_addr().unwrap()).unwrap();
                server.register_socket(udp);
                server.register_listener(tcp, Duration::from_secs(5), 64);
                let _ = stopped.await;
                let _ = server.shutdown_gracefully().await;
            });
        });
        let addr = bound
            .recv_timeout(Duration::from_secs(10))
            .expect("the DNS server binds");
        DnsServer {
            addr,
            log,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Whether a query for `name` (fully qualified, e.g. `"fed.a.test."`) of type `kind` came.
    pub fn asked(&self, name: &str, kind: RecordType) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|(n, k)| n.eq_ignore_ascii_case(name) && *k == kind)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A DNS name (`"a.test."`).
pub fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// An A record.
pub fn a(host: &str, ip: Ipv4Addr) -> Record {
    Record::from_rdata(name(host), 300, RData::A(A(ip)))
}

/// An AAAA record.
pub fn aaaa(host: &str, ip: std::net::Ipv6Addr) -> Record {
    Record::from_rdata(
        name(host),
        300,
        RData::AAAA(hickory_server::proto::rr::rdata::AAAA(ip)),
    )
}

/// An SRV record for `owner` (the full owner name, e.g. `"_rendezvous._tcp.a.test."`).
pub fn srv(owner: &str, priority: u16, weight: u16, port: u16, target: &str) -> Record {
    let data = SRV::new(priority, weight, port, name(target));
    Record::from_rdata(name(owner), 300, RData::SRV(data))
}
