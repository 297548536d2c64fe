//! Which edge a client gets: the healthy edges nearest to the client's region, and among that
//! nearest tier one picked by policy through the `cdn-balance` crate.
//!
//! The tiers are computed when health changes, not per query: for every region and address
//! family there is one [`Balancer`] over all edges of that family (in a fixed order, so the
//! consistent-hash ring never moves), and an edge is marked healthy in it exactly when it is in
//! that region's nearest tier. A query then costs one `ArcSwap` load and one pick. Health
//! changes publish a new [`HealthView`] and new balancer snapshots atomically; the query path
//! takes no lock.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use cdn_balance::{Backend, Balancer, Picker, Policy};
use cdn_config::GslbPolicy;

use crate::distance::Coordinates;

/// An address family: which edge address a query asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4: A queries.
    V4 = 0,
    /// IPv6: AAAA queries.
    V6 = 1,
}

/// An edge as the gslb sees it.
#[derive(Clone, Debug)]
pub struct EdgeInfo {
    /// Its name.
    pub name: String,
    /// Its IPv4 address, if any.
    pub ipv4: Option<IpAddr>,
    /// Its IPv6 address, if any.
    pub ipv6: Option<IpAddr>,
    /// Its share of clients within a tier (0 = drained).
    pub weight: u32,
    /// Where it stands.
    pub location: Coordinates,
}

impl EdgeInfo {
    /// Its address of `family`.
    pub fn address(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::V4 => self.ipv4,
            Family::V6 => self.ipv6,
        }
    }
}

/// The health of one edge as last published by the checker.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EdgeStatus {
    /// Up (rise good probes in a row) or down (fall bad ones).
    pub up: bool,
    /// The load it reported, 0 to 1.
    pub load: f64,
    /// Its load went over the high watermark and has not yet come back under the low one:
    /// it gets no new clients while another healthy edge is in reach.
    pub shedding: bool,
}

impl Default for EdgeStatus {
    fn default() -> Self {
        EdgeStatus {
            up: true,
            load: 0.0,
            shedding: false,
        }
    }
}

/// The health of every edge, in config order.
#[derive(Clone, Debug, Default)]
pub struct HealthView {
    /// One per edge.
    pub edges: Vec<EdgeStatus>,
}

/// One region's balancer for one family, and which edge each of its backends is.
#[derive(Debug)]
struct Route {
    balancer: Balancer,
    members: Vec<usize>,
}

/// The edges and how to choose among them.
#[derive(Debug)]
pub struct EdgeChoice {
    edges: Vec<EdgeInfo>,
    /// `distances[region][edge]` in km.
    distances: Vec<Vec<f64>>,
    /// `routes[region][family]`: `None` when no edge has an address of that family.
    routes: Vec<[Option<Route>; 2]>,
    health: ArcSwap<HealthView>,
    /// Serialises publishers (probes of different edges); never taken by queries.
    publishing: Mutex<()>,
    policy: GslbPolicy,
    answers: usize,
    tier_km: f64,
    /// Fallback addresses per family; empty: every edge of the family.
    fallback: [Vec<IpAddr>; 2],
    /// Per family, the most addresses one choice can return.
    max_addresses: [usize; 2],
}

/// The edges one answer carries.
#[derive(Debug, Default)]
pub struct Chosen {
    /// Edge index (in config order; `None` for a configured fallback address) and address.
    pub addresses: Vec<(Option<usize>, IpAddr)>,
    /// No edge of the tier was healthy: these come from the fallback.
    pub fallback: bool,
}

