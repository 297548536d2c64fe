//! The route table: which `[[edge.routes]]` entry a request falls under (its host, then the
//! longest path prefix), and that route's protections in DESIGN.md's order: access list
//! ([`access_list`](crate::access_list)), rate limit ([`rate_limit`](crate::rate_limit)),
//! signed URL ([`signed_url`](crate::signed_url)).
//!
//! Prefixes are matched on the normalised path (escapes of unreserved characters decoded,
//! `.` and `..` segments resolved, repeated `/` merged), because origins resolve those too: a
//! spelling like `/public/../private/a` or `/%70rivate/a` must not slip past the route
//! guarding `/private/`.

use crate::access_list::{self, AccessList, RefererList};
use crate::rate_limit::{Limited, RateLimiter};
use crate::signed_url::{self, SignedUrlPolicy};
use cdn_config::{Cidr, LimitKey, RouteConfig};
use http::HeaderValue;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

/// Why a request was refused: the value of the `cdn-refused` response header and of the
/// `reason` label of `cdn_edge_requests_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The client's address is denied, or not allowed (403).
    Denied,
    /// The `Referer` is not an allowed site (403).
    Referer,
    /// The rate limit is reached (429).
    RateLimited,
    /// The signed URL lacks a token parameter (403).
    Missing,
    /// The token has expired, clock skew included (403).
    Expired,
    /// The signature does not match, or the token is malformed (403).
    BadSignature,
    /// The token names a key the route does not have (403).
    UnknownKey,
    /// The token is bound to another client address (403).
    IpMismatch,
    /// A single-use token was used before (403).
    Reused,
}

impl Reason {
    /// Every reason, in metric order.
    pub const ALL: [Reason; 9] = [
        Reason::Denied,
        Reason::Referer,
        Reason::RateLimited,
        Reason::Missing,
        Reason::Expired,
        Reason::BadSignature,
        Reason::UnknownKey,
        Reason::IpMismatch,
        Reason::Reused,
    ];

    /// Its name in headers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Denied => "denied",
            Reason::Referer => "referer",
            Reason::RateLimited => "rate-limited",
            Reason::Missing => "missing",
            Reason::Expired => "expired",
            Reason::BadSignature => "bad-signature",
            Reason::UnknownKey => "unknown-key",
            Reason::IpMismatch => "ip-mismatch",
            Reason::Reused => "reused",
        }
    }

    /// Its place in [`Reason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A refused request: the status and what the response carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub reason: Reason,
    /// The rate limit's headers, for a 429.
    pub limited: Option<Limited>,
}

impl Refusal {
    fn new(reason: Reason) -> Self {
        Self {
            reason,
            limited: None,
        }
    }

    /// 429 for the rate limit, 403 for everything else.
    pub fn status(&self) -> u16 {
        if self.reason == Reason::RateLimited {
            429
        } else {
            403
        }
    }

    /// The response headers besides the framing ones: the reason, and for a 429
    /// `Retry-After`, `RateLimit-Policy` and `RateLimit`.
    pub fn headers(&self) -> Vec<(&'static str, HeaderValue)> {
        let mut h = vec![(
            "cdn-refused",
            HeaderValue::from_static(self.reason.as_str()),
        )];
        if let Some(l) = &self.limited {
            h.push(("retry-after", HeaderValue::from(l.retry_after)));
            h.push(("ratelimit-policy", l.policy.clone()));
            h.push(("ratelimit", l.state.clone()));
        }
        h
    }
}

