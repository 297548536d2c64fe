//! The [`Balancer`]: a policy over a set of backends, with lock-free picks and atomically
//! published membership and health changes, behind the [`Picker`] trait.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::inflight::{BackendState, InFlight};
use crate::ring::{self, Ring, DEFAULT_VNODES};
use crate::round_robin::{self, Schedule};
use crate::snapshot::{Backend, Snapshot};
use crate::{least_conn, p2c, random};

/// How a [`Balancer`] chooses a backend.
#[derive(Clone, Debug, PartialEq)]
pub enum Policy {
    /// Consistent hashing of the request key on a Ketama ring (see [`Ring`]): the same key goes
    /// to the same backend while it is healthy, and removing a backend moves only its keys.
    ConsistentHash {
        /// Ring points per unit of weight ([`DEFAULT_VNODES`] = 160, as nginx).
        vnodes: u32,
        /// Bounded loads: `Some(c)` sends a key past its home backend when that one already has
        /// `c ×` the average in-flight load (e.g. 1.25). Values below 1 (or NaN) act as 1.
        bound: Option<f64>,
    },
    /// Fewest in-flight requests per unit of weight, ties at random.
    LeastConn,
    /// The less loaded of two weighted random backends; with `use_latency`, load is scaled by
    /// each backend's latency EWMA.
    PowerOfTwo {
        /// Weigh the in-flight load by the latency EWMA fed by [`Pick::record_latency`].
        use_latency: bool,
    },
    /// Smooth weighted round robin (nginx's sequence).
    RoundRobin,
    /// Weighted random.
    Random,
}

impl Policy {
    /// Consistent hashing with nginx's 160 points per weight unit and no load bound.
    pub fn consistent_hash() -> Self {
        Policy::ConsistentHash {
            vnodes: DEFAULT_VNODES,
            bound: None,
        }
    }

    /// The policy with its parameters made valid: a bound below 1 (or NaN) becomes 1, and
    /// `vnodes = 0` becomes 1.
    fn normalized(self) -> Self {
        match self {
            Policy::ConsistentHash { vnodes, bound } => Policy::ConsistentHash {
                vnodes: vnodes.max(1),
                bound: bound.map(|c| if c >= 1.0 { c } else { 1.0 }),
            },
            other => other,
        }
    }
}

/// A chosen backend: its index in the snapshot the pick was made on, and the guard that counts
/// the request as in flight to it until the `Pick` (or the guard taken out of it) is dropped.
#[derive(Debug)]
#[must_use = "the request counts as in flight only while the pick lives"]
pub struct Pick {
    index: usize,
    in_flight: InFlight,
}

impl Pick {
    /// Index of the backend in the list given to [`Balancer::new`]/[`Balancer::update`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// Id of the backend (stays right even if the list was updated since the pick).
    pub fn id(&self) -> &str {
        self.in_flight.backend_id()
    }

    /// The in-flight guard.
    pub fn in_flight(&self) -> &InFlight {
        &self.in_flight
    }

    /// Takes the in-flight guard out, to keep it alive beyond the `Pick`.
    pub fn into_in_flight(self) -> InFlight {
        self.in_flight
    }

    /// Folds the latency of the finished request into the backend's EWMA.
    pub fn record_latency(&self, latency: Duration) {
        self.in_flight.record_latency(latency);
    }
}

/// Chooses a backend for a request. The edge (origin choice) and the gslb (edge choice) use this
/// trait for every policy.
pub trait Picker: Send + Sync {
    /// Chooses a healthy backend that is not in `exclude` (indexes of backends already tried,
    /// for retries); `key` is what consistent hashing hashes (cache key, client subnet) and is
    /// ignored by the other policies. `None` when no backend qualifies.
    fn pick_excluding(&self, key: &[u8], exclude: &[usize]) -> Option<Pick>;

    /// Chooses a healthy backend for `key`; `None` when none is healthy.
    fn pick(&self, key: &[u8]) -> Option<Pick> {
        self.pick_excluding(key, &[])
    }
}