impl EdgeChoice {
    /// Edge choice over `edges` for clients in `regions`, all edges starting up.
    pub fn new(
        edges: Vec<EdgeInfo>,
        regions: &[Coordinates],
        policy: GslbPolicy,
        answers: usize,
        tier_km: f64,
        fallback: &[IpAddr],
        initial: HealthView,
    ) -> Self {
        let distances: Vec<Vec<f64>> = regions
            .iter()
            .map(|r| edges.iter().map(|e| r.distance_km(&e.location)).collect())
            .collect();
        let balance_policy = match policy {
            GslbPolicy::ConsistentHash => Policy::consistent_hash(),
            // p2c draws its two candidates as weighted random picks, then compares the loads
            // the edges report (the balancer's own in-flight counts mean nothing for DNS).
            GslbPolicy::Weighted | GslbPolicy::P2c => Policy::Random,
        };
        let route = |family: Family| {
            let members: Vec<usize> = (0..edges.len())
                .filter(|&i| edges[i].address(family).is_some())
                .collect();
            if members.is_empty() {
                return None;
            }
            let backends = members
                .iter()
                .map(|&i| Backend::new(edges[i].name.clone(), edges[i].weight))
                .collect();
            Some(Route {
                balancer: Balancer::new(balance_policy.clone(), backends),
                members,
            })
        };
        let routes = regions
            .iter()
            .map(|_| [route(Family::V4), route(Family::V6)])
            .collect();
        let split = |v4: bool| {
            fallback
                .iter()
                .copied()
                .filter(|a| a.is_ipv4() == v4)
                .collect::<Vec<_>>()
        };
        let fallback = [split(true), split(false)];
        let answers = answers.max(1);
        let max_addresses = [Family::V4, Family::V6].map(|family| {
            let members = edges.iter().filter(|e| e.address(family).is_some()).count();
            answers.max(members).max(fallback[family as usize].len())
        });
        let mut initial = initial;
        initial.edges.resize(edges.len(), EdgeStatus::default());
        let choice = EdgeChoice {
            edges,
            distances,
            routes,
            health: ArcSwap::from_pointee(HealthView::default()),
            publishing: Mutex::new(()),
            policy,
            answers,
            tier_km,
            fallback,
            max_addresses,
        };
        choice.publish(initial);
        choice
    }

    /// The edges, in config order.
    pub fn edges(&self) -> &[EdgeInfo] {
        &self.edges
    }

    /// The health last published.
    pub fn health(&self) -> Arc<HealthView> {
        self.health.load_full()
    }

    /// Publishes new health: recomputes every region's nearest tier and swaps the balancers'
    /// snapshots. Called by the health checker; queries keep reading the previous state until
    /// the swap.
    pub fn publish(&self, view: HealthView) {
        let _one_at_a_time = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        for (region, routes) in self.routes.iter().enumerate() {
            for route in routes.iter().flatten() {
                let tier = self.tier(region, &route.members, &view);
                let backends = route
                    .members
                    .iter()
                    .zip(&tier)
                    .map(|(&i, &in_tier)| Backend {
                        id: self.edges[i].name.clone(),
                        weight: self.edges[i].weight,
                        healthy: in_tier,
                    })
                    .collect();
                route.balancer.update(backends);
            }
        }
        self.health.store(Arc::new(view));
    }

    /// Which of `members` form the nearest tier of `region`: up and weighted, not shedding
    /// unless all are, and within `tier_km` of the nearest such edge.
    fn tier(&self, region: usize, members: &[usize], view: &HealthView) -> Vec<bool> {
        let status = |i: usize| view.edges.get(i).copied().unwrap_or_default();
        let usable = |i: usize| status(i).up && self.edges[i].weight > 0;
        let any_fresh = members.iter().any(|&i| usable(i) && !status(i).shedding);
        let eligible = |i: usize| usable(i) && (!any_fresh || !status(i).shedding);
        let distance = |i: usize| {
            self.distances
                .get(region)
                .and_then(|d| d.get(i))
                .copied()
                .unwrap_or(f64::INFINITY)
        };
        let nearest = members
            .iter()
            .filter(|&&i| eligible(i))
            .map(|&i| distance(i))
            .fold(f64::INFINITY, f64::min);
        members
            .iter()
            .map(|&i| eligible(i) && distance(i) <= nearest + self.tier_km)
            .collect()
    }

    /// Whether `region` has any edge of `family`: when not, [`choose`](Self::choose) returns
    /// nothing (no fallback either) and the answer is NODATA.
    pub fn serves(&self, region: usize, family: Family) -> bool {
        self.routes
            .get(region)
            .is_some_and(|r| r[family as usize].is_some())
    }

    /// The most addresses [`choose`](Self::choose) can return for `family`: the configured
    /// answer count, or a whole fallback (every edge of the family, or the configured list).
    /// The fast path sizes its response with it before choosing.
    pub fn max_addresses(&self, family: Family) -> usize {
        self.max_addresses[family as usize]
    }

