//! Which X25519 public keys the protocol accepts (`protocol.md` §3.6), committed in
//! `federation-spec/vectors/x25519_keys.json`.
//!
//! Each case holds a 32-byte u-coordinate, flags computed here from the curve with
//! curve25519-dalek (independently of the code under test), and the verdict of
//! `KemPublicKey::from_slice`, which every KEM key field goes through. Two directions are
//! checked: the code gives every committed verdict, and every verdict follows from the flags by
//! the rule the file states (accept exactly the canonical keys not of small order).
//!
//! Regenerate after a deliberate change: `cargo test --test x25519_keys -- --ignored
//! regenerate_x25519_keys`.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use rendezvous_protocol::crypto::{KemPublicKey, Suite};
use serde_json::{Value, json};

const FILE: &str = "x25519_keys.json";

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("federation-spec/vectors")
}

fn unhex(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// Little-endian `2^255 - 19 + k` for a small `k` (0 gives p itself).
fn p_plus(k: u8) -> [u8; 32] {
    let mut b = [0xffu8; 32];
    b[31] = 0x7f;
    b[0] = 0xed + k;
    b
}

/// The canonical encoding test of RFC 7748 §5 turned into a refusal: bit 255 clear and the
/// little-endian value below p.
fn canonical(u: &[u8; 32]) -> bool {
    let top_clear = u[31] & 0x80 == 0;
    let at_least_p = u[31] == 0x7f && u[1..31].iter().all(|&b| b == 0xff) && u[0] >= 0xed;
    top_clear && !at_least_p
}

/// X25519 of `u` with two unrelated clamped scalars: both all zeros exactly when `u` is of
/// small order (a clamped scalar is a multiple of the cofactor 8).
fn small_order(u: &[u8; 32]) -> bool {
    [[0x11u8; 32], [0xa7u8; 32]]
        .iter()
        .all(|s| MontgomeryPoint(*u).mul_clamped(*s).0 == [0u8; 32])
}

/// The cases: (name, u, why it is here).
fn cases() -> Vec<(String, [u8; 32], &'static str)> {
    let keys: Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_dir().join("keys.json")).unwrap())
            .unwrap();
    let prekey = unhex(keys["prekey"]["public"].as_str().unwrap());
    let mut prekey_high = prekey;
    prekey_high[31] |= 0x80;
    let mut base_high = [0u8; 32];
    base_high[0] = 9;
    base_high[31] = 0x80;
    let mixed = (ED25519_BASEPOINT_POINT * Scalar::from(7u8) + EIGHT_TORSION[1])
        .to_montgomery()
        .0;
    let mut two = [0u8; 32];
    two[0] = 2;
    let mut one = [0u8; 32];
    one[0] = 1;
    let mut all_ones = [0xffu8; 32];
    all_ones[31] = 0x7f;
    let mut out: Vec<(String, [u8; 32], &'static str)> = vec![
        ("prekey".into(), prekey, "keys.json prekey.public"),
        (
            "basepoint".into(),
            curve25519_dalek::constants::X25519_BASEPOINT.0,
            "u = 9",
        ),
        ("u=2".into(), two, "a point of large order (on the twist)"),
        (
            "mixed_order".into(),
            mixed,
            "[7]B + a point of order 8, as a u-coordinate",
        ),
        (
            "zero".into(),
            [0u8; 32],
            "u = 0, order 4 (and 1 on the twist)",
        ),
        ("one".into(), one, "u = 1, order 4 on the twist"),
    ];
    // The two points of order 8 are the u-coordinates of the 8-torsion's points of order 8.
    let mut order8: Vec<[u8; 32]> = EIGHT_TORSION
        .iter()
        .map(|p| p.to_montgomery().0)
        .filter(|u| small_order(u) && *u != [0u8; 32] && *u != one && canonical(u))
        .collect();
    order8.sort();
    order8.dedup();
    for (i, u) in order8.into_iter().enumerate() {
        out.push((format!("order_8_{i}"), u, "a u-coordinate of order 8"));
    }
    let mut p_minus_1 = p_plus(0);
    p_minus_1[0] = 0xec;
    out.extend([
        ("p-1".into(), p_minus_1, "u = p - 1 = -1, order 2"),
        ("p".into(), p_plus(0), "u = p, another encoding of 0"),
        ("p+1".into(), p_plus(1), "u = p + 1, another encoding of 1"),
        ("2^255-1".into(), all_ones, "the largest value below 2^255"),
        (
            "basepoint_bit255".into(),
            base_high,
            "u = 9 with bit 255 set",
        ),
        (
            "prekey_bit255".into(),
            prekey_high,
            "keys.json prekey.public with bit 255 set",
        ),
    ]);
    out
}

fn verdict(u: &[u8; 32]) -> &'static str {
    match KemPublicKey::from_slice(Suite::X25519Sha256ChaCha20Poly1305, u) {
        Ok(_) => "accept",
        Err(_) => "refuse",
    }
}

fn compute() -> Value {
    let cases: Vec<Value> = cases()
        .into_iter()
        .map(|(name, u, why)| {
            json!({
                "name": name,
                "about": why,
                "u": hex::encode(u),
                "canonical": canonical(&u),
                "small_order": small_order(&u),
                "expected": verdict(&u),
            })
        })
        .collect();
    json!({
        "description": "X25519 public keys (u-coordinates, 32 bytes little-endian) and whether a KEM key field accepts them (protocol.md §3.6). `canonical`: bit 255 clear and the value below p = 2^255 - 19. `small_order`: X25519 of u with every clamped scalar is all zeros (checked with two). Rule: accept exactly the canonical keys that are not of small order; `expected` is `accept` or `refuse` (CryptoError::InvalidPublicKey, inside a certificate WireError::InvalidField { field: \"kem_key\" }).",
        "cases": cases,
    })
}

fn committed() -> Value {
    serde_json::from_str(&std::fs::read_to_string(vectors_dir().join(FILE)).unwrap()).unwrap()
}

#[test]
fn the_code_gives_every_committed_verdict() {
    let file = committed();
    let cases = file["cases"].as_array().unwrap();
    assert!(cases.len() >= 14, "{}", cases.len());
    for case in cases {
        let u = unhex(case["u"].as_str().unwrap());
        assert_eq!(
            verdict(&u),
            case["expected"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn every_verdict_follows_from_the_curve() {
    let file = committed();
    let mut refused_small = 0;
    for case in file["cases"].as_array().unwrap() {
        let u = unhex(case["u"].as_str().unwrap());
        assert_eq!(case["canonical"], json!(canonical(&u)), "{}", case["name"]);
        assert_eq!(
            case["small_order"],
            json!(small_order(&u)),
            "{}",
            case["name"]
        );
        let accept = canonical(&u) && !small_order(&u);
        assert_eq!(
            case["expected"].as_str().unwrap(),
            if accept { "accept" } else { "refuse" },
            "{}",
            case["name"]
        );
        refused_small += usize::from(canonical(&u) && small_order(&u));
    }
    // The five canonical u-coordinates of small order (protocol.md §3.6) are all here.
    assert_eq!(refused_small, 5);
}

#[test]
fn the_committed_file_is_what_the_generator_makes() {
    assert_eq!(committed(), compute());
}

#[test]
#[ignore = "writes federation-spec/vectors/x25519_keys.json"]
fn regenerate_x25519_keys() {
    let mut text = serde_json::to_string_pretty(&compute()).unwrap();
    text.push('\n');
    std::fs::write(vectors_dir().join(FILE), text).unwrap();
}
