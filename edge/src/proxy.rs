//! The edge's [`ProxyHttp`] implementation: one callback per step of a request, in the order of
//! DESIGN.md's data flow, each calling the module named for that step.

use crate::access_log::{self, AccessRecord};
use crate::cache_key;
use crate::cache_status::CacheOutcome;
use crate::client_directives::ClientDirectives;
use crate::freshness::FreshnessPolicy;
use crate::hop_by_hop;
use crate::invalidation;
use crate::metrics::{EdgeMetrics, InFlight};
use crate::request_check;
use crate::retry::{self, Retrying};
use crate::route::{self, RouteTable};
use crate::storage::{CacheStorage, PurgeSelector};
use crate::upstream::{OriginPick, OriginPool};
use crate::vary;
use async_trait::async_trait;
use cdn_config::HashKey;
use http::Method;
use pingora_cache::key::HashBinary;
use pingora_cache::lock::CacheKeyLockImpl;
use pingora_cache::predictor::Predictor;
use pingora_cache::{
    CacheKey, CacheMeta, CacheOptionOverrides, ForcedFreshness, HitHandler, RespCacheable,
};
use pingora_core::protocols::http::ServerSession;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
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
    /// Where misses are fetched from (shared with the health checker and the admin API).
    pub origins: Arc<OriginPool>,
    /// When health checks are on, their interval in whole seconds: an origin may come back
    /// by then, so it bounds the `Retry-After` of the 503 answered when no origin is left.
    pub health_retry_after: Option<u64>,
    /// The edge's metrics.
    pub metrics: Arc<EdgeMetrics>,
    /// Whether to write an access log line per request.
    pub access_log: bool,
    /// Header values computed once: `Via` and the `Cache-Status` of outcomes without a TTL.
    pub headers: FixedHeaders,
    /// The `[[edge.routes]]`: access lists, rate limits, signed URLs.
    pub routes: RouteTable,
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
    /// The origin of the current (or last) try.
    origin: Option<usize>,
    /// The current try's origin: counts it in flight (and holds the breaker's probe permit,
    /// if it is a probe) until the try ends: replaced by the next try, dropped with the
    /// context after the logging phase.
    origin_pick: Option<OriginPick>,
    /// Whether the current try's outcome has been reported to the breaker and outlier
    /// detection.
    try_reported: bool,
    /// Origins that failed this request; its retries skip them.
    failed: Vec<usize>,
    /// Tries so far.
    tries: u32,
    /// What consistent hashing hashes for this request, computed at its first try.
    hash_key: Option<String>,
    /// This request's place in the retry budget, taken at its first retry.
    retrying: Option<Retrying>,
    /// A retry decision taken in `upstream_response_filter`, applied by `error_while_proxy`.
    decided_retry: Option<bool>,
    /// Whether the next try waits a back-off first.
    backoff: bool,
    /// Whether the one resend after a stale keep-alive connection has been used.
    resent_on_stale_connection: bool,
    /// Whether the current try's response header was let through to the client: from then
    /// on nothing is retried.
    header_passed: bool,
    /// Whether the current try is counted in `origin_fetches_total` already.
    try_counted: bool,
    origin_started: Option<Instant>,
    origin_elapsed: Option<Duration>,
    stored: bool,
    outcome: CacheOutcome,
    /// Whether this request found no origin left to try (answered 503 with `Retry-After`).
    no_origin: bool,
    /// What the client's `Cache-Control` asks of the cache.
    client: ClientDirectives,
    /// Whether a stored response was found that needs validating before use: if the origin
    /// cannot be reached and it is not served stale, the answer is a 504.
    stored_needs_validation: bool,
}

impl EdgeProxy {
    fn lock_overrides(&self) -> CacheOptionOverrides {
        let mut o = CacheOptionOverrides::default();
        o.wait_timeout = Some(self.lock_timeout);
        o
    }

    /// Reports how the current try ended to its origin's breaker and outlier detection, once
    /// per try (`ok`: the origin answered, and not with a 5xx).
    fn try_ended(&self, ctx: &mut RequestCtx, ok: bool) {
        if let Some(pick) = &ctx.origin_pick {
            if !std::mem::replace(&mut ctx.try_reported, true) {
                self.origins
                    .record(pick.index(), ok, pick.is_probe(), Instant::now());
            }
        }
    }

    /// Counts a failed try in `origin_fetches_total`, once.
    fn try_failed(&self, ctx: &mut RequestCtx) {
        if ctx.origin_started.is_some() && !std::mem::replace(&mut ctx.try_counted, true) {
            self.metrics.origin_fetch(Err(()));
        }
    }

