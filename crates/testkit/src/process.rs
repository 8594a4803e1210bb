//! The `rendezvous` binary as operators run it: `rendezvous serve --config FILE` in its own
//! process, ready once it has written its `--ready-file` (every listener bound; the file holds
//! the bound addresses and the certificate fingerprints), never by reading its stdout. Its
//! stdout and stderr are kept, line by line, for a test to wait for a log line and for a
//! failing test to show.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rendezvous_client::tls::{Fingerprint, Trust};
use serde::Deserialize;

use crate::PATIENCE;

/// Every line the processes of one server printed, in order (kept across restarts).
pub type Log = Arc<Mutex<Vec<String>>>;

/// What `rendezvous serve --ready-file` writes once every listener is bound.
#[derive(Debug, Clone, Deserialize)]
pub struct Ready {
    pub pid: u32,
    pub server_name: String,
    pub client_api: SocketAddr,
    pub admin: SocketAddr,
    pub federation: Option<SocketAddr>,
    pub fingerprint: String,
    pub federation_fingerprint: Option<String>,
}

impl Ready {
    /// Waits until `child` has written `path`; `Err` saying why if it exits first or takes
    /// longer than `patience`. The server writes the file atomically: once it exists, it is
    /// whole.
    pub fn wait(path: &Path, child: &mut Child, patience: Duration) -> Result<Ready, String> {
        let deadline = Instant::now() + patience;
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                return serde_json::from_str(&text)
                    .map_err(|e| format!("ready file {}: {e}: {text}", path.display()));
            }
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("exited ({status}) before it was ready"));
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after {patience:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `https://<client API address>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.client_api)
    }
}

/// How to start one server: the binary, its configuration file and its log.
#[derive(Clone)]
pub struct Launch {
    bin: PathBuf,
    config: PathBuf,
    log: Log,
    env: Vec<(String, String)>,
}

impl Launch {
    /// `bin serve --config config` (see [`crate::rendezvous_bin`]).
    pub fn new(bin: &Path, config: &Path) -> Launch {
        Launch {
            bin: bin.to_owned(),
            config: config.to_owned(),
            log: Log::default(),
            env: Vec::new(),
        }
    }

    /// Sets environment variables of the process.
    pub fn envs(mut self, env: Vec<(String, String)>) -> Launch {
        self.env.extend(env);
        self
    }

    /// Appends what the processes print to `log` (shared by restarts of one server).
    pub fn log_to(mut self, log: Log) -> Launch {
        self.log = log;
        self
    }

    /// Where the server writes its ready file: beside its configuration.
    pub fn ready_file(&self) -> PathBuf {
        self.config.with_extension("ready.json")
    }

    /// Starts the server and waits until it is ready; panics with its output if it is not.
    pub fn start(&self) -> ServerProcess {
        self.try_start()
            .unwrap_or_else(|e| panic!("rendezvous serve {e}:\n{}", tail(&self.log, 30)))
    }

    /// Starts the server, retrying while a killed predecessor's port or database lock is
    /// still held.
    pub fn start_retrying(&self) -> ServerProcess {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.try_start() {
                Ok(process) => return process,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("rendezvous serve {e}:\n{}", tail(&self.log, 30)),
            }
        }
    }

    /// Starts the server; `Err` saying why if it exits before it is ready.
    pub fn try_start(&self) -> Result<ServerProcess, String> {
        let ready_file = self.ready_file();
        let _ = std::fs::remove_file(&ready_file);
        self.log.lock().unwrap().push(format!(
            "--- rendezvous serve --config {}",
            self.config.display()
        ));
        let mut child = Command::new(&self.bin)
            .args(["serve", "--config"])
            .arg(&self.config)
            .arg("--ready-file")
            .arg(&ready_file)
            .env(
                "RUST_LOG",
                std::env::var("RDV_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = keep_lines(&mut child, &self.log);
        match Ready::wait(&ready_file, &mut child, PATIENCE) {
            Ok(ready) => Ok(ServerProcess {
                url: ready.url(),
                ready,
                child,
                lines,
                log: self.log.clone(),
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }
}

/// Copies every line of `child`'s stdout and stderr into `log` and the returned channel.
fn keep_lines(child: &mut Child, log: &Log) -> Receiver<String> {
    let (tx, lines) = channel();
    let stdout = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn Read + Send>);
    let stderr = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn Read + Send>);
    for stream in [stdout, stderr].into_iter().flatten() {
        let (tx, log) = (tx.clone(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
    }
    lines
}

/// The last `n` lines of `log`.
pub fn tail(log: &Log, n: usize) -> String {
    let log = log.lock().unwrap();
    log[log.len().saturating_sub(n)..].join("\n")
}

/// A running `rendezvous serve`; killed (SIGKILL) when dropped, so that no process outlives a
/// failed test.
pub struct ServerProcess {
    pub child: Child,
    /// What its ready file said.
    pub ready: Ready,
    url: String,
    lines: Receiver<String>,
    log: Log,
}

impl ServerProcess {
    /// The client API's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How clients trust it: the fingerprint from its ready file, pinned.
    pub fn trust(&self) -> Trust {
        Trust::Pinned(self.ready.fingerprint.parse::<Fingerprint>().unwrap())
    }

    /// Waits for a line of its output containing `needle` (a log line; the server logs on
    /// stdout); returns it.
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no line with {needle:?}: {e}\n{}", self.tail(30)),
            }
        }
    }

    /// The last `n` lines it printed.
    pub fn tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// Sends signal `name` (`"HUP"`, `"TERM"`…).
    pub fn signal(&self, name: &str) {
        signal(self.child.id(), name);
    }

    /// SIGTERM, and a clean exit (status 0).
    pub fn terminate(mut self) {
        self.signal("TERM");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "graceful shutdown exits 0, got {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop on SIGTERM:\n{}",
                self.tail(30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown at all, whatever was in flight.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl crate::raw::Api for ServerProcess {
    fn url(&self) -> &str {
        &self.url
    }

    fn trust(&self) -> Trust {
        ServerProcess::trust(self)
    }
}

/// Sends signal `name` to process `pid` with `kill(1)` (procps).
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Runs `bin args…`: its output, whatever the exit status.
pub fn run(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().unwrap()
}

/// Runs `bin args…`: its stdout (trimmed), or a panic with its stderr.
pub fn run_ok(bin: &Path, args: &[&str]) -> String {
    let out = run(bin, args);
    assert!(
        out.status.success(),
        "rendezvous {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `rendezvous admin --config config args…`: its stdout (trimmed), or a panic with its stderr.
pub fn admin(bin: &Path, config: &Path, args: &[&str]) -> String {
    let config = config.to_str().unwrap();
    let mut all = vec!["admin", "--config", config];
    all.extend_from_slice(args);
    run_ok(bin, &all)
}

/// Writes a configuration for `localhost` with its data in `dir/data`, as `configure` adjusts
/// it, to `dir/rendezvous.toml`, and starts `bin` on it: the process and the file (to restart
/// it, or to run admin commands).
pub fn start_configured(
    bin: &Path,
    dir: &crate::TempDir,
    configure: impl FnOnce(&mut crate::config::ServerConfig),
) -> (ServerProcess, PathBuf) {
    let config = dir.join("rendezvous.toml");
    let mut c = crate::config::ServerConfig::new("localhost", &dir.join("data"), [127, 0, 0, 1]);
    configure(&mut c);
    c.write(&config);
    (Launch::new(bin, &config).start(), config)
}

/// Registers `name` on a server process with a pin from `rendezvous admin pin` (`bin`,
/// `config`), keystore in `dir/name`.
pub async fn register(
    bin: &Path,
    dir: &crate::TempDir,
    server: &ServerProcess,
    config: &Path,
    name: &str,
) -> rendezvous_client::Client {
    let pin = admin(bin, config, &["pin"]);
    rendezvous_client::Client::register(
        &dir.join(name),
        &crate::passphrase(),
        server.url(),
        server.trust(),
        &pin,
        &crate::server::uid(name),
    )
    .await
    .unwrap()
}
