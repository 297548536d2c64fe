//! What a load run asks for: which objects (popularity over keys, or a replayed trace) and how
//! big they are. Shared by `cdn bench http` (which turns keys into URLs) and `cdn bench
//! hitratio` (which replays them through cache policies).

use crate::BenchError;
use cdn_config::HumanSize;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

/// Which object each request asks for.
#[derive(Clone, Debug)]
pub enum Popularity {
    /// Every request for the same object.
    One,
    /// Keys `1..=keys`, key `k` requested with probability proportional to `1 / k^alpha`.
    Zipf {
        /// The skew: 0 is uniform; CDN traffic is usually 0.6–1.0.
        alpha: f64,
        /// How many distinct objects.
        keys: u64,
    },
    /// Keys `1..=keys`, each equally likely.
    Uniform {
        /// How many distinct objects.
        keys: u64,
    },
    /// Requests replayed in the order of a trace file (cycled if the run is longer).
    Trace(Arc<Trace>),
}

impl Popularity {
    /// A Zipf popularity, checking its parameters.
    pub fn zipf(alpha: f64, keys: u64) -> Result<Self, BenchError> {
        if !(alpha.is_finite() && alpha >= 0.0) {
            return Err(BenchError::usage(format!(
                "--zipf must be a number ≥ 0, got {alpha}"
            )));
        }
        if keys == 0 {
            return Err(BenchError::usage("--keys must be at least 1"));
        }
        Ok(Self::Zipf { alpha, keys })
    }

    /// Whether requests name different objects (so a URL needs a `{key}`).
    pub fn has_keys(&self) -> bool {
        !matches!(self, Self::One)
    }
}

impl fmt::Display for Popularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::One => f.write_str("one object"),
            Self::Zipf { alpha, keys } => write!(f, "Zipf α={alpha} over {keys} keys"),
            Self::Uniform { keys } => write!(f, "uniform over {keys} keys"),
            Self::Trace(t) => write!(f, "trace {} ({} requests)", t.source, t.entries.len()),
        }
    }
}

/// A request trace: one request per line, `KEY_OR_URL [SIZE]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Where it was read from, for reports.
    pub source: String,
    /// The requests, in order.
    pub entries: Vec<TraceEntry>,
}

/// One request of a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceEntry {
    /// What was requested.
    pub item: TraceItem,
    /// The object's size in bytes, when the trace gives it.
    pub size: Option<u64>,
}

/// What one trace line requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceItem {
    /// A key, put into the URL template's `{key}`.
    Key(String),
    /// A path (and query), sent as is to the target's host. Full URLs in a trace are reduced to
    /// their path, so one trace can be replayed against any system.
    Path(String),
}

impl TraceItem {
    /// The text that identifies the object (the key, or the path).
    pub fn name(&self) -> &str {
        match self {
            Self::Key(k) | Self::Path(k) => k,
        }
    }
}

impl Trace {
    /// Reads a trace file.
    pub fn load(path: &Path) -> Result<Self, BenchError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BenchError::usage(format!("cannot read trace {}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses trace text: one request per line, `KEY_OR_URL [SIZE]`, where SIZE is bytes or a
    /// human size (`64KiB`); blank lines and lines starting with `#` are skipped.
    pub fn parse(text: &str, source: &str) -> Result<Self, BenchError> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(first), size, None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(BenchError::usage(format!(
                    "{source}:{}: expected `KEY_OR_URL [SIZE]`, got {line:?}",
                    n + 1
                )));
            };
            let size = match size {
                None => None,
                Some(s) => Some(
                    s.parse::<HumanSize>()
                        .map_err(|e| BenchError::usage(format!("{source}:{}: {e}", n + 1)))?
                        .bytes(),
                ),
            };
            entries.push(TraceEntry {
                item: trace_item(first),
                size,
            });
        }
        if entries.is_empty() {
            return Err(BenchError::usage(format!("trace {source} has no requests")));
        }
        Ok(Self {
            source: source.to_string(),
            entries,
        })
    }

    /// Whether every line gives a size.
    pub fn has_sizes(&self) -> bool {
        self.entries.iter().all(|e| e.size.is_some())
    }
}

