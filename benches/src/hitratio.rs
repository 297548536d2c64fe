//! `cdn bench hitratio`: replays a request trace through our cache policies in-process, next to
//! the bounds they are judged against, and reports miss ratios side by side.
//!
//! * `lru` and `lfu` are moka caches built as the edge builds its storage
//!   (`edge/src/storage/mod.rs`: `EvictionPolicy::lru()` or `EvictionPolicy::tiny_lfu()`, and in
//!   byte mode a weigher in KiB against a capacity in KiB). moka applies its policy in batches;
//!   the replay runs moka's pending work after every insert, so each eviction decision sees
//!   every access before it, as it would at the edge's steady state, and results do not depend
//!   on thread timing.
//! * `belady`: Bélády's offline optimum, evicting the object whose next request is farthest in
//!   the future, and not admitting an object that is needed later than everything cached (a CDN
//!   cache may bypass). Exact for object-count caches; for byte-sized caches the same rule is a
//!   strong heuristic (the exact variable-size optimum is NP-hard).
//! * `top_c`: the "keep the C most popular" bound: the C objects requested most over the whole
//!   trace, admitted on their first request and never evicted. Under independent requests (a
//!   Zipf trace) this is the best any online policy can do (the A0 policy), so it is the line
//!   `lfu` is measured against; like every policy here it pays the compulsory first-request miss.

use crate::workload::{KeySampler, Pick, Popularity, SizeModel, Trace};
use crate::BenchError;
use cdn_config::HumanSize;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::str::FromStr;

/// How big the simulated cache is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CacheSize {
    /// At most this many objects.
    Objects(u64),
    /// At most this many bytes of objects.
    Bytes(u64),
    /// This percentage of the trace's distinct keys, in objects.
    PercentOfKeys(f64),
}

impl FromStr for CacheSize {
    type Err = String;

    /// `1000` (objects), `64MiB` (bytes) or `1%` (of the distinct keys).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("bad percentage {s:?}"))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!(
                    "cache size {s:?}: a percentage must be in (0, 100]"
                ));
            }
            return Ok(Self::PercentOfKeys(p));
        }
        if let Ok(n) = s.parse::<u64>() {
            return if n == 0 {
                Err("cache size must be at least 1 object".into())
            } else {
                Ok(Self::Objects(n))
            };
        }
        let bytes = s.parse::<HumanSize>()?.bytes();
        if bytes == 0 {
            return Err("cache size must be more than 0 bytes".into());
        }
        Ok(Self::Bytes(bytes))
    }
}

/// Where the requests come from.
#[derive(Clone, Debug)]
pub enum TraceSource {
    /// A trace file: `KEY_OR_URL [SIZE]` per line.
    File(PathBuf),
    /// A generated Zipf trace.
    Zipf {
        /// The skew.
        alpha: f64,
        /// Distinct keys.
        keys: u64,
        /// Trace length.
        requests: u64,
        /// Generator seed.
        seed: u64,
    },
}

/// What `cdn bench hitratio` was asked to do.
#[derive(Clone, Debug)]
pub struct HitRatioOptions {
    /// The requests.
    pub source: TraceSource,
    /// Object sizes for keys the trace gives no size for (needed for a byte-sized cache).
    pub sizes: Option<SizeModel>,
    /// The cache's size.
    pub cache_size: CacheSize,
}

/// One request of the replay: a dense key number and the object's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Key number, `0..distinct`.
    pub key: u32,
    /// Object size in bytes (1 when sizes are unknown).
    pub size: u64,
}

/// The capacity in the unit the replay uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capacity {
    /// Objects.
    Objects(u64),
    /// Bytes.
    Bytes(u64),
}

/// How one policy did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PolicyResult {
    /// misses / requests.
    pub miss_ratio: f64,
    /// Bytes missed / bytes requested.
    pub byte_miss_ratio: f64,
    /// Requests served from the cache.
    pub hits: u64,
    /// Requests that went to the origin.
    pub misses: u64,
}

/// The trace as replayed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceInfo {
    /// Where it came from.
    pub source: String,
    /// Requests.
    pub requests: u64,
    /// Distinct keys.
    pub distinct_keys: u64,
    /// Bytes requested.
    pub bytes: u64,
    /// distinct keys / requests: the misses no policy can avoid.
    pub compulsory_miss_ratio: f64,
}

