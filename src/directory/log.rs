//! The directory log's checkpoints (`directory.md` §2.3) and its served checkpoint with the
//! witness cosignatures it received (§3).

use rendezvous_protocol::crypto::{ServerKey, ServerPublicKey};
use rendezvous_protocol::directory::{DirectoryEntry, MAX_WITNESS_LINES, directory_origin};
use rendezvous_protocol::ids::ServerName;
use rendezvous_protocol::tlog::{Checkpoint, Cosignature, SignedCheckpoint, Tree, TreeSize};

use super::{DirectoryResult, DirectoryServeError, internal};
use crate::store::{LogNodes, Store, StoreError};

/// This server's directory: one per server, shared by every handler.
pub struct DirectoryLog {
    store: Store,
    name: ServerName,
    origin: String,
    /// Serializes the signing of checkpoints and the merging of cosignatures.
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for DirectoryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryLog")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

fn parse(note: &str) -> DirectoryResult<SignedCheckpoint> {
    SignedCheckpoint::parse(note.as_bytes())
        .map_err(|_| StoreError::Corrupt { table: "directory" }.into())
}

/// Which kept note a cosignature is for.
enum Kept {
    Newest,
    Served,
}

impl DirectoryLog {
    /// The directory of server `name` in `store`.
    pub fn new(store: Store, name: ServerName) -> Self {
        DirectoryLog {
            origin: directory_origin(&name),
            store,
            name,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The log's origin, `<server>/directory`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The store it lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// §2.2: a store from before the directory gets one kind 1 entry per user without one, in
    /// the users' key order, before the server serves anything (a backfill cut short goes on
    /// where it stopped). Returns the entries appended.
    pub fn backfill(&self) -> Result<u64, StoreError> {
        let mut appended = 0;
        for (user, record) in self.store.users()? {
            if self.store.directory_user_entry(&user, u64::MAX)?.is_some() {
                continue;
            }
            let entry = DirectoryEntry::registration(&record.registration, record.created)
                .map_err(|_| StoreError::Corrupt { table: "users" })?;
            self.store.directory_append(&user, &entry.to_bytes())?;
            appended += 1;
        }
        Ok(appended)
    }

    /// The log's tree at its current size.
    pub fn tree(&self) -> DirectoryResult<Tree<LogNodes<'_>>> {
        let size = self.store.directory_size()?;
        Tree::open(LogNodes::directory(&self.store), TreeSize(size)).map_err(internal)
    }

    /// The newest checkpoint (§2.3), signed afresh with `key` when the log grew since the
    /// newest one and `now` is past its time; a new one is durable before it is returned (a
    /// checkpoint is never served over entries a crash could lose).
    pub async fn newest(&self, key: &ServerKey, now: u64) -> DirectoryResult<SignedCheckpoint> {
        let _guard = self.lock.lock().await;
        let size = self.store.directory_size()?;
        let held = self
            .store
            .directory_newest()?
            .map(|n| parse(&n))
            .transpose()?;
        if let Some(held) = &held {
            let c = held.unverified_checkpoint();
            if c.size.0 == size || now <= c.time {
                return Ok(held.clone());
            }
        }
        let root = self.tree()?.root();
        let checkpoint =
            Checkpoint::new(&self.origin, TreeSize(size), root, now).map_err(internal)?;
        let signed =
            SignedCheckpoint::sign(&checkpoint, key, self.name.as_str()).map_err(internal)?;
        self.store.set_directory_notes(&signed.to_note(), None)?;
        self.store.sync().await?;
        tracing::debug!(size, "signed a directory checkpoint");
        Ok(signed)
    }

    /// The served checkpoint (§3): the newest one a witness cosigned, with every line kept for
    /// it, or the newest when no witness cosigned any yet. The second value says whether a
    /// witness cosigned it.
    pub async fn served(
        &self,
        key: &ServerKey,
        now: u64,
    ) -> DirectoryResult<(SignedCheckpoint, bool)> {
        if let Some(served) = self.store.directory_served()? {
            return Ok((parse(&served)?, true));
        }
        Ok((self.newest(key, now).await?, false))
    }

    /// A witness's cosignature (§3, §5.1): `note` must be the body of the newest or the served
    /// checkpoint, and carry a line of `witness` that verifies under one of `witness_keys`;
    /// the line replaces the witness's earlier one (the newest 31 witness lines are kept).
    /// A cosignature of the newest makes it the served checkpoint.
    pub async fn accept_cosignature(
        &self,
        note: &str,
        witness: &ServerName,
        witness_keys: &[ServerPublicKey],
    ) -> DirectoryResult<()> {
        let offered = SignedCheckpoint::parse(note.as_bytes())
            .map_err(|e| DirectoryServeError::BadCheckpoint(e.to_string()))?;
        let _guard = self.lock.lock().await;
        let newest = self
            .store
            .directory_newest()?
            .map(|n| parse(&n))
            .transpose()?;
        let served = self
            .store
            .directory_served()?
            .map(|n| parse(&n))
            .transpose()?;
        let kept = match (&newest, &served) {
            (Some(n), _) if n.body() == offered.body() => Kept::Newest,
            (_, Some(s)) if s.body() == offered.body() => Kept::Served,
            _ => {
                return Err(DirectoryServeError::BadCheckpoint(format!(
                    "{} is not the body of one",
                    offered.unverified_checkpoint().size.0
                )));
            }
        };
        let cosignature = witness_keys
            .iter()
            .find_map(|k| offered.cosignature(k, witness.as_str()).ok())
            .ok_or_else(|| DirectoryServeError::BadSignature(witness.to_string()))?;
        match (kept, newest, served) {
            (Kept::Newest, Some(mut n), _) => {
                self.add_line(&mut n, &cosignature)?;
                let note = n.to_note();
                self.store.set_directory_notes(&note, Some(&note))?;
            }
            (Kept::Served, Some(n), Some(mut s)) => {
                self.add_line(&mut s, &cosignature)?;
                self.store
                    .set_directory_notes(&n.to_note(), Some(&s.to_note()))?;
            }
            _ => return Err(internal("the kept notes changed under the lock")),
        }
        self.store.sync().await?;
        Ok(())
    }

    /// Adds a witness's line to `note`, dropping the oldest witness lines beyond
    /// [`MAX_WITNESS_LINES`] or beyond the note's limits (§3: the newest lines are kept).
    fn add_line(&self, note: &mut SignedCheckpoint, co: &Cosignature) -> DirectoryResult<()> {
        add_line_keeping_newest(note, co, self.name.as_str()).map_err(internal)
    }
}

/// Adds `co`'s line to `note` (replacing the witness's earlier one), dropping the oldest lines
/// of other witnesses (not `own`'s) while there are more than [`MAX_WITNESS_LINES`] or the
/// note does not fit its limits.
pub fn add_line_keeping_newest(
    note: &mut SignedCheckpoint,
    co: &Cosignature,
    own: &str,
) -> Result<(), rendezvous_protocol::tlog::CheckpointError> {
    loop {
        let witnesses = |n: &SignedCheckpoint| {
            let mut names: Vec<String> = Vec::new();
            for name in n.signer_names() {
                if name != own && !names.iter().any(|m| m == name) {
                    names.push(name.to_owned());
                }
            }
            names
        };
        let names = witnesses(note);
        let has_line = names.contains(&co.witness);
        let full = names.len() + usize::from(!has_line) > MAX_WITNESS_LINES;
        if !full {
            match note.add_cosignature(co) {
                Ok(()) => return Ok(()),
                Err(e) if names.iter().all(|n| *n == co.witness) => return Err(e),
                Err(_) => {}
            }
        }
        // The oldest line of another witness goes: lines are appended as they arrive.
        let Some(oldest) = names.iter().find(|n| **n != co.witness) else {
            return note.add_cosignature(co);
        };
        let mut kept = note.lines_of(own);
        for name in names.iter().filter(|n| *n != oldest) {
            kept.merge_signatures(&note.lines_of(name));
        }
        *note = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::DirectoryLog;
    use crate::store::Store;
    use rendezvous_protocol::certs::Registration;
    use rendezvous_protocol::crypto::IdentityKey;
    use rendezvous_protocol::directory::DirectoryEntry;
    use rendezvous_protocol::ids::{DeviceId, UserId};
    use rendezvous_protocol::wire::Signed;

    #[test]
    fn a_store_from_before_the_directory_gets_one_entry_per_user_in_key_order() {
        let store = Store::temporary().unwrap();
        for (i, name) in ["carol", "alice", "bob"].iter().enumerate() {
            let user: UserId = format!("@{name}:localhost").parse().unwrap();
            let ik = IdentityKey::generate();
            let reg = Signed::sign(Registration::new(user.clone(), ik.public().clone()), &ik);
            let entry = DirectoryEntry::registration(reg.signed_bytes(), 1).unwrap();
            store.add_pin([i as u8; 32], u64::MAX / 2).unwrap();
            let device = DeviceId::from_bytes([i as u8; 32]);
            let (r, e) = (reg.signed_bytes(), entry.to_bytes());
            store
                .register_user([i as u8; 32], &user, r, device, r, &e, 1)
                .unwrap();
        }
        assert_eq!(store.directory_size().unwrap(), 3);
        store.clear_directory_for_tests();
        let log = DirectoryLog::new(store.clone(), "localhost".parse().unwrap());
        assert_eq!(log.backfill().unwrap(), 3);
        // Once only: a restart appends nothing more.
        assert_eq!(log.backfill().unwrap(), 0);
        let users = store.users().unwrap();
        for (index, (user, record)) in users.iter().enumerate() {
            let entry =
                DirectoryEntry::decode(&store.directory_entry(index as u64).unwrap().unwrap())
                    .unwrap();
            assert_eq!(&entry.user, user);
            assert_eq!(entry.identity_key, record.identity_key().unwrap());
            entry.check(&"localhost".parse().unwrap()).unwrap();
        }
    }
}

#[cfg(test)]
mod line_tests {
    use super::add_line_keeping_newest;
    use rendezvous_protocol::crypto::ServerKey;
    use rendezvous_protocol::directory::{MAX_WITNESS_LINES, directory_origin};
    use rendezvous_protocol::ids::{ServerName, longest_host};
    use rendezvous_protocol::tlog::checkpoint::MAX_NOTE_SIZE;
    use rendezvous_protocol::tlog::{
        Checkpoint, Cosignature, SignedCheckpoint, TreeSize, empty_root,
    };

    /// `own`'s signed directory checkpoint and `n` witnesses named by `name(i)` cosigning it in
    /// turn; returns the note and the witnesses' names in the order they cosigned.
    fn cosigned(
        own: &ServerName,
        n: usize,
        name: impl Fn(usize) -> String,
    ) -> (SignedCheckpoint, Vec<String>) {
        let key = ServerKey::from_seed(&[1; 32]);
        let checkpoint =
            Checkpoint::new(&directory_origin(own), TreeSize(1), empty_root(), 1).unwrap();
        let mut note = SignedCheckpoint::sign(&checkpoint, &key, own.as_str()).unwrap();
        let mut names = Vec::new();
        for i in 0..n {
            let witness = name(i);
            let seed = [u8::try_from(i % 250).unwrap() + 2; 32];
            let co =
                Cosignature::sign(&ServerKey::from_seed(&seed), &witness, &checkpoint, 2).unwrap();
            add_line_keeping_newest(&mut note, &co, own.as_str()).unwrap();
            names.push(witness);
        }
        (note, names)
    }

    fn witnesses(note: &SignedCheckpoint, own: &ServerName) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in note.signer_names() {
            if n != own.as_str() && !out.iter().any(|m| m == n) {
                out.push(n.to_owned());
            }
        }
        out
    }

    /// Short names: the count binds (`directory.md` §3): the newest 31 lines stay.
    #[test]
    fn the_newest_lines_stay_up_to_the_count() {
        let own: ServerName = "a.example".parse().unwrap();
        let (note, names) = cosigned(&own, MAX_WITNESS_LINES + 9, |i| format!("w{i}.example"));
        assert_eq!(witnesses(&note, &own), names[9..].to_vec());
        assert!(note.signer_names().contains(&own.as_str()));
    }

    /// The longest names: the note's 4,096 bytes bind before the count, and the note stays
    /// within them with the server's own line and the newest witnesses' lines.
    #[test]
    fn the_newest_lines_stay_within_the_note_with_the_longest_names() {
        let host = longest_host();
        let own: ServerName = format!("{host}:9").parse().unwrap();
        // Witness names as long as a server name may be, each distinct in its first label.
        let name = |i: usize| format!("{:02}{}:9", i, &host[2..]);
        let (note, names) = cosigned(&own, MAX_WITNESS_LINES, name);
        let kept = witnesses(&note, &own);
        assert!(note.to_note().as_str().len() <= MAX_NOTE_SIZE);
        assert!(kept.len() < MAX_WITNESS_LINES, "{}", kept.len());
        assert!(kept.len() >= 8, "{}", kept.len());
        assert_eq!(kept, names[names.len() - kept.len()..].to_vec());
        assert!(note.signer_names().contains(&own.as_str()));
    }
}
