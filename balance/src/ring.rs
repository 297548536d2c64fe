//! Consistent hashing: a Ketama ring with virtual nodes, weighted backends, and optional
//! bounded loads.
//!
//! # Layout (nginx-compatible)
//!
//! The points are placed exactly as nginx's `hash $key consistent` (and pingora-ketama for IPv4
//! addresses) place them: a backend id `host:port` is split at its last colon when only digits
//! follow, the base hash is CRC-32 of `host`, a NUL byte and `port`, and the backend gets
//! `weight × vnodes` points, each the CRC-32 of the base followed by the previous point's hash
//! (little endian, starting from 0). A key is hashed with CRC-32 ([`key_hash`]) and goes to the
//! first point clockwise at or after its hash, wrapping at the end. With `vnodes = 160` (nginx's
//! constant, [`DEFAULT_VNODES`]) a key maps to the same `host:port` an nginx with the same
//! servers and weights would pick, so the CDN can replace or sit beside such a tier without
//! moving its cache. (For IPv6 ids nginx hashes the host with its brackets, `[::1]`, and so do
//! we; pingora-ketama hashes it without.) When two points collide, the one of the smaller id is
//! kept.
//!
//! # Why not pingora-ketama
//!
//! `pingora-ketama` (0.9.1) builds the same ring but fixes the number of points per weight unit
//! at 160, accepts only `SocketAddr` nodes (the edge's origins may be host names, the gslb's
//! edges carry names), and walks the ring as addresses rather than backend indexes; bounded loads
//! and health skipping need the index of each point's backend. The ring itself is short,
//! so it is written here, point for point compatible, with a test against nginx's known answers.
//!
//! # Bounded loads
//!
//! With a bound `c` (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads",
//! 2018) a key goes to the first candidate clockwise whose in-flight count is below its capacity
//! `ceil(c × (m + 1) × w / W)`, where `m` is the total in flight over the candidates, `w` the
//! backend's weight and `W` the candidates' total weight (`ceil(c × (m + 1) / n)` unweighted).
//! The capacities add up to more than `m`, so a backend with room always exists, and no backend
//! ever exceeds `ceil(c × average)` while loads only grow. Computing `m` reads every candidate's
//! counter: O(n) per pick, only when a bound is set. Concurrent picks read the counters without
//! coordination, so under contention a backend may go a request or two over its capacity.

use crate::snapshot::{Backend, Snapshot};

/// Virtual nodes (ring points) per unit of weight by default: nginx's constant.
pub const DEFAULT_VNODES: u32 = 160;

