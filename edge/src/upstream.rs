//! The origin pool: which origin a request goes to and how the edge connects to it.
//!
//! The choice is a [`cdn_balance::Balancer`] applying `edge.pool.policy` over the origins and
//! their weights. The pool owns the balancer, so health checking marks origins up or down
//! through [`OriginPool::balancer`] (`set_health`) and every later pick skips the ones that are
//! down. On top of the policy's choice, a pick skips an origin that passive outlier detection
//! has ejected, whose circuit breaker is open (or half-open with every probe out), or that has
//! `max_in_flight` requests already, and asks the policy again without it. An [`OriginPick`]
//! carries an in-flight guard, which is what `least_conn`, `p2c` and bounded loads read, and the
//! breaker's probe permit when the try is a probe: the proxy keeps both for the whole exchange
//! and reports how it ended with [`OriginPool::record`].

use crate::retry::RetryBudget;
use cdn_balance::{
    Admission, Backend, Balancer, Breaker, BreakerSettings, BreakerState, InFlight,
    OutlierDetector, OutlierSettings, Picker, Policy, ProbePermit,
};
use cdn_config::{BreakerConfig, HashKey, OriginConfig, OutlierConfig, PoolConfig, PoolPolicy};
use pingora_core::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// The origin chosen for one try.
#[derive(Debug)]
pub struct OriginPick {
    index: usize,
    in_flight: InFlight,
    probe: Option<ProbePermit>,
}

impl OriginPick {
    /// The origin's index in the pool.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The guard that counts this try in flight to the origin, and records its latency.
    pub fn in_flight(&self) -> &InFlight {
        &self.in_flight
    }

    /// Whether this try is one of a half-open breaker's probes.
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }
}

/// How the protections see one origin now: for `/origins` and the metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OriginProtection {
    /// The breaker's state (`Closed` when breakers are off).
    pub breaker: BreakerState,
    /// Times the breaker has opened.
    pub breaker_opened: u64,
    /// Failure share of the breaker's window.
    pub error_rate: f64,
    /// How long outlier detection keeps it out, if it is ejected.
    pub ejected_for: Option<Duration>,
    /// Times outlier detection has ejected it.
    pub ejections: u64,
}

/// The origins an edge fetches from, how one is chosen, the protections in front of each, and
/// the connection and retry settings they share.
#[derive(Debug)]
pub struct OriginPool {
    origins: Vec<Origin>,
    balancer: Balancer,
    /// One per origin, when `edge.pool.breaker.enabled`.
    breakers: Option<Box<[Arc<Breaker>]>>,
    outliers: Option<OutlierDetector>,
    /// Most tries in flight to one origin; `usize::MAX` when uncapped.
    max_in_flight: usize,
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
            breakers: pool.breaker.enabled.then(|| {
                let settings = breaker_settings(&pool.breaker);
                let now = Instant::now();
                origins
                    .iter()
                    .map(|_| Arc::new(Breaker::new(settings, now)))
                    .collect()
            }),
            outliers: pool.outlier.enabled.then(|| {
                OutlierDetector::new(
                    outlier_settings(&pool.outlier),
                    origins.len(),
                    Instant::now(),
                )
            }),
            max_in_flight: match pool.breaker.max_in_flight {
                0 => usize::MAX,
                cap => cap as usize,
            },
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

    /// Chooses an origin for a request with this key by the pool's policy, skipping the
    /// indexes in `exclude` (the origins that already failed it), unhealthy and ejected ones,
    /// those whose breaker does not admit the request and those at `max_in_flight`. `None`
    /// when none is left.
    pub fn pick(&self, key: &[u8], exclude: &[usize], now: Instant) -> Option<OriginPick> {
        let mut skipped: Option<Vec<usize>> = None;
        // Each turn either returns or skips one more origin, so this ends within len() turns.
        loop {
            let pick = self
                .balancer
                .pick_excluding(key, skipped.as_deref().unwrap_or(exclude))?;
            let index = pick.index();
            let admission = if self.is_ejected(index, now)
                || pick.in_flight().backend_in_flight() > self.max_in_flight
            {
                Admission::Reject
            } else {
                match self.breakers.as_ref().and_then(|b| b.get(index)) {
                    Some(breaker) => breaker.admit(now),
                    None => Admission::Pass,
                }
            };
            let probe = match admission {
                Admission::Pass => None,
                Admission::Probe(permit) => Some(permit),
                Admission::Reject => {
                    skipped.get_or_insert_with(|| exclude.to_vec()).push(index);
                    continue;
                }
            };
            return Some(OriginPick {
                index,
                in_flight: pick.into_in_flight(),
                probe,
            });
        }
    }

