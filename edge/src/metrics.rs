//! The edge's Prometheus metrics, served by the admin API at `/metrics`.
//!
//! Per-request counters are resolved to their label values once, at start-up, so the request
//! path only bumps atomics.

use crate::cache_status::CacheOutcome;
use crate::storage::StorageStats;
use crate::upstream::OriginProtection;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Counters, gauges and histograms of one edge.
pub struct EdgeMetrics {
    registry: Registry,
    requests: Vec<IntCounter>,
    responses: [IntCounter; 5],
    body_bytes: IntCounter,
    origin_ok: IntCounter,
    origin_errors: IntCounter,
    origin_requests: Vec<IntCounter>,
    origin_retries: IntCounter,
    origin_healthy: Vec<IntGauge>,
    origin_health_changes: Vec<IntCounter>,
    origin_breaker_state: Vec<IntGauge>,
    origin_breaker_opened: Vec<IntCounter>,
    origin_error_rate: Vec<Gauge>,
    origin_ejected: Vec<IntGauge>,
    origin_ejections: Vec<IntCounter>,
    origin_latency: Histogram,
    /// Requests refused by a route's protections, by reason (`Reason::ALL` order).
    refused: Vec<IntCounter>,
    in_flight: Arc<AtomicI64>,
    in_flight_gauge: IntGauge,
    cache_entries: IntGauge,
    cache_bytes: IntGauge,
    cache_max_bytes: IntGauge,
    evictions: IntCounter,
    expirations: IntCounter,
    /// Storage totals already added to `evictions` and `expirations`.
    published: Mutex<(u64, u64)>,
}

/// Counts one request in flight until dropped.
pub struct InFlight(Arc<AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn registered<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    // Names are fixed and distinct, so registering can only fail on a programming error, which
    // the unit test below would catch; a failure leaves the metric unexported, not the edge down.
    let _ = r.register(Box::new(c.clone()));
    c
}