/// The cache as sized.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CacheInfo {
    /// The size as given.
    pub size: String,
    /// Capacity in objects (object-count caches).
    pub objects: Option<u64>,
    /// Capacity in bytes (byte-sized caches).
    pub bytes: Option<u64>,
}

/// The results of `cdn bench hitratio`, as printed by `--json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HitRatioReport {
    /// Miss ratios by policy: `lru`, `lfu`, `belady`, `top_c`.
    pub policies: BTreeMap<String, PolicyResult>,
    /// The trace.
    pub trace: TraceInfo,
    /// The cache.
    pub cache: CacheInfo,
    /// `lfu`'s miss ratio minus `top_c`'s, in percentage points (the target: ≤ 2).
    pub lfu_gap_points: f64,
}

/// Builds the trace, replays it through every policy (in parallel) and reports.
pub fn run(opts: &HitRatioOptions) -> Result<HitRatioReport, BenchError> {
    let (requests, source) = build_trace(opts)?;
    // Keys are dense from 0 in order of first request for traces, but Zipf ranks that never
    // came up leave gaps: count the keys actually requested.
    let key_space = requests
        .iter()
        .map(|r| r.key as usize + 1)
        .max()
        .unwrap_or(0);
    let mut requested = vec![false; key_space];
    for r in &requests {
        requested[r.key as usize] = true;
    }
    let distinct = requested.iter().filter(|&&seen| seen).count() as u64;
    let capacity = match opts.cache_size {
        CacheSize::Objects(n) => Capacity::Objects(n),
        CacheSize::Bytes(b) => Capacity::Bytes(b),
        CacheSize::PercentOfKeys(p) => {
            Capacity::Objects(((distinct as f64 * p / 100.0).round() as u64).max(1))
        }
    };
    let policies = replay_all(&requests, capacity);
    let bytes = requests.iter().map(|r| r.size).sum();
    let gap = (policies["lfu"].miss_ratio - policies["top_c"].miss_ratio) * 100.0;
    Ok(HitRatioReport {
        policies,
        trace: TraceInfo {
            source,
            requests: requests.len() as u64,
            distinct_keys: distinct,
            bytes,
            compulsory_miss_ratio: distinct as f64 / requests.len().max(1) as f64,
        },
        cache: CacheInfo {
            size: match opts.cache_size {
                CacheSize::Objects(n) => format!("{n} objects"),
                CacheSize::Bytes(b) => HumanSize::from_bytes(b).to_string(),
                CacheSize::PercentOfKeys(p) => format!("{p}% of distinct keys"),
            },
            objects: match capacity {
                Capacity::Objects(n) => Some(n),
                Capacity::Bytes(_) => None,
            },
            bytes: match capacity {
                Capacity::Bytes(b) => Some(b),
                Capacity::Objects(_) => None,
            },
        },
        lfu_gap_points: gap,
    })
}

/// Every policy's result on `requests`, computed on parallel threads.
pub fn replay_all(requests: &[Request], capacity: Capacity) -> BTreeMap<String, PolicyResult> {
    std::thread::scope(|s| {
        let lru = s.spawn(|| replay_moka(requests, capacity, EvictionPolicy::lru()));
        let lfu = s.spawn(|| replay_moka(requests, capacity, EvictionPolicy::tiny_lfu()));
        let belady = s.spawn(|| replay_belady(requests, capacity));
        let top_c = replay_top_c(requests, capacity);
        let join = |h: std::thread::ScopedJoinHandle<'_, PolicyResult>| {
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        };
        BTreeMap::from([
            ("lru".to_string(), join(lru)),
            ("lfu".to_string(), join(lfu)),
            ("belady".to_string(), join(belady)),
            ("top_c".to_string(), top_c),
        ])
    })
}

