//! Requests the edge refuses before they reach the cache or an origin (RFC 9112 section 3.2:
//! an HTTP/1.1 request with no `Host`, several, or an invalid one gets 400; RFC 9112 section
//! 6.3: conflicting `Content-Length` values are an error), so that nothing a client sends can
//! be stored under another URL's key.

use pingora_http::RequestHeader;

/// Why a request is refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Response status.
    pub status: u16,
    /// Short reason, sent as the body.
    pub reason: &'static str,
}

fn refuse(reason: &'static str) -> Result<(), Refusal> {
    Err(Refusal {
        status: 400,
        reason,
    })
}

/// Checks a request header.
pub fn check(req: &RequestHeader) -> Result<(), Refusal> {
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return refuse("several Host headers\n"),
        (Some(h), None) => {
            if h.is_empty() || !h.as_bytes().iter().all(|&b| is_host_char(b)) {
                return refuse("invalid Host header\n");
            }
        }
        (None, _) => {
            if req.version == http::Version::HTTP_11 && req.uri.authority().is_none() {
                return refuse("missing Host header\n");
            }
        }
    }
    let mut lengths = req.headers.get_all(http::header::CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        if lengths.any(|other| other != first) {
            return refuse("conflicting Content-Length headers\n");
        }
        if req.headers.contains_key(http::header::TRANSFER_ENCODING) {
            return refuse("both Content-Length and Transfer-Encoding\n");
        }
    }
    Ok(())
}

/// Most bytes of a request header (request line and fields) the edge accepts; more gets 431
/// (RFC 6585). nginx's default buffers refuse requests past 8 KiB per line and 32 KiB in all;
/// 64 KiB leaves room for large cookies while bounding what one request can pin in memory.
pub const MAX_REQUEST_HEADER_BYTES: usize = 64 * 1024;

/// Checks the request header as it arrived on the wire, for what parsing hides: obs-fold
/// (RFC 9112 section 5.2: rejected with 400), `Content-Length` together with
/// `Transfer-Encoding` (section 6.1: the parser drops the length, but such a request may be
/// an attempt at request smuggling, so it gets 400 too), and an oversized header (431).
pub fn check_raw(raw: &[u8]) -> Result<(), Refusal> {
    if raw.len() > MAX_REQUEST_HEADER_BYTES {
        return Err(Refusal {
            status: 431,
            reason: "request header too large\n",
        });
    }
    let mut content_length = false;
    let mut transfer_encoding = false;
    // Field lines start after the request line; the header ends with an empty line.
    for line in raw.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return refuse("obsolete line folding in a header\n");
        }
        let name = line.split(|&b| b == b':').next().unwrap_or(line);
        content_length |= name.eq_ignore_ascii_case(b"content-length");
        transfer_encoding |= name.eq_ignore_ascii_case(b"transfer-encoding");
    }
    if content_length && transfer_encoding {
        return refuse("both Content-Length and Transfer-Encoding\n");
    }
    Ok(())
}

/// Characters of a `Host` value: reg-name, IP literal, port (RFC 3986 section 3.2.2).
fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn raw_header_rules() {
        assert!(check_raw(b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n").is_ok());
        let fold = check_raw(b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n");
        assert_eq!(
            fold.unwrap_err().reason,
            "obsolete line folding in a header\n"
        );
        let both = check_raw(
            b"POST / HTTP/1.1\nHost: a\ncontent-LENGTH: 1\nTransfer-Encoding: chunked\n\n",
        );
        assert_eq!(both.unwrap_err().status, 400);
        // A body line after the header is not a header.
        assert!(check_raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n folded-looking body").is_ok());
        let big = vec![b'a'; MAX_REQUEST_HEADER_BYTES + 1];
        assert_eq!(check_raw(&big).unwrap_err().status, 431);
    }

    #[test]
    fn host_rules() {
        assert!(check(&req(&[("host", "example.com:8080")])).is_ok());
        assert!(check(&req(&[("host", "[::1]:80")])).is_ok());
        assert_eq!(
            check(&req(&[])).unwrap_err().reason,
            "missing Host header\n"
        );
        assert_eq!(
            check(&req(&[("host", "a"), ("host", "b")]))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            check(&req(&[("host", "a b")])).unwrap_err().reason,
            "invalid Host header\n"
        );
        assert_eq!(check(&req(&[("host", "a/b")])).unwrap_err().status, 400);
    }

    #[test]
    fn framing_rules() {
        assert!(check(&req(&[
            ("host", "h"),
            ("content-length", "3"),
            ("content-length", "3")
        ]))
        .is_ok());
        assert!(check(&req(&[
            ("host", "h"),
            ("content-length", "3"),
            ("content-length", "4")
        ]))
        .is_err());
        assert!(check(&req(&[
            ("host", "h"),
            ("content-length", "3"),
            ("transfer-encoding", "chunked")
        ]))
        .is_err());
    }
}
