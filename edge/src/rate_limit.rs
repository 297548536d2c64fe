//! A route's rate limit: one token bucket ([`cdn_balance::TokenBucket`]) per client address
//! (grouped by prefix), per signing key, or for the whole route, with bounded memory.
//!
//! The buckets live in a table of our own rather than in moka (which the edge uses elsewhere):
//! a moka lookup measured about 350 ns, over three times the 100 ns a decision may take, and
//! governor's keyed limiter never forgets a key unless swept. The table is split into up to 64
//! shards, each a `HashMap` from a masked address (`u128`) to its bucket (32 bytes an entry)
//! behind its own `RwLock`, hashed with foldhash under random per-limiter seeds (clients cannot
//! aim at one shard). A decision on a known client takes a shard's read lock and does one
//! atomic compare-and-swap on the bucket, so requests never wait for each other except when a
//! new client is inserted into the same shard. Signing keys (`key = "kid"`) are few and known
//! from the config: each has a bucket made up front.
//!
//! Memory is bounded: each shard holds at most `max_keys / shards` buckets. A full shard first
//! drops the buckets that have been idle long enough to be full again (at most once a second):
//! such a bucket is the same as a new one, so forgetting it changes no decision. If none is, it
//! drops one bucket at random, whose client then starts again from a full bucket: under a flood
//! of distinct clients the limit errs towards letting requests through, never towards growing.

use cdn_balance::{BucketRate, Decision, TokenBucket};
use cdn_config::{Cidr, LimitKey, RateLimitConfig};
use http::HeaderValue;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{PoisonError, RwLock};
use std::time::Instant;

/// Most shards of a limiter's table (a power of two).
const MAX_SHARDS: u64 = 64;

/// Nanoseconds between two sweeps of idle buckets in one shard.
const SWEEP_INTERVAL: u64 = 1_000_000_000;

/// A shard's buckets, by masked client address (IPv4 mapped into IPv6).
type ShardMap = HashMap<u128, TokenBucket, foldhash::quality::RandomState>;

#[derive(Default)]
struct Shard {
    buckets: ShardMap,
    /// When idle buckets were last swept out (limiter clock, ns).
    last_sweep: u64,
}

/// A request the limit refused: what the 429 says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limited {
    /// `Retry-After` (whole seconds, at least 1).
    pub retry_after: u64,
    /// `RateLimit-Policy` (IETF draft-ietf-httpapi-ratelimit-headers): burst and window.
    pub policy: HeaderValue,
    /// `RateLimit`: nothing remaining, and seconds until the bucket is full.
    pub state: HeaderValue,
}

/// The rate limit of one route.
pub struct RateLimiter {
    rate: BucketRate,
    key: LimitKey,
    v4_mask: u128,
    v6_mask: u128,
    bypass: Vec<Cidr>,
    /// Picks a client's shard (each shard's map has its own seeds).
    hasher: foldhash::quality::RandomState,
    shards: Box<[RwLock<Shard>]>,
    /// `log2(shards.len())`.
    shard_bits: u32,
    /// Most buckets in one shard.
    shard_capacity: usize,
    /// The bucket of `key = "route"`, and of requests without a client address or a known key.
    route_bucket: TokenBucket,
    /// The bucket of each signing key, for `key = "kid"`.
    kid_buckets: Vec<(Box<str>, TokenBucket)>,
    /// Zero of the buckets' clock (monotonic).
    epoch: Instant,
    policy: HeaderValue,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("rate", &self.rate)
            .field("key", &self.key)
            .field("shards", &self.shards.len())
            .field("shard_capacity", &self.shard_capacity)
            .finish()
    }
}

/// Keeps the top `bits` of a 128-bit address.
fn mask(bits: u32) -> u128 {
    match bits {
        0 => 0,
        b if b >= 128 => u128::MAX,
        b => u128::MAX << (128 - b),
    }
}

