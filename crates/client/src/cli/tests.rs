//! The JSON and text forms of every kind of answer, and of errors.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::commands::join_command;
use super::text::{count, utc};
use super::*;
use crate::tls::{Fingerprint, Trust};
use crate::{ClientError, EntryContent, EntryReport, ReadReport, VerifyReport, WitnessReport};
use rendezvous_protocol::api::ErrorCode;
use rendezvous_protocol::ids::TopicId;

const TOPIC: &str = "!aaaaaaaaaaaaaaaaaaaaaaaaaa:a.example";

fn topic() -> TopicId {
    TOPIC.parse().unwrap()
}

fn json_of(o: &Output) -> Value {
    let line = o.to_json();
    assert!(!line.contains('\n'), "one line: {line}");
    serde_json::from_str(&line).unwrap()
}

#[test]
fn command_answers_in_json() {
    let cases = [
        (
            Output::Registered {
                user: "@alice:a.example".into(),
                server: "a.example".into(),
            },
            json!({"type": "registered", "user": "@alice:a.example", "server": "a.example"}),
        ),
        (
            Output::Status {
                user: "@alice:a.example".into(),
                prekeys_left: 1,
                topic_keys_left: 50,
                refill: false,
                last_resort: "unused".into(),
            },
            json!({"type": "status", "user": "@alice:a.example", "prekeys_left": 1,
                   "topic_keys_left": 50, "refill": false, "last_resort": "unused"}),
        ),
        (
            Output::LinkCode {
                code: "ABCD".into(),
                command: "rdv device join".into(),
            },
            json!({"type": "link_code", "code": "ABCD", "command": "rdv device join"}),
        ),
        (Output::Linked, json!({"type": "linked"})),
        (
            Output::PassphraseChanged,
            json!({"type": "passphrase_changed"}),
        ),
        (
            Output::NoEvidence { topic: None },
            json!({"type": "no_evidence", "topic": null}),
        ),
        (
            Output::Joined {
                user: "@alice:a.example".into(),
            },
            json!({"type": "joined", "user": "@alice:a.example"}),
        ),
        (
            Output::Device {
                id: "00ff".into(),
                created: 1,
                last_seen: 2,
                this_device: true,
                endorsed_by: None,
            },
            json!({"type": "device", "id": "00ff", "created": 1, "last_seen": 2,
                   "this_device": true}),
        ),
        (
            Output::Device {
                id: "00ff".into(),
                created: 1,
                last_seen: 2,
                this_device: false,
                endorsed_by: Some("11ee".into()),
            },
            json!({"type": "device", "id": "00ff", "created": 1, "last_seen": 2,
                   "this_device": false, "endorsed_by": "11ee"}),
        ),
        (
            Output::device_added(&crate::DeviceAdded {
                device: Some("00ff".into()),
                endorser: Some("11ee".into()),
                problem: None,
            }),
            json!({"type": "device_added", "id": "00ff", "endorser": "11ee"}),
        ),
        (
            Output::device_added(&crate::DeviceAdded {
                device: Some("00ff".into()),
                endorser: Some("11ee".into()),
                problem: Some("endorsement not signed by endorser 11ee".into()),
            }),
            json!({"type": "device_added_unverified", "id": "00ff", "endorser": "11ee",
                   "error": "endorsement not signed by endorser 11ee"}),
        ),
        (
            Output::identity_rotated(&crate::IdentityRotatedNotice {
                from: Some("aa".into()),
                to: Some("bb".into()),
                problem: None,
            }),
            json!({"type": "identity_key_received", "from": "aa", "to": "bb"}),
        ),
        (
            Output::identity_rotated(&crate::IdentityRotatedNotice {
                from: None,
                to: None,
                problem: Some("the notice does not decode".into()),
            }),
            json!({"type": "identity_key_refused", "from": null, "to": null,
                   "error": "the notice does not decode"}),
        ),
        (
            Output::DeviceRemoved { id: "00ff".into() },
            json!({"type": "device_removed", "id": "00ff"}),
        ),
        (
            Output::TopicCreated {
                topic: TOPIC.into(),
            },
            json!({"type": "topic_created", "topic": TOPIC}),
        ),
        (
            Output::Changed {
                topic: TOPIC.into(),
                index: 3,
                change: ChangeKind::Rekeyed,
            },
            json!({"type": "changed", "topic": TOPIC, "index": 3}),
        ),
        (
            Output::Topic {
                topic: TOPIC.into(),
                size: 4,
                role: "admin".into(),
                epoch: 1,
            },
            json!({"type": "topic", "topic": TOPIC, "size": 4, "role": "admin", "epoch": 1}),
        ),
        (
            Output::Sent {
                topic: TOPIC.into(),
                index: 5,
            },
            json!({"type": "sent", "topic": TOPIC, "index": 5}),
        ),
        (
            Output::Queued {
                topic: TOPIC.into(),
                host: "a.example".into(),
            },
            json!({"type": "queued", "topic": TOPIC, "host": "a.example"}),
        ),
        (
            Output::synced(
                &crate::InboxReport {
                    topic_keys: 2,
                    devices_added: Vec::new(),
                    identity_rotations: Vec::new(),
                    failed: vec![(7, "no pre key".into())],
                },
                true,
            ),
            json!({"type": "synced", "topic_keys_received": 2,
                   "failed": [{"seq": 7, "error": "no pre key"}], "refilled": true}),
        ),
    ];
    for (output, expected) in cases {
        assert_eq!(json_of(&output), expected, "{output:?}");
    }
}

