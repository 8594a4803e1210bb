//! Ed25519 verification edge cases, committed in `federation-spec/vectors/ed25519_strict.json`.
//!
//! The cases are the fifteen of ed25519-speccheck ("Taming the many EdDSAs", Chalkias, Garillot
//! and Nikolaenko, 2020: small-order and mixed-order A and R, non-canonical A and R, S ≥ L,
//! cofactored against cofactorless equations) reproduced as data, plus a few of our own (a
//! valid signature, the same with S + L, a key that is not a curve point). Each case holds the
//! verdict of this implementation's verification: the key is parsed as every public signing
//! key is (`PublicSigningKey::from_slice`: must decompress, must not be of small order) and the
//! signature checked with ed25519-dalek `verify_strict`, which `PublicSigningKey::verify` calls on
//! the transcript. The flags of each case are computed here from the curve, independently of the
//! verdict, so that the file says why a case is accepted or refused.
//!
//! Regenerate after a deliberate change: `cargo test --test ed25519_strict -- --ignored
//! regenerate_ed25519_strict`.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rendezvous_protocol::crypto::IdentityPublicKey;
use serde_json::{Value, json};
use sha2::{Digest, Sha512};

const FILE: &str = "ed25519_strict.json";

/// ed25519-speccheck `cases.json` (message, public key, signature), cases 0–14.
const SPECCHECK: [(&str, &str, &str); 15] = [
    (
        "2a66241a42a9ee12994d8068dcf1bb7dfc6637b45450acd43711f637fa5080fc",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a0000000000000000000000000000000000000000000000000000000000000000",
    ),
    (
        "8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a0000000000000000000000000000000000000000000000000000000000000000",
    ),
    (
        "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
    ),
    (
        "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
    ),
    (
        "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa182ef1a5b928da07fec769cc8a12db6bcf70dab3f3227fa315e9d5e3e01a3405",
    ),
    (
        "aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e",
    ),
    (
        "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009",
    ),
    (
        "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed5125ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09",
    ),
    (
        "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405",
    ),
    (
        "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
        "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
        "e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514",
    ),
    (
        "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
        "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
        "8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa19427e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22",
    ),
    (
        "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f",
    ),
    (
        "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908",
    ),
    (
        "e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
    ),
    (
        "39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
    ),
];

/// L = 2^252 + 27742317777372353535851937790883648493, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The base point B, compressed (y = 4/5).
const BASE: [u8; 32] = [
    0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
    0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
];

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("federation-spec")
        .join("vectors")
}

/// `a < b` for little-endian 256-bit numbers.
fn less_le(a: &[u8; 32], b: &[u8; 32]) -> bool {
    for i in (0..32).rev() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
    }
    false
}

/// `a + b` for little-endian 256-bit numbers (no overflow for the values used).
fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let s = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    out
}

fn from_u64<T: From<u64>>(_like: &T, v: u64) -> T {
    T::from(v)
}

