//! Weighted round robin, nginx's smooth variant, lock-free.
//!
//! nginx's smooth weighted round robin keeps a mutable "current weight" per backend and updates
//! all of them on every pick, which needs a lock. Its sequence is periodic, so it is computed
//! once per membership change instead: the [`Schedule`] holds one period (weights divided by
//! their greatest common divisor, so equal weights give `0, 1, …, n-1`), and a pick takes the
//! next entry with one atomic `fetch_add` on a cursor shared across snapshots. Weights 5, 1, 1
//! give `a a b a c a a`, not `a a a a a b c`.
//!
//! A pick skips entries that are unhealthy or excluded and advances the cursor past them too,
//! so that the backend after an unhealthy one does not take its turns as well. A period longer
//! than [`MAX_SCHEDULE`] entries (very uneven large weights) is scaled down to fit, which rounds
//! the shares slightly.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::snapshot::{Backend, Snapshot};

/// Longest period kept; longer ones are scaled down (each backend keeps at least one turn).
pub const MAX_SCHEDULE: u64 = 8192;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// One period of the smooth weighted round-robin sequence of backend indexes.
#[derive(Debug)]
pub(crate) struct Schedule {
    order: Box<[u32]>,
}

impl Schedule {
    pub(crate) fn new(backends: &[Backend]) -> Self {
        let g = backends
            .iter()
            .map(|b| u64::from(b.weight))
            .fold(0, gcd)
            .max(1);
        let mut weights: Vec<u64> = backends.iter().map(|b| u64::from(b.weight) / g).collect();
        let total: u64 = weights.iter().sum();
        if total > MAX_SCHEDULE {
            for w in weights.iter_mut().filter(|w| **w > 0) {
                *w = (*w * MAX_SCHEDULE / total).max(1);
            }
        }
        let total: u64 = weights.iter().sum();
        let total_i = i128::from(total);
        let mut current = vec![0i128; weights.len()];
        let mut order = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for _ in 0..total {
            for (c, &w) in current.iter_mut().zip(&weights) {
                *c += i128::from(w);
            }
            // Highest current weight wins, the first on a tie.
            let mut best = 0;
            for (i, c) in current.iter().enumerate() {
                if *c > current[best] {
                    best = i;
                }
            }
            current[best] -= total_i;
            order.push(u32::try_from(best).unwrap_or(u32::MAX));
        }
        Schedule {
            order: order.into_boxed_slice(),
        }
    }

    /// Entries in one period.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

/// The next candidate in the schedule; `None` if there is no candidate.
pub(crate) fn pick(
    schedule: &Schedule,
    snap: &Snapshot,
    cursor: &AtomicUsize,
    exclude: &[usize],
) -> Option<usize> {
    let len = schedule.order.len();
    if len == 0 || snap.pickable() == 0 {
        return None;
    }
    let start = cursor.fetch_add(1, Ordering::Relaxed);
    for step in 0..len {
        let i = schedule.order[start.wrapping_add(step) % len] as usize;
        if snap.is_candidate(i, exclude) {
            if step > 0 {
                cursor.fetch_add(step, Ordering::Relaxed);
            }
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(backends: Vec<Backend>) -> Snapshot {
        Snapshot::for_tests(backends)
    }

    fn weighted(weights: &[u32]) -> Vec<Backend> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Backend::new(format!("b{i}"), w))
            .collect()
    }

    #[test]
    fn smooth_sequence() {
        let s = Schedule::new(&weighted(&[5, 1, 1]));
        assert_eq!(&*s.order, &[0, 0, 1, 0, 2, 0, 0]);
        let s = Schedule::new(&weighted(&[3, 3, 3]));
        assert_eq!(&*s.order, &[0, 1, 2]);
        let s = Schedule::new(&weighted(&[2, 0, 4]));
        assert_eq!(&*s.order, &[2, 0, 2]);
        assert_eq!(Schedule::new(&[]).len(), 0);
    }

    #[test]
    fn huge_weights_are_scaled() {
        let s = Schedule::new(&weighted(&[1_000_000, 3_000_001, 1]));
        assert!(s.len() as u64 <= MAX_SCHEDULE + 3);
        let count = |b: u32| s.order.iter().filter(|&&i| i == b).count() as f64;
        assert!((count(1) / count(0) - 3.0).abs() < 0.01);
        assert!(count(2) >= 1.0);
    }

    #[test]
    fn rotates_and_respects_weights() {
        let bs = weighted(&[1, 2, 3]);
        let sched = Schedule::new(&bs);
        let s = snap(bs);
        let cursor = AtomicUsize::new(0);
        let mut counts = [0usize; 3];
        for _ in 0..600 {
            if let Some(i) = pick(&sched, &s, &cursor, &[]) {
                counts[i] += 1;
            }
        }
        assert_eq!(counts, [100, 200, 300]);
    }

    #[test]
    fn skipping_does_not_double_the_next_backend() {
        let bs = weighted(&[1, 1, 1, 1]);
        let sched = Schedule::new(&bs);
        let s = snap(bs).with_health(1, false);
        let cursor = AtomicUsize::new(0);
        let mut counts = [0usize; 4];
        for _ in 0..300 {
            if let Some(i) = pick(&sched, &s, &cursor, &[]) {
                counts[i] += 1;
            }
        }
        assert_eq!(counts, [100, 0, 100, 100]);
        assert_eq!(pick(&sched, &s, &cursor, &[0, 2, 3]), None);
        let none = s
            .with_health(0, false)
            .with_health(2, false)
            .with_health(3, false);
        assert_eq!(pick(&sched, &none, &cursor, &[]), None);
    }
}
