//! Prometheus metrics of the gslb, served by its admin API at `/metrics`.
//!
//! The per-query counters are resolved to handles ahead of time (query type × response code
//! here, region × edge in each [`Gslb`](crate::Gslb)), so a query costs atomic increments and
//! no label lookup.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus::{Encoder, GaugeVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

/// Query types counted by name; every other type is `other`.
const QTYPES: [&str; 9] = [
    "A", "AAAA", "SOA", "NS", "CNAME", "TXT", "MX", "ANY", "other",
];
/// Response codes counted by name; every other code is `other`.
const RCODES: [&str; 7] = [
    "NOERROR", "NXDOMAIN", "REFUSED", "FORMERR", "NOTIMP", "SERVFAIL", "other",
];

/// The gslb's metrics. One set per process: it survives config reloads.
pub struct GslbMetrics {
    registry: Registry,
    /// `queries[qtype][rcode]`.
    queries: Vec<Vec<IntCounter>>,
    answers: IntCounterVec,
    fallbacks: IntCounterVec,
    ecs_yes: IntCounter,
    ecs_no: IntCounter,
    ecs_invalid: IntCounter,
    dropped: IntCounter,
    edge_up: GaugeVec,
    edge_load: GaugeVec,
    edge_shedding: GaugeVec,
    reloads: IntCounterVec,
}

/// Metric names and labels are constants that the tests exercise: building them cannot fail.
const CONSTANT: &str = "metric names and labels are valid constants";

fn registered<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    // Names are fixed and distinct: registering fails only on a programming error, which the
    // tests would show as a missing series.
    let _ = r.register(Box::new(c.clone()));
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels).expect(CONSTANT);
    registered(r, vec)
}

fn gauge_vec(r: &Registry, name: &str, help: &str) -> GaugeVec {
    let vec = GaugeVec::new(Opts::new(name, help), &["edge"]).expect(CONSTANT);
    registered(r, vec)
}

impl Default for GslbMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GslbMetrics {
    /// A fresh set of metrics with its own registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let queries_vec = counter_vec(
            r,
            "cdn_gslb_queries_total",
            "DNS queries answered, by query type and response code",
            &["qtype", "rcode"],
        );
        let queries = QTYPES
            .iter()
            .map(|q| {
                RCODES
                    .iter()
                    .map(|c| queries_vec.with_label_values(&[q, c]))
                    .collect()
            })
            .collect();
        let ecs = counter_vec(
            r,
            "cdn_gslb_ecs_queries_total",
            "Queries by where the client's location came from: ecs (EDNS Client Subnet), source (the packet's address), invalid (ECS rejected with FORMERR)",
            &["source"],
        );
        GslbMetrics {
            queries,
            answers: counter_vec(
                r,
                "cdn_gslb_answers_total",
                "Edge addresses answered, by client region and chosen edge",
                &["region", "edge"],
            ),
            fallbacks: counter_vec(
                r,
                "cdn_gslb_fallback_answers_total",
                "Answers from the fallback because no edge of the region's tier was healthy",
                &["region"],
            ),
            ecs_yes: ecs.with_label_values(&["ecs"]),
            ecs_no: ecs.with_label_values(&["source"]),
            ecs_invalid: ecs.with_label_values(&["invalid"]),
            dropped: registered(
                r,
                IntCounter::new(
                    "cdn_gslb_dropped_total",
                    "Datagrams dropped without a reply (not a DNS query)",
                )
                .expect(CONSTANT),
            ),
            edge_up: gauge_vec(
                r,
                "cdn_gslb_edge_up",
                "1 when the edge passes its health checks",
            ),
            edge_load: gauge_vec(
                r,
                "cdn_gslb_edge_load",
                "Load the edge last reported (0 to 1)",
            ),
            edge_shedding: gauge_vec(
                r,
                "cdn_gslb_edge_shedding",
                "1 while the edge sheds load (above the high watermark, not yet below the low)",
            ),
            reloads: counter_vec(
                r,
                "cdn_gslb_reloads_total",
                "Config reloads, by result",
                &["result"],
            ),
            registry,
        }
    }

    /// Counts one answered query.
    pub fn query(&self, qtype: RecordType, rcode: ResponseCode) {
        let q = match qtype {
            RecordType::A => 0,
            RecordType::AAAA => 1,
            RecordType::SOA => 2,
            RecordType::NS => 3,
            RecordType::CNAME => 4,
            RecordType::TXT => 5,
            RecordType::MX => 6,
            RecordType::ANY => 7,
            _ => 8,
        };
        let c = match rcode {
            ResponseCode::NoError => 0,
            ResponseCode::NXDomain => 1,
            ResponseCode::Refused => 2,
            ResponseCode::FormErr => 3,
            ResponseCode::NotImp => 4,
            ResponseCode::ServFail => 5,
            _ => 6,
        };
        if let Some(counter) = self.queries.get(q).and_then(|row| row.get(c)) {
            counter.inc();
        }
    }

    /// Counts where a query's client location came from.
    pub fn ecs(&self, used: bool) {
        if used {
            self.ecs_yes.inc()
        } else {
            self.ecs_no.inc()
        }
    }

    /// Counts a query whose ECS option was rejected.
    pub fn ecs_invalid(&self) {
        self.ecs_invalid.inc();
    }

    /// Counts a datagram dropped without reply.
    pub fn dropped(&self) {
        self.dropped.inc();
    }

    /// The counter of answers for `region` and `edge` (resolved once per config).
    pub fn answers(&self, region: &str, edge: &str) -> IntCounter {
        self.answers.with_label_values(&[region, edge])
    }

    /// The counter of fallback answers for `region`.
    pub fn fallbacks(&self, region: &str) -> IntCounter {
        self.fallbacks.with_label_values(&[region])
    }

    /// Records an edge's health.
    pub fn edge(&self, edge: &str, up: bool, load: f64, shedding: bool) {
        self.edge_up
            .with_label_values(&[edge])
            .set(if up { 1.0 } else { 0.0 });
        self.edge_load.with_label_values(&[edge]).set(load);
        self.edge_shedding
            .with_label_values(&[edge])
            .set(if shedding { 1.0 } else { 0.0 });
    }

    /// Forgets an edge that left the config.
    pub fn forget_edge(&self, edge: &str) {
        let _ = self.edge_up.remove_label_values(&[edge]);
        let _ = self.edge_load.remove_label_values(&[edge]);
        let _ = self.edge_shedding.remove_label_values(&[edge]);
    }

    /// Counts a reload attempt.
    pub fn reload(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "ok" } else { "rejected" }])
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
