//! Request counters behind `GET /__stats` and `POST /__reset`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;

/// Counts of requests received, as reported by `GET /__stats`.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// All counted requests.
    pub(crate) total: u64,
    /// Per path (no query).
    pub(crate) paths: BTreeMap<String, u64>,
    /// Per raw path and query, as received.
    pub(crate) requests: BTreeMap<String, u64>,
    /// Per `Host` header value as received (`""` when absent), so tests can see which host
    /// a proxy sent.
    pub(crate) hosts: BTreeMap<String, u64>,
}

/// Shared request counters; the lock is held only to bump or copy counts.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    inner: Mutex<Snapshot>,
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(count) => *count += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, Snapshot> {
        // The counters stay consistent even if a holder panicked.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one request for `path` (no query), `path_and_query` (raw) and `host`.
    pub(crate) fn record(&self, path: &str, path_and_query: &str, host: &str) {
        let mut inner = self.lock();
        inner.total += 1;
        bump(&mut inner.paths, path);
        bump(&mut inner.requests, path_and_query);
        bump(&mut inner.hosts, host);
    }

    /// A copy of the current counts.
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.lock().clone()
    }

    /// Zeroes all counts.
    pub(crate) fn reset(&self) {
        *self.lock() = Snapshot::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let stats = Stats::default();
        stats.record("/x", "/x?a=1", "h");
        stats.record("/x", "/x", "h");
        stats.record("/y", "/y", "");
        let snap = stats.snapshot();
        assert_eq!(snap.total, 3);
        assert_eq!(snap.paths["/x"], 2);
        assert_eq!(snap.paths["/y"], 1);
        assert_eq!(snap.requests["/x?a=1"], 1);
        assert_eq!(snap.requests["/x"], 1);
        assert_eq!(snap.hosts["h"], 2);
        assert_eq!(snap.hosts[""], 1);
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["total"], 3);
        assert_eq!(json["paths"]["/x"], 2);
        stats.reset();
        assert_eq!(stats.snapshot(), Snapshot::default());
    }
}