    fn is_ejected(&self, index: usize, now: Instant) -> bool {
        self.outliers
            .as_ref()
            .is_some_and(|o| o.is_ejected(index, now))
    }

    /// Whether an origin other than those in `exclude` could be picked now: healthy, not
    /// ejected, admitted by its breaker and under its in-flight cap.
    pub fn has_other(&self, exclude: &[usize], now: Instant) -> bool {
        let snapshot = self.balancer.snapshot();
        snapshot.backends().iter().enumerate().any(|(i, b)| {
            b.is_pickable()
                && !exclude.contains(&i)
                && !self.is_ejected(i, now)
                && snapshot.in_flight(i).unwrap_or(0) < self.max_in_flight
                && self
                    .breakers
                    .as_ref()
                    .and_then(|b| b.get(i))
                    .is_none_or(|b| b.would_admit(now))
        })
    }

    /// Reports how a try to the origin at `index` ended (`ok`: it answered, and not with a
    /// 5xx; `probe`: it was a breaker probe) to its breaker and to outlier detection, and logs
    /// the state changes this causes.
    pub fn record(&self, index: usize, ok: bool, probe: bool, now: Instant) {
        let name = self.origins.get(index).map_or("?", |o| o.name.as_str());
        if let Some(breaker) = self.breakers.as_ref().and_then(|b| b.get(index)) {
            match breaker.record(ok, probe, now) {
                Some(BreakerState::Open) => tracing::warn!(
                    origin = name,
                    error_rate = breaker.failure_rate(),
                    cool_down = ?breaker.settings().cool_down,
                    "origin breaker open: it gets no requests until the cool-down has passed"
                ),
                Some(state) => {
                    tracing::info!(origin = name, state = state.as_str(), "origin breaker")
                }
                None => {}
            }
        }
        if let Some(ejected) = self
            .outliers
            .as_ref()
            .and_then(|o| o.record(index, ok, now))
        {
            tracing::warn!(origin = name, for_ = ?ejected, "origin ejected after failures in a row");
        }
    }

    /// Forgets the failures of the origin at `index` (health checks saw it come back): its
    /// breaker closes and an ejection ends.
    pub fn restored(&self, index: usize) {
        if let Some(breaker) = self.breakers.as_ref().and_then(|b| b.get(index)) {
            breaker.reset();
        }
        if let Some(outliers) = &self.outliers {
            outliers.uneject(index, Instant::now());
        }
    }

