//! `rendezvous`: the homeserver and its admin commands.

#![forbid(unsafe_code)]

use std::future::Future;
use std::io::IsTerminal;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rendezvous::clock::Clock;
use rendezvous::config::Config;
use rendezvous::tls::issue::{self, FederationCa, ServerCertificate};
use rendezvous::tls::{CertReloader, ReloadableCert};
use rendezvous::{self as server, Listeners};
use rendezvous_protocol::ids::ServerName;

#[derive(Parser)]
#[command(name = "rendezvous", version, about = "Rendezvous homeserver")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the homeserver (embedded defaults when no --config is given).
    Serve {
        /// TOML configuration file (see config/rendezvous.example.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Once every listener is bound, write the bound addresses and the certificate
        /// fingerprints to this file as JSON (written beside it, then renamed into place, so a
        /// reader never sees half of it); removed again on a clean stop. For scripts and tests
        /// that wait for the server.
        #[arg(long, value_name = "PATH")]
        ready_file: Option<PathBuf>,
    },
    /// Make a private key, a certificate signing request (for a CA or an ACME client) and a
    /// certificate for a server name: self-signed, or signed by a federation CA.
    FederationCert {
        /// The server name (`server_name` in the configuration), e.g. `example.org`.
        #[arg(long)]
        name: String,
        /// Directory to write `key.pem` (mode 0600), `csr.pem` and `cert.pem` into.
        #[arg(long)]
        out: PathBuf,
        /// Sign the certificate with this CA certificate (from `federation-ca`) instead of
        /// self-signing it.
        #[arg(long, requires = "ca_key")]
        ca_cert: Option<PathBuf>,
        /// The CA's private key (`ca.key` from `federation-ca`).
        #[arg(long, requires = "ca_cert")]
        ca_key: Option<PathBuf>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace an existing `key.pem` in the directory.
        #[arg(long)]
        force: bool,
    },
    /// Make a private federation CA for a closed federation: its certificate goes into every
    /// member's `[federation] ca_file`, and it signs their certificates (`federation-cert
    /// --ca-cert`).
    FederationCa {
        /// Directory to write `ca.pem` and `ca.key` (mode 0600) into.
        #[arg(long)]
        out: PathBuf,
        /// The CA's name (subject common name).
        #[arg(long, default_value = "Rendezvous federation CA")]
        name: String,
        /// Days the CA is valid.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Replace an existing `ca.key` in the directory.
        #[arg(long)]
        force: bool,
    },
    /// Rotate the Server Key, with the server stopped: a new key replaces `server.key`, and a
    /// statement signed by the old and the new key lets peers and members follow the change
    /// (federation-spec/tag-log.md §7.6). Prints the old and the new public key.
    RotateServerKey {
        /// The same configuration file the server runs with.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Operator commands against the running server's admin endpoint.
    Admin {
        /// The same configuration file the server runs with.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// Issue a one-time registration pin.
    Pin,
    /// List users.
    Users,
    /// Disable a user (their devices can no longer log in or use tokens).
    Disable {
        /// `@name:server`.
        user: String,
    },
    /// Enable a disabled user.
    Enable {
        /// `@name:server`.
        user: String,
    },
    /// List a user's devices.
    Devices {
        /// `@name:server`.
        user: String,
    },
    /// Server status: the store, who is being limited, federation peers (`--json`: all of
    /// `GET /admin/status`).
    Status {
        /// Print the JSON answer instead of the tables.
        #[arg(long)]
        json: bool,
    },
    /// The TLS certificate fingerprint clients pin (`rdv account register --fingerprint`).
    Fingerprint,
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, String> {
    match path {
        Some(p) => Config::load(p).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, ready_file } => serve(config.as_ref(), ready_file.as_deref()),
        Command::FederationCert {
            name,
            out,
            ca_cert,
            ca_key,
            days,
            force,
        } => {
            let ca = ca_cert.as_deref().zip(ca_key.as_deref());
            federation_cert(&name, &out, ca, days, force)
        }
        Command::FederationCa {
            out,
            name,
            days,
            force,
        } => federation_ca(&name, &out, days, force),
        Command::Admin { config, action } => admin(config.as_ref(), action),
        Command::RotateServerKey { config } => rotate_server_key(config.as_ref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rendezvous: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config_path: Option<&PathBuf>, ready_file: Option<&Path>) -> Result<(), String> {
    init_logging();
    let config = load_config(config_path)?;
    let (identity, store) = server::prepare(&config).map_err(|e| e.to_string())?;
    let listeners = bind(&config)?;
    let ready = Ready::new(&config, &listeners, &identity)?;
    actix_web::rt::System::new().block_on(async move {
        // Installed before the server announces itself, so that a signal sent once the
        // addresses are printed never meets the default action (which would kill the process).
        let shutdown = shutdown_signal().map_err(|e| format!("cannot handle signals: {e}"))?;
        let reload = reload_on_hangup(identity.reloader())
            .map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
        if identity.generated {
            println!(
                "first start: generated server key, TLS certificate and admin token in {}",
                config.data_dir.display()
            );
        }
        ready.print(&config);
        if let Some(path) = ready_file {
            ready.write(path)?;
        }
        let reloading = actix_web::rt::spawn(reload);
        let result = server::run(
            config,
            identity,
            store,
            listeners,
            Clock::system(),
            shutdown,
        )
        .await;
        reloading.abort();
        if let Some(path) = ready_file {
            let _ = std::fs::remove_file(path);
        }
        result.map_err(|e| e.to_string())
    })
}

/// Logs go to stdout; colours only when that is a terminal and `NO_COLOR` is unset or empty
/// (<https://no-color.org>), so that a log file or a pipe gets plain text.
fn init_logging() {
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(colour)
        .init();
}

/// Binds every listener of the configuration; a failure names the address and the
/// configuration key that sets it.
fn bind(config: &Config) -> Result<Listeners, String> {
    Ok(Listeners {
        client: listen(config.client_api.listen, "[client_api] listen")?,
        admin: listen(config.admin.listen, "[admin] listen")?,
        federation: match config.federation.enabled {
            true => Some(listen(config.federation.listen, "[federation] listen")?),
            false => None,
        },
    })
}

fn listen(addr: SocketAddr, key: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "cannot listen on {addr}: the address is already in use (is another rendezvous \
             server running?); stop what uses it, or set {key} in the configuration to a free \
             address"
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "cannot listen on {addr}: not an address of this machine; set {key} in the \
             configuration to one that is"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "cannot listen on {addr}: permission denied (ports below 1024 need privileges); set \
             {key} in the configuration to another port"
        ),
        _ => format!("cannot listen on {addr} ({key}): {e}"),
    })
}

