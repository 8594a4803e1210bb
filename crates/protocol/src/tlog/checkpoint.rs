//! Signed tree heads in the C2SP formats: [`Checkpoint`] (c2sp.org/tlog-checkpoint), signed by
//! the hosting server as a signed note (c2sp.org/signed-note, Ed25519, type `0x01`). Witness
//! cosignature lines (type `0x04`) are in [`super::cosignature`].
//!
//! A checkpoint note looks like this:
//!
//! ```text
//! a.example/topic/0123456789abcdefghjkmnpqrs
//! 42
//! 5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328 (base64, 32 bytes)
//! time 1795000000
//!
//! — a.example <base64(key id ‖ Ed25519 signature)>
//! — b.example <base64(key id ‖ u64 time ‖ Ed25519 signature)>
//! ```
//!
//! The fourth line is our one checkpoint extension line: `time <unix seconds>`, the time at
//! which the hosting server signed the head (ASCII decimal, no leading zeros). It is required,
//! and no other extension line is accepted. It lets a third party order two heads, which
//! [`super::evidence::Evidence::Rollback`] relies on.
//!
//! These signatures are raw Ed25519 over the note formats' own bytes, not over our
//! `rdv/v1/…\0` transcripts. The formats are their own domain separation: a note body starts
//! with an origin that cannot contain a zero byte (no control characters at all), and a
//! cosigned message starts with `cosignature/v1\n`; a transcript always contains a zero byte
//! right after its `rdv/v1/` label. So no signature made here can be replayed as one of ours,
//! nor the reverse.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::{LogHash, TreeSize};
use crate::crypto::sign::Signature;
use crate::crypto::{ServerKey, ServerPublicKey};

/// Largest signed note accepted, in bytes.
pub const MAX_NOTE_SIZE: usize = 4096;
/// Most signature lines accepted in one note (C2SP asks for at least 16).
pub const MAX_SIGNATURES: usize = 32;
/// Longest origin or key name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// Signature type of an Ed25519 note signature (c2sp.org/signed-note).
const SIG_TYPE_ED25519: u8 = 0x01;
/// Signature type of a timestamped Ed25519 cosignature (c2sp.org/tlog-cosignature).
pub(super) const SIG_TYPE_COSIGNATURE: u8 = 0x04;
/// Start of a signature line: em dash, space (c2sp.org/signed-note).
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// Our checkpoint extension line's keyword.
pub(super) const TIME_PREFIX: &str = "time ";
/// tlog-cosignature: timestamps must not exceed 2^63 - 1.
pub(super) const MAX_TIME: u64 = i64::MAX as u64;

/// Why a checkpoint, note or cosignature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The note is larger than [`MAX_NOTE_SIZE`].
    #[error("note too large: {got} bytes, limit {limit}")]
    TooLarge {
        /// The limit.
        limit: usize,
        /// The size given.
        got: usize,
    },
    /// The note has more than [`MAX_SIGNATURES`] signature lines.
    #[error("too many signature lines: {got}, limit {limit}")]
    TooManySignatures {
        /// The limit.
        limit: usize,
        /// The number given (or reached).
        got: usize,
    },
    /// The note is not UTF-8.
    #[error("note is not UTF-8")]
    NotUtf8,
    /// The note contains a control character other than newline (c2sp.org/signed-note).
    #[error("control character at byte {at}")]
    ControlCharacter {
        /// Byte offset.
        at: usize,
    },
    /// No blank line separates the text from the signatures, or there are no signatures.
    #[error("note has no signature block")]
    NoSignatureBlock,
    /// A signature line is malformed.
    #[error("malformed signature line {line}")]
    BadSignatureLine {
        /// 0-based index among the signature lines.
        line: usize,
    },
    /// An origin is empty, too long, or contains spaces or control characters.
    #[error("invalid origin")]
    InvalidOrigin,
    /// A key name is empty, too long, or contains spaces, control characters or `+`.
    #[error("invalid key name")]
    InvalidKeyName,
    /// The checkpoint body does not have exactly origin, size, root and time lines.
    #[error("checkpoint body must have {expected} lines, got {got}")]
    WrongLineCount {
        /// Lines required.
        expected: usize,
        /// Lines found.
        got: usize,
    },
    /// The size line is not a canonical decimal `u64`.
    #[error("invalid tree size line")]
    InvalidSize,
    /// The root line is not canonical base64 of 32 bytes.
    #[error("invalid root hash line")]
    InvalidRoot,
    /// The time line is not `time <canonical decimal ≤ 2^63-1>`.
    #[error("invalid time line")]
    InvalidTime,
    /// No signature line carries the expected key name and key id.
    #[error("no signature by key {key_name}")]
    MissingSignature {
        /// The key name looked for.
        key_name: String,
    },
    /// A signature by the expected key does not verify.
    #[error("signature by key {key_name} does not verify")]
    BadSignature {
        /// The key name whose signature failed.
        key_name: String,
    },
}

