//! The spec documents what the code does: every error code the API can return is in
//! `client-api.md`'s table, with the status the code sends.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rendezvous_protocol::api::ErrorCode;

#[test]
fn every_error_code_is_documented_with_its_status() {
    let spec = include_str!("../federation-spec/client-api.md");
    for code in ErrorCode::ALL {
        let documented = spec.lines().any(|l| {
            l.starts_with('|')
                && l.contains(&format!("`{}`", code.as_str()))
                && l.contains(&format!("| {} |", code.status()))
        });
        assert!(
            documented,
            "{} ({}) is not in client-api.md §1.1",
            code.as_str(),
            code.status()
        );
    }
}
