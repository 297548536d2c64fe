//! The admin API: `GET /healthz`, `GET /metrics` (Prometheus text), `GET /cache/stats` (JSON),
//! `GET /origins` (JSON: each origin's health, load, latency, breaker state, error rate and
//! ejections, and its health check counters), `POST /purge` ([`crate::purge`]), `POST
//! /prewarm` and `GET /prewarm/{id}` ([`crate::prewarm`]).
//!
//! It listens on its own address (`[edge.admin] listen`), apart from client traffic. Every
//! `POST` changes state: only clients in `edge.admin.allow` may send one (others get 403), and
//! its body is read whole up to `edge.admin.max_body` (413 beyond).

use crate::health::HealthStates;
use crate::metrics::EdgeMetrics;
use crate::prewarm::{PrewarmRefusal, Prewarmer};
use crate::storage::CacheStorage;
use crate::upstream::{OriginPool, OriginProtection};
use async_trait::async_trait;
use http::{header, Method, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a `POST` body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Clients that may call the endpoints that change state (`edge.admin.allow`).
    pub allow: Vec<cdn_config::Cidr>,
    /// Largest `POST` body read, in bytes (`edge.admin.max_body`).
    pub max_body: usize,
    /// Prewarm jobs (`POST /prewarm`, `GET /prewarm/{id}`).
    pub prewarm: Arc<Prewarmer>,
}

impl AdminApi {
    /// Breakers and ejections of every origin as of now, in config order.
    fn protections(&self) -> Vec<OriginProtection> {
        let now = Instant::now();
        (0..self.origins.origins().len())
            .map(|i| self.origins.protection(i, now))
            .collect()
    }

    /// `GET /origins`: one object per origin, in config order.
    fn origins(&self) -> serde_json::Value {
        let now = Instant::now();
        let snapshot = self.origins.balancer().snapshot();
        let backends = snapshot.backends();
        self.origins
            .origins()
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let p = self.origins.protection(i, now);
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
                    "breaker": p.breaker.as_str(),
                    "breaker_opened": p.breaker_opened,
                    "error_rate": p.error_rate,
                    "ejected": p.ejected_for.is_some(),
                    "ejected_for_ms": p.ejected_for.map(|d| d.as_millis() as u64),
                    "ejections": p.ejections,
                });
                if let Some(checks) = self.health.as_ref().and_then(|h| h.get(i)) {
                    entry["checks"] = serde_json::to_value(checks).unwrap_or_default();
                }
                entry
            })
            .collect()
    }
}

/// Requests in flight at which `/healthz` reports a load of 1.0. The edge has no configured
/// capacity, so this is a nominal one: Envoy's default cap of 1024 concurrent requests per
/// upstream cluster, a level at which a small edge is saturated.
const NOMINAL_CAPACITY: f64 = 1024.0;

