//! Whether a response may be stored and for how long (RFC 9111 sections 3, 4.2).
//!
//! Freshness comes from `Cache-Control` (`s-maxage` over `max-age`) then `Expires`, through
//! pingora-cache's own parser; `no-store` and `private` (without field names) forbid storing,
//! `private="F"` and `no-cache="F"` strip header `F` from what is stored. On top of pingora
//! this adds what an edge in front of real sites needs:
//! - a configurable TTL for responses with no freshness information, only for status codes
//!   RFC 9111 section 4.2.2 calls heuristically cacheable (default `0`: such responses are not
//!   stored, as RFC 9111 says);
//! - responses to requests with `Authorization` are stored only when `public`, `s-maxage` or
//!   `must-revalidate` allow it (section 3.5);
//! - responses that set cookies are stored only when the origin marks them `public` or
//!   `s-maxage`, or strips the cookie with `private="set-cookie"` / `no-cache="set-cookie"`,
//!   so one visitor's cookie is never handed to another by default;
//! - `Vary: *` is never stored (section 4.1); neither is a response whose `Content-Length`
//!   exceeds the largest storable object.

use pingora_cache::cache_control::{CacheControl, Cacheable, InterpretCacheControl};
use pingora_cache::filters::calculate_serve_stale_durations;
use pingora_cache::{CacheMeta, CacheMetaDefaults, NoCacheReason, RespCacheable};
use pingora_http::ResponseHeader;
use std::time::{Duration, SystemTime};

/// pingora's defaults, with no per-status TTL: the default TTL is applied here instead, because
/// pingora takes it as a plain `fn` that cannot read config.
const NO_DEFAULT_TTL: CacheMetaDefaults = CacheMetaDefaults::new(|_| None, 0, 0);

/// The edge's storage rules for responses.
#[derive(Clone, Debug, Default)]
pub struct FreshnessPolicy {
    /// TTL for heuristically cacheable responses without explicit freshness (zero: none).
    pub default_ttl: Duration,
    /// Responses declaring a larger `Content-Length` are not stored.
    pub max_object_size: u64,
    /// Whether heuristic freshness (10% of the time since `Last-Modified`) applies.
    pub heuristic: bool,
    /// Upper bound of a heuristic freshness lifetime.
    pub heuristic_max_ttl: Duration,
    /// Stale-if-error window for responses that name none.
    pub stale_if_error: Duration,
    /// Stale-while-revalidate window for responses that name none.
    pub stale_while_revalidate: Duration,
}

/// Status codes that are cacheable by default (RFC 9110 section 15.1, RFC 9111 4.2.2).
fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// A date header's value, if present and valid.
fn date_header(resp: &ResponseHeader, name: http::HeaderName) -> Option<SystemTime> {
    resp.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
}

/// The age a response already had when it arrived (RFC 9111 section 4.2.3,
/// `corrected_initial_age`): the larger of the origin's `Age` plus the time the exchange took,
/// and how far its `Date` lies in the past.
pub fn initial_age(resp: &ResponseHeader, requested: SystemTime, now: SystemTime) -> Duration {
    let age_value = resp
        .headers
        .get(http::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs);
    let response_delay = now.duration_since(requested).unwrap_or_default();
    // `Date` has a resolution of one second: up to a second of apparent age is rounding, not
    // time spent in caches, and counting it would age every response by up to a second.
    let apparent_age = date_header(resp, http::header::DATE)
        .and_then(|date| now.duration_since(date).ok())
        .map_or(Duration::ZERO, |d| d.saturating_sub(Duration::from_secs(1)));
    apparent_age.max(age_value + response_delay)
}

