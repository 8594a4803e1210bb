//! Verification codes (`directory.md` §7), computed as Signal's safety numbers: an iterated
//! hash of each user's id and Identity Key, 30 digits each, the two sorted and joined.

use sha2::{Digest, Sha512};

use crate::crypto::IdentityPublicKey;
use crate::crypto::transcript::{LABEL_SAFETY_NUMBER, transcript};
use crate::ids::UserId;

/// Hash iterations per fingerprint.
pub const ITERATIONS: usize = 5200;

/// The 30-digit fingerprint of one user's binding.
pub fn safety_fingerprint(user: &UserId, key: &IdentityPublicKey) -> String {
    let mut h = Sha512::digest(transcript(
        LABEL_SAFETY_NUMBER,
        &[
            &0u16.to_be_bytes(),
            key.as_bytes(),
            user.as_str().as_bytes(),
        ],
    ));
    for _ in 0..ITERATIONS {
        let mut next = Sha512::new();
        next.update(h);
        next.update(key.as_bytes());
        h = next.finalize();
    }
    let mut digits = String::with_capacity(30);
    for group in h[..30].chunks_exact(5) {
        let mut n = 0u64;
        for b in group {
            n = (n << 8) | u64::from(*b);
        }
        digits.push_str(&format!("{:05}", n % 100_000));
    }
    digits
}

/// The 60-digit verification code of two bindings, the same whichever side computes it,
/// in 12 groups of 5 digits separated by spaces.
pub fn safety_code(a: (&UserId, &IdentityPublicKey), b: (&UserId, &IdentityPublicKey)) -> String {
    let mut parts = [safety_fingerprint(a.0, a.1), safety_fingerprint(b.0, b.1)];
    parts.sort();
    let joined = parts.concat();
    let groups: Vec<&str> = (0..12).map(|i| &joined[i * 5..i * 5 + 5]).collect();
    groups.join(" ")
}

/// The QR code's payload for a verification code (`directory.md` §7).
pub fn qr_payload(code: &str) -> String {
    format!("rdv-verify:1:{}", code.replace(' ', ""))
}
