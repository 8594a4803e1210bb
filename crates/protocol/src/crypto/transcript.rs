//! Signature and MAC inputs (`federation-spec/protocol.md` §4, "Signature inputs").
//!
//! Every signature and every MAC in Rendezvous is computed over
//!
//! ```text
//! label ‖ 0x00 ‖ len(part_1) ‖ part_1 ‖ … ‖ len(part_n) ‖ part_n      (len: u32 big-endian)
//! ```
//!
//! where `label` is one of the constants below. The zero byte ends the label (no label contains
//! one), and the length prefixes make the split into parts unambiguous, so no input signed for one
//! purpose can be read as an input for another. Signatures cover exact bytes, never re-encoded
//! structures. This module is the only place that builds these inputs.

/// Identity-key self-signature on a registration.
pub const LABEL_REGISTRATION: &str = "rdv/v1/registration";
/// Device certificate: IK signs a device's public key.
pub const LABEL_DEVICE_CERT: &str = "rdv/v1/device-cert";
/// Device revocation: IK signs the removal of a device.
pub const LABEL_DEVICE_REVOCATION: &str = "rdv/v1/device-revocation";
/// Device endorsement: an active device's DK vouches for a new Device Key
/// (`federation-spec/devices.md` §2).
pub const LABEL_DEVICE_ENDORSEMENT: &str = "rdv/v1/device-endorsement";
/// Device pre key: DK signs a one-time HPKE public key.
pub const LABEL_PREKEY: &str = "rdv/v1/prekey";
/// Topic key certificate: IK signs a topic key's public halves.
pub const LABEL_TOPIC_KEY_CERT: &str = "rdv/v1/topic-key-cert";
/// Topic change: the admin's TK signs a membership change.
pub const LABEL_TOPIC_CHANGE: &str = "rdv/v1/topic-change";
/// Message signature by the sender's TK.
pub const LABEL_MESSAGE: &str = "rdv/v1/message";
/// Message tag (HMAC-SHA256 with the epoch's tag key).
pub const LABEL_MESSAGE_TAG: &str = "rdv/v1/message-tag";
/// HKDF info for the per-epoch message keys.
pub const LABEL_EPOCH_KEYS: &str = "rdv/v1/epoch-keys";
/// Key check value that commits a change to the epoch's message key.
pub const LABEL_EPOCH_KEY_CHECK: &str = "rdv/v1/epoch-key-check";
/// Key identifiers.
pub const LABEL_KEY_ID: &str = "rdv/v1/key-id";
/// HPKE `info` prefix of a sealed box; the purpose follows as the first part.
pub const LABEL_SEAL: &str = "rdv/v1/seal";
/// Link-code proof that a joining device knows the code.
pub const LABEL_LINK_PROOF: &str = "rdv/v1/link-proof";
/// HPKE PSK derived from a link code.
pub const LABEL_LINK_PSK: &str = "rdv/v1/link-psk";
/// HKDF info for the HMAC key of the link-code proof (the proof itself uses [`LABEL_LINK_PROOF`]).
pub const LABEL_LINK_PROOF_KEY: &str = "rdv/v1/link-proof-key";
/// Device login challenge response.
pub const LABEL_DEVICE_LOGIN: &str = "rdv/v1/device-login";
/// Server key document, signed by the server's newest key.
pub const LABEL_SERVER_KEYS: &str = "rdv/v1/server-keys";
/// Rotation of a Server Key, signed by the old and the new key (`tag-log.md` §7.6).
pub const LABEL_KEY_ROTATION: &str = "rdv/v1/key-rotation";
/// Federation event signed by a server key.
pub const LABEL_FEDERATION_EVENT: &str = "rdv/v1/federation-event";
/// Identity rotation signed by the old and the new Identity Key (`directory.md` §8).
pub const LABEL_IDENTITY_ROTATION: &str = "rdv/v1/identity-rotation";
/// Start of a verification-code fingerprint (`directory.md` §7).
pub const LABEL_SAFETY_NUMBER: &str = "rdv/v1/safety-number";

/// Builds `label ‖ 0x00 ‖ (u32be len ‖ part)*`.
pub fn transcript(label: &str, parts: &[&[u8]]) -> Vec<u8> {
    let len = label.len() + 1 + parts.iter().map(|p| 4 + p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    feed(label, parts, |chunk| out.extend_from_slice(chunk));
    out
}

/// Feeds the same bytes as [`transcript`] to `sink` piece by piece, without building them
/// (for MACs and hashes over large ciphertexts).
pub fn feed(label: &str, parts: &[&[u8]], mut sink: impl FnMut(&[u8])) {
    debug_assert!(!label.as_bytes().contains(&0));
    sink(label.as_bytes());
    sink(&[0]);
    for part in parts {
        // A part longer than 4 GiB never reaches here: every decoded item is size-limited far below.
        let n = u32::try_from(part.len()).unwrap_or(u32::MAX);
        sink(&n.to_be_bytes());
        sink(part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_unambiguous() {
        let a = transcript(LABEL_MESSAGE, &[b"ab", b"c"]);
        let b = transcript(LABEL_MESSAGE, &[b"a", b"bc"]);
        assert_ne!(a, b);
        assert_eq!(a, b"rdv/v1/message\0\0\0\0\x02ab\0\0\0\x01c");
    }

    #[test]
    fn feed_matches_transcript() {
        let mut fed = Vec::new();
        feed(LABEL_MESSAGE_TAG, &[b"topic", b"", b"xyz"], |c| {
            fed.extend_from_slice(c)
        });
        assert_eq!(fed, transcript(LABEL_MESSAGE_TAG, &[b"topic", b"", b"xyz"]));
    }

    #[test]
    fn labels_separate_domains() {
        assert_ne!(
            transcript(LABEL_MESSAGE, &[b"x"]),
            transcript(LABEL_MESSAGE_TAG, &[b"x"])
        );
    }
}
