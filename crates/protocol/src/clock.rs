//! The wall clock, in the one unit the protocol uses (Unix seconds).
//!
//! Every time the protocol compares (a head's age, a checkpoint from the future, a
//! cosignature's date) is read through a [`Clock`], so that a test can move one party's time
//! forward instead of waiting for it. [`Clock::system`] is the machine's clock; a
//! [`Clock::adjustable`] one reads the same clock plus an offset its clones share.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A wall clock: the system's, or the system's shifted by an offset shared among clones.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The machine's clock.
    pub fn system() -> Clock {
        Clock { offset: None }
    }

    /// The machine's clock, shifted by an offset (0 to begin with) that [`Clock::advance`] and
    /// [`Clock::reset`] change for every clone at once.
    pub fn adjustable() -> Clock {
        Clock {
            offset: Some(Arc::new(AtomicI64::new(0))),
        }
    }

    /// Now, Unix seconds (0 if the machine's clock is before 1970).
    pub fn now(&self) -> u64 {
        let shift = self
            .offset
            .as_ref()
            .map_or(0, |o| o.load(Ordering::Relaxed));
        unix_now().saturating_add_signed(shift)
    }

    /// Moves this clock (and its clones) `secs` seconds forward; a no-op on the system clock.
    pub fn advance(&self, secs: u64) {
        if let Some(offset) = &self.offset {
            let secs = i64::try_from(secs).unwrap_or(i64::MAX);
            let _ = offset.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
                Some(o.saturating_add(secs))
            });
        }
    }

    /// Puts this clock (and its clones) back on the machine's time.
    pub fn reset(&self) {
        if let Some(offset) = &self.offset {
            offset.store(0, Ordering::Relaxed);
        }
    }
}

/// The machine's clock, Unix seconds (0 if it is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_for_all_its_clones_and_the_system_clock_does_not() {
        let clock = Clock::adjustable();
        let other = clock.clone();
        let before = clock.now();
        other.advance(1_000);
        assert!(clock.now() >= before + 1_000);
        assert!(clock.now() < before + 1_010);
        clock.reset();
        assert!(other.now() < before + 10);

        let system = Clock::system();
        system.advance(1_000);
        assert!(system.now() < before + 10);
    }
}
