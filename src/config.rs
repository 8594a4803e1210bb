//! Homeserver configuration (`config/rendezvous.example.toml` documents every option).
//!
//! Every option has an embedded default, so `rendezvous serve` runs with no file at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use rendezvous_protocol::ids::{IdError, ServerName};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid configuration {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The admin listener is not on a loopback address.
    #[error("invalid configuration: admin.listen must be a loopback address, not {0}")]
    AdminNotLoopback(SocketAddr),
    /// A certificate without its key, or a key without its certificate.
    #[error("invalid configuration: {section}.tls_cert and {section}.tls_key go together")]
    TlsHalfSet {
        /// `client_api` or `federation`.
        section: &'static str,
    },
    /// A name in `federation.overrides` is not a server name (`allow` and `deny` entries are
    /// server names when the file is read: a bad one is a [`ConfigError::Parse`] naming it).
    #[error("invalid configuration: federation peer {name:?}: {source}")]
    PeerName {
        /// The name as written.
        name: String,
        /// Why it is not a server name.
        source: IdError,
    },
    /// A limit that must be positive is 0.
    #[error("invalid configuration: {0} must be positive")]
    NotPositive(&'static str),
    /// Another value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This homeserver's name (the part after `:` in user and topic ids), checked when the
    /// configuration is read.
    pub server_name: ServerName,
    /// Where the database, keys and certificates live.
    pub data_dir: PathBuf,
    /// The client API listener.
    pub client_api: ClientApi,
    /// The admin listener (loopback only).
    pub admin: Admin,
    /// Limits.
    pub limits: Limits,
    /// Push notifications.
    pub push: Push,
    /// Federation with other homeservers.
    pub federation: Federation,
    /// Storage faults and free space.
    pub storage: Storage,
    /// The addresses this server connects to (push, federation).
    pub outbound: Outbound,
}

/// Which addresses this server connects to (`client-api.md` §7.2, `federation-api.md` §7.1):
/// by default no loopback, private, link-local or other special address.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Outbound {
    /// Admit every address (tests, compose, a closed federation on one LAN).
    pub allow_private_targets: bool,
    /// Special ranges admitted without opening everything (loopback only by the switch).
    pub allow_cidrs: Vec<crate::net::Cidr>,
}

/// Storage settings (`architecture.md` §5.1).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// Below this many free bytes on the data directory's file system, writes are refused
    /// `503 unavailable` before the database meets a full disk (0: never).
    pub min_free_bytes: u64,
    /// How often the server checks whether a storage fault has cleared, seconds.
    pub reopen_retry_secs: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            min_free_bytes: 256 * 1024 * 1024,
            reopen_retry_secs: 5,
        }
    }
}

/// Federation settings (`federation-api.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Federation {
    /// Whether this server federates at all.
    pub enabled: bool,
    /// The mutual-TLS federation listener.
    pub listen: SocketAddr,
    /// PEM certificate chain for the server name, presented to peers as server and as client;
    /// defaults to the client API's certificate.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM roots that peers' certificates must chain to; the system roots when unset.
    pub ca_file: Option<PathBuf>,
    /// Only these peers, when non-empty (server names, checked when the file is read).
    pub allow: Vec<ServerName>,
    /// Never these peers (server names, checked when the file is read).
    pub deny: Vec<ServerName>,
    /// DNS servers (`ip:port`) for discovery; the system's when empty.
    pub nameservers: Vec<SocketAddr>,
    /// Static `server name -> host:port` overrides, skipping DNS.
    pub overrides: std::collections::BTreeMap<String, String>,
    /// Per-peer rate limits of the federation listener (`federation-api.md` §1.1).
    pub limits: crate::limits::PeerRateConfig,
    /// Servers whose directories are witnessed besides the peers in the store
    /// (`directory.md` §5).
    pub directory_witness: Vec<ServerName>,
    /// Seconds between witness rounds (1 to 3600; `directory.md` §5).
    pub directory_witness_secs: u64,
}

impl Default for Federation {
    fn default() -> Self {
        Federation {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8448)),
            tls_cert: None,
            tls_key: None,
            ca_file: None,
            allow: Vec::new(),
            deny: Vec::new(),
            nameservers: Vec::new(),
            overrides: std::collections::BTreeMap::new(),
            limits: crate::limits::PeerRateConfig::default(),
            directory_witness: Vec::new(),
            directory_witness_secs: 10,
        }
    }
}

/// Client API listener settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientApi {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// PEM certificate chain; when unset a self-signed certificate is generated in `data_dir`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