/// Answers a refused request: its status, the reason header (and the rate limit's headers),
/// a one-line body, and `Cache-Control: private, no-store` so that no shared cache keeps it.
/// A request with a body is answered on a connection that then closes (its body is unread).
pub async fn send_refusal(session: &mut Session, refusal: &Refusal) -> pingora_core::Result<()> {
    let body = bytes::Bytes::from(format!(
        "{}: {}\n",
        if refusal.status() == 429 {
            "too many requests"
        } else {
            "forbidden"
        },
        refusal.reason.as_str()
    ));
    let mut resp = ResponseHeader::build(refusal.status(), Some(8))?;
    for (name, value) in refusal.headers() {
        resp.insert_header(name, value)?;
    }
    resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    resp.insert_header(http::header::CONTENT_TYPE, "text/plain")?;
    resp.insert_header(http::header::CACHE_CONTROL, "private, no-store")?;
    let req = session.req_header();
    let has_body = req.headers.contains_key(http::header::CONTENT_LENGTH)
        || req.headers.contains_key(http::header::TRANSFER_ENCODING);
    if has_body {
        resp.insert_header(http::header::CONNECTION, "close")?;
        session.set_keepalive(None);
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}

/// One route, compiled from its config.
#[derive(Debug)]
pub struct Route {
    /// The prefix it covers.
    pub prefix: String,
    access: AccessList,
    referers: Option<RefererList>,
    limit: Option<RateLimiter>,
    limit_by_kid: bool,
    signed: Option<SignedUrlPolicy>,
}

impl Route {
    /// The route of one `[[edge.routes]]` table.
    pub fn from_config(c: &RouteConfig) -> Self {
        Self {
            prefix: c.prefix.clone(),
            access: AccessList::new(&c.allow, &c.deny),
            referers: RefererList::new(&c.referers, c.allow_no_referer),
            limit: c.rate_limit.as_ref().map(|l| {
                let kids: Vec<&str> = c
                    .signed
                    .iter()
                    .flat_map(|s| s.keys.iter().map(|k| k.kid.as_str()))
                    .collect();
                RateLimiter::from_config(l, &kids)
            }),
            limit_by_kid: c
                .rate_limit
                .as_ref()
                .is_some_and(|l| l.key == LimitKey::Kid),
            signed: c.signed.as_ref().map(SignedUrlPolicy::from_config),
        }
    }

    /// The access list and the `Referer` list.
    pub fn check_access(&self, client: Option<IpAddr>, req: &RequestHeader) -> Result<(), Refusal> {
        if !self.access.permits(client) {
            return Err(Refusal::new(Reason::Denied));
        }
        if let Some(referers) = &self.referers {
            let referer = req.headers.get(http::header::REFERER).map(|v| v.as_bytes());
            if !referers.permits(referer) {
                return Err(Refusal::new(Reason::Referer));
            }
        }
        Ok(())
    }

    /// The rate limit, if the route has one.
    pub fn check_rate(&self, client: Option<IpAddr>, req: &RequestHeader) -> Result<(), Refusal> {
        let Some(limit) = &self.limit else {
            return Ok(());
        };
        let kid = match (&self.signed, self.limit_by_kid) {
            (Some(signed), true) => signed.known_kid(req.uri.query()),
            _ => None,
        };
        limit.check(client, kid).map_err(|l| Refusal {
            reason: Reason::RateLimited,
            limited: Some(l),
        })
    }

    /// The signed URL, if the route needs one. On success, returns the request's
    /// path and query without the token parameters, to replace the request's URI with (so
    /// that neither the cache key nor the origin sees tokens); `None` if nothing changes.
    pub fn check_signature(
        &self,
        client: Option<IpAddr>,
        req: &RequestHeader,
    ) -> Result<Option<String>, Refusal> {
        let Some(signed) = &self.signed else {
            return Ok(None);
        };
        let path = req.uri.path();
        let query = req.uri.query();
        signed
            .verify(path, query, client, signed_url::unix_now())
            .map_err(Refusal::new)?;
        Ok(signed.strip_token(path, query))
    }

    /// The route's rate limiter, if any.
    pub fn rate_limiter(&self) -> Option<&RateLimiter> {
        self.limit.as_ref()
    }
}

/// Every route of an edge, and who counts as the client.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Per lower-case host: its routes, longest prefix first.
    by_host: HashMap<String, Vec<usize>>,
    /// Routes for any host, longest prefix first.
    any_host: Vec<usize>,
    trusted_proxies: Vec<Cidr>,
}

