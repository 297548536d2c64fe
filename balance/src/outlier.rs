//! Passive outlier detection: a backend whose requests fail several times in a row (connect
//! errors, timeouts, 5xx) is ejected from the pool for a while, without waiting for an active
//! health check to notice.
//!
//! The ejection lasts `base_ejection × n`, where `n` counts this backend's ejections since it
//! last stayed in the pool for `max_ejection` (so a backend that keeps failing stays out longer
//! each time, up to `max_ejection`). At most `max_ejected_share` of the pool is ejected at once,
//! so a fault shared by every backend (or the edge's own network) cannot empty the pool. This is
//! Envoy's consecutive-5xx detector with its multiplier and its ejection cap.
//!
//! Lock-free on the request path: [`OutlierDetector::is_ejected`] is one atomic load and a
//! success one load (and a store after a failure). The ejection decision, which must count the
//! ejected backends of the whole pool, takes a mutex; it runs only when a streak completes.
//!
//! ```
//! use cdn_balance::{OutlierDetector, OutlierSettings};
//! use std::time::{Duration, Instant};
//!
//! let t0 = Instant::now();
//! let settings = OutlierSettings { consecutive_failures: 2, ..OutlierSettings::default() };
//! let pool = OutlierDetector::new(settings, 4, t0);
//! assert_eq!(pool.record(1, false, t0), None);
//! assert_eq!(pool.record(1, false, t0), Some(settings.base_ejection));
//! assert!(pool.is_ejected(1, t0));
//! assert!(!pool.is_ejected(1, t0 + settings.base_ejection));
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// When a backend is ejected and for how long.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutlierSettings {
    /// Failures in a row that eject a backend; `0` turns detection off.
    pub consecutive_failures: u32,
    /// The first ejection's length; the n-th lasts n times this.
    pub base_ejection: Duration,
    /// The longest ejection; also how long a backend must stay in before its count resets.
    pub max_ejection: Duration,
    /// Largest share of the pool (0 to 1) ejected at once, rounded down: with 0.5, one of two
    /// or three backends, two of four.
    pub max_ejected_share: f64,
}

impl Default for OutlierSettings {
    /// Envoy's consecutive-5xx defaults (5 in a row, 30 s, at most 300 s), but up to half of
    /// the pool rather than 10%, which ejects nothing from the small pools CDNs run.
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejected_share: 0.5,
        }
    }
}

#[derive(Debug, Default)]
struct Outlier {
    streak: AtomicU32,
    /// End of the current (or last) ejection, in nanoseconds since the detector's epoch;
    /// 0: never ejected.
    ejected_until: AtomicU64,
    times: AtomicU32,
    total: AtomicU64,
}

/// The outlier state of every backend of one pool, by index. See the [module docs](self).
#[derive(Debug)]
pub struct OutlierDetector {
    settings: OutlierSettings,
    epoch: Instant,
    backends: Box<[Outlier]>,
    ejecting: Mutex<()>,
}

impl OutlierDetector {
    /// Detection over `backends` backends (indexes `0..backends`); `now` is the zero of its
    /// clock: pass `Instant`s of the same clock to every later call.
    pub fn new(settings: OutlierSettings, backends: usize, now: Instant) -> Self {
        Self {
            settings,
            epoch: now,
            backends: (0..backends).map(|_| Outlier::default()).collect(),
            ejecting: Mutex::new(()),
        }
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &OutlierSettings {
        &self.settings
    }

    fn nanos(&self, now: Instant) -> u64 {
        // +1 keeps 0 free to mean "never ejected", even at the epoch itself.
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX - 1)
            + 1
    }

    /// Whether the backend at `index` is ejected at `now`.
    #[inline]
    pub fn is_ejected(&self, index: usize, now: Instant) -> bool {
        self.backends
            .get(index)
            .is_some_and(|b| b.ejected_until.load(Ordering::Acquire) > self.nanos(now))
    }

