//! `POST /purge` on the admin API: removes cached responses by exact URL, by URL prefix or by
//! cache tag, and answers how many entries went.
//!
//! The body is JSON with any of three lists (at least one entry in all):
//!
//! ```json
//! {"urls": ["http://cdn.example.com/a.css"],
//!  "prefixes": ["http://cdn.example.com/static/"],
//!  "tags": ["product-42"]}
//! ```
//!
//! and the answer is `{"purged": N, "in_flight": M}`: `N` stored entries removed (every `Vary`
//! variant of a URL counts), `M` origin fetches in progress that will now not be stored.
//!
//! URLs and prefixes go through the cache key's own normalisation
//! ([`cache_key::normalised_url`]), so `http://CDN.example.com:80/%7Ea` purges what a request
//! for `http://cdn.example.com/~a` stored. The scheme is not part of the key: `https://` and
//! `http://` name the same entry. A prefix is a plain prefix of the normalised URL: it always
//! contains the host and at least the `/` after it, so it never spills over to another host.
//! The work is done by the storage's purge index ([`crate::storage`]): no purge walks the
//! whole cache.

use crate::cache_key;
use crate::storage::{CacheStorage, PurgeCount, PurgeSelector};
use serde::{Deserialize, Serialize};

/// A URL given to the admin API (purge or prewarm), split the way the cache key needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheUrl {
    /// The `Host` a client request for this URL carries (`host` or `host:port`).
    pub host: String,
    /// The path and query, starting with `/`.
    pub path_and_query: String,
}

impl CacheUrl {
    /// Parses `http://host[:port]/path?query` (or `https://…`, or `host/path` with no scheme).
    /// A fragment is dropped; user info is refused, as no request carries it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty URL".into());
        }
        let without_fragment = text.split('#').next().unwrap_or(text);
        let (scheme, rest) = match without_fragment.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => ("http".to_string(), without_fragment),
        };
        if scheme != "http" && scheme != "https" {
            return Err(format!("{text:?}: only http and https URLs are cached"));
        }
        let uri = http::Uri::try_from(format!("http://{rest}"))
            .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{text:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "{text:?}: a URL with user info names no cached object"
            ));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        // `Uri::port` hides a port that is not a number: read it from the authority itself.
        let port = match authority.as_str().get(host.len()..).unwrap_or("") {
            "" | ":" => None,
            rest => Some(
                rest.strip_prefix(':')
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or_else(|| format!("{text:?} has no valid port"))?,
            ),
        };
        // A client behind a TLS front end sends no port for 443; `:80` is dropped by the key.
        let host = match port {
            Some(443) if scheme == "https" => host.to_string(),
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let path_and_query = match uri.path_and_query().map(|pq| pq.as_str()) {
            Some(pq) if pq.starts_with('/') => pq.to_string(),
            Some(pq) => format!("/{pq}"),
            None => "/".to_string(),
        };
        Ok(Self {
            host,
            path_and_query,
        })
    }

    /// The normalised URL the cache stores this under (the primary part of its cache key).
    pub fn key(&self) -> String {
        cache_key::normalised_url(&self.host, &self.path_and_query)
    }
}

/// The body of `POST /purge`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Exact URLs: each removes every stored variant of that URL.
    #[serde(default)]
    pub urls: Vec<String>,
    /// URL prefixes: each removes every stored URL that starts with it.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Cache tags: each removes every stored response tagged with it.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl PurgeRequest {
    /// Parses a `POST /purge` body; the error is the reason for the 400.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let request: PurgeRequest = serde_json::from_slice(body).map_err(|e| {
            format!(
                "the body is not a purge request ({e}); send JSON like \
                 {{\"urls\": [...]}}, {{\"prefixes\": [...]}} or {{\"tags\": [...]}}"
            )
        })?;
        if request.urls.is_empty() && request.prefixes.is_empty() && request.tags.is_empty() {
            return Err("nothing to purge: give at least one of urls, prefixes or tags".into());
        }
        Ok(request)
    }

    /// The normalised URLs, prefixes and tags to purge, or the first reason one is invalid.
    fn selectors(&self) -> Result<Vec<(SelectorKind, String)>, String> {
        let mut out = Vec::new();
        for (i, url) in self.urls.iter().enumerate() {
            let url = CacheUrl::parse(url).map_err(|e| format!("urls[{i}]: {e}"))?;
            out.push((SelectorKind::Url, url.key()));
        }
        for (i, prefix) in self.prefixes.iter().enumerate() {
            let prefix = CacheUrl::parse(prefix).map_err(|e| format!("prefixes[{i}]: {e}"))?;
            out.push((SelectorKind::Prefix, prefix.key()));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            if tag.is_empty() || tag.contains([' ', ',', '\t']) {
                return Err(format!(
                    "tags[{i}]: {tag:?} is not a tag (tags are non-empty, without spaces or commas)"
                ));
            }
            out.push((SelectorKind::Tag, tag.clone()));
        }
        Ok(out)
    }
}

