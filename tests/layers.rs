//! Inside the server the layers point one way (issue 8): the federation handlers never import
//! the client-API handlers, the client-API handlers never import the federation handlers'
//! topic code, and the topic service reaches federation only through its `Relay` trait (and the
//! server's identity through `ServerSigner`), never the transport.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/<dir>` (or the file `src/<dir>.rs`).
fn sources(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    assert!(!out.is_empty(), "no sources under src/{dir}");
    out
}

/// Lines of the files under `src/<dir>` that mention `needle`, outside comments.
fn uses(dir: &str, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for path in sources(dir) {
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if code.contains(needle) {
                hits.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    hits
}

#[test]
fn federation_never_imports_the_client_api() {
    assert_eq!(uses("federation", "crate::api"), Vec::<String>::new());
}

#[test]
fn the_topic_service_knows_neither_http_surface() {
    assert_eq!(uses("topics", "crate::api"), Vec::<String>::new());
    assert_eq!(uses("topics", "crate::federation"), Vec::<String>::new());
    assert_eq!(uses("topics", "crate::state"), Vec::<String>::new());
    assert_eq!(uses("topics", "crate::identity"), Vec::<String>::new());
}

#[test]
fn client_api_topics_do_not_reach_into_federation_topics() {
    assert_eq!(uses("api", "federation::topics"), Vec::<String>::new());
    assert_eq!(uses("api", "federation::outbound"), Vec::<String>::new());
}
