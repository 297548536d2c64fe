//! A token bucket (`rate` tokens per second, at most `burst` saved up), kept as one atomic
//! integer so that deciding takes no lock.
//!
//! The bucket is stored the GCRA way (the generic cell rate algorithm of ATM networks, which
//! is a token bucket seen from the other side): instead of a token count and a refill time it
//! keeps one number, the *theoretical arrival time* (TAT) at which the bucket would be full
//! again. Taking a token moves the TAT one emission interval (`1 / rate`) later; a request is
//! allowed while the TAT is at most `burst - 1` intervals ahead of now. One `u64` of
//! nanoseconds updated by compare-and-swap, no refill timer, and whole-nanosecond arithmetic:
//! nothing accumulates rounding errors over long runs.
//!
//! The clock is the caller's: every call takes `now` in nanoseconds since any fixed start
//! (the edge passes a monotonic clock, tests pass the time they want), so the algorithm is
//! tested without sleeping.
//!
//! ```
//! use cdn_balance::{BucketRate, TokenBucket};
//!
//! let rate = BucketRate::new(1.0, 10).unwrap(); // 1 per second, bursts of 10
//! let bucket = TokenBucket::new();
//! let allowed = (0..20).filter(|_| rate.try_take(&bucket, 0).is_allowed()).count();
//! assert_eq!(allowed, 10);
//! // One second later, one more token.
//! assert!(rate.try_take(&bucket, 1_000_000_000).is_allowed());
//! assert!(!rate.try_take(&bucket, 1_000_000_000).is_allowed());
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

const NANOS_PER_SEC: f64 = 1e9;

/// The shape of a limit: how fast tokens come back and how many may be saved up. Shared by
/// every bucket of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketRate {
    /// Nanoseconds between two tokens (`1 / rate`).
    interval: u64,
    /// How far ahead of now the TAT may be for a request to pass: `(burst - 1)` intervals.
    tolerance: u64,
    burst: u32,
}

/// The answer to one request for a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A token was taken.
    Allowed {
        /// Tokens left for requests right now.
        remaining: u32,
        /// Nanoseconds until the bucket is full again.
        full_in: u64,
    },
    /// No token: the request is refused.
    Refused {
        /// Nanoseconds until a token is back.
        retry_in: u64,
        /// Nanoseconds until the bucket is full again.
        full_in: u64,
    },
}

impl Decision {
    /// Whether the request may pass.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

impl BucketRate {
    /// `rate` tokens per second (more than 0, at most 10⁹), `burst` tokens at most (1 or more).
    /// `None` when either is out of range.
    pub fn new(rate: f64, burst: u32) -> Option<Self> {
        if !(rate.is_finite() && rate > 0.0 && rate <= NANOS_PER_SEC) || burst == 0 {
            return None;
        }
        // Rounded to the nanosecond: at worst one nanosecond early per token, so a bucket
        // of 3 per second lets about 86 µs worth of extra tokens through per day.
        let interval = (NANOS_PER_SEC / rate).round().max(1.0) as u64;
        Some(Self {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst - 1)),
            burst,
        })
    }

    /// Tokens that may be saved up.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Nanoseconds for an empty bucket to fill up: how long a bucket left alone stays worth
    /// remembering (after that it is the same as a new one).
    pub fn fill_time(&self) -> u64 {
        self.interval.saturating_mul(u64::from(self.burst))
    }

    /// Takes a token from `bucket` at time `now` (nanoseconds on the caller's clock), if one
    /// is there. Lock-free: concurrent callers retry a compare-and-swap.
    pub fn try_take(&self, bucket: &TokenBucket, now: u64) -> Decision {
        let mut tat = bucket.tat.load(Ordering::Relaxed);
        loop {
            // A bucket last touched long ago is simply full: its TAT is in the past.
            let start = tat.max(now);
            let ahead = start - now;
            if ahead > self.tolerance {
                return Decision::Refused {
                    retry_in: ahead - self.tolerance,
                    full_in: ahead,
                };
            }
            let next = start.saturating_add(self.interval);
            match bucket
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    let full_in = next - now;
                    // Tokens left: how many more intervals fit under the tolerance.
                    let room =
                        (self.tolerance.saturating_add(self.interval)).saturating_sub(full_in);
                    return Decision::Allowed {
                        remaining: u32::try_from(room / self.interval).unwrap_or(u32::MAX),
                        full_in,
                    };
                }
                Err(seen) => tat = seen,
            }
        }
    }
}

