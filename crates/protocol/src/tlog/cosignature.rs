//! Witness cosignatures (c2sp.org/tlog-cosignature, Ed25519 `cosignature/v1`, signature type
//! `0x04`), and the cosignature lines of a [`SignedCheckpoint`].
//!
//! A cosignature line is `— <witness name> base64(key id ‖ u64 BE time ‖ Ed25519 signature)`,
//! the key id being `SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]`, and the signed message
//! `cosignature/v1\ntime <time>\n` followed by the whole checkpoint body. Like the log's own
//! signature, it is a raw Ed25519 signature whose format is its own domain separation (see
//! [`super::checkpoint`]).

use super::checkpoint::{
    Checkpoint, CheckpointError, MAX_SIGNATURES, MAX_TIME, NoteSignature, SIG_TYPE_COSIGNATURE,
    SIG_TYPE_ED25519, SignedCheckpoint, TIME_PREFIX, check_key_name, key_id,
};
use crate::crypto::sign::Signature;
use crate::crypto::{ServerKey, ServerPublicKey};

/// First line of a cosigned message (c2sp.org/tlog-cosignature).
const COSIGNATURE_HEADER: &str = "cosignature/v1\n";

/// A witness's statement that, at `time`, `checkpoint` is the largest consistent head it has
/// seen for the origin (c2sp.org/tlog-cosignature, Ed25519 `cosignature/v1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's key name.
    pub witness: String,
    /// Unix seconds at which the witness signed.
    pub time: u64,
    key_id: [u8; 4],
    signature: Signature,
}

impl Cosignature {
    /// Cosigns `checkpoint` at `time` with the witness's key under `witness` (its key name).
    pub fn sign(
        key: &ServerKey,
        witness: &str,
        checkpoint: &Checkpoint,
        time: u64,
    ) -> Result<Self, CheckpointError> {
        check_key_name(witness)?;
        if time > MAX_TIME {
            return Err(CheckpointError::InvalidTime);
        }
        Ok(Cosignature {
            witness: witness.to_owned(),
            time,
            key_id: key_id(witness, SIG_TYPE_COSIGNATURE, key.public()),
            signature: key.sign_raw(&cosigned_message(time, checkpoint)),
        })
    }

    /// Checks this cosignature over `checkpoint` with the witness's public key.
    pub fn verify(
        &self,
        key: &ServerPublicKey,
        checkpoint: &Checkpoint,
    ) -> Result<(), CheckpointError> {
        let bad = || CheckpointError::BadSignature {
            key_name: self.witness.clone(),
        };
        if self.key_id != key_id(&self.witness, SIG_TYPE_COSIGNATURE, key) || self.time > MAX_TIME {
            return Err(bad());
        }
        key.verify_raw(&cosigned_message(self.time, checkpoint), &self.signature)
            .map_err(|_| bad())
    }

    fn to_note_signature(&self) -> NoteSignature {
        let mut signature = Vec::with_capacity(72);
        signature.extend_from_slice(&self.time.to_be_bytes());
        signature.extend_from_slice(&self.signature.0);
        NoteSignature {
            name: self.witness.clone(),
            key_id: self.key_id,
            signature,
        }
    }
}

/// `cosignature/v1\ntime <t>\n` ‖ checkpoint body (c2sp.org/tlog-cosignature, "Ed25519 signed
/// message").
fn cosigned_message(time: u64, checkpoint: &Checkpoint) -> Vec<u8> {
    format!(
        "{COSIGNATURE_HEADER}{TIME_PREFIX}{time}\n{}",
        checkpoint.body()
    )
    .into_bytes()
}

impl SignedCheckpoint {
    /// Adds a cosignature line, replacing an earlier one by the same witness key.
    ///
    /// The cosignature must be over this checkpoint (checked by the caller with
    /// [`Cosignature::verify`]; this only appends the line).
    pub fn add_cosignature(&mut self, cosignature: &Cosignature) -> Result<(), CheckpointError> {
        let line = cosignature.to_note_signature();
        self.signatures
            .retain(|s| !(s.name == line.name && s.key_id == line.key_id));
        if self.signatures.len() >= MAX_SIGNATURES {
            return Err(CheckpointError::TooManySignatures {
                limit: MAX_SIGNATURES,
                got: self.signatures.len() + 1,
            });
        }
        self.signatures.push(line);
        if let Err(e) = self.check_size() {
            self.signatures.pop();
            return Err(e);
        }
        Ok(())
    }

