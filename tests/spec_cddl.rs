//! The CDDL of `federation-spec/` against an outside validator (the `cddl` crate, RFC 8610).
//!
//! The document is `wire.cddl` followed by `client-api.cddl` (the header of `wire.cddl`). Checked:
//!
//! 1. [`document_is_one_cddl`]: the two files parse as one document, with no rule defined twice
//!    and none used undefined; a duplicate or an undefined rule is refused.
//! 2. [`every_vector_matches_its_rule`]: every byte string of `vectors/*.json` that is one whole
//!    CBOR item is checked against the rule [`VECTOR_RULES`] names for its field; a CBOR field
//!    with no rule fails the test (a new vector must say what it is), and so does a rule whose
//!    field no longer exists.
//! 3. [`mutated_items_are_refused`]: items that break their rule (wrong type, an extra array
//!    element, a pattern matched only by a prefix) are refused, so a validator that accepts
//!    everything fails the test.
//! 4. [`api_bodies_match_their_rules`]: the code's body types, encoded from constructed values,
//!    match their rules, so the CDDL cannot drift from the code.
//! 5. [`markdown_does_not_redefine_the_documents_rules`]: no ```cddl block of the markdown
//!    restates a rule of the document (one rule, one place): the markdown names the rule; nor
//!    does a ```text block give a CBOR array shape in another notation
//!    ([`markdown_text_blocks_do_not_restate_cbor_shapes`]), nor an inline code span of the prose
//!    (`` `[1, user]` ``, [`markdown_prose_does_not_restate_cbor_shapes`]).
//! 6. [`prose_names_wire_fields_as_the_cddl_does`]: the markdown calls a wire field by its CDDL
//!    member name (`old-identity-key`), not the code's (`old_identity_key`).
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use cddl::validator::Validator;

use ciborium::Value;

const WIRE: &str = include_str!("../federation-spec/wire.cddl");
const CLIENT_API: &str = include_str!("../federation-spec/client-api.cddl");

/// The one document: the two files, with RFC 8610's whole-string `.regexp` semantics made
/// explicit for the `cddl` crate, which searches (`^(?:…)$` around every pattern).
fn document() -> String {
    anchor_regexps(&format!("{WIRE}\n{CLIENT_API}"))
}

fn anchor_regexps(cddl: &str) -> String {
    const CONTROL: &str = ".regexp \"";
    let mut out = String::with_capacity(cddl.len() + 256);
    let mut rest = cddl;
    while let Some(at) = rest.find(CONTROL) {
        let (before, after) = rest.split_at(at + CONTROL.len());
        // Only in rules, not in comments.
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let in_comment = before[line_start..].contains(';');
        out.push_str(before);
        let end = after.find('"').expect("an unterminated .regexp string");
        if in_comment {
            out.push_str(&after[..end]);
        } else {
            out.push_str(&format!("^(?:{})$", &after[..end]));
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The document, parsed once.
fn parsed() -> &'static cddl::ast::CDDL<'static> {
    static PARSED: OnceLock<cddl::ast::CDDL<'static>> = OnceLock::new();
    PARSED.get_or_init(|| {
        let doc: &'static str = Box::leak(document().into_boxed_str());
        cddl::cddl_from_str(doc, false).expect("wire.cddl + client-api.cddl parse")
    })
}

/// Checks `bytes` against the rule named `rule` of `doc`.
fn check_in(doc: &cddl::ast::CDDL<'_>, rule: &str, bytes: &[u8]) -> Result<(), String> {
    let value = whole_item(bytes).ok_or("not one whole CBOR item")?;
    // The validator checks the first type rule of a document: put `rule` first.
    let mut rooted = doc.clone();
    let at = rooted
        .rules
        .iter()
        .position(|r| r.name() == rule)
        .ok_or_else(|| format!("no rule `{rule}`"))?;
    let root = rooted.rules.remove(at);
    rooted.rules.insert(0, root);
    let mut validator = cddl::validator::cbor::CBORValidator::new(&rooted, value.into(), None);
    validator.validate().map_err(|e| e.to_string())
}

fn check(rule: &str, bytes: &[u8]) -> Result<(), String> {
    check_in(parsed(), rule, bytes)
}

/// RFC 8610 Appendix D: names a document may use without defining them.
const PRELUDE: &[&str] = &[
    "any",
    "uint",
    "nint",
    "int",
    "bstr",
    "bytes",
    "tstr",
    "text",
    "tdate",
    "time",
    "number",
    "biguint",
    "bignint",
    "bigint",
    "integer",
    "unsigned",
    "decfrac",
    "bigfloat",
    "eb64url",
    "eb64legacy",
    "eb16",
    "encoded-cbor",
    "uri",
    "b64url",
    "b64legacy",
    "regexp",
    "mime-message",
    "cbor-any",
    "float16",
    "float32",
    "float64",
    "float16-32",
    "float32-64",
    "float",
    "false",
    "true",
    "bool",
    "nil",
    "null",
    "undefined",
];

/// `(defined, used)` rule names of a CDDL text: a name at the start of a line followed by `=`
/// is defined; every other bare name that is not a member key (`name:`), a control operator
/// (`.size`) or inside a string or comment is used.
fn rule_names(cddl: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut defined = BTreeSet::new();
    let mut used = BTreeSet::new();
    for line in cddl.lines() {
        let code = strip_strings(line.split(';').next().unwrap_or(""));
        let bytes = code.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if c.is_ascii_alphabetic() || c == b'_' || c == b'@' || c == b'$' {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || b"_@$-.".contains(&bytes[i]))
                {
                    i += 1;
                }
                let name = code[start..i].trim_end_matches(['.', '-']);
                let prev = code[..start].trim_end();
                let next = code[i..].trim_start();
                if start == 0 && (next.starts_with('=') || next.starts_with("//=")) {
                    defined.insert(name.to_owned());
                } else if !prev.ends_with('.') && !next.starts_with(':') && !next.starts_with("=>")
                {
                    used.insert(name.to_owned());
                }
            } else if c.is_ascii_digit() {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
            } else {
                i += 1;
            }
        }
    }
    (defined, used)
}

/// A line with its string literals blanked out.
fn strip_strings(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_string = false;
    for c in line.chars() {
        if c == '"' {
            in_string = !in_string;
            out.push('"');
        } else {
            out.push(if in_string { ' ' } else { c });
        }
    }
    out
}

/// Rules the text uses but does not define (the prelude aside).
fn undefined_rules(cddl: &str) -> Vec<String> {
    let (defined, used) = rule_names(cddl);
    used.into_iter()
        .filter(|n| !defined.contains(n) && !PRELUDE.contains(&n.as_str()))
        .collect()
}

/// Rules the text defines more than once.
fn duplicate_rules(cddl: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut twice = Vec::new();
    for line in cddl.lines() {
        if let Some((name, _)) = line.split_once('=') {
            let name = name.trim();
            if !line.starts_with([' ', ';'])
                && !name.is_empty()
                && !name.contains(' ')
                && (!seen.insert(name.to_owned()) || PRELUDE.contains(&name))
            {
                twice.push(name.to_owned());
            }
        }
    }
    twice
}

fn cbor(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).unwrap();
    out
}