fn report() -> ReadReport {
    ReadReport {
        topic: topic(),
        size: 3,
        entries: vec![
            EntryReport {
                index: 0,
                content: EntryContent::Change {
                    author: "@alice:a.example".into(),
                    description: "create (shared history): @alice:a.example admin".into(),
                    epoch: 0,
                },
                problems: vec![],
            },
            EntryReport {
                index: 1,
                content: EntryContent::Message {
                    sender: "@alice:a.example".into(),
                    epoch: 0,
                    text: Some("hi".into()),
                    by_design: false,
                },
                problems: vec![],
            },
            EntryReport {
                index: 3,
                content: EntryContent::Invalid,
                problems: vec!["malformed entry: x".into()],
            },
            EntryReport {
                index: 4,
                content: EntryContent::Message {
                    sender: "@bob:a.example".into(),
                    epoch: 0,
                    text: None,
                    by_design: true,
                },
                problems: vec![],
            },
        ],
        missing: vec![2],
        age: 7,
        stale: true,
        forked: None,
        refused: vec![],
        unchecked: vec![],
        mirror_refused: vec![],
    }
}

#[test]
fn entries_in_json_and_text() {
    let lines = Output::read(&report(), false);
    let json: Vec<Value> = lines.iter().map(json_of).collect();
    assert_eq!(
        json,
        vec![
            json!({"type": "head", "topic": TOPIC, "size": 3, "age": 7, "stale": true}),
            json!({"type": "change", "topic": TOPIC, "index": 0, "author": "@alice:a.example",
                   "change": "create (shared history): @alice:a.example admin", "epoch": 0,
                   "verified": true, "problems": []}),
            json!({"type": "message", "topic": TOPIC, "index": 1, "sender": "@alice:a.example",
                   "epoch": 0, "text": "hi", "verified": true, "problems": []}),
            json!({"type": "invalid", "topic": TOPIC, "index": 3, "verified": false,
                   "problems": ["malformed entry: x"]}),
            json!({"type": "message", "topic": TOPIC, "index": 4, "sender": "@bob:a.example",
                   "epoch": 0, "text": null, "undecryptable": "by design", "verified": true,
                   "problems": []}),
            json!({"type": "missing", "topic": TOPIC, "indices": [2]}),
        ]
    );
    let text: Vec<String> = lines.iter().map(Output::to_text).collect();
    assert_eq!(
        text,
        vec![
            format!(
                "{TOPIC}: head of 3 entries, signed 7 s ago — STALE: the server may be hiding newer entries; sending is refused"
            ),
            "[0] * @alice:a.example: create (shared history): @alice:a.example admin (epoch 0)"
                .to_owned(),
            "[1] @alice:a.example: hi".to_owned(),
            "[3] <invalid entry>  !! NOT VERIFIED: malformed entry: x".to_owned(),
            "[4] @bob:a.example: <cannot decrypt, by design: posted before you joined>".to_owned(),
            format!("!! MISSING log entry of {TOPIC}: 2"),
        ]
    );
    // Live (`watch`): no head line, every entry names its topic; the JSON is the same.
    let live = Output::read(&report(), true);
    assert_eq!(
        live[1].to_text(),
        format!("{TOPIC} [1] @alice:a.example: hi")
    );
    assert_eq!(json_of(&live[1]), json_of(&lines[2]));
}

