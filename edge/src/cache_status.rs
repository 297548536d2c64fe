//! What the cache did for a request: the `Cache-Status` header (RFC 9211) and the metrics label.

use pingora_cache::{CachePhase, NoCacheReason};
use std::time::SystemTime;

/// How a response was produced, in the cache's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Served fresh from the cache.
    Hit,
    /// Served stale from the cache (stale-while-revalidate or stale-if-error).
    Stale,
    /// Fetched from the origin and stored.
    Miss,
    /// A stale entry was refetched from the origin.
    Expired,
    /// A stale entry was revalidated by the origin (304) and served from the cache.
    Revalidated,
    /// Fetched from the origin and not stored (the response forbade it, or was too large).
    Uncacheable,
    /// The cache was not used for this request (e.g. its method is not cacheable).
    Bypass,
}

impl CacheOutcome {
    /// Every outcome, in the order of [`CacheOutcome::index`].
    pub const ALL: [CacheOutcome; 7] = [
        CacheOutcome::Hit,
        CacheOutcome::Stale,
        CacheOutcome::Miss,
        CacheOutcome::Expired,
        CacheOutcome::Revalidated,
        CacheOutcome::Uncacheable,
        CacheOutcome::Bypass,
    ];

    /// The outcome of a request from pingora's cache phase at response time, and whether the
    /// response is being stored.
    pub fn from_phase(phase: CachePhase, stored: bool) -> Self {
        match phase {
            CachePhase::Hit => CacheOutcome::Hit,
            CachePhase::Stale | CachePhase::StaleUpdating => CacheOutcome::Stale,
            CachePhase::Miss if stored => CacheOutcome::Miss,
            CachePhase::Expired if stored => CacheOutcome::Expired,
            CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => {
                CacheOutcome::Revalidated
            }
            CachePhase::Miss | CachePhase::Expired | CachePhase::Bypass => {
                CacheOutcome::Uncacheable
            }
            CachePhase::Disabled(NoCacheReason::NeverEnabled) => CacheOutcome::Bypass,
            CachePhase::Disabled(_) => CacheOutcome::Uncacheable,
            CachePhase::Uninit | CachePhase::CacheKey => CacheOutcome::Bypass,
        }
    }

    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Stale => "stale",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Expired => "expired",
            CacheOutcome::Revalidated => "revalidated",
            CacheOutcome::Uncacheable => "uncacheable",
            CacheOutcome::Bypass => "bypass",
        }
    }

    /// Position in [`CacheOutcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The `Cache-Status` value for cache `name`; `fresh_until` is the entry's freshness
    /// deadline when the response came from a stored entry.
    ///
    /// ```
    /// use cdn_edge::cache_status::CacheOutcome;
    /// assert_eq!(CacheOutcome::Miss.header_value("cdn-edge", None), "cdn-edge; fwd=miss; stored");
    /// ```
    pub fn header_value(self, name: &str, fresh_until: Option<SystemTime>) -> String {
        let ttl = || {
            fresh_until.map(|until| match until.duration_since(SystemTime::now()) {
                Ok(left) => left.as_secs() as i64,
                Err(past) => -(past.duration().as_secs() as i64),
            })
        };
        match self {
            CacheOutcome::Hit | CacheOutcome::Stale => match ttl() {
                Some(t) => format!("{name}; hit; ttl={t}"),
                None => format!("{name}; hit"),
            },
            CacheOutcome::Miss => format!("{name}; fwd=miss; stored"),
            CacheOutcome::Expired => format!("{name}; fwd=stale; stored"),
            CacheOutcome::Revalidated => match ttl() {
                Some(t) => format!("{name}; fwd=stale; fwd-status=304; ttl={t}"),
                None => format!("{name}; fwd=stale; fwd-status=304"),
            },
            CacheOutcome::Uncacheable => format!("{name}; fwd=miss"),
            CacheOutcome::Bypass => format!("{name}; fwd=bypass"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn header_values_follow_rfc_9211() {
        let until = SystemTime::now() + Duration::from_secs(58);
        assert_eq!(
            CacheOutcome::Hit.header_value("e", Some(until)),
            "e; hit; ttl=57"
        );
        let past = SystemTime::now() - Duration::from_secs(5);
        assert_eq!(
            CacheOutcome::Stale.header_value("e", Some(past)),
            "e; hit; ttl=-5"
        );
        assert_eq!(
            CacheOutcome::Uncacheable.header_value("e", None),
            "e; fwd=miss"
        );
        assert_eq!(
            CacheOutcome::Bypass.header_value("e", None),
            "e; fwd=bypass"
        );
    }

    #[test]
    fn phases_map_to_outcomes() {
        assert_eq!(
            CacheOutcome::from_phase(CachePhase::Miss, true),
            CacheOutcome::Miss
        );
        assert_eq!(
            CacheOutcome::from_phase(CachePhase::Miss, false),
            CacheOutcome::Uncacheable
        );
        assert_eq!(
            CacheOutcome::from_phase(CachePhase::Disabled(NoCacheReason::NeverEnabled), false),
            CacheOutcome::Bypass
        );
        for (i, o) in CacheOutcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
    }
}
