//! Rotating the Server Key (`tag-log.md` §7.6, `federation-api.md` §2), with the server
//! stopped: `rendezvous rotate-server-key`.
//!
//! 1. the new key is written to `server.key.next` (0600, synced);
//! 2. one store batch records the rotation (signed by the old and the new key), the old key's
//!    retirement and the new key's start, and the store is synced;
//! 3. `server.key.next` is renamed over `server.key`.
//!
//! A rotation cut short is settled on the next start ([`settle`]): a `server.key.next` that the
//! store's last rotation names is put in place (step 3 again), any other is deleted (step 2 never
//! happened). A `server.key` that is not the key the last rotation names is refused: the server
//! would sign under a key its peers and members do not follow.

use std::path::{Path, PathBuf};

use super::{IdentityError, io_err, load_server_key, write_private};
use crate::ServerError;
use crate::federation::keys::record_rotation;
use crate::store::Store;
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::ids::ServerName;
use rendezvous_protocol::tlog::SignedRotation;

/// File name of the Server Key.
pub const SERVER_KEY: &str = "server.key";
/// File name of a new key whose rotation is under way.
pub const NEXT_KEY: &str = "server.key.next";

fn paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (data_dir.join(SERVER_KEY), data_dir.join(NEXT_KEY))
}

/// Rotates the Server Key in `data_dir` (whose store is `store`) at `now`; returns the
/// statement recorded. The server must not be running (the store's lock ensures it).
pub async fn rotate(
    data_dir: &Path,
    store: &Store,
    server: &ServerName,
    now: u64,
) -> Result<SignedRotation, ServerError> {
    let (key_path, next_path) = paths(data_dir);
    let old = settle(data_dir, store, server, load_server_key(&key_path)?)?;
    let new = ServerKey::generate();
    write_private(&next_path, &new.seed()[..])?;
    let statement = record_rotation(store, server, &old, &new, now)?;
    store.sync().await?;
    put_in_place(&next_path, &key_path)?;
    Ok(statement)
}

fn put_in_place(next: &Path, key: &Path) -> Result<(), IdentityError> {
    std::fs::rename(next, key).map_err(io_err(key))?;
    if let Some(dir) = key.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}

/// Settles a rotation cut short and checks that `key` (loaded from `server.key`) is the key the
/// store's last rotation names; returns the key to serve with.
pub fn settle(
    data_dir: &Path,
    store: &Store,
    server: &ServerName,
    key: ServerKey,
) -> Result<ServerKey, ServerError> {
    let (key_path, next_path) = paths(data_dir);
    let last = store.rotations(server)?.pop();
    let mut key = key;
    if next_path.exists() {
        let next = load_server_key(&next_path)?;
        if last
            .as_ref()
            .is_some_and(|r| r.rotation().new == *next.public())
        {
            tracing::warn!(path = %next_path.display(), "finishing a key rotation cut short");
            put_in_place(&next_path, &key_path)?;
            key = next;
        } else {
            tracing::warn!(path = %next_path.display(), "dropping the key of a rotation that never happened");
            std::fs::remove_file(&next_path).map_err(io_err(&next_path))?;
        }
    }
    if let Some(last) = last
        && last.rotation().new != *key.public()
    {
        return Err(IdentityError::Invalid {
            path: key_path,
            reason: "not the key this server's last rotation names: restore the key `rotate-server-key` made".into(),
        }
        .into());
    }
    Ok(key)
}
