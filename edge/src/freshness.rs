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
use pingora_cache::filters::{calculate_fresh_until, calculate_serve_stale_durations};
use pingora_cache::{CacheMeta, CacheMetaDefaults, NoCacheReason, RespCacheable};
use pingora_http::ResponseHeader;
use std::time::{Duration, SystemTime};

/// pingora's defaults, with no per-status TTL: the default TTL is applied here instead, because
/// pingora takes it as a plain `fn` that cannot read config.
const NO_DEFAULT_TTL: CacheMetaDefaults = CacheMetaDefaults::new(|_| None, 0, 0);

/// The edge's storage rules for responses.
#[derive(Clone, Debug)]
pub struct FreshnessPolicy {
    /// TTL for heuristically cacheable responses without explicit freshness (zero: none).
    pub default_ttl: Duration,
    /// Responses declaring a larger `Content-Length` are not stored.
    pub max_object_size: u64,
}

/// Status codes that are cacheable by default (RFC 9110 section 15.1, RFC 9111 4.2.2).
fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

impl FreshnessPolicy {
    /// Decides whether `resp` (the answer to a request that did or did not carry
    /// `Authorization`) is stored, and builds its metadata if it is.
    pub fn decide(&self, resp: &ResponseHeader, authorization: bool) -> RespCacheable {
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
        let fresh_until =
            calculate_fresh_until(now, cc.as_ref(), resp, authorization, &NO_DEFAULT_TTL).or_else(
                || {
                    (!self.default_ttl.is_zero() && heuristically_cacheable(status))
                        .then(|| now + self.default_ttl)
                },
            );
        let Some(fresh_until) = fresh_until else {
            return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
        };
        let (swr, sie) = calculate_serve_stale_durations(cc.as_ref(), &NO_DEFAULT_TTL);
        let mut header = resp.clone();
        if let Some(cc) = &cc {
            cc.strip_private_headers(&mut header);
        }
        RespCacheable::Cacheable(CacheMeta::new(fresh_until, now, swr, sie, header))
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
    };

    #[test]
    fn max_age_and_s_maxage() {
        assert_eq!(
            ttl(POLICY.decide(&resp(200, &[("cache-control", "max-age=60")]), false)),
            Some(60)
        );
        assert_eq!(
            ttl(POLICY.decide(
                &resp(200, &[("cache-control", "max-age=60, s-maxage=120")]),
                false
            )),
            Some(120)
        );
    }

    #[test]
    fn no_store_and_private_are_not_stored() {
        assert_eq!(
            ttl(POLICY.decide(
                &resp(200, &[("cache-control", "no-store, max-age=60")]),
                false
            )),
            None
        );
        assert_eq!(
            ttl(POLICY.decide(
                &resp(200, &[("cache-control", "private, max-age=60")]),
                false
            )),
            None
        );
    }

    #[test]
    fn no_freshness_means_no_storage_unless_a_default_ttl_is_set() {
        assert_eq!(ttl(POLICY.decide(&resp(200, &[]), false)), None);
        let p = FreshnessPolicy {
            default_ttl: Duration::from_secs(30),
            ..POLICY
        };
        assert_eq!(ttl(p.decide(&resp(200, &[]), false)), Some(30));
        assert_eq!(ttl(p.decide(&resp(404, &[]), false)), Some(30));
        assert_eq!(
            ttl(p.decide(&resp(500, &[]), false)),
            None,
            "500 is not heuristically cacheable"
        );
    }

    #[test]
    fn authorization_needs_explicit_permission() {
        let r = resp(200, &[("cache-control", "max-age=60")]);
        assert_eq!(ttl(POLICY.decide(&r, true)), None);
        let r = resp(200, &[("cache-control", "public, max-age=60")]);
        assert_eq!(ttl(POLICY.decide(&r, true)), Some(60));
    }

    #[test]
    fn set_cookie_needs_explicit_permission() {
        let r = resp(
            200,
            &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
        );
        assert_eq!(ttl(POLICY.decide(&r, false)), None);
        let r = resp(
            200,
            &[
                ("cache-control", "public, max-age=60"),
                ("set-cookie", "a=b"),
            ],
        );
        assert_eq!(ttl(POLICY.decide(&r, false)), Some(60));
        let r = resp(
            200,
            &[
                ("cache-control", "max-age=60, private=\"set-cookie\""),
                ("set-cookie", "a=b"),
            ],
        );
        match POLICY.decide(&r, false) {
            RespCacheable::Cacheable(meta) => assert!(!meta.headers().contains_key("set-cookie")),
            RespCacheable::Uncacheable(r) => panic!("should be stored without the cookie: {r:?}"),
        }
    }

    #[test]
    fn vary_star_partial_and_oversized_are_not_stored() {
        assert_eq!(
            ttl(POLICY.decide(
                &resp(200, &[("cache-control", "max-age=60"), ("vary", "*")]),
                false
            )),
            None
        );
        assert_eq!(
            ttl(POLICY.decide(&resp(206, &[("cache-control", "max-age=60")]), false)),
            None
        );
        let big = (2u64 << 20).to_string();
        assert_eq!(
            ttl(POLICY.decide(
                &resp(
                    200,
                    &[("cache-control", "max-age=60"), ("content-length", &big)]
                ),
                false
            )),
            None
        );
    }

    #[test]
    fn expires_is_honoured() {
        let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(100));
        let t = ttl(POLICY.decide(&resp(200, &[("expires", &at)]), false)).unwrap();
        assert!((99..=101).contains(&t), "{t}");
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(100));
        // An Expires in the past gives a stored but already stale entry.
        assert_eq!(
            ttl(POLICY.decide(&resp(200, &[("expires", &past)]), false)),
            Some(0)
        );
    }
}