    /// How long until an origin that is out for now (breaker open, ejected) may take requests
    /// again: the soonest of them. `None` when nothing is waiting on a clock.
    pub fn next_return(&self, now: Instant) -> Option<Duration> {
        (0..self.origins.len())
            .filter_map(|i| {
                let breaker = self
                    .breakers
                    .as_ref()
                    .and_then(|b| b.get(i))
                    .and_then(|b| b.open_for(now));
                let ejected = self.outliers.as_ref().and_then(|o| o.ejected_for(i, now));
                match (breaker, ejected) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                }
            })
            .min()
    }

    /// The protections' view of the origin at `index`.
    pub fn protection(&self, index: usize, now: Instant) -> OriginProtection {
        let breaker = self.breakers.as_ref().and_then(|b| b.get(index));
        OriginProtection {
            breaker: breaker.map_or(BreakerState::Closed, |b| b.state(now)),
            breaker_opened: breaker.map_or(0, |b| b.times_entered(BreakerState::Open)),
            error_rate: breaker.map_or(0.0, |b| b.failure_rate()),
            ejected_for: self
                .outliers
                .as_ref()
                .and_then(|o| o.ejected_for(index, now)),
            ejections: self.outliers.as_ref().map_or(0, |o| o.ejections(index)),
        }
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

fn breaker_settings(c: &BreakerConfig) -> BreakerSettings {
    BreakerSettings {
        window: c.window,
        min_calls: c.min_calls,
        failure_rate: c.failure_rate,
        consecutive_failures: c.consecutive_failures,
        cool_down: c.cool_down.get(),
        half_open_probes: c.half_open_probes,
    }
}

fn outlier_settings(c: &OutlierConfig) -> OutlierSettings {
    OutlierSettings {
        consecutive_failures: c.consecutive_failures,
        base_ejection: c.base_ejection.get(),
        max_ejection: c.max_ejection.get(),
        max_ejected_share: c.max_ejected_share,
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
            .filter_map(|_| p.pick(b"", &[], Instant::now()))
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
            counts[p.pick(b"", &[], Instant::now()).unwrap().index()] += 1;
        }
        assert_eq!(counts, [300, 100, 0]);
        assert_eq!(
            p.pick(b"", &[0], Instant::now()).map(|p| p.index()),
            Some(1)
        );
        assert!(
            p.pick(b"", &[0, 1], Instant::now()).is_none(),
            "weight 0 is never picked"
        );
        assert!(p.has_other(&[0], Instant::now()));
        assert!(!p.has_other(&[0, 1], Instant::now()));
        p.balancer().set_health(1, false);
        assert!(!p.has_other(&[0], Instant::now()));
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
            let first = p.pick(key.as_bytes(), &[], Instant::now()).unwrap().index();
            for _ in 0..3 {
                assert_eq!(
                    p.pick(key.as_bytes(), &[], Instant::now()).unwrap().index(),
                    first
                );
            }
            let other = p
                .pick(key.as_bytes(), &[first], Instant::now())
                .unwrap()
                .index();
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

    fn pool_of_three(pool: PoolConfig) -> OriginPool {
        let origins: Vec<_> = (1..=3)
            .map(|i| origin(&format!("127.0.0.1:{i}"), 1, None))
            .collect();
        OriginPool::from_config(&pool, &origins)
    }

    #[test]
    fn an_open_breaker_is_skipped_until_its_probes_close_it() {
        let mut config = PoolConfig::default();
        config.breaker.consecutive_failures = 2;
        config.breaker.half_open_probes = 1;
        config.breaker.cool_down = HumanDuration::from_secs(10);
        config.outlier.enabled = false;
        let p = pool_of_three(config);
        let t = Instant::now();
        p.record(1, false, false, t);
        p.record(1, false, false, t);
        assert_eq!(p.protection(1, t).breaker, BreakerState::Open);
        assert_eq!(p.protection(1, t).breaker_opened, 1);
        for _ in 0..30 {
            assert_ne!(p.pick(b"", &[], t).unwrap().index(), 1);
        }
        assert!(!p.has_other(&[0, 2], t));
        assert_eq!(p.next_return(t), Some(Duration::from_secs(10)));
        // After the cool-down, one probe at a time goes to it.
        let later = t + Duration::from_secs(10);
        let probe = loop {
            let pick = p.pick(b"", &[], later).unwrap();
            if pick.index() == 1 {
                break pick;
            }
        };
        assert!(probe.is_probe());
        for _ in 0..30 {
            assert_ne!(p.pick(b"", &[], later).unwrap().index(), 1);
        }
        p.record(1, true, true, later);
        drop(probe);
        assert_eq!(p.protection(1, later).breaker, BreakerState::Closed);
        assert!(p.has_other(&[0, 2], later));
    }

    #[test]
    fn ejected_and_full_origins_are_skipped() {
        let mut config = PoolConfig::default();
        config.breaker.enabled = false;
        config.breaker.max_in_flight = 2;
        config.outlier.consecutive_failures = 3;
        let p = pool_of_three(config);
        let t = Instant::now();
        for _ in 0..3 {
            p.record(0, false, false, t);
        }
        let prot = p.protection(0, t);
        assert_eq!(prot.ejected_for, Some(Duration::from_secs(30)));
        assert_eq!((prot.ejections, prot.breaker), (1, BreakerState::Closed));
        assert!(!p.has_other(&[1, 2], t));
        // Origins 1 and 2 take two tries each, then nothing is left.
        let held: Vec<_> = (0..4).map(|_| p.pick(b"", &[], t).unwrap()).collect();
        assert!(held.iter().all(|h| h.index() != 0));
        assert!(p.pick(b"", &[], t).is_none());
        assert!(!p.has_other(&[], t));
        drop(held);
        assert!(p.pick(b"", &[], t).is_some());
        assert!(p.pick(b"", &[], t + Duration::from_secs(30)).is_some());
        assert!(p.has_other(&[1, 2], t + Duration::from_secs(30)));
    }
}