#[test]
fn verify_in_json_and_text() {
    let mut r = VerifyReport {
        topic: topic(),
        size: 1,
        root: "ab".into(),
        consistent_with: Some(1),
        failed: vec![],
        missing: vec![],
        root_matches: Some(true),
        witnesses: WitnessReport {
            host_size: Some(1),
            cosigned: vec![("b.example".into(), 1)],
            problems: vec![],
            unknown_cosigners: vec![],
            mirror_refused: vec![],
        },
        age: 3,
        stale: false,
        evidence: vec![],
    };
    let lines = Output::verify(&r);
    assert_eq!(
        json_of(&lines[0]),
        json!({"type": "verify", "topic": TOPIC, "ok": true, "size": 1, "root": "ab",
               "consistent_with": 1, "root_matches": true, "failed": [], "missing": [],
               "host_size": 1, "cosigned": [["b.example", 1]], "problems": [],
               "unknown_cosigners": [], "age": 3, "stale": false, "evidence": []})
    );
    assert_eq!(
        lines[0].to_text(),
        format!(
            "{TOPIC}: log verified — 1 entry, root ab, consistent with the size-1 head seen before; cosigned by b.example at 1; head signed 3 s ago"
        )
    );
    r.witnesses.unknown_cosigners = vec!["made-up.example".into()];
    let text = Output::verify(&r)[0].to_text();
    assert!(text.contains("log verified"), "{text}");
    assert!(
        text.contains("cosignature lines of unknown keys ignored: made-up.example"),
        "{text}"
    );
    r.missing = vec![0];
    r.witnesses.problems = vec!["split view".into()];
    r.evidence = vec!["rollback".into()];
    let text = Output::verify(&r)[0].to_text();
    assert!(text.contains("LOG DOES NOT VERIFY"), "{text}");
    assert!(text.contains("; missing entry: 0"), "{text}");
    assert!(text.contains("\n!! split view\n"), "{text}");
    assert!(
        text.ends_with(&format!(
            "\n!! evidence kept on this device: rollback (`rdv evidence export --topic {TOPIC}`)"
        )),
        "{text}"
    );
}

#[test]
fn errors_in_json_carry_a_code() {
    // A server refusal: the server's code.
    let refused = ClientError::Api {
        what: "register the account".into(),
        code: ErrorCode::PinInvalid,
        status: 403,
        message: "pin used".into(),
    };
    let v = json_of(&Output::error(&refused, None));
    assert_eq!(v["type"], "error");
    assert_eq!(v["code"], "pin_invalid");
    assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
    let text = v["error"].as_str().unwrap();
    assert!(text.contains("register the account"), "{text}");
    assert!(text.contains("rendezvous admin pin"), "what to do: {text}");
    // A client-side refusal: a named code, never null.
    let refusal = ClientError::NotRegistered(PathBuf::from(".rdv"));
    assert_eq!(
        json_of(&Output::error(&refusal, None)),
        json!({"type": "error", "code": "not_registered", "error": refusal.to_string()})
    );
    let mismatch = ClientError::PinMismatch {
        server: "https://127.0.0.1:8443".into(),
        pinned: "sha256:aa".into(),
        presented: "sha256:bb".into(),
    };
    let v = json_of(&Output::error(&mismatch, None));
    assert_eq!(v["code"], "fingerprint_mismatch");
    let text = v["error"].as_str().unwrap();
    assert!(
        text.contains("sha256:aa") && text.contains("sha256:bb"),
        "{text}"
    );
    // A failure of one topic in `watch` names it.
    let v = json_of(&Output::error(&refusal, Some(&topic())));
    assert_eq!(v["topic"], TOPIC);
    assert_eq!(
        Output::error(&refusal, None).to_text(),
        format!("rdv: error: {refusal}")
    );
}