/// Admin listener settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    /// Address to listen on; must be a loopback address.
    pub listen: SocketAddr,
}

/// Limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Lifetime of a login token, seconds.
    pub token_lifetime_secs: u64,
    /// Lifetime of a registration pin, seconds.
    pub pin_lifetime_secs: u64,
    /// Most entries returned by one entries request.
    pub max_entries_per_request: usize,
    /// Worker threads for the HTTP server (0: one per core).
    pub workers: usize,
    /// Base time any request body may take to arrive, seconds.
    pub body_timeout_secs: u64,
    /// Slowest accepted body rate, bytes per second: a body of `n` bytes may take
    /// `body_timeout_secs + n / body_min_rate` seconds.
    pub body_min_rate: u64,
    /// Bytes all request bodies being read may reserve together (their `Content-Length`,
    /// chunked: their cap); over it `503 unavailable`.
    pub body_memory_bytes: u64,
    /// Bodies over 64 KiB of one user being read at once; over it `429 rate_limited`.
    pub bodies_per_user: usize,
    /// Open client API connections per client address (IPv6: per /64).
    pub connections_per_ip: usize,
    /// Open client API connections in all (divided over the workers).
    pub max_connections: usize,
    /// Time for a request's head (request line and headers), milliseconds.
    pub head_timeout_ms: u64,
    /// Time for a TLS handshake, milliseconds.
    pub tls_handshake_ms: u64,
    /// Idle time of a kept-alive connection, seconds.
    pub keep_alive_secs: u64,
    /// Most header fields of a request (at most 96, actix's own limit).
    pub max_headers: usize,
    /// Most bytes of a request's head (request line and header fields).
    pub max_head_bytes: usize,
    /// Open `/v1/stream` connections of one user (all devices).
    pub ws_per_user: usize,
    /// Open `/v1/stream` connections of one device; one more closes its oldest.
    pub ws_per_device: usize,
    /// Bytes queued for one stream connection before it is closed to catch up with sync.
    pub ws_queue_bytes: usize,
    /// Rate limits of the client API (`[limits.rate]`, `client-api.md` §1.3).
    pub rate: crate::limits::RateConfig,
    /// Quotas per user and device (`[limits.quota]`, `client-api.md` §1.4).
    pub quota: crate::limits::QuotaConfig,
}

impl Limits {
    /// The stream quotas.
    pub fn stream_quota(&self) -> crate::push::StreamQuota {
        crate::push::StreamQuota {
            per_user: self.ws_per_user,
            per_device: self.ws_per_device,
            queued_bytes: self.ws_queue_bytes,
        }
    }
}

/// Push settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Push {
    /// Allow plain-HTTP wake-up endpoints on loopback addresses (development and tests).
    pub allow_loopback_http: bool,
    /// How long to keep retrying a wake-up POST, seconds.
    pub retry_for_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server_name: localhost(),
            data_dir: PathBuf::from("./rendezvous-data"),
            client_api: ClientApi::default(),
            admin: Admin::default(),
            limits: Limits::default(),
            push: Push::default(),
            federation: Federation::default(),
            storage: Storage::default(),
            outbound: Outbound::default(),
        }
    }
}

impl Default for ClientApi {
    fn default() -> Self {
        ClientApi {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: SocketAddr::from(([127, 0, 0, 1], 8444)),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            token_lifetime_secs: 30 * 24 * 3600,
            pin_lifetime_secs: 7 * 24 * 3600,
            max_entries_per_request: 500,
            workers: 0,
            body_timeout_secs: 20,
            body_min_rate: 65536,
            body_memory_bytes: 256 * 1024 * 1024,
            bodies_per_user: 4,
            connections_per_ip: 128,
            max_connections: 20_000,
            head_timeout_ms: 10_000,
            tls_handshake_ms: 5_000,
            keep_alive_secs: 30,
            max_headers: 64,
            max_head_bytes: 16 * 1024,
            ws_per_user: 10,
            ws_per_device: 2,
            ws_queue_bytes: 2 * 1024 * 1024,
            rate: crate::limits::RateConfig::default(),
            quota: crate::limits::QuotaConfig::default(),
        }
    }
}

impl Default for Push {
    fn default() -> Self {
        Push {
            allow_loopback_http: false,
            retry_for_secs: 3600,
        }
    }
}

