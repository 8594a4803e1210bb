//! Real homeservers for tests: `server::run` on real TLS sockets on 127.0.0.1, with real files in
//! a temporary data directory, each in its own thread and actix system.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use crate::TempDir;

use rendezvous::clock::Clock;
use rendezvous::config::Config;
use rendezvous::{self as server, Listeners};
use rendezvous_client::tls::{Fingerprint, Trust};

/// A running homeserver.
pub struct TestServer {
    pub url: String,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub fingerprint: String,
    pub data_dir: PathBuf,
    /// The server's clock: [`Clock::advance`] moves its time (and that of the clients
    /// [`register`] made for it) forward instead of waiting.
    pub clock: Clock,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl TestServer {
    /// Starts a server for `localhost` with its data in `data_dir` (kept across restarts).
    pub fn start(data_dir: &Path) -> TestServer {
        Self::start_on(data_dir, "127.0.0.1:0".parse().unwrap())
    }

    /// Starts a server listening on `addr` (to restart on the same port).
    pub fn start_on(data_dir: &Path, addr: SocketAddr) -> TestServer {
        Self::start_with(data_dir, addr, |_| None)
    }

    /// Starts a server whose configuration `configure` adjusts; it may return a bound
    /// federation listener.
    pub fn start_with(
        data_dir: &Path,
        addr: SocketAddr,
        configure: impl FnOnce(&mut Config) -> Option<TcpListener>,
    ) -> TestServer {
        Self::start_clocked(data_dir, addr, Clock::adjustable(), configure)
    }

    /// As [`TestServer::start_with`], reading time from `clock` (one clock shared by the
    /// servers of a federation).
    pub fn start_clocked(
        data_dir: &Path,
        addr: SocketAddr,
        clock: Clock,
        configure: impl FnOnce(&mut Config) -> Option<TcpListener>,
    ) -> TestServer {
        Self::start_inspecting(data_dir, addr, clock, configure, |_| {})
    }

    /// As [`TestServer::start_clocked`], showing the opened store to `inspect` before the
    /// server starts (to take a test hook's switch; keeping the store itself would stop the
    /// server from reopening it after a storage fault).
    pub fn start_inspecting(
        data_dir: &Path,
        addr: SocketAddr,
        clock: Clock,
        configure: impl FnOnce(&mut Config) -> Option<TcpListener>,
        inspect: impl FnOnce(&rendezvous::store::Store),
    ) -> TestServer {
        crate::init_test_log();
        let mut config = Config {
            data_dir: data_dir.to_owned(),
            ..Config::default()
        };
        config.limits.workers = 2;
        // Tests of a limit set it; the others must not meet one.
        config.limits.rate = rendezvous::limits::RateConfig::unlimited();
        config.limits.connections_per_ip = 1 << 20;
        config.limits.bodies_per_user = 1 << 20;
        config.federation.limits = rendezvous::limits::PeerRateConfig::unlimited();
        config.push.allow_loopback_http = true;
        // Every test server, peer and push endpoint is on 127.0.0.0/8; the SSRF tests
        // (`tests/limits_ssrf.rs`) turn this off.
        config.outbound.allow_private_targets = true;
        // A restart binds the address its previous run held a moment ago.
        let client = crate::ports::bind_retrying(addr);
        let admin = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = client.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        config.client_api.listen = addr;
        config.admin.listen = admin_addr;
        let federation = configure(&mut config);
        // A server stopped a moment ago may still hold the database lock in a worker thread.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let (identity, store) = loop {
            match server::prepare(&config) {
                Ok(ready) => break ready,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => panic!("server does not start: {e}"),
            }
        };
        inspect(&store);
        let fingerprint = identity.fingerprint();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server_clock = clock.clone();
        let listeners = Listeners {
            client,
            admin,
            federation,
        };
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                server::run(
                    config,
                    identity,
                    store,
                    listeners,
                    server_clock,
                    async move {
                        let _ = stopped.await;
                    },
                )
                .await
                .map_err(|e| e.to_string())
            })
        });
        TestServer {
            url: format!("https://{addr}"),
            addr,
            admin: admin_addr,
            fingerprint,
            data_dir: data_dir.to_owned(),
            clock,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// How clients trust this server: its certificate's fingerprint, pinned.
    pub fn trust(&self) -> Trust {
        Trust::Pinned(self.fingerprint.parse::<Fingerprint>().unwrap())
    }

    /// Issues a registration pin through the admin endpoint, as `rendezvous admin pin` does.
    pub async fn pin(&self) -> String {
        let token = std::fs::read_to_string(self.data_dir.join("admin.token")).unwrap();
        let mut resp = awc::Client::default()
            .post(format!("http://{}/admin/pins", self.admin))
            .insert_header(("Authorization", format!("Bearer {}", token.trim())))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        let v: serde_json::Value = resp.json().await.unwrap();
        v["pin"].as_str().unwrap().to_owned()
    }

    /// `GET /admin/status`, as `rendezvous admin status` prints it.
    pub async fn admin_status(&self) -> serde_json::Value {
        let token = std::fs::read_to_string(self.data_dir.join("admin.token")).unwrap();
        let mut resp = awc::Client::default()
            .get(format!("http://{}/admin/status", self.admin))
            .insert_header(("Authorization", format!("Bearer {}", token.trim())))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        resp.json().await.unwrap()
    }

    /// Graceful stop: in-flight requests finish, the store is flushed.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// `@name:localhost`.
pub fn uid(name: &str) -> rendezvous_protocol::ids::UserId {
    crate::user_id(name, "localhost")
}

/// Registers `name` on `server` with a fresh pin, keystore in `dir/name`; the client reads the
/// server's clock.
pub async fn register(server: &TestServer, dir: &TempDir, name: &str) -> rendezvous_client::Client {
    let mut client = rendezvous_client::Client::register(
        &dir.join(name),
        &crate::passphrase(),
        &server.url,
        server.trust(),
        &server.pin().await,
        &uid(name),
    )
    .await
    .unwrap();
    client.set_clock(server.clock.clone());
    client
}

/// Links a new device for `existing`'s user, keystore in `dir/name`, both ends at once: what
/// the joining and the offering side got.
pub async fn try_link(
    server: &TestServer,
    dir: &TempDir,
    existing: &mut rendezvous_client::Client,
    name: &str,
) -> (
    Result<rendezvous_client::Client, rendezvous_client::ClientError>,
    Result<(), rendezvous_client::ClientError>,
) {
    let pending = existing.link_offer_start().await.unwrap();
    let code = pending.code().to_string();
    let (joined, offered) = futures_util::future::join(
        rendezvous_client::Client::link_join(
            &dir.join(name),
            &crate::passphrase(),
            &server.url,
            server.trust(),
            &code,
        ),
        existing.link_offer_finish(pending, std::time::Duration::from_secs(20)),
    )
    .await;
    (joined, offered.map(|_| ()))
}

/// Opens a stopped server's store, waiting for its worker threads to let go of the database lock.
pub fn open_store_when_free(path: &Path) -> rendezvous::store::Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match rendezvous::store::Store::open(path) {
            Ok(store) => return store,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("store still locked: {e}"),
        }
    }
}
