//! Variants of a stored response (RFC 9111 section 4.1): a response with `Vary` is stored once
//! per combination of the values of the request headers it names, and a request is answered
//! only by the variant whose values match its own.
//!
//! Pingora keys variants by a hash that `cache_vary_filter` returns; this builds it from the
//! stored response's `Vary` and the request. Values are compared after trimming and collapsing
//! whitespace around commas (section 4.1 allows normalising "in a way that is known to have
//! identical semantics"). `Vary: *` never reaches storage (see [`freshness`](crate::freshness)).

use pingora_cache::key::HashBinary;
use pingora_cache::{CacheMeta, VarianceBuilder};
use pingora_http::RequestHeader;

/// The variant hash of `req` for the stored response `meta`; `None` when the response has no
/// `Vary`.
pub fn variance(meta: &CacheMeta, req: &RequestHeader) -> Option<HashBinary> {
    let vary = meta.response_header().headers.get_all(http::header::VARY);
    let mut names: Vec<String> = vary
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return None;
    }
    names.sort();
    names.dedup();
    let mut builder = VarianceBuilder::new();
    for name in names {
        let value = normalised(req, &name);
        builder.add_owned_name_value(name, value);
    }
    builder.finalize()
}

/// All of the request's values of header `name`, joined by `,`, with whitespace around each
/// member trimmed; empty when absent.
fn normalised(req: &RequestHeader, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for value in req.headers.get_all(name) {
        for member in value.as_bytes().split(|&b| b == b',') {
            let member = member.trim_ascii();
            if member.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(member);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_http::ResponseHeader;
    use std::time::SystemTime;

    fn meta(vary: Option<&str>) -> CacheMeta {
        let mut h = ResponseHeader::build(200, None).unwrap();
        if let Some(v) = vary {
            h.insert_header("vary", v).unwrap();
        }
        let now = SystemTime::now();
        CacheMeta::new(now, now, 0, 0, h)
    }

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn variants_follow_the_named_headers_only() {
        let m = meta(Some("Accept-Language, accept-encoding"));
        let a = variance(&m, &req(&[("accept-language", "en"), ("x-other", "1")]));
        let b = variance(&m, &req(&[("accept-language", "en"), ("x-other", "2")]));
        let c = variance(&m, &req(&[("accept-language", "fr")]));
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Whitespace and splitting over several lines do not make another variant.
        let d = variance(
            &m,
            &req(&[("accept-encoding", "gzip,  br"), ("accept-language", "en")]),
        );
        let e = variance(
            &m,
            &req(&[
                ("accept-language", "en"),
                ("accept-encoding", "gzip"),
                ("accept-encoding", "br"),
            ]),
        );
        assert_eq!(d, e);
        assert_eq!(variance(&meta(None), &req(&[])), None);
    }
}