/// What `--ready-file` holds once every listener is bound (JSON): what a client, an operator's
/// script or a test needs to reach the server.
#[derive(serde::Serialize)]
struct Ready {
    /// The server process.
    pid: u32,
    /// `server_name`.
    server_name: String,
    /// The client API's bound address (HTTPS).
    client_api: SocketAddr,
    /// The admin endpoint's bound address (plain HTTP, loopback).
    admin: SocketAddr,
    /// The federation listener's bound address, when federation is on.
    federation: Option<SocketAddr>,
    /// The client API certificate's fingerprint, as clients pin it.
    fingerprint: String,
    /// The federation certificate's fingerprint, when federation is on.
    federation_fingerprint: Option<String>,
}

impl Ready {
    fn new(
        config: &Config,
        listeners: &Listeners,
        identity: &rendezvous::identity::ServerIdentity,
    ) -> Result<Ready, String> {
        let addr = |l: &TcpListener| l.local_addr().map_err(|e| e.to_string());
        let federation = match &listeners.federation {
            Some(l) => Some(addr(l)?),
            None => None,
        };
        Ok(Ready {
            pid: std::process::id(),
            server_name: config.server_name.to_string(),
            client_api: addr(&listeners.client)?,
            admin: addr(&listeners.admin)?,
            federation,
            fingerprint: identity.fingerprint(),
            federation_fingerprint: federation
                .and(identity.federation.as_ref())
                .map(|f| f.certificate.fingerprint()),
        })
    }

    /// The same, for people: the lines the server prints on start.
    fn print(&self, config: &Config) {
        println!(
            "rendezvous {} serving {}",
            env!("CARGO_PKG_VERSION"),
            self.server_name
        );
        println!("client API: https://{}", self.client_api);
        println!("TLS certificate fingerprint: {}", self.fingerprint);
        if let (Some(addr), Some(fingerprint)) = (self.federation, &self.federation_fingerprint) {
            println!("federation: https://{addr} (certificate fingerprint {fingerprint})");
        }
        println!(
            "admin endpoint: http://{} (token in {})",
            self.admin,
            config.data_dir.join("admin.token").display()
        );
    }

    /// Writes the file atomically: into a temporary file beside it, then renamed.
    fn write(&self, path: &Path) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write the ready file {}: {e}", path.display()))
    }
}

/// Resolves on SIGINT or SIGTERM; the handlers are installed when this is called (inside the
/// runtime).
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Reloads the TLS certificates from their files on every SIGHUP (a bad file is logged and the
/// current certificate kept); the handler is installed when this is called.
fn reload_on_hangup(reloader: CertReloader) -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup())?;
        Ok(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading TLS certificates");
                reloader.reload_all();
            }
        })
    }
    #[cfg(not(unix))]
    {
        let _ = reloader;
        Ok(std::future::pending())
    }
}

