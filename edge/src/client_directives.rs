//! What a client's `Cache-Control` (and `Pragma`) asks of the cache (RFC 9111 section 5.2.1):
//! whether a stored response may answer this request, and whether the origin may be asked.
//!
//! Applied on a cache hit through pingora's `cache_hit_filter` (force a revalidation, or accept
//! a stale entry) and before going to the origin (`only-if-cached`).
//!
//! ```
//! use cdn_edge::client_directives::ClientDirectives;
//! let mut req = pingora_http::RequestHeader::build("GET", b"/", None).unwrap();
//! req.insert_header("cache-control", "max-stale=60, min-fresh=10").unwrap();
//! let d = ClientDirectives::from_request(&req);
//! assert_eq!((d.max_stale, d.min_fresh), (Some(Some(60)), Some(10)));
//! ```

use pingora_cache::cache_control::CacheControl;
use pingora_cache::{CacheMeta, ForcedFreshness};
use pingora_http::RequestHeader;
use std::time::{Duration, SystemTime};

/// The request directives the cache acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientDirectives {
    /// `no-cache` (or `Pragma: no-cache` without `Cache-Control`): revalidate before use.
    pub no_cache: bool,
    /// `max-age=N`: no stored response older than N seconds.
    pub max_age: Option<u64>,
    /// `max-stale[=N]`: a stale response is acceptable (by at most N seconds, or any).
    pub max_stale: Option<Option<u64>>,
    /// `min-fresh=N`: only a response fresh for at least N more seconds.
    pub min_fresh: Option<u64>,
    /// `only-if-cached`: answer from the cache or with a 504, never from the origin.
    pub only_if_cached: bool,
}

/// A directive's delta-seconds; a malformed one counts as absent, a huge one as the largest.
fn seconds(value: Option<&str>) -> Option<u64> {
    let v = value?.trim().trim_matches('"');
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(v.parse().unwrap_or(u64::MAX))
}

impl ClientDirectives {
    /// The directives of `req`. Unknown directives are ignored (section 5.2.3).
    pub fn from_request(req: &RequestHeader) -> Self {
        let mut d = ClientDirectives::default();
        let mut any_cache_control = false;
        for value in req.headers.get_all(http::header::CACHE_CONTROL) {
            any_cache_control = true;
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a)),
                    None => (directive.trim(), None),
                };
                if name.eq_ignore_ascii_case("no-cache") {
                    d.no_cache = true;
                } else if name.eq_ignore_ascii_case("max-age") {
                    d.max_age = seconds(arg).or(d.max_age);
                } else if name.eq_ignore_ascii_case("max-stale") {
                    d.max_stale = Some(arg.and_then(|a| seconds(Some(a))));
                } else if name.eq_ignore_ascii_case("min-fresh") {
                    d.min_fresh = seconds(arg).or(d.min_fresh);
                } else if name.eq_ignore_ascii_case("only-if-cached") {
                    d.only_if_cached = true;
                }
            }
        }
        // Section 5.4: Pragma counts only when Cache-Control is absent.
        if !any_cache_control {
            d.no_cache = req
                .headers
                .get_all(http::header::PRAGMA)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case("no-cache"));
        }
        d
    }

    /// How a stored response found for this request may be used at `now`: `None` as its own
    /// freshness says, `ForceExpired` to revalidate it first, `ForceFresh` to serve it although
    /// stale (`max-stale`, unless the response requires revalidation).
    pub fn on_hit(
        &self,
        meta: &CacheMeta,
        is_fresh: bool,
        now: SystemTime,
    ) -> Option<ForcedFreshness> {
        if *self == ClientDirectives::default() {
            return None;
        }
        let age = now.duration_since(meta.created()).unwrap_or_default();
        let fresh_for = meta.fresh_until().duration_since(now).unwrap_or_default();
        let too_old = self.max_age.is_some_and(|m| age > Duration::from_secs(m));
        let too_close = self
            .min_fresh
            .is_some_and(|m| fresh_for < Duration::from_secs(m));
        if self.no_cache || too_old || too_close {
            return Some(ForcedFreshness::ForceExpired);
        }
        if !is_fresh {
            if let Some(max_stale) = self.max_stale {
                let stale_for = now.duration_since(meta.fresh_until()).unwrap_or_default();
                let within = max_stale.is_none_or(|m| stale_for <= Duration::from_secs(m));
                if within && !requires_revalidation(meta) {
                    return Some(ForcedFreshness::ForceFresh);
                }
            }
        }
        None
    }
}

