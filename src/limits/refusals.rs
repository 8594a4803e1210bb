//! Who is being limited: the keys every rate class refused in the last window, for
//! `GET /admin/status` (`architecture.md` §6).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

/// How far back `limited` looks, seconds.
pub const WINDOW_SECS: u64 = 600;
/// Most (class, key) pairs remembered; beyond, the oldest is forgotten.
const MAX_REMEMBERED: usize = 10_000;
/// Most rows `GET /admin/status` lists.
pub const MAX_LISTED: usize = 50;

/// One limited key, as `GET /admin/status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitedKey {
    /// The rate class.
    pub class: &'static str,
    /// What its keys are: `ip`, `user`, `peer`, `victim`.
    pub scope: &'static str,
    /// The key (an address, an IPv6 /64, a user id, a server name).
    pub key: String,
    /// Requests refused in the window.
    pub refused: u64,
    /// First and last refusal, Unix seconds.
    pub first: u64,
    /// Last refusal, Unix seconds.
    pub last: u64,
    /// The wait the last refusal announced, seconds.
    pub retry_after_secs: u64,
}

/// The refusals of every class: the recent ones by key, and totals by class since start.
#[derive(Debug, Default)]
pub struct Refusals(
    Mutex<HashMap<(&'static str, String), LimitedKey>>,
    Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
);

impl Refusals {
    /// Records one refusal.
    pub fn record(&self, class: &'static str, scope: &'static str, key: &str, retry_after: u64) {
        *self
            .1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((class, scope))
            .or_default() += 1;
        let now = crate::state::now();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_REMEMBERED && !map.contains_key(&(class, key.to_owned())) {
            forget_oldest(&mut map, now);
        }
        let row = map
            .entry((class, key.to_owned()))
            .or_insert_with(|| LimitedKey {
                class,
                scope,
                key: key.to_owned(),
                refused: 0,
                first: now,
                last: now,
                retry_after_secs: 0,
            });
        row.refused += 1;
        row.last = now;
        row.retry_after_secs = retry_after;
    }

    /// Refusals since start by `(class, scope)`, for `rendezvous_limited_total`.
    pub fn totals(&self) -> Vec<((&'static str, &'static str), u64)> {
        let totals = self.1.lock().unwrap_or_else(|e| e.into_inner());
        totals.iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// The keys refused in the last [`WINDOW_SECS`], most refused first, at most
    /// [`MAX_LISTED`].
    pub fn recent(&self) -> Vec<LimitedKey> {
        let now = crate::state::now();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, row| row.last + WINDOW_SECS >= now);
        let mut rows: Vec<LimitedKey> = map.values().cloned().collect();
        drop(map);
        rows.sort_by(|a, b| b.refused.cmp(&a.refused).then(b.last.cmp(&a.last)));
        rows.truncate(MAX_LISTED);
        rows
    }
}

/// Drops rows older than the window, or else the least recent one.
fn forget_oldest(map: &mut HashMap<(&'static str, String), LimitedKey>, now: u64) {
    map.retain(|_, row| row.last + WINDOW_SECS >= now);
    if map.len() < MAX_REMEMBERED {
        return;
    }
    let oldest = map
        .iter()
        .min_by_key(|(_, row)| row.last)
        .map(|(k, _)| k.clone());
    if let Some(k) = oldest {
        map.remove(&k);
    }
}
