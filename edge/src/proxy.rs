//! The edge's [`ProxyHttp`] implementation: one callback per step of a request, in the order of
//! DESIGN.md's data flow, each calling the module named for that step.

use crate::access_log::{self, AccessRecord};
use crate::cache_key;
use crate::cache_status::CacheOutcome;
use crate::freshness::FreshnessPolicy;
use crate::metrics::{EdgeMetrics, InFlight};
use crate::request_check;
use crate::storage::CacheStorage;
use crate::upstream::OriginPool;
use async_trait::async_trait;
use http::Method;
use pingora_cache::lock::CacheKeyLockImpl;
use pingora_cache::predictor::Predictor;
use pingora_cache::{CacheKey, CacheOptionOverrides, RespCacheable};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{ProxyHttp, Session};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Remembers keys whose responses were not cacheable, so later requests for them skip the cache
/// lock instead of queueing behind each other.
pub type UncacheablePredictor = Predictor<32>;

/// The caching reverse proxy of one edge.
pub struct EdgeProxy {
    /// Cache name in `Cache-Status`, and this edge's `Via` pseudonym.
    pub name: String,
    /// Where responses are stored.
    pub storage: &'static CacheStorage,
    /// Coalesces concurrent misses of one key into one origin fetch.
    pub lock: &'static CacheKeyLockImpl,
    /// Keys known to be uncacheable.
    pub predictor: &'static UncacheablePredictor,
    /// How long a coalesced request waits for the fetch it joined.
    pub lock_timeout: Duration,
    /// What may be stored and for how long.
    pub freshness: FreshnessPolicy,
    /// Where misses are fetched from.
    pub origins: OriginPool,
    /// The edge's metrics.
    pub metrics: Arc<EdgeMetrics>,
    /// Whether to write an access log line per request.
    pub access_log: bool,
    /// Header values computed once: `Via` and the `Cache-Status` of outcomes without a TTL.
    pub headers: FixedHeaders,
}

/// Response header values that do not change from request to request, built once so the hit
/// path does not format them each time.
pub struct FixedHeaders {
    via: http::HeaderValue,
    cache_status: Vec<http::HeaderValue>,
}

impl FixedHeaders {
    /// The fixed values for an edge named `name` (a valid token, checked by config validation).
    pub fn new(name: &str) -> Self {
        let value = |s: String| {
            http::HeaderValue::from_str(&s)
                .unwrap_or_else(|_| http::HeaderValue::from_static("cdn-edge"))
        };
        Self {
            via: value(format!("1.1 {name}")),
            cache_status: CacheOutcome::ALL
                .iter()
                .map(|o| value(o.header_value(name, None)))
                .collect(),
        }
    }

    /// `Via` with this edge appended (RFC 9110 section 7.6.3: a proxy must send it, both ways).
    fn via(&self, headers: &http::HeaderMap) -> http::HeaderValue {
        match headers.get(http::header::VIA).and_then(|v| v.to_str().ok()) {
            Some(prior) => http::HeaderValue::from_str(&format!(
                "{prior}, {}",
                self.via.to_str().unwrap_or("")
            ))
            .unwrap_or_else(|_| self.via.clone()),
            None => self.via.clone(),
        }
    }
}

/// What the edge remembers about one request between phases.
pub struct RequestCtx {
    started: Instant,
    _in_flight: InFlight,
    origin: Option<usize>,
    origin_started: Option<Instant>,
    origin_elapsed: Option<Duration>,
    stored: bool,
    outcome: CacheOutcome,
}

