//! One rate class: a keyed GCRA limiter (the `governor` crate) with the rate from the
//! configuration, and the record of whom it refused (`client-api.md` §1.3).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use super::refusals::Refusals;

/// A rate as the configuration writes it: `{ per_minute = 60, burst = 30 }` (or `per_second`,
/// `per_hour`): one cell comes back every period ÷ N, at most `burst` are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Cells per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u32>,
    /// Cells per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    /// Cells per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_hour: Option<u32>,
    /// Most cells held at once.
    pub burst: u32,
}

impl Rate {
    /// `n` cells per second, at most `burst` held.
    pub const fn second(n: u32, burst: u32) -> Rate {
        Rate {
            per_second: Some(n),
            per_minute: None,
            per_hour: None,
            burst,
        }
    }

    /// `n` cells per minute, at most `burst` held.
    pub const fn minute(n: u32, burst: u32) -> Rate {
        Rate {
            per_second: None,
            per_minute: Some(n),
            per_hour: None,
            burst,
        }
    }

    /// `n` cells per hour, at most `burst` held.
    pub const fn hour(n: u32, burst: u32) -> Rate {
        Rate {
            per_second: None,
            per_minute: None,
            per_hour: Some(n),
            burst,
        }
    }

    /// A rate no test or benchmark reaches (a million a second).
    pub const fn unlimited() -> Rate {
        Rate::second(1_000_000, 1_000_000)
    }

    /// The GCRA quota, or why the rate is not one.
    pub fn quota(&self) -> Result<Quota, String> {
        let (n, period) = match (self.per_second, self.per_minute, self.per_hour) {
            (Some(n), None, None) => (n, 1),
            (None, Some(n), None) => (n, 60),
            (None, None, Some(n)) => (n, 3600),
            _ => return Err("give exactly one of per_second, per_minute, per_hour".into()),
        };
        let n = NonZeroU32::new(n).ok_or("the rate must not be 0")?;
        let burst = NonZeroU32::new(self.burst).ok_or("burst must not be 0")?;
        let every = Duration::from_secs(period) / n.get();
        let quota = Quota::with_period(every).ok_or("the rate is too high")?;
        Ok(quota.allow_burst(burst))
    }
}

/// A request refused by a rate class: `429 rate_limited` with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit {class} reached; retry in {retry_after_secs} s")]
pub struct Limited {
    /// The class (its configuration key under `limits.rate` or `federation.limits`).
    pub class: &'static str,
    /// Whole seconds until one more request of this cost passes (at least 1).
    pub retry_after_secs: u64,
}

/// Keys kept per class before new keys share one (a flood of addresses is limited as one).
pub const MAX_TRACKED_KEYS: usize = 100_000;

/// The key new callers share once a class tracks [`MAX_TRACKED_KEYS`].
const OVERFLOW_KEY: &str = "(overflow)";

/// One rate class: a keyed limiter and its name.
pub struct RateClass {
    name: &'static str,
    scope: &'static str,
    limiter: DefaultKeyedRateLimiter<String>,
    quota: Quota,
    clock: DefaultClock,
    refusals: std::sync::Arc<Refusals>,
}

impl std::fmt::Debug for RateClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateClass")
            .field("name", &self.name)
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

impl RateClass {
    /// A class named `name` whose keys are of `scope` (`ip`, `user`, `peer`, `victim`).
    pub(super) fn new(
        name: &'static str,
        scope: &'static str,
        rate: &Rate,
        refusals: std::sync::Arc<Refusals>,
    ) -> Result<RateClass, String> {
        let quota = rate.quota().map_err(|e| format!("{name}: {e}"))?;
        Ok(RateClass {
            name,
            scope,
            limiter: RateLimiter::keyed(quota),
            quota,
            clock: DefaultClock::default(),
            refusals,
        })
    }

    /// The class's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Takes `cost` cells for `key`, all or none; a cost of 0 always passes.
    pub fn check(&self, key: &str, cost: u32) -> Result<(), Limited> {
        let Some(n) = NonZeroU32::new(cost) else {
            return Ok(());
        };
        let key = match self.limiter.len() >= MAX_TRACKED_KEYS {
            true => OVERFLOW_KEY,
            false => key,
        };
        let owned = key.to_owned();
        let wait = match self.limiter.check_key_n(&owned, n) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(not_until)) => not_until.wait_time_from(self.clock.now()),
            // More cells than the burst: this cost never passes; say when a full burst would.
            Err(_) => self.quota.burst_size_replenished_in(),
        };
        let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let limited = Limited {
            class: self.name,
            retry_after_secs: retry_after_secs.max(1),
        };
        self.refusals
            .record(self.name, self.scope, key, limited.retry_after_secs);
        Err(limited)
    }

    /// Forgets keys whose state is that of a fresh key (run every minute).
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}