impl RouteTable {
    /// The table of an edge's `routes`, with its `trusted_proxies`.
    pub fn new(routes: &[RouteConfig], trusted_proxies: &[Cidr]) -> Self {
        let mut table = Self {
            routes: routes.iter().map(Route::from_config).collect(),
            trusted_proxies: trusted_proxies.to_vec(),
            ..Self::default()
        };
        for (i, c) in routes.iter().enumerate() {
            match &c.host {
                Some(h) => table
                    .by_host
                    .entry(h.to_ascii_lowercase())
                    .or_default()
                    .push(i),
                None => table.any_host.push(i),
            }
        }
        let prefixes: Vec<usize> = table.routes.iter().map(|r| r.prefix.len()).collect();
        for list in table.by_host.values_mut().chain(Some(&mut table.any_host)) {
            list.sort_by_key(|&i| std::cmp::Reverse(prefixes[i]));
        }
        table
    }

    /// Whether there are no routes (every request passes unchecked).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route of a request for `path` (as sent) on `host` (the `Host` header, any case,
    /// with or without port): the longest prefix among the host's routes and the routes for
    /// any host; on a tie, the host's.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        self.position(host, path).and_then(|i| self.routes.get(i))
    }

    /// Like [`RouteTable::find`], the route's index in the config's `routes`.
    pub fn position(&self, host: Option<&str>, path: &str) -> Option<usize> {
        if self.routes.is_empty() {
            return None;
        }
        let path = normalised_path(path);
        let longest = |list: &[usize]| {
            list.iter()
                .copied()
                .find(|&i| path.starts_with(self.routes[i].prefix.as_str()))
        };
        let own = host
            .filter(|_| !self.by_host.is_empty())
            .and_then(|h| self.by_host.get(host_name(h).as_ref()))
            .and_then(|list| longest(list));
        let any = longest(&self.any_host);
        let pick = match (own, any) {
            (Some(o), Some(a)) if self.routes[a].prefix.len() > self.routes[o].prefix.len() => a,
            (Some(o), _) => o,
            (None, a) => a?,
        };
        Some(pick)
    }

    /// The route of a request.
    pub fn for_request(&self, req: &RequestHeader) -> Option<&Route> {
        if self.routes.is_empty() {
            return None;
        }
        self.find(crate::cache_key::request_host(req), req.uri.path())
    }

    /// The client of a request that came from `peer` (see [`access_list::client_ip`]).
    pub fn client_ip(&self, peer: Option<IpAddr>, req: &RequestHeader) -> Option<IpAddr> {
        let xff = req.headers.get_all("x-forwarded-for").into_iter();
        access_list::client_ip(peer, xff.map(|v| v.as_bytes()), &self.trusted_proxies)
    }
}

/// A `Host` value as routes name it: lower case, no port, no trailing dot.
fn host_name(host: &str) -> Cow<'_, str> {
    let host = host.trim();
    let host = if host.starts_with('[') {
        host.split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1])
    } else {
        host.split(':').next().unwrap_or(host)
    };
    let host = host.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// The path as routes and `acl` prefixes see it: escapes of unreserved characters decoded
/// (`%70` → `p`, `%2e` → `.`), `.` and `..` segments resolved (RFC 3986 section 5.2.4),
/// repeated `/` merged. Borrowed when nothing changes, the common case.
pub fn normalised_path(path: &str) -> Cow<'_, str> {
    let needs_work =
        path.contains('%') || path.contains("//") || path.contains("/.") || !path.starts_with('/');
    if !needs_work {
        return Cow::Borrowed(path);
    }
    // A `..` can take a stray `%` away with its segment and let escapes elsewhere decode on a
    // second pass (`/%+41/../%70rivate/`, found by the route fuzz target): repeat until nothing
    // changes. A pass that changes more than the case of escapes shortens the path, and
    // decoding never makes a new `%`, so two or three passes are the most seen.
    let mut current = normalise_once(path);
    for _ in 0..16 {
        let next = normalise_once(&current);
        if next == current {
            break;
        }
        current = next;
    }
    Cow::Owned(current)
}