#[test]
fn client_codes_are_named_and_distinct_from_server_codes() {
    for code in crate::CLIENT_CODES {
        assert!(ErrorCode::parse(code).is_none(), "{code} is a server code");
        assert!(
            code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{code}"
        );
    }
    let mut sorted = crate::CLIENT_CODES.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), crate::CLIENT_CODES.len(), "codes repeat");
    let samples = [
        ClientError::NotRegistered(".rdv".into()),
        ClientError::BadFingerprint("x".into()),
        ClientError::Transport {
            server: "https://a".into(),
            what: "log in this device".into(),
            reason: "refused".into(),
        },
        ClientError::Misbehaved("x".into()),
        ClientError::NoSuchDevice("ab".into()),
        ClientError::RemovingThisDevice,
        ClientError::LogDoesNotVerify(TOPIC.into()),
        ClientError::MayNotPost {
            topic: TOPIC.into(),
            user: "@a:a".into(),
        },
        ClientError::InvalidInput("x".into()),
    ];
    for e in samples {
        assert!(crate::CLIENT_CODES.contains(&e.error_code()), "{e:?}");
    }
    // A removed device: the server's refusal, said in the user's words.
    let removed = ClientError::DeviceRemoved {
        user: "@alice:a.example".into(),
    };
    assert_eq!(removed.error_code(), "unauthorized");
    assert!(removed.to_string().contains("rdv device link"), "{removed}");
}

#[test]
fn texts_for_people() {
    assert_eq!(count(1, "entry", "entries"), "1 entry");
    assert_eq!(count(0, "entry", "entries"), "0 entries");
    assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(utc(951_827_696), "2000-02-29 12:34:56 UTC");
    assert_eq!(utc(1_796_594_400), "2026-12-06 22:00:00 UTC");
    let device = Output::Device {
        id: "00ff".into(),
        created: 1_796_594_400,
        last_seen: 0,
        this_device: true,
        endorsed_by: None,
    };
    assert_eq!(
        device.to_text(),
        "00ff  created 2026-12-06 22:00:00 UTC  last seen never  (this device)"
    );
    let status = Output::Status {
        user: "@a:a".into(),
        prekeys_left: 1,
        topic_keys_left: 2,
        refill: false,
        last_resort: "unused".into(),
    };
    assert_eq!(
        status.to_text(),
        "@a:a: 1 pre key left on this device, 2 topic keys left"
    );
    let served = Output::Status {
        user: "@a:a".into(),
        prekeys_left: 1,
        topic_keys_left: 2,
        refill: true,
        last_resort: "served".into(),
    };
    assert_eq!(
        served.to_text(),
        "@a:a: 1 pre key left on this device, 2 topic keys left, last-resort key handed out \
         (refill needed: run `rdv sync`)"
    );
}

#[test]
fn link_shows_the_real_join_command() {
    let fp = Fingerprint([0xab; 32]);
    assert_eq!(
        join_command("https://127.0.0.1:8443", &Trust::Pinned(fp), "K3Y-C0DE"),
        format!(
            "rdv device join --server https://127.0.0.1:8443 --fingerprint {fp} --code K3Y-C0DE"
        )
    );
    assert_eq!(
        join_command(
            "https://a.example",
            &Trust::CaFile("/etc/my ca.pem".into()),
            "c"
        ),
        "rdv device join --server https://a.example --ca-file '/etc/my ca.pem' --code c"
    );
    assert_eq!(
        join_command("https://a.example", &Trust::SystemRoots, "c"),
        "rdv device join --server https://a.example --system-roots --code c"
    );
    let text = Output::LinkCode {
        code: "c".into(),
        command: "rdv device join --code c".into(),
    }
    .to_text();
    assert!(text.contains("\n  rdv device join --code c\n"), "{text}");
    assert!(
        !text.contains("<url>") && !text.contains("<trust>"),
        "{text}"
    );
}

