//! N federating homeservers for one test: a test CA ([`Ca`]) issues each its certificate for
//! its server name, each has fixed loopback addresses (so that it can be stopped and started
//! again on the same files), and they find each other through `[federation.overrides]` or
//! through a real DNS server on loopback ([`DnsServer`]) with SRV records only. The servers run
//! in this process ([`TestServer`]) or as `rendezvous serve` processes ([`ServerProcess`]) with
//! a configuration file each and a CA made by the binary's own commands.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use rendezvous::clock::Clock;
use rendezvous_client::Client;

use crate::ca::{Ca, peer_client};
use crate::config::{self, ServerConfig};
use crate::dns::{self, DnsServer};
use crate::ports::{bind_retrying, free_addr_on, free_port};
use crate::process::{Launch, Log, ServerProcess, tail};
use crate::{TempDir, TestServer, user_id};

/// Adjusts one server's configuration (by server name) before it is written or started.
type Adjust = Box<dyn Fn(&str, &mut ServerConfig)>;

/// What [`Federation::in_process`] and [`Federation::processes`] start.
pub struct Builder {
    test: String,
    servers: Vec<(String, Ipv4Addr)>,
    bin: Option<PathBuf>,
    dns: bool,
    adjust: Adjust,
    /// More records for the DNS zone, and rebinding names (`dns::DnsServer::start_rebinding`).
    records: Vec<hickory_server::proto::rr::Record>,
    rebinding: Vec<(String, Vec<Ipv4Addr>)>,
    /// Environment of the processes.
    env: Vec<(String, String)>,
}

impl Builder {
    /// More records in the DNS zone (with DNS discovery).
    pub fn records(mut self, records: Vec<hickory_server::proto::rr::Record>) -> Builder {
        self.records.extend(records);
        self
    }

    /// A name of the DNS zone whose successive A queries are answered with the next of `ips`.
    pub fn rebinding(mut self, host: &str, ips: Vec<Ipv4Addr>) -> Builder {
        self.rebinding.push((host.to_owned(), ips));
        self
    }

    /// An environment variable of every server process (`SSL_CERT_FILE`).
    pub fn env(mut self, key: &str, value: &str) -> Builder {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Changes each server's configuration (`adjust(server_name, config)`): deny lists, more
    /// overrides.
    pub fn adjust(mut self, adjust: impl Fn(&str, &mut ServerConfig) + 'static) -> Builder {
        self.adjust = Box::new(adjust);
        self
    }

    /// Discovery through a DNS server on 127.0.0.1 instead of overrides (the default for
    /// processes).
    pub fn dns(mut self, on: bool) -> Builder {
        self.dns = on;
        self
    }

    /// Makes the CA, the certificates, the DNS zone and the configurations, and starts every
    /// server.
    pub fn start(self) -> Federation {
        let names: Vec<String> = self.servers.iter().map(|(n, _)| n.clone()).collect();
        let mut f = self.build();
        for name in &names {
            f.up(name);
        }
        f
    }

    /// The same without starting any server ([`Federation::up`] starts one).
    pub fn build(self) -> Federation {
        let dir = TempDir::new(&self.test);
        let ca = match &self.bin {
            Some(bin) => Ca::made_by(bin, dir.path()),
            None => Ca::new(dir.path(), "federation-ca"),
        };
        let mut nodes: BTreeMap<String, Node> = self
            .servers
            .iter()
            .map(|(name, ip)| (name.clone(), Node::new(&dir, &ca, name, *ip)))
            .collect();
        let (records, rebinding) = (self.records, self.rebinding);
        let dns = self.dns.then(|| {
            let mut all = zone(&nodes);
            all.extend(records);
            DnsServer::start_rebinding(&zone_origin(&nodes), all, rebinding)
        });
        let overrides: BTreeMap<String, String> = nodes
            .values()
            .map(|n| (n.name.clone(), n.federation.to_string()))
            .collect();
        for node in nodes.values_mut() {
            let fed = node.config.federation.as_mut().unwrap();
            match &dns {
                Some(dns) => fed.nameservers = vec![dns.addr],
                None => fed.overrides = overrides.clone(),
            }
            (self.adjust)(&node.name, &mut node.config);
            node.config.write(&node.config_file);
        }
        Federation {
            running: BTreeMap::new(),
            stores: BTreeMap::new(),
            dns,
            nodes,
            ca,
            dir,
            bin: self.bin,
            clock: Clock::adjustable(),
            env: self.env,
        }
    }
}

/// One homeserver's fixed place: its name, addresses, files and log (kept across restarts).
pub struct Node {
    pub name: String,
    pub ip: Ipv4Addr,
    /// Its directory: configuration file, data directory.
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub config: ServerConfig,
    pub config_file: PathBuf,
    /// Its client API address.
    pub client: SocketAddr,
    /// Its federation listener's address.
    pub federation: SocketAddr,
    /// `(cert.pem, key.pem)` for its server name, from the federation CA.
    pub certificate: (PathBuf, PathBuf),
    log: Log,
}

impl Node {
    fn new(dir: &TempDir, ca: &Ca, name: &str, ip: Ipv4Addr) -> Node {
        let node_dir = dir.join(name);
        std::fs::create_dir_all(&node_dir).unwrap();
        let data_dir = node_dir.join("data");
        let certificate = ca.issue(name);
        let mut config = ServerConfig::new(name, &data_dir, ip);
        let federation = free_addr_on(ip);
        config.federation = Some(config::Federation {
            enabled: true,
            listen: federation,
            tls_cert: certificate.0.clone(),
            tls_key: certificate.1.clone(),
            ca_file: ca.ca_file(),
            nameservers: Vec::new(),
            deny: Vec::new(),
            overrides: BTreeMap::new(),
            limits: rendezvous::limits::PeerRateConfig::unlimited(),
            directory_witness: Vec::new(),
            directory_witness_secs: None,
        });
        Node {
            name: name.to_owned(),
            ip,
            config_file: node_dir.join("rendezvous.toml"),
            dir: node_dir,
            data_dir,
            client: config.client_api.listen,
            federation,
            config,
            certificate,
            log: Log::default(),
        }
    }

