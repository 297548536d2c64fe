//! The admin API: `GET /healthz`, `GET /metrics` (Prometheus text), `GET /cache/stats` (JSON),
//! `GET /origins` (JSON: each origin's health, load and latency, and its health check counters).
//!
//! It listens on its own address (`[edge.admin] listen`), apart from client traffic.

use crate::health::HealthStates;
use crate::metrics::EdgeMetrics;
use crate::storage::CacheStorage;
use crate::upstream::OriginPool;
use async_trait::async_trait;
use http::{header, Method, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use std::sync::Arc;

/// The admin API of one edge.
pub struct AdminApi {
    /// The edge's name, reported by `/healthz`.
    pub name: String,
    /// The edge's metrics.
    pub metrics: Arc<EdgeMetrics>,
    /// The edge's cache.
    pub storage: &'static CacheStorage,
    /// The origin pool.
    pub origins: Arc<OriginPool>,
    /// The health check counters, when health checks are on.
    pub health: Option<Arc<HealthStates>>,
}

impl AdminApi {
    /// `GET /origins`: one object per origin, in config order.
    fn origins(&self) -> serde_json::Value {
        let snapshot = self.origins.balancer().snapshot();
        let backends = snapshot.backends();
        self.origins
            .origins()
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let mut entry = serde_json::json!({
                    "address": o.name,
                    "host": o.host,
                    "weight": backends.get(i).map(|b| b.weight),
                    "healthy": backends.get(i).is_some_and(|b| b.healthy),
                    "in_flight": snapshot.in_flight(i).unwrap_or(0),
                    // Microsecond precision is plenty.
                    "latency_ms": snapshot
                        .latency(i)
                        .map(|l| (l.as_secs_f64() * 1e6).round() / 1000.0),
                });
                if let Some(checks) = self.health.as_ref().and_then(|h| h.get(i)) {
                    entry["checks"] = serde_json::to_value(checks).unwrap_or_default();
                }
                entry
            })
            .collect()
    }
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let len = body.len();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    if let Ok(v) = content_type.parse() {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CONTENT_LENGTH, len.into());
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Vec<u8>> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    respond(status, "application/json", body)
}

#[async_trait]
impl ServeHttp for AdminApi {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let path = req.uri.path();
        if req.method != Method::GET && req.method != Method::HEAD {
            return json(
                StatusCode::METHOD_NOT_ALLOWED,
                &serde_json::json!({"error": format!("{} is not allowed on {path}", req.method)}),
            );
        }
        match path {
            "/healthz" => json(
                StatusCode::OK,
                &serde_json::json!({
                    "status": "ok",
                    "edge": self.name,
                    "in_flight": self.metrics.in_flight(),
                }),
            ),
            "/metrics" => respond(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics.render(&self.storage.stats()).into_bytes(),
            ),
            "/cache/stats" => json(
                StatusCode::OK,
                &serde_json::to_value(self.storage.stats()).unwrap_or_default(),
            ),
            "/origins" => json(StatusCode::OK, &self.origins()),
            _ => json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": format!("no such endpoint: {path}"),
                    "endpoints": ["/healthz", "/metrics", "/cache/stats", "/origins"]}),
            ),
        }
    }
}