/// Whether the stored response forbids serving it stale (`must-revalidate`,
/// `proxy-revalidate`, `no-cache`, `s-maxage`: RFC 9111 sections 5.2.2.2, 5.2.2.8, 5.2.2.10).
pub fn requires_revalidation(meta: &CacheMeta) -> bool {
    CacheControl::from_resp_headers(meta.response_header()).is_some_and(|cc| {
        cc.must_revalidate()
            || cc.proxy_revalidate()
            || cc.no_cache()
            || matches!(cc.s_maxage(), Ok(Some(_)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_http::ResponseHeader;

    fn req(headers: &[(&str, &str)]) -> ClientDirectives {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        ClientDirectives::from_request(&r)
    }

    /// An entry created `age` seconds ago, fresh for `lifetime` seconds from creation.
    fn meta(age: u64, lifetime: u64, cc: &str) -> CacheMeta {
        let now = SystemTime::now();
        let created = now - Duration::from_secs(age);
        let mut h = ResponseHeader::build(200, None).unwrap();
        h.insert_header("cache-control", cc).unwrap();
        CacheMeta::new(created + Duration::from_secs(lifetime), created, 0, 0, h)
    }

    #[test]
    fn directives_parse() {
        assert_eq!(req(&[]), ClientDirectives::default());
        let d = req(&[("cache-control", "No-Cache, max-age=5, only-if-cached, x=1")]);
        assert!(d.no_cache && d.only_if_cached);
        assert_eq!(d.max_age, Some(5));
        assert_eq!(req(&[("cache-control", "max-stale")]).max_stale, Some(None));
        assert!(req(&[("cache-control", "max-age=abc")]).max_age.is_none());
        assert_eq!(
            req(&[("cache-control", "max-age=99999999999999999999999")]).max_age,
            Some(u64::MAX)
        );
        assert!(req(&[("pragma", "no-cache")]).no_cache);
        assert!(!req(&[("pragma", "no-cache"), ("cache-control", "max-age=9")]).no_cache);
    }

    #[test]
    fn hits_follow_the_directives() {
        let now = SystemTime::now();
        let fresh = meta(10, 60, "max-age=60");
        let stale = meta(70, 60, "max-age=60");
        assert!(req(&[]).on_hit(&fresh, true, now).is_none());
        let d = req(&[("cache-control", "no-cache")]);
        assert!(matches!(
            d.on_hit(&fresh, true, now),
            Some(ForcedFreshness::ForceExpired)
        ));
        let d = req(&[("cache-control", "max-age=5")]);
        assert!(matches!(
            d.on_hit(&fresh, true, now),
            Some(ForcedFreshness::ForceExpired)
        ));
        assert!(req(&[("cache-control", "max-age=20")])
            .on_hit(&fresh, true, now)
            .is_none());
        let d = req(&[("cache-control", "min-fresh=55")]);
        assert!(matches!(
            d.on_hit(&fresh, true, now),
            Some(ForcedFreshness::ForceExpired)
        ));
        let d = req(&[("cache-control", "max-stale=30")]);
        assert!(matches!(
            d.on_hit(&stale, false, now),
            Some(ForcedFreshness::ForceFresh)
        ));
        let d = req(&[("cache-control", "max-stale=5")]);
        assert!(d.on_hit(&stale, false, now).is_none());
        let d = req(&[("cache-control", "max-stale")]);
        assert!(matches!(
            d.on_hit(&stale, false, now),
            Some(ForcedFreshness::ForceFresh)
        ));
        let must = meta(70, 60, "max-age=60, must-revalidate");
        assert!(d.on_hit(&must, false, now).is_none());
    }
}