    /// Starts it in this process, with its configuration's federation section.
    /// Also hands back a handle of its store, for the test hooks.
    fn start_in_process(&self, clock: &Clock) -> (TestServer, rendezvous::store::Store) {
        let parsed = rendezvous::config::Config::parse(&self.config.to_toml()).unwrap();
        let listener = bind_retrying(self.federation);
        let mut store = None;
        let server = TestServer::start_inspecting(
            &self.data_dir,
            self.client,
            clock.clone(),
            move |c| {
                c.server_name = parsed.server_name;
                c.federation = parsed.federation;
                c.outbound = parsed.outbound;
                Some(listener)
            },
            |s| store = Some(s.clone()),
        );
        (server, store.unwrap())
    }
}

/// The zone the servers' names are in (`"test."` for `a.test`, `b.test`).
fn zone_origin(nodes: &BTreeMap<String, Node>) -> String {
    let name = nodes.keys().next().expect("at least one server");
    format!("{}.", name.rsplit('.').next().unwrap())
}

/// For each server, SRV records for `_rendezvous._tcp.<name>` whose targets are names the
/// certificates do not carry (so every connection also shows that the certificate is checked
/// for the server name, not the SRV target), the only place the federation port is written
/// down: the preferred target `down.<name>` has nothing listening on its port, so peers fall
/// back to `fed.<name>`, in priority order (`federation-api.md` §7).
fn zone(nodes: &BTreeMap<String, Node>) -> Vec<hickory_server::proto::rr::Record> {
    let mut zone = Vec::new();
    for node in nodes.values() {
        let (name, ip) = (&node.name, node.ip);
        let srv = format!("_rendezvous._tcp.{name}.");
        zone.push(dns::srv(
            &srv,
            5,
            0,
            free_port(ip),
            &format!("down.{name}."),
        ));
        zone.push(dns::a(&format!("down.{name}."), ip));
        zone.push(dns::srv(
            &srv,
            10,
            0,
            node.federation.port(),
            &format!("fed.{name}."),
        ));
        zone.push(dns::a(&format!("fed.{name}."), ip));
    }
    zone
}

/// A running server of the federation.
enum Running {
    InProcess(TestServer),
    Process(ServerProcess),
}

/// Federating homeservers, their CA and (with DNS discovery) their DNS server. Dropping it
/// stops the servers (processes are killed); a failing test prints the processes' last lines.
pub struct Federation {
    // Fields drop in order: the servers first, the directory last.
    running: BTreeMap<String, Running>,
    /// The stores of in-process servers (test hooks: `corrupt_*`, `forge_*`, `fork_*`).
    stores: BTreeMap<String, rendezvous::store::Store>,
    pub dns: Option<DnsServer>,
    nodes: BTreeMap<String, Node>,
    pub ca: Ca,
    pub dir: TempDir,
    bin: Option<PathBuf>,
    /// The clock of every in-process server and of the clients [`Federation::register`]
    /// makes: [`Clock::advance`] moves the whole federation's time forward (servers that run as
    /// processes keep the machine's).
    pub clock: Clock,
    env: Vec<(String, String)>,
}

/// Servers `a` and `b`, each witnessing the other's directory every second
/// (`directory.md` §5): the pair the directory tests run on.
pub fn witnessing_pair(test: &str, a: &str, b: &str) -> Federation {
    witnessing_pair_every(test, a, b, 1)
}

/// Servers `a` and `b`, each witnessing the other's directory every `secs` seconds (the first
/// round at start).
pub fn witnessing_pair_every(test: &str, a: &str, b: &str, secs: u64) -> Federation {
    let (a, b) = (a.to_owned(), b.to_owned());
    Federation::in_process(test, &[a.as_str(), b.as_str()])
        .adjust(move |name, c| {
            let f = c.federation.as_mut().unwrap();
            f.directory_witness = vec![if name == a { b.clone() } else { a.clone() }];
            f.directory_witness_secs = Some(secs);
        })
        .start()
}

impl Federation {
    /// Servers named `names` in this process, all on 127.0.0.1, finding each other through
    /// overrides.
    pub fn in_process(test: &str, names: &[&str]) -> Builder {
        Builder {
            test: test.to_owned(),
            servers: names
                .iter()
                .map(|n| ((*n).to_owned(), Ipv4Addr::LOCALHOST))
                .collect(),
            bin: None,
            dns: false,
            adjust: Box::new(|_, _| {}),
            records: Vec::new(),
            rebinding: Vec::new(),
            env: Vec::new(),
        }
    }

