//! The backends of a [`Balancer`](crate::Balancer) at one moment: membership, weights, health,
//! and the per-policy layout (ring, round-robin schedule) built from them.
//!
//! A snapshot is immutable; every change publishes a new one, so the pick path reads it
//! without a lock. The live counters (in flight, latency) are shared between snapshots.

use std::sync::Arc;
use std::time::Duration;

use crate::inflight::BackendState;
use crate::ring::Ring;
use crate::round_robin::Schedule;

/// One backend (an origin for the edge, an edge for the gslb) as the balancer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Stable identity: the live counters follow it across updates, and the consistent-hash
    /// ring places it by this string (nginx style: `host:port`, see [`Ring`]). Keep ids unique.
    pub id: String,
    /// Relative share of traffic. `0` drains the backend: no policy picks it.
    pub weight: u32,
    /// Whether the backend may be picked. Unhealthy backends are skipped by every policy.
    pub healthy: bool,
}

impl Backend {
    /// Whether a policy may pick it: healthy and of non-zero weight.
    #[inline]
    pub fn is_pickable(&self) -> bool {
        self.healthy && self.weight > 0
    }

    /// A healthy backend with the given id and weight.
    pub fn new(id: impl Into<String>, weight: u32) -> Self {
        Backend {
            id: id.into(),
            weight,
            healthy: true,
        }
    }
}

/// How many weighted draws [`Snapshot::sample`] tries before its exact linear pass.
const SAMPLE_TRIES: usize = 8;

/// An immutable view of the backends, published atomically by the [`Balancer`](crate::Balancer).
#[derive(Debug)]
pub struct Snapshot {
    backends: Box<[Backend]>,
    states: Box<[Arc<BackendState>]>,
    /// `cumulative[i]` = total weight of the pickable (healthy, weight > 0) backends `0..=i`.
    cumulative: Box<[u64]>,
    pickable: usize,
    pub(crate) ring: Option<Arc<Ring>>,
    pub(crate) schedule: Option<Arc<Schedule>>,
}

impl Snapshot {
    pub(crate) fn new(
        backends: Box<[Backend]>,
        states: Box<[Arc<BackendState>]>,
        ring: Option<Arc<Ring>>,
        schedule: Option<Arc<Schedule>>,
    ) -> Self {
        let mut sum = 0u64;
        let mut pickable = 0;
        let cumulative = backends
            .iter()
            .map(|b| {
                if b.is_pickable() {
                    sum += u64::from(b.weight);
                    pickable += 1;
                }
                sum
            })
            .collect();
        Snapshot {
            backends,
            states,
            cumulative,
            pickable,
            ring,
            schedule,
        }
    }

    /// The same snapshot with one backend's health changed; ring and schedule are shared.
    pub(crate) fn with_health(&self, index: usize, healthy: bool) -> Self {
        let mut backends = self.backends.clone();
        if let Some(b) = backends.get_mut(index) {
            b.healthy = healthy;
        }
        Snapshot::new(
            backends,
            self.states.clone(),
            self.ring.clone(),
            self.schedule.clone(),
        )
    }

    /// The backends, in the order given to the balancer (a pick's index points into this).
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// Number of backends, healthy or not.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether there is no backend at all.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// Number of backends a policy may pick: healthy and of non-zero weight.
    pub fn pickable(&self) -> usize {
        self.pickable
    }

    /// Requests in flight to backend `index` right now.
    pub fn in_flight(&self, index: usize) -> Option<usize> {
        self.states.get(index).map(|s| s.in_flight())
    }

    /// Latency EWMA of backend `index`, `None` before its first sample.
    pub fn latency(&self, index: usize) -> Option<Duration> {
        self.states.get(index).and_then(|s| s.latency())
    }

    pub(crate) fn state(&self, index: usize) -> Option<&Arc<BackendState>> {
        self.states.get(index)
    }

    pub(crate) fn states(&self) -> &[Arc<BackendState>] {
        &self.states
    }

    /// Whether backend `index` may be picked now: healthy, weighted and not excluded.
    #[inline]
    pub(crate) fn is_candidate(&self, index: usize, exclude: &[usize]) -> bool {
        match self.backends.get(index) {
            Some(b) => b.is_pickable() && !exclude.contains(&index),
            None => false,
        }
    }