fn build_trace(opts: &HitRatioOptions) -> Result<(Vec<Request>, String), BenchError> {
    let byte_sized = matches!(opts.cache_size, CacheSize::Bytes(_));
    match &opts.source {
        TraceSource::Zipf {
            alpha,
            keys,
            requests,
            seed,
        } => {
            if *keys > u64::from(u32::MAX) {
                return Err(BenchError::usage("--keys must be below 2^32"));
            }
            if *requests == 0 {
                return Err(BenchError::usage("--requests must be at least 1"));
            }
            if byte_sized && opts.sizes.is_none() {
                return Err(BenchError::usage(
                    "a byte-sized cache needs object sizes: add --size (e.g. 1KiB..1MiB) or give a % or an object count",
                ));
            }
            let popularity = Popularity::zipf(*alpha, *keys)?;
            let mut sampler = KeySampler::new(&popularity, *seed)?;
            // Zipf ranks are keys 1..=K; the replay's keys are dense from 0.
            let out = (0..*requests)
                .map(|seq| {
                    let k = match sampler.pick(seq) {
                        Pick::Key(k) => k,
                        _ => 1,
                    };
                    Request {
                        key: (k - 1) as u32,
                        size: opts.sizes.map_or(1, |s| s.size_of(k)),
                    }
                })
                .collect::<Vec<_>>();
            Ok((
                out,
                popularity.to_string() + &format!(", {requests} requests"),
            ))
        }
        TraceSource::File(path) => {
            let trace = Trace::load(path)?;
            if byte_sized && !trace.has_sizes() && opts.sizes.is_none() {
                return Err(BenchError::usage(format!(
                    "a byte-sized cache needs object sizes: {} has lines without a size column; add --size",
                    path.display()
                )));
            }
            let mut ids: HashMap<&str, u32> = HashMap::new();
            let mut out = Vec::with_capacity(trace.entries.len());
            for e in &trace.entries {
                let next = ids.len() as u32;
                let key = *ids.entry(e.item.name()).or_insert(next);
                let size = e
                    .size
                    .or_else(|| opts.sizes.map(|s| s.size_of(u64::from(key) + 1)))
                    .unwrap_or(1);
                out.push(Request { key, size });
            }
            Ok((out, trace.source.clone()))
        }
    }
}

/// Tallies hits and misses.
#[derive(Default)]
struct Score {
    hits: u64,
    misses: u64,
    hit_bytes: u64,
    miss_bytes: u64,
}

impl Score {
    fn hit(&mut self, r: &Request) {
        self.hits += 1;
        self.hit_bytes += r.size;
    }

    fn miss(&mut self, r: &Request) {
        self.misses += 1;
        self.miss_bytes += r.size;
    }

    fn result(&self) -> PolicyResult {
        let n = (self.hits + self.misses).max(1) as f64;
        let bytes = (self.hit_bytes + self.miss_bytes).max(1) as f64;
        PolicyResult {
            miss_ratio: self.misses as f64 / n,
            byte_miss_ratio: self.miss_bytes as f64 / bytes,
            hits: self.hits,
            misses: self.misses,
        }
    }
}