    /// Adds the signature lines of `other` (the same checkpoint, e.g. cosigned by a witness)
    /// that this note lacks, so that a log serves its head together with its cosignatures.
    /// Nothing is verified here: callers add lines they verified when they received them.
    /// Lines beyond the note's limits are left out. Returns `false` (and adds nothing) when
    /// `other` is another checkpoint.
    pub fn merge_signatures(&mut self, other: &SignedCheckpoint) -> bool {
        if other.body() != self.body() {
            return false;
        }
        for line in &other.signatures {
            if self
                .signatures
                .iter()
                .any(|s| s.name == line.name && s.key_id == line.key_id)
                || self.signatures.len() >= MAX_SIGNATURES
            {
                continue;
            }
            self.signatures.push(line.clone());
            if self.check_size().is_err() {
                self.signatures.pop();
            }
        }
        true
    }

    /// This note with the lines of the signer `name` only (none verified here).
    pub fn lines_of(&self, name: &str) -> SignedCheckpoint {
        let mut kept = self.clone();
        kept.signatures.retain(|s| s.name == name);
        kept
    }

    /// The cosignature of the witness with `key` and `name`, verified against this checkpoint.
    pub fn cosignature(
        &self,
        key: &ServerPublicKey,
        name: &str,
    ) -> Result<Cosignature, CheckpointError> {
        let id = key_id(name, SIG_TYPE_COSIGNATURE, key);
        let mut result = Err(CheckpointError::MissingSignature {
            key_name: name.to_owned(),
        });
        // Every line of that name and key hash is tried: a garbage line added under a real
        // witness's name does not hide its real one (issue 9, attack 5).
        for line in self
            .signatures
            .iter()
            .filter(|s| s.name == name && s.key_id == id)
        {
            result = self.verify_cosignature_line(line, key);
            if result.is_ok() {
                break;
            }
        }
        result
    }

    fn verify_cosignature_line(
        &self,
        line: &NoteSignature,
        key: &ServerPublicKey,
    ) -> Result<Cosignature, CheckpointError> {
        let bad = || CheckpointError::BadSignature {
            key_name: line.name.clone(),
        };
        let (time, sig) = line.signature.split_first_chunk::<8>().ok_or_else(bad)?;
        let cosignature = Cosignature {
            witness: line.name.clone(),
            key_id: line.key_id,
            time: u64::from_be_bytes(*time),
            signature: Signature::from_slice(sig).map_err(|_| bad())?,
        };
        cosignature.verify(key, &self.checkpoint)?;
        Ok(cosignature)
    }