    /// `Retry-After` when no origin is left: when the first of them may take requests again
    /// (the end of a breaker's cool-down or of an ejection, or the next round of health
    /// checks), in whole seconds, at least 1.
    fn retry_after_secs(&self) -> u64 {
        let waiting = self
            .origins
            .next_return(Instant::now())
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
        match (waiting, self.health_retry_after) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(1),
        }
        .max(1)
    }

    /// Whether nothing forbids sending the request again: an idempotent method, a request body
    /// still whole in pingora's retry buffer, and no response byte on its way to the client.
    fn may_resend(session: &Session, ctx: &RequestCtx) -> bool {
        session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
            && !ctx.header_passed
            && session.response_written().is_none()
    }

    /// Decides whether a try that failed with a connect error, a timeout or a 502/503/504 is
    /// retried on another origin (the rules in [`retry`]); if so, takes the request's place in
    /// the retry budget, counts the retry and asks for a back-off before the next try.
    fn may_retry(&self, session: &Session, ctx: &mut RequestCtx) -> bool {
        if let Some(i) = ctx.origin {
            if !ctx.failed.contains(&i) {
                ctx.failed.push(i);
            }
        }
        if !Self::may_resend(session, ctx)
            || ctx.tries >= self.origins.max_tries()
            || !self.origins.has_other(&ctx.failed, Instant::now())
        {
            return false;
        }
        if ctx.retrying.is_none() {
            let in_flight = usize::try_from(self.metrics.in_flight()).unwrap_or(0);
            match self.origins.retry_budget().try_start(in_flight) {
                Some(place) => ctx.retrying = Some(place),
                None => {
                    tracing::debug!("retry budget spent: not retrying");
                    return false;
                }
            }
        }
        ctx.backoff = true;
        self.metrics.origin_retry();
        true
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
            origin_pick: None,
            try_reported: false,
            failed: Vec::new(),
            tries: 0,
            hash_key: None,
            retrying: None,
            decided_retry: None,
            backoff: false,
            resent_on_stale_connection: false,
            header_passed: false,
            try_counted: false,
            origin_started: None,
            origin_elapsed: None,
            stored: false,
            outcome: CacheOutcome::Bypass,
            no_origin: false,
            client: ClientDirectives::default(),
            stored_needs_validation: false,
        }
    }

    /// Rejects requests the edge must not forward (bad `Host`, conflicting framing), then
    /// applies the request's route in DESIGN.md's order: access list, rate limit, signed URL.
    async fn request_filter(&self, session: &mut Session, _ctx: &mut RequestCtx) -> Result<bool> {
        let raw = match session.as_downstream() {
            ServerSession::H1(h1) => Some(h1.get_headers_raw_bytes()),
            _ => None,
        };
        let checked = request_check::check(session.req_header())
            .and_then(|()| raw.as_deref().map_or(Ok(()), request_check::check_raw));
        if let Err(problem) = checked {
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
        let Some(route) = self.routes.for_request(session.req_header()) else {
            return Ok(false);
        };
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let req = session.req_header();
        let client = self.routes.client_ip(peer, req);
        let checked = route
            .check_access(client, req)
            .and_then(|()| route.check_rate(client, req))
            .and_then(|()| route.check_signature(client, req));
        match checked {
            // A valid token's parameters leave the URI: out of the cache key and the origin
            // request alike, so every signed link to an object shares one entry.
            Ok(stripped) => {
                if let Some(uri) = stripped.and_then(|u| http::Uri::try_from(u).ok()) {
                    session.req_header_mut().set_uri(uri);
                }
                Ok(false)
            }
            Err(refusal) => {
                self.metrics.refused(refusal.reason);
                route::send_refusal(session, &refusal).await?;
                Ok(true)
            }
        }
    }

    /// Only `GET` and `HEAD` use the cache; everything else goes straight to the origin.
    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let method = &session.req_header().method;
        if method == Method::GET || method == Method::HEAD {
            ctx.client = ClientDirectives::from_request(session.req_header());
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

    /// The client's `Cache-Control` on a stored response: revalidate first (`no-cache`,
    /// `max-age`, `min-fresh`) or accept it stale (`max-stale`).
    async fn cache_hit_filter(
        &self,
        _session: &mut Session,
        meta: &CacheMeta,
        _hit_handler: &mut HitHandler,
        is_fresh: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<ForcedFreshness>> {
        let forced = ctx.client.on_hit(meta, is_fresh, SystemTime::now());
        ctx.stored_needs_validation = match forced {
            Some(ForcedFreshness::ForceFresh) => false,
            Some(_) => true,
            None => !is_fresh,
        };
        Ok(forced)
    }

    /// A stored response varies by the request headers its `Vary` names.
    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut RequestCtx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        vary::variance(meta, req)
    }

    /// `only-if-cached` with nothing usable in the cache: a 504, and the origin is not asked
    /// (RFC 9111 section 5.2.1.7).
    async fn proxy_upstream_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        if !ctx.client.only_if_cached {
            return Ok(true);
        }
        let mut resp = ResponseHeader::build(504, Some(3))?;
        resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
        resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        session.write_response_header(Box::new(resp), true).await?;
        Ok(false)
    }

    /// Stale-while-revalidate (`error` is `None`: the entry's window was checked by pingora)
    /// and stale-if-error on origin failures, unless the client said `no-cache` or the entry
    /// must be revalidated (its windows are zero then).
    fn should_serve_stale(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
        error: Option<&Error>,
    ) -> bool {
        !ctx.client.no_cache && error.is_none_or(|e| e.esource() == &ErrorSource::Upstream)
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
        // When the request left for the origin (RFC 9111 section 4.2.3's request_time).
        let requested = ctx
            .origin_started
            .and_then(|started| SystemTime::now().checked_sub(started.elapsed()))
            .unwrap_or_else(SystemTime::now);
        let decision = self.freshness.decide(resp, authorization, requested);
        ctx.stored = matches!(decision, RespCacheable::Cacheable(_));
        Ok(decision)
    }

    /// Chooses the origin of this try by the pool's policy, skipping origins that already
    /// failed this request; a retry first waits its back-off.
    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        // The previous try, if any, is over: it no longer counts as load on its origin.
        ctx.origin_pick = None;
        if std::mem::take(&mut ctx.backoff) {
            tokio::time::sleep(retry::backoff(ctx.tries)).await;
        }
        if ctx.hash_key.is_none() {
            ctx.hash_key = self.origins.hash_key().map(|kind| match kind {
                // The cache key's URL when the cache built one; methods that skip the cache
                // normalise the same URL here, so they land on the same origin.
                HashKey::CacheKey => session
                    .cache
                    .maybe_cache_key()
                    .and_then(|k| k.primary_key_str())
                    .map_or_else(
                        || cache_key::request_url(session.req_header()),
                        str::to_owned,
                    ),
                HashKey::Client => session
                    .client_addr()
                    .and_then(|a| a.as_inet())
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default(),
            });
        }
        let key = ctx.hash_key.as_deref().unwrap_or("").as_bytes();
        // Every origin down (health checks, breakers, ejections) or already failed: a 503,
        // answered at once by `fail_to_proxy`, unless pingora serves a stale copy (the error is
        // the upstream's).
        let Some(pick) = self.origins.pick(key, &ctx.failed, Instant::now()) else {
            ctx.no_origin = true;
            return Err(
                Error::explain(ErrorType::HTTPStatus(503), "no origin left to try").into_up(),
            );
        };
        let index = pick.index();
        ctx.origin = Some(index);
        ctx.origin_pick = Some(pick);
        ctx.try_reported = false;
        ctx.tries += 1;
        ctx.origin_started = Some(Instant::now());
        ctx.origin_elapsed = None;
        ctx.header_passed = false;
        ctx.try_counted = false;
        ctx.decided_retry = None;
        self.metrics.origin_request(index);
        self.origins
            .peer(index)
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no origin configured"))
    }

    /// A connect error (refused, unreachable, connect timeout): retried on another origin if
    /// the rules allow.
    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.try_failed(ctx);
        self.try_ended(ctx, false);
        let retry = self.may_retry(session, ctx);
        e.set_retry(retry);
        e
    }

    /// An error during the exchange with an origin. Retried on another origin: a timeout
    /// before the response header, and a 502/503/504 turned into an error by
    /// `upstream_response_filter`. Resent once, to any origin: a request whose reused
    /// keep-alive connection turned out closed (pingora's own rule). Nothing else.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        self.try_failed(ctx);
        if e.esource() == &ErrorSource::Upstream {
            self.try_ended(ctx, false);
        }
        let timed_out = matches!(
            e.etype(),
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
        ) && e.esource() == &ErrorSource::Upstream;
        let retry = if let Some(decided) = ctx.decided_retry.take() {
            decided
        } else if timed_out {
            self.may_retry(session, ctx)
        } else {
            e.retry.decide_reuse(client_reused);
            let resend = e.retry()
                && e.esource() == &ErrorSource::Upstream
                && !ctx.resent_on_stale_connection
                && Self::may_resend(session, ctx);
            if resend {
                ctx.resent_on_stale_connection = true;
                self.metrics.origin_retry();
            }
            resend
        };
        e.set_retry(retry);
        e
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

    /// Records the origin's time to response header (metrics, and the latency EWMA that `p2c`
    /// weighs), and turns a 502/503/504, or a header later than `total_timeout`, into an error
    /// that pingora retries on another origin when the rules allow. Nothing has been sent to
    /// the client at this point: pingora calls this before caching or forwarding the header.
    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if upstream.status.is_informational() {
            return Ok(());
        }
        if let Some(started) = ctx.origin_started {
            let elapsed = started.elapsed();
            ctx.origin_elapsed = Some(elapsed);
            ctx.try_counted = true;
            self.metrics.origin_fetch(Ok(elapsed));
            if let Some(pick) = &ctx.origin_pick {
                pick.in_flight().record_latency(elapsed);
            }
            if let Some(total) = self.origins.timeouts().total.filter(|t| elapsed > *t) {
                self.try_ended(ctx, false);
                let retry = self.may_retry(session, ctx);
                ctx.decided_retry = Some(retry);
                let mut e = Error::explain(
                    ErrorType::ReadTimedout,
                    format!("response header after {elapsed:?}, over total_timeout {total:?}"),
                );
                e.set_retry(retry);
                return Err(e.into_up());
            }
        }
        let status = upstream.status.as_u16();
        self.try_ended(ctx, status < 500);
        hop_by_hop::strip(upstream);
        if retry::retryable_status(status) && self.may_retry(session, ctx) {
            ctx.decided_retry = Some(true);
            let mut e = Error::explain(
                ErrorType::HTTPStatus(status),
                format!("origin answered {status}: retrying on another origin"),
            );
            e.set_retry(true);
            return Err(e.into_up());
        }
        ctx.header_passed = true;
        Ok(())
    }

    /// Ends an exchange that runs past `total_timeout` (checked as each piece of body arrives;
    /// the read timeout, capped at the total, bounds each wait).
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let (Some(total), Some(started)) = (self.origins.timeouts().total, ctx.origin_started) {
            if started.elapsed() > total {
                return Err(Error::explain(
                    ErrorType::ReadTimedout,
                    format!("response body still coming after total_timeout {total:?}"),
                )
                .into_up());
            }
        }
        Ok(None)
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
            CacheOutcome::Hit
            | CacheOutcome::Stale
            | CacheOutcome::StaleIfError
            | CacheOutcome::Revalidated => {
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
        for url in invalidation::urls(session.req_header(), resp) {
            self.storage.purge_matching(PurgeSelector::Url(&url));
        }
        if let Some(meta) = session.cache.maybe_cache_meta() {
            // The entry's age (RFC 9111 section 4.2.3): its creation time was set back by the
            // age it had on arrival.
            let age = SystemTime::now()
                .duration_since(meta.created())
                .unwrap_or_default();
            resp.insert_header(http::header::AGE, age.as_secs())?;
        }
        let via = self.headers.via(&resp.headers);
        resp.insert_header(http::header::VIA, via)
    }

    /// pingora's error response (the status from the error type: 502 for an upstream error,
    /// 400 or nothing for a downstream one, 500 otherwise), plus `Retry-After` on the 503 of a
    /// request that found no origin left.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        // A stale entry that may not be served stale and an origin that cannot be reached:
        // RFC 9111 section 5.2.2.2 asks for a 504.
        let code = if code == 502 && ctx.stored_needs_validation {
            504
        } else {
            code
        };
        if code == 503 && ctx.no_origin {
            let written = async {
                let mut resp = ResponseHeader::build(503, Some(4))?;
                resp.insert_header(http::header::RETRY_AFTER, self.retry_after_secs())?;
                resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
                resp.insert_header(http::header::CACHE_CONTROL, "private, no-store")?;
                session
                    .as_downstream_mut()
                    .write_error_response(resp, bytes::Bytes::new())
                    .await
            }
            .await;
            if let Err(e) = written {
                tracing::error!("failed to send error response to downstream: {e}");
            }
        } else if code > 0 {
            if let Err(e) = session.respond_error(code).await {
                tracing::error!("failed to send error response to downstream: {e}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        if error.is_some() {
            self.try_failed(ctx);
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
                origin: ctx
                    .origin
                    .and_then(|i| self.origins.origin(i))
                    .map(|o| o.name.as_str()),
                tries: ctx.tries,
                upstream: ctx.origin_elapsed,
                total: ctx.started.elapsed(),
                error: error.map(|e| e.to_string()),
            });
        }
    }
}