    /// Chooses the edges for a client of `region` asking for `family`; `key` is the client's
    /// subnet (hashed by the consistent-hash policy).
    pub fn choose(&self, region: usize, family: Family, key: &[u8]) -> Chosen {
        let mut chosen = Chosen::default();
        let Some(route) = self
            .routes
            .get(region)
            .and_then(|r| r[family as usize].as_ref())
        else {
            return chosen;
        };
        let mut taken: Vec<usize> = Vec::with_capacity(self.answers);
        while taken.len() < self.answers {
            let pick = if taken.is_empty() && self.policy == GslbPolicy::P2c {
                self.power_of_two(route, key)
            } else {
                route
                    .balancer
                    .pick_excluding(key, &taken)
                    .map(|p| p.index())
            };
            let Some(index) = pick else { break };
            taken.push(index);
            if let Some(&edge) = route.members.get(index) {
                if let Some(addr) = self.edges[edge].address(family) {
                    chosen.addresses.push((Some(edge), addr));
                }
            }
        }
        if chosen.addresses.is_empty() {
            chosen.fallback = true;
            let configured = &self.fallback[family as usize];
            if configured.is_empty() {
                chosen.addresses.extend(
                    route
                        .members
                        .iter()
                        .filter_map(|&i| Some((Some(i), self.edges[i].address(family)?))),
                );
            } else {
                chosen
                    .addresses
                    .extend(configured.iter().map(|&a| (None, a)));
            }
        }
        chosen
    }