/// The hash of a key on the ring: CRC-32 (IEEE), as nginx and pingora-ketama use.
#[inline]
pub fn key_hash(key: &[u8]) -> u32 {
    crc32fast::hash(key)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Point {
    hash: u32,
    backend: u32,
}

/// A consistent-hash ring of backend indexes.
#[derive(Debug, Clone)]
pub struct Ring {
    points: Box<[Point]>,
}

/// Splits `host:port` as nginx does: at the last colon if only digits follow it.
fn split_host_port(id: &str) -> (&str, &str) {
    let id = id.strip_prefix("unix:").unwrap_or(id);
    match id.rfind(':') {
        Some(at) if id[at + 1..].bytes().all(|c| c.is_ascii_digit()) => (&id[..at], &id[at + 1..]),
        _ => (id, ""),
    }
}

impl Ring {
    /// Builds the ring of `backends` with `vnodes` points per unit of weight. Backends of
    /// weight 0 get no point. Health is not part of the ring: picks skip unhealthy backends
    /// while walking it, so a health flip needs no rebuild.
    pub fn new(backends: &[Backend], vnodes: u32) -> Self {
        let total: u64 = backends
            .iter()
            .map(|b| u64::from(b.weight) * u64::from(vnodes))
            .sum();
        let mut points = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for (index, b) in backends.iter().enumerate() {
            let Ok(backend) = u32::try_from(index) else {
                break;
            };
            let (host, port) = split_host_port(&b.id);
            let mut base = crc32fast::Hasher::new();
            base.update(host.as_bytes());
            base.update(&[0]);
            base.update(port.as_bytes());
            let mut prev: u32 = 0;
            for _ in 0..u64::from(b.weight) * u64::from(vnodes) {
                let mut h = base.clone();
                h.update(&prev.to_le_bytes());
                prev = h.finalize();
                points.push(Point {
                    hash: prev,
                    backend,
                });
            }
        }
        // Sort by hash, ties by id so that which point survives a collision does not depend on
        // the order of the backend list.
        points.sort_unstable_by(|a, b| {
            a.hash.cmp(&b.hash).then_with(|| {
                let ia = backends.get(a.backend as usize).map(|b| b.id.as_str());
                let ib = backends.get(b.backend as usize).map(|b| b.id.as_str());
                ia.cmp(&ib).then(a.backend.cmp(&b.backend))
            })
        });
        points.dedup_by(|later, kept| later.hash == kept.hash);
        Ring {
            points: points.into_boxed_slice(),
        }
    }

    /// Number of points on the ring.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring has no point (no backend of non-zero weight).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Position of the first point at or after `hash`, wrapping to 0.
    #[inline]
    fn start(&self, hash: u32) -> usize {
        let i = self.points.partition_point(|p| p.hash < hash);
        if i == self.points.len() {
            0
        } else {
            i
        }
    }

    /// The backend index owning `key`, health not considered; `None` on an empty ring.
    pub fn home(&self, key: &[u8]) -> Option<usize> {
        self.points
            .get(self.start(key_hash(key)))
            .map(|p| p.backend as usize)
    }

    /// Backend indexes of the points clockwise from `key`'s position, one full turn (a backend
    /// appears once per point it has).
    pub fn walk(&self, key: &[u8]) -> impl Iterator<Item = usize> + '_ {
        let start = self.start(key_hash(key));
        let (tail, head) = self.points.split_at(start.min(self.points.len()));
        head.iter().chain(tail).map(|p| p.backend as usize)
    }
}