/// The edge's weight of an object in a byte-sized cache: KiB, rounded up.
fn weight_kib(size: u64) -> u32 {
    u32::try_from(size.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// `requests` through a moka cache built as the edge builds its storage.
pub fn replay_moka(
    requests: &[Request],
    capacity: Capacity,
    policy: EvictionPolicy,
) -> PolicyResult {
    let builder = Cache::builder().eviction_policy(policy);
    let cache: Cache<u32, u32> = match capacity {
        Capacity::Objects(n) => builder.max_capacity(n).build(),
        Capacity::Bytes(b) => builder
            .max_capacity(b / 1024)
            .weigher(|_k: &u32, w: &u32| *w)
            .build(),
    };
    let mut score = Score::default();
    for r in requests {
        if cache.get(&r.key).is_some() {
            score.hit(r);
        } else {
            score.miss(r);
            cache.insert(r.key, weight_kib(r.size));
            cache.run_pending_tasks();
        }
    }
    score.result()
}

/// Bélády's rule: on a miss, evict what is needed farthest in the future, or bypass the new
/// object if it is needed later than everything cached.
pub fn replay_belady(requests: &[Request], capacity: Capacity) -> PolicyResult {
    const NEVER: usize = usize::MAX;
    let distinct = requests
        .iter()
        .map(|r| r.key as usize + 1)
        .max()
        .unwrap_or(0);
    let mut next_use = vec![NEVER; requests.len()];
    let mut last_seen = vec![NEVER; distinct];
    for (i, r) in requests.iter().enumerate().rev() {
        next_use[i] = last_seen[r.key as usize];
        last_seen[r.key as usize] = i;
    }
    let (limit, weigh): (u64, fn(&Request) -> u64) = match capacity {
        Capacity::Objects(n) => (n, |_| 1),
        Capacity::Bytes(b) => (b, |r| r.size),
    };
    // For each cached key: its next use and its charged weight.
    let mut cached: Vec<Option<(usize, u64)>> = vec![None; distinct];
    let mut by_next_use: BTreeSet<(usize, u32)> = BTreeSet::new();
    let mut used = 0u64;
    let mut score = Score::default();
    for (i, r) in requests.iter().enumerate() {
        let key = r.key as usize;
        let next = next_use[i];
        if let Some((old_next, weight)) = cached[key] {
            score.hit(r);
            by_next_use.remove(&(old_next, r.key));
            if next == NEVER {
                cached[key] = None;
                used -= weight;
            } else {
                cached[key] = Some((next, weight));
                by_next_use.insert((next, r.key));
            }
            continue;
        }
        score.miss(r);
        let weight = weigh(r);
        if next == NEVER || weight > limit {
            continue;
        }
        let mut admit = true;
        while used + weight > limit {
            match by_next_use.last().copied() {
                Some((far, victim)) if far > next => {
                    by_next_use.remove(&(far, victim));
                    if let Some((_, w)) = cached[victim as usize].take() {
                        used -= w;
                    }
                }
                _ => {
                    admit = false;
                    break;
                }
            }
        }
        if admit {
            cached[key] = Some((next, weight));
            by_next_use.insert((next, r.key));
            used += weight;
        }
    }
    score.result()
}

/// The C most requested objects (greedily by request count until the bytes are used, in a
/// byte-sized cache), admitted on first request and never evicted.
pub fn replay_top_c(requests: &[Request], capacity: Capacity) -> PolicyResult {
    let distinct = requests
        .iter()
        .map(|r| r.key as usize + 1)
        .max()
        .unwrap_or(0);
    let mut counts = vec![0u64; distinct];
    let mut sizes = vec![0u64; distinct];
    for r in requests {
        counts[r.key as usize] += 1;
        sizes[r.key as usize] = sizes[r.key as usize].max(r.size);
    }
    let mut order: Vec<u32> = (0..distinct as u32).collect();
    order.sort_by_key(|&k| (std::cmp::Reverse(counts[k as usize]), k));
    let mut keep = vec![false; distinct];
    match capacity {
        Capacity::Objects(n) => {
            for &k in order.iter().take(n.min(distinct as u64) as usize) {
                keep[k as usize] = true;
            }
        }
        Capacity::Bytes(limit) => {
            let mut used = 0u64;
            for &k in &order {
                let size = sizes[k as usize];
                if used + size <= limit {
                    keep[k as usize] = true;
                    used += size;
                }
            }
        }
    }
    let mut seen = vec![false; distinct];
    let mut score = Score::default();
    for r in requests {
        let k = r.key as usize;
        if keep[k] && seen[k] {
            score.hit(r);
        } else {
            score.miss(r);
            seen[k] = true;
        }
    }
    score.result()
}

impl HitRatioReport {
    /// The side-by-side table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let t = &self.trace;
        let _ = writeln!(
            out,
            "cdn bench hitratio: {} ({} requests, {} distinct keys, compulsory miss ratio {:.4})",
            t.source, t.requests, t.distinct_keys, t.compulsory_miss_ratio
        );
        let capacity = match (self.cache.objects, self.cache.bytes) {
            (Some(n), _) => format!("{n} objects"),
            (_, Some(b)) => HumanSize::from_bytes(b).to_string(),
            _ => String::new(),
        };
        let _ = writeln!(out, "cache size: {} = {capacity}\n", self.cache.size);
        let _ = writeln!(
            out,
            "{:<8} {:>11} {:>16} {:>12} {:>12}",
            "policy", "miss ratio", "byte miss ratio", "hits", "misses"
        );
        for name in ["lru", "lfu", "belady", "top_c"] {
            if let Some(p) = self.policies.get(name) {
                let _ = writeln!(
                    out,
                    "{:<8} {:>11.4} {:>16.4} {:>12} {:>12}",
                    name, p.miss_ratio, p.byte_miss_ratio, p.hits, p.misses
                );
            }
        }
        let _ = writeln!(
            out,
            "\nlfu − top_c (the best online policy under independent requests): {:+.2} points",
            self.lfu_gap_points
        );
        out
    }
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Objects(n) => write!(f, "{n} objects"),
            Self::Bytes(b) => write!(f, "{}", HumanSize::from_bytes(*b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(keys: &str) -> Vec<Request> {
        keys.bytes()
            .map(|b| Request {
                key: u32::from(b - b'a'),
                size: 1,
            })
            .collect()
    }

    #[test]
    fn hand_computed_lru_and_belady() {
        // a b c a d a b c, cache of 2 objects.
        // LRU: a b c(evict a) a(miss, evict b) d(evict c) a(hit) b(miss, evict d) c(miss) → 1 hit.
        // Bélády: a b | c: next uses a@3 b@6 c@7 → bypass c | a hit | d: never again → bypass
        // | a hit | b hit | c miss → 3 hits.
        let t = trace("abcadabc");
        let lru = replay_moka(&t, Capacity::Objects(2), EvictionPolicy::lru());
        assert_eq!((lru.hits, lru.misses), (1, 7));
        let belady = replay_belady(&t, Capacity::Objects(2));
        assert_eq!((belady.hits, belady.misses), (3, 5));
        // Top-2 by count: a (3), then b and c (2 each): ties go to the lower key, b.
        let top = replay_top_c(&t, Capacity::Objects(2));
        assert_eq!((top.hits, top.misses), (3, 5));
    }

    #[test]
    fn belady_in_bytes_evicts_the_farthest_and_bypasses_the_oversized() {
        let t = vec![
            Request { key: 0, size: 60 },
            Request { key: 1, size: 50 },
            Request { key: 0, size: 60 },
            Request { key: 2, size: 200 },
            Request { key: 1, size: 50 },
            Request { key: 2, size: 200 },
        ];
        // 100 bytes: 0 is admitted; 1 needs room and is wanted later than 0 → bypassed;
        // 0 hits; 2 is larger than the cache; 1 and 2 miss.
        let b = replay_belady(&t, Capacity::Bytes(100));
        assert_eq!((b.hits, b.misses), (1, 5));
        assert!((b.byte_miss_ratio - 560.0 / 620.0).abs() < 1e-9);
    }

    #[test]
    fn cache_sizes_parse() {
        assert_eq!("1000".parse(), Ok(CacheSize::Objects(1000)));
        assert_eq!("64MiB".parse(), Ok(CacheSize::Bytes(64 << 20)));
        assert_eq!("1%".parse(), Ok(CacheSize::PercentOfKeys(1.0)));
        assert!("0".parse::<CacheSize>().is_err());
        assert!("150%".parse::<CacheSize>().is_err());
        assert!("lots".parse::<CacheSize>().is_err());
    }

    #[test]
    fn zipf_replay_orders_the_policies() {
        let opts = HitRatioOptions {
            source: TraceSource::Zipf {
                alpha: 0.9,
                keys: 2_000,
                requests: 40_000,
                seed: 7,
            },
            sizes: None,
            cache_size: CacheSize::PercentOfKeys(5.0),
        };
        let r = run(&opts).unwrap();
        let m = |p: &str| r.policies[p].miss_ratio;
        assert!(
            m("belady") <= m("top_c") && m("belady") <= m("lru") && m("belady") <= m("lfu"),
            "{r:?}"
        );
        assert!(m("lfu") < m("lru"), "{r:?}");
        assert!(m("belady") >= r.trace.compulsory_miss_ratio);
        assert_eq!(r.cache.objects, Some(100));
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["policies"]["lfu"]["miss_ratio"].is_number());
        assert!(r.table().contains("belady"));
    }

    #[test]
    fn byte_caches_need_sizes() {
        let opts = HitRatioOptions {
            source: TraceSource::Zipf {
                alpha: 0.9,
                keys: 100,
                requests: 1_000,
                seed: 7,
            },
            sizes: None,
            cache_size: CacheSize::Bytes(1 << 20),
        };
        assert!(run(&opts).unwrap_err().usage);
        let sized = HitRatioOptions {
            sizes: Some(SizeModel::Fixed(10 << 10)),
            ..opts
        };
        let r = run(&sized).unwrap();
        assert_eq!(r.cache.bytes, Some(1 << 20));
        assert!(r.policies["belady"].byte_miss_ratio <= r.policies["lru"].byte_miss_ratio);
    }
}
