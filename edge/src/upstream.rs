//! The origin pool: which origin a request goes to and how the edge connects to it.
//!
//! The choice is a [`cdn_balance::Balancer`] applying `edge.pool.policy` over the origins and
//! their weights. The pool owns the balancer, so health checking and outlier detection mark
//! origins up or down through [`OriginPool::balancer`] (`set_health`) and every later pick
//! skips the ones that are down. A [`Pick`] carries an in-flight guard: the proxy keeps it for
//! the whole exchange with the origin, which is what `least_conn`, `p2c` and bounded loads read.

use crate::retry::RetryBudget;
use cdn_balance::{Backend, Balancer, Pick, Picker, Policy};
use cdn_config::{HashKey, OriginConfig, PoolConfig, PoolPolicy};
use pingora_core::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::time::Duration;

/// One origin of the pool.
#[derive(Clone, Debug)]
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its name in metrics and logs (`IP:port`), also its id in the balancer.
    pub name: String,
    /// The `Host` header it is sent, if not the client's.
    pub host: Option<String>,
}

/// Timeouts applied to every exchange with an origin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// Each read (header, then each piece of body).
    pub read: Duration,
    /// The whole exchange with one origin, if bounded.
    pub total: Option<Duration>,
    /// How long an idle keep-alive connection is kept.
    pub idle: Duration,
}

impl Timeouts {
    /// The longest single wait: `limit`, but never beyond the total bound.
    fn capped(&self, limit: Duration) -> Duration {
        self.total.map_or(limit, |t| t.min(limit))
    }
}

/// The origins an edge fetches from, how one is chosen, and the connection and retry settings
/// they share.
#[derive(Debug)]
pub struct OriginPool {
    origins: Vec<Origin>,
    balancer: Balancer,
    /// What consistent hashing hashes; `None` for the policies that ignore the key.
    hash_key: Option<HashKey>,
    timeouts: Timeouts,
    max_tries: u32,
    retry_budget: RetryBudget,
}

impl OriginPool {
    /// The pool described by the edge's `[edge.pool]` and `[[edge.origins]]`.
    pub fn from_config(pool: &PoolConfig, origins: &[OriginConfig]) -> Self {
        let policy = match pool.policy {
            PoolPolicy::RoundRobin => Policy::RoundRobin,
            PoolPolicy::Random => Policy::Random,
            PoolPolicy::LeastConn => Policy::LeastConn,
            PoolPolicy::P2c => Policy::PowerOfTwo { use_latency: true },
            PoolPolicy::ConsistentHash => Policy::ConsistentHash {
                vnodes: pool.vnodes,
                bound: pool.bounded_load,
            },
        };
        let backends = origins
            .iter()
            .map(|o| Backend::new(o.address.to_string(), o.weight))
            .collect();
        Self {
            origins: origins
                .iter()
                .map(|o| Origin {
                    addr: o.address,
                    name: o.address.to_string(),
                    host: o.host.clone().or_else(|| pool.host.clone()),
                })
                .collect(),
            balancer: Balancer::new(policy, backends),
            hash_key: (pool.policy == PoolPolicy::ConsistentHash).then_some(pool.hash_key),
            timeouts: Timeouts {
                connect: pool.connect_timeout.get(),
                read: pool.read_timeout.get(),
                total: pool.total_timeout.map(|t| t.get()),
                idle: pool.idle_timeout.get(),
            },
            max_tries: pool.max_tries.max(1),
            retry_budget: RetryBudget::new(pool.retry_budget),
        }
    }

    /// What the policy hashes, if it hashes anything (`consistent_hash` only): the caller
    /// passes that as the key of [`pick`](Self::pick), and may pass an empty key otherwise.
    pub fn hash_key(&self) -> Option<HashKey> {
        self.hash_key
    }

    /// Chooses an origin for a request with this key, skipping the indexes in `exclude` (the
    /// origins that already failed it) and unhealthy ones. `None` when none is left.
    pub fn pick(&self, key: &[u8], exclude: &[usize]) -> Option<Pick> {
        self.balancer.pick_excluding(key, exclude)
    }

    /// Whether an origin other than those in `exclude` could be picked now.
    pub fn has_other(&self, exclude: &[usize]) -> bool {
        self.balancer.snapshot().has_candidate(exclude)
    }

    /// The balancer: for health state changes (`set_health`) and for reading loads and
    /// latencies (`snapshot`).
    pub fn balancer(&self) -> &Balancer {
        &self.balancer
    }

    /// The origins, in config order (a pick's index points into this).
    pub fn origins(&self) -> &[Origin] {
        &self.origins
    }

    /// The origin at `index`.
    pub fn origin(&self, index: usize) -> Option<&Origin> {
        self.origins.get(index)
    }

    /// The timeouts of every exchange.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Tries per request, the first included.
    pub fn max_tries(&self) -> u32 {
        self.max_tries
    }

    /// The budget that bounds retries in flight.
    pub fn retry_budget(&self) -> &RetryBudget {
        &self.retry_budget
    }

