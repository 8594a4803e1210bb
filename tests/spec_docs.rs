//! The spec documents what the code does: every error code the APIs can return is in
//! `client-api.md`'s table, with the status the code sends, and the federation spec names only
//! codes that exist, each with its own status.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rendezvous_protocol::api::ErrorCode;

const CLIENT_API: &str = include_str!("../federation-spec/client-api.md");
const FEDERATION_API: &str = include_str!("../federation-spec/federation-api.md");

/// Codes that only federation sends (per-event results and federation refusals).
const FEDERATION_CODES: &[ErrorCode] = &[
    ErrorCode::WrongOrigin,
    ErrorCode::WrongDestination,
    ErrorCode::FromTheFuture,
    ErrorCode::NotHosting,
    ErrorCode::NotParticipant,
    ErrorCode::BadCheckpoint,
    ErrorCode::SplitView,
];

#[test]
fn every_error_code_is_documented_with_its_status() {
    for code in ErrorCode::ALL {
        let documented = CLIENT_API.lines().any(|l| {
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

/// The text of the section that starts with `heading` (up to the next `## `).
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc.find(heading).unwrap_or_else(|| panic!("no {heading}"));
    let rest = &doc[start + heading.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// The back-quoted words of `text` that look like codes (`[a-z_]+`).
fn quoted_words(text: &str) -> Vec<&str> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .collect()
}

#[test]
fn the_federation_error_codes_exist_and_are_all_listed() {
    let codes = section(FEDERATION_API, "## 6. Error codes");
    for word in quoted_words(codes) {
        assert!(
            ErrorCode::parse(word).is_some(),
            "federation-api.md §6 names `{word}`, which is not an ErrorCode"
        );
    }
    for code in FEDERATION_CODES {
        assert!(
            codes.contains(&format!("`{}`", code.as_str())),
            "{} is not in federation-api.md §6",
            code.as_str()
        );
    }
}

/// `federation-api.md` writes statuses next to codes as `` `code` 400 `` or `` `400 code` ``:
/// each must be the status the code sends.
#[test]
fn statuses_next_to_codes_in_the_federation_spec_are_theirs() {
    let mut checked = 0;
    let pieces: Vec<&str> = FEDERATION_API.split('`').collect();
    for (i, piece) in pieces.iter().enumerate().skip(1).step_by(2) {
        // `400 code`
        if let Some((status, word)) = piece.split_once(' ')
            && let (Ok(status), Some(code)) = (status.parse::<u16>(), ErrorCode::parse(word))
        {
            assert_eq!(status, code.status(), "`{piece}` in federation-api.md");
            checked += 1;
        }
        // `code` 400
        if let (Some(code), Some(after)) = (ErrorCode::parse(piece), pieces.get(i + 1)) {
            let number: String = after
                .trim_start_matches(' ')
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if after.starts_with(' ')
                && number.len() == 3
                && let Ok(status) = number.parse::<u16>()
            {
                assert_eq!(
                    status,
                    code.status(),
                    "`{piece}` {status} in federation-api.md"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} statuses found");
}