impl FreshnessPolicy {
    /// Decides whether `resp` (the answer to a request that did or did not carry
    /// `Authorization`, sent at `requested`) is stored, and builds its metadata if it is.
    ///
    /// The entry's creation time is set back by the response's initial age, so that its age
    /// on later hits (`Age`, `max-age` requests) and its freshness count the time it spent
    /// in caches before ours (RFC 9111 section 4.2.3).
    pub fn decide(
        &self,
        resp: &ResponseHeader,
        authorization: bool,
        requested: SystemTime,
    ) -> RespCacheable {
        let status = resp.status.as_u16();
        // Partial and informational responses are never stored as the object itself; 304s are
        // merged into the stored entry by pingora before they reach here.
        if status < 200 || status == 206 || status == 304 {
            return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
        }
        if resp.headers.get_all(http::header::VARY).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|f| f.trim_ascii() == b"*")
        }) {
            return RespCacheable::Uncacheable(NoCacheReason::Custom("vary-star"));
        }
        if let Some(len) = resp
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            if len > self.max_object_size {
                return RespCacheable::Uncacheable(NoCacheReason::ResponseTooLarge);
            }
        }

        let cc = CacheControl::from_resp_headers(resp);
        if resp.headers.contains_key(http::header::SET_COOKIE) && !cookie_may_be_stored(cc.as_ref())
        {
            return RespCacheable::Uncacheable(NoCacheReason::Custom("set-cookie"));
        }
        let forbidden = cc
            .as_ref()
            .is_some_and(|cc| cc.is_cacheable() == Cacheable::No)
            || (authorization
                && !cc
                    .as_ref()
                    .is_some_and(|cc| cc.allow_caching_authorized_req()));
        if forbidden {
            return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
        }

        let now = SystemTime::now();
        let created = now
            .checked_sub(initial_age(resp, requested, now))
            .unwrap_or(now);
        let Some(lifetime) = self.lifetime(resp, cc.as_ref(), status, now) else {
            return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
        };
        // A zero lifetime (`no-cache`, `max-age=0`) stores an entry that is stale at once, so
        // that every use revalidates it.
        let fresh_until = if lifetime.is_zero() {
            created.min(now - Duration::from_secs(1))
        } else {
            created + lifetime
        };
        let must_revalidate = cc.as_ref().is_some_and(|cc| {
            cc.must_revalidate()
                || cc.proxy_revalidate()
                || cc.no_cache()
                || matches!(cc.s_maxage(), Ok(Some(_)))
        });
        let (swr, sie) = if must_revalidate {
            // RFC 9111 section 5.2.2.2: never served stale, not even on an origin error.
            (0, 0)
        } else {
            let (swr, sie) = calculate_serve_stale_durations(cc.as_ref(), &NO_DEFAULT_TTL);
            let has = |name: &str| cc.as_ref().is_some_and(|cc| cc.has_key(name));
            let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
            (
                if has("stale-while-revalidate") {
                    swr
                } else {
                    secs(self.stale_while_revalidate)
                },
                if has("stale-if-error") {
                    sie
                } else {
                    secs(self.stale_if_error)
                },
            )
        };
        let mut header = resp.clone();
        if let Some(cc) = &cc {
            cc.strip_private_headers(&mut header);
        }
        RespCacheable::Cacheable(CacheMeta::new(fresh_until, created, swr, sie, header))
    }

    /// The freshness lifetime (RFC 9111 section 4.2.1): `s-maxage`, then `max-age`, then
    /// `Expires` − `Date`, then, for heuristically cacheable statuses only, 10% of the time
    /// since `Last-Modified` (when enabled, capped), then the configured default TTL. `None`:
    /// not storable.
    fn lifetime(
        &self,
        resp: &ResponseHeader,
        cc: Option<&CacheControl>,
        status: u16,
        now: SystemTime,
    ) -> Option<Duration> {
        if let Some(fresh) = cc.and_then(|cc| cc.fresh_duration()) {
            return Some(fresh);
        }
        if resp.headers.contains_key(http::header::EXPIRES) {
            // An invalid Expires (e.g. "0") means already expired (section 5.3).
            let date = date_header(resp, http::header::DATE).unwrap_or(now);
            return Some(
                date_header(resp, http::header::EXPIRES)
                    .and_then(|expires| expires.duration_since(date).ok())
                    .unwrap_or_default(),
            );
        }
        if !heuristically_cacheable(status) && !cc.is_some_and(|cc| cc.public()) {
            return None;
        }
        if self.heuristic {
            if let Some(modified) = date_header(resp, http::header::LAST_MODIFIED) {
                let date = date_header(resp, http::header::DATE).unwrap_or(now);
                let since = date.duration_since(modified).unwrap_or_default();
                return Some((since / 10).min(self.heuristic_max_ttl));
            }
        }
        (!self.default_ttl.is_zero()).then_some(self.default_ttl)
    }
}

