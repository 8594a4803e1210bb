//! The server process: `rendezvous serve` in a temporary directory of its own, ready once it
//! has written its `--ready-file`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rendezvous_client::http::Http;
use rendezvous_client::tls::{Fingerprint, Trust};

use crate::Res;
use crate::args::Args;
use crate::stats::ProcStats;

/// A temporary directory, removed on drop unless kept.
pub(crate) struct WorkDir {
    pub(crate) path: PathBuf,
    pub(crate) keep: bool,
}

impl WorkDir {
    pub(crate) fn new(keep: bool) -> Res<WorkDir> {
        let suffix: [u8; 6] = rendezvous_protocol::crypto::random_array();
        let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("rdv-load-{hex}"));
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(WorkDir { path, keep })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("rdv-load: kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// What the server's `--ready-file` holds (the fields used here).
#[derive(serde::Deserialize)]
struct Ready {
    client_api: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    fingerprint: String,
}

/// A `rendezvous serve` child process.
pub(crate) struct Server {
    pub(crate) child: Child,
    /// The server name (`server_name`): the part after `:` in its users' ids.
    pub(crate) name: String,
    pub(crate) bin: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) url: String,
    pub(crate) admin: String,
    pub(crate) fingerprint: String,
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> Res<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("bind: {e}"))
}

/// The rate classes the load reaches, set far above it: the benchmark measures the checks, not
/// refusals (every other class keeps its default). The per-peer classes and bounds
/// (`federation-api.md` §1.1) are lifted too: with `--federation` the peers are the load's own
/// servers, whose transactions, queries and claims carry every simulated user's traffic.
const LOAD_RATES: &str = "[limits.rate]\n\
    register_ip = { per_second = 1000000, burst = 1000000 }\n\
    devices_ip = { per_second = 1000000, burst = 1000000 }\n\
    login_ip = { per_second = 1000000, burst = 1000000 }\n\
    upload = { per_second = 1000000, burst = 1000000 }\n\
    topic_create = { per_second = 1000000, burst = 1000000 }\n\
    send = { per_second = 1000000, burst = 1000000 }\n\
    send_kib = { per_second = 1000000, burst = 1000000 }\n\
    claim = { per_second = 1000000, burst = 1000000 }\n\
    claim_victim = { per_second = 1000000, burst = 1000000 }\n\
    remote = { per_second = 1000000, burst = 1000000 }\n\
    stream = { per_second = 1000000, burst = 1000000 }\n\
    any_ip = { per_second = 1000000, burst = 1000000 }\n\
    any_user = { per_second = 1000000, burst = 1000000 }\n\n\
    [federation.limits]\n\
    txn = { per_second = 1000000, burst = 1000000 }\n\
    txn_kib = { per_second = 1000000, burst = 1000000 }\n\
    query = { per_second = 1000000, burst = 1000000 }\n\
    claim = { per_second = 1000000, burst = 1000000 }\n\
    queue_events = 100000000\n\
    queue_bytes = 1099511627776\n\
    mirrored_topics_per_peer = 100000000\n";

impl Server {
    pub(crate) fn start(bin: &Path, dir: &Path, workers: usize) -> Res<Server> {
        Self::start_named(bin, dir, "localhost", workers, "")
    }

    /// Starts a server named `name` with its files in `dir`; `extra` is appended to the
    /// generated configuration (e.g. a `[federation]` section).
    pub(crate) fn start_named(
        bin: &Path,
        dir: &Path,
        name: &str,
        workers: usize,
        extra: &str,
    ) -> Res<Server> {
        Self::start_configured(bin, dir, name, workers, ("", LOAD_RATES), extra)
    }

