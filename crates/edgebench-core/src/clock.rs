//! The one monotonic clock of a run: every timestamp in a record is nanoseconds since its origin.

use std::time::Instant;

/// A monotonic clock with a fixed origin, shared by the runner and every target of a run.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// Nanoseconds from the origin to `at` (0 for instants before the origin).
    pub fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Nanoseconds from the origin to now.
    pub fn now_ns(&self) -> u64 {
        self.ns(Instant::now())
    }

    /// The instant `ns` nanoseconds after the origin.
    pub fn instant(&self, ns: u64) -> Instant {
        self.origin + std::time::Duration::from_nanos(ns)
    }
}

/// Milliseconds between two nanosecond timestamps (negative when `to` is before `from`).
pub fn ms_between(from_ns: u64, to_ns: u64) -> f64 {
    (to_ns as f64 - from_ns as f64) / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_is_monotonic_and_relative_to_origin() {
        let c = Clock::new();
        let a = c.now_ns();
        let b = c.now_ns();
        assert!(b >= a);
        assert_eq!(c.ns(c.instant(1_500)), 1_500);
    }

    #[test]
    fn ms_between_handles_order() {
        assert_eq!(ms_between(1_000_000, 3_500_000), 2.5);
        assert_eq!(ms_between(3_000_000, 1_000_000), -2.0);
    }
}