impl Config {
    /// Reads a TOML file; options it does not set keep their defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text and checks the values.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Checks the values (the server name and the peer lists were checked when they were
    /// parsed).
    pub fn check(&self) -> Result<(), ConfigError> {
        if !self.admin.listen.ip().is_loopback() {
            return Err(ConfigError::AdminNotLoopback(self.admin.listen));
        }
        if self.client_api.tls_cert.is_some() != self.client_api.tls_key.is_some() {
            return Err(ConfigError::TlsHalfSet {
                section: "client_api",
            });
        }
        if self.federation.tls_cert.is_some() != self.federation.tls_key.is_some() {
            return Err(ConfigError::TlsHalfSet {
                section: "federation",
            });
        }
        for peer in self.federation.overrides.keys() {
            peer.parse::<ServerName>()
                .map_err(|source| ConfigError::PeerName {
                    name: peer.clone(),
                    source,
                })?;
        }
        if !(1..=3600).contains(&self.federation.directory_witness_secs) {
            return Err(ConfigError::Invalid(
                "federation.directory_witness_secs must be 1 to 3600".into(),
            ));
        }
        if self.storage.reopen_retry_secs == 0 {
            return Err(ConfigError::NotPositive("storage.reopen_retry_secs"));
        }
        if self.limits.max_entries_per_request == 0 {
            return Err(ConfigError::NotPositive("limits.max_entries_per_request"));
        }
        self.check_http()?;
        let peers = &self.federation.limits;
        for (name, value) in [
            ("federation.limits.queue_events", peers.queue_events),
            ("federation.limits.queue_bytes", peers.queue_bytes),
            (
                "federation.limits.queue_max_age_secs",
                peers.queue_max_age_secs,
            ),
            ("federation.limits.txn_memory", peers.txn_memory as u64),
            (
                "federation.limits.txn_retention_secs",
                peers.txn_retention_secs,
            ),
            (
                "federation.limits.applied_retention_secs",
                peers.applied_retention_secs,
            ),
            (
                "federation.limits.connections_per_ip",
                peers.connections_per_ip as u64,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::NotPositive(name));
            }
        }
        crate::limits::Limits::new(&self.limits.rate, &self.federation.limits)
            .map_err(ConfigError::Invalid)?;
        self.limits.quota.check().map_err(ConfigError::Invalid)?;
        Ok(())
    }
}

impl Config {
    /// The connection, head and body limits of `[limits]` (`client-api.md` §1.2).
    fn check_http(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        for (name, value) in [
            ("limits.body_memory_bytes", l.body_memory_bytes),
            ("limits.bodies_per_user", l.bodies_per_user as u64),
            ("limits.connections_per_ip", l.connections_per_ip as u64),
            ("limits.max_connections", l.max_connections as u64),
            ("limits.head_timeout_ms", l.head_timeout_ms),
            ("limits.tls_handshake_ms", l.tls_handshake_ms),
            ("limits.max_headers", l.max_headers as u64),
            ("limits.max_head_bytes", l.max_head_bytes as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::NotPositive(name));
            }
        }
        if l.max_headers > MAX_HEADERS {
            return Err(ConfigError::Invalid(format!(
                "limits.max_headers: {} is over actix's own limit of {MAX_HEADERS}",
                l.max_headers
            )));
        }
        Ok(())
    }
}

/// actix-http refuses a head of more header fields itself, with a bodiless `431`.
const MAX_HEADERS: usize = 96;