impl EdgeProxy {
    fn lock_overrides(&self) -> CacheOptionOverrides {
        let mut o = CacheOptionOverrides::default();
        o.wait_timeout = Some(self.lock_timeout);
        o
    }
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    /// No downstream modules: the edge does not compress, and an idle module still costs a pass
    /// over every response.
    fn init_downstream_modules(&self, _modules: &mut pingora_core::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            _in_flight: self.metrics.request_started(),
            origin: None,
            origin_started: None,
            origin_elapsed: None,
            stored: false,
            outcome: CacheOutcome::Bypass,
        }
    }

    /// Rejects requests the edge must not forward (bad `Host`, conflicting framing).
    async fn request_filter(&self, session: &mut Session, _ctx: &mut RequestCtx) -> Result<bool> {
        if let Err(problem) = request_check::check(session.req_header()) {
            let mut resp = ResponseHeader::build(problem.status, Some(3))?;
            resp.insert_header("content-length", problem.reason.len().to_string())?;
            resp.insert_header("content-type", "text/plain")?;
            resp.insert_header("connection", "close")?;
            session.set_keepalive(None);
            session.write_response_header(Box::new(resp), false).await?;
            session
                .write_response_body(
                    Some(bytes::Bytes::from_static(problem.reason.as_bytes())),
                    true,
                )
                .await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Only `GET` and `HEAD` use the cache; everything else goes straight to the origin.
    fn request_cache_filter(&self, session: &mut Session, _ctx: &mut RequestCtx) -> Result<()> {
        let method = &session.req_header().method;
        if method == Method::GET || method == Method::HEAD {
            session.cache.enable(
                self.storage,
                None,
                Some(self.predictor),
                Some(self.lock),
                Some(self.lock_overrides()),
            );
        }
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, _ctx: &mut RequestCtx) -> Result<CacheKey> {
        Ok(cache_key::for_request(session.req_header()))
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<RespCacheable> {
        let authorization = session
            .req_header()
            .headers
            .contains_key(http::header::AUTHORIZATION);
        let decision = self.freshness.decide(resp, authorization);
        ctx.stored = matches!(decision, RespCacheable::Cacheable(_));
        Ok(decision)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        ctx.origin_started = Some(Instant::now());
        ctx.origin = self.origins.pick();
        ctx.origin
            .and_then(|i| self.origins.peer(i))
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no origin configured"))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // The chosen origin's Host override (its own, else the pool's), if any.
        if let Some(host) = ctx
            .origin
            .and_then(|i| self.origins.origin(i))
            .and_then(|o| o.host.as_deref())
        {
            upstream.insert_header(http::header::HOST, host)?;
        }
        if let Some(client) = session.client_addr().and_then(|a| a.as_inet()) {
            let ip = client.ip().to_string();
            let xff = match upstream
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(prior) => format!("{prior}, {ip}"),
                None => ip,
            };
            upstream.insert_header("x-forwarded-for", xff)?;
        }
        let via = self.headers.via(&upstream.headers);
        upstream.insert_header(http::header::VIA, via)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(started) = ctx.origin_started {
            let elapsed = started.elapsed();
            ctx.origin_elapsed = Some(elapsed);
            self.metrics.origin_fetch(Ok(elapsed));
        }
        Ok(())
    }

    /// Adds `Cache-Status` (RFC 9211) and `Via` to every response.
    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.outcome = CacheOutcome::from_phase(session.cache.phase(), ctx.stored);
        let fresh_until: Option<SystemTime> = match ctx.outcome {
            CacheOutcome::Hit | CacheOutcome::Stale | CacheOutcome::Revalidated => {
                session.cache.maybe_cache_meta().map(|m| m.fresh_until())
            }
            _ => None,
        };
        let cache_status = match fresh_until {
            Some(_) => {
                http::HeaderValue::from_str(&ctx.outcome.header_value(&self.name, fresh_until))
                    .map_err(|e| Error::because(ErrorType::InternalError, "bad Cache-Status", e))?
            }
            None => self.headers.cache_status[ctx.outcome.index()].clone(),
        };
        resp.insert_header("cache-status", cache_status)?;
        let via = self.headers.via(&resp.headers);
        resp.insert_header(http::header::VIA, via)
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        if error.is_some() && ctx.origin_started.is_some() && ctx.origin_elapsed.is_none() {
            self.metrics.origin_fetch(Err(()));
        }
        let bytes = session.body_bytes_sent();
        self.metrics.request_done(ctx.outcome, status, bytes);
        if self.access_log {
            let req = session.req_header();
            let client = session
                .client_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            access_log::write(&AccessRecord {
                client: &client,
                method: req.method.as_str(),
                path: req.uri.path_and_query().map_or("/", |pq| pq.as_str()),
                status,
                cache: ctx.outcome,
                bytes,
                upstream: ctx.origin_elapsed,
                total: ctx.started.elapsed(),
                error: error.map(|e| e.to_string()),
            });
        }
    }
}