/// The value of `bytes` when they are exactly one CBOR item.
fn whole_item(bytes: &[u8]) -> Option<Value> {
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader(&mut rest).ok()?;
    rest.is_empty().then_some(value)
}

// ---------------------------------------------------------------------------------------------
// 1. One document

#[test]
fn document_is_one_cddl() {
    let doc = document();
    cddl::cddl_from_str(&doc, false).expect("wire.cddl + client-api.cddl parse as one document");
    // wire.cddl stands alone (client-api.cddl builds on it, not the other way round).
    cddl::cddl_from_str(&anchor_regexps(WIRE), false).expect("wire.cddl parses alone");
    assert_eq!(
        undefined_rules(WIRE),
        Vec::<String>::new(),
        "used in wire.cddl, defined nowhere"
    );
    assert_eq!(
        undefined_rules(&doc),
        Vec::<String>::new(),
        "used, defined nowhere"
    );
    assert_eq!(
        duplicate_rules(&doc),
        Vec::<String>::new(),
        "defined twice (or a prelude name)"
    );
    // Every rule of the document is found by both the parser and the name scan.
    let (defined, _) = rule_names(&doc);
    let parsed: BTreeSet<String> = parsed().rules.iter().map(|r| r.name()).collect();
    assert_eq!(defined, parsed);

    // The checks find what they look for.
    let duplicate = format!("{doc}\nversion = 1\n");
    assert!(
        cddl::cddl_from_str(&duplicate, false).is_err(),
        "the parser refuses a rule twice"
    );
    assert_eq!(duplicate_rules(&duplicate), vec!["version".to_owned()]);
    assert_eq!(duplicate_rules("time = uint\n"), vec!["time".to_owned()]);
    let undefined = format!("{doc}\nspec-cddl-extra = [version, x: no-such-rule .size 2]\n");
    assert_eq!(undefined_rules(&undefined), vec!["no-such-rule".to_owned()]);
    // client-api.cddl alone uses what wire.cddl defines.
    assert!(undefined_rules(CLIENT_API).contains(&"signed-registration".to_owned()));
}

#[test]
fn regexps_are_anchored_for_the_validator() {
    let doc = "a = tstr .regexp \"[a-z]{2}\" ; .regexp \"kept\"\n";
    assert_eq!(
        anchor_regexps(doc),
        "a = tstr .regexp \"^(?:[a-z]{2})$\" ; .regexp \"kept\"\n"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Vectors

/// `(file, field path, rule)`: the rule of every CBOR byte string in `vectors/`. A path is the
/// JSON path with `[]` for any array index.
const VECTOR_RULES: &[(&str, &str, &str)] = &[
    ("certs.json", ".device_cert.payload", "device-cert"),
    ("certs.json", ".device_cert.wire", "signed-device-cert"),
    (
        "certs.json",
        ".device_endorsement.payload",
        "device-endorsement",
    ),
    (
        "certs.json",
        ".device_endorsement.wire",
        "signed-device-endorsement",
    ),
    (
        "certs.json",
        ".device_revocation.payload",
        "device-revocation",
    ),
    (
        "certs.json",
        ".device_revocation.wire",
        "signed-device-revocation",
    ),
    ("certs.json", ".prekey.payload", "prekey"),
    ("certs.json", ".prekey.wire", "signed-prekey"),
    ("certs.json", ".registration.payload", "registration"),
    ("certs.json", ".registration.wire", "signed-registration"),
    ("certs.json", ".topic_key_certs[].payload", "topic-key-cert"),
    (
        "certs.json",
        ".topic_key_certs[].wire",
        "signed-topic-key-cert",
    ),
    ("directory.json", ".entries[]", "directory-entry"),
    ("directory.json", ".rotation.payload", "identity-rotation"),
    (
        "directory.json",
        ".rotation.wire",
        "signed-identity-rotation",
    ),
    ("devices.json", ".link.link_payload", "link-payload"),
    ("devices.json", ".link.link_request", "link-request"),
    ("devices.json", ".link.link_response", "link-response"),
    (
        "devices.json",
        ".login.challenge_request",
        "challenge-request",
    ),
    ("devices.json", ".login.login_request", "login-request"),
    ("devices.json", ".topic_key_batch.delivery", "delivery"),
    (
        "devices.json",
        ".topic_key_batch.inputs.making_device_cert",
        "signed-device-cert",
    ),
    (
        "devices.json",
        ".topic_key_batch.topic_key_cert",
        "signed-topic-key-cert",
    ),
    (
        "devices.json",
        ".topic_key_batch.upload",
        "topic-key-upload",
    ),
    ("federation.json", ".event.event_bytes", "federation-event"),
    ("federation.json", ".event.wire", "signed-federation-event"),
    ("federation.json", ".key_rotation.payload", "key-rotation"),
    ("federation.json", ".key_rotation.wire", "signed-rotation"),
    ("federation.json", ".server_keys.payload", "server-keys"),
    ("federation.json", ".server_keys.wire", "signed-server-keys"),
    (
        "federation.json",
        ".topic_entry_payload",
        "topic-entry-payload",
    ),
    (
        "federation.json",
        ".topic_submit_payload",
        "topic-submit-payload",
    ),
    ("federation.json", ".transaction", "transaction"),
    ("message.json", ".log_entry", "log-entry"),
    ("message.json", ".wire", "message"),
    ("sealed_boxes.json", ".message_key.sealed_box", "sealed-box"),
    (
        "sealed_boxes.json",
        ".topic_key_delivery.sealed_box",
        "sealed-box",
    ),
    (
        "sealed_boxes.json",
        ".topic_key_delivery.plaintext",
        "topic-key-plaintext",
    ),
    (
        "tag_log.json",
        ".inconsistent.evidence_cbor",
        "inconsistent-evidence",
    ),
    (
        "tag_log.json",
        ".rollback.evidence_cbor",
        "rollback-evidence",
    ),
    ("tag_log.json", ".split_view.evidence_cbor", "evidence"),
    ("topic_changes.json", ".add.log_entry", "log-entry"),
    ("topic_changes.json", ".add.payload", "topic-change"),
    ("topic_changes.json", ".add.wire", "signed-topic-change"),
    (
        "topic_changes.json",
        ".protected.add.log_entry",
        "log-entry",
    ),
    (
        "topic_changes.json",
        ".protected.add.payload",
        "topic-change",
    ),
    (
        "topic_changes.json",
        ".protected.add.wire",
        "signed-topic-change",
    ),
    (
        "topic_changes.json",
        ".protected.create.log_entry",
        "log-entry",
    ),
    (
        "topic_changes.json",
        ".protected.create.payload",
        "topic-change",
    ),
    (
        "topic_changes.json",
        ".protected.create.wire",
        "signed-topic-change",
    ),
    ("topic_changes.json", ".remove.log_entry", "log-entry"),
    ("topic_changes.json", ".remove.payload", "topic-change"),
    ("topic_changes.json", ".remove.wire", "signed-topic-change"),
    ("topic_changes.json", ".set_role.log_entry", "log-entry"),
    ("topic_changes.json", ".set_role.payload", "topic-change"),
    (
        "topic_changes.json",
        ".set_role.wire",
        "signed-topic-change",
    ),
    ("topic_changes.json", ".create.log_entry", "log-entry"),
    ("topic_changes.json", ".create.payload", "topic-change"),
    ("topic_changes.json", ".create.wire", "signed-topic-change"),
    ("topic_changes.json", ".move.change.log_entry", "log-entry"),
    ("topic_changes.json", ".move.change.payload", "topic-change"),
    (
        "topic_changes.json",
        ".move.change.wire",
        "signed-topic-change",
    ),
    ("topic_changes.json", ".rekey.log_entry", "log-entry"),
    ("topic_changes.json", ".rekey.payload", "topic-change"),
    ("topic_changes.json", ".rekey.wire", "signed-topic-change"),
];

/// Byte strings that happen to be one whole CBOR item but are not CBOR objects.
const NOT_CBOR: &[(&str, &str)] = &[
    // Leaf data (protocol.md §8.1): a type byte and hashes; the one-byte leaf `00` decodes.
    ("tag_log.json", ".leaves[].data"),
    // Transcripts (protocol.md §4.1) start with their label's length and bytes.
    ("transcripts.json", ".cases[].transcript"),
];

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("federation-spec/vectors")
}

/// Every hex string of `json` with its path (`[]` for array indices).
fn hex_fields(json: &serde_json::Value, path: &str, out: &mut Vec<(String, Vec<u8>)>) {
    match json {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                hex_fields(v, &format!("{path}.{k}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                hex_fields(v, &format!("{path}[]"), out);
            }
        }
        serde_json::Value::String(s)
            if !s.is_empty()
                && s.len() % 2 == 0
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            out.push((path.to_owned(), hex::decode(s).unwrap()));
        }
        _ => {}
    }
}

