//! The keystore at rest (`federation-spec/devices.md` §5.5): the passphrase, the key derived
//! from it with argon2id under the parameters of the header file `keystore.json`, the random file
//! key the header keeps sealed under it, and the XChaCha20-Poly1305 sealing of every secret file
//! with the file key, bound to the file's path in the keystore. Changing the passphrase rewrites
//! the header alone.
//!
//! A sealed file is `MAGIC ‖ FORMAT ‖ nonce (24 bytes) ‖ ciphertext ‖ tag (16 bytes)`, with
//! additional data `MAGIC ‖ FORMAT ‖ path` (the file's path relative to the keystore root,
//! `/`-separated): a file renamed, moved or swapped with another does not decrypt.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use rendezvous_protocol::crypto::random_array;
use rendezvous_protocol::crypto::sign::hex_string;

use crate::ClientError;
use crate::tls::decode_hex;

/// The header file's name: not secret, read before anything else.
pub(super) const HEADER: &str = "keystore.json";
/// The first bytes of every sealed file.
const MAGIC: &[u8; 4] = b"RDVK";
/// The format version of the header and of the sealed files.
pub const FORMAT: u8 = 1;
/// The KDF's name in the header.
const KDF: &str = "argon2id";
/// argon2id defaults: OWASP's recommendation (m = 19 MiB, t = 2, p = 1; devices.md §5.5).
pub const M_COST_KIB: u32 = 19 * 1024;
/// Passes.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;
/// Largest parameters a header may ask for (1 GiB, 16 passes, 8 lanes): a changed header must
/// not make an open allocate or compute without end.
const MAX_M_COST_KIB: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 8;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Largest header file read.
pub(super) const MAX_HEADER: usize = 4096;

/// The passphrase that unlocks a keystore. Zeroized on drop (every copy), never printed.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase (taken as given: no trimming).
    pub fn new(passphrase: impl Into<String>) -> Passphrase {
        Passphrase(Zeroizing::new(passphrase.into()))
    }

    /// Whether it is empty (refused when a keystore is created).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(***)")
    }
}

/// `keystore.json`: the KDF and its parameters, the salt and the sealed file key. Not secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderFile {
    version: u8,
    kdf: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    /// 16 bytes, hex.
    salt: String,
    /// The file key sealed under the passphrase's key (nonce ‖ ciphertext ‖ tag, hex; path
    /// `keystore.json`): also the key check, as it opens only with the right passphrase.
    key: String,
}

/// Only the version, read first.
#[derive(Deserialize)]
struct VersionOnly {
    version: u8,
}

/// A parsed, bounded header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Header {
    params: (u32, u32, u32),
    salt: [u8; SALT_LEN],
    wrapped: Vec<u8>,
}

impl Header {
    /// Parses `keystore.json`: the version first, then every field, each checked; an error says
    /// what is wrong (the caller names the file).
    pub(super) fn parse(bytes: &[u8]) -> Result<Header, String> {
        if bytes.len() > MAX_HEADER {
            return Err(format!("{} bytes, more than {MAX_HEADER}", bytes.len()));
        }
        let version: VersionOnly =
            serde_json::from_slice(bytes).map_err(|e| format!("not a keystore header: {e}"))?;
        if version.version != FORMAT {
            return Err(format!(
                "format version {}, expected {FORMAT} (written by another rdv?)",
                version.version
            ));
        }
        let file: HeaderFile =
            serde_json::from_slice(bytes).map_err(|e| format!("not a keystore header: {e}"))?;
        if file.kdf != KDF {
            return Err(format!("KDF {:?}, expected {KDF:?}", file.kdf));
        }
        if file.m_cost_kib > MAX_M_COST_KIB || file.t_cost > MAX_T_COST || file.p_cost > MAX_P_COST
        {
            return Err(format!(
                "argon2id parameters m={} KiB, t={}, p={} beyond the largest accepted (m={MAX_M_COST_KIB}, t={MAX_T_COST}, p={MAX_P_COST})",
                file.m_cost_kib, file.t_cost, file.p_cost
            ));
        }
        params(file.m_cost_kib, file.t_cost, file.p_cost)?;
        let salt = decode_hex(&file.salt)
            .and_then(|s| <[u8; SALT_LEN]>::try_from(s.as_slice()).ok())
            .ok_or_else(|| format!("salt is not {SALT_LEN} bytes of hex"))?;
        let wrapped = decode_hex(&file.key)
            .filter(|c| c.len() == NONCE_LEN + 32 + TAG_LEN)
            .ok_or_else(|| "key is not a sealed 32-byte key in hex".to_owned())?;
        Ok(Header {
            params: (file.m_cost_kib, file.t_cost, file.p_cost),
            salt,
            wrapped,
        })
    }

    fn to_json(&self) -> Result<Vec<u8>, String> {
        let (m_cost_kib, t_cost, p_cost) = self.params;
        let file = HeaderFile {
            version: FORMAT,
            kdf: KDF.to_owned(),
            m_cost_kib,
            t_cost,
            p_cost,
            salt: hex_string(&self.salt),
            key: hex_string(&self.wrapped),
        };
        serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())
    }
}