/// `rendezvous federation-cert`.
fn federation_cert(
    name: &str,
    out: &Path,
    ca: Option<(&Path, &Path)>,
    days: u32,
    force: bool,
) -> Result<(), String> {
    let name: ServerName = name
        .parse()
        .map_err(|e| format!("server name {name:?}: {e}"))?;
    let ca = match ca {
        Some((cert, key)) => Some(FederationCa::load(cert, key).map_err(|e| e.to_string())?),
        None => None,
    };
    let made = ServerCertificate::generate(&name, ca.as_ref(), days).map_err(|e| e.to_string())?;
    made.write(out, force).map_err(|e| e.to_string())?;
    let (cert, key) = (out.join(issue::CERT_FILE), out.join(issue::KEY_FILE));
    let fingerprint = ReloadableCert::load(&cert, &key)
        .map_err(|e| e.to_string())?
        .fingerprint();
    println!("private key: {} (mode 0600)", key.display());
    println!(
        "CSR:         {} (subject and DNS name {}: for your CA or ACME client)",
        out.join(issue::CSR_FILE).display(),
        name.host()
    );
    println!(
        "certificate: {} ({}, {days} days, {fingerprint})",
        cert.display(),
        match ca {
            Some(_) => "signed by the federation CA",
            None => "self-signed",
        }
    );
    Ok(())
}

/// `rendezvous federation-ca`.
fn federation_ca(name: &str, out: &Path, days: u32, force: bool) -> Result<(), String> {
    let ca = FederationCa::generate(name, days).map_err(|e| e.to_string())?;
    ca.write(out, force).map_err(|e| e.to_string())?;
    println!(
        "CA certificate: {} (every member's [federation] ca_file)",
        out.join(issue::CA_CERT_FILE).display()
    );
    println!(
        "CA key:         {} (mode 0600; keep it offline)",
        out.join(issue::CA_KEY_FILE).display()
    );
    Ok(())
}

/// `rendezvous rotate-server-key`.
fn rotate_server_key(config_path: Option<&PathBuf>) -> Result<(), String> {
    let config = load_config(config_path)?;
    config.check().map_err(|e| e.to_string())?;
    let db = config.data_dir.join("db");
    if !db.exists() {
        return Err(format!(
            "no store at {}: start the server once before rotating its key",
            db.display()
        ));
    }
    let store = rendezvous::store::Store::open(&db).map_err(|e| {
        format!(
            "cannot open the store {} ({e}): stop the server first",
            db.display()
        )
    })?;
    let statement = actix_web::rt::System::new().block_on(server::identity::rotation::rotate(
        &config.data_dir,
        &store,
        &config.server_name,
        rendezvous::state::now(),
    ));
    let statement = statement.map_err(|e| e.to_string())?;
    let r = statement.rotation();
    let hex = rendezvous_protocol::crypto::sign::hex_string;
    println!("rotated the Server Key of {} at {}", r.server, r.time);
    println!("old key: {}", hex(r.old.as_bytes()));
    println!("new key: {}", hex(r.new.as_bytes()));
    Ok(())
}

fn admin(config_path: Option<&PathBuf>, action: AdminAction) -> Result<(), String> {
    let config = load_config(config_path)?;
    let token_path = config.data_dir.join("admin.token");
    let token = std::fs::read_to_string(&token_path).map_err(|e| {
        format!(
            "cannot read the admin token {}: {e} (is the server's data_dir right?)",
            token_path.display()
        )
    })?;
    let base = format!("http://{}", config.admin.listen);
    let (method, path) = match &action {
        AdminAction::Pin => ("POST", "/admin/pins".to_owned()),
        AdminAction::Users => ("GET", "/admin/users".to_owned()),
        AdminAction::Disable { user } => ("POST", format!("/admin/users/{}/disable", encode(user))),
        AdminAction::Enable { user } => ("POST", format!("/admin/users/{}/enable", encode(user))),
        AdminAction::Devices { user } => ("GET", format!("/admin/users/{}/devices", encode(user))),
        AdminAction::Status { .. } | AdminAction::Fingerprint => {
            ("GET", "/admin/status".to_owned())
        }
    };
    actix_web::rt::System::new().block_on(async move {
        let client = awc::Client::default();
        let url = format!("{base}{path}");
        let req = match method {
            "POST" => client.post(&url),
            _ => client.get(&url),
        }
        .insert_header(("Authorization", format!("Bearer {}", token.trim())));
        let mut resp = req.send().await.map_err(|e| {
            format!("cannot reach the admin endpoint at {base}: {e} (is the server running?)")
        })?;
        let body = resp.body().await.map_err(|e| e.to_string())?;
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| format!("unexpected answer: {}", String::from_utf8_lossy(&body)))?;
        if !resp.status().is_success() {
            return Err(format!(
                "{} ({})",
                value["message"].as_str().unwrap_or("error"),
                value["code"].as_str().unwrap_or("?")
            ));
        }
        match action {
            AdminAction::Pin => println!("{}", value["pin"].as_str().unwrap_or_default()),
            AdminAction::Fingerprint => {
                println!("{}", value["tls_fingerprint"].as_str().unwrap_or_default())
            }
            AdminAction::Status { json: false } => {
                print!("{}", rendezvous::admin::status_table(&value))
            }
            _ => println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            ),
        }
        Ok(())
    })
}

/// Percent-encodes a path segment (user ids contain `@` and `:`).
fn encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
