//! Invalidation after unsafe requests (RFC 9111 section 4.4): when a `POST`, `PUT`, `DELETE`
//! or other unsafe request passes through the edge and the origin answers with a non-error
//! status (2xx or 3xx), the stored responses for its URL, and for the URLs its `Location` and
//! `Content-Location` name on the same host, are no longer trustworthy and are removed.

use crate::cache_key;
use pingora_http::{RequestHeader, ResponseHeader};

/// The normalised URLs (as the cache stores them) that the answer `resp` to `req` invalidates;
/// empty for safe methods and for error statuses.
pub fn urls(req: &RequestHeader, resp: &ResponseHeader) -> Vec<String> {
    let status = resp.status.as_u16();
    if req.method.is_safe() || !(200..400).contains(&status) {
        return Vec::new();
    }
    let host = cache_key::request_host(req).unwrap_or("");
    let mut out = vec![cache_key::request_url(req)];
    for name in [http::header::LOCATION, http::header::CONTENT_LOCATION] {
        let Some(target) = resp.headers.get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if let Some(url) = same_host_url(host, target.trim()) {
            if !out.contains(&url) {
                out.push(url);
            }
        }
    }
    out
}

/// `target` (an absolute path or an absolute `http(s)` URL) as a normalised URL, if it is on
/// `host`: section 4.4 forbids invalidating another host's responses, which would let one
/// origin purge another's.
fn same_host_url(host: &str, target: &str) -> Option<String> {
    if target.starts_with('/') && !target.starts_with("//") {
        return Some(cache_key::normalised_url(host, target));
    }
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if !authority.eq_ignore_ascii_case(host) {
        return None;
    }
    Some(cache_key::normalised_url(host, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(method: &str, status: u16, headers: &[(&str, &str)]) -> Vec<String> {
        let mut req = RequestHeader::build(method, b"/a/b?x=1", None).unwrap();
        req.insert_header("host", "Example.com").unwrap();
        let mut resp = ResponseHeader::build(status, None).unwrap();
        for (k, v) in headers {
            resp.insert_header(k.to_string(), *v).unwrap();
        }
        urls(&req, &resp)
    }

    #[test]
    fn unsafe_successes_invalidate_their_url_and_same_host_locations() {
        assert!(exchange("GET", 200, &[]).is_empty());
        assert!(exchange("POST", 500, &[]).is_empty());
        assert!(exchange("DELETE", 404, &[]).is_empty());
        assert_eq!(exchange("PUT", 204, &[]), ["example.com/a/b?x=1"]);
        let urls = exchange(
            "POST",
            303,
            &[
                ("location", "/c"),
                ("content-location", "http://EXAMPLE.com/d?y"),
            ],
        );
        assert_eq!(
            urls,
            ["example.com/a/b?x=1", "example.com/c", "example.com/d?y"]
        );
        let foreign = exchange(
            "POST",
            201,
            &[
                ("location", "http://other.example/c"),
                ("content-location", "//x/y"),
            ],
        );
        assert_eq!(foreign, ["example.com/a/b?x=1"]);
    }
}