/// A tree head: the log's origin, size, root and the time it was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name, e.g. `a.example/topic/<26 chars>`: non-empty, no spaces or control
    /// characters.
    pub origin: String,
    /// Number of leaves.
    pub size: TreeSize,
    /// Root hash at that size.
    pub root: LogHash,
    /// Unix seconds at which the hosting server signed (our `time` extension line).
    pub time: u64,
}

impl Checkpoint {
    /// A checkpoint; checks the origin and the time range.
    pub fn new(
        origin: &str,
        size: TreeSize,
        root: LogHash,
        time: u64,
    ) -> Result<Self, CheckpointError> {
        check_origin(origin)?;
        if time > MAX_TIME {
            return Err(CheckpointError::InvalidTime);
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            time,
        })
    }

    /// The note text: `<origin>\n<size>\n<base64 root>\ntime <time>\n` (c2sp.org/tlog-checkpoint).
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n{TIME_PREFIX}{}\n",
            self.origin,
            self.size.0,
            STANDARD.encode(self.root.0),
            self.time
        )
    }

    /// Parses a checkpoint body strictly: exactly four lines, canonical numbers and base64.
    pub fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let text = body
            .strip_suffix('\n')
            .ok_or(CheckpointError::WrongLineCount {
                expected: 4,
                got: 0,
            })?;
        let lines: Vec<&str> = text.split('\n').collect();
        let [origin, size, root, time] = lines[..] else {
            return Err(CheckpointError::WrongLineCount {
                expected: 4,
                got: lines.len(),
            });
        };
        check_origin(origin)?;
        // c2sp.org/tlog-checkpoint: the size is ASCII decimal without leading zeros.
        let size = parse_decimal(size).ok_or(CheckpointError::InvalidSize)?;
        // c2sp.org/tlog-checkpoint: the root is standard base64 of the RFC 9162 root hash.
        let root_bytes = decode_base64(root).ok_or(CheckpointError::InvalidRoot)?;
        let root = LogHash::from_slice(&root_bytes).map_err(|_| CheckpointError::InvalidRoot)?;
        let time = time
            .strip_prefix(TIME_PREFIX)
            .and_then(parse_decimal)
            .filter(|t| *t <= MAX_TIME)
            .ok_or(CheckpointError::InvalidTime)?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size: TreeSize(size),
            root,
            time,
        })
    }
}

/// A checkpoint as a signed note, signed by the hosting server and possibly cosigned.
///
/// Parsing checks the format only; the checkpoint is to be believed only after
/// [`SignedCheckpoint::verify`] with the hosting server's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub(super) checkpoint: Checkpoint,
    body: String,
    pub(super) signatures: Vec<NoteSignature>,
}

/// One signature line: key name, key id and the signature bytes after the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NoteSignature {
    pub(super) name: String,
    pub(super) key_id: [u8; 4],
    pub(super) signature: Vec<u8>,
}

impl NoteSignature {
    fn line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.signature.len());
        raw.extend_from_slice(&self.key_id);
        raw.extend_from_slice(&self.signature);
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, STANDARD.encode(raw))
    }
}

impl SignedCheckpoint {
    /// Signs `checkpoint` with the hosting server's key under `key_name` (c2sp.org/signed-note,
    /// Ed25519: the signature covers the note text).
    pub fn sign(
        checkpoint: &Checkpoint,
        key: &ServerKey,
        key_name: &str,
    ) -> Result<Self, CheckpointError> {
        check_key_name(key_name)?;
        check_origin(&checkpoint.origin)?;
        let body = checkpoint.body();
        let signature = key.sign_raw(body.as_bytes());
        let signed = SignedCheckpoint {
            checkpoint: checkpoint.clone(),
            body,
            signatures: vec![NoteSignature {
                name: key_name.to_owned(),
                key_id: key_id(key_name, SIG_TYPE_ED25519, key.public()),
                signature: signature.0.to_vec(),
            }],
        };
        signed.check_size()?;
        Ok(signed)
    }

