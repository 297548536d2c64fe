//! Hop-by-hop headers (RFC 9110 section 7.6.1): they describe one connection, so a proxy must
//! not forward them, and a cache must not store them (RFC 9111 section 3.1). Every other
//! response header passes through unchanged.

use pingora_http::ResponseHeader;

/// Hop-by-hop headers that a response may carry without listing them in `Connection`.
/// `Transfer-Encoding` is left to pingora, which re-frames the body for the client.
const ALWAYS: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Removes from `resp` the headers named in its `Connection` header, then the fixed
/// hop-by-hop set.
pub fn strip(resp: &mut ResponseHeader) {
    let listed: Vec<String> = resp
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        // Framing is pingora's business, whatever Connection says.
        .filter(|n| !n.is_empty() && n != "transfer-encoding" && n != "content-length")
        .collect();
    for name in listed.iter().map(String::as_str).chain(ALWAYS) {
        resp.remove_header(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_listed_and_fixed_hop_by_hop_headers_go() {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for (k, v) in [
            ("connection", "X-Hop, close"),
            ("x-hop", "secret"),
            ("keep-alive", "timeout=5"),
            ("x-kept", "yes"),
            ("content-length", "3"),
        ] {
            r.append_header(k, v).unwrap();
        }
        strip(&mut r);
        let names: Vec<&str> = r.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept", "content-length"]);
    }
}