fn params(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Params, String> {
    Params::new(m_cost_kib, t_cost, p_cost, Some(32))
        .map_err(|e| format!("argon2id parameters m={m_cost_kib} KiB, t={t_cost}, p={p_cost}: {e}"))
}

/// Why a sealed file did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum OpenError {
    /// Too short, or not starting with the magic.
    #[error("not an encrypted keystore file")]
    NotSealed,
    /// Another format version.
    #[error("encrypted in format version {got}, expected {expected}")]
    Version {
        /// [`FORMAT`].
        expected: u8,
        /// What the file says.
        got: u8,
    },
    /// The tag does not verify under this key and path.
    #[error(
        "does not decrypt: it was changed, or moved here from another name or another keystore"
    )]
    Inauthentic,
}

/// An XChaCha20-Poly1305 key: the file key every secret file is sealed with (random, made with
/// the keystore), or the key derived from the passphrase that seals the file key in the header.
/// Zeroized on drop.
pub(super) struct FileKey(Zeroizing<[u8; 32]>);

impl FileKey {
    /// A new file key and its header (fresh salt, the default parameters), for a new keystore.
    pub(super) fn create(passphrase: &Passphrase) -> Result<(Header, Vec<u8>, FileKey), String> {
        let key = FileKey(Zeroizing::new(random_array::<32>()));
        let (header, json) = key.header(passphrase)?;
        Ok((header, json, key))
    }

    /// A new header that keeps this file key under `passphrase` (a fresh salt, the default
    /// parameters): what changing the passphrase writes.
    pub(super) fn header(&self, passphrase: &Passphrase) -> Result<(Header, Vec<u8>), String> {
        let salt = random_array::<SALT_LEN>();
        let params = (M_COST_KIB, T_COST, P_COST);
        let wrapping = FileKey::derive(passphrase, params, &salt)?;
        let wrapped = wrapping.seal(HEADER, &self.0[..])?;
        let header = Header {
            params,
            salt,
            wrapped,
        };
        let json = header.to_json()?;
        Ok((header, json))
    }

    /// The file key of an existing header; `None` when the passphrase is not the one it was
    /// sealed with (the sealed key does not open).
    pub(super) fn unlock(
        header: &Header,
        passphrase: &Passphrase,
    ) -> Result<Option<FileKey>, String> {
        let wrapping = FileKey::derive(passphrase, header.params, &header.salt)?;
        let Ok(key) = wrapping.open(HEADER, &header.wrapped) else {
            return Ok(None);
        };
        let key = <[u8; 32]>::try_from(key.as_slice())
            .map_err(|_| "the sealed key is not 32 bytes".to_owned())?;
        Ok(Some(FileKey(Zeroizing::new(key))))
    }

    fn derive(
        passphrase: &Passphrase,
        (m, t, p): (u32, u32, u32),
        salt: &[u8; SALT_LEN],
    ) -> Result<FileKey, String> {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params(m, t, p)?);
        let mut key = Zeroizing::new([0u8; 32]);
        argon2
            .hash_password_into(passphrase.as_bytes(), salt, &mut key[..])
            .map_err(|e| format!("argon2id: {e}"))?;
        Ok(FileKey(key))
    }

    fn cipher(&self) -> Result<XChaCha20Poly1305, String> {
        XChaCha20Poly1305::new_from_slice(&self.0[..]).map_err(|e| e.to_string())
    }

    /// `plaintext` sealed for the file at `path` (relative to the keystore root): the header
    /// fields (for a data file) are added by [`Self::seal_file`].
    fn seal(&self, path: &str, plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let nonce = random_array::<NONCE_LEN>();
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher()?
            .encrypt_inout_detached(
                &XNonce::from(nonce),
                &aad(path),
                (&mut out[NONCE_LEN..]).into(),
            )
            .map_err(|_| "plaintext too long to encrypt".to_owned())?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens `nonce ‖ ciphertext ‖ tag` sealed for `path`.
    fn open(&self, path: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError::NotSealed);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| OpenError::NotSealed)?;
        let tag = <[u8; TAG_LEN]>::try_from(tag).map_err(|_| OpenError::NotSealed)?;
        let mut plain = Zeroizing::new(ciphertext.to_vec());
        self.cipher()
            .map_err(|_| OpenError::Inauthentic)?
            .decrypt_inout_detached(
                &XNonce::from(nonce),
                &aad(path),
                plain.as_mut_slice().into(),
                &tag.into(),
            )
            .map_err(|_| OpenError::Inauthentic)?;
        Ok(plain)
    }

    /// A secret file's bytes: `MAGIC ‖ FORMAT ‖ nonce ‖ ciphertext ‖ tag`.
    pub(super) fn seal_file(&self, path: &str, plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let sealed = self.seal(path, plaintext)?;
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + sealed.len());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a secret file's bytes read from `path`.
    pub(super) fn open_file(
        &self,
        path: &str,
        bytes: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
            return Err(OpenError::NotSealed);
        };
        let Some((&version, sealed)) = rest.split_first() else {
            return Err(OpenError::NotSealed);
        };
        if version != FORMAT {
            return Err(OpenError::Version {
                expected: FORMAT,
                got: version,
            });
        }
        self.open(path, sealed)
    }
}

/// The additional data of a file at `path`: `MAGIC ‖ FORMAT ‖ path`.
fn aad(path: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(MAGIC.len() + 1 + path.len());
    aad.extend_from_slice(MAGIC);
    aad.push(FORMAT);
    aad.extend_from_slice(path.as_bytes());
    aad
}

/// Turns `Err(String)` from this module into a keystore error on `path`.
pub(super) fn on(path: &std::path::Path) -> impl Fn(String) -> ClientError + '_ {
    move |reason| ClientError::corrupt(path, reason)
}

#[cfg(test)]
mod tests;
