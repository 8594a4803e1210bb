//! Self-monitoring (`directory.md` §6.3): a device reads every directory entry appended since
//! it last looked, rebuilds the log's root from them, and raises an alarm for every entry that
//! binds its own user id to a key it does not hold.

use super::{DirectoryEntry, DirectoryError};
use crate::crypto::IdentityPublicKey;
use crate::ids::{ServerName, UserId};
use crate::tlog::{Checkpoint, Frontier};

/// Where the last pass stopped: the entries below `next` were checked, and `frontier` is the
/// compact range of the log at size `next`.
#[derive(Debug, Clone, Default)]
pub struct MonitorState {
    /// Entries below this index were checked.
    pub next: u64,
    /// The log's frontier at size `next`.
    pub frontier: Frontier,
}

/// An entry for the monitoring user with a key the device does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    /// Its leaf index.
    pub index: u64,
    /// The entry (leaf data).
    pub entry: Vec<u8>,
    /// The key it binds.
    pub identity_key: IdentityPublicKey,
}

/// What a pass found.
#[derive(Debug, Clone, Default)]
pub struct MonitorReport {
    /// Entries read in this pass.
    pub checked: u64,
    /// Entries for this user with a key the device does not hold (`directory_foreign_key`).
    pub alarms: Vec<Alarm>,
    /// Entries that break a rule of §2.1 (`directory_invalid_entry`), by index.
    pub invalid: Vec<(u64, String)>,
    /// Kind 2 entries for this user that rotate, with a valid statement, from a key the device
    /// holds to one it does not hold yet (`directory.md` §6.3 step 3): another device of the user
    /// rotated, and the new key waits in this device's inbox. Not alarms; the caller does not
    /// keep the pass's state, so the entry is checked again once the key arrived.
    pub pending_rotations: Vec<(u64, IdentityPublicKey)>,
}

/// One pass, fed page by page.
#[derive(Debug)]
pub struct MonitorPass<'a> {
    server: ServerName,
    user: &'a UserId,
    keys: &'a [IdentityPublicKey],
    frontier: Frontier,
    next: u64,
    report: MonitorReport,
}

impl<'a> MonitorPass<'a> {
    /// Starts a pass of `user`'s device, which holds `keys` (current and rotated-from), from
    /// `state`.
    pub fn start(state: &MonitorState, user: &'a UserId, keys: &'a [IdentityPublicKey]) -> Self {
        MonitorPass {
            server: user.server(),
            user,
            keys,
            frontier: state.frontier.clone(),
            next: state.next,
            report: MonitorReport::default(),
        }
    }

    /// The index the next page must start at.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Feeds a page of entries starting at `first` (which must be [`Self::next`]).
    pub fn feed(&mut self, first: u64, entries: &[Vec<u8>]) -> Result<(), DirectoryError> {
        if first != self.next {
            return Err(DirectoryError::EntriesMismatch {
                server: self.server.to_string(),
            });
        }
        for bytes in entries {
            let index = self.next;
            self.frontier
                .append(bytes)
                .map_err(|_| DirectoryError::EntriesMismatch {
                    server: self.server.to_string(),
                })?;
            self.next += 1;
            self.report.checked += 1;
            // Every entry is decoded and must name a user of this server; only this user's
            // entries have their statements' signatures checked (directory.md §6.3 step 3):
            // the other users' devices check theirs, and a signature check per entry would be
            // nine tenths of the pass's time (BENCHMARKS.md, "Directory").
            let entry = match DirectoryEntry::decode(bytes) {
                Ok(e) if e.user.server() == self.server => e,
                Ok(e) => {
                    let why = format!("{}: not a user of {}", e.user, self.server);
                    self.report.invalid.push((index, why));
                    continue;
                }
                Err(e) => {
                    self.report.invalid.push((index, e.to_string()));
                    continue;
                }
            };
            if entry.user != *self.user {
                continue;
            }
            if let Err(e) = entry.check(&self.server) {
                self.report.invalid.push((index, e.to_string()));
            }
            if !self.keys.contains(&entry.identity_key) {
                // directory.md §6.3 step 3: a rotation signed by a key this device holds is
                // another device's; its new key comes through the inbox (§8).
                if let Some(r) = entry.rotation()
                    && self.keys.contains(&r.old_identity_key)
                    && r.new_identity_key == entry.identity_key
                    && r.user == *self.user
                {
                    self.report
                        .pending_rotations
                        .push((index, entry.identity_key));
                    continue;
                }
                self.report.alarms.push(Alarm {
                    index,
                    entry: bytes.clone(),
                    identity_key: entry.identity_key,
                });
            }
        }
        Ok(())
    }

    /// Ends the pass at `checkpoint` (verified by the caller): the entries fed must be exactly
    /// the log up to its size (its root rebuilt), else nothing is kept.
    pub fn finish(
        self,
        checkpoint: &Checkpoint,
    ) -> Result<(MonitorState, MonitorReport), DirectoryError> {
        if self.next != checkpoint.size.0 || self.frontier.root() != checkpoint.root {
            return Err(DirectoryError::EntriesMismatch {
                server: self.server.to_string(),
            });
        }
        Ok((
            MonitorState {
                next: self.next,
                frontier: self.frontier,
            },
            self.report,
        ))
    }
}

/// A whole pass over `entries` (from `state.next` to the checkpoint's size) at once.
pub fn monitor(
    state: &MonitorState,
    user: &UserId,
    keys: &[IdentityPublicKey],
    entries: &[Vec<u8>],
    checkpoint: &Checkpoint,
) -> Result<(MonitorState, MonitorReport), DirectoryError> {
    let mut pass = MonitorPass::start(state, user, keys);
    pass.feed(state.next, entries)?;
    pass.finish(checkpoint)
}