impl<P: Picker + ?Sized> Picker for Arc<P> {
    fn pick_excluding(&self, key: &[u8], exclude: &[usize]) -> Option<Pick> {
        (**self).pick_excluding(key, exclude)
    }
}

/// A [`Policy`] over a set of backends.
///
/// Picks load the current [`Snapshot`] through an `ArcSwap` (no lock, no allocation) and take
/// an [`InFlight`] guard (one `Arc` clone, one atomic increment). [`update`](Balancer::update)
/// and [`set_health`](Balancer::set_health) build a new snapshot and publish it atomically;
/// writers are serialised by a mutex the pick path never touches. The ring and the round-robin
/// schedule are rebuilt only when ids or weights change, never on a health flip.
#[derive(Debug)]
pub struct Balancer {
    policy: Policy,
    current: ArcSwap<Snapshot>,
    cursor: AtomicUsize,
    writer: Mutex<()>,
}

impl Balancer {
    /// A balancer applying `policy` to `backends` (index `i` of a pick is `backends[i]`).
    pub fn new(policy: Policy, backends: Vec<Backend>) -> Self {
        let policy = policy.normalized();
        let snapshot = build(&policy, backends, None);
        Balancer {
            policy,
            current: ArcSwap::from_pointee(snapshot),
            cursor: AtomicUsize::new(0),
            writer: Mutex::new(()),
        }
    }

    /// The policy (with its parameters made valid).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The current snapshot (for metrics and admin pages; picks need not call this).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the backend list, health flags included as given. A backend whose id was
    /// already present keeps its in-flight count and latency; guards of removed backends stay
    /// valid and decrement their own counter.
    pub fn update(&self, backends: Vec<Backend>) {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let prev = self.current.load_full();
        let next = build(&self.policy, backends, Some(&prev));
        self.current.store(Arc::new(next));
    }

    /// Marks backend `index` healthy or not. Returns `false` if there is no such backend.
    pub fn set_health(&self, index: usize, healthy: bool) -> bool {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let prev = self.current.load_full();
        match prev.backends().get(index) {
            None => false,
            Some(b) if b.healthy == healthy => true,
            Some(_) => {
                self.current
                    .store(Arc::new(prev.with_health(index, healthy)));
                true
            }
        }
    }

    /// Marks the backend with this id healthy or not. Returns `false` if there is none.
    pub fn set_health_by_id(&self, id: &str, healthy: bool) -> bool {
        let index = self
            .current
            .load()
            .backends()
            .iter()
            .position(|b| b.id == id);
        index.is_some_and(|i| self.set_health(i, healthy))
    }

    /// Folds a latency sample into backend `index`'s EWMA (prefer [`Pick::record_latency`],
    /// which cannot hit the wrong backend after an update).
    pub fn record_latency(&self, index: usize, latency: Duration) {
        if let Some(state) = self.current.load().state(index) {
            state.record_latency(latency);
        }
    }
}

impl Picker for Balancer {
    fn pick_excluding(&self, key: &[u8], exclude: &[usize]) -> Option<Pick> {
        let snap = self.current.load();
        let index = match &self.policy {
            Policy::ConsistentHash { bound, .. } => {
                ring::pick(snap.ring.as_deref()?, &snap, key, exclude, *bound)
            }
            Policy::LeastConn => least_conn::pick(&snap, exclude),
            Policy::PowerOfTwo { use_latency } => p2c::pick(&snap, exclude, *use_latency),
            Policy::RoundRobin => {
                round_robin::pick(snap.schedule.as_deref()?, &snap, &self.cursor, exclude)
            }
            Policy::Random => random::pick(&snap, exclude),
        }?;
        let in_flight = InFlight::start(snap.state(index)?);
        Some(Pick { index, in_flight })
    }
}