/// Which of the three lists a selector came from.
#[derive(Clone, Copy)]
enum SelectorKind {
    Url,
    Prefix,
    Tag,
}

/// Handles a `POST /purge` body: `Err` is the reason for a 400 (nothing was purged then).
pub fn handle(storage: &CacheStorage, body: &[u8]) -> Result<PurgeCount, String> {
    let request = PurgeRequest::parse(body)?;
    // Every entry is checked before anything is removed: a bad one purges nothing.
    let selectors = request.selectors()?;
    let mut count = PurgeCount::default();
    for (kind, value) in &selectors {
        count += storage.purge_matching(match kind {
            SelectorKind::Url => PurgeSelector::Url(value),
            SelectorKind::Prefix => PurgeSelector::Prefix(value),
            SelectorKind::Tag => PurgeSelector::Tag(value),
        });
    }
    tracing::info!(
        urls = request.urls.len(),
        prefixes = request.prefixes.len(),
        tags = request.tags.len(),
        purged = count.purged,
        in_flight = count.in_flight,
        "purge"
    );
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(url: &str) -> String {
        CacheUrl::parse(url).unwrap().key()
    }

    #[test]
    fn urls_normalise_like_the_cache_key() {
        assert_eq!(
            key("http://CDN.Example.com:80/%7ea?q=%2f"),
            "cdn.example.com/~a?q=%2F"
        );
        assert_eq!(key("https://cdn.example.com:443/a"), "cdn.example.com/a");
        assert_eq!(
            key("https://cdn.example.com:8443/a"),
            "cdn.example.com:8443/a"
        );
        assert_eq!(key("cdn.example.com/a#frag"), "cdn.example.com/a");
        assert_eq!(key("http://127.0.0.1:8080"), "127.0.0.1:8080/");
        assert_eq!(key("http://[::1]:8080/x"), "[::1]:8080/x");
        // Equivalent spellings meet on one key, as requests do.
        assert_eq!(key("http://h/%41"), key("http://H./A"));
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for bad in [
            "",
            "ftp://h/a",
            "http:///a",
            "http://user@h/a",
            "http://h:99999/",
            "/only/a/path",
            "http://h/a b",
        ] {
            let e = CacheUrl::parse(bad);
            assert!(e.is_err(), "{bad:?} parsed as {e:?}");
        }
    }

    #[test]
    fn purge_bodies_parse_or_say_why_not() {
        let r = PurgeRequest::parse(br#"{"urls": ["http://h/a"], "tags": ["t"]}"#).unwrap();
        assert_eq!(r.urls, vec!["http://h/a"]);
        assert_eq!(r.tags, vec!["t"]);
        let e = PurgeRequest::parse(b"{\"urls\": [").unwrap_err();
        assert!(e.contains("not a purge request"), "{e}");
        let e = PurgeRequest::parse(br#"{"url": ["http://h/a"]}"#).unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        let e = PurgeRequest::parse(b"{}").unwrap_err();
        assert!(e.contains("nothing to purge"), "{e}");
        let e = PurgeRequest::parse(b"\xff\xfe").unwrap_err();
        assert!(e.contains("not a purge request"), "{e}");
    }

    #[test]
    fn one_bad_entry_purges_nothing() {
        let storage = CacheStorage::new(1 << 20, 1 << 20, cdn_config::Eviction::Lru);
        let e = handle(
            &storage,
            br#"{"urls": ["http://h/a"], "prefixes": ["ftp://h/"]}"#,
        )
        .unwrap_err();
        assert!(e.starts_with("prefixes[0]:"), "{e}");
        let e = handle(&storage, br#"{"tags": ["a b"]}"#).unwrap_err();
        assert!(e.starts_with("tags[0]:"), "{e}");
        let count = handle(&storage, br#"{"prefixes": ["http://h/"]}"#).unwrap();
        assert_eq!(count, PurgeCount::default());
    }
}