/// Picks for `key` on `ring`: the first candidate clockwise, or with `bound = Some(c)` the first
/// one under its bounded-load capacity (see the module doc).
pub(crate) fn pick(
    ring: &Ring,
    snap: &Snapshot,
    key: &[u8],
    exclude: &[usize],
    bound: Option<f64>,
) -> Option<usize> {
    if snap.pickable() == 0 {
        return None;
    }
    let Some(c) = bound else {
        return ring.walk(key).find(|&i| snap.is_candidate(i, exclude));
    };
    // Total load and weight over the candidates.
    let mut load = 0usize;
    let mut weight = 0u64;
    for (_, l, w) in snap.candidates(exclude) {
        load += l;
        weight += u64::from(w);
    }
    if weight == 0 {
        return None;
    }
    let per_weight = c * (load + 1) as f64 / weight as f64;
    let mut home = None;
    for i in ring.walk(key) {
        if !snap.is_candidate(i, exclude) {
            continue;
        }
        home.get_or_insert(i);
        let capacity = (per_weight * f64::from(snap.weight(i))).ceil();
        if (snap.load(i) + 1) as f64 <= capacity {
            return Some(i);
        }
    }
    // Only reachable when concurrent picks raced the counters: fall back to the home backend.
    home
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inflight::InFlight;

    fn backends(n: usize) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend::new(format!("10.0.{}.{}:80", i / 256, i % 256), 1))
            .collect()
    }

    fn snap(backends: Vec<Backend>) -> Snapshot {
        Snapshot::for_tests(backends)
    }

    fn ids(ring: &Ring, bs: &[Backend], key: &[u8]) -> String {
        ring.home(key)
            .and_then(|i| bs.get(i))
            .map(|b| b.id.clone())
            .unwrap_or_default()
    }

    /// Answers of nginx's `hash $key consistent` (as recorded by pingora-ketama's tests).
    #[test]
    fn matches_nginx_layout() {
        let bs = vec![
            Backend::new("127.0.0.1:7777", 1),
            Backend::new("127.0.0.1:7778", 1),
        ];
        let ring = Ring::new(&bs, DEFAULT_VNODES);
        for (key, want) in [
            ("/some/path", "127.0.0.1:7778"),
            ("/some/longer/path", "127.0.0.1:7777"),
            ("/sad/zaidoon", "127.0.0.1:7778"),
            ("/g", "127.0.0.1:7777"),
            (
                "/pingora/team/is/cool/and/this/is/a/long/uri",
                "127.0.0.1:7778",
            ),
            ("/i/am/not/confident/in/this/code", "127.0.0.1:7777"),
        ] {
            assert_eq!(ids(&ring, &bs, key.as_bytes()), want, "{key}");
        }

        let bs: Vec<_> = (1..11)
            .map(|u| Backend::new(format!("127.0.0.{u}:6443"), 1))
            .collect();
        let ring = Ring::new(&bs, DEFAULT_VNODES);
        assert_eq!(ids(&ring, &bs, b"a"), "127.0.0.10:6443");
        assert_eq!(ids(&ring, &bs, b"b"), "127.0.0.5:6443");

        let bs: Vec<_> = (7777..7780)
            .map(|p| Backend::new(format!("127.0.0.1:{p}"), 1))
            .collect();
        let ring = Ring::new(&bs, DEFAULT_VNODES);
        let walked: Vec<u16> = ring
            .walk(b"doghash")
            .take(8)
            .map(|i| 7777 + i as u16)
            .collect();
        assert_eq!(walked, [7778, 7779, 7779, 7777, 7777, 7778, 7778, 7779]);
    }

    #[test]
    fn host_port_split() {
        assert_eq!(split_host_port("10.0.0.1:443"), ("10.0.0.1", "443"));
        assert_eq!(split_host_port("origin.example"), ("origin.example", ""));
        assert_eq!(split_host_port("[::1]:80"), ("[::1]", "80"));
        assert_eq!(split_host_port("unix:/run/o.sock"), ("/run/o.sock", ""));
        assert_eq!(split_host_port("a:b"), ("a:b", ""));
    }

    #[test]
    fn empty_and_zero_weight() {
        let ring = Ring::new(&[], DEFAULT_VNODES);
        assert!(ring.is_empty());
        assert_eq!(ring.home(b"k"), None);
        assert_eq!(ring.walk(b"k").count(), 0);
        let bs = vec![Backend::new("a:1", 0), Backend::new("b:1", 2)];
        let ring = Ring::new(&bs, 10);
        assert_eq!(ring.len(), 20);
        assert!(ring.walk(b"k").all(|i| i == 1));
    }

    #[test]
    fn same_key_same_backend_and_weights_double_share() {
        let mut bs = backends(10);
        bs[3].weight = 2;
        let ring = Ring::new(&bs, DEFAULT_VNODES);
        let again = Ring::new(&bs, DEFAULT_VNODES);
        let mut counts = [0usize; 10];
        for k in 0..20_000u32 {
            let key = k.to_le_bytes();
            let home = ring.home(&key);
            assert_eq!(home, ring.home(&key));
            assert_eq!(home, again.home(&key));
            if let Some(i) = home {
                counts[i] += 1;
            }
        }
        let others = (counts.iter().sum::<usize>() - counts[3]) as f64 / 9.0;
        let ratio = counts[3] as f64 / others;
        eprintln!("weight 2 vs 1 share ratio: {ratio:.2}");
        assert!((1.6..2.4).contains(&ratio), "{counts:?}");
    }

    #[test]
    fn walk_skips_unhealthy_and_excluded() {
        let bs = backends(5);
        let ring = Ring::new(&bs, DEFAULT_VNODES);
        let key = b"some key";
        let home = ring.home(key).unwrap_or(0);
        let s = snap(bs.clone());
        assert_eq!(pick(&ring, &s, key, &[], None), Some(home));
        let second = pick(&ring, &s, key, &[home], None);
        assert!(second.is_some() && second != Some(home));
        let sick = s.with_health(home, false);
        assert_eq!(pick(&ring, &sick, key, &[], None), second);
        let mut none = s.with_health(0, false);
        for i in 1..5 {
            none = none.with_health(i, false);
        }
        assert_eq!(pick(&ring, &none, key, &[], None), None);
        assert_eq!(pick(&ring, &none, key, &[], Some(1.25)), None);
        assert_eq!(pick(&ring, &s, key, &[0, 1, 2, 3, 4], Some(1.25)), None);
    }

    /// Keys `key-0 … key-(n-1)`.
    fn keys(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("key-{i}").into_bytes()).collect()
    }

    /// Removes backend `removed` from `bs` (whose ring put `keys[k]` on `before[k]`): returns
    /// the fraction of keys that moved, and checks that every moved key was on the removed
    /// backend (none moves between survivors).
    fn removal(bs: &[Backend], before: &[usize], removed: usize, keys: &[Vec<u8>]) -> f64 {
        let mut rest = bs.to_vec();
        rest.remove(removed);
        let after = Ring::new(&rest, DEFAULT_VNODES);
        let mut moved = 0usize;
        for (key, &b) in keys.iter().zip(before) {
            let a = after.home(key).map(|i| rest[i].id.as_str());
            if a != Some(bs[b].id.as_str()) {
                assert_eq!(b, removed, "a key moved between survivors");
                moved += 1;
            }
        }
        moved as f64 / keys.len() as f64
    }

    /// Figure: keys moved when one of N backends goes, N = 10 and 100, 100k keys. At N = 10
    /// every backend is removed in turn; at N = 100 every tenth one and the one with the most
    /// keys (the worst case: exactly its keys move).
    #[test]
    fn removal_moves_at_most_its_share() {
        let keys = keys(100_000);
        for n in [10usize, 100] {
            let bs = backends(n);
            let ring = Ring::new(&bs, DEFAULT_VNODES);
            let before: Vec<usize> = keys.iter().filter_map(|k| ring.home(k)).collect();
            assert_eq!(before.len(), keys.len());
            let mut counts = vec![0usize; n];
            for &b in &before {
                counts[b] += 1;
            }
            let biggest = (0..n).max_by_key(|&i| counts[i]).unwrap_or(0);
            let mut removals: Vec<usize> = (0..n).step_by(n / 10).collect();
            if !removals.contains(&biggest) {
                removals.push(biggest);
            }
            let ideal = 1.0 / n as f64;
            let (mut worst, mut sum) = (0.0f64, 0.0);
            for &removed in &removals {
                let moved = removal(&bs, &before, removed, &keys);
                assert!(
                    moved <= ideal + 0.01,
                    "N={n}, removing #{removed}: moved {moved}"
                );
                assert!(moved > 0.0);
                worst = worst.max(moved);
                sum += moved;
            }
            eprintln!(
                "N = {n}: removing one backend moved {:.3}% of keys on average over {} removals, {:.3}% at worst (ideal {:.3}%, bound {:.3}%)",
                sum / removals.len() as f64 * 100.0,
                removals.len(),
                worst * 100.0,
                ideal * 100.0,
                (ideal + 0.01) * 100.0
            );
        }
    }

    /// Figure: max/mean key share with 160 vnodes at N = 100 (100k keys).
    #[test]
    fn balance_at_160_vnodes() {
        let n = 100;
        let bs = backends(n);
        let ring = Ring::new(&bs, DEFAULT_VNODES);
        let keys = keys(100_000);
        let mut counts = vec![0usize; n];
        for key in &keys {
            if let Some(i) = ring.home(key) {
                counts[i] += 1;
            }
        }
        let mean = keys.len() as f64 / n as f64;
        let max = counts.iter().copied().max().unwrap_or(0) as f64;
        let min = counts.iter().copied().min().unwrap_or(0) as f64;
        let var = counts
            .iter()
            .map(|&c| (c as f64 - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        eprintln!(
            "N = 100, 160 vnodes, 100k keys: max/mean {:.3}, min/mean {:.3}, std dev {:.1}%",
            max / mean,
            min / mean,
            var.sqrt() / mean * 100.0
        );
        assert!(max / mean <= 1.25, "max/mean {}", max / mean);
    }

    /// Figure: with bounded loads no backend's in-flight count exceeds ceil(c × average), on a
    /// skewed (Zipf 1.0 over 1000 keys) stream of requests that are all held in flight.
    #[test]
    fn bounded_loads_cap() {
        let n = 100;
        let bs = backends(n);
        let ring = Ring::new(&bs, DEFAULT_VNODES);
        let s = snap(bs);
        // Zipf(1.0) over 1000 distinct keys by inverse transform on the harmonic prefix sums.
        let distinct = 1000;
        let mut harmonic = Vec::with_capacity(distinct);
        let mut acc = 0.0;
        for r in 1..=distinct {
            acc += 1.0 / r as f64;
            harmonic.push(acc);
        }
        let mut rng = fastrand::Rng::with_seed(7);
        let requests = 10_000;
        let draws: Vec<usize> = (0..requests)
            .map(|_| {
                let u = rng.f64() * acc;
                harmonic.partition_point(|&h| h < u).min(distinct - 1)
            })
            .collect();
        for bound in [None, Some(1.25), Some(1.1)] {
            let mut guards: Vec<InFlight> = Vec::with_capacity(requests);
            let mut off_home = 0usize;
            for &k in &draws {
                let key = format!("object-{k}");
                let i = pick(&ring, &s, key.as_bytes(), &[], bound);
                let Some(i) = i else { panic!("no pick") };
                if Some(i) != ring.home(key.as_bytes()) {
                    off_home += 1;
                }
                let Some(state) = s.state(i) else {
                    panic!("bad index")
                };
                guards.push(InFlight::start(state));
            }
            let loads: Vec<usize> = s.states().iter().map(|st| st.in_flight()).collect();
            let max = loads.iter().copied().max().unwrap_or(0);
            let avg = requests as f64 / n as f64;
            let off = off_home as f64 / requests as f64 * 100.0;
            match bound {
                None => eprintln!(
                    "bounded loads off: hottest backend {:.2}x mean ({max} in flight)",
                    max as f64 / avg
                ),
                Some(c) => {
                    let cap = (c * avg).ceil() as usize;
                    eprintln!(
                        "bounded loads c = {c}: hottest {max} in flight, ceil(c x avg) = {cap}, {:.2}x mean, {off:.1}% of requests off their home backend",
                        max as f64 / avg
                    );
                    assert!(max <= cap, "max {max} > cap {cap}");
                }
            }
            drop(guards);
            assert!(s.states().iter().all(|st| st.in_flight() == 0));
        }
    }

    #[test]
    fn bounded_loads_cap_weighted() {
        let mut bs = backends(8);
        for (i, b) in bs.iter_mut().enumerate() {
            b.weight = 1 + (i as u32 % 3);
        }
        let ring = Ring::new(&bs, DEFAULT_VNODES);
        let s = snap(bs.clone());
        let total_w: u32 = bs.iter().map(|b| b.weight).sum();
        let mut guards = Vec::new();
        for k in 0..2_000u32 {
            // A very hot key: all requests on one key.
            let key = if k % 2 == 0 {
                b"hot".to_vec()
            } else {
                k.to_le_bytes().to_vec()
            };
            let Some(i) = pick(&ring, &s, &key, &[], Some(1.25)) else {
                panic!("no pick")
            };
            let Some(state) = s.state(i) else {
                panic!("bad index")
            };
            guards.push(InFlight::start(state));
            let m = guards.len() as f64;
            for (j, b) in bs.iter().enumerate() {
                let cap = (1.25 * m / f64::from(total_w) * f64::from(b.weight)).ceil() as usize;
                assert!(s.load(j) <= cap, "backend {j}: {} > {cap}", s.load(j));
            }
        }
    }
}