    /// Parses a signed checkpoint note (c2sp.org/signed-note), without verifying anything.
    pub fn parse(note: &[u8]) -> Result<Self, CheckpointError> {
        if note.len() > MAX_NOTE_SIZE {
            return Err(CheckpointError::TooLarge {
                limit: MAX_NOTE_SIZE,
                got: note.len(),
            });
        }
        let text = std::str::from_utf8(note).map_err(|_| CheckpointError::NotUtf8)?;
        // c2sp.org/signed-note: no ASCII control characters other than newline.
        if let Some(at) = text.bytes().position(|b| b < 0x20 && b != b'\n') {
            return Err(CheckpointError::ControlCharacter { at });
        }
        // c2sp.org/signed-note: the text is separated from the signatures by the last empty line.
        let split = text
            .rfind("\n\n")
            .ok_or(CheckpointError::NoSignatureBlock)?;
        let (body, sigs) = (&text[..split + 1], &text[split + 2..]);
        let sigs = sigs
            .strip_suffix('\n')
            .ok_or(CheckpointError::NoSignatureBlock)?;
        let lines: Vec<&str> = sigs.split('\n').collect();
        if lines.len() > MAX_SIGNATURES {
            return Err(CheckpointError::TooManySignatures {
                limit: MAX_SIGNATURES,
                got: lines.len(),
            });
        }
        let signatures = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                parse_signature_line(l).ok_or(CheckpointError::BadSignatureLine { line: i })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let checkpoint = Checkpoint::parse_body(body)?;
        Ok(SignedCheckpoint {
            checkpoint,
            body: body.to_owned(),
            signatures,
        })
    }

    /// The whole note: body, blank line, signature lines.
    pub fn to_note(&self) -> String {
        let mut note = String::with_capacity(self.body.len() + 1 + 120 * self.signatures.len());
        note.push_str(&self.body);
        note.push('\n');
        for s in &self.signatures {
            note.push_str(&s.line());
        }
        note
    }

    /// The note text that the signatures cover.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The key names of the note's signature lines, in order (the hosting server's and
    /// cosigners'), none of them verified.
    pub fn signer_names(&self) -> Vec<&str> {
        self.signatures.iter().map(|s| s.name.as_str()).collect()
    }

    /// The parsed checkpoint, *not yet verified*: use it only to route or to report, never to
    /// trust. [`Self::verify`] returns the same checkpoint once the signature checks out.
    pub fn unverified_checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Verifies the hosting server's signature (c2sp.org/signed-note): lines whose key name and
    /// key id both match `key`/`key_name` must all verify, and there must be at least one. Lines
    /// of other keys (cosignatures, unknown signers) are ignored.
    pub fn verify(
        &self,
        key: &ServerPublicKey,
        key_name: &str,
    ) -> Result<&Checkpoint, CheckpointError> {
        let id = key_id(key_name, SIG_TYPE_ED25519, key);
        let mut found = false;
        for s in self
            .signatures
            .iter()
            .filter(|s| s.name == key_name && s.key_id == id)
        {
            let bad = || CheckpointError::BadSignature {
                key_name: key_name.to_owned(),
            };
            let signature = Signature::from_slice(&s.signature).map_err(|_| bad())?;
            key.verify_raw(self.body.as_bytes(), &signature)
                .map_err(|_| bad())?;
            found = true;
        }
        if !found {
            return Err(CheckpointError::MissingSignature {
                key_name: key_name.to_owned(),
            });
        }
        Ok(&self.checkpoint)
    }

    pub(super) fn check_size(&self) -> Result<(), CheckpointError> {
        let len = self.to_note().len();
        if len > MAX_NOTE_SIZE {
            return Err(CheckpointError::TooLarge {
                limit: MAX_NOTE_SIZE,
                got: len,
            });
        }
        Ok(())
    }
}

/// `SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]` (c2sp.org/signed-note).
pub(super) fn key_id(name: &str, sig_type: u8, key: &ServerPublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', sig_type]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn parse_signature_line(line: &str) -> Option<NoteSignature> {
    let rest = line.strip_prefix(SIGNATURE_PREFIX)?;
    let (name, b64) = rest.split_once(' ')?;
    check_key_name(name).ok()?;
    let raw = decode_base64(b64)?;
    let (key_id, signature) = raw.split_first_chunk::<4>()?;
    if signature.is_empty() {
        return None;
    }
    Some(NoteSignature {
        name: name.to_owned(),
        key_id: *key_id,
        signature: signature.to_vec(),
    })
}

/// Checks an origin: non-empty, bounded, no whitespace or control characters.
pub fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    if !is_plain_name(origin) {
        return Err(CheckpointError::InvalidOrigin);
    }
    Ok(())
}

/// Checks a key name (c2sp.org/signed-note): non-empty, no Unicode spaces, no `+`.
pub(super) fn check_key_name(name: &str) -> Result<(), CheckpointError> {
    if !is_plain_name(name) || name.contains('+') {
        return Err(CheckpointError::InvalidKeyName);
    }
    Ok(())
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A canonical ASCII decimal: digits only, no sign, no leading zeros (except `0`), fits `u64`.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Standard base64 (RFC 4648 §4) that must be canonical: padded, no stray bits.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD.decode(s).ok()?;
    (STANDARD.encode(&bytes) == s).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let mut many = note.clone();
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
}
