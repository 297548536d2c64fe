//! The admin API: `GET /healthz`, `GET /metrics` (Prometheus text), `GET /cache/stats` (JSON).
//!
//! It listens on its own address (`[edge.admin] listen`), apart from client traffic.

use crate::metrics::EdgeMetrics;
use crate::storage::CacheStorage;
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
            _ => json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": format!("no such endpoint: {path}"),
                    "endpoints": ["/healthz", "/metrics", "/cache/stats"]}),
            ),
        }
    }
}