/// Whether a response carrying `Set-Cookie` may be stored.
fn cookie_may_be_stored(cc: Option<&CacheControl>) -> bool {
    let Some(cc) = cc else { return false };
    let names_cookie = |names: Option<pingora_cache::cache_control::ListValueIter<'_>>| {
        names.is_some_and(|mut it| it.any(|n| n.eq_ignore_ascii_case(b"set-cookie")))
    };
    cc.public()
        || matches!(cc.s_maxage(), Ok(Some(_)))
        || names_cookie(cc.private_field_names())
        || names_cookie(cc.no_cache_field_names())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn ttl(decision: RespCacheable) -> Option<u64> {
        match decision {
            RespCacheable::Cacheable(meta) => Some(
                meta.fresh_until()
                    .duration_since(SystemTime::now())
                    .map(|d| d.as_secs() + 1)
                    .unwrap_or(0),
            ),
            RespCacheable::Uncacheable(_) => None,
        }
    }

    const POLICY: FreshnessPolicy = FreshnessPolicy {
        default_ttl: Duration::ZERO,
        max_object_size: 1 << 20,
        heuristic: false,
        heuristic_max_ttl: Duration::from_secs(86_400),
        stale_if_error: Duration::ZERO,
        stale_while_revalidate: Duration::ZERO,
    };

    #[test]
    fn max_age_and_s_maxage() {
        assert_eq!(
            ttl(POLICY.decide(
                &resp(200, &[("cache-control", "max-age=60")]),
                false,
                SystemTime::now()
            )),
            Some(60)
        );
        assert_eq!(
            ttl(POLICY.decide(
                &resp(200, &[("cache-control", "max-age=60, s-maxage=120")]),
                false,
                SystemTime::now()
            )),
            Some(120)
        );
    }

    #[test]
    fn no_store_and_private_are_not_stored() {
        assert_eq!(
            ttl(POLICY.decide(
                &resp(200, &[("cache-control", "no-store, max-age=60")]),
                false,
                SystemTime::now()
            )),
            None
        );
        assert_eq!(
            ttl(POLICY.decide(
                &resp(200, &[("cache-control", "private, max-age=60")]),
                false,
                SystemTime::now()
            )),
            None
        );
    }

    #[test]
    fn no_freshness_means_no_storage_unless_a_default_ttl_is_set() {
        assert_eq!(
            ttl(POLICY.decide(&resp(200, &[]), false, SystemTime::now())),
            None
        );
        let p = FreshnessPolicy {
            default_ttl: Duration::from_secs(30),
            ..POLICY
        };
        assert_eq!(
            ttl(p.decide(&resp(200, &[]), false, SystemTime::now())),
            Some(30)
        );
        assert_eq!(
            ttl(p.decide(&resp(404, &[]), false, SystemTime::now())),
            Some(30)
        );
        assert_eq!(
            ttl(p.decide(&resp(500, &[]), false, SystemTime::now())),
            None,
            "500 is not heuristically cacheable"
        );
    }

    #[test]
    fn authorization_needs_explicit_permission() {
        let r = resp(200, &[("cache-control", "max-age=60")]);
        assert_eq!(ttl(POLICY.decide(&r, true, SystemTime::now())), None);
        let r = resp(200, &[("cache-control", "public, max-age=60")]);
        assert_eq!(ttl(POLICY.decide(&r, true, SystemTime::now())), Some(60));
    }

    #[test]
    fn set_cookie_needs_explicit_permission() {
        let r = resp(
            200,
            &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
        );
        assert_eq!(ttl(POLICY.decide(&r, false, SystemTime::now())), None);
        let r = resp(
            200,
            &[
                ("cache-control", "public, max-age=60"),
                ("set-cookie", "a=b"),
            ],
        );
        assert_eq!(ttl(POLICY.decide(&r, false, SystemTime::now())), Some(60));
        let r = resp(
            200,
            &[
                ("cache-control", "max-age=60, private=\"set-cookie\""),
                ("set-cookie", "a=b"),
            ],
        );
        match POLICY.decide(&r, false, SystemTime::now()) {
            RespCacheable::Cacheable(meta) => assert!(!meta.headers().contains_key("set-cookie")),
            RespCacheable::Uncacheable(r) => panic!("should be stored without the cookie: {r:?}"),
        }
    }

    #[test]
    fn vary_star_partial_and_oversized_are_not_stored() {
        assert_eq!(
            ttl(POLICY.decide(
                &resp(200, &[("cache-control", "max-age=60"), ("vary", "*")]),
                false,
                SystemTime::now()
            )),
            None
        );
        assert_eq!(
            ttl(POLICY.decide(
                &resp(206, &[("cache-control", "max-age=60")]),
                false,
                SystemTime::now()
            )),
            None
        );
        let big = (2u64 << 20).to_string();
        assert_eq!(
            ttl(POLICY.decide(
                &resp(
                    200,
                    &[("cache-control", "max-age=60"), ("content-length", &big)]
                ),
                false,
                SystemTime::now()
            )),
            None
        );
    }

    #[test]
    fn expires_is_honoured() {
        let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(100));
        let t =
            ttl(POLICY.decide(&resp(200, &[("expires", &at)]), false, SystemTime::now())).unwrap();
        assert!((99..=101).contains(&t), "{t}");
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(100));
        // An Expires in the past gives a stored but already stale entry.
        assert_eq!(
            ttl(POLICY.decide(&resp(200, &[("expires", &past)]), false, SystemTime::now())),
            Some(0)
        );
    }

    #[test]
    fn heuristic_freshness_is_a_tenth_of_the_age_capped_and_opt_in() {
        let ten_days_ago =
            httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(864_000));
        let r = resp(200, &[("last-modified", ten_days_ago.as_str())]);
        assert_eq!(
            ttl(POLICY.decide(&r, false, SystemTime::now())),
            None,
            "off by default"
        );
        let on = FreshnessPolicy {
            heuristic: true,
            heuristic_max_ttl: Duration::from_secs(3600),
            ..POLICY
        };
        assert_eq!(ttl(on.decide(&r, false, SystemTime::now())), Some(3600));
        let uncapped = FreshnessPolicy {
            heuristic_max_ttl: Duration::from_secs(10 * 86_400),
            ..on.clone()
        };
        let t = ttl(uncapped.decide(&r, false, SystemTime::now())).unwrap();
        assert!((86_399..=86_401).contains(&t), "{t}");
        let redirect = resp(302, &[("last-modified", ten_days_ago.as_str())]);
        assert_eq!(ttl(on.decide(&redirect, false, SystemTime::now())), None);
    }

    #[test]
    fn the_initial_age_counts_the_origins_age_and_date() {
        let now = SystemTime::now();
        let sent = now - Duration::from_secs(2);
        let aged = resp(200, &[("age", "30")]);
        assert_eq!(initial_age(&aged, sent, now), Duration::from_secs(32));
        let old_date = httpdate::fmt_http_date(now - Duration::from_secs(100));
        let dated = resp(200, &[("date", old_date.as_str()), ("age", "5")]);
        let age = initial_age(&dated, now, now);
        assert!((98..=100).contains(&age.as_secs()), "{age:?}");
        // A fresh Date is rounding, not age.
        let fresh = httpdate::fmt_http_date(now);
        assert_eq!(
            initial_age(&resp(200, &[("date", fresh.as_str())]), now, now),
            Duration::ZERO
        );
        // The entry's lifetime runs from the response's origin, not from its arrival here.
        let r = resp(200, &[("cache-control", "max-age=60"), ("age", "30")]);
        let t = ttl(POLICY.decide(&r, false, now)).unwrap();
        assert!((29..=31).contains(&t), "{t}");
    }

    #[test]
    fn stale_windows_come_from_the_response_else_config_never_for_must_revalidate() {
        let windows = |p: &FreshnessPolicy, cc: &str| match p.decide(
            &resp(200, &[("cache-control", cc)]),
            false,
            SystemTime::now(),
        ) {
            RespCacheable::Cacheable(m) => (m.stale_while_revalidate_sec(), m.stale_if_error_sec()),
            RespCacheable::Uncacheable(_) => panic!("not stored: {cc}"),
        };
        let p = FreshnessPolicy {
            stale_if_error: Duration::from_secs(600),
            stale_while_revalidate: Duration::from_secs(30),
            ..POLICY
        };
        assert_eq!(windows(&POLICY, "max-age=60"), (0, 0));
        assert_eq!(windows(&p, "max-age=60"), (30, 600));
        assert_eq!(windows(&p, "max-age=60, stale-if-error=5"), (30, 5));
        assert_eq!(windows(&p, "max-age=60, must-revalidate"), (0, 0));
        assert_eq!(windows(&p, "s-maxage=60"), (0, 0));
        assert_eq!(windows(&p, "no-cache"), (0, 0));
    }
}
