//! The crate graph is the architecture (`federation-spec/architecture.md` §1): the protocol
//! crate must never gain an HTTP stack, an async runtime, storage, TLS, DNS, a CLI parser or a
//! logging framework, and the client library must never depend on the server.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::process::Command;

/// Crates that belong to the server or client runtime, never to the protocol.
const RUNTIME_CRATES: &[&str] = &[
    "actix-web",
    "actix-rt",
    "actix-tls",
    "actix-ws",
    "actix-http",
    "awc",
    "tokio",
    "mio",
    "sled",
    "rustls",
    "rustls-native-certs",
    "hickory-resolver",
    "hickory-proto",
    "clap",
    "tracing",
    "tracing-subscriber",
    "reqwest",
    "hyper",
    "h2",
    "rcgen",
    "prometheus-client",
    "futures-util",
];

/// The normal (non-dev) dependency closure of `package`, as package names.
fn dependency_names(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "--package",
            package,
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(
        names.contains(package),
        "cargo tree did not list {package} itself: {names:?}"
    );
    names
}

#[test]
fn protocol_crate_has_no_runtime_dependency() {
    let names = dependency_names("rendezvous-protocol");
    let found: Vec<&str> = RUNTIME_CRATES
        .iter()
        .copied()
        .filter(|c| names.contains(*c))
        .collect();
    assert!(
        found.is_empty(),
        "rendezvous-protocol depends on server/client runtime crates {found:?}; keep HTTP, \
         storage, TLS, DNS, async runtimes and CLI parsing out of the protocol"
    );
    // It does hold the protocol's own primitives (the check above is not vacuous).
    for needed in ["ed25519-dalek", "hpke", "ciborium", "sha2"] {
        assert!(
            names.contains(needed),
            "expected {needed} in the protocol's tree"
        );
    }
}

#[test]
fn client_library_does_not_depend_on_the_server() {
    let names = dependency_names("rendezvous-client");
    for server_only in [
        "rendezvous",
        "sled",
        "actix-web",
        "hickory-resolver",
        "tracing-subscriber",
    ] {
        assert!(
            !names.contains(server_only),
            "rendezvous-client depends on {server_only}, a server crate"
        );
    }
    assert!(names.contains("rendezvous-protocol"));
}
