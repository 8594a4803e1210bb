//! What the Rendezvous tests share (`tests/*.rs` of the root package): one way to run each kind
//! of server and one of every helper that used to be copied between test files.
//!
//! - [`server`]: a homeserver in this process (`rendezvous::run` on real TLS sockets), for
//!   tests that look inside it.
//! - [`process`]: the `rendezvous` binary as operators run it, ready once it has written its
//!   `--ready-file` (never by reading its stdout).
//! - [`config`]: the configuration file both are described by.
//! - [`federation`]: N federating homeservers (in-process or processes) with a test CA
//!   ([`ca`]) and, for processes, DNS on loopback ([`dns`]); [`transaction`] sends a raw
//!   federation transaction as a peer would.
//! - [`lying`]: a lying hosting server (a TLS proxy holding the real server's certificate and
//!   Server Key) and [`fork`]: two copies of one hosting server, for the attacks of issue 9.
//! - [`raw`]: the client API as a device reaches it, for requests an honest client never sends;
//!   [`http1`]: the same at the HTTP level, from a chosen loopback address (raw TLS connections,
//!   heads and bodies by hand).
//! - [`topic`]: users with keys and topics, for tests of the protocol rules without a server.
//! - [`ports`], [`dir`]: free loopback ports, temporary directories.
// A test kit: a failed unwrap is a failed test, with the test's own backtrace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![forbid(unsafe_code)]

pub mod ca;
pub mod cli;
pub mod config;
pub mod dir;
pub mod dns;
pub mod federation;
pub mod fork;
pub mod http1;
pub mod lying;
pub mod ports;
pub mod process;
pub mod raw;
pub mod server;
pub mod topic;
pub mod transaction;
pub mod wait;

pub use dir::TempDir;
pub use process::ServerProcess;
pub use server::TestServer;

use std::time::Duration;

/// How long anything that should happen in a test may take.
pub const PATIENCE: Duration = Duration::from_secs(45);

/// The `rendezvous` binary Cargo built for the calling integration test
/// (`CARGO_BIN_EXE_rendezvous`, which only the root package's tests see).
#[macro_export]
macro_rules! rendezvous_bin {
    () => {
        std::path::Path::new(env!("CARGO_BIN_EXE_rendezvous"))
    };
}

/// The passphrase every test keystore is locked with (`devices.md` §5.5); `rdv` processes get
/// it as `RDV_PASSPHRASE` or from [`passphrase_file`].
pub const PASSPHRASE: &str = "rendezvous test keystore";

/// [`PASSPHRASE`] as the client library takes it.
pub fn passphrase() -> rendezvous_client::Passphrase {
    rendezvous_client::Passphrase::new(PASSPHRASE)
}

/// A file holding [`PASSPHRASE`] next to the keystore `home` (`HOME.passphrase`), for
/// `rdv --passphrase-file`.
pub fn passphrase_file(home: &std::path::Path) -> std::path::PathBuf {
    let path = home.with_extension("passphrase");
    std::fs::write(&path, format!("{PASSPHRASE}\n")).unwrap();
    path
}

/// `@name:server`.
pub fn user_id(name: &str, server: &str) -> rendezvous_protocol::ids::UserId {
    format!("@{name}:{server}").parse().unwrap()
}

/// Sets up `tracing` for in-process servers once (`RDV_TEST_LOG`, default `warn`).
pub fn init_test_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RDV_TEST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}
