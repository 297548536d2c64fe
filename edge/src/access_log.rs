//! One log line per request, on the `access` tracing target at info level.

use crate::cache_status::CacheOutcome;
use std::time::Duration;

/// What the access log records of one request.
pub struct AccessRecord<'a> {
    /// Client address.
    pub client: &'a str,
    /// Request method.
    pub method: &'a str,
    /// Request path and query.
    pub path: &'a str,
    /// Response status (0 if none was sent).
    pub status: u16,
    /// What the cache did.
    pub cache: CacheOutcome,
    /// Response body bytes sent.
    pub bytes: usize,
    /// The origin that answered (or last failed), if one was asked.
    pub origin: Option<&'a str>,
    /// Origins tried (0 when served from cache).
    pub tries: u32,
    /// Time the origin took to answer, if it was asked.
    pub upstream: Option<Duration>,
    /// Time from the request to the end of the response.
    pub total: Duration,
    /// The error that ended the request, if any.
    pub error: Option<String>,
}

/// Writes the record.
pub fn write(r: &AccessRecord<'_>) {
    let upstream_ms = r.upstream.map(|d| d.as_secs_f64() * 1000.0);
    tracing::info!(
        target: "access",
        client = r.client,
        method = r.method,
        path = r.path,
        status = r.status,
        cache = r.cache.as_str(),
        bytes = r.bytes,
        origin = r.origin,
        tries = r.tries,
        upstream_ms = upstream_ms,
        total_ms = r.total.as_secs_f64() * 1000.0,
        error = r.error.as_deref(),
    );
}