/// Builds a snapshot of `backends`, reusing from `prev` the live state of known ids and the
/// ring/schedule when ids and weights are unchanged.
fn build(policy: &Policy, backends: Vec<Backend>, prev: Option<&Snapshot>) -> Snapshot {
    let mut known: HashMap<&str, &Arc<BackendState>> = prev
        .map(|p| {
            p.backends()
                .iter()
                .map(|b| b.id.as_str())
                .zip(p.states())
                .collect()
        })
        .unwrap_or_default();
    // `remove` so that a duplicated id gets a state of its own.
    let states: Box<[Arc<BackendState>]> = backends
        .iter()
        .map(|b| match known.remove(b.id.as_str()) {
            Some(s) => Arc::clone(s),
            None => BackendState::new(&b.id),
        })
        .collect();
    let same_layout = prev.filter(|p| {
        p.backends().len() == backends.len()
            && p.backends()
                .iter()
                .zip(&backends)
                .all(|(a, b)| a.id == b.id && a.weight == b.weight)
    });
    let (ring, schedule) = match same_layout {
        Some(p) => (p.ring.clone(), p.schedule.clone()),
        None => (
            match policy {
                Policy::ConsistentHash { vnodes, .. } => {
                    Some(Arc::new(Ring::new(&backends, *vnodes)))
                }
                _ => None,
            },
            match policy {
                Policy::RoundRobin => Some(Arc::new(Schedule::new(&backends))),
                _ => None,
            },
        ),
    };
    Snapshot::new(backends.into(), states, ring, schedule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: usize) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend::new(format!("10.2.0.{i}:80"), 1))
            .collect()
    }

    #[test]
    fn ring_is_rebuilt_only_when_ids_or_weights_change() {
        let b = Balancer::new(Policy::consistent_hash(), backends(4));
        let ring = |b: &Balancer| b.snapshot().ring.clone();
        let first = ring(&b);
        assert!(first.is_some());
        b.set_health(2, false);
        assert!(matches!((&first, ring(&b)), (Some(a), Some(c)) if Arc::ptr_eq(a, &c)));
        let mut same = backends(4);
        same[1].healthy = false;
        b.update(same);
        assert!(matches!((&first, ring(&b)), (Some(a), Some(c)) if Arc::ptr_eq(a, &c)));
        let mut heavier = backends(4);
        heavier[1].weight = 2;
        b.update(heavier);
        assert!(matches!((&first, ring(&b)), (Some(a), Some(c)) if !Arc::ptr_eq(a, &c)));
    }

    #[test]
    fn schedule_only_for_round_robin() {
        let b = Balancer::new(Policy::RoundRobin, backends(3));
        let s = b.snapshot();
        assert!(s.schedule.is_some() && s.ring.is_none());
        let sched = s.schedule.clone();
        b.set_health(0, false);
        assert!(
            matches!((&sched, b.snapshot().schedule.clone()), (Some(a), Some(c)) if Arc::ptr_eq(a, &c))
        );
        let b = Balancer::new(Policy::LeastConn, backends(3));
        let s = b.snapshot();
        assert!(s.schedule.is_none() && s.ring.is_none());
    }

    #[test]
    fn policy_parameters_are_made_valid() {
        let b = Balancer::new(
            Policy::ConsistentHash {
                vnodes: 0,
                bound: Some(0.5),
            },
            backends(2),
        );
        assert_eq!(
            b.policy(),
            &Policy::ConsistentHash {
                vnodes: 1,
                bound: Some(1.0)
            }
        );
        let nan = Policy::ConsistentHash {
            vnodes: 160,
            bound: Some(f64::NAN),
        };
        assert_eq!(
            nan.normalized(),
            Policy::ConsistentHash {
                vnodes: 160,
                bound: Some(1.0)
            }
        );
        assert!(b.pick(b"x").is_some());
    }

    #[test]
    fn health_flip_to_the_same_value_publishes_nothing() {
        let b = Balancer::new(Policy::Random, backends(2));
        let before = b.snapshot();
        assert!(b.set_health(0, true));
        assert!(Arc::ptr_eq(&before, &b.snapshot()));
    }
}
