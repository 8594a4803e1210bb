//! `rendezvous`: the homeserver and its admin commands.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rendezvous::server::config::Config;
use rendezvous::server::{self, Listeners};

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
    /// Server status.
    Status,
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
        Command::Serve { config } => serve(config.as_ref()),
        Command::Admin { config, action } => admin(config.as_ref(), action),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rendezvous: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config_path: Option<&PathBuf>) -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = load_config(config_path)?;
    let (identity, store) = server::prepare(&config).map_err(|e| e.to_string())?;
    let listeners = Listeners::bind(&config).map_err(|e| format!("cannot listen: {e}"))?;
    let client_addr = listeners.client.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = listeners.admin.local_addr().map_err(|e| e.to_string())?;
    if identity.generated {
        println!(
            "first start: generated server key, TLS certificate and admin token in {}",
            config.data_dir.display()
        );
    }
    println!(
        "rendezvous {} serving {}",
        env!("CARGO_PKG_VERSION"),
        config.server_name
    );
    println!("client API: https://{client_addr}");
    println!("TLS certificate fingerprint: {}", identity.fingerprint);
    println!(
        "admin endpoint: http://{admin_addr} (token in {})",
        config.data_dir.join("admin.token").display()
    );
    actix_web::rt::System::new().block_on(async move {
        server::run(config, identity, store, listeners, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    })
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
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
        AdminAction::Status | AdminAction::Fingerprint => ("GET", "/admin/status".to_owned()),
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
