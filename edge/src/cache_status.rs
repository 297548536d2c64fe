//! What the cache did for a request: the `Cache-Status` header (RFC 9211) and the metrics label.

use pingora_cache::{CachePhase, NoCacheReason};
use std::time::SystemTime;

/// How a response was produced, in the cache's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Served fresh from the cache.
    Hit,
    /// Served stale from the cache while one background request refreshes it
    /// (stale-while-revalidate).
    Stale,
    /// Served stale from the cache because the origin failed (stale-if-error).
    StaleIfError,
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
    pub const ALL: [CacheOutcome; 8] = [
        CacheOutcome::Hit,
        CacheOutcome::Stale,
        CacheOutcome::StaleIfError,
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
            // A stale entry still in the `Stale` phase at response time was served after the
            // origin failed; a revalidation would have moved it on.
            CachePhase::Stale => CacheOutcome::StaleIfError,
            CachePhase::StaleUpdating => CacheOutcome::Stale,
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
            CacheOutcome::StaleIfError => "stale_if_error",
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
                // Rounded away from zero, so that an entry stale by a fraction of a second
                // reads as stale (`ttl=-1`), not `ttl=0`.
                Err(past) => {
                    let past = past.duration();
                    -((past.as_secs() + u64::from(past.subsec_nanos() > 0)) as i64)
                }
            })
        };
        match self {
            CacheOutcome::Hit | CacheOutcome::Stale => match ttl() {
                Some(t) => format!("{name}; hit; ttl={t}"),
                None => format!("{name}; hit"),
            },
            CacheOutcome::StaleIfError => match ttl() {
                Some(t) => format!("{name}; fwd=stale; ttl={t}; detail=stale-if-error"),
                None => format!("{name}; fwd=stale; detail=stale-if-error"),
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
        let past = SystemTime::now() - Duration::from_millis(4500);
        assert_eq!(
            CacheOutcome::Stale.header_value("e", Some(past)),
            "e; hit; ttl=-5"
        );
        let just = SystemTime::now() - Duration::from_millis(300);
        assert_eq!(
            CacheOutcome::Stale.header_value("e", Some(just)),
            "e; hit; ttl=-1"
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