impl RateLimiter {
    /// The limiter of a route's `[edge.routes.rate_limit]`, whose route's signing keys are
    /// `kids` (validated: a bad rate or burst falls back to 1 per second, which validation
    /// makes unreachable).
    pub fn from_config(c: &RateLimitConfig, kids: &[&str]) -> Self {
        let rate = BucketRate::new(c.rate, c.burst.max(1))
            .or_else(|| BucketRate::new(1.0, 1))
            .expect("1 per second is a valid rate");
        let window = rate.fill_time().div_ceil(1_000_000_000).max(1);
        let max_keys = c.max_keys.max(1);
        // The largest power of two ≤ max_keys (so that the shards' capacities add up to at
        // most max_keys), capped.
        let shard_bits = (63 - max_keys.min(MAX_SHARDS).leading_zeros()).min(6);
        let shards = 1u64 << shard_bits;
        Self {
            rate,
            key: c.key,
            // IPv4 lives in the low 32 bits of its mapped IPv6 form (::ffff:a.b.c.d).
            v4_mask: mask(96 + u32::from(c.ipv4_prefix.min(32))),
            v6_mask: mask(u32::from(c.ipv6_prefix.min(128))),
            bypass: c.bypass.clone(),
            hasher: foldhash::quality::RandomState::default(),
            shards: (0..shards).map(|_| RwLock::default()).collect(),
            shard_bits,
            shard_capacity: usize::try_from(max_keys / shards).unwrap_or(usize::MAX),
            route_bucket: TokenBucket::new(),
            kid_buckets: kids
                .iter()
                .map(|k| (Box::from(*k), TokenBucket::new()))
                .collect(),
            epoch: Instant::now(),
            policy: HeaderValue::from_str(&format!("\"burst\";q={};w={window}", rate.burst()))
                .unwrap_or_else(|_| HeaderValue::from_static("\"burst\"")),
        }
    }

    /// Takes a token for a request from `client` (signed with `kid`, if the route's key
    /// counts by it and the key is known), now.
    pub fn check(&self, client: Option<IpAddr>, kid: Option<&str>) -> Result<(), Limited> {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.check_at(client, kid, now)
    }

    /// [`RateLimiter::check`] at `now`, nanoseconds since the limiter was built (tests and
    /// benchmarks drive the clock themselves).
    pub fn check_at(
        &self,
        client: Option<IpAddr>,
        kid: Option<&str>,
        now: u64,
    ) -> Result<(), Limited> {
        if let Some(ip) = client {
            if self.bypass.iter().any(|c| c.contains(ip)) {
                return Ok(());
            }
        }
        let decision = match self.key {
            LimitKey::Route => self.rate.try_take(&self.route_bucket, now),
            LimitKey::Client => match client {
                Some(ip) => self.take(self.addr_key(ip), now),
                None => self.rate.try_take(&self.route_bucket, now),
            },
            LimitKey::Kid => {
                let bucket = kid
                    .and_then(|k| self.kid_buckets.iter().find(|(id, _)| **id == *k))
                    .map_or(&self.route_bucket, |(_, b)| b);
                self.rate.try_take(bucket, now)
            }
        };
        match decision {
            Decision::Allowed { .. } => Ok(()),
            Decision::Refused { retry_in, full_in } => Err(Limited {
                retry_after: secs_up(retry_in),
                policy: self.policy.clone(),
                state: HeaderValue::from_str(&format!("\"burst\";r=0;t={}", secs_up(full_in)))
                    .unwrap_or_else(|_| HeaderValue::from_static("\"burst\";r=0")),
            }),
        }
    }

    fn addr_key(&self, ip: IpAddr) -> u128 {
        match ip.to_canonical() {
            IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()) & self.v4_mask,
            IpAddr::V6(v6) => u128::from(v6) & self.v6_mask,
        }
    }

    /// Takes a token from `key`'s bucket, creating it (full) if the key is new.
    fn take(&self, key: u128, now: u64) -> Decision {
        let hash = self.hasher.hash_one(key);
        let shard = &self.shards[(hash >> 1 >> (63 - self.shard_bits)) as usize];
        {
            let read = shard.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(bucket) = read.buckets.get(&key) {
                return self.rate.try_take(bucket, now);
            }
        }
        let mut write = shard.write().unwrap_or_else(PoisonError::into_inner);
        let write = &mut *write;
        if !write.buckets.contains_key(&key) && write.buckets.len() >= self.shard_capacity {
            self.make_room(write, now);
        }
        let bucket = write.buckets.entry(key).or_default();
        self.rate.try_take(bucket, now)
    }

    /// Frees one place at least in a full shard.
    fn make_room(&self, shard: &mut Shard, now: u64) {
        if now.saturating_sub(shard.last_sweep) >= SWEEP_INTERVAL || shard.last_sweep == 0 {
            shard.last_sweep = now.max(1);
            shard.buckets.retain(|_, b| !b.is_full_at(now));
        }
        if shard.buckets.len() >= self.shard_capacity {
            // Every bucket is in use: one goes (its client restarts from a full bucket). The
            // map's first entry is as good as random: positions come from a keyed hash.
            if let Some(&victim) = shard.buckets.keys().next() {
                shard.buckets.remove(&victim);
            }
        }
    }

    /// Buckets remembered now.
    pub fn tracked(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| {
                s.read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .buckets
                    .len() as u64
            })
            .sum()
    }
}

