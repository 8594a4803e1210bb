//! How many topics of one hosting server this server mirrors (`federation-api.md` §1.1): each
//! mirror is held in memory, so a host cannot make this server hold unbounded state; over
//! `federation.limits.mirrored_topics_per_peer`, the first batch of a new topic is refused
//! `403 quota_exceeded`.

use std::collections::HashMap;

use super::error::{TopicError, TopicResult};
use super::lock;
use super::service::TopicService;
use rendezvous_protocol::ids::ServerName;

impl TopicService {
    /// Refuses a new mirror of a topic of `host` once `host` has as many as allowed.
    pub(super) fn mirror_quota(&self, host: &ServerName) -> TopicResult<()> {
        let max = self
            .relay_if_on()
            .map_or(u64::MAX, |r| r.mirrors_per_host());
        let mut counts = lock(&self.mirrors_by_host);
        let counts = match &mut *counts {
            Some(counts) => counts,
            None => counts.insert(self.count_mirrors()?),
        };
        match counts.get(host).copied().unwrap_or(0) >= max {
            true => Err(TopicError::TooManyMirrors {
                host: host.clone(),
                max,
            }),
            false => Ok(()),
        }
    }

    /// Counts a new mirror of a topic of `host`.
    pub(super) fn mirror_added(&self, host: &ServerName) {
        if let Some(counts) = &mut *lock(&self.mirrors_by_host) {
            *counts.entry(host.clone()).or_default() += 1;
        }
    }

    fn count_mirrors(&self) -> TopicResult<HashMap<ServerName, u64>> {
        let mut counts = HashMap::new();
        for topic in self.store.mirrored_topics()? {
            *counts.entry(topic.server()).or_default() += 1;
        }
        Ok(counts)
    }
}
