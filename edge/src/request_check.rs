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
