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

/// The numbered headings of a Markdown document: `## 7. Topics` gives `7`, `### 7.2 Changes`
/// gives `7.2`.
fn section_numbers(doc: &str) -> Vec<String> {
    doc.lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| {
            let number = l.trim_start_matches('#').trim_start().split(' ').next()?;
            let number = number.trim_end_matches('.');
            (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
                .then(|| number.to_owned())
        })
        .collect()
}

/// The section numbers that head more than one section of `doc` (a reference to one of them
/// could mean either).
fn duplicate_section_numbers(doc: &str) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut twice = Vec::new();
    for number in section_numbers(doc) {
        if !seen.insert(number.clone()) {
            twice.push(number);
        }
    }
    twice
}

/// No spec document has two headings with one number: `devices.md §5.5` names one section.
#[test]
fn no_document_numbers_two_sections_alike() {
    let docs = spec_documents();
    assert!(docs.len() >= 8, "only {} documents", docs.len());
    let mut failures = Vec::new();
    for (name, doc) in &docs {
        for number in duplicate_section_numbers(doc) {
            failures.push(format!("{name}: two headings numbered {number}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The check finds a planted duplicate, at any depth, and leaves distinct numbers alone.
    let (_, devices) = docs.iter().find(|(n, _)| n == "devices.md").unwrap();
    let planted = format!("{devices}\n### 5.5 Another section\n");
    assert_eq!(duplicate_section_numbers(&planted), vec!["5.5".to_owned()]);
    assert_eq!(
        duplicate_section_numbers("## 2. A\n### 2.1 B\n## 3. C\n#### 2.1 D\n"),
        vec!["2.1".to_owned()]
    );
    assert!(duplicate_section_numbers("## 1. A\n### 1.1 B\n## 11. C\n").is_empty());
}

/// The section numbers that `text` cites after `§` at byte `at`: `§7.2`, `§2–3` (both ends),
/// `§6–§7`, `§3.3, §4.2`, `§8.1 or §8.4` … (a list goes on while the next number follows `–`,
/// `–§`, `, §`, ` and §` or ` or §`).
fn cited_numbers(text: &str, mut at: usize) -> Vec<String> {
    let mut numbers = Vec::new();
    loop {
        let rest = &text[at..];
        let number: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let number = number.trim_end_matches('.').to_owned();
        if number.is_empty() {
            return numbers;
        }
        at += number.len();
        numbers.push(number);
        let rest = &text[at..];
        let Some(next) = ["–§", "–", ", §", " and §", " or §"]
            .iter()
            .find(|sep| rest.starts_with(**sep))
        else {
            return numbers;
        };
        at += next.len();
    }
}

/// Every `name.md` … `§N` reference in `text`: the document's base name, the number and the line.
fn md_references(text: &str) -> Vec<(String, String, usize)> {
    let mut found = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        let mut from = 0;
        while let Some(pos) = line[from..].find(".md") {
            let end = from + pos + 3;
            let start = line[..from + pos]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .map_or(0, |i| i + 1);
            let name = &line[start..end];
            // `name.md` or [`name.md`](name.md) or `federation-spec/name.md`, then ` §`.
            let mut rest = &line[end..];
            rest = rest.strip_prefix('`').unwrap_or(rest);
            if let Some(after_link) = rest.strip_prefix("](")
                && let Some(close) = after_link.find(')')
            {
                rest = &after_link[close + 1..];
            }
            if let Some(after) = rest.strip_prefix(" §") {
                let at = line.len() - after.len();
                for number in cited_numbers(line, at) {
                    found.push((name.to_owned(), number, line_no + 1));
                }
            }
            from = end;
        }
    }
    found
}

/// The spec documents by base name.
fn spec_documents() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("federation-spec");
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            docs.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    docs
}

/// Every file under `dir` whose name ends in one of `exts`, skipping `target` directories.
fn files_under(dir: &std::path::Path, exts: &[&str], out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n != "target" && n != ".git")
            {
                files_under(&path, exts, out);
            }
        } else if path
            .extension()
            .is_some_and(|e| exts.iter().any(|x| e == *x))
        {
            out.push(path);
        }
    }
}

