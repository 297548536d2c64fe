//! Power of two choices: draw two distinct candidates at random (each with probability
//! proportional to its weight) and take the less loaded one.
//!
//! Load is `(in_flight + 1) / weight` as in [least-connections](crate::least_conn). With
//! `use_latency`, once both backends have a latency sample the cost is that load times the
//! backend's latency EWMA (Finagle's "peak EWMA" idea: a slow backend counts as busier); until
//! then the in-flight load decides alone. Two O(log n) weighted draws, no allocation.
//!
//! Compared with one random choice, two choices shrink the gap between the busiest backend and
//! the mean from about `log n / log log n` to about `log log n` (Mitzenmacher), measured in the
//! crate doc.

use std::cmp::Ordering;

use crate::least_conn;
use crate::snapshot::Snapshot;

/// The better of two weighted random candidates; the only one if there is one.
pub(crate) fn pick(snap: &Snapshot, exclude: &[usize], use_latency: bool) -> Option<usize> {
    let a = snap.sample(exclude, None)?;
    let Some(b) = snap.sample(exclude, Some(a)) else {
        return Some(a);
    };
    let (la, wa) = (snap.load(a), snap.weight(a));
    let (lb, wb) = (snap.load(b), snap.weight(b));
    let latencies = if use_latency {
        let ea = snap.state(a).and_then(|s| s.latency_micros());
        let eb = snap.state(b).and_then(|s| s.latency_micros());
        ea.zip(eb)
    } else {
        None
    };
    let order = match latencies {
        Some((ea, eb)) => {
            let ca = ea * (la as f64 + 1.0) / f64::from(wa);
            let cb = eb * (lb as f64 + 1.0) / f64::from(wb);
            ca.partial_cmp(&cb).unwrap_or(Ordering::Equal)
        }
        None => least_conn::compare(la, wa, lb, wb),
    };
    // Both were drawn at random, so on a tie the first is as good as a coin flip.
    Some(if order == Ordering::Greater { b } else { a })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inflight::InFlight;
    use crate::snapshot::Backend;
    use std::time::Duration;

    fn snap(backends: Vec<Backend>) -> Snapshot {
        Snapshot::for_tests(backends)
    }

    #[test]
    fn takes_the_less_loaded_of_two() {
        let s = snap(vec![Backend::new("a", 1), Backend::new("b", 1)]);
        let Some(st) = s.state(0) else {
            panic!("no state")
        };
        let _busy: Vec<_> = (0..3).map(|_| InFlight::start(st)).collect();
        for _ in 0..100 {
            assert_eq!(pick(&s, &[], false), Some(1));
        }
        assert_eq!(pick(&s, &[1], false), Some(0));
        assert_eq!(pick(&s.with_health(1, false), &[], false), Some(0));
        assert_eq!(pick(&s, &[0, 1], false), None);
    }

    #[test]
    fn latency_makes_a_slow_backend_look_busy() {
        let s = snap(vec![Backend::new("slow", 1), Backend::new("fast", 1)]);
        let (Some(slow), Some(fast)) = (s.state(0), s.state(1)) else {
            panic!("no state")
        };
        slow.record_latency(Duration::from_millis(50));
        fast.record_latency(Duration::from_millis(5));
        // The fast one carries twice the requests and still costs less.
        let _g: Vec<_> = (0..2).map(|_| InFlight::start(fast)).collect();
        for _ in 0..50 {
            assert_eq!(pick(&s, &[], true), Some(1));
            assert_eq!(pick(&s, &[], false), Some(0));
        }
    }
}