/// `(file, path, bytes)` of every byte string in `vectors/` that is one whole CBOR item.
fn cbor_vectors() -> Vec<(String, String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let mut fields = Vec::new();
        hex_fields(&json, "", &mut fields);
        for (path, bytes) in fields {
            if whole_item(&bytes).is_some() {
                out.push((name.clone(), path, bytes));
            }
        }
    }
    out
}

#[test]
fn every_vector_matches_its_rule() {
    let doc = parsed();
    let rules: BTreeMap<(&str, &str), &str> = VECTOR_RULES
        .iter()
        .map(|(f, p, r)| ((*f, *p), *r))
        .collect();
    let exempt: BTreeSet<(&str, &str)> = NOT_CBOR.iter().copied().collect();
    let mut used = BTreeSet::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (file, path, bytes) in cbor_vectors() {
        let key = (file.as_str(), path.as_str());
        if exempt.contains(&key) {
            continue;
        }
        let Some(rule) = rules.get(&key) else {
            failures.push(format!(
                "{file} {path}: a CBOR item with no rule (add it to VECTOR_RULES or NOT_CBOR)"
            ));
            continue;
        };
        used.insert((file.clone(), path.clone()));
        checked += 1;
        if let Err(e) = check_in(doc, rule, &bytes) {
            failures.push(format!("{file} {path} is not a `{rule}`: {e}"));
        }
    }
    for (file, path, _) in VECTOR_RULES {
        if !used.contains(&((*file).to_owned(), (*path).to_owned())) {
            failures.push(format!(
                "{file} {path}: in VECTOR_RULES but not in the vectors"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= VECTOR_RULES.len());

    // The message header's CBOR part (after the 24-byte nonce, protocol.md §6.1).
    let message: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_dir().join("message.json")).unwrap())
            .unwrap();
    let header = hex::decode(message["header"].as_str().unwrap()).unwrap();
    check_in(doc, "message-header-fields", &header[24..]).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 3. Mutations

fn vector(file: &str, path: &str) -> Vec<u8> {
    cbor_vectors()
        .into_iter()
        .find(|(f, p, _)| f == file && p == path)
        .unwrap_or_else(|| panic!("no vector {file} {path}"))
        .2
}

fn array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

#[test]
fn mutated_items_are_refused() {
    let doc = parsed();
    let registration = whole_item(&vector("certs.json", ".registration.payload")).unwrap();
    check_in(doc, "registration", &cbor(&registration)).unwrap();
    let fields = array(registration);
    let user = match &fields[1] {
        Value::Text(t) => t.clone(),
        other => panic!("user: {other:?}"),
    };

    let mut mutations: Vec<(&str, &str, Vec<Value>)> = Vec::new();
    // Wrong type: the Identity Key as text.
    let mut wrong_type = fields.clone();
    wrong_type[2] = Value::Text("key".into());
    mutations.push(("registration", "a text key", wrong_type));
    // One element too many.
    let mut extra = fields.clone();
    extra.push(Value::Integer(0.into()));
    mutations.push(("registration", "an extra element", extra));
    // One element too few.
    mutations.push(("registration", "a missing element", fields[..2].to_vec()));
    // Another version.
    let mut version = fields.clone();
    version[0] = Value::Integer(2.into());
    mutations.push(("registration", "version 2", version));
    // A wrong size.
    let mut short_key = fields.clone();
    short_key[2] = Value::Bytes(vec![0; 31]);
    mutations.push(("registration", "a 31-byte key", short_key));
    // Patterns match whole strings: a valid user id with characters before or after it.
    for bad in [
        format!("{user} "),
        format!("x{user}"),
        format!("{user}:443x"),
        user.to_uppercase(),
    ] {
        let mut unanchored = fields.clone();
        unanchored[1] = Value::Text(bad);
        mutations.push((
            "registration",
            "a user id inside a longer string",
            unanchored,
        ));
    }
    for (rule, what, items) in mutations {
        let bytes = cbor(&Value::Array(items));
        assert!(
            check_in(doc, rule, &bytes).is_err(),
            "a `{rule}` with {what} was accepted"
        );
    }

    // A sealed box is an array, not a map (protocol.md §1.2).
    let sealed =
        array(whole_item(&vector("sealed_boxes.json", ".message_key.sealed_box")).unwrap());
    let names = ["suite", "recipient", "enc", "ciphertext"];
    let map = Value::Map(
        names
            .iter()
            .zip(sealed)
            .map(|(n, v)| (Value::Text((*n).into()), v))
            .collect(),
    );
    assert!(check_in(doc, "sealed-box", &cbor(&map)).is_err());

    // A nested `.cbor` item is checked too: a signed registration whose payload is broken.
    let signed = array(whole_item(&vector("certs.json", ".registration.wire")).unwrap());
    let mut broken = fields.clone();
    broken.push(Value::Null);
    let signed_broken = Value::Array(vec![
        Value::Bytes(cbor(&Value::Array(broken))),
        signed[1].clone(),
    ]);
    assert!(check_in(doc, "signed-registration", &cbor(&signed_broken)).is_err());

    // txn-id: 1 to 64 of [A-Za-z0-9_-], whole string.
    for (txn, ok) in [
        ("txn-1", true),
        ("a", true),
        ("", false),
        ("txn 1", false),
        ("txn/1", false),
    ] {
        let bytes = cbor(&Value::Text(txn.into()));
        assert_eq!(
            check_in(doc, "txn-id", &bytes).is_ok(),
            ok,
            "txn-id {txn:?}"
        );
    }
    let long = cbor(&Value::Text("a".repeat(65)));
    assert!(check_in(doc, "txn-id", &long).is_err());
    // link-id-text: 16 lower-case hex characters.
    for (id, ok) in [
        ("0123456789abcdef", true),
        ("0123456789ABCDEF", false),
        ("0123456789abcde", false),
        ("0123456789abcdef0", false),
    ] {
        let bytes = cbor(&Value::Text(id.into()));
        assert_eq!(
            check_in(doc, "link-id-text", &bytes).is_ok(),
            ok,
            "link id {id:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. The code's bodies

mod bodies {
    use rendezvous_protocol::api::*;
    use rendezvous_protocol::certs::DeviceEndorsement;
    use rendezvous_protocol::crypto::{DeviceKey, IdentityKey, IdentityPublicKey, Signature};
    use rendezvous_protocol::devices::{LinkJoiner, LinkOffer, LinkPayload};
    use rendezvous_protocol::directory::DirectoryProof;
    use rendezvous_protocol::federation::topic_events::{EntryBatch, MirrorEvidence, Submit};
    use rendezvous_protocol::federation::{EventResult, ServerKeys, TransactionResponse};
    use rendezvous_protocol::ids::{TopicId, UserId};
    use rendezvous_protocol::tlog::{CheckpointNote, LeafIndex, LogHash, TreeSize};
    use rendezvous_protocol::topic::Role;
    use rendezvous_protocol::wire::{Signed, SignedBytes};
    use serde_bytes::ByteBuf;

    use super::*;

    fn json(file: &str) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(vectors_dir().join(file)).unwrap()).unwrap()
    }

    fn hex_at(file: &str, pointer: &str) -> Vec<u8> {
        hex::decode(json(file).pointer(pointer).unwrap().as_str().unwrap()).unwrap()
    }

    fn signed(pointer: &str) -> SignedBytes {
        ciborium::de::from_reader(&hex_at("certs.json", pointer)[..]).unwrap()
    }

    fn seed(file: &str, pointer: &str) -> [u8; 32] {
        hex_at(file, pointer).try_into().unwrap()
    }

    /// `(rule, the code's encoding)` of every body type, from constructed values.
    pub(super) fn encoded() -> Vec<(&'static str, Vec<u8>)> {
        let user: UserId = "@alice:a.example".parse().unwrap();
        let topic: TopicId = "!abcdefghijklmnopqrstuvwxyz:a.example".parse().unwrap();
        let registration = signed("/registration/wire");
        let device_cert = signed("/device_cert/wire");
        let endorsement = signed("/device_endorsement/wire");
        let revocation = signed("/device_revocation/wire");
        let prekey = signed("/prekey/wire");
        let tkc = signed("/topic_key_certs/0/wire");
        let device = DeviceKey::from_seed(&seed("keys.json", "/device/seed"));
        let note_text = json("federation.json")["checkpoint_note"]
            .as_str()
            .unwrap()
            .to_owned();
        let note: CheckpointNote = CheckpointNote::parse(note_text.clone()).unwrap();
        let log_entry = ByteBuf::from(hex_at("message.json", "/log_entry"));
        let directory_entry = ByteBuf::from(
            hex::decode(json("directory.json")["entries"][0].as_str().unwrap()).unwrap(),
        );
        let rotation = hex_at("directory.json", "/rotation/wire");
        let hash = LogHash([7; 32]);
        let signature = Signature([9; 64]);

        // A delivery and an upload in the code's form: the topic key delivery vector's box,
        // addressed to the pre key it was sealed to.
        let sealed = whole_item(&hex_at(
            "sealed_boxes.json",
            "/topic_key_delivery/sealed_box",
        ))
        .unwrap();
        let prekey_id = hex_at("sealed_boxes.json", "/topic_key_delivery/recipient_key_id");
        let delivery = cbor(&Value::Array(vec![
            1.into(),
            Value::Bytes(prekey_id),
            sealed,
        ]));
        let tkc_value = whole_item(&hex_at("certs.json", "/topic_key_certs/0/wire")).unwrap();
        let upload = cbor(&Value::Array(vec![
            1.into(),
            tkc_value,
            Value::Array(vec![whole_item(&delivery).unwrap()]),
        ]));
        let ik_public =
            IdentityPublicKey::from_slice(&hex_at("keys.json", "/identity/0/public")).unwrap();
        rendezvous_protocol::devices::TopicKeyUpload::from_wire(&upload, &ik_public, &user)
            .expect("the code accepts the upload built for the CDDL");

        let offer = LinkOffer::new();
        let joiner = LinkJoiner::from_code(&offer.code().to_text(), device.public()).unwrap();
        let link_request = joiner.request().clone();
        let payload = LinkPayload::new(
            user.clone(),
            IdentityKey::from_seed(&seed("keys.json", "/identity/0/seed")),
            Signed::<DeviceEndorsement>::from_signed_bytes(endorsement.clone()).unwrap(),
        );
        let link_payload = payload.to_bytes().unwrap().to_vec();
        let link_response = offer.accept(&link_request, &payload).unwrap();

        let evidence = MirrorEvidence {
            reason: "split view: two checkpoints of one size with different roots".into(),
            a: note_text.clone(),
            b: String::new(),
        };
        let batch =
            EntryBatch::from_wire(&hex_at("federation.json", "/topic_entry_payload")).unwrap();
        let server_keys: ServerKeys =
            ciborium::de::from_reader(&hex_at("federation.json", "/server_keys/payload")[..])
                .unwrap();

        let mut out: Vec<(&'static str, Vec<u8>)> = vec![
            (
                "register-request",
                RegisterRequest {
                    pin: "123456".into(),
                    registration: registration.clone(),
                    device_cert: device_cert.clone(),
                }
                .to_cbor(),
            ),
            (
                "register-response",
                RegisterResponse { user: user.clone() }.to_cbor(),
            ),
            (
                "identity-response",
                IdentityResponse {
                    registration: registration.clone(),
                    proof: DirectoryProof {
                        entry: directory_entry.to_vec(),
                        index: 0,
                        checkpoint: note_text.clone(),
                        inclusion: vec![hash],
                        consistency: vec![],
                    },
                }
                .to_cbor(),
            ),
            (
                "add-device-request",
                AddDeviceRequest {
                    device_cert: device_cert.clone(),
                    endorsement: Some(endorsement.clone()),
                }
                .to_cbor(),
            ),
            (
                "revoke-device-request",
                RevokeDeviceRequest { revocation }.to_cbor(),
            ),
            (
                "rotate-identity-request",
                RotateIdentityRequest {
                    rotation: rotation.clone(),
                    registration: registration.clone(),
                    device_certs: vec![device_cert.clone()],
                    deliveries: vec![ByteBuf::from(delivery.clone())],
                }
                .to_cbor(),
            ),
            (
                "devices-response",
                DevicesResponse {
                    devices: vec![DeviceInfo {
                        device_cert: device_cert.clone(),
                        created: 1,
                        last_seen: 2,
                    }],
                }
                .to_cbor(),
            ),
            (
                "challenge-request",
                ChallengeRequest {
                    user: user.clone(),
                    device_key: device.public().clone(),
                }
                .to_cbor(),
            ),
            (
                "challenge-response",
                ChallengeResponse {
                    challenge: [1; 32],
                    expires: 5,
                }
                .to_cbor(),
            ),
            (
                "login-request",
                LoginRequest {
                    user: user.clone(),
                    device_key: device.public().clone(),
                    challenge: [1; 32],
                    signature,
                }
                .to_cbor(),
            ),
            (
                "login-response",
                LoginResponse {
                    token: "token".into(),
                    expires: 5,
                }
                .to_cbor(),
            ),
            (
                "directory-checkpoint-response",
                DirectoryCheckpointResponse {
                    checkpoint: note_text.clone(),
                    witnessed: true,
                }
                .to_cbor(),
            ),
            (
                "directory-entries-response",
                DirectoryEntriesResponse {
                    first: 0,
                    entries: vec![directory_entry.clone()],
                }
                .to_cbor(),
            ),
            (
                "directory-cosignature-request",
                rendezvous_protocol::wire::encode(&DirectoryCosignatureRequest {
                    note: note_text.clone(),
                }),
            ),
            (
                "upload-prekeys-request",
                UploadPreKeysRequest {
                    prekeys: vec![prekey.clone()],
                }
                .to_cbor(),
            ),
            ("count-response", CountResponse { count: 3 }.to_cbor()),
            ("empty", Empty {}.to_cbor()),
            (
                "claim-prekeys-response",
                ClaimPreKeysResponse {
                    prekeys: vec![ClaimedPreKeyBody {
                        device_cert: device_cert.clone(),
                        prekey: prekey.clone(),
                    }],
                }
                .to_cbor(),
            ),
            (
                "upload-topic-keys-request",
                UploadTopicKeysRequest {
                    uploads: vec![ByteBuf::from(upload.clone())],
                }
                .to_cbor(),
            ),
            (
                "upload-last-resort-request",
                UploadLastResortRequest {
                    upload: ByteBuf::from(upload.clone()),
                }
                .to_cbor(),
            ),
            (
                "upload-own-topic-key-request",
                UploadOwnTopicKeyRequest {
                    upload: ByteBuf::from(upload.clone()),
                }
                .to_cbor(),
            ),
            (
                "alarm-evidence",
                rendezvous_client::AlarmEvidence::new(
                    &note_text,
                    &note_text,
                    0,
                    &directory_entry,
                    &[hash],
                )
                .to_cbor(),
            ),
            (
                "claim-topic-keys-request",
                ClaimTopicKeysRequest {
                    users: vec![user.clone()],
                }
                .to_cbor(),
            ),
            (
                "claim-topic-keys-response",
                ClaimTopicKeysResponse {
                    keys: vec![ClaimedTopicKey {
                        user: user.clone(),
                        registration: registration.clone(),
                        topic_key_cert: tkc.clone(),
                        kind: ClaimedKind::LastResort,
                    }],
                }
                .to_cbor(),
            ),
            (
                "key-status-response",
                KeyStatusResponse {
                    prekeys_left: 1,
                    topic_keys_left: 2,
                    refill: true,
                    last_resort: LastResortStatus::Served,
                }
                .to_cbor(),
            ),
            (
                "inbox-response",
                InboxResponse {
                    items: vec![InboxItem {
                        seq: 1,
                        kind: INBOX_TOPIC_KEY,
                        body: ByteBuf::from(vec![0x80]),
                    }],
                }
                .to_cbor(),
            ),
            (
                "topic-key-delivery-item",
                TopicKeyDeliveryItem {
                    topic_key_cert: tkc.clone(),
                    delivery: ByteBuf::from(delivery.clone()),
                }
                .to_cbor(),
            ),
            (
                "post-refused-item",
                PostRefusedItem {
                    topic: topic.clone(),
                    status: 403,
                    code: "forbidden".into(),
                    entry: log_entry.clone(),
                }
                .to_wire(),
            ),
            (
                "device-added-item",
                DeviceAddedItem {
                    device_cert: device_cert.clone(),
                    endorsement: endorsement.clone(),
                }
                .to_wire(),
            ),
            (
                "identity-rotated-item",
                IdentityRotatedItem {
                    rotation: ByteBuf::from(rotation.clone()),
                    delivery: ByteBuf::from(delivery.clone()),
                }
                .to_wire(),
            ),
            ("ack-request", AckRequest { up_to: 4 }.to_cbor()),
            (
                "link-open-request",
                LinkOpenRequest {
                    link_id: offer_link_id(&link_request),
                }
                .to_cbor(),
            ),
            (
                "link-message",
                LinkMessage {
                    body: ByteBuf::from(link_request.to_wire()),
                }
                .to_cbor(),
            ),
            (
                "link-message",
                LinkMessage {
                    body: ByteBuf::from(link_response.to_wire()),
                }
                .to_cbor(),
            ),
            ("link-pickup", LinkPickup { pickup: [3; 32] }.to_cbor()),
            ("link-request", link_request.to_wire()),
            ("link-response", link_response.to_wire()),
            ("link-payload", link_payload),
            ("delivery", delivery.clone()),
            ("topic-key-upload", upload.clone()),
            (
                "append-response",
                AppendResponse {
                    index: LeafIndex(1),
                    checkpoint: note.clone(),
                }
                .to_cbor(),
            ),
            (
                "topics-response",
                TopicsResponse {
                    topics: vec![TopicSummary {
                        topic: topic.clone(),
                        size: TreeSize(2),
                        role: Role::Writer,
                        epoch: Default::default(),
                    }],
                }
                .to_cbor(),
            ),
            (
                "entries-response",
                EntriesResponse {
                    entries: vec![IndexedEntry {
                        index: LeafIndex(0),
                        entry: log_entry.clone(),
                    }],
                }
                .to_cbor(),
            ),
            (
                "checkpoint-response",
                CheckpointResponse {
                    checkpoint: note.clone(),
                }
                .to_cbor(),
            ),
            (
                "witnesses-response",
                WitnessesResponse {
                    host: Some(note.clone()),
                    mirror: None,
                    witnesses: vec![note.clone()],
                    evidence: Some(ByteBuf::from(evidence.to_wire())),
                    refusals: vec![MirrorRefusal {
                        index: 1,
                        user: user.clone(),
                        identity_key: ik_public.clone(),
                        entry: log_entry.clone(),
                    }],
                }
                .to_cbor(),
            ),
            (
                "witnesses-response",
                WitnessesResponse {
                    host: None,
                    mirror: None,
                    witnesses: vec![],
                    evidence: None,
                    refusals: vec![],
                }
                .to_cbor(),
            ),
            ("mirror-evidence", evidence.to_wire()),
            ("server-keys-response", server_keys.to_cbor()),
            (
                "proof-response",
                ProofResponse {
                    path: vec![ByteBuf::from(vec![5; 32])],
                }
                .to_cbor(),
            ),
            (
                "cursor-request",
                CursorRequest {
                    index: LeafIndex(3),
                }
                .to_cbor(),
            ),
            (
                "sync-response",
                SyncResponse {
                    topics: vec![SyncItem {
                        topic: topic.clone(),
                        size: TreeSize(3),
                        cursor: LeafIndex(1),
                    }],
                    refill: false,
                }
                .to_cbor(),
            ),
            (
                "stream-frame",
                StreamFrame {
                    topic: topic.clone(),
                    index: LeafIndex(0),
                    entry: log_entry.clone(),
                }
                .to_cbor(),
            ),
            (
                "push-register-request",
                PushRegisterRequest {
                    url: "https://push.example/x".into(),
                }
                .to_cbor(),
            ),
            ("topic-entry-payload", batch.to_wire()),
            ("topic-entries-response", batch.to_backfill_wire()),
            (
                "topic-submit-payload",
                Submit {
                    submitter: user.clone(),
                    entry: log_entry.clone(),
                }
                .to_wire(),
            ),
            (
                "transaction-response",
                TransactionResponse {
                    results: vec![
                        EventResult {
                            id: [1; 32],
                            status: 200,
                            code: String::new(),
                        },
                        EventResult {
                            id: [2; 32],
                            status: 403,
                            code: "not_participant".into(),
                        },
                        EventResult {
                            id: [3; 32],
                            status: 503,
                            code: "unavailable".into(),
                        },
                    ],
                }
                .to_wire(),
            ),
            (
                "federation-claim-topic-keys-request",
                ClaimTopicKeysRequest {
                    users: vec![user.clone()],
                }
                .to_cbor(),
            ),
        ];
        // The inbox kinds the code defines are the kinds the CDDL allows.
        for kind in [
            INBOX_TOPIC_KEY,
            INBOX_POST_REFUSED,
            INBOX_LAST_RESORT_KEY,
            INBOX_DEVICE_ADDED,
            INBOX_IDENTITY_ROTATED,
        ] {
            out.push((
                "inbox-item",
                rendezvous_protocol::wire::encode(&InboxItem {
                    seq: 0,
                    kind,
                    body: ByteBuf::new(),
                }),
            ));
        }
        out
    }

    fn offer_link_id(request: &rendezvous_protocol::devices::LinkRequest) -> [u8; 8] {
        let wire = request.to_wire();
        // [1, link_id (bstr 8), …]: the id follows the array head, the version and the bstr head.
        wire[3..11].try_into().unwrap()
    }

    /// What the code refuses, the CDDL refuses too.
    pub(super) fn refused() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            // An applied result with a code, a refused one without.
            (
                "event-result",
                cbor(&Value::Array(vec![
                    Value::Bytes(vec![1; 32]),
                    200.into(),
                    Value::Text("invalid".into()),
                ])),
            ),
            (
                "event-result",
                cbor(&Value::Array(vec![
                    Value::Bytes(vec![1; 32]),
                    400.into(),
                    Value::Text(String::new()),
                ])),
            ),
            // The backfill answer without its version (the form before it was versioned).
            (
                "topic-entries-response",
                hex_at("federation.json", "/topic_entry_payload"),
            ),
            // A witnesses answer without refusals.
            (
                "witnesses-response",
                cbor(&Value::Array(vec![
                    1.into(),
                    Value::Null,
                    Value::Null,
                    Value::Array(vec![]),
                    Value::Null,
                ])),
            ),
        ]
    }
}

#[test]
fn api_bodies_match_their_rules() {
    let doc = parsed();
    let mut failures = Vec::new();
    for (rule, bytes) in bodies::encoded() {
        if let Err(e) = check_in(doc, rule, &bytes) {
            failures.push(format!(
                "`{rule}` ({}): {e}",
                hex::encode(&bytes[..bytes.len().min(48)])
            ));
        }
    }
    for (rule, bytes) in bodies::refused() {
        if check(rule, &bytes).is_ok() {
            failures.push(format!("`{rule}` accepted {}", hex::encode(&bytes)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn json_bodies_match_their_rules() {
    let doc = parsed();
    let json_check = |rule: &str, json: serde_json::Value| -> Result<(), String> {
        let mut rooted = doc.clone();
        let at = rooted.rules.iter().position(|r| r.name() == rule).unwrap();
        let root = rooted.rules.remove(at);
        rooted.rules.insert(0, root);
        let mut v = cddl::validator::json::JSONValidator::new(&rooted, json, None);
        v.validate().map_err(|e| e.to_string())
    };
    let error = rendezvous_protocol::api::ApiErrorBody {
        code: rendezvous_protocol::api::ErrorCode::NotParticipant
            .as_str()
            .into(),
        message: "not a participant".into(),
    };
    json_check("error-body", serde_json::to_value(&error).unwrap()).unwrap();
    // Every code of the code is an `error-code` (the JSON bodies and the federation results).
    for code in rendezvous_protocol::api::ErrorCode::ALL {
        let body = serde_json::json!({"code": code.as_str(), "message": ""});
        json_check("error-body", body).unwrap();
    }
    let bad = serde_json::json!({"code": "Not Found", "message": ""});
    assert!(json_check("error-body", bad).is_err());
    // /v1/status as src/api/status.rs writes it.
    let key = rendezvous_protocol::crypto::ServerKey::from_seed(&[5; 32]);
    let status = serde_json::json!({
        "server_name": "a.example",
        "version": "0.1.0",
        "server_key": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.public().as_bytes()),
        "tls_fingerprint": format!("sha256:{}", "ab".repeat(32)),
    });
    json_check("status-response", status.clone()).unwrap();
    let mut unpadded = status.clone();
    unpadded["server_key"] = serde_json::Value::String(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        key.public().as_bytes(),
    ));
    assert!(json_check("status-response", unpadded).is_err());
    let mut missing = status;
    missing.as_object_mut().unwrap().remove("tls_fingerprint");
    assert!(json_check("status-response", missing).is_err());
}

// ---------------------------------------------------------------------------------------------
// 5. One rule, one place

#[test]
fn markdown_does_not_redefine_the_documents_rules() {
    let (document_rules, _) = rule_names(&document());
    let spec = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("federation-spec");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&spec)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        for block in text.split("```cddl\n").skip(1) {
            let block = block.split("```").next().unwrap_or("");
            let (defined, _) = rule_names(block);
            for rule in defined {
                if document_rules.contains(&rule) {
                    failures.push(format!(
                        "{name} restates `{rule}` of the CDDL document: name the rule instead"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The scan finds a restatement.
    let (defined, _) = rule_names("sealed-box = {\n  \"suite\": uint,\n}\n");
    assert!(defined.contains("sealed-box") && document_rules.contains("sealed-box"));
}

/// A line of a ```text block of `markdown` that gives a CBOR array shape (`name = [ … ]` or
/// `name = CBOR [ … ]`): a second notation of what a rule of the CDDL document defines.
fn text_shapes(markdown: &str) -> Vec<String> {
    let mut shapes = Vec::new();
    for block in markdown.split("```text\n").skip(1) {
        let block = block.split("```").next().unwrap_or("");
        for line in block.lines() {
            let Some((_, rhs)) = line.split_once(" = ") else {
                continue;
            };
            let rhs = rhs.trim_start();
            if rhs.starts_with('[') || rhs.starts_with("CBOR [") {
                shapes.push(line.trim().to_owned());
            }
        }
    }
    shapes
}

#[test]
fn markdown_text_blocks_do_not_restate_cbor_shapes() {
    let spec = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("federation-spec");
    let mut failures = Vec::new();
    for e in std::fs::read_dir(&spec).unwrap() {
        let file = e.unwrap().path();
        if file.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text_shapes(&text) {
            failures.push(format!(
                "{}: `{line}` restates a CBOR shape: name the CDDL rule instead",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The scan finds both notations, and leaves formulas alone.
    let sample = "```text\nevent = [1, origin]\nheader = nonce ‖ x\nmessage = CBOR [h, c]\n\
                  sig = Ed25519(k, transcript(\"l\", [p]))\n```\n";
    assert_eq!(text_shapes(sample).len(), 2, "{:?}", text_shapes(sample));
}

/// Documents whose inline shapes are not definitions: the changelog says what a body *was*.
const SHAPE_HISTORY: &[&str] = &["CHANGELOG.md"];

/// Whether an inline code span gives a CBOR array shape: `[` followed by a version (`[1, …]`,
/// `[1]`, `[version, …]`) or an occurrence (`[+ …]`, `[* …]`, `[1*1000 …]`), or a rule written
/// out (`name = [ … ]`). Lists of transcript inputs (`[payload, signature]`), TOML tables
/// (`[limits]`) and JSON (`[{"id"}]`, `[]`) are not shapes.
fn is_cbor_shape(span: &str) -> bool {
    let span = span.trim();
    if let Some((name, _)) = span.split_once(" = [")
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return true;
    }
    let Some(inner) = span.strip_prefix('[') else {
        return false;
    };
    let inner = inner.trim_start();
    let digits = inner.bytes().take_while(u8::is_ascii_digit).count();
    inner.starts_with("version")
        || inner.starts_with(['+', '*'])
        || (digits > 0 && {
            // `[1]` is a body; `[8]A` (a multiple of a point) is not.
            let after = inner[digits..].trim_start();
            after.starts_with([',', '*']) || after == "]"
        })
}

/// The inline code spans of `markdown` (outside fenced blocks) that give a CBOR array shape.
/// A span may run over a line break, not over a paragraph.
fn inline_shapes(markdown: &str) -> Vec<String> {
    let mut prose = String::with_capacity(markdown.len());
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            prose.push('\n');
        } else if !fenced {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    let mut shapes = Vec::new();
    for paragraph in prose.split("\n\n") {
        for span in paragraph.split('`').skip(1).step_by(2) {
            if is_cbor_shape(span) {
                shapes.push(span.replace('\n', " "));
            }
        }
    }
    shapes
}

#[test]
fn markdown_prose_does_not_restate_cbor_shapes() {
    let spec = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("federation-spec");
    let mut failures = Vec::new();
    let mut scanned = 0;
    for e in std::fs::read_dir(&spec).unwrap() {
        let file = e.unwrap().path();
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        if file.extension().is_none_or(|e| e != "md") || SHAPE_HISTORY.contains(&name.as_str()) {
            continue;
        }
        scanned += 1;
        let text = std::fs::read_to_string(&file).unwrap();
        for shape in inline_shapes(&text) {
            failures.push(format!(
                "{name}: `{shape}` restates a CBOR shape: name the CDDL rule instead"
            ));
        }
    }
    assert!(scanned >= 8, "only {scanned} documents scanned");
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The scan finds a shape put back into client-api.md, across a line break too.
    let client_api = std::fs::read_to_string(spec.join("client-api.md")).unwrap();
    let planted = client_api.replacen("`register-response`", "`[1,\nuser]`", 1);
    assert!(
        planted != client_api,
        "client-api.md names no `register-response`"
    );
    assert_eq!(inline_shapes(&planted), vec!["[1, user]".to_owned()]);
    for shape in [
        "[1]",
        "[version, user]",
        "[+ bstr]",
        "[* [seq, kind, body]]",
        "[1*1000 bstr .cbor log-entry]",
        "[ 1, x ]",
        "mirror-evidence = [reason, a, b]",
    ] {
        assert!(is_cbor_shape(shape), "{shape}");
    }
    for not_shape in [
        "[limits.quota]",
        "[]",
        "[\"10.20.0.0/16\"]",
        "[{\"id\", \"device_key\"}]",
        "[[server, size]]",
        "[payload, signature]",
        "[size, first)",
        "[8]A",
        "[8][S]B = [8]R + [8][k]A",
        "signature = Ed25519(DK, transcript(\"l\", [server name, user]))",
    ] {
        assert!(!is_cbor_shape(not_shape), "{not_shape}");
    }
    // Fenced blocks are left to the other checks.
    assert!(inline_shapes("```text\n`[1, x]`\n```\n").is_empty());
}

/// The member keys of the CDDL document with a `-` (`old-identity-key:`), comments aside.
fn kebab_member_keys(cddl: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for line in cddl.lines() {
        let code = strip_strings(line.split(';').next().unwrap_or(""));
        for (at, _) in code.match_indices(':') {
            let name: String = code[..at]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if name.contains('-') && name.starts_with(|c: char| c.is_ascii_lowercase()) {
                keys.insert(name);
            }
        }
    }
    keys
}

/// `(file, word)`: snake_case names that are not wire fields where they stand: JSON keys of
/// `rdv --json` and the admin API (client-api.md §8, §9), vector JSON fields.
const SNAKE_NOT_WIRE: &[(&str, &str)] = &[
    ("client-api.md", "device_key"),
    ("client-api.md", "identity_key"),
    ("client-api.md", "last_resort"),
    ("client-api.md", "last_seen"),
    ("client-api.md", "prekeys_left"),
    ("client-api.md", "topic_keys_left"),
    ("conformance.md", "device_cert"),
    ("protocol.md", "device_cert"),
    ("protocol.md", "host_key"),
    ("protocol.md", "kem_secret"),
    ("protocol.md", "topic_keys"),
];

/// The words of `markdown`'s code spans and fenced blocks that are the snake_case form of one of
/// `keys` (`old_identity_key` for `old-identity-key`). Path parameters (`{link_id}`), quoted
/// strings (`"kem_key"`) and file names (`topic_keys.rs`) are not wire fields.
fn snake_wire_names(markdown: &str, keys: &BTreeSet<String>) -> Vec<String> {
    let snake: BTreeSet<String> = keys.iter().map(|k| k.replace('-', "_")).collect();
    let mut found = Vec::new();
    for (i, piece) in markdown.split('`').enumerate() {
        if i % 2 == 0 {
            continue;
        }
        let bytes = piece.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            if !(bytes[at].is_ascii_lowercase() || bytes[at] == b'_') {
                at += 1;
                continue;
            }
            let start = at;
            while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
                at += 1;
            }
            let word = &piece[start..at];
            let before = piece[..start].chars().next_back();
            let after = &piece[at..];
            let not_a_field = matches!(before, Some('{' | '"' | '-'))
                || after.starts_with(['}', '"', '-'])
                || after.starts_with(".rs");
            if snake.contains(word) && !not_a_field {
                found.push(word.to_owned());
            }
        }
    }
    found
}

#[test]
fn prose_names_wire_fields_as_the_cddl_does() {
    let keys = kebab_member_keys(&document());
    assert!(
        keys.contains("old-identity-key") && keys.contains("key-check"),
        "{keys:?}"
    );
    let spec = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("federation-spec");
    let mut failures = Vec::new();
    let mut allowed = BTreeSet::new();
    for e in std::fs::read_dir(&spec).unwrap() {
        let file = e.unwrap().path();
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        if file.extension().is_none_or(|e| e != "md") || SHAPE_HISTORY.contains(&name.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for word in snake_wire_names(&text, &keys) {
            if let Some(entry) = SNAKE_NOT_WIRE
                .iter()
                .find(|(f, w)| *f == name && *w == word)
            {
                allowed.insert(*entry);
            } else {
                failures.push(format!(
                    "{name}: `{word}`: the wire field is `{}` (CDDL)",
                    word.replace('_', "-")
                ));
            }
        }
    }
    for entry in SNAKE_NOT_WIRE {
        if !allowed.contains(entry) {
            failures.push(format!("{entry:?} in SNAKE_NOT_WIRE is no longer used"));
        }
    }
    failures.sort();
    failures.dedup();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The scan finds a code name where the CDDL's belongs, and leaves the other uses alone.
    let sample = "`rotation.new_identity_key` and `[old_identity_key, x]`; `/v1/link/{link_id}`, \
                  `InvalidField { field: \"kem_key\" }`, `topic_keys.rs`, `new-identity-key`";
    assert_eq!(
        snake_wire_names(sample, &keys),
        vec!["new_identity_key".to_owned(), "old_identity_key".to_owned()]
    );
}
