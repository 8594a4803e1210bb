//! Contacts and verification codes (`directory.md` §7): the code of this user's binding and a
//! contact's accepted one ([`safety_code`]), the verified mark, and the list of contacts.

use super::lookup::Mode;
use crate::keystore::ContactRecord;
use crate::{Client, ClientError};
use rendezvous_protocol::crypto::IdentityPublicKey;
use rendezvous_protocol::directory::{qr_payload, safety_code, safety_fingerprint};
use rendezvous_protocol::ids::UserId;

/// A verification code to compare (`rdv contact verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyCode {
    /// The contact.
    pub user: UserId,
    /// The contact's IK the code is for (hex).
    pub identity_key: String,
    /// 60 digits in 12 groups of 5.
    pub code: String,
    /// The QR code's payload (`rdv-verify:1:…`).
    pub qr: String,
    /// Whether the contact is now marked verified for that key (`--confirm`).
    pub verified: bool,
}

/// One contact as `rdv contact list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The user id.
    pub user: String,
    /// The accepted IK's fingerprint (its user's half of a verification code, 30 digits).
    pub fingerprint: String,
    /// `unverified`, `verified`, `changed` or `rotated`.
    pub state: &'static str,
    /// The entry index the binding was accepted at.
    pub index: u64,
    /// The checkpoint size it was accepted at.
    pub size: u64,
    /// The key the directory binds now, refused until accepted or re-verified (hex), for a
    /// `changed` contact.
    pub changed_to: Option<String>,
}

impl Client {
    /// The verification code of this user and `contact` (looked up first, §6.1). With
    /// `confirm`, marks the contact verified for the key the code is for. A verified contact
    /// whose key changed gets the code of the new key, to compare before confirming it.
    pub async fn contact_code(
        &mut self,
        contact: &UserId,
        confirm: bool,
    ) -> Result<SafetyCode, ClientError> {
        if *contact == self.user {
            return Err(ClientError::InvalidInput(
                "a verification code is between you and another user".into(),
            ));
        }
        let mode = if confirm { Mode::Confirm } else { Mode::Show };
        let binding = self.lookup(contact, mode).await?;
        let code = self.code_with(contact, &binding.identity_key);
        Ok(SafetyCode {
            user: contact.clone(),
            identity_key: hex(&binding.identity_key),
            qr: qr_payload(&code),
            code,
            verified: confirm,
        })
    }

    /// The verification code of this user's IK and `contact`'s `key`.
    pub(crate) fn code_with(&self, contact: &UserId, key: &IdentityPublicKey) -> String {
        safety_code((&self.user, self.identity.public()), (contact, key))
    }

    /// Accepts the changed key of an unverified contact (`rdv contact accept`): looked up
    /// again, then taken as the contact's binding. A verified contact must be verified again
    /// instead (`identity_changed`).
    pub async fn accept_contact(&mut self, contact: &UserId) -> Result<Contact, ClientError> {
        self.lookup(contact, Mode::Accept).await?;
        let record = self
            .keystore
            .contact(contact)?
            .ok_or_else(|| ClientError::InvalidInput(format!("{contact} is not a contact")))?;
        contact_of(contact.as_str(), &record)
    }

    /// Every contact this device accepted a binding for, by server then user id.
    pub fn contacts(&self) -> Result<Vec<Contact>, ClientError> {
        let mut out = Vec::new();
        for server in self.keystore.directory_servers()? {
            for (user, record) in self.keystore.contacts(&server)? {
                out.push(contact_of(&user, &record)?);
            }
        }
        Ok(out)
    }
}

fn hex(key: &IdentityPublicKey) -> String {
    rendezvous_protocol::crypto::sign::hex_string(key.as_bytes())
}

fn contact_of(user: &str, record: &ContactRecord) -> Result<Contact, ClientError> {
    let id: UserId = user
        .parse()
        .map_err(|e| ClientError::corrupt("directory bindings", format!("{user}: {e}")))?;
    let binding = record.accepted.binding()?;
    Ok(Contact {
        user: user.to_owned(),
        fingerprint: group(&safety_fingerprint(&id, &binding.identity_key)),
        state: record.state().name(),
        index: binding.index,
        size: binding.size,
        changed_to: record.changed.as_ref().map(|c| c.identity_key.clone()),
    })
}

/// Digits in groups of 5.
fn group(digits: &str) -> String {
    digits
        .as_bytes()
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