/// One pass of [`normalised_path`].
fn normalise_once(path: &str) -> String {
    let decoded = crate::cache_key::normalised_url("", path);
    let mut out: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/') {
        trailing_slash = false;
        match segment {
            "" | "." => trailing_slash = true,
            ".." => {
                out.pop();
                trailing_slash = true;
            }
            s => out.push(s),
        }
    }
    let mut s = String::with_capacity(decoded.len());
    for segment in &out {
        s.push('/');
        s.push_str(segment);
    }
    if trailing_slash || out.is_empty() {
        s.push('/');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, prefix: &str) -> RouteConfig {
        RouteConfig {
            host: host.map(str::to_string),
            prefix: prefix.to_string(),
            ..RouteConfig::default()
        }
    }

    #[test]
    fn paths_normalise_against_tricks() {
        assert_eq!(normalised_path("/a/b"), "/a/b");
        assert!(matches!(normalised_path("/a/b"), Cow::Borrowed(_)));
        assert_eq!(normalised_path("/public/../private/a"), "/private/a");
        assert_eq!(normalised_path("/%70rivate/a"), "/private/a");
        assert_eq!(normalised_path("/public/%2e%2e/private/"), "/private/");
        assert_eq!(normalised_path("//private//a"), "/private/a");
        assert_eq!(normalised_path("/a/./b/."), "/a/b/");
        assert_eq!(normalised_path("/../../x"), "/x");
        assert_eq!(normalised_path("/.."), "/");
        assert_eq!(normalised_path(""), "/");
        assert_eq!(
            normalised_path("/a%2Fb"),
            "/a%2Fb",
            "an encoded / is not a separator"
        );
        // Found by the route fuzz target: a `..` removing the only stray `%`.
        assert_eq!(normalised_path("/%+41/../%70rivate/a"), "/private/a");
    }

    #[test]
    fn longest_prefix_wins_and_hosts_come_first_on_ties() {
        let t = RouteTable::new(
            &[
                route(None, "/"),
                route(None, "/private/"),
                route(None, "/private/deep/"),
                route(Some("Img.Example.com"), "/private/"),
                route(Some("img.example.com"), "/x/"),
            ],
            &[],
        );
        let find = |host, path| {
            t.find(host, path)
                .map(|r| t.routes.iter().position(|x| std::ptr::eq(x, r)).unwrap())
        };
        assert_eq!(find(None, "/index.html"), Some(0));
        assert_eq!(find(None, "/private/a"), Some(1));
        assert_eq!(
            find(None, "/private"),
            Some(0),
            "a prefix is matched byte for byte"
        );
        assert_eq!(find(None, "/private/deep/a"), Some(2));
        assert_eq!(find(Some("img.example.com"), "/private/a"), Some(3));
        assert_eq!(find(Some("IMG.example.com:8080"), "/private/a"), Some(3));
        assert_eq!(
            find(Some("img.example.com."), "/private/deep/a"),
            Some(2),
            "longer wins"
        );
        assert_eq!(find(Some("img.example.com"), "/x/1"), Some(4));
        assert_eq!(find(Some("other.example.com"), "/x/1"), Some(0));
        assert_eq!(find(None, "/public/../private/a"), Some(1));
        let empty = RouteTable::new(&[route(Some("h"), "/a/")], &[]);
        assert!(empty.find(None, "/a/b").is_none());
        assert!(empty.find(Some("[::1]:80"), "/a/b").is_none());
    }

    #[test]
    fn refusals_carry_status_and_reason() {
        let r = Refusal::new(Reason::Expired);
        assert_eq!(r.status(), 403);
        assert_eq!(
            r.headers(),
            vec![("cdn-refused", HeaderValue::from_static("expired"))]
        );
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
    }
}
