//! Least-connections: the candidate with the fewest requests in flight per unit of weight.
//!
//! The cost of a backend is `(in_flight + 1) / weight`, the load it would have per unit of
//! weight after taking this request (Envoy's least-request cost with its default bias of 1), so
//! that on idle backends the heavier one goes first. Costs are compared by cross-multiplying,
//! without division. Ties are broken uniformly at random,
//! so that many idle backends share the first requests instead of the first one taking them all.
//! One pass over the backends, one random draw per tie, no allocation.

use std::cmp::Ordering;

use crate::snapshot::Snapshot;

/// Compares the costs `(load_a + 1) / weight_a` and `(load_b + 1) / weight_b`.
#[inline]
pub(crate) fn compare(load_a: usize, weight_a: u32, load_b: usize, weight_b: u32) -> Ordering {
    let a = (load_a as u128 + 1) * u128::from(weight_b);
    let b = (load_b as u128 + 1) * u128::from(weight_a);
    a.cmp(&b)
}

/// The least-loaded candidate, ties at random; `None` if there is no candidate.
pub(crate) fn pick(snap: &Snapshot, exclude: &[usize]) -> Option<usize> {
    // One pass; among equal costs, reservoir sampling keeps the k-th tie with probability 1/k,
    // so every tie is equally likely without a second pass over the backends.
    let mut best: Option<(usize, usize, u32)> = None;
    let mut ties = 0usize;
    for (i, load, weight) in snap.candidates(exclude) {
        match best {
            None => {
                best = Some((i, load, weight));
                ties = 1;
            }
            Some((_, bl, bw)) => match compare(load, weight, bl, bw) {
                Ordering::Less => {
                    best = Some((i, load, weight));
                    ties = 1;
                }
                Ordering::Equal => {
                    ties += 1;
                    if fastrand::usize(0..ties) == 0 {
                        best = Some((i, load, weight));
                    }
                }
                Ordering::Greater => {}
            },
        }
    }
    best.map(|(i, _, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inflight::InFlight;
    use crate::snapshot::Backend;

    fn snap(backends: Vec<Backend>) -> Snapshot {
        Snapshot::for_tests(backends)
    }

    fn hold(s: &Snapshot, i: usize, n: usize) -> Vec<InFlight> {
        let Some(state) = s.state(i) else {
            panic!("no backend {i}")
        };
        (0..n).map(|_| InFlight::start(state)).collect()
    }

    #[test]
    fn picks_least_loaded() {
        let s = snap((0..4).map(|i| Backend::new(format!("b{i}"), 1)).collect());
        let _g0 = hold(&s, 0, 3);
        let _g1 = hold(&s, 1, 1);
        let _g2 = hold(&s, 2, 2);
        let _g3 = hold(&s, 3, 5);
        assert_eq!(pick(&s, &[]), Some(1));
        assert_eq!(pick(&s, &[1]), Some(2));
        let sick = s.with_health(1, false);
        assert_eq!(pick(&sick, &[]), Some(2));
    }

    #[test]
    fn ties_are_broken_at_random() {
        let s = snap((0..5).map(|i| Backend::new(format!("b{i}"), 1)).collect());
        // Backends 1, 2 and 4 tie at zero load; 0 and 3 are busier.
        let _g0 = hold(&s, 0, 1);
        let _g3 = hold(&s, 3, 2);
        let mut counts = [0usize; 5];
        for _ in 0..30_000 {
            if let Some(i) = pick(&s, &[]) {
                counts[i] += 1;
            }
        }
        assert_eq!(counts[0] + counts[3], 0, "{counts:?}");
        for i in [1, 2, 4] {
            assert!((9_000..11_000).contains(&counts[i]), "{counts:?}");
        }
    }

    #[test]
    fn weights_scale_the_load() {
        let s = snap(vec![Backend::new("light", 1), Backend::new("heavy", 3)]);
        // Idle: the heavier one costs less.
        assert_eq!(pick(&s, &[]), Some(1));
        // Taking picks one at a time, the heavy one ends with three times the load.
        let mut guards = Vec::new();
        for _ in 0..400 {
            let Some(i) = pick(&s, &[]) else {
                panic!("no pick")
            };
            guards.extend(hold(&s, i, 1));
        }
        assert_eq!((s.load(0), s.load(1)), (100, 300));
    }

    #[test]
    fn none_when_nothing_healthy() {
        let s = snap(vec![Backend::new("a", 1)]).with_health(0, false);
        assert_eq!(pick(&s, &[]), None);
        let s = snap(vec![Backend::new("a", 0)]);
        assert_eq!(pick(&s, &[]), None);
    }
}