    /// Two weighted random tier members; the one reporting less load per unit of weight.
    fn power_of_two(&self, route: &Route, key: &[u8]) -> Option<usize> {
        let a = route.balancer.pick(key)?.index();
        let Some(b) = route.balancer.pick_excluding(key, &[a]).map(|p| p.index()) else {
            return Some(a);
        };
        let view = self.health.load();
        let cost = |index: usize| {
            let edge = route.members.get(index).copied().unwrap_or(usize::MAX);
            let load = view.edges.get(edge).map_or(0.0, |s| s.load);
            let weight = self.edges.get(edge).map_or(1, |e| e.weight.max(1));
            load / f64::from(weight)
        };
        Some(if cost(b) < cost(a) { b } else { a })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(latitude: f64, longitude: f64) -> Coordinates {
        Coordinates {
            latitude,
            longitude,
        }
    }

    fn edge(name: &str, v4: &str, location: Coordinates) -> EdgeInfo {
        EdgeInfo {
            name: name.into(),
            ipv4: Some(v4.parse().unwrap()),
            ipv6: None,
            weight: 1,
            location,
        }
    }

    /// Two edges in Virginia a few km apart, one in Paris, one in Tokyo; clients in
    /// Washington (region 0) and Frankfurt (region 1).
    fn choice(policy: GslbPolicy, answers: usize) -> EdgeChoice {
        EdgeChoice::new(
            vec![
                edge("iad1", "10.0.0.1", at(38.95, -77.45)),
                edge("iad2", "10.0.0.2", at(39.04, -77.49)),
                edge("cdg", "10.0.0.3", at(49.0, 2.55)),
                edge("nrt", "10.0.0.4", at(35.77, 140.39)),
            ],
            &[at(38.9, -77.0), at(50.1, 8.7)],
            policy,
            answers,
            500.0,
            &[],
            HealthView::default(),
        )
    }

    fn names(c: &EdgeChoice, chosen: &Chosen) -> Vec<String> {
        chosen
            .addresses
            .iter()
            .map(|(e, _)| e.map_or("fallback".into(), |i| c.edges()[i].name.clone()))
            .collect()
    }

    fn set(c: &EdgeChoice, statuses: &[(usize, bool, f64, bool)]) {
        let mut view = (*c.health()).clone();
        for &(i, up, load, shedding) in statuses {
            view.edges[i] = EdgeStatus { up, load, shedding };
        }
        c.publish(view);
    }

    #[test]
    fn nearest_tier_then_next_when_it_fails() {
        let c = choice(GslbPolicy::Weighted, 1);
        for _ in 0..50 {
            let n = names(&c, &c.choose(0, Family::V4, b"k"));
            assert!(n == ["iad1"] || n == ["iad2"], "{n:?}");
            assert_eq!(names(&c, &c.choose(1, Family::V4, b"k")), ["cdg"]);
        }
        set(&c, &[(2, false, 0.0, false)]);
        let n = names(&c, &c.choose(1, Family::V4, b"k"));
        assert!(n == ["iad1"] || n == ["iad2"], "{n:?}");
        // Nothing up: the fallback is every edge.
        set(
            &c,
            &[
                (0, false, 0.0, false),
                (1, false, 0.0, false),
                (3, false, 0.0, false),
            ],
        );
        let chosen = c.choose(0, Family::V4, b"k");
        assert!(chosen.fallback);
        assert_eq!(chosen.addresses.len(), 4);
        // No IPv6 edge at all: nothing to answer.
        assert!(c.choose(0, Family::V6, b"k").addresses.is_empty());
    }

    #[test]
    fn shedding_edges_are_avoided_while_another_is_near() {
        let c = choice(GslbPolicy::Weighted, 1);
        set(&c, &[(2, true, 0.95, true)]);
        let n = names(&c, &c.choose(1, Family::V4, b"k"));
        assert!(n == ["iad1"] || n == ["iad2"], "{n:?}");
        // Everybody shedding: the nearest still serves.
        set(
            &c,
            &[
                (0, true, 0.95, true),
                (1, true, 0.95, true),
                (3, true, 0.95, true),
            ],
        );
        assert_eq!(names(&c, &c.choose(1, Family::V4, b"k")), ["cdg"]);
    }

    #[test]
    fn p2c_prefers_the_less_loaded_and_answers_are_distinct() {
        let c = choice(GslbPolicy::P2c, 1);
        set(&c, &[(0, true, 0.8, false), (1, true, 0.1, false)]);
        for _ in 0..50 {
            assert_eq!(names(&c, &c.choose(0, Family::V4, b"k")), ["iad2"]);
        }
        let c = choice(GslbPolicy::Weighted, 3);
        let n = names(&c, &c.choose(0, Family::V4, b"k"));
        assert_eq!(n.len(), 2, "only the tier: {n:?}");
        assert_ne!(n[0], n[1]);
    }

    #[test]
    fn configured_fallback_is_per_family() {
        let c = EdgeChoice::new(
            vec![edge("a", "10.0.0.1", at(0.0, 0.0))],
            &[at(0.0, 0.0)],
            GslbPolicy::Weighted,
            1,
            0.0,
            &["192.0.2.9".parse().unwrap(), "2001:db8::9".parse().unwrap()],
            HealthView {
                edges: vec![EdgeStatus {
                    up: false,
                    load: 0.0,
                    shedding: false,
                }],
            },
        );
        let chosen = c.choose(0, Family::V4, b"k");
        assert!(chosen.fallback);
        assert_eq!(chosen.addresses, vec![(None, "192.0.2.9".parse().unwrap())]);
    }

    proptest! {
        /// A subnet keeps its edge while that edge stays in the tier.
        #[test]
        fn consistent_hash_is_sticky(keys in proptest::collection::vec(any::<[u8; 3]>(), 1..50)) {
            let c = choice(GslbPolicy::ConsistentHash, 1);
            let first: Vec<_> = keys.iter().map(|k| names(&c, &c.choose(0, Family::V4, k))).collect();
            set(&c, &[(3, false, 0.0, false)]); // a far edge leaves: no tier change
            for (k, before) in keys.iter().zip(&first) {
                prop_assert_eq!(&names(&c, &c.choose(0, Family::V4, k)), before);
            }
        }

        /// Whatever the health, an answer is a healthy tier edge or, with none, the fallback.
        #[test]
        fn answers_come_from_up_edges_unless_falling_back(
            ups in proptest::collection::vec(any::<bool>(), 4),
            region in 0usize..2,
        ) {
            let c = choice(GslbPolicy::Weighted, 2);
            let statuses: Vec<_> = ups.iter().enumerate().map(|(i, &up)| (i, up, 0.0, false)).collect();
            set(&c, &statuses);
            let chosen = c.choose(region, Family::V4, b"k");
            prop_assert!(!chosen.addresses.is_empty());
            if chosen.fallback {
                prop_assert!(ups.iter().all(|u| !u));
            } else {
                for (edge, _) in &chosen.addresses {
                    prop_assert!(edge.is_some_and(|i| ups[i]));
                }
            }
        }
    }
}
