//! Per-backend live state shared by every snapshot: the in-flight counter, the latency EWMA, and
//! the [`InFlight`] guard that counts a request for as long as it lives.
//!
//! A backend keeps the same state across [`Balancer::update`](crate::Balancer::update) calls as
//! long as its id stays in the list, so guards taken before an update still decrement the right
//! counter and the loads seen by the policies survive membership changes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Weight of a new latency sample in the per-backend EWMA: `ewma += LATENCY_EWMA_WEIGHT ×
/// (sample − ewma)`. 0.3 forgets a sample's influence to under 3% within ten samples.
pub const LATENCY_EWMA_WEIGHT: f64 = 0.3;

/// The live counters of one backend. Lock-free: two atomics.
#[derive(Debug)]
pub(crate) struct BackendState {
    id: Box<str>,
    in_flight: AtomicUsize,
    /// Latency EWMA in microseconds as `f64` bits; `0` (the bits of `0.0`) means no sample yet.
    latency_bits: AtomicU64,
}

impl BackendState {
    pub(crate) fn new(id: &str) -> Arc<Self> {
        Arc::new(BackendState {
            id: id.into(),
            in_flight: AtomicUsize::new(0),
            latency_bits: AtomicU64::new(0),
        })
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Requests currently in flight to this backend.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Latency EWMA in microseconds, `None` before the first sample.
    pub(crate) fn latency_micros(&self) -> Option<f64> {
        let v = f64::from_bits(self.latency_bits.load(Ordering::Relaxed));
        (v > 0.0).then_some(v)
    }

    pub(crate) fn latency(&self) -> Option<Duration> {
        self.latency_micros()
            .map(|us| Duration::from_nanos((us * 1000.0) as u64))
    }

    /// Folds one latency sample into the EWMA (compare-and-swap loop, no lock).
    pub(crate) fn record_latency(&self, sample: Duration) {
        // At least a tenth of a microsecond, so that a recorded backend never reads as "no sample".
        let sample = (sample.as_nanos() as f64 / 1000.0).max(0.1);
        // The closure always returns Some, so fetch_update cannot fail.
        let _ = self
            .latency_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let old = f64::from_bits(bits);
                let new = if old > 0.0 {
                    old + LATENCY_EWMA_WEIGHT * (sample - old)
                } else {
                    sample
                };
                Some(new.to_bits())
            });
    }
}

/// Counts one request in flight to one backend for as long as it lives.
///
/// Created by a pick (which increments the backend's counter); dropping it decrements the
/// counter, whether the request finished, failed, panicked or its future was dropped. Keep it
/// alive for the whole exchange with the backend.
#[derive(Debug)]
#[must_use = "the request counts as in flight only while the guard lives"]
pub struct InFlight {
    state: Arc<BackendState>,
}

impl InFlight {
    pub(crate) fn start(state: &Arc<BackendState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            state: Arc::clone(state),
        }
    }

    /// The id of the backend this request is in flight to.
    pub fn backend_id(&self) -> &str {
        self.state.id()
    }

    /// Requests in flight to this backend right now, this one included.
    pub fn backend_in_flight(&self) -> usize {
        self.state.in_flight()
    }

    /// Folds the latency of a finished request into this backend's EWMA (used by
    /// power-of-two-choices with `use_latency`).
    pub fn record_latency(&self, latency: Duration) {
        self.state.record_latency(latency);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    #[test]
    fn guard_counts_while_alive() {
        let s = BackendState::new("a");
        let g1 = InFlight::start(&s);
        let g2 = InFlight::start(&s);
        assert_eq!(s.in_flight(), 2);
        assert_eq!(g1.backend_in_flight(), 2);
        assert_eq!(g1.backend_id(), "a");
        drop(g1);
        assert_eq!(s.in_flight(), 1);
        drop(g2);
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn guard_decrements_when_a_panic_unwinds() {
        let s = BackendState::new("a");
        let s2 = Arc::clone(&s);
        let r = std::panic::catch_unwind(move || {
            let _g = InFlight::start(&s2);
            assert_eq!(s2.in_flight(), 1);
            // Unwinds like a panic, without printing one.
            std::panic::resume_unwind(Box::new("request failed"));
        });
        assert!(r.is_err());
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn guard_decrements_when_the_future_is_dropped() {
        let s = BackendState::new("a");
        let g = InFlight::start(&s);
        // A request future that holds the guard across an await that never completes.
        let fut = async move {
            let _g = g;
            std::future::pending::<()>().await;
        };
        {
            let mut fut = pin!(fut);
            let mut cx = Context::from_waker(Waker::noop());
            assert_eq!(fut.as_mut().poll(&mut cx), Poll::Pending);
            assert_eq!(s.in_flight(), 1);
        } // the future is dropped here, mid-flight
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn latency_ewma() {
        let s = BackendState::new("a");
        assert_eq!(s.latency_micros(), None);
        s.record_latency(Duration::from_micros(100));
        assert_eq!(s.latency_micros(), Some(100.0));
        s.record_latency(Duration::from_micros(200));
        let v = s.latency_micros().unwrap_or(0.0);
        assert!((v - 130.0).abs() < 1e-9, "{v}");
        s.record_latency(Duration::ZERO);
        assert!(s.latency_micros().is_some());
        assert!(s.latency().is_some());
    }
}
