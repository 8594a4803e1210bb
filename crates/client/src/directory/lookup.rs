//! Accepting another user's Identity Key (`directory.md` §6.1): `GET
//! /v1/users/{user}/identity?known={held size}`, [`check_lookup`] against this device's view of
//! the user's server's directory, and the accepted binding kept per user.

use awc::http::Method;

use crate::http::encode_segment;
use crate::keystore::ContactRecord;
use crate::{Client, ClientError};
use rendezvous_protocol::api::{ErrorCode, IdentityResponse};
use rendezvous_protocol::crypto::sign::hex_string;
use rendezvous_protocol::directory::{
    Binding, Checked, DirectoryError, LookupCheck, LookupOutcome, check_lookup,
};
use rendezvous_protocol::ids::UserId;

/// How often a `directory_pending` lookup is asked again, and how long apart: long enough to
/// span a witness round of the default configuration (10 s, `directory.md` §5).
const PENDING_TRIES: usize = 12;
const PENDING_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// What a lookup may do with a key that differs from the accepted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Use the accepted binding (or follow a rotation); a changed key is refused.
    Use,
    /// `rdv contact accept`: take a changed key of an unverified contact.
    Accept,
    /// `rdv contact verify`: the key the directory binds now, for a code, without taking it.
    Show,
    /// `rdv contact verify --confirm`: take the key the directory binds now, verified.
    Confirm,
}

/// A rotation followed and not shown before (`identity_rotated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The contact.
    pub user: String,
    /// The IK rotated from (hex).
    pub from: String,
    /// The IK now (hex).
    pub to: String,
}

impl Client {
    /// Looks `user` up in its homeserver's directory and accepts the binding by the rules of
    /// `directory.md` §6.1; the view (and any evidence) is kept whatever the outcome. Returns
    /// the accepted binding.
    pub async fn lookup_identity(&mut self, user: &UserId) -> Result<Binding, ClientError> {
        self.lookup(user, Mode::Use).await
    }

    pub(crate) async fn lookup(
        &mut self,
        user: &UserId,
        mode: Mode,
    ) -> Result<Binding, ClientError> {
        let server = user.server();
        let view = self.directory_view(&server).await?;
        let held = view
            .latest()
            .map_or(0, |l| l.unverified_checkpoint().size.0);
        let path = format!(
            "/v1/users/{}/identity?known={held}",
            encode_segment(user.as_str())
        );
        let answer = self.identity_answer(&path).await?;
        self.check_answer(user, &answer, mode).await
    }

    /// `GET` of an identity path. A binding is served once a witness saw it (`directory.md`
    /// §4): a user registered moments ago is `directory_pending` for a witness round. Asked
    /// again a few times, then the error says to try again later.
    pub(crate) async fn identity_answer(
        &mut self,
        path: &str,
    ) -> Result<IdentityResponse, ClientError> {
        let mut tries = 0;
        loop {
            match self.authed(Method::GET, path, None).await {
                Err(e)
                    if e.code() == Some(ErrorCode::DirectoryPending) && tries < PENDING_TRIES =>
                {
                    tries += 1;
                    actix_rt::time::sleep(PENDING_WAIT).await;
                }
                other => return other,
            }
        }
    }

