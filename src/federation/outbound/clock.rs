//! Time and randomness of the outbound senders, injectable for tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time, injectable for tests: wall-clock milliseconds (backoff deadlines are stored and
/// survive restarts) and sleeping.
pub trait Clock: Send + Sync {
    /// Now, Unix milliseconds.
    fn now_ms(&self) -> u64;
    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The system clock and tokio's timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The server's clock ([`crate::clock::Clock`], which tests move forward) with tokio's timers:
/// queue ages and backoff deadlines are read on the same clock as the events' `time`.
#[derive(Debug, Clone)]
pub struct ServerClock(pub crate::clock::Clock);

impl Clock for ServerClock {
    fn now_ms(&self) -> u64 {
        // The server's seconds, the machine's milliseconds within them.
        let within = SystemClock.now_ms() % 1000;
        self.0.now().saturating_mul(1000).saturating_add(within)
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Full jitter: a uniformly random number of milliseconds in `0..=upper`. Injectable for tests.
pub type Jitter = Arc<dyn Fn(u64) -> u64 + Send + Sync>;

/// [`Jitter`] from the operating system's random number generator.
pub fn random_jitter() -> Jitter {
    Arc::new(|upper: u64| match upper.checked_add(1) {
        // The modulo bias is below 2^-40 for delays under an hour in milliseconds.
        Some(n) => getrandom::u64().map_or(upper, |r| r % n),
        None => upper,
    })
}