    /// How long the backend at `index` stays ejected, `None` if it is in the pool.
    pub fn ejected_for(&self, index: usize, now: Instant) -> Option<Duration> {
        let until = self
            .backends
            .get(index)?
            .ejected_until
            .load(Ordering::Acquire);
        let now = self.nanos(now);
        (until > now).then(|| Duration::from_nanos(until - now))
    }

    /// How many times the backend at `index` has been ejected.
    pub fn ejections(&self, index: usize) -> u64 {
        self.backends
            .get(index)
            .map_or(0, |b| b.total.load(Ordering::Relaxed))
    }

    /// Ends the ejection of the backend at `index` at `now`, if it is ejected, and forgets its
    /// streak: for when another source (an active health check) has seen it recover. Its
    /// ejection count stays, so a relapse is ejected for longer.
    pub fn uneject(&self, index: usize, now: Instant) {
        if let Some(b) = self.backends.get(index) {
            let _ejecting = self.ejecting.lock().unwrap_or_else(PoisonError::into_inner);
            b.streak.store(0, Ordering::Relaxed);
            if self.is_ejected(index, now) {
                b.ejected_until.store(self.nanos(now), Ordering::Release);
            }
        }
    }

    /// Records the outcome of one request to the backend at `index` (`ok`: it answered, and
    /// not with a 5xx). Returns the ejection's length when this failure ejected the backend.
    ///
    /// Outcomes of requests still in flight when their backend was ejected are ignored, and a
    /// streak that would eject one backend too many stays counted, so the backend goes as soon
    /// as another returns.
    pub fn record(&self, index: usize, ok: bool, now: Instant) -> Option<Duration> {
        let s = &self.settings;
        let b = self.backends.get(index)?;
        if ok {
            if b.streak.load(Ordering::Relaxed) != 0 {
                b.streak.store(0, Ordering::Relaxed);
            }
            return None;
        }
        if s.consecutive_failures == 0 || self.is_ejected(index, now) {
            return None;
        }
        let streak = b.streak.fetch_add(1, Ordering::Relaxed) + 1;
        if streak < s.consecutive_failures {
            return None;
        }
        let _ejecting = self.ejecting.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_ejected(index, now) {
            return None;
        }
        let ejected = (0..self.backends.len())
            .filter(|i| self.is_ejected(*i, now))
            .count();
        let cap = (s.max_ejected_share.clamp(0.0, 1.0) * self.backends.len() as f64) as usize;
        if ejected + 1 > cap {
            return None;
        }
        let last_end = b.ejected_until.load(Ordering::Acquire);
        let stayed = self.nanos(now).saturating_sub(last_end);
        if last_end == 0 || u128::from(stayed) >= s.max_ejection.as_nanos() {
            b.times.store(0, Ordering::Relaxed);
        }
        let times = b.times.fetch_add(1, Ordering::Relaxed) + 1;
        let length = s.base_ejection.saturating_mul(times).min(s.max_ejection);
        let until = self
            .nanos(now)
            .saturating_add(u64::try_from(length.as_nanos()).unwrap_or(u64::MAX));
        b.ejected_until.store(until, Ordering::Release);
        b.streak.store(0, Ordering::Relaxed);
        b.total.fetch_add(1, Ordering::Relaxed);
        Some(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings() -> OutlierSettings {
        OutlierSettings {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
            max_ejected_share: 0.5,
        }
    }

    fn fail(d: &OutlierDetector, index: usize, times: u32, now: Instant) -> Option<Duration> {
        (0..times)
            .filter_map(|_| d.record(index, false, now))
            .last()
    }

    #[test]
    fn a_streak_ejects_and_a_success_breaks_it() {
        let t = Instant::now();
        let d = OutlierDetector::new(settings(), 4, t);
        assert_eq!(fail(&d, 0, 2, t), None);
        assert_eq!(d.record(0, true, t), None);
        assert_eq!(fail(&d, 0, 2, t), None);
        assert!(!d.is_ejected(0, t));
        assert_eq!(d.record(0, false, t), Some(Duration::from_secs(10)));
        assert!(d.is_ejected(0, t + Duration::from_secs(9)));
        assert_eq!(
            d.ejected_for(0, t + Duration::from_secs(4)),
            Some(Duration::from_secs(6))
        );
        assert!(!d.is_ejected(0, t + Duration::from_secs(10)));
        assert_eq!(d.ejections(0), 1);
    }

    #[test]
    fn repeated_ejections_grow_up_to_the_cap_and_reset_after_a_quiet_spell() {
        let t = Instant::now();
        let d = OutlierDetector::new(settings(), 2, t);
        assert_eq!(fail(&d, 1, 3, t), Some(Duration::from_secs(10)));
        // Failures while ejected (requests already in flight) change nothing.
        assert_eq!(fail(&d, 1, 5, t), None);
        let t1 = t + Duration::from_secs(10);
        assert_eq!(fail(&d, 1, 3, t1), Some(Duration::from_secs(20)));
        let t2 = t1 + Duration::from_secs(20);
        assert_eq!(fail(&d, 1, 3, t2), Some(Duration::from_secs(25)), "capped");
        // In the pool for max_ejection: the count starts again.
        let t3 = t2 + Duration::from_secs(25) + Duration::from_secs(25);
        assert_eq!(fail(&d, 1, 3, t3), Some(Duration::from_secs(10)));
        assert_eq!(d.ejections(1), 4);
    }

    #[test]
    fn never_more_than_the_share_and_the_streak_waits_for_room() {
        let t = Instant::now();
        let d = OutlierDetector::new(settings(), 3, t);
        assert!(fail(&d, 0, 3, t).is_some());
        assert_eq!(fail(&d, 1, 3, t), None, "1 of 3 is the most at 0.5");
        assert!(!d.is_ejected(1, t));
        // Once 0 is back, 1's streak (still counted) ejects it at its next failure.
        let back = t + Duration::from_secs(10);
        assert!(d.record(1, false, back).is_some());
        // A one-backend pool never ejects its only backend.
        let single = OutlierDetector::new(settings(), 1, t);
        assert_eq!(fail(&single, 0, 10, t), None);
    }

    #[test]
    fn uneject_ends_the_ejection_but_keeps_the_count() {
        let t = Instant::now();
        let d = OutlierDetector::new(settings(), 2, t);
        assert!(fail(&d, 0, 3, t).is_some());
        let t1 = t + Duration::from_secs(1);
        d.uneject(0, t1);
        assert!(!d.is_ejected(0, t1));
        assert_eq!(fail(&d, 0, 3, t1), Some(Duration::from_secs(20)));
        d.uneject(1, t1);
        assert!(!d.is_ejected(1, t1));
    }

    #[test]
    fn zero_turns_it_off_and_bad_indexes_are_ignored() {
        let t = Instant::now();
        let off = OutlierSettings {
            consecutive_failures: 0,
            ..settings()
        };
        let d = OutlierDetector::new(off, 2, t);
        assert_eq!(fail(&d, 0, 100, t), None);
        assert_eq!(d.record(7, false, t), None);
        assert!(!d.is_ejected(7, t));
    }

    proptest! {
        /// Whatever fails when, the ejected share never passes the cap.
        #[test]
        fn the_cap_holds(events in proptest::collection::vec((0usize..6, any::<bool>(), 0u64..3000), 1..400),
                         share in 0.0f64..=1.0) {
            let t0 = Instant::now();
            let s = OutlierSettings { consecutive_failures: 2, max_ejected_share: share, ..settings() };
            let d = OutlierDetector::new(s, 6, t0);
            let mut now = t0;
            for (index, ok, step_ms) in events {
                now += Duration::from_millis(step_ms);
                d.record(index, ok, now);
                let ejected = (0..6).filter(|i| d.is_ejected(*i, now)).count();
                prop_assert!(ejected <= (share * 6.0) as usize);
            }
        }
    }
}