#[test]
fn directory_answers_in_json() {
    let cases = [
        (
            Output::SafetyCode {
                user: "@bob:b.example".into(),
                identity_key: "ab".into(),
                code: "12345 67890".into(),
                qr_payload: "rdv-verify:1:1234567890".into(),
                verified: false,
            },
            json!({"type": "safety_code", "user": "@bob:b.example", "identity_key": "ab",
                   "code": "12345 67890", "qr_payload": "rdv-verify:1:1234567890",
                   "verified": false}),
        ),
        (
            Output::Contact {
                user: "@bob:b.example".into(),
                fingerprint: "11111 22222".into(),
                state: "changed".into(),
                index: 4,
                size: 9,
                changed_to: Some("cd".into()),
            },
            json!({"type": "contact", "user": "@bob:b.example", "fingerprint": "11111 22222",
                   "state": "changed", "index": 4, "size": 9, "changed_to": "cd"}),
        ),
        (
            Output::DirectoryForeignKey {
                server: "a.example".into(),
                index: 7,
                identity_key: "ef".into(),
                evidence: "/k/directory/a.example/alarm-7.cbor".into(),
            },
            json!({"type": "directory_foreign_key", "server": "a.example", "index": 7,
                   "identity_key": "ef", "evidence": "/k/directory/a.example/alarm-7.cbor"}),
        ),
        (
            Output::DirectoryStale {
                server: "a.example".into(),
                age: 4000,
            },
            json!({"type": "directory_stale", "server": "a.example", "age": 4000}),
        ),
        (
            Output::MirrorRefused {
                topic: TOPIC.into(),
                index: 3,
                user: "@bob:b.example".into(),
                identity_key: "aa".into(),
            },
            json!({"type": "mirror_refused", "topic": TOPIC, "index": 3,
                   "user": "@bob:b.example", "identity_key": "aa"}),
        ),
        (
            Output::IdentityRotated {
                user: "@bob:b.example".into(),
                from: "aa".into(),
                to: "bb".into(),
            },
            json!({"type": "identity_rotated", "user": "@bob:b.example", "from": "aa",
                   "to": "bb"}),
        ),
        (
            Output::DirectoryChecked {
                server: "a.example".into(),
                size: 5,
                checked: 2,
                witnessed_by: vec!["b.example".into()],
                witness_age: Some(3),
                alarms: vec![],
            },
            json!({"type": "directory_checked", "server": "a.example", "size": 5,
                   "checked": 2, "witnessed_by": ["b.example"], "witness_age": 3,
                   "alarms": []}),
        ),
        (
            Output::AlarmAcked { index: 7 },
            json!({"type": "alarm_acked", "index": 7}),
        ),
    ];
    let spec = include_str!("../../../../federation-spec/client-api.md");
    for (output, expected) in cases {
        assert_eq!(json_of(&output), expected, "{output:?}");
        let kind = expected["type"].as_str().unwrap();
        assert!(spec.contains(&format!("| `{kind}` |")), "{kind} not in §9");
        assert!(!output.to_text().is_empty(), "{kind} has a text");
    }
}

#[test]
fn a_verification_code_is_shown_with_its_qr_code() {
    let code = rendezvous_protocol::directory::safety_code(
        (
            &"@alice:a.example".parse().unwrap(),
            rendezvous_protocol::crypto::IdentityKey::generate().public(),
        ),
        (
            &"@bob:b.example".parse().unwrap(),
            rendezvous_protocol::crypto::IdentityKey::generate().public(),
        ),
    );
    let text = Output::SafetyCode {
        user: "@bob:b.example".into(),
        identity_key: "ab".into(),
        code: code.clone(),
        qr_payload: rendezvous_protocol::directory::qr_payload(&code),
        verified: false,
    }
    .to_text();
    assert!(text.contains(&code), "{text}");
    // The QR code: block characters over several lines.
    assert!(text.lines().count() > 15, "{text}");
    assert!(text.contains('█') || text.contains('▀'), "{text}");
    assert!(text.contains("rdv contact verify --confirm @bob:b.example"));
    let alarm = Output::DirectoryForeignKey {
        server: "a.example".into(),
        index: 7,
        identity_key: "ef".into(),
        evidence: "f".into(),
    }
    .to_text();
    assert!(alarm.contains("rdv directory ack 7"), "{alarm}");
}

/// Warnings go to stderr as text (the [`Printer`]) and, for a program, into the sink like
/// any answer.
#[test]
fn warnings_reach_the_sink() {
    let mut out: Vec<Output> = Vec::new();
    out.warn(Output::AlarmAcked { index: 1 });
    assert_eq!(out, vec![Output::AlarmAcked { index: 1 }]);
}
