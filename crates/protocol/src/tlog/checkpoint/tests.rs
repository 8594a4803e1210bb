//! Tests of checkpoint bodies and signed notes.

use super::*;
use sha2::{Digest, Sha256};

use crate::crypto::ServerKey;
use crate::tlog::leaf_hash;

const ORIGIN: &str = "a.example/topic/0123456789abcdefghjkmnpqrs";

fn checkpoint() -> Checkpoint {
    Checkpoint::new(ORIGIN, TreeSize(42), leaf_hash(b"root"), 1_795_000_000).unwrap()
}

#[test]
fn body_format() {
    let c = checkpoint();
    let body = c.body();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], ORIGIN);
    assert_eq!(lines[1], "42");
    assert_eq!(STANDARD.decode(lines[2]).unwrap(), c.root.0);
    assert_eq!(lines[3], "time 1795000000");
    assert_eq!(Checkpoint::parse_body(&body).unwrap(), c);
}

#[test]
fn round_trip_and_verify() {
    let sk = ServerKey::generate();
    let signed = SignedCheckpoint::sign(&checkpoint(), &sk, "a.example").unwrap();
    let note = signed.to_note();
    assert!(note.starts_with(&checkpoint().body()));
    assert!(note.contains("\n\n\u{2014} a.example "));
    let parsed = SignedCheckpoint::parse(note.as_bytes()).unwrap();
    assert_eq!(parsed, signed);
    assert_eq!(
        parsed.verify(sk.public(), "a.example").unwrap(),
        &checkpoint()
    );
    assert_eq!(parsed.to_note(), note);
}

#[test]
fn key_id_matches_c2sp_definition() {
    let sk = ServerKey::from_seed(&[7; 32]);
    let mut pre = b"a.example\n\x01".to_vec();
    pre.extend_from_slice(sk.public().as_bytes());
    assert_eq!(
        key_id("a.example", SIG_TYPE_ED25519, sk.public()),
        Sha256::digest(&pre)[..4]
    );
}

#[test]
fn tampering_is_rejected() {
    let sk = ServerKey::generate();
    let note = SignedCheckpoint::sign(&checkpoint(), &sk, "a.example")
        .unwrap()
        .to_note();
    // Tampered body: a different size.
    let tampered = note.replacen("\n42\n", "\n43\n", 1);
    let p = SignedCheckpoint::parse(tampered.as_bytes()).unwrap();
    assert!(matches!(
        p.verify(sk.public(), "a.example"),
        Err(CheckpointError::BadSignature { .. })
    ));
    // Tampered signature: flip a bit in the signature bytes.
    let p = SignedCheckpoint::parse(note.as_bytes()).unwrap();
    let mut bad = p.clone();
    bad.signatures[0].signature[10] ^= 1;
    let bad = SignedCheckpoint::parse(bad.to_note().as_bytes()).unwrap();
    assert!(matches!(
        bad.verify(sk.public(), "a.example"),
        Err(CheckpointError::BadSignature { .. })
    ));
    // Another name or another key: no matching line.
    assert!(matches!(
        p.verify(sk.public(), "b.example"),
        Err(CheckpointError::MissingSignature { .. })
    ));
    let other = ServerKey::generate();
    assert!(matches!(
        p.verify(other.public(), "a.example"),
        Err(CheckpointError::MissingSignature { .. })
    ));
    // Renaming the signer in the line changes the expected key id: not found.
    let renamed = note.replace("\u{2014} a.example ", "\u{2014} c.example ");
    let p = SignedCheckpoint::parse(renamed.as_bytes()).unwrap();
    assert!(matches!(
        p.verify(sk.public(), "c.example"),
        Err(CheckpointError::MissingSignature { .. })
    ));
}

#[test]
fn unknown_signature_lines_are_ignored() {
    let sk = ServerKey::generate();
    let note = SignedCheckpoint::sign(&checkpoint(), &sk, "a.example")
        .unwrap()
        .to_note();
    let junk = format!("{note}\u{2014} z.example {}\n", STANDARD.encode([9u8; 68]));
    let p = SignedCheckpoint::parse(junk.as_bytes()).unwrap();
    p.verify(sk.public(), "a.example").unwrap();
    // Same name, other key id: also ignored (c2sp.org/signed-note).
    let junk = format!("{note}\u{2014} a.example {}\n", STANDARD.encode([9u8; 68]));
    SignedCheckpoint::parse(junk.as_bytes())
        .unwrap()
        .verify(sk.public(), "a.example")
        .unwrap();
}