/// The default server name.
fn localhost() -> ServerName {
    match "localhost".parse() {
        Ok(name) => name,
        // A constant that is a valid DNS name.
        Err(e) => unreachable!("\"localhost\" is a server name: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.server_name.as_str(), "localhost");
        let c = Config::parse(
            "server_name = \"a.example\"\n[client_api]\nlisten = \"127.0.0.2:9000\"\n",
        )
        .unwrap();
        assert_eq!(c.client_api.listen.port(), 9000);
        assert_eq!(c.admin.listen.port(), 8444);
    }

    #[test]
    fn bad_values_refused() {
        let bad_name = Config::parse("server_name = \"A B\"")
            .unwrap_err()
            .to_string();
        assert!(
            bad_name.contains("server_name") && bad_name.contains("invalid server name \"A B\""),
            "{bad_name}"
        );
        assert!(Config::parse("[admin]\nlisten = \"0.0.0.0:1\"").is_err());
        assert!(Config::parse("unknown = 1").is_err());
        assert!(Config::parse("[client_api]\ntls_cert = \"x.pem\"").is_err());
        // directory.md §5: a witness round every 1 to 3600 s.
        for secs in [0, 3601] {
            let text = format!("[federation]\ndirectory_witness_secs = {secs}");
            let err = Config::parse(&text).unwrap_err().to_string();
            assert!(err.contains("directory_witness_secs"), "{err}");
        }
        let c = Config::parse("[federation]\ndirectory_witness = [\"b.example\"]").unwrap();
        assert_eq!(c.federation.directory_witness_secs, 10);
        assert!(Config::parse("[federation]\ndirectory_witness = [\"Bad\"]").is_err());
    }

    /// `federation.allow` and `deny` are server names from the start: a bad entry stops the
    /// server with a message that names the list and the entry; good ones arrive typed.
    #[test]
    fn bad_peer_entries_refused_by_name() {
        for list in ["allow", "deny"] {
            let text = format!("[federation]\n{list} = [\"b.example\", \"Bad_Peer\"]\n");
            let err = Config::parse(&text).unwrap_err().to_string();
            assert!(
                err.contains(list) && err.contains("invalid server name \"Bad_Peer\""),
                "{err}"
            );
        }
        let c = Config::parse("[federation]\nallow = [\"b.example:8448\"]\ndeny = [\"c.example\"]")
            .unwrap();
        assert_eq!(
            c.federation.allow,
            ["b.example:8448".parse::<ServerName>().unwrap()]
        );
        assert_eq!(c.federation.deny[0].as_str(), "c.example");
        let err = Config::parse("[federation.overrides]\n\"Bad\" = \"127.0.0.1:1\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("federation peer \"Bad\""), "{err}");
    }

    /// The docker compose set-up's configurations load and pass `check`, federate with a CA
    /// file through the compose DNS server, and each server's SRV record in the compose zone
    /// gives its federation port.
    #[test]
    fn the_compose_files_parse_and_match_the_zone() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/compose");
        let zone = std::fs::read_to_string(dir.join("example.zone")).unwrap();
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let c = Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            c.check().unwrap();
            let f = &c.federation;
            assert!(f.enabled && f.ca_file.is_some() && f.tls_cert.is_some());
            assert!(!f.nameservers.is_empty() && !f.allow.is_empty());
            // Peers are on the compose network, a private range the outbound policy admits.
            let policy = crate::net::OutboundPolicy::from_config(&c.outbound);
            for ns in &f.nameservers {
                assert!(crate::net::refused_range(ns.ip()).is_some());
                assert!(
                    policy.check(ns.ip()).is_ok(),
                    "{ns} is on the compose network"
                );
            }
            assert!(
                !f.listen.ip().is_loopback(),
                "peers must reach {}",
                f.listen
            );
            // `_rendezvous._tcp.a  IN SRV  10 0 8448 target.`, relative to `example.`.
            let label = c.server_name.as_str().strip_suffix(".example").unwrap();
            let srv = zone
                .lines()
                .find(|l| l.starts_with(&format!("_rendezvous._tcp.{label} ")))
                .unwrap_or_else(|| panic!("no SRV record for {}", c.server_name));
            let fields: Vec<&str> = srv.split_whitespace().collect();
            assert_eq!(fields[1..3], ["IN", "SRV"], "{srv}");
            assert_eq!(fields[5], f.listen.port().to_string(), "{srv}");
            names.push(c.server_name.to_string());
        }
        names.sort();
        assert_eq!(names, ["a.example", "b.example"]);
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../config/rendezvous.example.toml");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.server_name.as_str(), "localhost");
        // The example says the defaults.
        assert_eq!(
            c.outbound.allow_private_targets,
            Outbound::default().allow_private_targets
        );
        assert_eq!(c.outbound.allow_cidrs, Outbound::default().allow_cidrs);
        assert!(text.contains("[outbound]"));
        assert_eq!(
            format!("{:?}", c.federation.limits),
            format!("{:?}", crate::limits::PeerRateConfig::default())
        );
        assert_eq!(
            format!("{:?}", c.limits.rate),
            format!("{:?}", crate::limits::RateConfig::default())
        );
        assert_eq!(c.limits.quota, crate::limits::QuotaConfig::default());
        assert_eq!(
            format!("{:?}", c.limits),
            format!("{:?}", Limits::default())
        );
    }

    #[test]
    fn outbound_ranges_parse() {
        let c =
            Config::parse("[outbound]\nallow_cidrs = [\"10.20.0.0/16\", \"fd00::/8\"]").unwrap();
        assert_eq!(c.outbound.allow_cidrs.len(), 2);
        assert!(!c.outbound.allow_private_targets);
        let err = Config::parse("[outbound]\nallow_cidrs = [\"10.20.0.0/33\"]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("10.20.0.0/33"), "{err}");
        assert!(Config::parse("[outbound]\nallow_private = true").is_err());
    }
}