/// The state of one bucket: eight bytes, shared between threads without a lock.
#[derive(Debug, Default)]
pub struct TokenBucket {
    /// Theoretical arrival time, nanoseconds on the caller's clock; 0 = full.
    tat: AtomicU64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the bucket is full at `now`: then it is the same as a new one, and a table of
    /// buckets may forget it.
    pub fn is_full_at(&self, now: u64) -> bool {
        self.tat.load(Ordering::Relaxed) <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn take(rate: &BucketRate, b: &TokenBucket, now: u64) -> bool {
        rate.try_take(b, now).is_allowed()
    }

    #[test]
    fn burst_then_steady_rate() {
        let rate = BucketRate::new(2.0, 5).unwrap();
        let b = TokenBucket::new();
        let t0 = 100 * SEC;
        let burst = (0..50).filter(|_| take(&rate, &b, t0)).count();
        assert_eq!(
            burst, 5,
            "a full bucket lets exactly `burst` through at once"
        );
        // Then two per second: one every 500 ms, none in between.
        for i in 1..=20 {
            let at = t0 + i * SEC / 2;
            assert!(!take(&rate, &b, at - 1), "token {i} came early");
            assert!(take(&rate, &b, at), "token {i} is late");
            assert!(!take(&rate, &b, at), "token {i} counted twice");
        }
    }

    #[test]
    fn refills_to_burst_and_no_further() {
        let rate = BucketRate::new(10.0, 3).unwrap();
        let b = TokenBucket::new();
        assert_eq!((0..10).filter(|_| take(&rate, &b, SEC)).count(), 3);
        // An hour of silence saves up `burst` tokens, not more.
        let later = SEC + 3600 * SEC;
        assert_eq!((0..10).filter(|_| take(&rate, &b, later)).count(), 3);
        // Half a refill brings back half the tokens (here 1 of 3: 150 ms at 10 per second).
        assert_eq!(
            (0..10)
                .filter(|_| take(&rate, &b, later + 150_000_000))
                .count(),
            1
        );
    }

    #[test]
    fn no_drift_over_a_long_run() {
        // Ask every millisecond for a day at 3 per second: exactly 3 × 86400 tokens plus the
        // initial burst, give or take the one in progress.
        let rate = BucketRate::new(3.0, 7).unwrap();
        let b = TokenBucket::new();
        let day = 86_400u64;
        let mut allowed = 0u64;
        let mut now = 0;
        while now <= day * SEC {
            allowed += u64::from(take(&rate, &b, now));
            now += SEC / 1000;
        }
        let expected = 3 * day + 7;
        assert!(
            allowed.abs_diff(expected) <= 1,
            "{allowed} allowed, {expected} expected"
        );
    }

    #[test]
    fn decisions_report_what_headers_need() {
        let rate = BucketRate::new(1.0, 10).unwrap();
        let b = TokenBucket::new();
        match rate.try_take(&b, 0) {
            Decision::Allowed { remaining, full_in } => {
                assert_eq!(remaining, 9);
                assert_eq!(full_in, SEC);
            }
            d => panic!("{d:?}"),
        }
        for _ in 0..9 {
            assert!(take(&rate, &b, 0));
        }
        match rate.try_take(&b, 250_000_000) {
            Decision::Refused { retry_in, full_in } => {
                assert_eq!(retry_in, 750_000_000, "the next token is 750 ms away");
                assert_eq!(full_in, 10 * SEC - 250_000_000);
            }
            d => panic!("{d:?}"),
        }
        assert_eq!(rate.fill_time(), 10 * SEC);
        assert!(!b.is_full_at(SEC));
        assert!(b.is_full_at(10 * SEC));
        assert!(TokenBucket::new().is_full_at(0));
    }

    #[test]
    fn out_of_range_shapes_are_refused() {
        assert!(BucketRate::new(0.0, 1).is_none());
        assert!(BucketRate::new(-1.0, 1).is_none());
        assert!(BucketRate::new(f64::NAN, 1).is_none());
        assert!(BucketRate::new(f64::INFINITY, 1).is_none());
        assert!(BucketRate::new(1.0, 0).is_none());
        // Very slow and very large still work (saturating, not overflowing).
        let slow = BucketRate::new(1e-9, u32::MAX).unwrap();
        let b = TokenBucket::new();
        assert!(take(&slow, &b, u64::MAX - 1));
    }

    #[test]
    fn concurrent_takers_share_exactly_burst() {
        let rate = BucketRate::new(1.0, 1000).unwrap();
        let b = TokenBucket::new();
        let allowed = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if take(&rate, &b, 5 * SEC) {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(allowed.load(Ordering::Relaxed), 1000);
    }
}