impl EdgeMetrics {
    /// Metrics of the edge named `edge` (a constant `edge` label on every series) whose origins
    /// are named `origins` (`IP:port`, in pool order).
    pub fn new(edge: &str, origins: &[String]) -> Self {
        let registry = Registry::new_custom(
            Some("cdn_edge".into()),
            Some(
                [("edge".to_string(), edge.to_string())]
                    .into_iter()
                    .collect(),
            ),
        )
        .unwrap_or_default();
        let r = &registry;
        let requests = registered(
            r,
            IntCounterVec::new(
                Opts::new(
                    "requests_total",
                    "Requests by what the cache did (Cache-Status)",
                ),
                &["cache_status"],
            )
            .expect("valid metric"),
        );
        let responses = registered(
            r,
            IntCounterVec::new(
                Opts::new("responses_total", "Responses by status class"),
                &["status_class"],
            )
            .expect("valid metric"),
        );
        let origin = registered(
            r,
            IntCounterVec::new(
                Opts::new(
                    "origin_fetches_total",
                    "Requests sent to origins, by result",
                ),
                &["result"],
            )
            .expect("valid metric"),
        );
        let per_origin = registered(
            r,
            IntCounterVec::new(
                Opts::new(
                    "origin_requests_total",
                    "Requests sent to each origin (every try counts)",
                ),
                &["origin"],
            )
            .expect("valid metric"),
        );
        let healthy = registered(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "origin_healthy",
                    "Whether each origin is in the pool (1) or out after failed health checks (0)",
                ),
                &["origin"],
            )
            .expect("valid metric"),
        );
        let health_changes = registered(
            r,
            IntCounterVec::new(
                Opts::new(
                    "origin_health_changes_total",
                    "Times each origin went down or came back up by health checks",
                ),
                &["origin"],
            )
            .expect("valid metric"),
        );
        let per_origin_gauge = |name: &str, help: &str| {
            let vec = registered(
                r,
                IntGaugeVec::new(Opts::new(name, help), &["origin"]).expect("valid metric"),
            );
            origins
                .iter()
                .map(|o| vec.with_label_values(&[o.as_str()]))
                .collect::<Vec<_>>()
        };
        let per_origin_counter = |name: &str, help: &str| {
            let vec = registered(
                r,
                IntCounterVec::new(Opts::new(name, help), &["origin"]).expect("valid metric"),
            );
            origins
                .iter()
                .map(|o| vec.with_label_values(&[o.as_str()]))
                .collect::<Vec<_>>()
        };
        let error_rate = registered(
            r,
            GaugeVec::new(
                Opts::new(
                    "origin_error_rate",
                    "Failure share of the requests in each origin's breaker window",
                ),
                &["origin"],
            )
            .expect("valid metric"),
        );
        let gauge = |name: &str, help: &str| {
            registered(r, IntGauge::new(name, help).expect("valid metric"))
        };
        let counter = |name: &str, help: &str| {
            registered(r, IntCounter::new(name, help).expect("valid metric"))
        };
        Self {
            requests: CacheOutcome::ALL
                .iter()
                .map(|o| requests.with_label_values(&[o.as_str()]))
                .collect(),
            responses: ["1xx", "2xx", "3xx", "4xx", "5xx"]
                .map(|c| responses.with_label_values(&[c])),
            body_bytes: counter(
                "response_body_bytes_total",
                "Response body bytes sent to clients",
            ),
            origin_ok: origin.with_label_values(&["ok"]),
            origin_errors: origin.with_label_values(&["error"]),
            origin_requests: origins
                .iter()
                .map(|o| per_origin.with_label_values(&[o.as_str()]))
                .collect(),
            origin_healthy: origins
                .iter()
                .map(|o| {
                    let g = healthy.with_label_values(&[o.as_str()]);
                    g.set(1);
                    g
                })
                .collect(),
            origin_health_changes: origins
                .iter()
                .map(|o| health_changes.with_label_values(&[o.as_str()]))
                .collect(),
            origin_breaker_state: per_origin_gauge(
                "origin_breaker_state",
                "Each origin's circuit breaker: 0 closed, 1 open, 2 half-open",
            ),
            origin_breaker_opened: per_origin_counter(
                "origin_breaker_opened_total",
                "Times each origin's circuit breaker opened",
            ),
            origin_error_rate: origins
                .iter()
                .map(|o| error_rate.with_label_values(&[o.as_str()]))
                .collect(),
            origin_ejected: per_origin_gauge(
                "origin_ejected",
                "Whether outlier detection keeps each origin out of the pool now (1) or not (0)",
            ),
            origin_ejections: per_origin_counter(
                "origin_ejections_total",
                "Times outlier detection ejected each origin",
            ),
            origin_retries: counter(
                "origin_retries_total",
                "Requests sent again, to another origin, after a failed try",
            ),
            origin_latency: registered(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "origin_response_seconds",
                        "Time from choosing an origin to its response header",
                    )
                    .buckets(vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0,
                    ]),
                )
                .expect("valid metric"),
            ),
            refused: {
                let refused = registered(
                    r,
                    IntCounterVec::new(
                        Opts::new(
                            "requests_refused_total",
                            "Requests refused by a route's access list, Referer list, rate limit or signed-URL check, by reason",
                        ),
                        &["reason"],
                    )
                    .expect("valid metric"),
                );
                crate::route::Reason::ALL
                    .iter()
                    .map(|reason| refused.with_label_values(&[reason.as_str()]))
                    .collect()
            },
            in_flight: Arc::new(AtomicI64::new(0)),
            in_flight_gauge: gauge("requests_in_flight", "Requests being served now"),
            cache_entries: gauge("cache_entries", "Entries in the cache"),
            cache_bytes: gauge(
                "cache_bytes",
                "Bytes held by the cache (bodies, headers, overhead)",
            ),
            cache_max_bytes: gauge("cache_max_bytes", "Configured bound on cache bytes"),
            evictions: counter("cache_evictions_total", "Entries evicted to make room"),
            expirations: counter(
                "cache_expirations_total",
                "Entries dropped after their useful life",
            ),
            published: Mutex::new((0, 0)),
            registry,
        }
    }

    /// Marks a request as in flight until the returned guard is dropped.
    pub fn request_started(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.in_flight.clone())
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a finished request.
    pub fn request_done(&self, outcome: CacheOutcome, status: u16, body_bytes: usize) {
        self.requests[outcome.index()].inc();
        if let Some(c) = self
            .responses
            .get(usize::from(status / 100).wrapping_sub(1))
        {
            c.inc();
        }
        self.body_bytes.inc_by(body_bytes as u64);
    }

    /// Counts one origin fetch: its time to response header, or a failure.
    pub fn origin_fetch(&self, result: Result<Duration, ()>) {
        match result {
            Ok(elapsed) => {
                self.origin_ok.inc();
                self.origin_latency.observe(elapsed.as_secs_f64());
            }
            Err(()) => self.origin_errors.inc(),
        }
    }

    /// Counts a request sent to the origin at `index` in the pool.
    pub fn origin_request(&self, index: usize) {
        if let Some(c) = self.origin_requests.get(index) {
            c.inc();
        }
    }

    /// Records that the origin at `index` went up (`healthy`) or down.
    pub fn origin_health(&self, index: usize, healthy: bool) {
        if let Some(g) = self.origin_healthy.get(index) {
            g.set(i64::from(healthy));
        }
        if let Some(c) = self.origin_health_changes.get(index) {
            c.inc();
        }
    }

    /// Counts a request refused by a route's protections.
    pub fn refused(&self, reason: crate::route::Reason) {
        if let Some(c) = self.refused.get(reason.index()) {
            c.inc();
        }
    }

    /// Counts a retry.
    pub fn origin_retry(&self) {
        self.origin_retries.inc();
    }

    /// The Prometheus text exposition, with the cache's size and churn and the origins'
    /// protections (`origins[i]` for the origin at index `i`) as of now.
    pub fn render(&self, cache: &StorageStats, origins: &[OriginProtection]) -> String {
        self.in_flight_gauge.set(self.in_flight());
        self.cache_entries.set(cache.entries as i64);
        self.cache_bytes.set(cache.bytes as i64);
        self.cache_max_bytes.set(cache.max_bytes as i64);
        {
            let mut published = self
                .published
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.evictions
                .inc_by(cache.evictions.saturating_sub(published.0));
            self.expirations
                .inc_by(cache.expirations.saturating_sub(published.1));
            *published = (
                cache.evictions.max(published.0),
                cache.expirations.max(published.1),
            );
            // Under the same lock, so that two scrapes at once cannot both add a difference.
            for (i, p) in origins.iter().enumerate() {
                let set = |gauges: &[IntGauge], v: i64| gauges.get(i).map(|g| g.set(v));
                let catch_up = |counters: &[IntCounter], total: u64| {
                    counters
                        .get(i)
                        .map(|c| c.inc_by(total.saturating_sub(c.get())))
                };
                set(&self.origin_breaker_state, i64::from(p.breaker.code()));
                set(&self.origin_ejected, i64::from(p.ejected_for.is_some()));
                catch_up(&self.origin_breaker_opened, p.breaker_opened);
                catch_up(&self.origin_ejections, p.ejections);
                if let Some(g) = self.origin_error_rate.get(i) {
                    g.set(p.error_rate);
                }
            }
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            return format!("# cannot encode metrics: {e}\n");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported() {
        let m = EdgeMetrics::new("e1", &["127.0.0.1:1".into(), "127.0.0.1:2".into()]);
        m.origin_request(1);
        m.origin_request(1);
        m.origin_request(7);
        m.origin_retry();
        m.origin_health(0, false);
        m.request_done(CacheOutcome::Hit, 200, 1024);
        m.request_done(CacheOutcome::Miss, 404, 10);
        m.origin_fetch(Ok(Duration::from_millis(3)));
        m.origin_fetch(Err(()));
        let _guard = m.request_started();
        m.refused(crate::route::Reason::Expired);
        let stats = StorageStats {
            entries: 3,
            bytes: 4096,
            max_bytes: 1 << 20,
            evictions: 2,
            ..Default::default()
        };
        let protections = [
            OriginProtection {
                breaker: cdn_balance::BreakerState::Open,
                breaker_opened: 2,
                error_rate: 0.75,
                ejected_for: Some(Duration::from_secs(3)),
                ejections: 1,
            },
            OriginProtection {
                breaker: cdn_balance::BreakerState::Closed,
                breaker_opened: 0,
                error_rate: 0.0,
                ejected_for: None,
                ejections: 0,
            },
        ];
        let text = m.render(&stats, &protections);
        for needle in [
            r#"cdn_edge_origin_breaker_state{origin="127.0.0.1:1",edge="e1"} 1"#,
            r#"cdn_edge_origin_breaker_state{origin="127.0.0.1:2",edge="e1"} 0"#,
            r#"cdn_edge_origin_breaker_opened_total{origin="127.0.0.1:1",edge="e1"} 2"#,
            r#"cdn_edge_origin_error_rate{origin="127.0.0.1:1",edge="e1"} 0.75"#,
            r#"cdn_edge_origin_ejected{origin="127.0.0.1:1",edge="e1"} 1"#,
            r#"cdn_edge_origin_ejections_total{origin="127.0.0.1:1",edge="e1"} 1"#,
            r#"cdn_edge_requests_total{cache_status="hit",edge="e1"} 1"#,
            r#"cdn_edge_requests_total{cache_status="miss",edge="e1"} 1"#,
            r#"cdn_edge_responses_total{status_class="4xx",edge="e1"} 1"#,
            r#"cdn_edge_response_body_bytes_total{edge="e1"} 1034"#,
            r#"cdn_edge_origin_fetches_total{result="error",edge="e1"} 1"#,
            r#"cdn_edge_origin_response_seconds_count{edge="e1"} 1"#,
            r#"cdn_edge_origin_requests_total{origin="127.0.0.1:1",edge="e1"} 0"#,
            r#"cdn_edge_origin_requests_total{origin="127.0.0.1:2",edge="e1"} 2"#,
            r#"cdn_edge_origin_retries_total{edge="e1"} 1"#,
            r#"cdn_edge_origin_healthy{origin="127.0.0.1:1",edge="e1"} 0"#,
            r#"cdn_edge_origin_healthy{origin="127.0.0.1:2",edge="e1"} 1"#,
            r#"cdn_edge_origin_health_changes_total{origin="127.0.0.1:1",edge="e1"} 1"#,
            r#"cdn_edge_requests_in_flight{edge="e1"} 1"#,
            r#"cdn_edge_requests_refused_total{reason="expired",edge="e1"} 1"#,
            r#"cdn_edge_requests_refused_total{reason="rate-limited",edge="e1"} 0"#,
            r#"cdn_edge_cache_entries{edge="e1"} 3"#,
            r#"cdn_edge_cache_bytes{edge="e1"} 4096"#,
            r#"cdn_edge_cache_evictions_total{edge="e1"} 2"#,
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        // Rendering again does not double-count evictions.
        let text = m.render(&stats, &protections);
        assert!(text.contains(r#"cdn_edge_cache_evictions_total{edge="e1"} 2"#));
        assert!(text
            .contains(r#"cdn_edge_origin_breaker_opened_total{origin="127.0.0.1:1",edge="e1"} 2"#));
    }
}