    /// This note with only the lines that verify: the log's own line(s) under `log` (its key
    /// and name) and the cosignature of `witness`. What a server keeps of a cosigned note it
    /// received: lines it did not verify are dropped before the note is stored or merged into
    /// served heads (`federation-spec/federation-api.md` §9.4).
    pub fn verified_only(
        &self,
        log: (&ServerPublicKey, &str),
        witness: (&ServerPublicKey, &str),
    ) -> Result<SignedCheckpoint, CheckpointError> {
        self.verify(log.0, log.1)?;
        let co = self.cosignature(witness.0, witness.1)?;
        let log_id = key_id(log.1, SIG_TYPE_ED25519, log.0);
        let mut kept = self.clone();
        kept.signatures
            .retain(|s| s.name == log.1 && s.key_id == log_id);
        kept.add_cosignature(&co)?;
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::{TreeSize, leaf_hash};

    fn checkpoint() -> Checkpoint {
        Checkpoint::new(
            "a.example/topic/0123456789abcdefghjkmnpqrs",
            TreeSize(42),
            leaf_hash(b"root"),
            1_795_000_000,
        )
        .unwrap()
    }

    /// A signature line under `name` with the key hash of `key` and garbage after it.
    fn garbage_line(name: &str, key: &ServerPublicKey) -> String {
        use base64::Engine;
        let mut raw = key_id(name, SIG_TYPE_COSIGNATURE, key).to_vec();
        raw.extend_from_slice(&[7u8; 72]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        format!("\u{2014} {name} {b64}\n")
    }

    #[test]
    fn injected_lines_are_dropped_and_cannot_hide_the_real_one() {
        let sk = ServerKey::generate();
        let b = ServerKey::generate();
        let mut note = SignedCheckpoint::sign(&checkpoint(), &sk, "a.example").unwrap();
        let real = Cosignature::sign(&b, "b.example", &checkpoint(), 9).unwrap();
        // The garbage line comes first, under b's name and key hash.
        let mut text = note.to_note().to_string();
        text.push_str(&garbage_line("b.example", b.public()));
        text.push_str(&garbage_line(
            "made-up.example",
            ServerKey::generate().public(),
        ));
        note = SignedCheckpoint::parse(text.as_bytes()).unwrap();
        assert!(matches!(
            note.cosignature(b.public(), "b.example"),
            Err(CheckpointError::BadSignature { .. })
        ));
        let mut line = SignedCheckpoint::sign(&checkpoint(), &sk, "a.example").unwrap();
        line.add_cosignature(&real).unwrap();
        let mut text = note.to_note().to_string();
        let real_line = line.to_note().to_string();
        let real_line = real_line.lines().last().unwrap();
        text.push_str(real_line);
        text.push('\n');
        let note = SignedCheckpoint::parse(text.as_bytes()).unwrap();
        assert_eq!(note.cosignature(b.public(), "b.example").unwrap(), real);
        let kept = note
            .verified_only((sk.public(), "a.example"), (b.public(), "b.example"))
            .unwrap();
        assert_eq!(kept.signer_names(), ["a.example", "b.example"]);
        assert_eq!(kept.to_note().matches('\u{2014}').count(), 2);
        kept.verify(sk.public(), "a.example").unwrap();
        assert_eq!(kept.cosignature(b.public(), "b.example").unwrap(), real);
        // Without a verifying line of the sender, nothing is kept.
        let other = ServerKey::generate();
        assert!(
            note.verified_only((sk.public(), "a.example"), (other.public(), "b.example"))
                .is_err()
        );
        assert!(
            note.verified_only((other.public(), "a.example"), (b.public(), "b.example"))
                .is_err()
        );
    }

    #[test]
    fn a_head_is_served_with_the_cosignatures_of_exactly_it() {
        let sk = ServerKey::generate();
        let (b, c) = (ServerKey::generate(), ServerKey::generate());
        let head = SignedCheckpoint::sign(&checkpoint(), &sk, "a.example").unwrap();
        let mut from_b = head.clone();
        from_b
            .add_cosignature(&Cosignature::sign(&b, "b.example", &checkpoint(), 1).unwrap())
            .unwrap();
        let mut from_c = head.clone();
        from_c
            .add_cosignature(&Cosignature::sign(&c, "c.example", &checkpoint(), 2).unwrap())
            .unwrap();
        let mut older = checkpoint();
        older.size = TreeSize(41);
        let mut of_older = SignedCheckpoint::sign(&older, &sk, "a.example").unwrap();
        of_older
            .add_cosignature(&Cosignature::sign(&c, "c.example", &older, 3).unwrap())
            .unwrap();

        let mut served = head.clone();
        assert!(served.merge_signatures(&from_b));
        assert!(served.merge_signatures(&from_c));
        assert!(served.merge_signatures(&from_b)); // no duplicate line
        assert!(!served.merge_signatures(&of_older));
        let served = SignedCheckpoint::parse(served.to_note().as_bytes()).unwrap();
        served.verify(sk.public(), "a.example").unwrap();
        served.cosignature(b.public(), "b.example").unwrap();
        let from_c = served.cosignature(c.public(), "c.example").unwrap();
        assert_eq!(
            from_c.time, 2,
            "the cosignature of this head, not of the older one"
        );
        assert_eq!(served.signer_names().len(), 3);
    }

    #[test]
    fn cosignatures() {
        let sk = ServerKey::generate();
        let witness = ServerKey::generate();
        let mut signed = SignedCheckpoint::sign(&checkpoint(), &sk, "a.example").unwrap();
        let co = Cosignature::sign(&witness, "b.example", &checkpoint(), 1_795_000_100).unwrap();
        co.verify(witness.public(), &checkpoint()).unwrap();
        assert!(co.verify(sk.public(), &checkpoint()).is_err());
        let mut other = checkpoint();
        other.size = TreeSize(43);
        assert!(co.verify(witness.public(), &other).is_err());

        signed.add_cosignature(&co).unwrap();
        signed.add_cosignature(&co).unwrap(); // replaces, does not duplicate
        let note = signed.to_note();
        assert_eq!(note.matches("\u{2014} b.example ").count(), 1);
        let parsed = SignedCheckpoint::parse(note.as_bytes()).unwrap();
        parsed.verify(sk.public(), "a.example").unwrap();
        assert_eq!(
            parsed.cosignature(witness.public(), "b.example").unwrap(),
            co
        );
        assert!(parsed.cosignature(sk.public(), "b.example").is_err());
        assert!(parsed.cosignature(witness.public(), "a.example").is_err());
        // The witness's line is not mistaken for a log signature, even under the log's name and key.
        let co_as_log = Cosignature::sign(&sk, "a.example", &checkpoint(), 5).unwrap();
        let mut both = SignedCheckpoint::sign(&checkpoint(), &sk, "a.example").unwrap();
        both.add_cosignature(&co_as_log).unwrap();
        let both = SignedCheckpoint::parse(both.to_note().as_bytes()).unwrap();
        both.verify(sk.public(), "a.example").unwrap();
        both.cosignature(sk.public(), "a.example").unwrap();
        // The cosigned message layout (c2sp.org/tlog-cosignature).
        let msg = cosigned_message(1_679_315_147, &checkpoint());
        assert!(msg.starts_with(b"cosignature/v1\ntime 1679315147\na.example/topic/"));
    }
}
