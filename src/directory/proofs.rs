//! What the directory answers (`directory.md` §4, §5.1): a local user's identity with its
//! directory proof, pages of entries, and consistency and inclusion proofs.

use rendezvous_protocol::api::IdentityResponse;
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::directory::{DirectoryProof, MAX_ENTRIES_PAGE, MAX_ENTRIES_PAGE_BYTES};
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::tlog::{LeafIndex, LogHash, TreeSize};

use super::{DirectoryLog, DirectoryResult, DirectoryServeError, internal};

impl DirectoryLog {
    /// `GET …/users/{user}/identity?known=m` for a local user (§4): the registration and the
    /// user's last entry below the served checkpoint's size, with its inclusion proof and the
    /// consistency proof from `known`. A user whose entry is not in it yet is
    /// [`DirectoryServeError::Pending`] (`retry_after`: the witness round).
    pub async fn identity(
        &self,
        key: &ServerKey,
        now: u64,
        user: &UserId,
        known: u64,
        retry_after: u64,
    ) -> DirectoryResult<IdentityResponse> {
        let record = self
            .store()
            .user(user)?
            .filter(|r| !r.disabled)
            .ok_or_else(|| DirectoryServeError::NoSuchUser(user.clone()))?;
        let (served, _) = self.served(key, now).await?;
        let size = served.unverified_checkpoint().size.0;
        if known > size {
            return Err(DirectoryServeError::Rollback { known, size });
        }
        let Some(index) = self.store().directory_user_entry(user, size)? else {
            return Err(DirectoryServeError::Pending {
                user: user.clone(),
                retry_after,
            });
        };
        let entry = self
            .store()
            .directory_entry(index)?
            .ok_or_else(|| internal(format!("entry {index} is missing")))?;
        // directory.md §8: the user has a newer entry (a rotation) than the served checkpoint
        // holds; the stored registration is already the rotated-to one, so the answer waits
        // like a new user's until a witness cosigned a checkpoint with it. Only a newer entry
        // counts: a registration that disagrees with the user's latest entry is served as it
        // is, for the client (or relay) to catch (directory.md §6.1).
        if self.store().directory_user_entry(user, u64::MAX)? != Some(index) {
            return Err(DirectoryServeError::Pending {
                user: user.clone(),
                retry_after,
            });
        }
        let tree = self.tree()?;
        let inclusion = tree
            .inclusion_proof(LeafIndex(index), TreeSize(size))
            .map_err(internal)?
            .path;
        let consistency = self.consistency_path(known, size)?;
        Ok(IdentityResponse {
            registration: record.registration,
            proof: DirectoryProof {
                entry,
                index,
                checkpoint: served.to_note().to_string(),
                inclusion,
                consistency,
            },
        })
    }

    /// The consistency proof between sizes `old ≤ new` of the log (empty when `old` is 0 or
    /// `new`), `new` at most the newest checkpoint's size (checked by the caller).
    fn consistency_path(&self, old: u64, new: u64) -> DirectoryResult<Vec<LogHash>> {
        if old == 0 || old == new {
            return Ok(Vec::new());
        }
        Ok(self
            .tree()?
            .consistency_proof(TreeSize(old), TreeSize(new))
            .map_err(internal)?
            .path)
    }

    /// `GET …/directory/consistency?old&new` (§4, §5.1): `old ≤ new ≤` the newest checkpoint's
    /// size.
    pub async fn consistency(
        &self,
        key: &ServerKey,
        now: u64,
        old: u64,
        new: u64,
    ) -> DirectoryResult<Vec<LogHash>> {
        let size = self.newest(key, now).await?.unverified_checkpoint().size.0;
        if old > new || new > size {
            return Err(DirectoryServeError::OutOfRange {
                rule: "need old <= new <= the newest checkpoint's size",
                asked: format!("old {old} and new {new}"),
                size,
            });
        }
        self.consistency_path(old, new)
    }

    /// `GET /v1/directory/proof?index&size` (§4): `index < size ≤` the newest checkpoint's
    /// size.
    pub async fn inclusion(
        &self,
        key: &ServerKey,
        now: u64,
        index: u64,
        size: u64,
    ) -> DirectoryResult<Vec<LogHash>> {
        let newest = self.newest(key, now).await?.unverified_checkpoint().size.0;
        if index >= size || size > newest {
            return Err(DirectoryServeError::OutOfRange {
                rule: "need index < size <= the newest checkpoint's size",
                asked: format!("index {index} of size {size}"),
                size: newest,
            });
        }
        Ok(self
            .tree()?
            .inclusion_proof(LeafIndex(index), TreeSize(size))
            .map_err(internal)?
            .path)
    }

    /// `GET /v1/directory/entries?from&limit` (§4): at most `limit` (1 to 1000, default
    /// 1000) entries from `from`, at most 1 MiB, below the newest checkpoint's size.
    pub async fn entries(
        &self,
        key: &ServerKey,
        now: u64,
        from: u64,
        limit: Option<u64>,
    ) -> DirectoryResult<Vec<Vec<u8>>> {
        let page = MAX_ENTRIES_PAGE as u64;
        let limit = limit.unwrap_or(page);
        if !(1..=page).contains(&limit) {
            return Err(DirectoryServeError::OutOfRange {
                rule: "need 1 <= limit <= 1000",
                asked: format!("limit {limit}"),
                size: 0,
            });
        }
        let size = self.newest(key, now).await?.unverified_checkpoint().size.0;
        if from >= size {
            return Err(DirectoryServeError::BeyondLog { from, size });
        }
        Ok(self.store().directory_entries(
            from,
            size,
            usize::try_from(limit).unwrap_or(MAX_ENTRIES_PAGE),
            MAX_ENTRIES_PAGE_BYTES,
        )?)
    }
}
