//! Time as the engine sees it.
//!
//! The engine never reads the system time or sleeps directly: Wait states, retry intervals and
//! task timeouts become absolute wake-up times ([`jiff::Timestamp`]) compared with
//! [`Clock::now`]. [`VirtualClock`] jumps straight to the next wake-up (tests, CI, the
//! conformance runner: a `Wait` of a year costs nothing); [`SystemClock`] follows the wall clock
//! and really sleeps.

use jiff::{SignedDuration, Timestamp};
use std::sync::Mutex;

/// A source of time.
#[async_trait::async_trait]
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
    /// Returns once `now() >= deadline` (a virtual clock jumps there at once).
    async fn sleep_until(&self, deadline: Timestamp);
    /// Whether time passes on its own (a real clock). A synchronous task invocation is only
    /// raced against its `TimeoutSeconds` under a real clock; under a virtual clock it takes no
    /// time at all.
    fn is_real(&self) -> bool;
}

/// The wall clock; `sleep_until` sleeps on the tokio timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        let left = deadline.duration_since(Timestamp::now());
        if left > SignedDuration::ZERO
            && let Ok(d) = std::time::Duration::try_from(left)
        {
            tokio::time::sleep(d).await;
        }
    }

    fn is_real(&self) -> bool {
        true
    }
}

/// A clock that only moves when told to, or when the engine sleeps (then it jumps to the
/// deadline instantly).
#[derive(Debug)]
pub struct VirtualClock {
    now: Mutex<Timestamp>,
}

impl VirtualClock {
    /// A virtual clock starting at `start`.
    pub fn new(start: Timestamp) -> Self {
        VirtualClock {
            now: Mutex::new(start),
        }
    }

    /// A virtual clock starting at the current wall-clock time.
    pub fn starting_now() -> Self {
        VirtualClock::new(Timestamp::now())
    }

    /// Moves the clock forward by `d` (never backwards).
    pub fn advance(&self, d: SignedDuration) {
        let mut now = self.lock();
        if let Ok(t) = now.checked_add(d)
            && t > *now
        {
            *now = t;
        }
    }

    /// Sets the clock to `t` if `t` is later than the current time.
    pub fn set(&self, t: Timestamp) {
        let mut now = self.lock();
        if t > *now {
            *now = t;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timestamp> {
        // a poisoned lock still holds a valid timestamp
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        *self.lock()
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        self.set(deadline);
    }

    fn is_real(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn virtual_clock_jumps_to_the_deadline_without_sleeping() {
        // given a virtual clock at t0
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().expect("timestamp");
        let clock = VirtualClock::new(t0);
        let wall = std::time::Instant::now();
        // when it sleeps for a day
        let deadline = t0 + SignedDuration::from_hours(24);
        clock.sleep_until(deadline).await;
        // then its time is the deadline and no real time passed
        assert_eq!(clock.now(), deadline);
        assert!(wall.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn virtual_clock_never_goes_backwards() {
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().expect("timestamp");
        let clock = VirtualClock::new(t0);
        clock.set(t0 - SignedDuration::from_secs(5));
        clock.advance(SignedDuration::from_secs(-5));
        assert_eq!(clock.now(), t0);
        clock.advance(SignedDuration::from_secs(5));
        assert_eq!(clock.now(), t0 + SignedDuration::from_secs(5));
    }
}
