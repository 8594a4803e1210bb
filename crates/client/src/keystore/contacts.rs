//! `directory/<server>/contacts/<id>`: one sealed file per user of `server` this device
//! accepted a binding for (`directory.md` §6.1, §7), `<id>` the first 16 bytes of
//! SHA-256(user id) in hex. One file each, so a lookup reads and writes one small file however
//! many contacts there are (one `bindings.json` for all of them made a roster check of a large
//! topic quadratic); sealed like the secrets (path as associated data), so that what the
//! device accepted and verified cannot be edited on disk unnoticed. A `bindings.json` of an
//! older keystore is moved into the files the first time the server's contacts are read.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Keystore;
use super::directory::ContactRecord;
use super::files::{list_dir, make_dir, read_optional};
use crate::ClientError;
use rendezvous_protocol::crypto::sign::hex_string;
use rendezvous_protocol::ids::{ServerName, UserId};

const CONTACTS: &str = "contacts";
/// The users whose followed rotation was not shown yet (`rotations-unshown.json`):
/// what every command reads after it ran, so that it need not read every contact file.
const UNSHOWN: &str = "rotations-unshown.json";
/// The one file of keystores from before per-contact files.
const OLD_BINDINGS: &str = "bindings.json";
/// Largest contact file read (a record with its earlier keys is far smaller).
const MAX_CONTACT_FILE: usize = 64 * 1024;

/// A contact file: the user id, since the file name is only its hash.
#[derive(Serialize, Deserialize)]
struct ContactFile {
    user: String,
    record: ContactRecord,
}

fn file_name(user: &str) -> String {
    let digest = Sha256::digest(user.as_bytes());
    hex_string(&digest[..16])
}

impl Keystore {
    fn contacts_dir(&self, server: &ServerName) -> PathBuf {
        self.directory_dir(server).join(CONTACTS)
    }

    fn read_contact_file(
        &self,
        path: &std::path::Path,
    ) -> Result<Option<ContactFile>, ClientError> {
        let Some(bytes) = self.read_secret(path)? else {
            return Ok(None);
        };
        if bytes.len() > MAX_CONTACT_FILE {
            return Err(ClientError::corrupt(path, "contact file too large"));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClientError::corrupt(path, e))
    }

    fn write_contact_file(
        &self,
        server: &ServerName,
        user: &str,
        record: &ContactRecord,
    ) -> Result<(), ClientError> {
        let dir = self.make_directory_dir(server)?.join(CONTACTS);
        make_dir(&dir)?;
        let path = dir.join(file_name(user));
        let file = ContactFile {
            user: user.to_owned(),
            record: record.clone(),
        };
        let json = serde_json::to_vec(&file).map_err(|e| ClientError::corrupt(&path, e))?;
        self.write_secret(&path, &json)
    }

    /// Moves an older keystore's `bindings.json` of `server` into contact files.
    fn migrate_bindings(&self, server: &ServerName) -> Result<(), ClientError> {
        let path = self.directory_dir(server).join(OLD_BINDINGS);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(());
        };
        let all: BTreeMap<String, ContactRecord> =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::corrupt(&path, e))?;
        for (user, record) in &all {
            self.write_contact_file(server, user, record)?;
        }
        std::fs::remove_file(&path).map_err(|e| ClientError::io(&path, e))
    }

    /// Every contact of `server` this device accepted a binding for, by user id.
    pub fn contacts(
        &self,
        server: &ServerName,
    ) -> Result<BTreeMap<String, ContactRecord>, ClientError> {
        self.migrate_bindings(server)?;
        let dir = self.contacts_dir(server);
        let mut out = BTreeMap::new();
        for name in list_dir(&dir)? {
            let path = dir.join(&name);
            if let Some(file) = self.read_contact_file(&path)? {
                if file_name(&file.user) != name {
                    return Err(ClientError::corrupt(&path, "names another user"));
                }
                out.insert(file.user, file.record);
            }
        }
        Ok(out)
    }

    /// The contact record of `user`, if a binding was accepted for it.
    pub fn contact(&self, user: &UserId) -> Result<Option<ContactRecord>, ClientError> {
        let server = user.server();
        self.migrate_bindings(&server)?;
        let path = self.contacts_dir(&server).join(file_name(user.as_str()));
        match self.read_contact_file(&path)? {
            Some(file) if file.user == user.as_str() => Ok(Some(file.record)),
            Some(_) => Err(ClientError::corrupt(&path, "names another user")),
            None => Ok(None),
        }
    }

    /// Stores the contact record of `user`.
    pub fn save_contact(&self, user: &UserId, record: &ContactRecord) -> Result<(), ClientError> {
        let server = user.server();
        self.migrate_bindings(&server)?;
        self.write_contact_file(&server, user.as_str(), record)
    }

    /// Notes that `user`'s followed rotation is to be shown (once).
    pub fn note_rotation_unshown(&self, user: &UserId) -> Result<(), ClientError> {
        let mut users = self.rotations_unshown()?;
        if !users.iter().any(|u| u == user.as_str()) {
            users.push(user.to_string());
        }
        self.write_unshown(&users)
    }

    /// Forgets `handled` of the users [`Self::rotations_unshown`] named, once each of their
    /// contact records says the rotation was shown (so a failure in between loses no notice,
    /// and a rotation noted meanwhile stays listed).
    pub fn clear_rotations_unshown(&self, handled: &[String]) -> Result<(), ClientError> {
        let listed = self.rotations_unshown()?;
        if handled.is_empty() || listed.is_empty() {
            return Ok(());
        }
        let left: Vec<String> = listed
            .into_iter()
            .filter(|u| !handled.contains(u))
            .collect();
        self.write_unshown(&left)
    }

    /// The users whose followed rotation is still to be shown.
    pub fn rotations_unshown(&self) -> Result<Vec<String>, ClientError> {
        let path = self.dir.join(UNSHOWN);
        match read_optional(&path)? {
            Some(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| ClientError::corrupt(&path, e))
            }
            None => Ok(Vec::new()),
        }
    }

    fn write_unshown(&self, users: &[String]) -> Result<(), ClientError> {
        // Beside `directory/`, not in it: every folder there is a server's.
        let path = self.dir.join(UNSHOWN);
        let json = serde_json::to_vec(users).map_err(|e| ClientError::corrupt(&path, e))?;
        super::files::write_atomic(&path, &json)
    }
}
