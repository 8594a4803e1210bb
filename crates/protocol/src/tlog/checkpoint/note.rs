//! A checkpoint as a signed note (c2sp.org/signed-note): signing, strict parsing and
//! verification of the hosting server's signature line.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::{
    Checkpoint, CheckpointError, MAX_NOTE_SIZE, MAX_SIGNATURES, SIG_TYPE_ED25519, SIGNATURE_PREFIX,
    check_key_name, check_origin, decode_base64,
};
use crate::crypto::sign::Signature;
use crate::crypto::{ServerKey, ServerPublicKey};

/// The text of a signed checkpoint note as it travels in API bodies, federation events and
/// evidence (`federation-spec/tag-log.md` §3), possibly with cosignature lines.
///
/// There are two ways to get one: [`SignedCheckpoint::to_note`] (after signing or cosigning)
/// and [`CheckpointNote::parse`], which accepts exactly the texts that
/// [`SignedCheckpoint::parse`] accepts — decoding a body that carries one parses it too. Nothing
/// about it is verified: [`CheckpointNote::signed`] gives the parsed note, whose
/// [`SignedCheckpoint::verify`] checks the hosting server's signature.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CheckpointNote(String);

impl CheckpointNote {
    /// Checks that `text` is a well-formed signed checkpoint note (c2sp.org/signed-note).
    pub fn parse(text: impl Into<String>) -> Result<Self, CheckpointError> {
        let text = text.into();
        SignedCheckpoint::parse(text.as_bytes())?;
        Ok(CheckpointNote(text))
    }

    /// The parsed note (signatures not verified).
    pub fn signed(&self) -> Result<SignedCheckpoint, CheckpointError> {
        SignedCheckpoint::parse(self.0.as_bytes())
    }

    /// The note text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The note text, owned.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The note text's bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0.into_bytes()
    }
}

/// Reads as the note text wherever text is expected.
impl std::ops::Deref for CheckpointNote {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<CheckpointNote> for String {
    fn from(note: CheckpointNote) -> String {
        note.0
    }
}

impl std::str::FromStr for CheckpointNote {
    type Err = CheckpointError;

    fn from_str(s: &str) -> Result<Self, CheckpointError> {
        CheckpointNote::parse(s)
    }
}

impl std::fmt::Display for CheckpointNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for CheckpointNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointNote({:?})", self.0)
    }
}

impl AsRef<str> for CheckpointNote {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for CheckpointNote {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for CheckpointNote {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CheckpointNote::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A checkpoint as a signed note, signed by the hosting server and possibly cosigned.
///
/// Parsing checks the format only; the checkpoint is to be believed only after
/// [`SignedCheckpoint::verify`] with the hosting server's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub(in crate::tlog) checkpoint: Checkpoint,
    body: String,
    pub(in crate::tlog) signatures: Vec<NoteSignature>,
}

/// One signature line: key name, key id and the signature bytes after the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::tlog) struct NoteSignature {
    pub(in crate::tlog) name: String,
    pub(in crate::tlog) key_id: [u8; 4],
    pub(in crate::tlog) signature: Vec<u8>,
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
    pub fn to_note(&self) -> CheckpointNote {
        CheckpointNote(self.note_text())
    }

    /// The whole note as text (what [`Self::to_note`] wraps).
    fn note_text(&self) -> String {
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

    pub(in crate::tlog) fn check_size(&self) -> Result<(), CheckpointError> {
        let len = self.note_text().len();
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
pub(in crate::tlog) fn key_id(name: &str, sig_type: u8, key: &ServerPublicKey) -> [u8; 4] {
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