fn trace_item(field: &str) -> TraceItem {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = field.strip_prefix(scheme) {
            let path = rest.find('/').map_or("/", |i| &rest[i..]);
            return TraceItem::Path(path.to_string());
        }
    }
    if field.starts_with('/') {
        TraceItem::Path(field.to_string())
    } else {
        TraceItem::Key(field.to_string())
    }
}

/// How big each object is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SizeModel {
    /// Every object this many bytes.
    Fixed(u64),
    /// Each key's size drawn once, log-uniformly between `min` and `max` bytes, from a hash of
    /// the key: the same key always has the same size, and small objects outnumber large ones
    /// as on real CDNs.
    LogUniform {
        /// Smallest size.
        min: u64,
        /// Largest size.
        max: u64,
    },
}

impl SizeModel {
    /// The size of key `key`.
    pub fn size_of(&self, key: u64) -> u64 {
        match *self {
            Self::Fixed(n) => n,
            Self::LogUniform { min, max } => {
                let u = (mix64(key) >> 11) as f64 / (1u64 << 53) as f64;
                let (lo, hi) = ((min as f64).ln(), (max as f64).ln());
                ((lo + u * (hi - lo)).exp().round() as u64).clamp(min, max)
            }
        }
    }
}

impl FromStr for SizeModel {
    type Err = String;

    /// `1KiB` (fixed) or `1KiB..1MiB` (log-uniform per key).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once("..") {
            None => Ok(Self::Fixed(s.parse::<HumanSize>()?.bytes())),
            Some((lo, hi)) => {
                let (min, max) = (
                    lo.parse::<HumanSize>()?.bytes(),
                    hi.parse::<HumanSize>()?.bytes(),
                );
                if min == 0 || min > max {
                    return Err(format!(
                        "size range {s:?} must be MIN..MAX with 0 < MIN ≤ MAX"
                    ));
                }
                Ok(Self::LogUniform { min, max })
            }
        }
    }
}

impl fmt::Display for SizeModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(n) => write!(f, "{}", HumanSize::from_bytes(*n)),
            Self::LogUniform { min, max } => write!(
                f,
                "{}..{} (log-uniform)",
                HumanSize::from_bytes(*min),
                HumanSize::from_bytes(*max)
            ),
        }
    }
}

/// splitmix64's finaliser: spreads a key id over 64 bits (for per-key sizes).
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What one request asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pick<'a> {
    /// The single object of [`Popularity::One`].
    One,
    /// Key number `k` (1 is the most popular under Zipf).
    Key(u64),
    /// A trace line.
    Entry(&'a TraceEntry),
}

/// Draws the object of each request; one per load task, each with its own seeded generator so
/// tasks never contend and runs are reproducible.
pub struct KeySampler {
    popularity: Popularity,
    zipf: Option<Zipf<f64>>,
    rng: SmallRng,
}

impl KeySampler {
    /// A sampler for `popularity` seeded with `seed`.
    pub fn new(popularity: &Popularity, seed: u64) -> Result<Self, BenchError> {
        let zipf = match *popularity {
            Popularity::Zipf { alpha, keys } => Some(
                Zipf::new(keys, alpha)
                    .map_err(|e| BenchError::usage(format!("bad Zipf parameters: {e}")))?,
            ),
            _ => None,
        };
        Ok(Self {
            popularity: popularity.clone(),
            zipf,
            rng: SmallRng::seed_from_u64(seed),
        })
    }