    /// The checks of a lookup's answer (`directory.md` §6.1) with this device's view, and
    /// what it keeps of them.
    pub(crate) async fn check_answer(
        &mut self,
        user: &UserId,
        answer: &IdentityResponse,
        mode: Mode,
    ) -> Result<Binding, ClientError> {
        let server = user.server();
        let mut view = self.directory_view(&server).await?;
        let (witnesses, witness_required) = self
            .directory_witnesses(&server, &answer.proof.checkpoint)
            .await?;
        let contact = self.keystore.contact(user)?;
        let accepted = contact.as_ref().map(|c| c.accepted.binding()).transpose()?;
        let check = LookupCheck {
            user,
            witnesses: &witnesses,
            witness_required,
            accepted: accepted.as_ref(),
            verified: contact.as_ref().is_some_and(ContactRecord::is_verified),
        };
        let result = check_lookup(&mut view, &answer.registration, &answer.proof, &check);
        // A key that changed passed every step before the comparison with the accepted one
        // (§6.1 step 6 comes last, after the rollback check): the same proof, checked as a
        // first sight, gives the binding the directory holds now.
        let changed = match &result {
            Err(DirectoryError::IdentityChanged { .. }) => {
                let first = LookupCheck {
                    accepted: None,
                    verified: false,
                    ..check.clone()
                };
                check_lookup(&mut view, &answer.registration, &answer.proof, &first)
                    .ok()
                    .map(|c| c.outcome.binding().clone())
            }
            _ => None,
        };
        self.save_directory_view(&server, &view)?;
        match result {
            Ok(checked) => self.accept_checked(user, contact, checked, mode),
            Err(e @ DirectoryError::IdentityChanged { .. }) => {
                let (Some(record), Some(binding)) = (contact, changed) else {
                    return Err(e.into());
                };
                self.changed_key(user, record, binding, mode, e)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Keeps the binding of a lookup that passed.
    fn accept_checked(
        &mut self,
        user: &UserId,
        contact: Option<ContactRecord>,
        checked: Checked,
        mode: Mode,
    ) -> Result<Binding, ClientError> {
        self.note_witnessed(&user.server(), &checked.witnessed_by)?;
        let binding = checked.outcome.binding().clone();
        let mut record = contact.unwrap_or_else(|| ContactRecord::new(&binding));
        if let LookupOutcome::Rotated { from, .. } = &checked.outcome {
            record.rotated_from = Some(hex_string(from.as_bytes()));
            record.rotation_unshown = true;
        }
        record.accept(&binding);
        if mode == Mode::Confirm {
            record.verified = Some(record.accepted.identity_key.clone());
        }
        self.keystore.save_contact(user, &record)?;
        if record.rotation_unshown {
            self.keystore.note_rotation_unshown(user)?;
        }
        Ok(binding)
    }

    /// A key that differs from the accepted one without a rotation it may follow: kept as
    /// `changed` and refused, unless the user accepts it (`rdv contact accept`, unverified
    /// contacts only) or confirms a new verification.
    fn changed_key(
        &mut self,
        user: &UserId,
        mut record: ContactRecord,
        binding: Binding,
        mode: Mode,
        refusal: DirectoryError,
    ) -> Result<Binding, ClientError> {
        match mode {
            Mode::Show => return Ok(binding),
            Mode::Confirm => {
                record.accept(&binding);
                record.rotated_from = None;
                record.verified = Some(record.accepted.identity_key.clone());
            }
            Mode::Accept if !record.is_verified() => {
                record.accept(&binding);
                record.rotated_from = None;
            }
            Mode::Accept | Mode::Use => {
                record.changed = Some(crate::keystore::StoredBinding::of(&binding));
                self.keystore.save_contact(user, &record)?;
                return Err(refusal.into());
            }
        }
        self.keystore.save_contact(user, &record)?;
        Ok(binding)
    }

    /// The rotations followed since they were last shown (each shown once).
    pub fn take_rotations(&self) -> Result<Vec<Rotation>, ClientError> {
        let mut out = Vec::new();
        // Only the contacts noted when their rotation was followed, not every contact file
        // after every command. The list is cleared after the loop, so an error in it leaves
        // the list; the notices already shown are not shown again (their records say so).
        let listed = self.keystore.rotations_unshown()?;
        for user in listed.iter().cloned() {
            let id: UserId = user
                .parse()
                .map_err(|e| ClientError::corrupt("rotations-unshown.json", format!("{e}")))?;
            let Some(mut record) = self.keystore.contact(&id)? else {
                continue;
            };
            if !record.rotation_unshown {
                continue;
            }
            record.rotation_unshown = false;
            self.keystore.save_contact(&id, &record)?;
            out.push(Rotation {
                user,
                from: record.rotated_from.clone().unwrap_or_default(),
                to: record.accepted.identity_key.clone(),
            });
        }
        self.keystore.clear_rotations_unshown(&listed)?;
        Ok(out)
    }
}
