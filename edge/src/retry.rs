//! When a failed origin request may be sent again, and how long to wait first.
//!
//! The rules (issue 4): only idempotent methods (RFC 9110: `GET`, `HEAD`, `OPTIONS`, `TRACE`,
//! `PUT`, `DELETE`; never a `POST`), only while no byte of the response has reached the client,
//! only after a connect error, a timeout or a 502/503/504 from the origin, each retry to an
//! origin not tried yet, at most `edge.pool.max_tries` tries in all, after a jittered back-off,
//! and only while the retry budget allows. The proxy applies them in its pingora callbacks
//! (`fail_to_connect`, `error_while_proxy`, `upstream_response_filter`); this module holds the
//! pieces that need no pingora types, so that they are tested alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Retries that may always be in flight at once, whatever the budget share, so that a
/// lightly loaded edge still retries.
pub const MIN_RETRIES_IN_FLIGHT: usize = 3;

/// Shortest back-off before the first retry; the n-th retry waits `n ×` a uniform draw
/// between this and [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest back-off before the first retry.
pub const BACKOFF_MAX: Duration = Duration::from_millis(50);

/// Whether an origin's status says "try another origin": bad gateway, unavailable, gateway
/// timeout. A 500 is the origin's own answer and is passed on.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 502..=504)
}

/// How long to wait before retry number `retry` (1 for the first): `retry ×` a uniform draw in
/// [`BACKOFF_MIN`, `BACKOFF_MAX`], so that requests failing together do not retry together.
pub fn backoff(retry: u32) -> Duration {
    let min = BACKOFF_MIN.as_micros() as u64;
    let max = BACKOFF_MAX.as_micros() as u64;
    Duration::from_micros(fastrand::u64(min..=max) * u64::from(retry.max(1)))
}

/// Caps the retries in flight at a share of the requests in flight (at least
/// [`MIN_RETRIES_IN_FLIGHT`]), so that a failing pool does not turn every request into several.
#[derive(Debug)]
pub struct RetryBudget {
    share: f64,
    retrying: Arc<AtomicUsize>,
}

/// Counts one request as retrying until dropped (a request takes one at its first retry and
/// keeps it to its end).
#[derive(Debug)]
pub struct Retrying(Arc<AtomicUsize>);

impl Drop for Retrying {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RetryBudget {
    /// A budget letting `share` (0.0 to 1.0) of the requests in flight be retries.
    pub fn new(share: f64) -> Self {
        Self {
            share: share.clamp(0.0, 1.0),
            retrying: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Retries allowed at once with `requests_in_flight` requests in flight.
    pub fn allowed(&self, requests_in_flight: usize) -> usize {
        ((self.share * requests_in_flight as f64) as usize).max(MIN_RETRIES_IN_FLIGHT)
    }

    /// Counts one more request as retrying if the budget allows it.
    pub fn try_start(&self, requests_in_flight: usize) -> Option<Retrying> {
        let allowed = self.allowed(requests_in_flight);
        self.retrying
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < allowed).then_some(n + 1)
            })
            .ok()
            .map(|_| Retrying(Arc::clone(&self.retrying)))
    }

    /// Requests retrying now.
    pub fn retrying(&self) -> usize {
        self.retrying.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gateway_errors_are_retried() {
        for s in [502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [200, 304, 404, 500, 501, 505] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn backoff_is_jittered_and_grows_with_each_retry() {
        for retry in 1..=3u32 {
            for _ in 0..200 {
                let d = backoff(retry);
                assert!(
                    d >= BACKOFF_MIN * retry && d <= BACKOFF_MAX * retry,
                    "{d:?}"
                );
            }
        }
        let draws: std::collections::HashSet<Duration> = (0..50).map(|_| backoff(1)).collect();
        assert!(draws.len() > 10, "not jittered: {draws:?}");
    }

    #[test]
    fn budget_is_a_share_of_requests_in_flight_with_a_floor() {
        let b = RetryBudget::new(0.2);
        assert_eq!(b.allowed(0), MIN_RETRIES_IN_FLIGHT);
        assert_eq!(b.allowed(100), 20);
        let held: Vec<Retrying> = (0..3).filter_map(|_| b.try_start(1)).collect();
        assert_eq!(held.len(), 3);
        assert!(b.try_start(1).is_none(), "over the floor at low traffic");
        let fourth = b.try_start(20);
        assert!(fourth.is_some(), "20% of 20 is 4");
        assert!(b.try_start(20).is_none());
        assert_eq!(b.retrying(), 4);
        drop(held);
        assert_eq!(b.retrying(), 1);
        drop(fourth);
        assert_eq!(b.retrying(), 0);
    }
}