    /// The object of request number `seq` (the run's sequence number: a trace replays in order).
    pub fn pick(&mut self, seq: u64) -> Pick<'_> {
        match &self.popularity {
            Popularity::One => Pick::One,
            Popularity::Zipf { keys, .. } => {
                let rank = self.zipf.as_ref().map_or(1.0, |z| z.sample(&mut self.rng));
                Pick::Key((rank as u64).clamp(1, *keys))
            }
            Popularity::Uniform { keys } => Pick::Key(self.rng.gen_range(1..=*keys)),
            Popularity::Trace(trace) => {
                let i = (seq % trace.entries.len() as u64) as usize;
                Pick::Entry(&trace.entries[i])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_parse_keys_paths_urls_and_sizes() {
        let t = Trace::parse(
            "# comment\nk1\n/a?x=1 100\n\nhttp://h:1/b 2KiB\nhttp://h\n",
            "t",
        )
        .unwrap();
        assert_eq!(t.entries.len(), 4);
        assert_eq!(t.entries[0].item, TraceItem::Key("k1".into()));
        assert_eq!(t.entries[1].item, TraceItem::Path("/a?x=1".into()));
        assert_eq!(t.entries[1].size, Some(100));
        assert_eq!(t.entries[2].item, TraceItem::Path("/b".into()));
        assert_eq!(t.entries[2].size, Some(2048));
        assert_eq!(t.entries[3].item, TraceItem::Path("/".into()));
        assert!(!t.has_sizes());
        let bad = Trace::parse("a 1 2\n", "t").unwrap_err();
        assert!(bad.usage && bad.message.contains("t:1"), "{bad:?}");
        assert!(Trace::parse("a lots\n", "t").is_err());
        assert!(Trace::parse("# nothing\n", "t").is_err());
    }

    #[test]
    fn sizes_are_fixed_or_log_uniform_per_key() {
        assert_eq!("1KiB".parse::<SizeModel>(), Ok(SizeModel::Fixed(1024)));
        let range: SizeModel = "1KiB..1MiB".parse().unwrap();
        let sizes: Vec<u64> = (1..=10_000).map(|k| range.size_of(k)).collect();
        assert!(sizes.iter().all(|&s| (1024..=1 << 20).contains(&s)));
        assert_eq!(range.size_of(7), range.size_of(7));
        // Log-uniform: half the keys below the geometric mean (32 KiB).
        let below = sizes.iter().filter(|&&s| s < 32 << 10).count();
        assert!((4_500..5_500).contains(&below), "{below}");
        assert!("2KiB..1KiB".parse::<SizeModel>().is_err());
        assert!("0..1KiB".parse::<SizeModel>().is_err());
    }

    #[test]
    fn zipf_key_frequencies_follow_the_law() {
        let (alpha, keys, n) = (1.0, 100u64, 200_000);
        let mut sampler = KeySampler::new(&Popularity::zipf(alpha, keys).unwrap(), 3).unwrap();
        let mut counts = vec![0u64; keys as usize + 1];
        for seq in 0..n {
            match sampler.pick(seq) {
                Pick::Key(k) => counts[k as usize] += 1,
                other => panic!("{other:?}"),
            }
        }
        let h: f64 = (1..=keys).map(|k| 1.0 / (k as f64).powf(alpha)).sum();
        for k in [1u64, 2, 5, 10, 50] {
            let expected = n as f64 / (k as f64).powf(alpha) / h;
            let got = counts[k as usize] as f64;
            assert!(
                (got - expected).abs() < 0.05 * expected + 30.0,
                "key {k}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn uniform_and_trace_sampling() {
        let mut u = KeySampler::new(&Popularity::Uniform { keys: 4 }, 1).unwrap();
        let mut seen = [0u32; 5];
        for s in 0..4000 {
            if let Pick::Key(k) = u.pick(s) {
                seen[k as usize] += 1;
            }
        }
        assert_eq!(seen[0], 0);
        assert!(
            seen[1..].iter().all(|&c| (800..1200).contains(&c)),
            "{seen:?}"
        );
        let trace = Arc::new(Trace::parse("a\nb\n", "t").unwrap());
        let mut t = KeySampler::new(&Popularity::Trace(trace), 1).unwrap();
        let names: Vec<String> = (0..3)
            .map(|s| match t.pick(s) {
                Pick::Entry(e) => e.item.name().to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["a", "b", "a"]);
        assert!(Popularity::zipf(-1.0, 10).is_err());
        assert!(Popularity::zipf(1.0, 0).is_err());
    }
}