    /// As [`Server::start_named`], with `limits.0` added to `[limits]` and `limits.1` as the
    /// `[limits.rate]` section.
    pub(crate) fn start_configured(
        bin: &Path,
        dir: &Path,
        name: &str,
        workers: usize,
        limits: (&str, &str),
        extra: &str,
    ) -> Res<Server> {
        let (limit_lines, rates) = limits;
        let data_dir = dir.join("server");
        let config = dir.join("server.toml");
        let (client_port, admin_port) = (free_port()?, free_port()?);
        let text = format!(
            "server_name = \"{name}\"\ndata_dir = \"{}\"\n\n[client_api]\nlisten = \
             \"127.0.0.1:{client_port}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n\
             [limits]\nworkers = {workers}\n{limit_lines}\n{rates}\n{extra}",
            data_dir.display()
        );
        std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
        let mut server = Server {
            child: spawn_placeholder()?,
            name: name.to_owned(),
            bin: bin.to_owned(),
            config,
            data_dir,
            log: dir.join("server.log"),
            url: format!("https://127.0.0.1:{client_port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            fingerprint: String::new(),
        };
        server.spawn()?;
        Ok(server)
    }

    /// Where the server writes its `--ready-file`.
    fn ready_file(&self) -> PathBuf {
        self.config.with_extension("ready.json")
    }

    /// Starts the process (its stdout and stderr appended to the log file) and waits until it
    /// has written its ready file.
    pub(crate) fn spawn(&mut self) -> Res<()> {
        let open_log = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .map_err(|e| format!("{}: {e}", self.log.display()))
        };
        let ready_file = self.ready_file();
        let _ = std::fs::remove_file(&ready_file);
        let child = Command::new(&self.bin)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .arg("--ready-file")
            .arg(&ready_file)
            .env(
                "RUST_LOG",
                std::env::var("RDV_SERVER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::from(open_log()?))
            .stderr(Stdio::from(open_log()?))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        let _ = std::mem::replace(&mut self.child, child).kill();
        let ready = self.wait_for_ready_file(&ready_file)?;
        self.url = format!("https://{}", ready.client_api);
        self.admin = format!("http://{}", ready.admin);
        self.fingerprint = ready.fingerprint;
        Ok(())
    }

    /// Waits (20 s at most) for the ready file; fails at once if the server exits first.
    fn wait_for_ready_file(&mut self, path: &Path) -> Res<Ready> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                // Written atomically by the server: once it exists, it is whole.
                return serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()));
            }
            let exited = self.child.try_wait().map_err(|e| e.to_string())?;
            if exited.is_some() || Instant::now() > deadline {
                return Err(format!(
                    "the server did not start (log: {})",
                    self.log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn trust(&self) -> Res<Trust> {
        let fp: Fingerprint = self.fingerprint.parse().map_err(|e| format!("{e}"))?;
        Ok(Trust::Pinned(fp))
    }

    /// Graceful stop (SIGTERM: in-flight requests finish, the store is flushed).
    pub(crate) fn stop(&mut self) -> Res<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err("the server did not stop within 20 s after SIGTERM".into())
    }

    pub(crate) fn restart(&mut self) -> Res<()> {
        self.stop()?;
        self.spawn()
    }

    /// Waits until the client API answers.
    pub(crate) async fn wait_ready(&self) -> Res<()> {
        let http = Http::new(&self.url, &self.trust()?).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match http.get_json::<serde_json::Value>("/v1/status").await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("the server does not answer: {e}"));
                }
                Err(_) => actix_rt::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// A one-time registration pin from the admin endpoint.
    pub(crate) async fn pin(&self) -> Res<String> {
        let path = self.data_dir.join("admin.token");
        let token =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut resp = awc::Client::default()
            .post(format!("{}/admin/pins", self.admin))
            .insert_header(("Authorization", format!("Bearer {}", token.trim())))
            .send()
            .await
            .map_err(|e| format!("admin endpoint: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("admin endpoint answered {}", resp.status()));
        }
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| format!("admin endpoint: {e}"))?;
        v["pin"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "admin endpoint: no pin in the answer".into())
    }

    pub(crate) fn stats(&self) -> ProcStats {
        ProcStats::read(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.stop();
        }
    }
}

/// A child that exits at once, to hold the place of the real one until it is spawned.
pub(crate) fn spawn_placeholder() -> Res<Child> {
    Command::new("true")
        .spawn()
        .map_err(|e| format!("cannot run `true`: {e}"))
}

pub(crate) fn server_bin(args: &Args) -> Res<PathBuf> {
    if let Some(p) = &args.server_bin {
        return Ok(p.clone());
    }
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let bin = me.with_file_name("rendezvous");
    if !bin.exists() {
        return Err(format!(
            "{} not found: build it (cargo build --release --bins) or pass --server-bin",
            bin.display()
        ));
    }
    Ok(bin)
}