    /// `bin serve` processes, each on its own loopback address, finding each other through DNS,
    /// with a CA and certificates made by `bin federation-ca` and `federation-cert`.
    pub fn processes(bin: &Path, test: &str, servers: &[(&str, Ipv4Addr)]) -> Builder {
        Builder {
            test: test.to_owned(),
            servers: servers
                .iter()
                .map(|(n, ip)| ((*n).to_owned(), *ip))
                .collect(),
            bin: Some(bin.to_owned()),
            dns: true,
            adjust: Box::new(|_, _| {}),
            records: Vec::new(),
            rebinding: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn node(&self, name: &str) -> &Node {
        &self.nodes[name]
    }

    /// The DNS server, with DNS discovery.
    pub fn dns(&self) -> &DnsServer {
        self.dns.as_ref().expect("a federation with DNS discovery")
    }

    /// The running in-process server `name`.
    pub fn server(&self, name: &str) -> &TestServer {
        match &self.running[name] {
            Running::InProcess(s) => s,
            Running::Process(_) => panic!("{name} is a process"),
        }
    }

    /// The store of the in-process server `name` (its test hooks).
    pub fn store(&self, name: &str) -> &rendezvous::store::Store {
        &self.stores[name]
    }

    /// The running process `name`.
    pub fn process(&self, name: &str) -> &ServerProcess {
        match &self.running[name] {
            Running::Process(p) => p,
            Running::InProcess(_) => panic!("{name} runs in this process"),
        }
    }

    /// Changes `name`'s configuration for its next start.
    pub fn configure(&mut self, name: &str, change: impl FnOnce(&mut ServerConfig)) {
        let node = self.nodes.get_mut(name).unwrap();
        change(&mut node.config);
        node.config.write(&node.config_file);
    }

    /// Starts (or restarts, with the same configuration and data) `name`.
    pub fn up(&mut self, name: &str) {
        let node = &self.nodes[name];
        let running = match &self.bin {
            Some(bin) => Running::Process(
                Launch::new(bin, &node.config_file)
                    .log_to(node.log.clone())
                    .envs(self.env.clone())
                    .start_retrying(),
            ),
            None => {
                let (server, store) = node.start_in_process(&self.clock);
                self.stores.insert(name.to_owned(), store);
                Running::InProcess(server)
            }
        };
        self.running.insert(name.to_owned(), running);
    }

    /// A clean stop (SIGTERM and exit status 0 for a process); its data stays.
    pub fn stop(&mut self, name: &str) {
        match self.running.remove(name) {
            Some(Running::InProcess(s)) => {
                self.stores.remove(name);
                s.stop()
            }
            Some(Running::Process(p)) => p.terminate(),
            None => {}
        }
    }

    /// SIGKILL, for a process: no shutdown at all, whatever was in flight.
    pub fn kill(&mut self, name: &str) {
        match self.running.remove(name) {
            Some(Running::Process(p)) => p.kill(),
            _ => panic!("only a running process can be killed"),
        }
    }

    /// Registers `user` on `server` with a fresh pin (for a process: from `rendezvous admin
    /// pin`, as an operator gets it); its keystore in `devices/user@server`.
    pub async fn register(&self, server: &str, user: &str) -> Client {
        let (url, trust, pin) = match (&self.running[server], &self.bin) {
            (Running::InProcess(s), _) => (s.url.clone(), s.trust(), s.pin().await),
            (Running::Process(p), Some(bin)) => {
                let pin = crate::process::admin(bin, &self.nodes[server].config_file, &["pin"]);
                (p.url().to_owned(), p.trust(), pin)
            }
            (Running::Process(_), None) => unreachable!("processes have a binary"),
        };
        let mut client = Client::register(
            &self.dir.join(&format!("devices/{user}@{server}")),
            &crate::passphrase(),
            &url,
            trust,
            &pin,
            &user_id(user, server),
        )
        .await
        .unwrap();
        client.set_clock(self.clock.clone());
        client
    }

    /// An HTTPS client to `to`'s federation listener presenting a certificate of the CA for
    /// `as_name` (the server's own when `as_name` is one of them).
    pub fn peer_as(&self, to: &str, as_name: &str) -> awc::Client {
        let certificate = match self.nodes.get(as_name) {
            Some(node) => node.certificate.clone(),
            None => self.ca.issue(as_name),
        };
        peer_client(
            self.nodes[to].federation,
            &self.ca.ca_file(),
            Some(&certificate),
        )
    }
}

impl Drop for Federation {
    fn drop(&mut self) {
        if std::thread::panicking() && self.bin.is_some() {
            for node in self.nodes.values() {
                eprintln!("===== {} (last lines)\n{}", node.name, tail(&node.log, 60));
            }
        }
    }
}