    /// Whether any backend outside `exclude` may be picked now.
    pub fn has_candidate(&self, exclude: &[usize]) -> bool {
        self.candidates(exclude).next().is_some()
    }

    /// The candidates (healthy, weighted, not excluded) in order, with their current in-flight
    /// count and weight. Walks the slices directly: no per-index bounds checks.
    #[inline]
    pub(crate) fn candidates<'a>(
        &'a self,
        exclude: &'a [usize],
    ) -> impl Iterator<Item = (usize, usize, u32)> + 'a {
        self.backends
            .iter()
            .zip(self.states.iter())
            .enumerate()
            .filter(move |(i, (b, _))| b.is_pickable() && !exclude.contains(i))
            .map(|(i, (b, s))| (i, s.in_flight(), b.weight))
    }

    /// Weight of backend `index` (0 for an unknown index).
    #[inline]
    pub(crate) fn weight(&self, index: usize) -> u32 {
        self.backends.get(index).map_or(0, |b| b.weight)
    }

    /// In-flight count of backend `index` (0 for an unknown index).
    #[inline]
    pub(crate) fn load(&self, index: usize) -> usize {
        self.states.get(index).map_or(0, |s| s.in_flight())
    }

    /// Draws one candidate at random with probability proportional to its weight, never
    /// `other` (to draw a second, distinct backend). A few draws over the prefix sums of the
    /// healthy weights (O(log n) each), rejecting excluded ones; then an exact linear pass
    /// (weighted reservoir sampling) if those all missed. Allocates nothing.
    pub(crate) fn sample(&self, exclude: &[usize], other: Option<usize>) -> Option<usize> {
        let total = self.cumulative.last().copied().unwrap_or(0);
        if total == 0 {
            return None;
        }
        for _ in 0..SAMPLE_TRIES {
            let r = fastrand::u64(0..total);
            let i = self.cumulative.partition_point(|&c| c <= r);
            if Some(i) != other && self.is_candidate(i, exclude) {
                return Some(i);
            }
        }
        let mut seen = 0u64;
        let mut chosen = None;
        for i in 0..self.backends.len() {
            if Some(i) == other || !self.is_candidate(i, exclude) {
                continue;
            }
            let w = u64::from(self.weight(i));
            seen += w;
            if fastrand::u64(0..seen) < w {
                chosen = Some(i);
            }
        }
        chosen
    }
}

#[cfg(test)]
impl Snapshot {
    /// A snapshot of `backends` with fresh counters and no ring, for the policies' unit tests.
    pub(crate) fn for_tests(backends: Vec<Backend>) -> Snapshot {
        let states = backends.iter().map(|b| BackendState::new(&b.id)).collect();
        Snapshot::new(backends.into(), states, None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(backends: Vec<Backend>) -> Snapshot {
        Snapshot::for_tests(backends)
    }

    #[test]
    fn sample_follows_weights_and_skips() {
        let mut bs = vec![
            Backend::new("a", 1),
            Backend::new("b", 3),
            Backend::new("c", 5),
            Backend::new("d", 0),
        ];
        bs[2].healthy = false;
        let s = snap(bs);
        assert_eq!(s.pickable(), 2);
        let mut counts = [0usize; 4];
        for _ in 0..40_000 {
            if let Some(i) = s.sample(&[], None) {
                counts[i] += 1;
            }
        }
        assert_eq!(counts[2] + counts[3], 0);
        let ratio = counts[1] as f64 / counts[0] as f64;
        assert!((2.7..3.3).contains(&ratio), "{counts:?}");
        // Excluding the heavy one leaves only the light one; other excludes it too.
        assert_eq!(s.sample(&[1], None), Some(0));
        assert_eq!(s.sample(&[], Some(1)), Some(0));
        assert_eq!(s.sample(&[0], Some(1)), None);
    }

    #[test]
    fn health_flip_keeps_layout() {
        let s = snap(vec![Backend::new("a", 1), Backend::new("b", 1)]);
        let t = s.with_health(0, false);
        assert!(!t.backends()[0].healthy);
        assert_eq!(t.pickable(), 1);
        assert!(Arc::ptr_eq(&s.states()[0], &t.states()[0]));
        assert_eq!(t.in_flight(5), None);
        assert_eq!(t.latency(0), None);
    }
}