#[test]
fn strict_parsing() {
    let sk = ServerKey::generate();
    let note = SignedCheckpoint::sign(&checkpoint(), &sk, "a.example")
        .unwrap()
        .to_note();
    let bad = [
        note.replacen("\n42\n", "\n042\n", 1),
        note.replacen("\n42\n", "\n+42\n", 1),
        note.replacen("\n42\n", "\n18446744073709551616\n", 1),
        note.replacen("time 1795000000", "time 01795000000", 1),
        note.replacen("time 1795000000", "time 9223372036854775808", 1),
        note.replacen("time 1795000000", "tim 1795000000", 1),
        note.replacen("time 1795000000\n", "", 1),
        note.replacen("time 1795000000\n", "time 1795000000\nother\n", 1),
        note.replacen(ORIGIN, "a.example/topic x", 1),
        note.replacen(ORIGIN, "", 1),
        note.replacen(ORIGIN, "a\tb", 1),
        note.replacen('=', "", 1),
        note.replacen("\n\n", "\n", 1),
        note.trim_end().to_owned(),
        format!(
            "{note}\u{2014} a+b.example {}\n",
            STANDARD.encode([9u8; 68])
        ),
        format!("{note}\u{2014} z.example {}\n", STANDARD.encode([9u8; 4])),
        format!("{note}\u{2014} z.example !!!!\n"),
        format!("{note}- z.example {}\n", STANDARD.encode([9u8; 68])),
    ];
    for b in &bad {
        assert!(
            SignedCheckpoint::parse(b.as_bytes()).is_err(),
            "accepted:\n{b}"
        );
    }
    // Wrong root length: 31 bytes.
    let short = note.replacen(
        &STANDARD.encode(checkpoint().root.0),
        &STANDARD.encode([1u8; 31]),
        1,
    );
    assert_eq!(
        SignedCheckpoint::parse(short.as_bytes()),
        Err(CheckpointError::InvalidRoot)
    );
    let big = format!("{note}{}", "x".repeat(MAX_NOTE_SIZE));
    assert!(matches!(
        SignedCheckpoint::parse(big.as_bytes()),
        Err(CheckpointError::TooLarge { .. })
    ));
    let mut many = note.to_string();
    for _ in 0..MAX_SIGNATURES {
        many.push_str(&format!(
            "\u{2014} z.example {}\n",
            STANDARD.encode([9u8; 68])
        ));
    }
    assert!(matches!(
        SignedCheckpoint::parse(many.as_bytes()),
        Err(CheckpointError::TooManySignatures { .. }) | Err(CheckpointError::TooLarge { .. })
    ));
    assert!(Checkpoint::new("a b", TreeSize(0), leaf_hash(b""), 0).is_err());
    assert!(SignedCheckpoint::sign(&checkpoint(), &sk, "a+b").is_err());
}

/// Origins and key names are accepted up to [`MAX_NAME_LEN`] bytes (288: a topic log's origin
/// under the longest server name) and refused one byte over, in a note parsed as when signed.
#[test]
fn names_up_to_the_limit() {
    assert_eq!(MAX_NAME_LEN, 288);
    let sk = ServerKey::generate();
    let longest = "o".repeat(MAX_NAME_LEN);
    let c = Checkpoint::new(&longest, TreeSize(1), leaf_hash(b""), 1).unwrap();
    let note = SignedCheckpoint::sign(&c, &sk, &longest).unwrap().to_note();
    let parsed = SignedCheckpoint::parse(note.as_str().as_bytes()).unwrap();
    assert_eq!(parsed.verify(sk.public(), &longest).unwrap(), &c);

    let over = "o".repeat(MAX_NAME_LEN + 1);
    assert_eq!(
        Checkpoint::new(&over, TreeSize(1), leaf_hash(b""), 1),
        Err(CheckpointError::InvalidOrigin)
    );
    assert_eq!(
        SignedCheckpoint::sign(&c, &sk, &over).err(),
        Some(CheckpointError::InvalidKeyName)
    );
    let long_origin = note.as_str().replacen(&longest, &over, 1);
    assert_eq!(
        SignedCheckpoint::parse(long_origin.as_bytes()).err(),
        Some(CheckpointError::InvalidOrigin)
    );
    let line = format!("\u{2014} {over} {}\n", STANDARD.encode([9u8; 68]));
    assert!(matches!(
        SignedCheckpoint::parse(format!("{note}{line}").as_bytes()),
        Err(CheckpointError::BadSignatureLine { line: 1 })
    ));
}