/// The 0-to-1 load figure of `/healthz`: requests in flight over the nominal capacity.
fn healthz_load(in_flight: i64) -> f64 {
    (in_flight.max(0) as f64 / NOMINAL_CAPACITY).min(1.0)
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

fn error(status: StatusCode, message: String) -> Response<Vec<u8>> {
    json(status, &serde_json::json!({ "error": message }))
}

impl AdminApi {
    /// The `POST` endpoints: the client must be in `edge.admin.allow`.
    async fn change_state(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if !client.is_some_and(|ip| self.allow.iter().any(|net| net.contains(ip))) {
            // The body stays unread, so the connection cannot carry another request.
            session.set_keepalive(None);
            let who = client.map_or_else(|| "this client".to_string(), |ip| ip.to_string());
            return error(
                StatusCode::FORBIDDEN,
                format!("{who} may not change state: it is not in edge.admin.allow"),
            );
        }
        if path != "/purge" && path != "/prewarm" {
            session.set_keepalive(None);
            return error(
                StatusCode::NOT_FOUND,
                format!("no such endpoint: POST {path} (try POST /purge or POST /prewarm)"),
            );
        }
        let body = match read_body(session, self.max_body).await {
            Ok(body) => body,
            Err(refusal) => {
                session.set_keepalive(None);
                return refusal;
            }
        };
        if path == "/purge" {
            return match crate::purge::handle(self.storage, &body) {
                Ok(count) => json(
                    StatusCode::OK,
                    &serde_json::to_value(count).unwrap_or_default(),
                ),
                Err(reason) => error(StatusCode::BAD_REQUEST, reason),
            };
        }
        match self.prewarm.submit(&body) {
            Ok(report) => {
                let mut resp = json(
                    StatusCode::ACCEPTED,
                    &serde_json::to_value(&report).unwrap_or_default(),
                );
                if let Ok(location) = format!("/prewarm/{}", report.id).parse() {
                    resp.headers_mut().insert(header::LOCATION, location);
                }
                resp
            }
            Err(PrewarmRefusal::BadList(reason)) => error(StatusCode::BAD_REQUEST, reason),
            Err(PrewarmRefusal::Busy) => error(
                StatusCode::TOO_MANY_REQUESTS,
                "every remembered prewarm job is still running: wait for one to finish".into(),
            ),
        }
    }

    /// `GET /prewarm/{id}`.
    fn prewarm_report(&self, id: &str) -> Response<Vec<u8>> {
        match self.prewarm.report(id) {
            Some(report) => json(
                StatusCode::OK,
                &serde_json::to_value(report).unwrap_or_default(),
            ),
            None => error(
                StatusCode::NOT_FOUND,
                format!("no prewarm job {id:?} (jobs are forgotten after 64 newer ones)"),
            ),
        }
    }
}

/// Reads a request body whole: `Err` is the response refusing it (413 over `max` bytes,
/// 400 if it cannot be read, 408 if it takes too long).
async fn read_body(session: &mut ServerSession, max: usize) -> Result<Vec<u8>, Response<Vec<u8>>> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {max} bytes (edge.admin.max_body)"),
        )
    };
    let declared = session
        .req_header()
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let read = async {
        while let Some(chunk) = session.read_request_body().await? {
            if body.len() + chunk.len() > max {
                return Ok(false);
            }
            body.extend_from_slice(&chunk);
        }
        Ok::<bool, Box<pingora_core::Error>>(true)
    };
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(true)) => Ok(body),
        Ok(Ok(false)) => Err(too_large()),
        Ok(Err(e)) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("cannot read the body: {e}"),
        )),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            format!("the body did not arrive within {BODY_TIMEOUT:?}"),
        )),
    }
}

#[async_trait]
impl ServeHttp for AdminApi {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let path = req.uri.path();
        if req.method == Method::POST {
            return self.change_state(session).await;
        }
        if req.method != Method::GET && req.method != Method::HEAD {
            return json(
                StatusCode::METHOD_NOT_ALLOWED,
                &serde_json::json!({"error": format!("{} is not allowed on {path}", req.method)}),
            );
        }
        match path {
            "/healthz" => {
                let in_flight = self.metrics.in_flight();
                json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "status": "ok",
                        "edge": self.name,
                        "in_flight": in_flight,
                        // Read by the gslb to shed load before the edge fails (its watermarks
                        // are in these units).
                        "load": healthz_load(in_flight),
                    }),
                )
            }
            "/metrics" => respond(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics
                    .render(&self.storage.stats(), &self.protections())
                    .into_bytes(),
            ),
            "/cache/stats" => json(
                StatusCode::OK,
                &serde_json::to_value(self.storage.stats()).unwrap_or_default(),
            ),
            "/origins" => json(StatusCode::OK, &self.origins()),
            "/purge" | "/prewarm" => error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{path} takes a POST"),
            ),
            p if p.starts_with("/prewarm/") => self.prewarm_report(&p["/prewarm/".len()..]),
            _ => json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": format!("no such endpoint: {path}"),
                    "endpoints": ["/healthz", "/metrics", "/cache/stats", "/origins",
                        "POST /purge", "POST /prewarm", "/prewarm/{id}"]}),
            ),
        }
    }
}