/// The verdict of this implementation: parse the key as every signing key is parsed, then
/// `verify_strict` (what `PublicSigningKey::verify` runs over the transcript).
fn our_verdict(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> (bool, &'static str) {
    if IdentityPublicKey::from_slice(public).is_err() {
        return (
            false,
            "public key refused when parsed (not a point, or of small order)",
        );
    }
    let key = VerifyingKey::from_bytes(public).unwrap();
    let ok = key
        .verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
        .is_ok();
    (
        ok,
        if ok {
            "accepted"
        } else {
            "refused by verify_strict"
        },
    )
}

/// Properties of a case, from the curve: orders and encodings of A and R, S against L, and
/// whether the cofactorless (`[S]B = R + [k]A`) and cofactored (`[8][S]B = [8]R + [8][k]A`)
/// equations hold with `k = SHA-512(R ‖ A ‖ M) mod L` and S reduced mod L.
fn flags(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> Value {
    let r_bytes: [u8; 32] = signature[..32].try_into().unwrap();
    let s_bytes: [u8; 32] = signature[32..].try_into().unwrap();
    let point = |b: &[u8; 32]| VerifyingKey::from_bytes(b).ok().map(|k| k.to_edwards());
    let describe = |b: &[u8; 32]| match point(b) {
        None => json!({"decompresses": false}),
        Some(p) => json!({
            "decompresses": true,
            "canonical": p.compress().to_bytes() == *b,
            "small_order": p.is_small_order(),
            "mixed_order": !p.is_small_order() && !p.is_torsion_free(),
        }),
    };
    let mut out = json!({
        "A": describe(public),
        "R": describe(&r_bytes),
        "S_below_L": less_le(&s_bytes, &L),
    });
    if let (Some(a), Some(r)) = (point(public), point(&r_bytes)) {
        let b = point(&BASE).unwrap();
        let one = SigningKey::from_bytes(&[0; 32]).to_scalar();
        let zero = from_u64(&one, 0);
        let base = from_u64(&one, 256);
        let scalar = |bytes: &[u8]| {
            bytes
                .iter()
                .rev()
                .fold(zero, |acc, &x| acc * base + from_u64(&one, u64::from(x)))
        };
        let k = scalar(
            &Sha512::new()
                .chain_update(r_bytes)
                .chain_update(public)
                .chain_update(message)
                .finalize(),
        );
        let s = scalar(&s_bytes);
        let lhs = b * s;
        let rhs = r + a * k;
        let identity = b * zero;
        out["cofactorless_equation"] = json!(lhs == rhs);
        out["cofactored_equation"] = json!((lhs - rhs).mul_by_cofactor() == identity);
    }
    out
}

fn case(source: &str, message: &[u8], public: &[u8; 32], signature: &[u8; 64]) -> Value {
    let (accept, reason) = our_verdict(public, message, signature);
    json!({
        "source": source,
        "message": hex::encode(message),
        "public_key": hex::encode(public),
        "signature": hex::encode(signature),
        "flags": flags(public, message, signature),
        "expected": if accept { "accept" } else { "refuse" },
        "reason": reason,
    })
}

fn compute() -> Value {
    let mut cases: Vec<Value> = SPECCHECK
        .iter()
        .enumerate()
        .map(|(i, (m, a, s))| {
            case(
                &format!("ed25519-speccheck cases.json #{i}"),
                &hex::decode(m).unwrap(),
                &hex::decode(a).unwrap().try_into().unwrap(),
                &hex::decode(s).unwrap().try_into().unwrap(),
            )
        })
        .collect();
    // Our own: a valid signature, the same with S + L, and a key that is not a point.
    let seed: [u8; 32] = Sha512::digest(b"rdv vector ed25519 strict")[..32]
        .try_into()
        .unwrap();
    let key = SigningKey::from_bytes(&seed);
    let message = b"rdv/v1/ed25519 strict edge cases";
    let sig = key.sign(message).to_bytes();
    let public = key.verifying_key().to_bytes();
    cases.push(case("own: valid signature", message, &public, &sig));
    let mut s_plus_l = sig;
    let s: [u8; 32] = sig[32..].try_into().unwrap();
    s_plus_l[32..].copy_from_slice(&add_le(&s, &L));
    cases.push(case(
        "own: the valid signature with S + L (S ≥ L, same point equation)",
        message,
        &public,
        &s_plus_l,
    ));
    let not_a_point = (2u8..)
        .map(|y| {
            let mut b = [0u8; 32];
            b[0] = y;
            b
        })
        .find(|b| VerifyingKey::from_bytes(b).is_err())
        .unwrap();
    cases.push(case(
        "own: public key y = the smallest y ≥ 2 with no point",
        message,
        &not_a_point,
        &sig,
    ));
    json!({
        "about": "Ed25519 verification edge cases and the verdict of this implementation (protocol.md §3.2). Fields per case: `source` (ed25519-speccheck cases.json case number, or `own`), `message`, `public_key` (A, 32 bytes), `signature` (R ‖ S, 64 bytes), all hex; `flags`, computed from the curve: for A and R whether the 32 bytes decompress to a point, are its canonical encoding, are of small order (order dividing 8), are of mixed order (not small, with a torsion component); `S_below_L` (S < L = 2^252 + 27742317777372353535851937790883648493 as a little-endian integer); `cofactorless_equation` ([S]B = R + [k]A) and `cofactored_equation` ([8][S]B = [8]R + [8][k]A), with k = SHA-512(R ‖ A ‖ message) mod L and S reduced mod L, present when both A and R decompress; `expected`: `accept` or `refuse`; `reason`. The rule the verdicts follow: A must decompress and not be of small order (checked when the key is parsed), S < L, R must decompress and not be of small order, and the encoding of [S]B − [k]A must equal R's 32 bytes exactly (cofactorless; so a non-canonical R is refused) — ed25519-dalek verify_strict",
        "cases": cases,
    })
}

fn load() -> Value {
    serde_json::from_str(&std::fs::read_to_string(vectors_dir().join(FILE)).unwrap()).unwrap()
}

#[test]
#[ignore = "rewrites federation-spec/vectors/ed25519_strict.json"]
fn regenerate_ed25519_strict() {
    let mut text = serde_json::to_string_pretty(&compute()).unwrap();
    text.push('\n');
    std::fs::write(vectors_dir().join(FILE), text).unwrap();
}

#[test]
fn code_reproduces_ed25519_strict() {
    assert_eq!(load(), compute());
}

/// Runs this implementation's verification over every committed case and checks each verdict
/// against the rule the file states, from the committed flags.
#[test]
fn committed_ed25519_verdicts_hold() {
    let v = load();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), SPECCHECK.len() + 3);
    let (mut accepted, mut refused) = (0, 0);
    for c in cases {
        let hexf = |k: &str| hex::decode(c[k].as_str().unwrap()).unwrap();
        let public: [u8; 32] = hexf("public_key").try_into().unwrap();
        let sig: [u8; 64] = hexf("signature").try_into().unwrap();
        let (ok, _) = our_verdict(&public, &hexf("message"), &sig);
        let expected = c["expected"].as_str().unwrap() == "accept";
        assert_eq!(ok, expected, "{}", c["source"]);
        // The stated rule, from the flags alone.
        let f = &c["flags"];
        let good = |p: &Value| p["decompresses"] == json!(true) && p["small_order"] == json!(false);
        let rule = good(&f["A"])
            && good(&f["R"])
            && f["S_below_L"] == json!(true)
            && f["R"]["canonical"] == json!(true)
            && f["cofactorless_equation"] == json!(true);
        assert_eq!(rule, expected, "rule for {}", c["source"]);
        if expected {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    assert!(
        accepted >= 2 && refused >= 10,
        "{accepted} accepted, {refused} refused"
    );
}

/// Through the protocol's own verify: a signature over a transcript with S + L is refused,
/// the one with S is accepted.
#[test]
fn protocol_verify_refuses_unreduced_s() {
    let key = rendezvous_protocol::crypto::IdentityKey::from_seed(&[7; 32]);
    let sig = key.sign(
        rendezvous_protocol::crypto::transcript::LABEL_REGISTRATION,
        &[b"x"],
    );
    key.public()
        .verify(
            rendezvous_protocol::crypto::transcript::LABEL_REGISTRATION,
            &[b"x"],
            &sig,
        )
        .unwrap();
    let mut bad = sig.0;
    let s: [u8; 32] = bad[32..].try_into().unwrap();
    bad[32..].copy_from_slice(&add_le(&s, &L));
    assert!(
        key.public()
            .verify(
                rendezvous_protocol::crypto::transcript::LABEL_REGISTRATION,
                &[b"x"],
                &rendezvous_protocol::crypto::Signature(bad)
            )
            .is_err()
    );
}
