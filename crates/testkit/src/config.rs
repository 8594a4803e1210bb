//! A homeserver's configuration file as the tests write it: the keys of
//! `config/rendezvous.example.toml` they use, serialized to TOML and checked by the server's
//! own parser before it is written.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::ports::free_addr_on;

/// `rendezvous.toml`.
#[derive(Debug, Clone, Serialize)]
pub struct ServerConfig {
    pub server_name: String,
    pub data_dir: PathBuf,
    pub client_api: ClientApi,
    pub admin: Admin,
    pub limits: Limits,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub federation: Option<Federation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<Push>,
    pub outbound: Outbound,
}

/// `[push]`.
#[derive(Debug, Clone, Serialize)]
pub struct Push {
    pub allow_loopback_http: bool,
    pub retry_for_secs: u64,
}

/// `[outbound]`: every test server runs on 127.0.0.0/8, so the test kit admits every address
/// (`allow_private_targets = true`); the SSRF tests turn it off.
#[derive(Debug, Clone, Serialize)]
pub struct Outbound {
    pub allow_private_targets: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_cidrs: Vec<String>,
}

/// `[storage]`.
#[derive(Debug, Clone, Serialize)]
pub struct Storage {
    pub min_free_bytes: u64,
    pub reopen_retry_secs: u64,
}

/// `[client_api]`.
#[derive(Debug, Clone, Serialize)]
pub struct ClientApi {
    pub listen: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

/// `[admin]`.
#[derive(Debug, Clone, Serialize)]
pub struct Admin {
    pub listen: SocketAddr,
}

/// `[limits]`.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// HTTP workers: 2, the cores CI has.
    pub workers: usize,
    /// `[limits.rate]`: unlimited unless a test sets the classes it checks.
    pub rate: rendezvous::limits::RateConfig,
    /// Base time a request body may take, seconds (the server's default when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_timeout_secs: Option<u64>,
    /// Slowest accepted body rate, bytes per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_min_rate: Option<u64>,
    /// Open streams of one user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_per_user: Option<usize>,
    /// Open streams of one device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_per_device: Option<usize>,
    /// Open connections per client address: out of reach unless a test sets it.
    pub connections_per_ip: usize,
    /// Large bodies of one user being read at once: out of reach unless a test sets it.
    pub bodies_per_user: usize,
    /// Bytes of bodies being read (the server's default when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_memory_bytes: Option<u64>,
    /// Time for a request head, milliseconds (the server's default when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_timeout_ms: Option<u64>,
    /// `[limits.quota]`: the server's defaults unless a test sets its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<rendezvous::limits::QuotaConfig>,
}

/// `[federation]`, on.
#[derive(Debug, Clone, Serialize)]
pub struct Federation {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub ca_file: PathBuf,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<SocketAddr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, String>,
    /// `[federation.limits]`: unlimited unless a test sets the classes it checks.
    pub limits: rendezvous::limits::PeerRateConfig,
    /// Servers whose directories are witnessed besides the peers in the store.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub directory_witness: Vec<String>,
    /// Seconds between witness rounds (the server's default, 10, when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory_witness_secs: Option<u64>,
}

impl ServerConfig {
    /// A server named `server_name` with its data in `data_dir`, its client API and admin
    /// endpoint on ports of `ip` that were free a moment ago (fixed, so that a restart keeps
    /// them and `rendezvous admin` finds the endpoint).
    pub fn new(server_name: &str, data_dir: &Path, ip: impl Into<IpAddr>) -> ServerConfig {
        let ip = ip.into();
        ServerConfig {
            server_name: server_name.to_owned(),
            data_dir: data_dir.to_owned(),
            client_api: ClientApi {
                listen: free_addr_on(ip),
                tls_cert: None,
                tls_key: None,
            },
            admin: Admin {
                listen: free_addr_on(ip),
            },
            limits: Limits {
                workers: 2,
                rate: rendezvous::limits::RateConfig::unlimited(),
                body_timeout_secs: None,
                body_min_rate: None,
                ws_per_user: None,
                ws_per_device: None,
                connections_per_ip: 1 << 20,
                bodies_per_user: 1 << 20,
                body_memory_bytes: None,
                head_timeout_ms: None,
                quota: None,
            },
            federation: None,
            storage: None,
            push: None,
            outbound: Outbound {
                allow_private_targets: true,
                allow_cidrs: Vec::new(),
            },
        }
    }

    /// The file's text, as the server parses it.
    pub fn to_toml(&self) -> String {
        let text = toml::to_string(self).unwrap();
        rendezvous::config::Config::parse(&text)
            .unwrap_or_else(|e| panic!("the server refuses the test's configuration: {e}\n{text}"));
        text
    }

    /// Writes the file to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.to_toml()).unwrap();
    }
}
