//! The crate graph is the architecture (`federation-spec/architecture.md` §1): the protocol
//! crate must never gain an HTTP stack, an async runtime, storage, TLS, DNS, a CLI parser or a
//! logging framework, and the client library must never depend on the server. And a newcomer
//! can hold every production module (600 lines at most) and function (100 at most) in mind.
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

/// Production source files of the workspace (test-only files and `mod tests` excluded).
fn production_sources() -> Vec<(std::path::PathBuf, Vec<String>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut dirs: Vec<std::path::PathBuf> =
        ["src", "crates"].iter().map(|d| root.join(d)).collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if name != "tests" && name != "target" {
                    dirs.push(path);
                }
                continue;
            }
            if !name.ends_with(".rs") || name == "tests.rs" || name == "proptests.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            if let Some(i) = lines
                .windows(2)
                .position(|w| w[0].starts_with("#[cfg(test)]") && w[1].starts_with("mod tests"))
            {
                lines.truncate(i);
            }
            out.push((path, lines));
        }
    }
    assert!(out.len() > 50, "found only {} source files", out.len());
    out
}

/// The length of every function in `lines` (rustfmt style: the closing brace sits at the
/// indentation of the `fn` line).
fn function_lengths(lines: &[String]) -> Vec<(usize, String, usize)> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let rest = ["pub(crate) ", "pub(super) ", "pub "]
            .iter()
            .find_map(|p| trimmed.strip_prefix(p))
            .unwrap_or(trimmed);
        let rest = rest.strip_prefix("const ").unwrap_or(rest);
        let rest = rest.strip_prefix("async ").unwrap_or(rest);
        let Some(sig) = rest.strip_prefix("fn ") else {
            continue;
        };
        // A declaration without a body (in a trait) ends its signature with `;`.
        let header_end = lines[i..]
            .iter()
            .map(|l| l.trim_end())
            .find(|l| l.ends_with('{') || l.ends_with(';'));
        if header_end.is_none_or(|l| l.ends_with(';')) {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = lines[i + 1..].iter().position(|l| *l == close) {
            let name: String = sig
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push((i + 1, name, end + 2));
        }
    }
    out
}

/// A newcomer can hold every module and function in their head (issue: "structure before
/// growth"): no production module over 600 lines, no production function over 100.
#[test]
fn modules_and_functions_stay_small() {
    let mut too_big = Vec::new();
    for (path, lines) in production_sources() {
        if lines.len() > 600 {
            too_big.push(format!(
                "{}: module of {} lines",
                path.display(),
                lines.len()
            ));
        }
        for (line, name, len) in function_lengths(&lines) {
            if len > 100 {
                too_big.push(format!(
                    "{}:{line}: fn {name} of {len} lines",
                    path.display()
                ));
            }
        }
    }
    assert!(
        too_big.is_empty(),
        "split these by concept:\n{}",
        too_big.join("\n")
    );
}
