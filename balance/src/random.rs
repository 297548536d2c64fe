//! Weighted random: each candidate with probability proportional to its weight. The baseline the
//! other policies are measured against.

use crate::snapshot::Snapshot;

/// A weighted random candidate; `None` if there is no candidate.
pub(crate) fn pick(snap: &Snapshot, exclude: &[usize]) -> Option<usize> {
    snap.sample(exclude, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inflight::BackendState;
    use crate::snapshot::Backend;

    #[test]
    fn respects_weights_and_health() {
        let backends: Vec<_> = [1u32, 2, 4, 4]
            .iter()
            .enumerate()
            .map(|(i, &w)| Backend::new(format!("b{i}"), w))
            .collect();
        let states = backends.iter().map(|b| BackendState::new(&b.id)).collect();
        let s = Snapshot::new(backends.into(), states, None, None).with_health(3, false);
        let mut counts = [0usize; 4];
        for _ in 0..70_000 {
            if let Some(i) = pick(&s, &[]) {
                counts[i] += 1;
            }
        }
        assert_eq!(counts[3], 0);
        let expect = [10_000.0, 20_000.0, 40_000.0];
        for (c, e) in counts.iter().zip(expect) {
            assert!((*c as f64 - e).abs() < e * 0.05, "{counts:?}");
        }
        assert_eq!(pick(&s, &[0, 1, 2]), None);
    }
}