/// Nanoseconds rounded up to whole seconds, at least 1 (`Retry-After: 0` invites a storm).
fn secs_up(nanos: u64) -> u64 {
    nanos.div_ceil(1_000_000_000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn limiter(edit: impl FnOnce(&mut RateLimitConfig)) -> RateLimiter {
        let mut c = RateLimitConfig {
            rate: 1.0,
            burst: 3,
            key: LimitKey::Client,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            max_keys: 1000,
            bypass: Vec::new(),
        };
        edit(&mut c);
        RateLimiter::from_config(&c, &["k1", "k2"])
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn passed(l: &RateLimiter, client: &str, n: usize, now: u64) -> usize {
        (0..n)
            .filter(|_| l.check_at(ip(client), None, now).is_ok())
            .count()
    }

    #[test]
    fn each_client_has_its_own_bucket() {
        let l = limiter(|_| {});
        assert_eq!(passed(&l, "192.0.2.1", 10, 0), 3);
        assert_eq!(passed(&l, "192.0.2.2", 10, 0), 3);
        assert_eq!(
            passed(&l, "::ffff:192.0.2.1", 10, 0),
            0,
            "a mapped address is the same client"
        );
        let refused = l.check_at(ip("192.0.2.1"), None, SEC / 4).unwrap_err();
        assert_eq!(refused.retry_after, 1);
        assert_eq!(refused.policy, "\"burst\";q=3;w=3");
        assert_eq!(refused.state, "\"burst\";r=0;t=3");
        assert_eq!(passed(&l, "192.0.2.1", 10, SEC), 1, "one token a second");
    }

    #[test]
    fn prefixes_group_clients() {
        let l = limiter(|c| {
            c.ipv4_prefix = 24;
            c.ipv6_prefix = 48;
        });
        assert_eq!(passed(&l, "192.0.2.1", 2, 0), 2);
        assert_eq!(passed(&l, "192.0.2.200", 10, 0), 1, "same /24");
        assert_eq!(passed(&l, "192.0.3.1", 10, 0), 3);
        assert_eq!(passed(&l, "2001:db8:1:2::1", 2, 0), 2);
        assert_eq!(passed(&l, "2001:db8:1:ffff::9", 10, 0), 1, "same /48");
    }

    #[test]
    fn route_and_kid_keys_and_bypass() {
        let l = limiter(|c| {
            c.key = LimitKey::Route;
            c.bypass = vec!["10.0.0.0/8".parse().unwrap()];
        });
        assert_eq!(passed(&l, "192.0.2.1", 2, 0), 2);
        assert_eq!(
            passed(&l, "198.51.100.1", 10, 0),
            1,
            "everyone shares the route's bucket"
        );
        assert_eq!(
            passed(&l, "10.1.1.1", 100, 0),
            100,
            "bypass is never limited"
        );

        let l = limiter(|c| c.key = LimitKey::Kid);
        let kid = |k, n| {
            (0..n)
                .filter(|_| l.check_at(ip("192.0.2.1"), k, 0).is_ok())
                .count()
        };
        assert_eq!(kid(Some("k1"), 10), 3);
        assert_eq!(kid(Some("k2"), 10), 3);
        assert_eq!(kid(None, 10), 3);
    }

    #[test]
    fn a_full_table_forgets_idle_buckets_first_and_never_grows() {
        let l = limiter(|c| c.max_keys = 1);
        assert_eq!(passed(&l, "192.0.2.1", 10, 0), 3);
        // No room and no idle bucket: the busy one goes, and its client starts again full.
        assert_eq!(passed(&l, "192.0.2.2", 1, 0), 1);
        assert_eq!(l.tracked(), 1);
        assert_eq!(passed(&l, "192.0.2.1", 10, SEC / 2), 3);
        // Ten seconds later every bucket is full again: swept, not evicted.
        assert_eq!(passed(&l, "192.0.2.3", 1, 10 * SEC), 1);
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn a_million_clients_stay_within_max_keys() {
        let max_keys = 10_000;
        let l = limiter(|c| c.max_keys = max_keys);
        for i in 0..1_000_000u32 {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(
                l.check_at(Some(addr), None, 0).is_ok(),
                "a new client has a full bucket"
            );
            if i % 100_000 == 0 {
                // Housekeeping runs on its own as requests come; forcing it here makes the
                // bound observable at fixed points.
                assert!(l.tracked() <= max_keys, "{} buckets at {i}", l.tracked());
            }
        }
        let tracked = l.tracked();
        assert!(
            tracked <= max_keys,
            "{tracked} buckets tracked, max {max_keys}"
        );
    }
}