    /// How to reach the origin at `index`: address and timeouts. With a total bound, no single
    /// wait (connect, read, write) may exceed it.
    pub fn peer(&self, index: usize) -> Option<Box<HttpPeer>> {
        let origin = self.origins.get(index)?;
        let t = &self.timeouts;
        let mut peer = HttpPeer::new(origin.addr, false, String::new());
        peer.options.connection_timeout = Some(t.capped(t.connect));
        peer.options.total_connection_timeout = t.total;
        peer.options.read_timeout = Some(t.capped(t.read));
        peer.options.write_timeout = t.total;
        peer.options.idle_timeout = Some(t.idle);
        Some(Box::new(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdn_config::HumanDuration;

    fn origin(address: &str, weight: u32, host: Option<&str>) -> OriginConfig {
        OriginConfig {
            address: address.parse().unwrap(),
            weight,
            host: host.map(String::from),
        }
    }

    #[test]
    fn round_robin_takes_origins_in_turn_with_their_host() {
        let pool = PoolConfig {
            connect_timeout: HumanDuration::from_secs(1),
            read_timeout: HumanDuration::from_secs(2),
            host: Some("pool.example".into()),
            ..PoolConfig::default()
        };
        let origins = vec![
            origin("127.0.0.1:1", 1, None),
            origin("127.0.0.1:2", 1, Some("own.example")),
        ];
        let p = OriginPool::from_config(&pool, &origins);
        assert_eq!(p.hash_key(), None);
        let picks: Vec<usize> = (0..4)
            .filter_map(|_| p.pick(b"", &[]))
            .map(|p| p.index())
            .collect();
        assert_eq!(picks, vec![0, 1, 0, 1]);
        assert_eq!(p.origin(0).unwrap().host.as_deref(), Some("pool.example"));
        assert_eq!(p.origin(1).unwrap().host.as_deref(), Some("own.example"));
        let peer = p.peer(1).unwrap();
        assert_eq!(peer.options.read_timeout, Some(Duration::from_secs(2)));
        assert_eq!(
            peer.options.connection_timeout,
            Some(Duration::from_secs(1))
        );
        assert_eq!(peer.options.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(peer.options.total_connection_timeout, None);
    }

    #[test]
    fn weights_and_exclusions_are_honoured() {
        let origins = vec![
            origin("127.0.0.1:1", 3, None),
            origin("127.0.0.1:2", 1, None),
            origin("127.0.0.1:3", 0, None),
        ];
        let p = OriginPool::from_config(&PoolConfig::default(), &origins);
        let mut counts = [0; 3];
        for _ in 0..400 {
            counts[p.pick(b"", &[]).unwrap().index()] += 1;
        }
        assert_eq!(counts, [300, 100, 0]);
        assert_eq!(p.pick(b"", &[0]).map(|p| p.index()), Some(1));
        assert!(p.pick(b"", &[0, 1]).is_none(), "weight 0 is never picked");
        assert!(p.has_other(&[0]));
        assert!(!p.has_other(&[0, 1]));
        p.balancer().set_health(1, false);
        assert!(!p.has_other(&[0]));
    }

    #[test]
    fn consistent_hash_keeps_a_key_on_one_origin() {
        let pool = PoolConfig {
            policy: PoolPolicy::ConsistentHash,
            ..PoolConfig::default()
        };
        let origins: Vec<_> = (1..=3)
            .map(|i| origin(&format!("127.0.0.1:{i}"), 1, None))
            .collect();
        let p = OriginPool::from_config(&pool, &origins);
        assert_eq!(p.hash_key(), Some(HashKey::CacheKey));
        let mut used = std::collections::HashSet::new();
        for k in 0..50 {
            let key = format!("example.com/object/{k}");
            let first = p.pick(key.as_bytes(), &[]).unwrap().index();
            for _ in 0..3 {
                assert_eq!(p.pick(key.as_bytes(), &[]).unwrap().index(), first);
            }
            let other = p.pick(key.as_bytes(), &[first]).unwrap().index();
            assert_ne!(other, first, "a retry goes elsewhere");
            used.insert(first);
        }
        assert_eq!(used.len(), 3);
    }

    #[test]
    fn a_total_bound_caps_every_wait() {
        let pool = PoolConfig {
            connect_timeout: HumanDuration::from_secs(2),
            read_timeout: HumanDuration::from_secs(30),
            total_timeout: Some(HumanDuration::from_secs(5)),
            idle_timeout: HumanDuration::from_secs(7),
            ..PoolConfig::default()
        };
        let p = OriginPool::from_config(&pool, &[origin("127.0.0.1:1", 1, None)]);
        let peer = p.peer(0).unwrap();
        assert_eq!(
            peer.options.connection_timeout,
            Some(Duration::from_secs(2))
        );
        assert_eq!(peer.options.read_timeout, Some(Duration::from_secs(5)));
        assert_eq!(peer.options.write_timeout, Some(Duration::from_secs(5)));
        assert_eq!(
            peer.options.total_connection_timeout,
            Some(Duration::from_secs(5))
        );
        assert_eq!(peer.options.idle_timeout, Some(Duration::from_secs(7)));
        assert!(p.peer(1).is_none());
    }
}