/// The references found in `text` to spec documents that do not name one of their headings.
fn broken_references(text: &str, origin: &str, docs: &[(String, String)]) -> Vec<String> {
    let mut broken = Vec::new();
    for (name, number, line) in md_references(text) {
        let Some((_, doc)) = docs.iter().find(|(n, _)| *n == name) else {
            continue; // not a spec document (STYLE.md, a seed): not ours to check
        };
        if !section_numbers(doc).contains(&number) {
            broken.push(format!("{origin}:{line}: {name} §{number}"));
        }
    }
    broken
}

/// `protocol.md §7.2`, `` `tag-log.md` §4.1 ``, `[devices.md](devices.md) §2` in the spec and in
/// the code's comments name a section that exists in that document.
#[test]
fn every_section_reference_names_an_existing_heading() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = spec_documents();
    let mut files = Vec::new();
    for dir in ["federation-spec", "src", "crates", "tests", "docs"] {
        files_under(&root.join(dir), &["md", "rs", "cddl", "toml"], &mut files);
    }
    files_under(root, &[], &mut files);
    let mut broken = Vec::new();
    let mut checked = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let origin = path.strip_prefix(root).unwrap().display().to_string();
        if origin == "tests/spec_docs.rs" {
            continue; // the checker's own test cases
        }
        checked += md_references(&text).len();
        broken.extend(broken_references(&text, &origin, &docs));
    }
    assert!(checked > 100, "only {checked} references found");
    assert!(
        broken.is_empty(),
        "references to missing sections:\n{}",
        broken.join("\n")
    );
}

/// The checker above finds a wrong reference in each of the forms it reads.
#[test]
fn the_section_reference_checker_catches_wrong_numbers() {
    let docs = spec_documents();
    for bad in [
        "see `protocol.md` §4.9",
        "see protocol.md §12",
        "see [`tag-log.md`](tag-log.md) §3.7",
        "// federation-spec/federation-api.md §9.9",
        "(`client-api.md` §1–10)",
        "(`tag-log.md` §4.1, §4.8)",
        "(`tag-log.md` §8.1 or §8.9)",
    ] {
        assert_eq!(broken_references(bad, "t", &docs).len(), 1, "{bad}");
    }
    for good in [
        "see `protocol.md` §1.2",
        "see [`tag-log.md`](tag-log.md) §3.1",
        "(`client-api.md` §1–2)",
        "RFC 9162 §2.1.3",
        "STYLE.md §9",
    ] {
        assert!(broken_references(good, "t", &docs).is_empty(), "{good}");
    }
}

/// `protocol.md` §6.1 derives the largest well-formed header (45 bytes) and §1.2 refers to it:
/// the figure is what the encoder makes of the largest field values, and the decoder takes it.
#[test]
fn the_header_figure_is_the_real_maximum() {
    use rendezvous_protocol::ids::{Epoch, MemberIndex};
    use rendezvous_protocol::message::MessageHeader;
    use rendezvous_protocol::tlog::TreeSize;
    const PROTOCOL: &str = include_str!("../federation-spec/protocol.md");
    let largest = MessageHeader {
        epoch: Epoch(u32::MAX),
        sender: MemberIndex(u32::MAX),
        nonce: [0xff; 24],
        seen: TreeSize(u64::MAX),
    };
    let bytes = largest.to_bytes();
    assert_eq!(bytes.len(), 45);
    assert_eq!(MessageHeader::from_bytes(&bytes).unwrap(), largest);
    let section = section(PROTOCOL, "### 6.1 Header");
    assert!(
        section.contains("**45 bytes**"),
        "protocol.md §6.1 does not say 45 bytes"
    );
}
